"""The scan: search → lazy load → mask → indices → baseline + detection → alerts → register →
assessment → outputs. :func:`run_scan` orchestrates and reads as its list of steps: the plan is
checked in :mod:`redline.run.plan`, the lazy graph of a tile built in :mod:`redline.run.graph`
and computed tile by tile in :mod:`redline.run.tileloop` (the one place that computes the
scenes); the functions here retry failed reads, merge into the register and write the alert
and area layers and the manifest; chips and re-checks are :mod:`redline.run.chips`, the
catalogue :mod:`redline.run.catalog`. This module may import every room of ``redline`` but the
CLI, ``pipelines``, ``aoi`` and (for the rendered outputs) ``maps``; only the CLI, the public
API and the demo import it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import rasterio

import pipelines
from redline import assess, outputs, provenance
from redline.alerts import ALERT_COLUMNS
from redline.assess import ei
from redline.budget import PeakSampler, cluster_memory_limit
from redline.config import ScanConfig
from redline.errors import RasterError, RedlineInputError, StacError
from redline.geojson import write_geojson
from redline.register import Register, merge_alerts, of_scan
from redline.run.catalog import write_catalog
from redline.run.chips import ChipBook, alert_products, drawn_before, products_from_looks, rechecks, with_products
from redline.run.plan import ScanPlan, check_windows, checked_plan, find_scenes, probe_scenes, read_areas, scan_grid
from redline.run.rasters import write_rasters
from redline.run.state import STATE_DIR, State, StateWriter, day_of, read_state, stock_start
from redline.run.stitch import stitch_split_zones
from redline.run.tileloop import Resume, Tiled, run_tiles
from redline.run.timings import Timings
from redline.tiles import Mosaic

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
    register: Path | str  # a GeoPackage path or a postgresql:// URL
    map_html: Path | None
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # console lines: bands the scenes lack, scenes without a mask (redline.bands)
    up_to_date: bool = False  # nothing new since the scan already in ``out_dir``: nothing was redone
    timings: dict[str, Any] | None = None  # the manifest's ``timings`` (redline.run.timings.Timings.record); None when up to date


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
        n_items=len(items), register=outputs.register_location(provenance.manifest_register(out, record)), map_html=out / outputs.MAP_HTML if (out / outputs.MAP_HTML).is_file() else None,
        seconds=time.monotonic() - t0, up_to_date=True, notes=_notes(record),
    )


def run_scan(
    cfg: ScanConfig, out: Path, *, scheduler: str | None = None, config_text: str | None = None, lock_timeout: float = 30.0,
    progress: bool | None = None, full: bool = False,
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
    full
        Scan every scene even when the state of the previous scan in ``out``
        (:mod:`redline.run.state`) would let this one read only the new ones.

    A scan whose config, grid, zones, bands and baseline scenes are those of the state in ``out``
    reads only the scenes of the solar days that are new or changed since (an incremental scan,
    the same alerts and statistics as a full one); otherwise it is a full scan and says why.

    Scenes that cannot be read and zones outside every scene are left out and listed in
    ``ScanResult.failures`` and the manifest's ``failures`` (docs/architecture.md §5); the rest is scanned.
    """
    t0 = time.monotonic()
    timings = Timings()
    started = dt.datetime.now(dt.timezone.utc)
    out = Path(out)
    if problem := outputs.out_folder_problem(out):  # a file given as OUT: exit 2 before anything is searched
        raise RedlineInputError(problem)
    if not cfg.stac.url:
        raise StacError("stac.url is not set; give the STAC API URL (or a profile) in the config")
    if problem := _state_folder_problem(out / STATE_DIR):
        raise RedlineInputError(problem)
    scan_id = scan_id_for(cfg)
    with timings.stage("search"):
        zones, admin = read_areas(cfg)
        ei.check_inputs(cfg.assess)  # bad EI inputs (assess.*) fail before anything is searched or computed
        search = find_scenes(cfg, zones)
    log.info("%d scenes found (%d before the cloud filter)", len(search.items), search.n_before_cloud_filter)
    previous = None if full else _up_to_date(out, cfg, config_text, search.items, t0)
    if previous is not None:
        log.info("%s is up to date: same config and the same %d scenes as its last scan; nothing redone", out, len(search.items))
        return previous
    pipelines.reset_io_stats()  # this scan's raster requests and bytes (the probe's first), for the manifest
    with timings.stage("state"):
        stored, why = (None, "--full given") if full else read_state(out, cfg, search.items, scan_grid(cfg, zones))
        changed = stored.changed_days(search.items) if stored is not None else set()
    with timings.stage("probe"):  # a rescan checks the assets of the scenes it reads, the others were read before
        plan = checked_plan(cfg, zones, admin, search, probe={it.id for it in search.items if day_of(it) in changed} if stored else None)
    zones = plan.zones  # less those outside every scene (failures)
    resume, why = _resume(plan, stored, changed, why)
    log.info("%s", why if resume is not None else f"full scan: {why}")
    profile = pipelines.get_profile(cfg.stac.profile)
    register = Register(outputs.default_register(out, cfg.register_path), lock_timeout=lock_timeout)
    register.check_writable(review_steps=tuple(cfg.review.steps))  # no key, not a signer, a policy only an admin may set: exit 2
    with register.lock(timeout=lock_timeout), pipelines.dask_client(
        scheduler or cfg.dask.address, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=cfg.dask.processes,
        env=profile.gdal_env
    ) as client, PeakSampler() as sampler:
        if (scheduler or cfg.dask.address) and cfg.resources.memory_limit is None and (workers_memory := cluster_memory_limit(client)):
            plan = plan.with_budget(workers_memory, "cluster")  # the workers' own memory, not this machine's
        out.mkdir(parents=True, exist_ok=True)
        pipelines.reset_cluster_io_stats()  # the workers' counters (this process keeps the probe's)
        state = StateWriter(out, plan.cfg, scan_id, plan.grid, plan.items, bands=_bands_record(plan))
        with timings.stage("read+compute"):
            plan, tiled, mosaic = _compute(plan, out, scan_id, profile, progress, state, resume)
        timings.carve("read+compute", tiled.seconds)  # the tile loop's main thread on computed tiles: mosaics, polygons
        failures = _failures_after(plan, tiled)
        with timings.stage("alerts"):
            merged, stats, run = _merge(plan, tiled, mosaic, register, scan_id, started, config_text)
        with timings.stage("rechecks"):
            # a rescan draws the chips of the alerts it had drawn before from its state, reading no scene (redline.run.chips)
            records, series = resume.state.alerts() if resume is not None else ({}, {})
            drawn = drawn_before(merged, scan_id, plan.grid, plan.utm, records, resume.days, out) if resume is not None else set()
            merged, decisions, jobs = rechecks(plan, merged, register.history(), scan_id, skip=drawn)
        # the outputs side by side: COGs then the assessment (its statistics read the COGs) on a
        # worker thread while this thread draws the chips (their own small read of the scenes),
        # commits the register and writes the alert layers; the figures take turns (maps' lock)
        # matplotlib loaded before the threads start: it reads its style library under
        # warnings.catch_warnings, which is process-wide, so a rasterio warning raised meanwhile
        # on the other thread was caught there and logged as "WARNING matplotlib.style: In
        # fast.mplstyle: …" (seen in a fresh clone's make demo)
        import maps  # the renderer of the output folder (map.html, figures, report.html)

        with ThreadPoolExecutor(1, thread_name_prefix="redline-outputs") as pool:
            assessed = pool.submit(_cogs_and_assessment, out, plan, tiled, mosaic, zones, admin, _this_scan(merged, scan_id, zones), timings)
            book = ChipBook(plan.grid, stock_start(plan.cfg), [(t["id"], tuple(t["window"])) for t in state.tiles])
            with timings.stage("outputs"):
                products = _output(failures, timings, "chips", _chips, out, plan, jobs, merged, drawn, records, series, state, book)
            merged = with_products(merged, scan_id, products or {})
            with timings.stage("register"):
                register.commit_scan(merged, scan=run, decisions=decisions, review_steps=tuple(cfg.review.steps))  # one transaction
            with timings.stage("state"):  # after the register: a state never runs ahead of the alerts it was judged into
                state.items = [it for it in plan.items if it.id not in tiled.skipped]  # a scene left out is read again next time
                state.scalings = list(tiled.scalings.values())
                state.alerts, state.alert_series = book.records, book.series
                from_state = len(drawn & set(products or {}))
                state_record = {**state.commit(), **_resume_record(resume, why), "chips": {"read": len(products or {}) - from_state, "from_state": from_state}}
            io = pipelines.cluster_io_stats()
            if io.retries:  # throttling (429) or server errors GDAL retried with back-off: reported, not hidden
                log.warning("%d remote read request(s) were retried after HTTP 429/5xx (the server throttled or failed); manifest.json io.retries", io.retries)
            with timings.stage("outputs"):
                with timings.output("tables"):
                    mine = _write_alerts(out, merged, scan_id, zones)
                zone_stats, admin_stats, failed = assessed.result()  # a failed COG or assessment raises here, the register committed
                failures += failed

    with timings.stage("outputs"):
        mosaic.remove()
        with timings.output("tables"):
            _write_area_layers(out, zones, admin, zone_stats, admin_stats)

        record = _manifest_record(out, plan, tiled, register, stats, failures, scan_id=scan_id, started=started, config_text=config_text)
        record["io"] = {"concurrency": cfg.io.concurrency, **io.record()}  # requests, bytes fetched and decoded (pipelines._io)
        record["state"] = state_record  # what the next scan starts from (redline.run.state); its files are in "outputs" too
        where = register.path or register.location
        map_html = _output(failures, timings, "map", maps.render_map, out, register=where)
        # the report's first page is the manifest's (periods, scenes, parameters, chain head): the same as `redline map` renders later
        _output(failures, timings, "report", maps.render_report, out, register=where, manifest=record, zone_figures=cfg.outputs.zone_figures)
        record["resources"] = {**(plan.sizing.record() if plan.sizing else {}), **sampler.record()}  # the budget, its tiles and the peak measured
        with timings.output("manifest"):
            _write_manifest(out, record, register)
        with timings.output("catalogue"):
            write_catalog(out, key=register.key)  # last: it lists every output with the manifest's checksums, then joins the manifest
    timed = provenance.record_timings(out, timings.record(), key=register.key)
    return ScanResult(
        scan_id=scan_id, out_dir=out, alerts=mine, zone_stats=zone_stats, admin_stats=admin_stats,
        n_items=len(plan.items) - len(tiled.skipped), register=register.path or register.location, map_html=map_html, seconds=time.monotonic() - t0,
        failures=[f"{f['kind']} {f['id']}: {f['reason']}" for f in failures], notes=_notes(record), timings=timed,
    )


