"""Check each scene's assets before the scan builds its graph (docs/architecture.md §5).

A scene whose asset cannot be read (HTTP 404, unreachable, not a raster, truncated), that lacks
a band the scan needs, or whose band lies on another grid than the item declares is reported
and left out; the scan goes on with the others. The check opens each asset's header and reads
the one block stored last in the file (a truncated COG loses its tail first), so it costs a
header and one tile per asset, not a scene read.
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import pystac
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from pipelines._cluster import set_gdal_env
from pipelines._load import asset_for, local_href_patch
from redline.errors import StacError

__all__ = ["SceneFailure", "probe_items", "find_unreadable"]

log = logging.getLogger(__name__)

#: Grid tolerance: a band's origin may differ from the declared one by this share of a pixel
#: (floating-point noise in proj:transform), not more.
_GRID_TOLERANCE_PX = 0.5
#: Block tables larger than this are not scanned for the last-stored block; the bottom-right
#: block is read instead (a COG of 10 980 px in 256 px tiles has 1 849 blocks).
_MAX_BLOCKS = 20_000


@dataclass(frozen=True)
class SceneFailure:
    """A scene left out of the scan: item id and a one-line reason naming the asset."""

    item_id: str
    reason: str


def _declared_grid(item: pystac.Item, asset: pystac.Asset) -> tuple[list[float] | None, list[int] | None]:
    """proj:transform and proj:shape declared on the asset, else on the item (STAC projection)."""
    transform = asset.extra_fields.get("proj:transform") or item.properties.get("proj:transform")
    shape = asset.extra_fields.get("proj:shape") or item.properties.get("proj:shape")
    return transform, shape


def _declared_epsg(item: pystac.Item, asset: pystac.Asset) -> int | None:
    for src in (asset.extra_fields, item.properties):
        if src.get("proj:epsg"):
            return int(src["proj:epsg"])
        code = src.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
    return None


def _last_stored_block(src: rasterio.DatasetReader) -> Window:
    """The window of band 1's block stored last in the file (largest TIFF offset)."""
    rows = math.ceil(src.height / src.block_shapes[0][0])
    cols = math.ceil(src.width / src.block_shapes[0][1])
    best, best_off = (rows - 1, cols - 1), -1
    if rows * cols <= _MAX_BLOCKS:
        for r in range(rows):
            for c in range(cols):
                off = src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)
                if off is None:
                    break
                if int(off) > best_off:
                    best, best_off = (r, c), int(off)
    return src.block_window(1, *best)


