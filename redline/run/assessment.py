"""``redline assess``: the assessment of every zone and county without detection.

Reads the zones, searches and checks the scenes as a scan does, computes only the assessment
inputs in the tile loop (:func:`redline.run.tileloop.run_tiles`), and writes the assessment
outputs (:func:`redline.assess.write_assessment`) and a manifest.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd

import pipelines
from redline import assess, outputs, provenance
from redline.assess import ei
from redline import bands as bandplan
from redline.errors import RedlineInputError
from redline.config import ScanConfig
from redline.register import Register
from redline.register.keys import load_key
from redline.run.plan import ScanPlan, find_scenes, read_areas
from redline.run.tileloop import run_tiles
from redline.tiles import Mosaic

__all__ = ["run_assessment"]

log = logging.getLogger(__name__)


def run_assessment(cfg: ScanConfig, out: Path, *, scheduler: str | None = None, config_text: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``redline assess``: the assessment alone, without detection (e.g. for a yearly report).

    Searches and loads the scenes as a scan does, computes only the assessment inputs, and
    writes the assessment outputs and a manifest to ``out``. Alert columns come from the
    register (``cfg.register`` or ``out/register.gpkg`` when it exists): the alerts first
    detected in the monitor window, with their review status.
    """
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc)
    out = Path(out)
    if problem := outputs.out_folder_problem(out):
        raise RedlineInputError(problem)
    key = load_key()  # the manifest is signed: no key, nothing done (exit 2)
    zones, admin = read_areas(cfg)
    ei.check_inputs(cfg.assess)
    search = find_scenes(cfg, zones)
    plan = ScanPlan.build(cfg, zones, admin, search)
    # no red/nir anywhere, scenes without a mask while masks: required: exit 2 (before anything is written)
    bandplan.check_scenes(plan.bands, masks=cfg.masks, configured=("NDVI",), config=cfg.source)
    profile = pipelines.get_profile(cfg.stac.profile)
    geobox = plan.grid
    out.mkdir(parents=True, exist_ok=True)
    mosaic = Mosaic(out / outputs.TILES_DIR, geobox, plan.zones_utm)
    mosaic.remove()
    with pipelines.dask_client(scheduler or cfg.dask.address, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker,
                               processes=cfg.dask.processes, env=profile.gdal_env):
        tiled = run_tiles(plan, mosaic, progress=False, check_assets=True)
    scalings, skipped = list(tiled.scalings.values()), [f"{i}: {r}" for i, r in tiled.skipped.items()]
    reg_path = outputs.default_register(out, cfg.register_path)
    has_register = isinstance(reg_path, str) or Path(reg_path).exists()  # a URL, or a file that is there
    alerts = gpd.GeoDataFrame({"zone_id": [], "area_m2": [], "disturbance_type": [], "status": []}, geometry=[], crs=4326)
    if has_register:
        reg = Register(reg_path).alerts()
        when = reg["first_detected"].astype(str)
        alerts = reg[(when >= str(cfg.monitor.start)) & (when <= str(cfg.monitor.end)) & reg["zone_id"].isin(zones["zone_id"])]
    zone_stats, admin_stats = assess.write_assessment(out, cfg=cfg, zones=zones, admin=admin, utm=plan.utm, geobox=geobox, inputs=mosaic, years=tiled.years,
                                               alerts=alerts, attrs=tiled.attrs)
    mosaic.remove()
    record = {
        "kind": "assessment",
        **provenance.run_record(started=started, config_text=config_text, cfg=cfg, search=search, grid=geobox),
        "seconds": round(time.monotonic() - t0, 1),
        "items": provenance.item_records(search.items, scalings),
        "register": provenance.register_record(out, reg_path, alerts_used=int(len(alerts))) if has_register else None,
        **plan.bands.record(cfg.detection.indices, cfg.masks),  # "bands" and "masks" (redline.bands)
        "failures": [f"scene {line}" for line in skipped],
        "libraries": provenance.library_versions(),
    }
    for line in skipped:
        log.warning("scene %s", line)
    reg_rel = (Path(reg_path).resolve().relative_to(out.resolve()).as_posix()
               if isinstance(reg_path, Path) and Path(reg_path).resolve().is_relative_to(out.resolve()) else None)
    provenance.write_manifest(out, record, key=key, exclude=(reg_rel,) if reg_rel else ())
    return zone_stats, admin_stats