def _bands_record(plan: ScanPlan) -> dict[str, Any]:
    """What of the scenes' bands a state depends on: a rescan whose scenes bring other bands is a full scan."""
    return {"every": list(plan.bands.every), "stack_vars": list(plan.bands.stack_vars)}


def _resume(plan: ScanPlan, stored: State | None, changed: set[str], why: str) -> tuple[Resume | None, str]:
    """The rescan from ``stored`` (the scenes of the ``changed`` days read, on the state's tiles)
    if the plan's zones and bands are the state's; else ``None``. With one line saying which."""
    if stored is None:
        return None, why
    state_zones = sorted({z for t in stored.index["tiles"] for z in (*t["zone_ids"], *t["split_ids"])})
    if state_zones != sorted(set(plan.zones_utm["zone_id"])):
        return None, f"the zones the scenes cover changed since the state of scan {stored.scan_id}"
    if stored.index.get("bands") != _bands_record(plan):
        return None, f"the scenes' bands changed since the state of scan {stored.scan_id}"
    items = [it for it in plan.items if day_of(it) in changed]
    return (Resume(state=stored, days=changed, items=items),
            f"incremental: {len(items)} new scene(s) on {len(changed)} solar day(s), state from scan {stored.scan_id}")


def _resume_record(resume: Resume | None, why: str) -> dict[str, Any]:
    """The manifest's ``state`` fields saying how this scan started."""
    if resume is None:
        return {"incremental": False, "why_full": why}
    return {"incremental": True, "from_scan": resume.state.scan_id, "new_scenes": sorted(it.id for it in resume.items),
            "days_read": sorted(resume.days), "note": why}


