"""``redline assess``: the assessment of every zone and county without detection.

Reads the zones, searches and checks the scenes as a scan does, computes only the assessment
inputs in the tile loop (:func:`redline.run.tileloop.run_tiles`), and writes the assessment
outputs (:func:`redline.assess.write_assessment`) and a manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd

import aoi
import pipelines
from redline import assess, ei, provenance
from redline import bands as bandplan
from redline.config import ScanConfig
from redline.errors import StacError
from redline.register import Register
from redline.run.graph import analysis_grid
from redline.run.tileloop import margin_px, run_tiles
from redline.tiles import Mosaic, plan_tiles

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
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.stac.url:
        raise StacError("stac.url is not set; give the STAC API URL (or a profile) in the config")
    zones = aoi.read_zones(cfg.zones.path, id_field=cfg.zones.id_field, layer=cfg.zones.layer, name_field=cfg.zones.name_field,
                           category_field=cfg.zones.category_field, admin_field=cfg.zones.admin_field, tier_field=cfg.zones.tier_field)
    admin = None
    if cfg.admin_units is not None:
        admin = aoi.read_admin_units(cfg.admin_units.path, id_field=cfg.admin_units.id_field, layer=cfg.admin_units.layer, name_field=cfg.admin_units.name_field)
    ei.check_inputs(cfg.assess)
    utm = aoi.utm_crs_for(zones)
    geobox = analysis_grid(zones.to_crs(utm), cfg.resolution)
    bbox = aoi.zones_bbox_4326(zones)
    search = pipelines.search_items(cfg.stac.url, collections=cfg.stac.collections, bbox=bbox,
                                    datetime=f"{cfg.baseline.start}/{cfg.monitor.end}", max_cloud_cover=cfg.stac.max_cloud_cover)
    if not search.items:
        raise StacError(f"stac: the search on {cfg.stac.url} found no scenes for collections {cfg.stac.collections} between "
                        f"{cfg.baseline.start} and {cfg.monitor.end} over the zones; check the window, the zones and max_cloud_cover")
    plan = bandplan.plan_bands(search.items)  # no red/nir anywhere, scenes without a mask while masks: required: exit 2
    bandplan.check_scenes(plan, masks=cfg.masks, configured=("NDVI",), config=cfg.source)
    profile = pipelines.get_profile(cfg.stac.profile)
    zones_utm = zones.to_crs(utm)
    tiles = plan_tiles(zones_utm, geobox, max_px=cfg.tiling.max_tile_px, margin_px=margin_px(cfg))
    mosaic = Mosaic(out / ".tiles", geobox, zones_utm)
    mosaic.remove()
    with pipelines.dask_client(scheduler or cfg.dask.address, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker,
                               processes=cfg.dask.processes, env=profile.gdal_env):
        tiled = run_tiles(cfg, search.items, tiles, geobox, mosaic, progress=False, check_assets=True, plan=plan)
    scalings, skipped = list(tiled.scalings.values()), [f"{i}: {r}" for i, r in tiled.skipped.items()]
    reg_path = cfg.register_path or out / "register.gpkg"
    alerts = gpd.GeoDataFrame({"zone_id": [], "area_m2": [], "disturbance_type": [], "status": []}, geometry=[], crs=4326)
    if Path(reg_path).exists():
        reg = Register(reg_path).alerts()
        when = reg["first_detected"].astype(str)
        alerts = reg[(when >= str(cfg.monitor.start)) & (when <= str(cfg.monitor.end)) & reg["zone_id"].isin(zones["zone_id"])]
    zone_stats, admin_stats = assess.write_assessment(out, cfg=cfg, zones=zones, admin=admin, utm=utm, geobox=geobox, inputs=mosaic, years=tiled.years,
                                               alerts=alerts, attrs=tiled.attrs)
    mosaic.remove()
    record = {
        "kind": "assessment",
        "redline_version": provenance.library_versions()["redline"],
        "git_commit": provenance.git_commit(),
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t0, 1),
        "config": {"as_given": config_text, "sha256": hashlib.sha256((config_text or "").encode()).hexdigest(), "resolved": json.loads(cfg.model_dump_json())},
        "stac": {"url": search.url, "search": search.parameters, "client_side_cloud_filter": search.client_side_cloud_filter, "notes": search.notes},
        "grid": {"crs": str(geobox.crs), "transform": list(geobox.transform)[:6], "shape": list(geobox.shape)},
        "items": [{"id": it.id, "collection": it.collection_id, "assets": {k: a.href for k, a in it.assets.items()},
                   "scaling": {s.band: {"scale": s.scale, "offset": s.offset, "nodata": s.nodata} for s in scalings if s.item_id == it.id}}
                  for it in search.items],
        "register": {"path": str(Path(reg_path).resolve()), "alerts_used": int(len(alerts))} if Path(reg_path).exists() else None,
        **plan.record(cfg.detection.indices, cfg.masks),  # "bands" and "masks" (redline.bands)
        "failures": [f"scene {line}" for line in skipped],
        "libraries": provenance.library_versions(),
    }
    for line in skipped:
        log.warning("scene %s", line)
    reg_rel = Path(reg_path).resolve().relative_to(out.resolve()).as_posix() if Path(reg_path).resolve().is_relative_to(out.resolve()) else None
    provenance.write_manifest(out, record, exclude=(reg_rel,) if reg_rel else ())
    return zone_stats, admin_stats