def _area_window(src: rasterio.DatasetReader, bbox_4326: tuple[float, float, float, float]) -> Window:
    """The window of ``src`` covering ``bbox_4326`` (lon/lat), clipped to the raster."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    w, s, e, n = transform_bounds("EPSG:4326", src.crs, *bbox_4326, densify_pts=21)
    win = from_bounds(w, s, e, n, transform=src.transform).round_offsets().round_lengths()
    return win.intersection(Window(0, 0, src.width, src.height))


def _check_asset(item: pystac.Item, band: str, asset: pystac.Asset, read_bbox: tuple[float, float, float, float] | None = None) -> tuple[str, tuple] | str:
    """Open one asset; return its grid ``(crs, (res, x0, y0, x1, y1))`` or a failure reason.
    Reads the block stored last, or with ``read_bbox`` (lon/lat) every pixel over that area."""
    href = local_href_patch(asset.href)
    try:
        with rasterio.open(href) as src:
            if read_bbox is None:
                src.read(1, window=_last_stored_block(src))
            else:
                try:
                    src.read(1, window=_area_window(src, read_bbox))
                except rasterio.errors.WindowError:  # the asset does not reach the area
                    pass
            crs, t = src.crs, src.transform
            bounds = (abs(t.a), t.c, t.f, t.c + t.a * src.width, t.f + t.e * src.height)
            declared_t, declared_shape = _declared_grid(item, asset)
            epsg = _declared_epsg(item, asset)
            if epsg is not None and crs is not None and crs.to_epsg() != epsg:
                return f"band '{band}' is in {crs.to_string()}, the item declares EPSG:{epsg}"
            if declared_t and declared_shape:
                a, _, c, _, e, f = declared_t[:6]
                h, w = declared_shape[:2]
                want = (abs(a), c, f, c + a * w, f + e * h)
                tol = _GRID_TOLERANCE_PX * max(abs(a), abs(t.a))
                if any(abs(x - y) > tol for x, y in zip(bounds[1:], want[1:])) or abs(bounds[0] - want[0]) > 1e-6 * want[0]:
                    return (
                        f"band '{band}' grid ({bounds[0]:g} m, bounds {bounds[1]:.0f} {bounds[4]:.0f} {bounds[3]:.0f} {bounds[2]:.0f}) "
                        f"differs from the item's proj:transform/proj:shape ({want[0]:g} m, bounds {want[1]:.0f} {want[4]:.0f} {want[3]:.0f} {want[2]:.0f})"
                    )
            return (crs.to_string() if crs else "", bounds)
    except RasterioError as exc:
        msg = " ".join(str(exc).split())[:200] or exc.__class__.__name__
        shown = asset.href.split("?", 1)[0]  # never a signed href's token (Planetary Computer's SAS) in a log or the manifest
        if "404" in msg:
            msg = f"HTTP 404 not found ({shown})"
        elif "Read failed" in msg or "TIFFRead" in msg or "truncat" in msg.lower():
            msg = f"cannot read its data, the file is truncated or corrupt ({shown})"
        elif _UNREACHABLE.search(msg):
            msg = f"{msg} ({shown})"
        return f"asset '{band}' cannot be read: {msg}"


def _asset_keys(item: pystac.Item, bands: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str] | str:
    """Asset key of each of ``bands`` (common names, ``mask`` for the quality band), found as
    the loader finds them (:func:`pipelines._bands.parse_item`, parsed once), else by key or
    ``eo:bands``; or the reason a band has no asset. Bands in ``optional`` are checked only
    where the item has them."""
    from pipelines._bands import parse_item

    try:
        parsed = parse_item(item)
    except (StacError, KeyError, ValueError):
        parsed = None
    keys: dict[str, str] = {}
    for band in bands:
        if band == "lst":  # optional: the thermal band, checked only where the item has one
            if parsed is not None and parsed.thermal is not None:
                keys[band] = parsed.thermal.asset
            continue
        if band in optional and parsed is not None and (parsed.mask is None if band == "mask" else band not in parsed.bands):
            continue
        if parsed is not None and band == "mask" and parsed.mask is not None:
            keys[band] = parsed.mask.asset
        elif parsed is not None and band in parsed.bands:
            keys[band] = parsed.bands[band].asset
        else:
            try:
                asset = asset_for(item, "scl" if band == "mask" else band)
            except StacError:
                return f"no asset for band '{band}' (asset keys: {', '.join(item.assets) or 'none'})"
            keys[band] = next(k for k, a in item.assets.items() if a is asset)
    return keys


def _asset_to_check(item: pystac.Item, band: str, key: str, profile: object | None, signer) -> pystac.Asset:
    """The asset of ``key`` with the href the loader reads (alternate href, signed)."""
    from pipelines._load import asset_href

    href = asset_href(item, key, profile)
    if signer is not None:
        href = signer(href)
    asset = item.assets[key].clone()
    asset.href = href
    return asset


def _item_verdict(keys: dict[str, str], results: dict[str, tuple[str, tuple] | str]) -> str | None:
    """An item's failure from its assets' checks (:func:`_check_asset`, in band order), or None."""
    grids: dict[str, tuple] = {}
    for band in keys:
        res = results[band]
        if isinstance(res, str):
            return res
        grids[band] = res
    # without declared grids, every band must at least cover the same extent (± one coarse pixel)
    crss = {crs for crs, _ in grids.values()}
    if len(crss) > 1:
        return f"bands are in different CRSs ({', '.join(sorted(crss))})"
    coarse = max(b[0] for _, b in grids.values())
    ref_band, (_, ref) = next(iter(grids.items()))
    for band, (_, b) in grids.items():
        if any(abs(x - y) > coarse for x, y in zip(b[1:], ref[1:])):
            return f"band '{band}' covers another extent than band '{ref_band}' (a different grid)"
    return None


#: curl's words (in GDAL's error) for a host that cannot be reached at all: its name does not
#: resolve, nothing answers on its port, or the connection times out. Other failures (HTTP 4xx/
#: 5xx, a bad file) are the asset's own.
_UNREACHABLE = re.compile(r"CURL error: (Could not resolve|Couldn't resolve|Failed to connect|Could not connect|Couldn't connect|"
                          r"Connection timed out|Connection refused|Operation timed out|Timeout was reached|Resolving timed out)", re.I)


def _host(href: str) -> str | None:
    """``scheme://netloc`` of a remote href (``s3://bucket`` included); None for a local file."""
    parts = urlsplit(href)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc and len(parts.scheme) > 1 else None


