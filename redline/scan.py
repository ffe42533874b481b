"""The scan: search → lazy load → mask → indices → baseline + detection → alerts → register →
assessment → outputs. :func:`run_scan` orchestrates: the lazy graph of a tile is built in
:mod:`redline.run.graph`, computed tile by tile in :mod:`redline.run.tileloop` (the one place
that computes the scenes), and the functions here stitch, merge into the register, make chips
and write the outputs.
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
import rasterio.windows
import shapely
import xarray as xr
from odc.geo.geobox import GeoBox

import pipelines
from redline import assess, outputs, provenance
from redline.assess import ei
from redline import bands as bandplan
from redline.alerts import ALERT_COLUMNS
from redline.config import ScanConfig
from redline.detect import baseline_model
from redline.errors import RasterError, SmallZoneWarning, StacError
from redline.alerts.rectify import recheck_rectified
from redline.register import Register, merge_alerts, of_scan
from redline.run.graph import items_over, monitor_median, tile_graph
from redline.run.plan import ScanPlan, find_scenes, read_areas
from redline.run.rasters import write_rasters
from redline.run.stitch import stitch_split_zones
from redline.run.tileloop import Tiled, run_tiles
from redline.tiles import Mosaic, Tile

__all__ = ["ScanResult", "run_scan", "scan_id_for"]

log = logging.getLogger(__name__)


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
    notes: list[str] = field(default_factory=list)  # console lines: bands the scenes lack, scenes without a mask (redline.bands)
    up_to_date: bool = False  # nothing new since the scan already in ``out_dir``: nothing was redone


def scan_id_for(cfg: ScanConfig) -> str:
    """Stable id of a scan: config name and monitor end date (re-running it is the same scan)."""
    return f"{cfg.name}-{cfg.monitor.end:%Y%m%d}"


#: Scans of the area after a read failure (each leaves out the scenes a full re-read found bad).
_READ_RETRIES = 2


def _is_read_error(exc: BaseException) -> bool:
    """True for a raster read/decode error, also when Dask re-raised it from a worker as a plain
    ``Exception('RasterioIOError(...)')``."""
    return isinstance(exc, rasterio.errors.RasterioError) or any(
        k in f"{type(exc).__name__} {exc}" for k in ("RasterioIOError", "RasterioError", "Read failed", "TIFFRead", "IReadBlock"))


def _scenes_without_clear_pixels(items: list[pystac.Item], clear_px: pd.Series) -> list[dict[str, str]]:
    """Scenes that were read but gave no clear pixel on the analysis grid (the zones' bounding
    box): all no-data, or all cloud/shadow in the quality band. They add nothing, and are listed
    in the manifest, not hidden."""
    empty = {d for d, n in clear_px.items() if n == 0}
    out = []
    for it in items:
        day = pd.Timestamp(pipelines.solar_day(it))
        if day in empty or day not in clear_px.index:
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
    # the detector monitors a pixel only with min_baseline_obs clear baseline looks: fewer scene
    # dates than that in the whole baseline window and no pixel can be, which the scan would
    # report as "no alert"
    days = {(it.datetime or it.common_metadata.start_datetime).date() for it in items}
    n_base = sum(1 for d in days if cfg.baseline.start <= d <= cfg.baseline.end)
    need = cfg.detection.min_baseline_obs
    if n_base < need:
        terms = cfg.detection.model_terms
        msg = (f"baseline window {cfg.baseline.start} to {cfg.baseline.end} has {n_base} {what} scene date(s), fewer than "
               f"detection.min_baseline_obs {need} clear looks a pixel needs: no pixel could be monitored; lengthen the baseline, "
               + (f"or lower detection.min_baseline_obs to {n_base} (more than the model's {terms} terms with harmonics: {cfg.detection.harmonics})"
                  if n_base > terms else f"or set detection.harmonics: 1 and detection.min_baseline_obs: {max(n_base, 4)} (the model needs 4 looks at least)"))
        if failures:
            raise RasterError(msg)
        raise StacError(msg)


def _zones_in_scenes(zones: gpd.GeoDataFrame, items: list[pystac.Item]) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Drop zones that no scene footprint touches (reported as failed zones, not scanned)."""
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