def _state_folder_problem(folder: Path) -> str | None:
    """One line when the scan could not write its state into ``folder`` (exists, not writable)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} is a file, not the scan state folder; move it away (the scan writes its state there)"
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".write-check-")
    except OSError as exc:
        return f"{folder}: the scan state folder is not writable ({exc.strerror}); make it writable or remove it (the next scan is then a full one)"
    os.close(fd)
    os.unlink(name)
    return None


def _compute(plan: ScanPlan, out: Path, scan_id: str, profile: pipelines.Profile, progress: bool | None,
             state: StateWriter, resume: Resume | None) -> tuple[ScanPlan, Tiled, Mosaic]:
    """The tile loop (:func:`redline.run.tileloop.run_tiles`) into fresh mosaics under ``out``,
    each tile's state into ``state``.
    A scene that passed the probe but fails to decode in the full read is found by a re-read,
    left out (a failure) and the area scanned again, at most :data:`_READ_RETRIES` times."""
    cfg = plan.cfg
    for attempt in range(_READ_RETRIES + 1):
        mosaic = Mosaic(out / outputs.TILES_DIR, plan.grid, plan.zones_utm)
        mosaic.remove()  # a killed scan's or the failed attempt's mosaics
        try:
            if resume is not None:  # the state's tiles; only the changed days' scenes still in the plan are read
                plan = replace(plan, tiles=resume.state.tiles())
                reread = {it.id for it in resume.items}
                resume = replace(resume, items=[it for it in plan.items if it.id in reread])
            tiled = run_tiles(plan, mosaic, progress=progress, scan_id=scan_id, state=state, resume=resume)
            if resume is not None:  # the scenes not read again keep the scalings recorded when they were
                for sc in resume.state.scalings():
                    tiled.scalings.setdefault((sc.item_id, sc.band), sc)
            return plan, tiled, mosaic
        except Exception as exc:  # noqa: BLE001 - Dask re-raises a worker's rasterio error as a plain Exception
            state.abandon()
            if not _is_read_error(exc):
                raise
            bad = [] if attempt == _READ_RETRIES else probe_scenes(cfg, plan.items, profile, plan.bbox)[1]
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
            check_windows(cfg, plan.items, "readable", [f for f in plan.failures if f["kind"] == "scene"])
    raise AssertionError("unreachable: the last attempt returns or raises")


def _this_scan(merged: gpd.GeoDataFrame, scan_id: str, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """This scan's alerts (sorted by id) with the 管控分区 tier of their zone (None without a tier field)."""
    mine = merged[of_scan(merged, scan_id)].copy().sort_values("alert_id").reset_index(drop=True)
    mine["zone_tier"] = mine["zone_id"].map(dict(zip(zones["zone_id"], zones["tier"])))
    return mine


