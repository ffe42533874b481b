"""The scan: search → lazy load → mask → indices → baseline + detection → alerts → register →
assessment → outputs (design.md §2). Library code up to :func:`_compute` builds a Dask graph;
:func:`_compute` is the one place that computes, and the writer functions below it write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox

import aoi
import indices
import pipelines
from redline import assess, ei, provenance
from redline.alerts import ALERT_COLUMNS, alerts_from_fields
from redline.config import ScanConfig
from redline.detect import FIELDS, baseline_model, detect, stack_indices
from redline.errors import RasterError, SmallZoneWarning, StacError
from redline.rectify import recheck_rectified
from redline.register import Register, merge_alerts

__all__ = ["ScanResult", "run_scan", "scan_id_for"]

log = logging.getLogger(__name__)

DETECTION_RASTERS = {
    # output file stem: (field, dtype, nodata, description)
    "disturbance_date": ("first_date", "int32", -1, "first anomalous observation, days since 1970-01-01"),
    "magnitude": ("magnitude", "float32", np.nan, "index drop of the triggering index (index units)"),
    "n_confirm": ("n_confirm", "int16", -1, "confirming anomalous observations"),
    "n_clear_monitor": ("n_mon_clear", "int16", -1, "clear observations in the monitor window"),
}


@dataclass
class ScanResult:
    """What a scan produced (paths) and a summary for the CLI."""

    scan_id: str
    out_dir: Path
    alerts: gpd.GeoDataFrame
    zone_stats: pd.DataFrame
    admin_stats: pd.DataFrame
    n_items: int
    register: Path
    map_html: Path | None
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    up_to_date: bool = False  # nothing new since the scan already in ``out_dir``: nothing was redone


def scan_id_for(cfg: ScanConfig) -> str:
    """Stable id of a scan: config name and monitor end date (re-running it is the same scan)."""
    return f"{cfg.name}-{cfg.monitor.end:%Y%m%d}"


def _analysis_geobox(zones_utm: gpd.GeoDataFrame, resolution: float) -> GeoBox:
    w, s, e, n = zones_utm.total_bounds
    pad = 2 * resolution
    return GeoBox.from_bbox((w - pad, s - pad, e + pad, n + pad), crs=zones_utm.crs, resolution=resolution)


def _graph(cfg: ScanConfig, items: list[pystac.Item], geobox: GeoBox) -> tuple[xr.Dataset, xr.Dataset, list]:
    det, composite, scalings, _, _, _ = _graph_parts(cfg, items, geobox)
    return det, composite, scalings


def _graph_parts(cfg: ScanConfig, items: list[pystac.Item], geobox: GeoBox, *, check_assets: bool = True):
    """The lazy part: load (per-profile scaling, quality masks, sensors merged), mask, indices,
    detection and the monitor true-colour composite. Also returns the scenes skipped.
    ``check_assets=False`` when the items were already probed (:func:`pipelines.probe_items`)."""
    loaded = pipelines.load_series(
        items, geobox, profile=pipelines.get_profile(cfg.stac.profile),
        mask=pipelines.MaskRules(scl_classes=tuple(cfg.detection.scl_mask_classes)), check_assets=check_assets, thermal=True,
    )
    ds, scalings = loaded.data, loaded.scalings
    bands = list(pipelines.REFLECTANCE_BANDS)
    clear = ds["clear"] & ds[bands].to_array("band").notnull().all("band")
    if cfg.detection.mask_dilation_m > 0:
        clear = indices.dilate_mask(clear, cfg.detection.mask_dilation_m, cfg.resolution)
    # the thermal band (land-surface temperature, K; Landsat only) is masked like reflectance
    refl = ds[bands + (["lst"] if "lst" in ds else [])].where(clear)
    idx = indices.compute_indices(refl, ["NDVI", "MNDWI", "NBR", "BI", "NDBI"])
    stack = stack_indices(idx, refl)
    det = detect(
        stack,
        baseline=(cfg.baseline.start, cfg.baseline.end),
        monitor=(cfg.monitor.start, cfg.monitor.end),
        indices=tuple(cfg.detection.indices),
        z_threshold=cfg.detection.z_threshold,
        consecutive=cfg.detection.consecutive,
        harmonics=cfg.detection.harmonics,
        trend=cfg.detection.trend,
        min_baseline_obs=cfg.detection.min_baseline_obs,
    )
    mon = refl[["red", "green", "blue"]].sel(time=slice(str(cfg.monitor.start), str(cfg.monitor.end)))
    composite = xr.apply_ufunc(
        _nanmedian, mon.chunk({"time": -1}), input_core_dims=[["time"]], dask="parallelized", output_dtypes=[np.float32]
    )
    return det, composite, scalings, refl, stack, loaded.skipped


#: Scans of the area after a read failure (each leaves out the scenes a full re-read found bad).
_READ_RETRIES = 2


def _is_read_error(exc: BaseException) -> bool:
    """True for a raster read/decode error, also when Dask re-raised it from a worker as a plain
    ``Exception('RasterioIOError(...)')``."""
    return isinstance(exc, rasterio.errors.RasterioError) or any(
        k in f"{type(exc).__name__} {exc}" for k in ("RasterioIOError", "RasterioError", "Read failed", "TIFFRead", "IReadBlock"))


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN; pixels never seen clear stay NaN, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a, axis=-1).astype("float32")


def _compute(det: xr.Dataset, composite: xr.Dataset, extra: xr.Dataset | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], xr.Dataset | None]:
    """The one eager step of a scan: compute the detection fields, the composite and ``extra``
    (the assessment inputs) together, so that every scene is read once."""
    det_np, comp_np, extra_np = dask.compute(det, composite, extra)
    return ({k: det_np[k].values for k in FIELDS}, {k: comp_np[k].values for k in ("red", "green", "blue")}, extra_np)


def _compute_with_coverage(
    det: xr.Dataset, composite: xr.Dataset, refl: xr.Dataset, extra: xr.Dataset | None = None, *, progress: bool | None = False, n_scenes: int = 0
) -> tuple[dict, dict, xr.Dataset | None, pd.Series]:
    """:func:`_compute` plus, per solar day, the number of clear pixels on the analysis grid
    (computed in the same pass; a day with none is recorded in the manifest). ``progress``:
    show a bar of tasks and scenes read on stderr (``None``: when it is a terminal)."""
    clear = refl["red"].notnull().sum(("y", "x"))
    det_np, comp_np, extra_np, clear_np = pipelines.compute_with_progress([det, composite, extra, clear], n_scenes=n_scenes, show=progress)
    counts = pd.Series(clear_np.values.astype(int), index=pd.DatetimeIndex(clear_np["time"].values).normalize())
    return ({k: det_np[k].values for k in FIELDS}, {k: comp_np[k].values for k in ("red", "green", "blue")}, extra_np, counts)


def _scenes_without_clear_pixels(items: list[pystac.Item], clear_px: pd.Series) -> list[dict[str, str]]:
    """Scenes that were read but gave no clear pixel on the analysis grid (the zones' bounding
    box): all no-data, or all cloud/shadow in the quality band. They add nothing, and are listed
    in the manifest, not hidden."""
    empty = {d for d, n in clear_px.items() if n == 0}
    out = []
    for it in items:
        day = pd.Timestamp(pipelines._load._solar_day(it))
        if day in empty:
            out.append({"id": it.id, "solar_day": day.date().isoformat()})
    if out:
        log.info("%d scene(s) without any clear pixel on the analysis grid: %s", len(out), ", ".join(o["id"] for o in out))
    return out


def _check_windows(cfg: ScanConfig, items: list[pystac.Item], what: str, failures: list[dict] | None = None) -> None:
    """Both windows need scenes: a monitor window without scenes would report 'no alert'."""
    if not items and failures:
        raise RasterError(f"none of the {len(failures)} scene(s) found can be read (first: {failures[-1]['id']}: {failures[-1]['reason']}); check the assets' hrefs and access")
    for key, win in (("baseline", cfg.baseline), ("monitor", cfg.monitor)):
        dates = sorted((it.datetime or it.common_metadata.start_datetime).date() for it in items)
        if not any(win.start <= d <= win.end for d in dates):
            span = f"{what} scenes span {dates[0]} to {dates[-1]}" if dates else f"no {what} scenes"
            msg = f"{key} window {win.start} to {win.end} has no {what} scenes ({span}); move {key}.start/{key}.end or check stac.collections"
            if failures:
                raise RasterError(msg)
            raise StacError(msg)


def _zones_in_scenes(zones: gpd.GeoDataFrame, items: list[pystac.Item]) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Drop zones that no scene footprint touches (reported as failed zones, not scanned)."""
    import shapely

    footprints = shapely.union_all([shapely.geometry.shape(it.geometry) for it in items if it.geometry])
    z4326 = zones.to_crs(4326)
    seen = z4326.geometry.intersects(footprints).values
    failures = [
        {"kind": "zone", "id": zid, "reason": f"outside every scene found ({len(items)} scenes); not assessed, check the zone's geometry and CRS"}
        for zid in zones.loc[~seen, "zone_id"]
    ]
    for f in failures:
        log.warning("zone %s: %s", f["id"], f["reason"])
    if not seen.any():
        raise StacError(f"no zone lies inside any of the {len(items)} scenes found; check the zones' CRS and stac.collections")
    return zones.loc[seen].reset_index(drop=True), failures


