"""Patches of zones split across tiles, made whole again after the tile loop."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.windows
import shapely

from redline.alerts import alerts_from_fields, apply_unit
from redline.run.plan import ScanPlan
from redline.run.tileloop import STITCH_FIELDS
from redline.tiles import Mosaic

__all__ = ["stitch_split_zones"]


def stitch_split_zones(found: gpd.GeoDataFrame, plan: ScanPlan, mosaic: Mosaic, scan_id: str) -> gpd.GeoDataFrame:
    """Alerts of split zones (:mod:`redline.tiles`) made whole again: the pieces of one patch
    found in neighbouring tiles (same zone, touching across the cut) are grouped, and the
    patch is derived again from the written fields over the group's window with the whole
    zone, so area, dates, type and confidence are those of the whole patch and the minimum
    mapping unit applies to it (:func:`redline.alerts.apply_unit`). Alerts of unsplit zones pass
    unchanged. ``found``: the tiles' alerts (EPSG:4326); ``mosaic``: the run's mosaics with the
    per-pixel fields written for split zones (:data:`redline.run.tileloop.STITCH_FIELDS`)."""
    cfg, tiles, grid, utm, zones_utm = plan.cfg, plan.tiles, plan.grid, plan.utm, plan.zones_utm
    split = {z for t in tiles for z in t.split_ids}
    if not split or found.empty:
        return found
    mine = found["zone_id"].isin(split).values
    keep, parts = found[~mine], found[mine].to_crs(utm).reset_index(drop=True)
    if parts.empty:
        return keep
    parts_4326 = found[mine].reset_index(drop=True)
    parent = list(range(len(parts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*parts.sindex.query(parts.geometry, predicate="intersects")):
        if i < j and parts.at[i, "zone_id"] == parts.at[j, "zone_id"]:
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(parts)):
        groups.setdefault(root(i), []).append(i)
    h, w = grid.shape
    inv = ~grid.transform
    pad = 4  # pixels: the 20 m ring of the change type (redline.alerts.activity) and the patch's edge
    cells: dict[str, list[tuple[int, int, int, int]]] = {}
    for t in tiles:
        for z in t.split_ids:
            cells.setdefault(z, []).append(t.cell)
    out = [keep]
    whole = []
    for members in groups.values():
        geom = shapely.union_all(parts.geometry.iloc[members].values)
        x0, y0, x1, y1 = geom.bounds
        c0, r0 = inv * (x0, y1)
        c1, r1 = inv * (x1, y0)
        r0, c0 = max(int(np.floor(r0)) - pad, 0), max(int(np.floor(c0)) - pad, 0)
        r1, c1 = min(int(np.ceil(r1)) + pad, h), min(int(np.ceil(c1)) + pad, w)
        if len(members) == 1 and any(a <= r0 and r1 <= b and c <= c0 and c1 <= d for a, b, c, d in cells[parts.at[members[0], "zone_id"]]):
            # a patch (with its ring) wholly inside one cell: the piece was the zone there, so the
            # tile derived it exactly as the whole zone would; only the unit is left to apply
            # (a ×16 area with 160-px tiles: ~890 such specks re-derived one by one took 25 s)
            whole.append(members[0])
            continue
        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        fields = {k: mosaic.read(f"f_{k}", win) for k in STITCH_FIELDS}
        base = {n: mosaic.read(f"in_{n}_baseline", win) for n in ("NDVI", "MNDWI")}
        zone = zones_utm[zones_utm["zone_id"] == parts.at[members[0], "zone_id"]].reset_index(drop=True)
        again = alerts_from_fields(
            fields, rasterio.windows.transform(win, grid.transform), utm, zone, min_area_m2=cfg.detection.min_area_m2,
            consecutive=cfg.detection.consecutive, z_threshold=cfg.detection.z_threshold, scan_id=scan_id, baseline=base,
        )
        if not again.empty:
            touch = again.to_crs(utm).geometry.intersection(geom).area.values > 0  # this patch, not others cut by the window
            out.append(again[touch])
    out.append(parts_4326.iloc[apply_unit(parts.iloc[whole], cfg.detection.min_area_m2).index])
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs="EPSG:4326")
