from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import odc.stac
import pandas as pd
import pystac
import xarray as xr
import rasterio
from dask.array.core import normalize_chunks
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

import indices
from pipelines import _io, _native
from pipelines._bands import REFLECTANCE_BANDS, MaskInfo, ParsedItem, parse_item
from pipelines._profiles import Profile
from redline.errors import LocalHrefWarning, StacError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemScaling:
    """How one item's DN become surface reflectance: ``refl = DN * scale + offset``.

    Parsed once from the item's ``raster:bands`` (STAC 1.0) at the boundary; ``nodata`` is the
    DN that marks no data. Recorded per item in the manifest.
    """

    item_id: str
    band: str
    scale: float
    offset: float
    nodata: float | None
    asset: str | None = None
    source: str | None = None
    reason: str | None = None


def asset_for(item: pystac.Item, band: str) -> pystac.Asset:
    """The asset of ``band`` (an asset key, or a common name or name in ``eo:bands``); StacError
    when the item has none."""
    if band in item.assets:
        return item.assets[band]
    for asset in item.assets.values():
        for b in asset.extra_fields.get("eo:bands", []) or []:
            if b.get("common_name") == band or b.get("name") == band:
                return asset
    raise StacError(f"item {item.id}: no asset for band '{band}' (asset keys: {', '.join(item.assets)}); use a profile that maps it")


def item_scaling(item: pystac.Item, band: str) -> ItemScaling:
    """Scale, offset and nodata of ``band`` (a common name) in ``item``, decided by
    :func:`pipelines._bands.parse_item` (declared ``raster:bands`` / ``raster:scale``, or the
    collection's rule), with the asset, the source and the reason."""
    parsed = parse_item(item)
    if band not in parsed.bands:
        raise StacError(f"item {item.id}: no asset for band '{band}' (asset keys: {', '.join(item.assets)}); use a profile that maps it")
    b = parsed.bands[band]
    return ItemScaling(item.id, band, b.scale, b.offset, b.nodata, b.asset, b.source, b.reason)


def solar_day(item: pystac.Item) -> np.datetime64:
    """The local solar date of an item (UTC time shifted by longitude / 15 h), as odc-stac groups."""
    lon = 0.5 * (item.bbox[0] + item.bbox[2]) if item.bbox else 0.0
    t = pd.Timestamp(item.datetime).tz_convert(None) if pd.Timestamp(item.datetime).tzinfo else pd.Timestamp(item.datetime)
    return np.datetime64((t + pd.Timedelta(hours=lon / 15.0)).normalize(), "ns")