def _warn_small_zones(zones_utm: gpd.GeoDataFrame, resolution: float) -> None:
    """Zones smaller than one analysis pixel are assessed from partial pixels (exactextract
    coverage fractions) and can hold no alert; say so rather than let it pass unnoticed."""
    small = zones_utm.geometry.area < resolution**2
    for zid, area in zip(zones_utm.loc[small, "zone_id"], zones_utm.loc[small].geometry.area):
        warnings.warn(
            f"zone {zid}: {area:.0f} m² is smaller than one {resolution:g} m pixel ({resolution**2:.0f} m²); "
            "statistics come from partial pixels and no alert can reach detection.min_area_m2",
            SmallZoneWarning,
            stacklevel=3,
        )



def _write_cog(path: Path, data: np.ndarray, geobox: GeoBox, *, nodata: float | int | None, description: str = "", band_descriptions: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[None]
    profile = dict(
        driver="COG", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype.name,
        crs=str(geobox.crs), transform=geobox.transform, nodata=nodata, compress="deflate", blocksize=256,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if description:
            dst.update_tags(description=description)
        for i, text in enumerate(band_descriptions or []):
            dst.set_band_description(i + 1, text)


def _true_colour(rgb: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB of reflectance with one fixed stretch (0–0.3 reflectance → 1–255, gamma 1/1.6),
    the same for every scan so colours compare across scans; 0 = no data."""
    stack = np.stack([rgb["red"], rgb["green"], rgb["blue"]])
    valid = np.isfinite(stack).all(0)
    scaled = np.clip(np.nan_to_num(stack) / 0.3, 0, 1) ** (1 / 1.6)
    out = (1 + scaled * 254).astype("uint8")
    out[:, ~valid] = 0
    return out


def _write_rasters(out: Path, fields: dict[str, np.ndarray], rgb: dict[str, np.ndarray], geobox: GeoBox) -> dict[str, Path]:
    rdir = out / "rasters"
    paths: dict[str, Path] = {}
    for stem, (fname, dtype, nodata, desc) in DETECTION_RASTERS.items():
        data = fields[fname]
        data = np.where(np.isfinite(data), data, nodata).astype(dtype)
        _write_cog(rdir / f"{stem}.tif", data, geobox, nodata=nodata, description=desc)
        paths[stem] = rdir / f"{stem}.tif"
    fvc, soil, veg = assess.fvc(fields["ndvi_mon_gs"])
    continuous = {
        "ndvi_baseline": (fields["ndvi_base_gs"], "growing-season mean NDVI of the baseline window"),
        "ndvi_monitor": (fields["ndvi_mon_gs"], "growing-season mean NDVI of the monitor window"),
        "fvc_monitor": (fvc, f"fractional vegetation cover, NDVI soil {soil:.3f} / veg {veg:.3f}"),
        "observed": ((np.nan_to_num(fields["n_mon_clear"]) >= 1).astype("float32"), "1 if seen clear at least once in the monitor window"),
    }
    for stem, (data, desc) in continuous.items():
        _write_cog(rdir / f"{stem}.tif", data.astype("float32"), geobox, nodata=np.nan, description=desc)
        paths[stem] = rdir / f"{stem}.tif"
    _write_cog(rdir / "true_colour_monitor.tif", _true_colour(rgb), geobox, nodata=0, description="monitor-window median true colour")
    paths["true_colour_monitor"] = rdir / "true_colour_monitor.tif"
    return paths


def _write_catalog(out: Path, scan_id: str, bbox: tuple[float, ...], geometry: dict, when: dt.datetime, files: list[Path]) -> Path:
    """A STAC catalogue of the outputs: one Item for the scan with an asset per output file."""
    cat = pystac.Catalog(id=scan_id, description=f"redline scan {scan_id}: alerts, statistics and rasters")
    item = pystac.Item(id=scan_id, geometry=geometry, bbox=list(bbox), datetime=when, properties={"redline:scan_id": scan_id})
    media = {".tif": pystac.MediaType.COG, ".geojson": pystac.MediaType.GEOJSON, ".csv": "text/csv", ".html": pystac.MediaType.HTML, ".gpkg": pystac.MediaType.GEOPACKAGE}
    for f in files:
        rel = f.relative_to(out).as_posix()
        item.add_asset(rel.replace("/", "_").rsplit(".", 1)[0], pystac.Asset(href=rel, media_type=media.get(f.suffix), roles=["data"]))
    cat.add_item(item)
    cat.normalize_hrefs(str(out))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"


#: Margin around an alert in its chips, metres.
CHIP_MARGIN_M = 150.0
_FIGURE_INDEX = {"water_loss": "MNDWI", "fire": "NBR"}  # others: NDVI


def _dates_seen(win: np.ndarray, sel: np.ndarray, days: np.ndarray) -> str | None:
    """``first/last`` ISO dates among ``days[sel]`` on which the chip window had a clear pixel."""
    seen = sel & np.isfinite(win).any(axis=(0, 2, 3))
    return f"{days[seen].min()}/{days[seen].max()}" if seen.any() else None


def _alert_products(out: Path, alerts_utm: gpd.GeoDataFrame, refl: xr.Dataset, stack: xr.DataArray, geobox: GeoBox, cfg: ScanConfig) -> dict[str, tuple[str, str, str | None, str | None]]:
    """Before/after chips and the index time-series figure of each alert (the scan writer's
    second and last eager step: small windows around the alerts and their centre pixels).
    Returns alert_id → (before chip, after chip, before dates, after dates); the dates are the
    first/last clear dates that went into each chip's median composite."""
    import maps

    if alerts_utm.empty:
        return {}
    inv = ~geobox.transform
    height, width = geobox.shape
    rgb = refl[["red", "green", "blue"]].to_array("band")
    windows, centres = [], []
    for a in alerts_utm.itertuples():
        w, s, e, n = a.geometry.bounds
        c0, r0 = inv * (w - CHIP_MARGIN_M, n + CHIP_MARGIN_M)
        c1, r1 = inv * (e + CHIP_MARGIN_M, s - CHIP_MARGIN_M)
        r0, c0 = max(int(r0), 0), max(int(c0), 0)
        r1, c1 = min(int(np.ceil(r1)), height), min(int(np.ceil(c1)), width)
        windows.append((r0, r1, c0, c1))
        p = a.geometry.representative_point()
        cc, rr = inv * (p.x, p.y)
        centres.append((min(int(rr), height - 1), min(int(cc), width - 1)))
    lazy_windows = [rgb.isel(y=slice(r0, r1), x=slice(c0, c1)) for r0, r1, c0, c1 in windows]
    series = stack.isel(y=xr.DataArray([r for r, _ in centres], dims="alert"), x=xr.DataArray([c for _, c in centres], dims="alert"))
    computed = dask.compute(*lazy_windows, series)
    series_np = computed[-1]
    times = stack["time"].values
    days = times.astype("datetime64[D]")
    in_base = (days >= np.datetime64(cfg.baseline.start)) & (days <= np.datetime64(cfg.baseline.end))
    in_mon = (days >= np.datetime64(cfg.monitor.start)) & (days <= np.datetime64(cfg.monitor.end))
    products = {}
    for k, a in enumerate(alerts_utm.itertuples()):
        r0, r1, c0, c1 = windows[k]
        win = computed[k].values  # (band, time, y, x)
        first = np.datetime64(a.first_detected)
        before_t = (days < first) & (days >= first - np.timedelta64(365, "D"))
        after_t = (days >= first) & in_mon
        rings = []
        for poly in getattr(a.geometry, "geoms", [a.geometry]):
            xy = np.array(poly.exterior.coords)
            cols, rows = inv * (xy[:, 0], xy[:, 1])
            rings.append(np.column_stack([np.asarray(cols) - c0 - 0.5, np.asarray(rows) - r0 - 0.5]))
        paths = []
        for tag, sel in (("before", before_t), ("after", after_t)):
            comp = _nanmedian(np.moveaxis(win[:, sel], 1, -1)) if sel.any() else np.full(win.shape[:1] + win.shape[2:], np.nan, "float32")
            rel = f"chips/{a.alert_id}_{tag}.png"
            maps.render_chip(out / rel, comp, rings, f"{a.alert_id} {tag}")  # ASCII: no CJK font needed
            paths.append(rel)
        var = _FIGURE_INDEX.get(a.disturbance_type, "NDVI")
        values = series_np.sel(var=var).isel(alert=k).values.astype("float64")
        grid = np.arange(days.min(), days.max() + np.timedelta64(1, "D"), np.timedelta64(5, "D")).astype("datetime64[ns]")
        model, sigma = baseline_model(times, values, in_base, var=var, harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, at=grid)
        maps.render_timeseries(
            out / "figures" / f"{a.alert_id}.png", times, values, grid, model, sigma, index=var,
            z_threshold=cfg.detection.z_threshold, first_detected=str(a.first_detected), monitor_start=str(cfg.monitor.start),
            title=f"{a.alert_id} · {a.disturbance_type} · {var} at the alert centre",
        )
        products[a.alert_id] = (paths[0], paths[1], _dates_seen(win, before_t, days), _dates_seen(win, after_t, days))
    return products


def _of_scan(alerts: gpd.GeoDataFrame, scan_id: str) -> np.ndarray:
    """Boolean mask of the alerts this scan found or updated (``scan_ids`` holds it). A plain
    bool array: an empty object Series used as a mask would select columns instead of rows."""
    return np.array([scan_id in str(s or "").split(",") for s in alerts["scan_ids"]], dtype=bool)


def _up_to_date(out: Path, cfg: ScanConfig, config_text: str | None, items: list[pystac.Item], t0: float) -> ScanResult | None:
    """The result already in ``out`` when a scheduled scan finds nothing new.

    A scan run again from cron (``monitor.end: today``) into the same folder redoes nothing when
    the config file is byte-identical to the one of the manifest in ``out`` and the search found
    exactly the scenes that scan used: the register and every output stay as they are. Any new
    scene (or any config change) makes a full scan, which extends the alerts it already holds.
    Only applies when the config text is known (the CLI passes it)."""
    manifest = out / provenance.MANIFEST
    if config_text is None or not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        same_config = record["config"]["sha256"] == hashlib.sha256(config_text.encode()).hexdigest()
        same_items = sorted(i["id"] for i in record["items"]) == sorted(it.id for it in items)
        if not (same_config and same_items and not record.get("failures")):
            return None
        alerts = gpd.read_file(out / "alerts.geojson") if (out / "alerts.geojson").is_file() else gpd.GeoDataFrame()
        zone_stats, admin_stats = pd.read_csv(out / "zone_stats.csv"), pd.read_csv(out / "admin_stats.csv")
    except (OSError, ValueError, KeyError) as exc:
        log.info("%s: previous outputs unreadable (%s); scanning again", out, exc)
        return None
    return ScanResult(
        scan_id=record["scan_id"], out_dir=out, alerts=alerts, zone_stats=zone_stats, admin_stats=admin_stats,
        n_items=len(items), register=Path(record["register"]["path"]), map_html=out / "map.html" if (out / "map.html").is_file() else None,
        seconds=time.monotonic() - t0, up_to_date=True,
    )


def run_scan(
    cfg: ScanConfig, out: Path, *, scheduler: str | None = None, config_text: str | None = None, lock_timeout: float = 30.0,
    progress: bool | None = None,
) -> ScanResult:
    """Run a whole scan and write its outputs (design.md §5) to ``out``.

    Parameters
    ----------
    cfg
        A validated, path-resolved :class:`ScanConfig` whose ``stac.url`` is set.
    out
        Output folder, created only once the config, zones, STAC search and register have been
        checked: bad input writes nothing.
    scheduler
        Address of an existing Dask scheduler; overrides ``cfg.dask.address``.
    config_text
        The config file as given, recorded with its sha256 in the manifest.
    lock_timeout
        Seconds to wait for another scan holding the register's lock before refusing.
    progress
        Show a progress bar (tasks done / total, scenes read) on stderr while the scenes are
        read and computed; ``None``: only when stderr is a terminal.

    Scenes that cannot be read and zones outside every scene are left out and listed in
    ``ScanResult.failures`` and the manifest's ``failures`` (design.md §10); the rest is scanned.
    """
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc)
    out = Path(out)
    if not cfg.stac.url:
        raise StacError("stac.url is not set; give the STAC API URL (or a profile) in the config")
    scan_id = scan_id_for(cfg)

    zones = aoi.read_zones(
        cfg.zones.path, id_field=cfg.zones.id_field, layer=cfg.zones.layer, name_field=cfg.zones.name_field,
        category_field=cfg.zones.category_field, admin_field=cfg.zones.admin_field, tier_field=cfg.zones.tier_field,
    )
    admin = None
    if cfg.admin_units is not None:
        admin = aoi.read_admin_units(cfg.admin_units.path, id_field=cfg.admin_units.id_field, layer=cfg.admin_units.layer, name_field=cfg.admin_units.name_field)
    ei.check_inputs(cfg.assess)  # bad EI inputs (assess.*) fail before anything is searched or computed
    bbox = aoi.zones_bbox_4326(zones)

    search = pipelines.search_items(
        cfg.stac.url, collections=cfg.stac.collections, bbox=bbox,
        datetime=f"{cfg.baseline.start}/{cfg.monitor.end}", max_cloud_cover=cfg.stac.max_cloud_cover,
        timeout=cfg.stac.timeout_s,
    )
    if not search.items:
        raise StacError(
            f"stac: the search on {cfg.stac.url} found no scenes for collections {cfg.stac.collections} between "
            f"{cfg.baseline.start} and {cfg.monitor.end} over the zones; check the window, the zones and max_cloud_cover"
        )
    log.info("%d scenes found (%d before the cloud filter)", len(search.items), search.n_before_cloud_filter)
    previous = _up_to_date(out, cfg, config_text, search.items, t0)
    if previous is not None:
        log.info("%s is up to date: same config and the same %d scenes as its last scan; nothing redone", out, len(search.items))
        return previous
    failures = [{"kind": "item", "id": i, "reason": r} for i, r in search.failures]
    _check_windows(cfg, search.items, "found")
    zones, outside = _zones_in_scenes(zones, search.items)
    failures += outside
    utm = aoi.utm_crs_for(zones)
    zones_utm = zones.to_crs(utm)
    _warn_small_zones(zones_utm, cfg.resolution)
    geobox = _analysis_geobox(zones_utm, cfg.resolution)
    bbox = aoi.zones_bbox_4326(zones)
    profile = pipelines.get_profile(cfg.stac.profile)
    items, unreadable = pipelines.probe_items(search.items, (*pipelines._load.REFLECTANCE_BANDS, "mask", "lst"), profile=profile, signer=profile.signer)
    failures += [{"kind": "scene", "id": f.item_id, "reason": f.reason} for f in unreadable]
    _check_windows(cfg, items, "readable", [f for f in failures if f["kind"] == "scene"])

    register = Register(cfg.register_path or out / "register.gpkg")
    register.check_writable()
    with register.lock(timeout=lock_timeout), pipelines.dask_client(
        scheduler or cfg.dask.address, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, env=profile.gdal_env
    ):
        out.mkdir(parents=True, exist_ok=True)
        for attempt in range(_READ_RETRIES + 1):
            det, composite, scalings, refl, stack, skipped = _graph_parts(cfg, items, geobox, check_assets=False)  # probed above
            try:
                fields, rgb, assess_ds, clear_px = _compute_with_coverage(
                    det, composite, refl, assess.lazy_inputs(cfg, refl), progress=progress, n_scenes=len(items) - len(skipped))
                break
            except Exception as exc:  # noqa: BLE001 - Dask re-raises a worker's rasterio error as a plain Exception
                if not _is_read_error(exc):
                    raise
                # a scene that passed the probe failed to decode in the full read: find it, leave it out, go on
                bad = [] if attempt == _READ_RETRIES else pipelines.find_unreadable(
                    items, (*pipelines._load.REFLECTANCE_BANDS, "mask", "lst"), bbox, profile=profile, signer=profile.signer)
                if not bad:
                    raise RasterError(
                        f"a scene could not be read during the scan ({' '.join(str(exc).split())[:200]}) and a re-read did not "
                        "find which; nothing was written to the register; run the scan again (transient) or check the scenes' assets"
                    ) from None
                for f in bad:
                    log.info("scene %s left out: read failed during the scan: %s", f.item_id, f.reason)
                failures += [{"kind": "scene", "id": f.item_id, "reason": f"read failed during the scan: {f.reason}"} for f in bad]
                gone = {f.item_id for f in bad}
                items = [it for it in items if it.id not in gone]
                _check_windows(cfg, items, "readable", [f for f in failures if f["kind"] == "scene"])
        failures += [{"kind": "scene", "id": line.split(":", 1)[0], "reason": line.split(":", 1)[-1].strip()} for line in skipped]
        raster_paths = _write_rasters(out, fields, rgb, geobox)
        found = alerts_from_fields(
            fields, geobox.transform, utm, zones_utm, min_area_m2=cfg.detection.min_area_m2,
            consecutive=cfg.detection.consecutive, z_threshold=cfg.detection.z_threshold, scan_id=scan_id,
            baseline={"NDVI": assess_ds["NDVI_baseline"].values, "MNDWI": assess_ds["MNDWI_baseline"].values},
        )
        merged, stats = merge_alerts(register.alerts(), found, scan_id)
        # recompute area and centroid of merged geometries in the analysis CRS
        m_utm = merged.to_crs(utm)
        merged["area_m2"] = m_utm.geometry.area.round(1).values
        cent = m_utm.geometry.centroid.to_crs(4326)
        merged["centroid_lon"], merged["centroid_lat"] = cent.x.round(6).values, cent.y.round(6).values
        scans = register.scans()
        run = {
            "scan_id": scan_id, "name": cfg.name, "config_sha256": hashlib.sha256((config_text or "").encode()).hexdigest(),
            "started": started.isoformat(timespec="seconds"), "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "monitor_start": str(cfg.monitor.start), "monitor_end": str(cfg.monitor.end), "n_items": len(items) - len(skipped),
            "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged,
        }
        # one row per scan id: re-running a scan replaces its row (the alerts are unchanged)
        scans = pd.concat([scans[scans["scan_id"] != scan_id] if not scans.empty else scans, pd.DataFrame([run])], ignore_index=True)
        mine_idx = merged.index[_of_scan(merged, scan_id)]
        products = _alert_products(out, merged.loc[mine_idx].to_crs(utm), refl, stack, geobox, cfg)
        for i in mine_idx:
            aid = merged.at[i, "alert_id"]
            if aid in products:
                merged.at[i, "chip_before"], merged.at[i, "chip_after"], merged.at[i, "before_dates"], merged.at[i, "after_dates"] = products[aid]
        merged, history, _ = recheck_rectified(  # 整改销号: has vegetation come back on rectified sites?
            merged, register.history(), stack, geobox, baseline=(str(cfg.baseline.start), str(cfg.baseline.end)), scan_id=scan_id,
            harmonics=cfg.detection.harmonics, trend=cfg.detection.trend,
        )
        register.write(merged, history, scans, review_steps=tuple(cfg.review.steps))

    mine = merged[_of_scan(merged, scan_id)].copy()
    mine = mine.sort_values("alert_id").reset_index(drop=True)
    mine["zone_tier"] = mine["zone_id"].map(dict(zip(zones["zone_id"], zones["tier"])))  # 管控分区 of the alert's zone (None: no tier field)
    (out / "alerts.geojson").write_text(mine.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")

    assess_np, years = assess.computed_inputs(assess_ds)
    zone_stats, admin_stats = assess.write_assessment(
        out, cfg=cfg, zones=zones, admin=admin, utm=utm, geobox=geobox, inputs=assess_np, years=years, alerts=mine,
        rasters=raster_paths, attrs=dict(assess_ds.attrs),
    )
    zones_out = zones.to_crs(4326).merge(zone_stats.drop(columns=["zone_name", "category", "admin_id", "tier"], errors="ignore"), on="zone_id")
    (out / "zones.geojson").write_text(zones_out.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    if admin is not None:
        admin_out = admin.to_crs(4326).merge(admin_stats.drop(columns=["admin_name"]), on="admin_id", how="left")
        (out / "admin_units.geojson").write_text(admin_out.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")

    map_html = None
    try:
        import maps

        map_html = maps.render_outputs(out, register=register.path)[0]  # map.html, figures, report.html
    except (ImportError, AttributeError):  # maps is an optional renderer; the scan's data outputs stand alone
        log.warning("maps package not available; map.html not rendered")

    files = [p for p in sorted(out.rglob("*")) if p.is_file() and (p.suffix in (".tif", ".geojson", ".csv", ".html") or p.name == "assessment.gpkg")]
    _write_catalog(out, scan_id, bbox, json.loads(gpd.GeoSeries([zones.to_crs(4326).union_all().envelope], crs=4326).to_json())["features"][0]["geometry"], started, files)

    skipped_ids = {line.split(":", 1)[0] for line in skipped}
    reg_rel = register.path.resolve().relative_to(out.resolve()).as_posix() if register.path.resolve().is_relative_to(out.resolve()) else None
    record: dict[str, Any] = {
        "redline_version": provenance.library_versions()["redline"],
        "git_commit": provenance.git_commit(),
        "scan_id": scan_id,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {"as_given": config_text, "sha256": hashlib.sha256((config_text or "").encode()).hexdigest(), "resolved": json.loads(cfg.model_dump_json())},
        "stac": {"url": search.url, "search": search.parameters, "client_side_cloud_filter": search.client_side_cloud_filter, "notes": search.notes},
        "grid": {"crs": str(geobox.crs), "transform": list(geobox.transform)[:6], "shape": list(geobox.shape)},
        "items": [
            {"id": it.id, "collection": it.collection_id, "datetime": it.datetime.isoformat() if it.datetime else None,
             "assets": {k: a.href for k, a in it.assets.items()},
             "processing_baseline": it.properties.get("s2:processing_baseline") or it.properties.get("processing:version"),
             "scaling": {s.band: {"scale": s.scale, "offset": s.offset, "nodata": s.nodata, "asset": s.asset, "source": s.source, "reason": s.reason}
                         for s in scalings if s.item_id == it.id}}
            for it in items if it.id not in skipped_ids
        ],
        "scenes_without_clear_pixels": _scenes_without_clear_pixels(items, clear_px),
        "register": {"path": str(register.path.resolve()), "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged},
        "failures": failures,
        "libraries": provenance.library_versions(),
        "not_checksummed": [reg_rel] if reg_rel else [],
    }
    provenance.write_manifest(out, record, exclude=(reg_rel,) if reg_rel else ())
    return ScanResult(
        scan_id=scan_id, out_dir=out, alerts=mine, zone_stats=zone_stats, admin_stats=admin_stats,
        n_items=len(items) - len(skipped_ids), register=register.path, map_html=map_html, seconds=time.monotonic() - t0,
        failures=[f"{f['kind']} {f['id']}: {f['reason']}" for f in failures],
    )