def _write_catalog(out: Path, scan_id: str, bbox: tuple[float, ...], geometry: dict, when: dt.datetime) -> Path:
    """A STAC catalogue of the outputs: one Item for the scan with an asset per output file
    (COGs, GeoJSON, CSV, HTML and the assessment GeoPackage)."""
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and (p.suffix in (".tif", ".geojson", ".csv", ".html") or p.name == outputs.ASSESSMENT_GPKG)]
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
    return out / outputs.CATALOG_JSON


#: Margin around an alert in its chips, metres.
CHIP_MARGIN_M = 150.0
#: Compute chunk edge (px) of the chips' and re-checks' graph: the scenes are still read in
#: one piece, but only the small chunks the alerts' windows and centre pixels touch are scaled,
#: masked and turned into indices (x16 area, 13 alerts, one thread: 3.5 s -> 1.8 s; the read
#: alone is ~1.6 s)
CHIP_CHUNK = 128
_FIGURE_INDEX = {"water_loss": "MNDWI", "fire": "NBR"}  # others: NDVI


def _dates_seen(win: np.ndarray, sel: np.ndarray, days: np.ndarray) -> str | None:
    """``first/last`` ISO dates among ``days[sel]`` on which the chip window had a clear pixel."""
    seen = sel & np.isfinite(win).any(axis=(0, 2, 3))
    return f"{days[seen].min()}/{days[seen].max()}" if seen.any() else None


def _alert_products(out: Path, jobs: list[tuple[gpd.GeoDataFrame, xr.Dataset, xr.DataArray, GeoBox]], cfg: ScanConfig) -> dict[str, tuple[str, str, str | None, str | None]]:
    """Before/after chips and the index time-series figure of each alert (the scan writer's
    second and last eager step: small windows around the alerts and their centre pixels, of
    every tile in one compute). ``jobs``: per tile, its alerts (grid CRS) with the tile's lazy
    reflectance and index stack on ``geobox``.
    Returns alert_id → (before chip, after chip, before dates, after dates); the dates are the
    first/last clear dates that went into each chip's median composite."""
    import maps

    jobs = [j for j in jobs if not j[0].empty]
    lazy: list = []
    plan = []
    for alerts_utm, refl, stack, geobox in jobs:
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
        start = len(lazy)
        lazy += [rgb.isel(y=slice(r0, r1), x=slice(c0, c1)) for r0, r1, c0, c1 in windows]
        lazy.append(stack.isel(y=xr.DataArray([r for r, _ in centres], dims="alert"), x=xr.DataArray([c for _, c in centres], dims="alert")))
        plan.append((alerts_utm, stack, geobox, windows, start))
    computed_all = dask.compute(*lazy)
    products = {}
    figure = maps.SeriesFigure()  # one time-series figure drawn for every alert: built once (benchmarks/figures.py)
    for alerts_utm, stack, geobox, windows, start in plan:
        inv = ~geobox.transform
        computed = computed_all[start:start + len(windows)]
        series_np = computed_all[start + len(windows)]
        times = stack["time"].values
        days = times.astype("datetime64[D]")
        in_base = (days >= np.datetime64(cfg.baseline.start)) & (days <= np.datetime64(cfg.baseline.end))
        in_mon = (days >= np.datetime64(cfg.monitor.start)) & (days <= np.datetime64(cfg.monitor.end))
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
                comp = monitor_median(np.moveaxis(win[:, sel], 1, -1)) if sel.any() else np.full(win.shape[:1] + win.shape[2:], np.nan, "float32")
                rel = f"{outputs.CHIPS_DIR}/{a.alert_id}_{tag}.png"
                maps.render_chip(out / rel, comp, rings, f"{a.alert_id} {tag}")  # ASCII: no CJK font needed
                paths.append(rel)
            var = _FIGURE_INDEX.get(a.disturbance_type, "NDVI")
            values = series_np.sel(var=var).isel(alert=k).values.astype("float64")
            grid = np.arange(days.min(), days.max() + np.timedelta64(1, "D"), np.timedelta64(5, "D")).astype("datetime64[ns]")
            model, sigma = baseline_model(times, values, in_base, var=var, harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, at=grid)
            figure.render(
                out / outputs.FIGURES_DIR / f"{a.alert_id}.png", times, values, grid, model, sigma, index=var,
                z_threshold=cfg.detection.z_threshold, first_detected=str(a.first_detected), monitor_start=str(cfg.monitor.start),
                title=f"{a.alert_id} · {a.disturbance_type} · {var} at the alert centre",
            )
            products[a.alert_id] = (paths[0], paths[1], _dates_seen(win, before_t, days), _dates_seen(win, after_t, days))
    return products


