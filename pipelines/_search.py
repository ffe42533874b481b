from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pystac
import requests
from pystac_client import Client, ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

from redline.errors import StacError

log = logging.getLogger(__name__)

#: Retries for transient HTTP failures (urllib3 Retry inside pystac-client's StacApiIO):
#: up to 5 retries with exponential back-off (0.5, 1, 2, 4 s) on 429/5xx for GET and POST;
#: 2 for refused connections (a wrong URL should fail in seconds, not minutes) and 2 for read
#: timeouts (a hung server costs 3 × the read timeout, not 6 ×).
_RETRY = Retry(
    total=5,
    connect=2,
    read=2,
    backoff_factor=0.5,
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=None,
    raise_on_status=False,
)
#: (connect, read) timeouts in seconds for one request.
_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class SearchResult:
    """Items found for one search, with what is needed to reproduce it (for the manifest)."""

    url: str
    parameters: dict[str, Any]
    items: list[pystac.Item]
    client_side_cloud_filter: bool
    n_before_cloud_filter: int
    notes: list[str] = field(default_factory=list)
    #: Items the API returned that could not be parsed: ``(item id or "#n", reason)``; left out.
    failures: list[tuple[str, str]] = field(default_factory=list)


def open_client(url: str, *, timeout: float | None = None) -> Client:
    """Open a STAC API with retries and timeouts; raise :class:`StacError` naming the URL.

    ``timeout`` is the read timeout of one request in seconds (default 60).
    """
    timeouts = (_TIMEOUT[0], timeout or _TIMEOUT[1])
    stac_io = StacApiIO(timeout=timeouts, max_retries=_RETRY)
    try:
        # timeout again here: Client.open(stac_io=…) resets the StacApiIO's timeout to its own (None)
        return Client.open(url, stac_io=stac_io, timeout=timeouts)
    except (APIError, requests.RequestException, pystac.STACError, ValueError) as exc:
        raise StacError(f"stac.url {url}: cannot open the STAC API ({_first_line(exc)}); check the URL and the network") from None


def search_items(
    url: str,
    *,
    collections: list[str],
    bbox: tuple[float, float, float, float],
    datetime: str,
    max_cloud_cover: float | None = None,
    limit: int = 100,
    timeout: float | None = None,
    max_items: int | None = None,
) -> SearchResult:
    """Search a STAC API for scenes.

    Parameters
    ----------
    url
        API root, e.g. ``https://earth-search.aws.element84.com/v1`` or the embedded API.
    collections
        Collection ids; each must exist on the server.
    bbox
        (west, south, east, north) in EPSG:4326 degrees.
    datetime
        RFC 3339 interval, e.g. ``"2021-01-01/2023-12-31"``.
    max_cloud_cover
        Scene-level ``eo:cloud_cover`` limit in percent. Sent to the server with the query
        extension when it conforms to it; otherwise applied on the client (servers that do not
        implement ``query``/``filter`` may silently return nothing when asked).
    timeout
        Read timeout of one HTTP request, seconds (default 60); timeouts are retried twice.
    max_items
        Stop after this many items (None: every item the search matches).

    Returns
    -------
    SearchResult
        Items sorted by datetime then id (deterministic), and the exact parameters sent.
        Items that cannot be parsed are left out and listed in ``failures``.
    """
    client = open_client(url, timeout=timeout)
    try:
        available = {c.id for c in client.get_collections()} if client.conforms_to(ConformanceClasses.COLLECTIONS) else None
    except (APIError, requests.RequestException, pystac.STACError) as exc:
        raise StacError(f"stac.url {url}: cannot list the collections ({_first_line(exc)}); check the API") from None
    if available is not None:
        missing = [c for c in collections if c not in available]
        if missing:
            raise StacError(
                f"stac.collections: collection '{missing[0]}' does not exist on {url}; "
                f"available: {', '.join(sorted(available)) or 'none'}"
            )
    params: dict[str, Any] = {"collections": list(collections), "bbox": list(bbox), "datetime": datetime, "limit": limit}
    server_side = max_cloud_cover is not None and max_cloud_cover < 100 and client.conforms_to(ConformanceClasses.QUERY)
    if server_side:
        params["query"] = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    notes = []
    if max_cloud_cover is not None and max_cloud_cover < 100 and not server_side:
        notes.append("the API does not conform to the query extension: eo:cloud_cover filtered on the client")
        log.info("%s: %s", url, notes[-1])
    try:
        found, failures = parse_items(client.search(method="POST", max_items=max_items, **params).items_as_dicts(), root=client)
    except (APIError, requests.RequestException) as exc:
        raise StacError(f"stac.url {url}: search failed ({_first_line(exc)}); check the API and the search parameters") from None
    n_before = len(found)
    if max_cloud_cover is not None and not server_side:
        found = [it for it in found if float(it.properties.get("eo:cloud_cover", 0.0)) <= max_cloud_cover]
    found.sort(key=lambda it: (it.datetime, it.id))
    return SearchResult(
        url=url,
        parameters=params,
        items=found,
        client_side_cloud_filter=not server_side,
        n_before_cloud_filter=n_before,
        notes=notes,
        failures=failures,
    )


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, with timeouts said plainly."""
    if isinstance(exc, requests.Timeout) or "read timed out" in str(exc).lower():
        return "the API did not answer in time (read timeout, retried twice); raise stac.timeout_s or try later"
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


def parse_items(dicts: Iterable[dict[str, Any]], *, root: pystac.Catalog | None = None) -> tuple[list[pystac.Item], list[tuple[str, str]]]:
    """Parse STAC Item dicts one by one: a malformed item is left out and reported, not fatal.

    An item is malformed when pystac cannot read it, or when it lacks an id, a datetime (or
    start/end datetimes) or a geometry/bbox. (Missing band assets are the probe's business.)

    Returns
    -------
    (items, failures)
        The parsed items, and ``(item id or "#<position>", reason)`` for each one left out.
    """
    items, failures = [], []
    for n, d in enumerate(dicts):
        ident = str(d.get("id") or f"#{n + 1}") if isinstance(d, dict) else f"#{n + 1}"
        try:
            if not isinstance(d, dict) or not d.get("id"):
                raise ValueError("no id")
            props = d.get("properties") or {}
            if not props.get("datetime") and not (props.get("start_datetime") and props.get("end_datetime")):
                raise ValueError("no datetime (nor start_datetime/end_datetime) in properties")
            if not d.get("geometry") or not d.get("bbox"):
                raise ValueError("no geometry or bbox")
            if not isinstance(d.get("assets", {}), dict):
                raise ValueError("assets is not a mapping")
            item = pystac.Item.from_dict(d, root=root, preserve_dict=False)
            _ = item.datetime or item.common_metadata.start_datetime  # parse the date now, not later
        except (ValueError, TypeError, KeyError, AttributeError, pystac.STACError) as exc:
            reason = f"malformed STAC item ({str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__})"
            log.warning("item %s: %s; left out", ident, reason)
            failures.append((ident, reason))
            continue
        items.append(item)
    return items, failures