def local_href_patch(url: str) -> str:
    """Read a bare local path that a STAC API turned into ``http://host/abs/path`` as the file.

    By URL rules a bare ``/abs/path.tif`` href served by an API resolves against the API's
    host and 404s. When the local file exists, warn once and read the file instead.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.hostname in ("127.0.0.1", "localhost"):
        candidate = Path(parsed.path)
        if candidate.is_absolute() and candidate.exists():
            warnings.warn(
                f"asset href {url} is a bare local path resolved against the API host; reading {candidate}",
                LocalHrefWarning,
                stacklevel=2,
            )
            return str(candidate)
    if parsed.scheme == "file":
        return parsed.path
    return url


def load_reflectance(
    items: list[pystac.Item],
    geobox: GeoBox,
    *,
    bands: tuple[str, ...] = REFLECTANCE_BANDS,
    mask_band: str = "scl",
    chunk: int = 256,
) -> tuple[xr.Dataset, list[ItemScaling]]:
    """Load items lazily onto ``geobox`` as surface reflectance.

    Parameters
    ----------
    items
        STAC Items of one collection family (e.g. sentinel-2-c1-l2a).
    geobox
        The analysis grid (a UTM CRS, metres).
    bands
        Common band names to load; each becomes float32 reflectance (0–1), NaN where no data.
    mask_band
        The quality band (Sentinel-2 SCL), loaded as uint8 with nearest resampling.
    chunk
        Spatial chunk edge in pixels; time is one chunk per date.

    Returns
    -------
    (xarray.Dataset, list of ItemScaling)
        Dataset with dims ``(time, y, x)`` of dask arrays, one time step per solar day, and the
        scaling applied to each item and band (for the manifest). Nothing is read yet.
    """
    if not items:
        raise StacError("no scenes to load; widen the date window or the cloud-cover limit")
    scalings = [item_scaling(it, b) for it in items for b in bands]
    raw = odc.stac.load(
        items,
        bands=[*bands, mask_band],
        geobox=geobox,
        chunks={"x": chunk, "y": chunk},
        groupby="solar_day",
        resampling={mask_band: "nearest", "*": "bilinear"},
        patch_url=local_href_patch,
        fail_on_error=True,
    )
    days = pd.DatetimeIndex(raw.time.values).normalize()
    out = {}
    for band in bands:
        per_item = {(solar_day(it)): item_scaling(it, band) for it in items}
        scale = xr.DataArray(np.array([per_item[np.datetime64(d, "ns")].scale for d in days], "float32"), dims="time", coords={"time": raw.time})
        offset = xr.DataArray(np.array([per_item[np.datetime64(d, "ns")].offset for d in days], "float32"), dims="time", coords={"time": raw.time})
        nodata = raw[band].attrs.get("nodata", 0)
        dn = raw[band]
        refl = (dn.astype("float32") * scale + offset).where(dn != nodata)
        out[band] = refl.astype("float32").assign_attrs(units="1", long_name=f"{band} surface reflectance")
    out[mask_band] = raw[mask_band]
    ds = xr.Dataset(out, coords=raw.coords, attrs={"crs": str(geobox.crs)})
    return ds, scalings


@dataclass(frozen=True)
class MaskRules:
    """Which quality-mask values count as not clear.

    ``scl_classes``: Sentinel-2 SCL classes (default no data, saturated, cloud shadow, cloud
    medium/high, cirrus, snow); ``qa_flags``: flags of bit-packed QA bands (Landsat QA_PIXEL:
    fill, dilated cloud, cirrus, cloud, cloud shadow, snow); ``class_names``: class names of
    class-coded masks with ``classification:classes`` (e.g. Fmask).
    """

    scl_classes: tuple[int, ...] = indices.DEFAULT_SCL_MASK
    qa_flags: tuple[str, ...] = indices.DEFAULT_QA_FLAGS
    class_names: tuple[str, ...] = indices.DEFAULT_MASKED_CLASS_NAMES


@dataclass
class SeriesLoad:
    """The result of :func:`load_series`.

    ``data``: ``(time, y, x)`` dask-backed Dataset with one float32 reflectance variable per
    band (0–1, NaN where no data) and ``clear`` (bool: the item's quality mask says clear and
    the pixel has data); coordinate ``sensor`` along ``time``. ``scalings``: what was applied
    to each item and band (for the manifest). ``skipped``: one line per item left out and why.
    """

    data: xr.Dataset
    scalings: list[ItemScaling]
    parsed: list[ParsedItem]
    skipped: list[str] = field(default_factory=list)


class _HrefPatch:
    """odc-stac ``patch_url``: read local files directly, then sign (picklable for workers)."""

    def __init__(self, signer: Callable[[str], str] | None = None):
        self.signer = signer

    def __call__(self, url: str) -> str:
        url = local_href_patch(url)
        return self.signer(url) if self.signer is not None else url


def asset_href(item: pystac.Item, key: str, profile: Profile | None) -> str:
    """The href of asset ``key``: the profile's alternate href (``alternate_href``) when the
    asset has one, else its own."""
    asset = item.assets[key]
    if profile is not None and profile.alternate_href:
        alt = (asset.extra_fields.get("alternate") or {}).get(profile.alternate_href) or {}
        if alt.get("href"):
            return str(alt["href"])
    return asset.href


def _check_readable(href: str, patch: _HrefPatch) -> str | None:
    """None if GDAL can open ``href`` (header only), else the first line of the error."""
    try:
        with rasterio.open(patch(href)):
            return None
    except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
        msg = str(exc).strip().splitlines()
        return msg[0] if msg else exc.__class__.__name__


#: Order in which sensors win when two observe the same solar day (finer pixels first).
_SENSOR_PRIORITY = {"sentinel-2": 0, "landsat": 1}


def _normalised_item(item: pystac.Item, parsed: ParsedItem, bands: tuple[str, ...], collection: str, profile: Profile | None) -> pystac.Item:
    """A copy of ``item`` whose assets are keyed by common name (and ``mask``), with the
    nodata redline decided, so odc-stac loads every catalogue the same way."""
    out = pystac.Item(
        id=item.id, geometry=item.geometry, bbox=item.bbox, datetime=item.datetime,
        properties={k: v for k, v in item.properties.items() if k.startswith(("proj:", "datetime", "start_datetime", "end_datetime"))},
        collection=collection,
        # odc-stac reads the proj:* fields only of an Item that declares the projection
        # extension; without them it placed every scene by its geometry reprojected and densified
        # into the grid's CRS at every load, ~0.3 s of each tile graph's 1 s (benchmarks/README.md §5c)
        stac_extensions=[e for e in item.stac_extensions if "/projection/" in e],
    )

    def _asset(key: str, nodata, dtype) -> pystac.Asset:
        src = item.assets[key]
        extra = {k: v for k, v in src.extra_fields.items() if k.startswith("proj:")}
        rb: dict = {}
        if nodata is not None:
            rb["nodata"] = nodata
        if dtype:
            rb["data_type"] = dtype
        extra["raster:bands"] = [rb]
        return pystac.Asset(href=asset_href(item, key, profile), media_type=src.media_type, roles=["data"], extra_fields=extra)

    for b in bands:
        info = parsed.bands[b]
        out.add_asset(b, _asset(info.asset, info.nodata, info.data_type))
    if parsed.mask is not None:
        out.add_asset("mask", _asset(parsed.mask.asset, parsed.mask.nodata, parsed.mask.data_type))
    return out


def _clear(mask: xr.DataArray, info: MaskInfo, rules: MaskRules) -> xr.DataArray:
    if info.kind == "scl":
        return indices.clear_mask(mask, rules.scl_classes)
    if info.kind == "bits":
        return indices.qa_bits_clear(mask, info.bitfields, rules.qa_flags)
    clear = indices.classes_clear(mask, info.classes, rules.class_names)
    return clear & (mask != info.nodata) if info.nodata is not None else clear


def _solar_days(times: np.ndarray, lon: float) -> np.ndarray:
    """Local solar date of UTC times at longitude ``lon`` (UTC + lon/15 h), as odc-stac groups."""
    t = pd.DatetimeIndex(times)
    return (t + pd.Timedelta(hours=lon / 15.0)).normalize().values


#: Variables that do not decide whether a fused step has data (``lst`` is NaN for Sentinel-2).
_NOT_DATA = ("clear", "lst")


def _with_lst(bands: tuple[str, ...], parsed: ParsedItem) -> tuple[str, ...]:
    """``bands`` plus ``lst`` when the item's thermal band is to be loaded (see :func:`load_series`)."""
    return (*bands, "lst") if "lst" in parsed.bands and "lst" not in bands else tuple(bands)