def _tile_of(alerts: gpd.GeoDataFrame, tiles: list[Tile], grid: GeoBox) -> np.ndarray:
    """Per alert, the id of the tile that makes its chips and re-check: the tile of its zone,
    or for a split zone the tile whose cell holds the alert's representative point ('' when
    the zone is in no tile: an alert of the register outside this scan's zones)."""
    if alerts.empty:
        return np.array([], dtype=object)
    whole = {z: t.id for t in tiles for z in t.zone_ids}
    pts = alerts.to_crs(grid.crs).geometry.representative_point()
    inv = ~grid.transform
    out = []
    for zid, pt in zip(alerts["zone_id"], pts):
        if zid in whole:
            out.append(whole[zid])
            continue
        col, row = inv * (pt.x, pt.y)
        cells = [t for t in tiles if zid in t.split_ids]
        here = [t for t in cells if t.cell[0] <= row < t.cell[1] and t.cell[2] <= col < t.cell[3]]
        out.append((here or cells)[0].id if (here or cells) else "")
    return np.array(out, dtype=object)


def _chip_geobox(alerts_utm: gpd.GeoDataFrame, grid: GeoBox, resolution: float) -> GeoBox:
    """The grid window around ``alerts_utm`` (in the grid's CRS) with the chip margin beyond
    each: the chips show the same context as on the whole grid, and only this window is read."""
    pad = int(np.ceil(CHIP_MARGIN_M / resolution)) + 1
    inv = ~grid.transform
    x0, y0, x1, y1 = alerts_utm.total_bounds
    c0, r0 = inv * (x0, y1)
    c1, r1 = inv * (x1, y0)
    h, w = grid.shape
    return grid[max(int(np.floor(r0)) - pad, 0):min(int(np.ceil(r1)) + pad, h), max(int(np.floor(c0)) - pad, 0):min(int(np.ceil(c1)) + pad, w)]


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
        alerts = gpd.read_file(out / outputs.ALERTS_GEOJSON) if (out / outputs.ALERTS_GEOJSON).is_file() else gpd.GeoDataFrame()
        zone_stats, admin_stats = pd.read_csv(out / outputs.ZONE_STATS_CSV), pd.read_csv(out / outputs.ADMIN_STATS_CSV)
    except (OSError, ValueError, KeyError) as exc:
        log.info("%s: previous outputs unreadable (%s); scanning again", out, exc)
        return None
    return ScanResult(
        scan_id=record["scan_id"], out_dir=out, alerts=alerts, zone_stats=zone_stats, admin_stats=admin_stats,
        n_items=len(items), register=Path(record["register"]["path"]), map_html=out / outputs.MAP_HTML if (out / outputs.MAP_HTML).is_file() else None,
        seconds=time.monotonic() - t0, up_to_date=True, notes=_notes(record),
    )


