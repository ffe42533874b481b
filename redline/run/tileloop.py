"""The eager part of a scan or an assessment: the tiles computed one after the other.

Each tile's graph (:func:`redline.run.graph.tile_graph`: detection fields, monitor composite,
assessment inputs and clear-pixel counts, all from one read of its scenes) is computed on the
cluster, its core written into the mosaics (:class:`redline.tiles.Mosaic`) and its alerts found
on its own zones; the orchestrators (:func:`redline.scan.run_scan`,
:func:`redline.run.assessment.run_assessment`) call :func:`run_tiles` once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import xarray as xr

import pipelines
from redline import assess
from redline.alerts import alerts_from_fields
from redline.detect import FIELDS, STACK_VARS
from redline.run.graph import items_over, resumed_graph, tile_graph
from redline.run.plan import ScanPlan
from redline.run.rasters import put_tile_rasters
from redline.run.state import State, StateWriter, StoredTile, stock_start
from redline.tiles import Mosaic, Tile

__all__ = ["STITCH_FIELDS", "Resume", "Tiled", "run_tiles"]

log = logging.getLogger(__name__)


@dataclass
class Tiled:
    """What the tile loop gathered (everything but the rasters, which went to the mosaics)."""

    found: list[gpd.GeoDataFrame] = field(default_factory=list)
    clear_px: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    skipped: dict[str, str] = field(default_factory=dict)
    scalings: dict[tuple[str, str], Any] = field(default_factory=dict)
    years: list[int] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    empty_tiles: list[Tile] = field(default_factory=list)
    #: main-thread wall seconds spent on the computed tiles: ``mosaics`` (writing them into the
    #: mosaics) and ``polygons`` (their alerts); the cluster computes the next tiles meanwhile
    seconds: dict[str, float] = field(default_factory=lambda: {"mosaics": 0.0, "polygons": 0.0})


def run_tiles(plan: ScanPlan, mosaic: Mosaic, *, progress: bool | None, scan_id: str | None = None, check_assets: bool = False,
              state: StateWriter | None = None, resume: Resume | None = None) -> Tiled:
    """The eager part of a scan (or of ``redline assess``), tile by tile: each tile's graph —
    detection fields, monitor composite, assessment inputs and clear-pixel counts, all from one
    read of its scenes — is computed on the cluster and its core written into ``mosaic``; its
    alerts (found by ``scan_id``) are found on its own zones (``scan_id`` None: the
    assessment only). At most ``tiling.in_flight`` tiles are in memory at once.
    ``check_assets``: check each scene's assets while loading (the scan probed them already).
    The plan's scenes, tiles and grid; its band plan says which bands every scene has.
    ``state``: also write each tile's baseline model, its looks from
    :func:`redline.run.state.stock_start` on and the assessment inputs of the looks before it
    (:class:`redline.run.state.StateWriter`; committed by the caller).
    ``resume``: a rescan from a state (:class:`Resume`): each tile starts from its stored model
    and looks and reads only ``plan.items`` of the changed days (``resume.items``); the
    results are those of a scan over every scene."""
    got = Tiled()
    cfg, items, tiles, grid = plan.cfg, plan.items, plan.tiles, plan.grid
    first = stock_start(cfg)
    if resume is not None:  # every tile of the state computes (its stored looks), reading its new scenes if any
        tile_items = {t.id: items_over(resume.items, t.geobox(grid)) for t in tiles}
        runnable, got.empty_tiles = list(tiles), []
    else:
        tile_items = {t.id: items_over(items, t.geobox(grid)) for t in tiles}
        runnable = [t for t in tiles if tile_items[t.id]]
        got.empty_tiles = [t for t in tiles if not tile_items[t.id]]
    stored: dict[str, StoredTile] = {}

    def graph(tile: Tile) -> list:
        gb = tile.geobox(grid)
        if resume is not None:
            st = stored[tile.id] = resume.state.stored(tile.id, resume.days, chunk=plan.chunk_px)
            g = resumed_graph(cfg, st.model, st.kept, tile_items[tile.id], gb, plan=plan.bands, chunk=plan.chunk_px)
            inputs = assess.resumed_inputs(cfg, g.reflectance, st.pre)
        else:
            g = tile_graph(cfg, tile_items[tile.id], gb, check_assets=check_assets, plan=plan.bands, chunk=plan.chunk_px)
            inputs = assess.lazy_inputs(cfg, g.reflectance)
        for sc in g.scalings:
            got.scalings[(sc.item_id, sc.band)] = sc
        for line in g.skipped:
            got.skipped.setdefault(line.split(":", 1)[0], line.split(":", 1)[-1].strip())
        clear = g.reflectance["red"].notnull().sum(("y", "x"))
        kept = []
        if state is not None and resume is not None:  # the new state: the same model, the looks its kept files lack
            kept = [g.reflectance.isel(time=np.flatnonzero(~np.isin(g.reflectance["time"].values, st.looks_times)))]
        elif state is not None:  # what a rescan starts from (redline.run.state): the model, the later looks, the earlier ones' last clear day
            days = g.reflectance["time"].values.astype("datetime64[D]")
            kept = [g.model, g.reflectance.isel(time=np.flatnonzero(days >= first)), assess.last_clear_of(g.reflectance.isel(time=np.flatnonzero(days < first)))]
        return kept + ([g.detection, g.composite, inputs, clear] if scan_id is not None else [inputs, clear])

    results = pipelines.compute_tiles(runnable, graph, scenes=[len(tile_items[t.id]) for t in runnable], show=progress, in_flight=cfg.tiling.in_flight,
                                      io=pipelines.cluster_io_stats)
    for tile, computed in results:
        t = time.perf_counter()
        clear_np = computed[-1]
        counts = pd.Series(clear_np.values.astype(int), index=pd.DatetimeIndex(clear_np["time"].values))
        if resume is not None:
            st = stored.pop(tile.id)
            if state is not None:
                state.put(tile, model=None, stock=computed[0], base=st.base, kept_looks=st.looks)
                computed = computed[1:]
            counts = pd.concat([st.pre_clear, counts])
        elif state is not None:
            model, stock, pre_last, computed = computed[0], computed[1], computed[2], computed[3:]
            state.put(tile, model=model, stock=stock, pre=_pre_stock(computed[-2], pre_last, first),
                      pre_clear=counts[counts.index.values.astype("datetime64[D]") < first])
        if state is not None:
            got.seconds["state"] = got.seconds.get("state", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
        extra_np = computed[-2]
        got.years = assess.write_inputs(mosaic, tile, extra_np)
        got.attrs = dict(extra_np.attrs)
        counts.index = counts.index.normalize()
        got.clear_px = got.clear_px.add(counts.groupby(level=0).sum(), fill_value=0).astype(int)
        if scan_id is None:
            got.seconds["mosaics"] += time.perf_counter() - t
            continue
        det_np, comp_np = computed[0], computed[1]
        fields = {k: det_np[k].values for k in FIELDS}
        put_tile_rasters(mosaic, tile, fields, {k: comp_np[k].values for k in ("red", "green", "blue")})
        utm, zones_utm = plan.utm, plan.zones_utm
        if tile.split_ids:  # the fields a patch crossing a cut is stitched from (redline.run.stitch)
            for k in STITCH_FIELDS:
                mosaic.put(f"f_{k}", tile, fields[k].astype("float32"), nodata=np.nan)
        got.seconds["mosaics"] += time.perf_counter() - t
        t = time.perf_counter()
        # pieces of split zones keep every patch (the unit applies to the stitched patch)
        got.found.append(alerts_from_fields(
            fields, tile.geobox(grid).transform, utm, tile.zones(zones_utm, grid), min_area_m2=cfg.detection.min_area_m2,
            unit_exempt=set(tile.split_ids), consecutive=cfg.detection.consecutive, z_threshold=cfg.detection.z_threshold,
            scan_id=scan_id, baseline={"NDVI": extra_np["NDVI_baseline"].values, "MNDWI": extra_np["MNDWI_baseline"].values},
        ))
        got.seconds["polygons"] += time.perf_counter() - t
        log.info("tile %s: %d zone(s), %d piece(s) of split zones, %d scene(s), %d alert(s)",
                 tile.id, len(tile.zone_ids), len(tile.split_ids), len(tile_items[tile.id]), len(got.found[-1]))
    return got


@dataclass(frozen=True)
class Resume:
    """A rescan from ``state``: ``items``, the scenes of the solar days ``days`` that are new or
    changed since it (read now; the state's looks of those days are left out)."""

    state: State
    days: set[str]
    items: list[pystac.Item]


def _pre_stock(inputs: xr.Dataset, last_clear: xr.DataArray, first: np.datetime64) -> xr.Dataset:
    """The assessment inputs a rescan cannot compute from the looks a state keeps (those from
    ``first`` on): the baseline period's, the annual NDVI of the years before ``first``, and
    ``last_clear`` of the looks before it."""
    year = int(str(first)[:4])
    out = {k: inputs[k] for k in inputs.data_vars if str(k).endswith("_baseline")}
    annual = inputs["ndvi_annual"]
    out["ndvi_annual"] = annual.isel(year=np.flatnonzero(annual["year"].values < year))
    out["last_clear"] = last_clear
    return xr.Dataset(out)


#: Per-pixel fields :func:`redline.alerts.alerts_from_fields` reads, written for tiles holding
#: pieces of split zones so that patches cut by a tile edge can be stitched.
STITCH_FIELDS = ("disturbed", "weak", "first_date", "last_observed", "last_normal", "n_confirm", "zscore", "magnitude", "burn",
                  *(f"pre_{v}" for v in STACK_VARS), *(f"post_{v}" for v in STACK_VARS))