def _cogs_and_assessment(out: Path, plan: ScanPlan, tiled: Tiled, mosaic: Mosaic, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None,
                         mine: gpd.GeoDataFrame, timings: Timings) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, str]]]:
    """The COGs from the mosaics, then the assessment (its rasters, ``zone_stats.csv``,
    ``admin_stats.csv``, figures) of this scan's alerts ``mine`` (their statuses after the
    re-checks; the chips' paths are not read): the scan runs this on a worker thread. Returns
    the statistics and the failure of the assessment's figures, if any (kind ``output``)."""
    failed: list[dict[str, str]] = []

    def figure_failed(exc: Exception) -> None:
        log.error("assessment figures not written: %s", exc)
        failed.append({"kind": "output", "id": "assessment figures", "reason": f"not written: {' '.join(str(exc).split())[:300]}"})

    with timings.output("cogs"):
        raster_paths = write_rasters(out, mosaic)
    with timings.output("assessment"):
        zone_stats, admin_stats = assess.write_assessment(
            out, cfg=plan.cfg, zones=zones, admin=admin, utm=plan.utm, geobox=plan.grid, inputs=mosaic, years=tiled.years, alerts=mine,
            rasters=raster_paths, attrs=tiled.attrs, figure_failed=figure_failed,
        )
    return zone_stats, admin_stats, failed