def run_scan(
    cfg: ScanConfig, out: Path, *, scheduler: str | None = None, config_text: str | None = None, lock_timeout: float = 30.0,
    progress: bool | None = None,
) -> ScanResult:
    """Run a whole scan and write its outputs (docs/architecture.md §4.3) to ``out``.

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
    ``ScanResult.failures`` and the manifest's ``failures`` (docs/architecture.md §5); the rest is scanned.
    """
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc)
    out = Path(out)
    if not cfg.stac.url:
        raise StacError("stac.url is not set; give the STAC API URL (or a profile) in the config")
    scan_id = scan_id_for(cfg)
    zones, admin = read_areas(cfg)
    ei.check_inputs(cfg.assess)  # bad EI inputs (assess.*) fail before anything is searched or computed
    search = find_scenes(cfg, zones)
    log.info("%d scenes found (%d before the cloud filter)", len(search.items), search.n_before_cloud_filter)
    previous = _up_to_date(out, cfg, config_text, search.items, t0)
    if previous is not None:
        log.info("%s is up to date: same config and the same %d scenes as its last scan; nothing redone", out, len(search.items))
        return previous
    plan = _checked_plan(cfg, zones, admin, search)  # bad input: exit 2 before anything is written
    zones = plan.zones  # less those outside every scene (failures)
    profile = pipelines.get_profile(cfg.stac.profile)
    register = Register(outputs.default_register(out, cfg.register_path))
    register.check_writable()
    with register.lock(timeout=lock_timeout), pipelines.dask_client(
        scheduler or cfg.dask.address, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=cfg.dask.processes,
        env=profile.gdal_env
    ):
        out.mkdir(parents=True, exist_ok=True)
        plan, tiled, mosaic = _compute(plan, out, scan_id, profile, progress)
        failures = _failures_after(plan, tiled)
        raster_paths = write_rasters(out, mosaic)
        merged, stats, scans = _merge(plan, tiled, mosaic, register, scan_id, started, config_text)
        merged, history = _chips_and_rechecks(out, plan, merged, register.history(), scan_id)
        register.write(merged, history, scans, review_steps=tuple(cfg.review.steps))

    mine = _write_alerts(out, merged, scan_id, zones)
    zone_stats, admin_stats = assess.write_assessment(
        out, cfg=cfg, zones=zones, admin=admin, utm=plan.utm, geobox=plan.grid, inputs=mosaic, years=tiled.years, alerts=mine,
        rasters=raster_paths, attrs=tiled.attrs,
    )
    mosaic.remove()
    _write_area_layers(out, zones, admin, zone_stats, admin_stats)
    import maps  # the renderer of the output folder (map.html, figures, report.html)

    map_html = maps.render_outputs(out, register=register.path)[0]
    _write_catalog(out, scan_id, plan.bbox, _envelope(zones), started)
    record = _manifest(out, plan, tiled, register, stats, failures, scan_id=scan_id, started=started, config_text=config_text)
    return ScanResult(
        scan_id=scan_id, out_dir=out, alerts=mine, zone_stats=zone_stats, admin_stats=admin_stats,
        n_items=len(plan.items) - len(tiled.skipped), register=register.path, map_html=map_html, seconds=time.monotonic() - t0,
        failures=[f"{f['kind']} {f['id']}: {f['reason']}" for f in failures], notes=_notes(record),
    )