def _fuse(parts: list[xr.Dataset], lon: float, data_vars: tuple[str, ...] | None = None) -> xr.Dataset:
    """One series from per-group series: sorted by solar day then sensor priority; on a day
    seen by several groups, each pixel takes the first clear observation (else the first
    with data). The fused step keeps the time of the first observation. ``data_vars``: the
    variables that decide whether a step has data (default all but ``clear`` and ``lst``;
    :func:`load_series` gives its required bands, so that an optional band a sensor lacks
    does not make its steps look empty)."""
    combined = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override")
    days = _solar_days(combined.time.values, lon)
    prio = np.array([_SENSOR_PRIORITY.get(str(s).split("+")[0], 9) for s in combined["sensor"].values])
    order = np.lexsort((prio, days))
    combined = combined.isel(time=order)
    days = days[order]
    uniq, first, counts = np.unique(days, return_index=True, return_counts=True)
    if (counts == 1).all():
        return combined
    pieces = []
    for i0, n in zip(first, counts):
        acc = combined.isel(time=slice(i0, i0 + 1))
        for k in range(i0 + 1, i0 + n):
            nxt = combined.isel(time=slice(k, k + 1))
            sensor = f"{acc['sensor'].values[0]}+{nxt['sensor'].values[0]}"
            nxt = nxt.assign_coords(time=acc.time.values, sensor=("time", acc["sensor"].values))
            names = list(data_vars) if data_vars else [v for v in acc.data_vars if v not in _NOT_DATA]
            has = acc[names].to_array("b").notnull().all("b")
            nxt_has = nxt[names].to_array("b").notnull().all("b")
            take = (~acc["clear"] & nxt["clear"] & nxt_has) | (~has & nxt_has)
            acc = xr.where(take, nxt, acc).assign_coords(sensor=("time", [sensor]))
            if "lst" in acc:  # temperature from any sensor that saw the pixel clear, though its reflectance lost
                acc["lst"] = xr.where(acc["lst"].isnull() & nxt["clear"] & nxt["lst"].notnull(), nxt["lst"], acc["lst"])
            acc["clear"] = acc["clear"].astype(bool)
        pieces.append(acc)
    return xr.concat(pieces, dim="time")