def _chips(out: Path, plan: ScanPlan, jobs: list, merged: gpd.GeoDataFrame, drawn: set[str], records: dict[str, dict],
           series: dict[str, tuple[np.ndarray, np.ndarray]], state: StateWriter, book: ChipBook) -> dict[str, tuple[str, str, str | None, str | None]]:
    """The chips and figures of this scan's alerts: read from their windows of the scenes
    (``jobs``, :func:`redline.run.chips.alert_products`), or, for those a rescan had drawn
    before (``drawn``), from the state's records and the new state's looks; ``book`` gets
    each one's record for the next state."""
    products = alert_products(out, jobs, plan.cfg, book=book)
    log.info("chips: %d alert(s) drawn from their windows of the scenes, %d from the state", len(products), len(drawn))
    if drawn:
        looks = {t["id"]: state.looks_files(t["id"]) for t in state.tiles}
        products |= products_from_looks(out, plan.cfg, plan, merged[merged["alert_id"].isin(list(drawn))], records, series, looks, book=book)
    return products


def _output(failures: list[dict[str, str]], timings: Timings, kind: str, writer: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``writer(*args, **kwargs)`` timed as output ``kind``; when it fails (an unwritable folder,
    a full disk, a figure that cannot be drawn) the failure is logged and listed in ``failures``
    (kind ``output``: the scan exits 1) and None returned: the register and the other outputs
    are still written (docs/architecture.md §5)."""
    with timings.output(kind):
        try:
            return writer(*args, **kwargs)
        except (OSError, ValueError, RuntimeError, RasterError) as exc:
            log.error("%s not written: %s", kind, exc)
            failures.append({"kind": "output", "id": kind, "reason": f"not written: {' '.join(str(exc).split())[:300]}"})
            return None


def _failures_after(plan: ScanPlan, tiled: Tiled) -> list[dict[str, str]]:
    """The plan's failures, the scenes the loads left out and the zones of tiles no scene covers."""
    failures = list(plan.failures) + [{"kind": "scene", "id": i, "reason": r} for i, r in tiled.skipped.items()]
    for t in tiled.empty_tiles:
        failures += [{"kind": "zone", "id": z, "reason": f"no readable scene over its tile {t.id}; not assessed"} for z in t.zone_ids]
    return failures


def _merge(plan: ScanPlan, tiled: Tiled, mosaic: Mosaic, register: Register, scan_id: str, started: dt.datetime,
           config_text: str | None) -> tuple[gpd.GeoDataFrame, Any, dict[str, Any]]:
    """The tiles' alerts stitched across tile cuts and merged into the register's alerts
    (:func:`redline.register.merge_alerts`; area and centroid measured again in the analysis
    CRS), and this scan's row of the register's ``scans`` table."""
    cfg = plan.cfg
    found = pd.concat(tiled.found, ignore_index=True) if tiled.found else gpd.GeoDataFrame({c: [] for c in ALERT_COLUMNS}, geometry=[], crs="EPSG:4326")
    found = stitch_split_zones(found, plan, mosaic, scan_id)
    merged, stats = merge_alerts(register.alerts(), found, scan_id)
    m_utm = merged.to_crs(plan.utm)
    merged["area_m2"] = m_utm.geometry.area.round(1).values
    cent = m_utm.geometry.centroid.to_crs(4326)
    merged["centroid_lon"], merged["centroid_lat"] = cent.x.round(6).values, cent.y.round(6).values
    run = {
        "scan_id": scan_id, "name": cfg.name, "config_sha256": hashlib.sha256((config_text or "").encode()).hexdigest(),
        "started": started.isoformat(timespec="seconds"), "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "monitor_start": str(cfg.monitor.start), "monitor_end": str(cfg.monitor.end), "n_items": len(plan.items) - len(tiled.skipped),
        "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged,
    }
    return merged, stats, run


def _write_alerts(out: Path, merged: gpd.GeoDataFrame, scan_id: str, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """This scan's alerts (sorted by id, with the 管控分区 tier of their zone; None without a tier
    field) as ``alerts.geojson``, EPSG:4326, feature ids = alert ids (:mod:`redline.geojson`)."""
    mine = _this_scan(merged, scan_id, zones)
    write_geojson(mine, out / outputs.ALERTS_GEOJSON, id_column="alert_id")
    return mine


def _write_area_layers(out: Path, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, zone_stats: pd.DataFrame, admin_stats: pd.DataFrame) -> None:
    """``zones.geojson`` and ``admin_units.geojson``: the areas with their statistics, EPSG:4326,
    feature ids = zone ids / county codes (:mod:`redline.geojson`)."""
    zones_out = zones.to_crs(4326).merge(zone_stats.drop(columns=["zone_name", "category", "admin_id", "tier"], errors="ignore"), on="zone_id")
    write_geojson(zones_out, out / outputs.ZONES_GEOJSON, id_column="zone_id")
    if admin is not None:
        admin_out = admin.to_crs(4326).merge(admin_stats.drop(columns=["admin_name"]), on="admin_id", how="left")
        write_geojson(admin_out, out / outputs.ADMIN_GEOJSON, id_column="admin_id")


def _manifest_record(out: Path, plan: ScanPlan, tiled: Tiled, register: Register, stats: Any, failures: list[dict[str, str]], *, scan_id: str,
                     started: dt.datetime, config_text: str | None) -> dict[str, Any]:
    """The record of ``manifest.json`` (docs/architecture.md §4.5) but the outputs' checksums:
    the report shows it before :func:`_write_manifest` writes it."""
    cfg = plan.cfg
    scalings = list(tiled.scalings.values())
    reg_rel = _register_inside(out, register)
    return {
        **provenance.run_record(started=started, config_text=config_text, cfg=cfg, search=plan.search, grid=plan.grid),
        "scan_id": scan_id,
        "items": provenance.item_records(plan.items, scalings, skip=set(tiled.skipped)),
        "scenes_without_clear_pixels": _scenes_without_clear_pixels(plan.items, tiled.clear_px),
        "tiles": [{"id": t.id, "zones": list(t.zone_ids), "pieces_of": list(t.split_ids), "rows": list(t.core[:2]), "cols": list(t.core[2:])}
                  for t in plan.tiles],
        "register": provenance.register_record(out, register.location, head=register.head(), new=stats.new, updated=stats.updated,
                                               unchanged=stats.unchanged),
        **plan.bands.record(cfg.detection.indices, cfg.masks),  # "bands" and "masks": what the scenes lack and what it took away
        "failures": failures,
        "libraries": provenance.library_versions(),
        "not_checksummed": [reg_rel] if reg_rel else [],
    }


def _register_inside(out: Path, register: Register) -> str | None:
    """The register's path relative to ``out`` when it lies inside it (not checksummed: reviews change it)."""
    if register.path is not None and register.path.resolve().is_relative_to(out.resolve()):
        return register.path.resolve().relative_to(out.resolve()).as_posix()
    return None


def _write_manifest(out: Path, record: dict[str, Any], register: Register) -> None:
    """Write ``manifest.json``: ``record`` (as the report shows it) plus every output's checksum,
    signed; the register is named but not checksummed when it lies inside ``out``."""
    reg_rel = _register_inside(out, register)
    provenance.write_manifest(out, record, key=register.key, exclude=(reg_rel,) if reg_rel else ())


def _notes(record: dict[str, Any]) -> list[str]:
    """The console lines of a scan's manifest record: how it started (incremental from a state,
    or a full scan where a state was there but could not be used, and why), bands the scenes lack
    and what that took away, scenes scanned without a quality mask (:mod:`redline.bands`)."""
    st = record.get("state") or {}
    why = str(st.get("why_full") or "")
    how = st.get("note") if st.get("incremental") else (f"full scan: {why}" if why and not why.startswith(("no state", "--full")) else None)
    return [n for n in (how, (record.get("bands") or {}).get("note"), (record.get("masks") or {}).get("note")) if n]