def _checked_plan(cfg: ScanConfig, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, search: pipelines.SearchResult) -> ScanPlan:
    """The scan's plan after the checks that need no output: the scenes of both windows, the
    bands and masks (exit 2), the zones outside every scene and the unreadable scenes (left out
    as failures), then the grid and tiles."""
    failures = [{"kind": "item", "id": i, "reason": r} for i, r in search.failures]
    _check_windows(cfg, search.items, "found")
    # no red/nir anywhere, no detection index left, scenes without a mask (masks: required): exit 2
    bandplan.check_scenes(bandplan.plan_bands(search.items), masks=cfg.masks, configured=cfg.detection.indices, config=cfg.source)
    zones, outside = _zones_in_scenes(zones, search.items)
    failures += outside
    items, unreadable = _probe(cfg, search.items, pipelines.get_profile(cfg.stac.profile))
    failures += [{"kind": "scene", "id": f.item_id, "reason": f.reason} for f in unreadable]
    _check_windows(cfg, items, "readable", [f for f in failures if f["kind"] == "scene"])
    plan = ScanPlan.build(cfg, zones, admin, search, items=items, failures=failures)
    _warn_small_zones(plan.zones_utm, cfg.resolution)
    log.info("%d zone(s) in %d tile(s) of ≤ %d px", len(plan.zones_utm), len(plan.tiles), cfg.tiling.max_tile_px)
    return plan


def _compute(plan: ScanPlan, out: Path, scan_id: str, profile: pipelines.Profile, progress: bool | None) -> tuple[ScanPlan, Tiled, Mosaic]:
    """The tile loop (:func:`redline.run.tileloop.run_tiles`) into fresh mosaics under ``out``.
    A scene that passed the probe but fails to decode in the full read is found by a re-read,
    left out (a failure) and the area scanned again, at most :data:`_READ_RETRIES` times."""
    cfg = plan.cfg
    for attempt in range(_READ_RETRIES + 1):
        mosaic = Mosaic(out / outputs.TILES_DIR, plan.grid, plan.zones_utm)
        mosaic.remove()  # a killed scan's or the failed attempt's mosaics
        try:
            return plan, run_tiles(plan, mosaic, progress=progress, scan_id=scan_id), mosaic
        except Exception as exc:  # noqa: BLE001 - Dask re-raises a worker's rasterio error as a plain Exception
            if not _is_read_error(exc):
                raise
            bad = [] if attempt == _READ_RETRIES else _probe(cfg, plan.items, profile, plan.bbox)[1]
            if not bad:
                mosaic.remove()
                raise RasterError(
                    f"a scene could not be read during the scan ({' '.join(str(exc).split())[:200]}) and a re-read did not "
                    "find which; nothing was written to the register; run the scan again (transient) or check the scenes' assets"
                ) from None
            for f in bad:
                log.info("scene %s left out: read failed during the scan: %s", f.item_id, f.reason)
            plan = plan.without({f.item_id for f in bad}, [{"kind": "scene", "id": f.item_id, "reason": f"read failed during the scan: {f.reason}"}
                                                          for f in bad])
            _check_windows(cfg, plan.items, "readable", [f for f in plan.failures if f["kind"] == "scene"])
    raise AssertionError("unreachable: the last attempt returns or raises")


def _failures_after(plan: ScanPlan, tiled: Tiled) -> list[dict[str, str]]:
    """The plan's failures, the scenes the loads left out and the zones of tiles no scene covers."""
    failures = list(plan.failures) + [{"kind": "scene", "id": i, "reason": r} for i, r in tiled.skipped.items()]
    for t in tiled.empty_tiles:
        failures += [{"kind": "zone", "id": z, "reason": f"no readable scene over its tile {t.id}; not assessed"} for z in t.zone_ids]
    return failures