def _even(n: int, edge: int) -> int:
    """The chunk size that cuts ``n`` pixels into the fewest near-equal chunks of at most ``edge``."""
    return -(-n // -(-n // max(edge, 1)))


def _split_chunks(chunks: tuple[int, ...], edge: int) -> tuple[int, ...]:
    """Each chunk of ``chunks`` split into the fewest near-equal pieces of at most ``edge``
    (e.g. ``(608,)`` at 512 → ``(304, 304)``), so that a rechunk only slices."""
    out: list[int] = []
    for c in chunks:
        n = -(-c // edge)
        out += [c // n + (1 if i < c % n else 0) for i in range(n)]
    return tuple(out)


def _read_band(items: list[pystac.Item], band: str, geobox: GeoBox, resampling: str, patch: _HrefPatch, concurrency: int) -> np.ndarray:
    """All dates of ``band`` of ``items`` on ``geobox``, read now: odc-stac's non-Dask load, one
    scene read per thread of the process's I/O pool (``concurrency`` threads), while this task
    has left the worker's compute threads (:func:`pipelines._io.seceded`). DN array
    ``(time, y, x)``, one step per solar day."""
    with _io.seceded():
        ds = odc.stac.load(items, bands=[band], geobox=geobox, groupby="solar_day", resampling={"mask": "nearest", "*": resampling},
                           patch_url=patch, fail_on_error=True, pool=_io.io_pool(concurrency))
    out = ds[band].values
    _io.add_decoded(out.nbytes)
    return out


def _remote_read(lazy: xr.Dataset, items: list[pystac.Item], names: list[str], geobox: GeoBox, resampling: str, patch: _HrefPatch,
                 concurrency: int) -> xr.Dataset:
    """``lazy`` (odc-stac's Dask load: its dates, coordinates and dtypes) with each band's data
    from one :func:`_read_band` task instead (named after the band, as odc-stac's, for the
    progress bar's scene count)."""
    import dask
    import dask.array as da
    from dask.base import tokenize

    out = {}
    for b in names:
        key = f"{b}-{tokenize(items, b, geobox, resampling, 'redline-io')}"
        task = dask.delayed(_read_band, pure=True)(items, b, geobox, resampling, patch, concurrency, dask_key_name=key)
        arr = da.from_delayed(task, shape=lazy[b].shape, dtype=lazy[b].dtype, name=f"{key}-array")
        out[b] = lazy[b].copy(data=arr)
    return xr.Dataset(out, coords=lazy.coords, attrs=lazy.attrs)


def load_series(
    items: list[pystac.Item],
    geobox: GeoBox,
    *,
    bands: tuple[str, ...] = REFLECTANCE_BANDS,
    optional_bands: tuple[str, ...] = (),
    mask: MaskRules | None = MaskRules(),
    profile: Profile | None = None,
    signer: Callable[[str], str] | None = None,
    resampling: str = "bilinear",
    chunk: int = 512,
    check_assets: bool = True,
    thermal: bool = False,
    time_chunk: int = 8,
    read_chunk: int = 2048,
    native: bool = True,
    io_concurrency: int | None = _io.DEFAULT_CONCURRENCY,
) -> SeriesLoad:
    """Load items of one or several collections and sensors lazily onto ``geobox`` as one
    surface-reflectance time series with a clear-sky mask.

    Each item is parsed once (:func:`pipelines._bands.parse_item`): bands by common name,
    scale/offset/nodata per item, its quality mask. Items with the same sensor, mask kind and
    scaling are loaded together by odc-stac (one time step per solar day), scaled
    (``DN * scale + offset``, float32, NaN where DN is nodata) and masked with their own mask
    (Sentinel-2 SCL classes, QA bits, or classes). Groups are then merged into one series:
    a solar day seen by several sensors becomes one time step in which each pixel takes the
    first clear observation, Sentinel-2 before Landsat. No band adjustment between sensors
    is applied (see the README, "Sentinel-2 and Landsat in one series").

    Parameters
    ----------
    items
        STAC Items (any collections the profiles know).
    geobox
        The analysis grid (a projected CRS, metres). Bands of coarser resolution are
        resampled onto it with ``resampling``; masks with nearest neighbour.
    bands
        Common band names to load; an item without one of them is skipped and reported.
    optional_bands
        Common band names loaded where an item has them (a 4-band sensor beside Sentinel-2,
        composites without SWIR): the steps of items without one are NaN in it, and their
        ``clear`` does not depend on it. Each is a variable of the result, all NaN when no item
        has it. Default none.
    mask
        Which mask values are not clear; ``None``: no quality mask (``clear`` = has data).
        An item without a quality mask asset gets ``clear`` = has data, with a log message.
    profile
        The catalogue's :class:`~pipelines._profiles.Profile` (alternate hrefs, signer).
    signer
        Applied to every href at read time; default ``profile.signer``. Injectable for tests.
    resampling
        Resampling of reflectance bands (``bilinear``, ``nearest``, ``average`` …).
    chunk
        Largest spatial chunk edge of the returned arrays, in pixels: each read chunk is split
        evenly into pieces of at most ``chunk`` (no data moves; the pieces are slices of the
        read). 512 keeps a chunk's detector input at 6 variables × dates × 512² × 4 B
        (≈ 440 MB at 73 dates) within a worker's memory.
    read_chunk
        Largest spatial chunk edge in pixels of the odc-stac read; the grid is cut into the
        fewest near-equal read chunks of at most this edge. odc-stac opens every scene, works
        out its window and sets up its warp once per read chunk and date group, so that
        overhead follows the number of read chunks: one band of the ×16 small preset
        (577 × 608 px, 73 dates) loaded in 1.48 s at 256 px, 0.72 s at 512 and 0.35 s at
        1024 (2 threads). 2048 reads a scan tile (``tiling.max_tile_px`` 1024, at most twice
        that) in one piece per band and date group (benchmarks/README.md, "Read-limit"); a
        read task then holds ``time_chunk`` × tile pixels × 2 B of DN.
    time_chunk
        Solar days per read task (the returned arrays hold all dates in one chunk). One task
        reads ``time_chunk`` scenes of a band and read chunk:
        with one day per task a scan spent most of its time scheduling and moving thousands of
        small arrays between the workers (8 days per chunk made the small preset's eager step
        ~3× faster, same detection fields; benchmarks/README.md).
    native
        Read bands whose pixels are a whole multiple (2–8) of the grid's and lie on its pixel
        lattice (Sentinel-2's 20 m SWIR and SCL on a 10 m grid) at their own resolution and
        upsample them per chunk (:mod:`pipelines._native`: bilinear for reflectance with GDAL's
        weights and no-data handling, nearest for masks) instead of warping every scene with
        GDAL; other bands and grids are warped as before. ``False``: warp everything.
    io_concurrency
        Remote range requests in flight per worker process (``io.concurrency``): each band
        of remote scenes (http(s), s3 …) is read by one task that reads all its scenes through
        the process's I/O thread pool of this many threads, outside the worker's compute
        threads (:mod:`pipelines._io`); local files keep odc-stac's Dask reads of
        ``time_chunk`` scenes. ``None``: odc-stac's Dask reads everywhere. Also the threads of
        the asset check.
    check_assets
        Open each needed asset's header first (threads, GDAL retries/timeouts); an item with
        an asset that cannot be opened (404, timeout, not a raster) is skipped and reported.
    thermal
        Also load the items' thermal band (:attr:`ParsedItem.thermal`, e.g. Landsat Collection 2
        ST_B10) as ``lst``, land-surface temperature in Kelvin (NaN where no data or not clear
        by the item's mask is left to the caller), when at least one item has one; steps of
        items without a thermal band (Sentinel-2) are NaN. The variable is absent otherwise.

    Returns
    -------
    SeriesLoad
        Chunked all dates × at most ``chunk`` × ``chunk`` pixels. Nothing is read beyond the
        asset headers until the caller computes.
    """
    if not items:
        raise StacError("no scenes to load; widen the date window or the cloud-cover limit")
    signer = signer if signer is not None else (profile.signer if profile is not None else None)
    patch = _HrefPatch(signer)
    skipped: list[str] = []
    keep: list[tuple[pystac.Item, ParsedItem]] = []
    optional_bands = tuple(b for b in dict.fromkeys(optional_bands) if b not in bands)
    own: dict[str, tuple[str, ...]] = {}  # item id → the reflectance bands loaded from it (required + its optional ones)
    for it in items:
        p = parse_item(it)
        if thermal and p.thermal is not None:
            p = replace(p, bands={**p.bands, "lst": p.thermal})
        missing = [b for b in bands if b not in p.bands]
        if missing:
            skipped.append(f"{it.id}: no asset for band(s) {', '.join(missing)} (sensor {p.sensor or 'unknown'}, asset keys {', '.join(it.assets)})")
            continue
        own[it.id] = (*bands, *(b for b in optional_bands if b in p.bands))
        keep.append((it, p))
    if check_assets and keep:
        hrefs = [(i, key, asset_href(it, key, profile)) for i, (it, p) in enumerate(keep)
                 for key in [p.bands[b].asset for b in _with_lst(own[it.id], p)] + ([p.mask.asset] if (mask is not None and p.mask) else [])]
        with ThreadPoolExecutor(max_workers=io_concurrency or 8) as pool:
            errors = list(pool.map(lambda h: _check_readable(h[2], patch), hrefs))
        bad: dict[int, str] = {}
        for (i, key, href), err in zip(hrefs, errors):
            if err is not None and i not in bad:
                bad[i] = f"{keep[i][0].id}: asset '{key}' ({href}) cannot be read: {err}"
        for i, msg in bad.items():
            log.info("scene skipped: %s", msg)  # reported once, at the end (failed: …)
        skipped.extend(bad.values())
        keep = [kp for i, kp in enumerate(keep) if i not in bad]
    if not keep:
        raise StacError("no readable scenes to load: " + "; ".join(skipped[:3]) + ("" if len(skipped) <= 3 else f" … ({len(skipped)} in all)"))

    groups: dict[tuple, list[tuple[pystac.Item, ParsedItem]]] = {}
    for it, p in keep:
        # the band set is part of the signature: items without an optional band are a group of their own
        groups.setdefault((own[it.id], p.scaling_signature(_with_lst(own[it.id], p))), []).append((it, p))
    lon = float(geobox.extent.to_crs("EPSG:4326").centroid.coords[0][0])
    parts = []
    scalings: list[ItemScaling] = []
    for g, ((refl_bands, sig), members) in enumerate(sorted(groups.items(), key=lambda kv: (_SENSOR_PRIORITY.get(kv[0][1][0], 9), str(kv[0][1]), kv[0][0]))):
        p0 = members[0][1]
        gbands = _with_lst(refl_bands, p0)
        norm = [_normalised_item(it, p, gbands, f"redline-group-{g}", profile) for it, p in members]
        has_mask = mask is not None and p0.mask is not None
        if mask is not None and p0.mask is None:
            log.info("%d %s item(s) have no quality mask asset; clear = has data", len(members), p0.sensor or "unknown")
        wanted = [*gbands, *(["mask"] if has_mask else [])]
        # bands coarser than the grid by a whole factor, on the grid's pixel lattice: read at
        # their own resolution (no warp) and upsampled per chunk (pipelines._native)
        coarse = {b: g for b in wanted if native and resampling in ("bilinear", "nearest")
                  for g in [_native.coarse_grid(norm, b, geobox)] if g is not None}
        fine = [b for b in wanted if b not in coarse]
        fine_chunks = tuple(_split_chunks(normalize_chunks(_even(n, read_chunk), (n,))[0], chunk) for n in geobox.shape)
        src: dict[str, xr.DataArray] = {}
        raw = None

        def read(names: list[str], gb: GeoBox) -> xr.Dataset:
            # on a coarse band's own lattice the read is a paste: its resampling only matters
            # where a file does not sit where its proj:transform says
            lazy = odc.stac.load(
                norm, bands=names, geobox=gb, chunks={"y": _even(gb.shape.y, read_chunk), "x": _even(gb.shape.x, read_chunk), "time": time_chunk},
                groupby="solar_day", resampling={"mask": "nearest", "*": resampling}, patch_url=patch, fail_on_error=True,
            )
            if not io_concurrency or not any(_io.is_remote(it.assets[b].href) for it in norm for b in names):
                return lazy
            return _remote_read(lazy, norm, names, gb, resampling, patch, io_concurrency)

        if fine:
            # the DN (2 B, the mask 1 B) gathered into all dates per compute chunk before scaling
            # and masking: half the bytes of float32 reflectance move between the workers
            raw = read(fine, geobox).chunk({"time": -1, "y": fine_chunks[0], "x": fine_chunks[1]})
            src.update({b: raw[b] for b in fine})
        for grid in dict.fromkeys(coarse.values()):  # each coarse lattice once, in band order
            names = [b for b, g in coarse.items() if g == grid]
            low = read(names, grid.geobox).chunk({"time": -1})
            src.update({b: low[b] for b in names})
        times = next(iter(src.values()))["time"]
        if any(not np.array_equal(a["time"].values, times.values) for a in src.values()):  # the same items, grouped alike
            raise RuntimeError("the native-resolution read gave other dates than the grid read; load with native=False")

        def scaled(b: str) -> xr.DataArray:
            info = p0.bands[b]
            dn = src[b]
            v = dn.astype("float32") * np.float32(info.scale) + np.float32(info.offset)
            if info.nodata is not None:
                v = v.where(dn != info.nodata) if np.isfinite(info.nodata) else v.where(dn.notnull())
            v = v.astype("float32")
            return _native.upsample(v, geobox, coarse[b], fine_chunks, resampling) if b in coarse else v

        out = {b: scaled(b).assign_attrs(units="1", long_name=f"{b} surface reflectance") for b in refl_bands}
        if "lst" in gbands:
            out["lst"] = scaled("lst").assign_attrs(units="K", long_name="land-surface temperature")
        has_data = xr.concat([out[b].notnull() for b in refl_bands], "b").all("b")
        if has_mask:
            clear = _clear(src["mask"], p0.mask, mask)
            clear = _native.upsample(clear, geobox, coarse["mask"], fine_chunks, "nearest") if "mask" in coarse else clear
            out["clear"] = clear & has_data
        else:
            out["clear"] = has_data
        coords = raw.coords if raw is not None else {"time": times, **xr_coords(geobox)}
        ds = xr.Dataset(out, coords=coords).assign_coords(sensor=("time", [p0.sensor or "unknown"] * times.size))
        parts.append(ds)
        for it, p in members:
            for b in gbands:
                i = p.bands[b]
                scalings.append(ItemScaling(it.id, b, i.scale, i.offset, i.nodata, i.asset, i.source, i.reason))
    # optional bands an item lacks, and the thermal band of sensors without one: NaN (lazy)
    parts = [part.assign({b: xr.full_like(part[bands[0]], np.nan).assign_attrs(units="1", long_name=f"{b} surface reflectance")
                          for b in optional_bands if b not in part}) for part in parts]
    if any("lst" in part for part in parts):
        parts = [part if "lst" in part else part.assign(lst=xr.full_like(part[bands[0]], np.nan).assign_attrs(units="K", long_name="land-surface temperature"))
                 for part in parts]
    order = [*bands, *optional_bands, *(["lst"] if "lst" in parts[0] else []), "clear"]
    parts = [part[order] for part in parts]
    data = parts[0] if len(parts) == 1 else _fuse(parts, lon, tuple(bands))
    data = data.drop_vars([c for c in data.coords if c not in ("time", "y", "x", "sensor", "spatial_ref")])
    # one chunk in time: every later step (mask, indices, detector, composite, assessment
    # inputs) needs a pixel's whole series, and one task per variable and spatial chunk
    # instead of one per date group cut the scan's tasks and transfers (benchmarks/README.md).
    # A single sensor group already is (its DN were gathered above): this only rechunks the
    # series fused from several groups, which _fuse concatenates in time
    data = data.chunk({"time": -1, **{d: _split_chunks(data.chunks[d], chunk) for d in ("y", "x")}})
    data.attrs["crs"] = str(geobox.crs)
    return SeriesLoad(data=data, scalings=scalings, parsed=[p for _, p in keep], skipped=skipped)