def _check_items(items: list[pystac.Item], bands: tuple[str, ...], *, threads: int, profile: object | None, signer, read_bbox=None,
                 optional: tuple[str, ...] = ()) -> list[str | None]:
    """Each item's failure (or None): every asset of every item checked on one pool of ``threads``
    (each check is a few sequential round trips to the server: one task per asset, not per item,
    keeps ``threads`` of them in flight), then each item judged on its assets' grids.

    A host that cannot be reached (DNS, refused, timed out, after GDAL's retries) fails its assets
    not yet started with that reason at once, instead of each of them waiting out the same
    retries (``GDAL_HTTP_MAX_RETRY`` 5: ~30-90 s per asset; a blocked object store would hold a
    scan of a few hundred assets for many minutes): at most ``threads`` of its assets are tried,
    at the same time."""
    keys = [_asset_keys(it, bands, optional) for it in items]
    jobs = [(i, band, key) for i, k in enumerate(keys) if not isinstance(k, str) for band, key in k.items()]
    dead: dict[str, str] = {}  # host → the failure that showed it unreachable (set by the pool's threads; dict ops are atomic)

    def check(job: tuple[int, str, str]) -> tuple[str, tuple] | str:
        i, band, key = job
        asset = _asset_to_check(items[i], band, key, profile, signer)
        host = _host(asset.href)
        if host in dead:
            return f"asset '{band}' not read: its host {host} cannot be reached ({dead[host]})"
        res = _check_asset(items[i], band, asset, read_bbox)
        if host is not None and isinstance(res, str) and _UNREACHABLE.search(res) and dead.setdefault(host, res) == res:
            log.warning("%s cannot be reached (%s): its other assets are left out without trying each", host, res)
        return res

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        done = list(pool.map(check, jobs))
    results: list[dict[str, tuple[str, tuple] | str]] = [{} for _ in items]
    for (i, band, _), res in zip(jobs, done):
        results[i][band] = res
    return [k if isinstance(k, str) else _item_verdict(k, r) for k, r in zip(keys, results)]


def probe_items(
    items: list[pystac.Item], bands: tuple[str, ...], *, threads: int = 8, profile: object | None = None, signer=None,
    optional: tuple[str, ...] = (),
) -> tuple[list[pystac.Item], list[SceneFailure]]:
    """Check that every scene's ``bands`` can be read and lie on the declared grid.

    Parameters
    ----------
    items
        STAC Items of the scan.
    bands
        Common band names the scan loads, ``mask`` for the quality band (SCL, QA_PIXEL, Fmask …),
        ``lst`` for the thermal band where an item has one (optional).
    profile, signer
        The catalogue's profile (alternate hrefs) and href signer (Planetary Computer), as the
        loader uses them, so the check reads what the scan will read.
    threads
        Assets are opened in parallel threads, one asset per task (HTTP latency, not CPU, is
        the cost; the scan gives ``io.concurrency``).
    optional
        Those of ``bands`` checked only where an item has them (e.g. ``mask`` when scenes
        without a quality mask are scanned as clear, ``masks: assume-clear``).

    Returns
    -------
    (good items, failures)
        Items in their input order, and one :class:`SceneFailure` per scene left out.
    """
    set_gdal_env()
    reasons = _check_items(items, bands, threads=threads, profile=profile, signer=signer, optional=optional)
    good, failures = [], []
    for item, reason in zip(items, reasons):
        if reason is None:
            good.append(item)
        else:
            log.info("scene %s left out: %s", item.id, reason)  # reported once, at the end (failed: …)
            failures.append(SceneFailure(item.id, reason))
    return good, failures


def find_unreadable(
    items: list[pystac.Item], bands: tuple[str, ...], bbox_4326: tuple[float, float, float, float], *,
    threads: int = 4, profile: object | None = None, signer=None, optional: tuple[str, ...] = (),
) -> list[SceneFailure]:
    """The scenes whose ``bands`` fail to decode over ``bbox_4326`` (lon/lat, the scan's area).

    :func:`probe_items` reads one block per asset; a file damaged in the middle passes it and
    fails only when the scan reads it, inside a Dask task whose error does not name the file.
    The scan then calls this: every pixel of every asset over the area is read (threads), and
    the scenes that fail are returned, to be left out and reported. Costs one read of the area.
    """
    set_gdal_env()
    reasons = _check_items(items, bands, threads=threads, profile=profile, signer=signer, read_bbox=bbox_4326, optional=optional)
    return [SceneFailure(it.id, r) for it, r in zip(items, reasons) if r is not None]
