from __future__ import annotations

import logging
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
#: 2 for refused connections (a wrong URL should fail in seconds, not minutes).
_RETRY = Retry(
    total=5,
    connect=2,
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


def open_client(url: str) -> Client:
    """Open a STAC API with retries and timeouts; raise :class:`StacError` naming the URL."""
    stac_io = StacApiIO(timeout=_TIMEOUT, max_retries=_RETRY)
    try:
        return Client.open(url, stac_io=stac_io)
    except (APIError, requests.RequestException, pystac.STACError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise StacError(f"stac.url {url}: cannot open the STAC API ({first}); check the URL and the network") from None


def search_items(
    url: str,
    *,
    collections: list[str],
    bbox: tuple[float, float, float, float],
    datetime: str,
    max_cloud_cover: float | None = None,
    limit: int = 100,
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

    Returns
    -------
    SearchResult
        Items sorted by datetime then id (deterministic), and the exact parameters sent.
    """
    client = open_client(url)
    available = {c.id for c in client.get_collections()} if client.conforms_to(ConformanceClasses.COLLECTIONS) else None
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
        found = list(client.search(method="POST", **params).items())
    except (APIError, requests.RequestException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise StacError(f"stac.url {url}: search failed ({first}); check the API and the search parameters") from None
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
    )