def _merge(plan: ScanPlan, tiled: Tiled, mosaic: Mosaic, register: Register, scan_id: str, started: dt.datetime,
           config_text: str | None) -> tuple[gpd.GeoDataFrame, Any, pd.DataFrame]:
    """The tiles' alerts stitched across tile cuts and merged into the register's alerts
    (:func:`redline.register.merge_alerts`; area and centroid measured again in the analysis
    CRS), and the register's scans table with this scan's row (one row per scan id)."""
    cfg = plan.cfg
    found = pd.concat(tiled.found, ignore_index=True) if tiled.found else gpd.GeoDataFrame({c: [] for c in ALERT_COLUMNS}, geometry=[], crs="EPSG:4326")
    found = stitch_split_zones(found, plan, mosaic, scan_id)
    merged, stats = merge_alerts(register.alerts(), found, scan_id)
    m_utm = merged.to_crs(plan.utm)
    merged["area_m2"] = m_utm.geometry.area.round(1).values
    cent = m_utm.geometry.centroid.to_crs(4326)
    merged["centroid_lon"], merged["centroid_lat"] = cent.x.round(6).values, cent.y.round(6).values
    scans = register.scans()
    run = {
        "scan_id": scan_id, "name": cfg.name, "config_sha256": hashlib.sha256((config_text or "").encode()).hexdigest(),
        "started": started.isoformat(timespec="seconds"), "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "monitor_start": str(cfg.monitor.start), "monitor_end": str(cfg.monitor.end), "n_items": len(plan.items) - len(tiled.skipped),
        "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged,
    }
    # one row per scan id: re-running a scan replaces its row (the alerts are unchanged)
    scans = pd.concat([scans[scans["scan_id"] != scan_id] if not scans.empty else scans, pd.DataFrame([run])], ignore_index=True)
    return merged, stats, scans


def _chips_and_rechecks(out: Path, plan: ScanPlan, merged: gpd.GeoDataFrame, history: pd.DataFrame,
                        scan_id: str) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Per tile, small windows around its alerts: the rectified sites re-checked (整改销号: has
    vegetation come back? :func:`redline.alerts.rectify.recheck_rectified`, rows added to ``history``),
    then the chips and figures of this scan's alerts, their paths and dates set on ``merged``."""
    cfg = plan.cfg
    mine_mask = of_scan(merged, scan_id)
    owner = _tile_of(merged, plan.tiles, plan.grid)
    jobs = []
    for tile in plan.tiles:
        in_tile = owner == tile.id
        mine_idx = merged.index[mine_mask & in_tile]
        rectified = (merged["status"] == "rectified").values & in_tile
        if not len(mine_idx) and not rectified.any():
            continue
        gb = _chip_geobox(merged.loc[in_tile].to_crs(plan.utm), plan.grid, cfg.resolution)
        tile_items = items_over(plan.items, gb)
        if not tile_items:
            continue
        g = tile_graph(cfg, tile_items, gb, check_assets=False, chunk=CHIP_CHUNK, plan=plan.bands)
        jobs.append((merged.loc[mine_idx].to_crs(plan.utm), g.reflectance, g.stack, gb))
        merged, history, _ = recheck_rectified(
            merged, history, g.stack, gb, baseline=(str(cfg.baseline.start), str(cfg.baseline.end)), scan_id=scan_id,
            harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, alert_ids=set(merged.loc[in_tile, "alert_id"]),
        )
    products = _alert_products(out, jobs, cfg)
    for i in merged.index[mine_mask]:
        aid = merged.at[i, "alert_id"]
        if aid in products:
            merged.at[i, "chip_before"], merged.at[i, "chip_after"], merged.at[i, "before_dates"], merged.at[i, "after_dates"] = products[aid]
    return merged, history


def _write_alerts(out: Path, merged: gpd.GeoDataFrame, scan_id: str, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """This scan's alerts (sorted by id, with the 管控分区 tier of their zone; None without a tier
    field) as ``alerts.geojson``, EPSG:4326."""
    mine = merged[of_scan(merged, scan_id)].copy().sort_values("alert_id").reset_index(drop=True)
    mine["zone_tier"] = mine["zone_id"].map(dict(zip(zones["zone_id"], zones["tier"])))
    (out / outputs.ALERTS_GEOJSON).write_text(mine.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    return mine


def _write_area_layers(out: Path, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, zone_stats: pd.DataFrame, admin_stats: pd.DataFrame) -> None:
    """``zones.geojson`` and ``admin_units.geojson``: the areas with their statistics, EPSG:4326."""
    zones_out = zones.to_crs(4326).merge(zone_stats.drop(columns=["zone_name", "category", "admin_id", "tier"], errors="ignore"), on="zone_id")
    (out / outputs.ZONES_GEOJSON).write_text(zones_out.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    if admin is not None:
        admin_out = admin.to_crs(4326).merge(admin_stats.drop(columns=["admin_name"]), on="admin_id", how="left")
        (out / outputs.ADMIN_GEOJSON).write_text(admin_out.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")


def _envelope(zones: gpd.GeoDataFrame) -> dict:
    """The zones' bounding rectangle as a GeoJSON geometry, EPSG:4326."""
    return json.loads(gpd.GeoSeries([zones.to_crs(4326).union_all().envelope], crs=4326).to_json())["features"][0]["geometry"]


def _manifest(out: Path, plan: ScanPlan, tiled: Tiled, register: Register, stats: Any, failures: list[dict[str, str]], *, scan_id: str,
              started: dt.datetime, config_text: str | None) -> dict[str, Any]:
    """Write ``manifest.json`` (docs/architecture.md §4.5) and return its record; the register is
    named but not checksummed when it lies inside ``out`` (reviews change it)."""
    cfg = plan.cfg
    scalings = list(tiled.scalings.values())
    reg_rel = register.path.resolve().relative_to(out.resolve()).as_posix() if register.path.resolve().is_relative_to(out.resolve()) else None
    record: dict[str, Any] = {
        **provenance.run_record(started=started, config_text=config_text, cfg=cfg, search=plan.search, grid=plan.grid),
        "scan_id": scan_id,
        "items": provenance.item_records(plan.items, scalings, skip=set(tiled.skipped)),
        "scenes_without_clear_pixels": _scenes_without_clear_pixels(plan.items, tiled.clear_px),
        "tiles": [{"id": t.id, "zones": list(t.zone_ids), "pieces_of": list(t.split_ids), "rows": list(t.core[:2]), "cols": list(t.core[2:])}
                  for t in plan.tiles],
        "register": {"path": str(register.path.resolve()), "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged},
        **plan.bands.record(cfg.detection.indices, cfg.masks),  # "bands" and "masks": what the scenes lack and what it took away
        "failures": failures,
        "libraries": provenance.library_versions(),
        "not_checksummed": [reg_rel] if reg_rel else [],
    }
    provenance.write_manifest(out, record, exclude=(reg_rel,) if reg_rel else ())
    return record


def _notes(record: dict[str, Any]) -> list[str]:
    """The console lines of a scan's manifest record: bands the scenes lack and what that took
    away, scenes scanned without a quality mask (:mod:`redline.bands`)."""
    return [n for n in ((record.get("bands") or {}).get("note"), (record.get("masks") or {}).get("note")) if n]


def _probe(cfg: ScanConfig, items: list[pystac.Item], profile: pipelines.Profile,
           bbox: tuple[float, float, float, float] | None = None) -> tuple[list[pystac.Item], list[pipelines.SceneFailure]]:
    """:func:`pipelines.probe_items` (or with ``bbox``, :func:`pipelines.find_unreadable` over
    that area) of each collection's scenes with the bands that collection has
    (:func:`redline.bands.bands_by_collection`), the quality mask (only where a scene has one
    with ``masks: assume-clear``) and the thermal band where there is one. Items and failures
    in input order."""
    optional = ("mask", "lst") if cfg.masks == "assume-clear" else ("lst",)
    failed: dict[str, pipelines.SceneFailure] = {}
    for coll, need in bandplan.bands_by_collection(items).items():
        members = [it for it in items if (it.collection_id or "") == coll]
        kw = dict(profile=profile, signer=profile.signer, optional=optional)
        bad = (pipelines.probe_items(members, (*need, "mask", "lst"), **kw)[1] if bbox is None
               else pipelines.find_unreadable(members, (*need, "mask", "lst"), bbox, **kw))
        failed.update({f.item_id: f for f in bad})
    return [it for it in items if it.id not in failed], [failed[it.id] for it in items if it.id in failed]
