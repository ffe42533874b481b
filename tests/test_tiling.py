"""Processing tiles (issue #9): zones grouped into tiles, each computed and written on its own;
a tiled scan equals the one-tile scan of the same scenes."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox

from redline.assess import rsei as rsei_index
from redline.assess import fvc, stream_quantiles
from redline.tiles import ZONE_PAD_PX, Mosaic, plan_tiles


def _grid_and_zones():
    crs = "EPSG:32648"
    zones = gpd.GeoDataFrame(
        {"zone_id": ["a", "b", "c", "d"]},
        geometry=[
            shapely.box(400_000, 3_399_000, 400_300, 3_399_300),  # cell (0, 0)
            shapely.box(400_550, 3_399_050, 400_900, 3_399_250),  # crosses the col-cell edge at 640 m, centre in cell (0, 1)
            shapely.box(400_100, 3_398_000, 400_200, 3_398_100),  # cell (1, 0)
            shapely.box(400_050, 3_399_050, 400_150, 3_399_150),  # inside a's cell
        ],
        crs=crs,
    )
    w, s, e, n = zones.total_bounds
    return GeoBox.from_bbox((w - 20, s - 20, e + 20, n + 20), crs=crs, resolution=10), zones


def test_every_zone_is_in_exactly_one_tile_whose_core_covers_it():
    grid, zones = _grid_and_zones()
    tiles = plan_tiles(zones, grid, max_px=64, margin_px=5)
    owners = {z: [t.id for t in tiles if z in t.zone_ids] for z in zones["zone_id"]}
    assert all(len(v) == 1 for v in owners.values()), owners
    assert len(tiles) == 3 and owners["a"] == owners["d"] != owners["b"]
    inv = ~grid.transform
    h, w = grid.shape
    for t in tiles:
        r0, r1, c0, c1 = t.core
        for geom in zones[zones["zone_id"].isin(t.zone_ids)].geometry:
            x0, y0, x1, y1 = geom.bounds
            (ca, ra), (cb, rb) = inv * (x0, y1), inv * (x1, y0)
            assert r0 <= ra - ZONE_PAD_PX + 1e-6 or r0 == 0
            assert c0 <= ca - ZONE_PAD_PX + 1e-6 or c0 == 0
            assert r1 >= rb and c1 >= cb
        wr0, wr1, wc0, wc1 = t.window
        assert (wr0, wc0) == (max(r0 - 5, 0), max(c0 - 5, 0)) and (wr1, wc1) == (min(r1 + 5, h), min(c1 + 5, w))
        gb = t.geobox(grid)
        assert gb.shape == t.shape and gb.crs == grid.crs
        assert gb.transform.c == pytest.approx(grid.transform.c + wc0 * 10) and gb.transform.f == pytest.approx(grid.transform.f - wr0 * 10)
    # zone b crosses the 64-px cell edge yet sits in one tile, whose core reaches over the edge
    tb = next(t for t in tiles if "b" in t.zone_ids)
    assert tb.core[2] < 64 < tb.core[3]


def test_mosaic_blocks_cover_each_core_once_and_streamed_statistics_equal_in_memory(tmp_path):
    grid, zones = _grid_and_zones()
    tiles = plan_tiles(zones, grid, max_px=64, margin_px=3)
    rng = np.random.default_rng(3)
    full = {k: rng.normal(0.4, 0.2, grid.shape).astype("float32") for k in ("NDVI", "WET", "NDBSI", "MNDWI")}
    full["MNDWI"] -= 0.5
    mosaic = Mosaic(tmp_path / "m", grid, zones)
    for t in tiles:
        r0, r1, c0, c1 = t.window
        for k, v in full.items():
            mosaic.put(k, t, v[r0:r1, c0:c1], nodata=np.nan)
    blocks = list(mosaic.blocks())
    # blocks do not overlap and every zone pixel is in one
    seen = np.zeros(grid.shape, int)
    for wdw in blocks:
        seen[wdw.row_off:wdw.row_off + wdw.height, wdw.col_off:wdw.col_off + wdw.width] += 1
    inside = np.zeros(grid.shape, bool)
    for wdw in blocks:
        inside[wdw.row_off:wdw.row_off + wdw.height, wdw.col_off:wdw.col_off + wdw.width] = mosaic.inside(wdw)
    assert seen.max() == 1 and inside.sum() > 0
    expect_inside = rasterio.features.geometry_mask(zones.geometry, out_shape=grid.shape, transform=grid.transform, invert=True)
    assert (inside == expect_inside).all()
    # FVC end-members: streamed over the zones' pixels == numpy on the same pixels
    got = stream_quantiles(lambda: (np.where(mosaic.inside(w), mosaic.read("NDVI", w), np.nan) for w in blocks), (0.05, 0.95))
    _, soil, veg = fvc(np.where(expect_inside, full["NDVI"], np.nan))
    assert got == pytest.approx([soil, veg], abs=1e-7)
    assert got[0] == pytest.approx(float(np.quantile(full["NDVI"][expect_inside], 0.05)), abs=1e-7)
    # RSEI fitted block by block == fitted on whole arrays
    comps = {n: np.where(expect_inside, full[n], np.nan) for n in ("NDVI", "WET", "NDBSI")}
    whole = rsei_index.rsei_periods({"p": comps}, {"p": full["MNDWI"]})

    def blk():
        for w in blocks:
            m = mosaic.inside(w)
            yield {"p": {n: np.where(m, mosaic.read(n, w), np.nan) for n in ("NDVI", "WET", "NDBSI")}}, {"p": mosaic.read("MNDWI", w)}

    fit = rsei_index.fit_rsei(blk, ["p"], ("NDVI", "WET", "NDBSI"))
    assert fit.loadings == whole.loadings and fit.pc1_share == pytest.approx(whole.pc1_share, abs=1e-4)
    for w in blocks:
        m = mosaic.inside(w)
        piece = rsei_index.apply_rsei(fit, "p", {n: np.where(m, mosaic.read(n, w), np.nan) for n in ("NDVI", "WET", "NDBSI")}, mosaic.read("MNDWI", w))
        ref = whole.rsei["p"][w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]
        np.testing.assert_allclose(piece, ref, atol=1e-6, equal_nan=True)


def test_chip_groups_fit_the_window_limit_and_hold_each_alert_once():
    """Alerts spread over a 2 km grid: one group when the limit holds their whole window, cut
    along the longer side until each window fits, never an alert in two groups or none."""
    from redline.run.chips import chip_window, chip_groups

    crs = "EPSG:32648"
    grid = GeoBox.from_bbox((400_000, 3_398_000, 402_000, 3_400_000), crs=crs, resolution=10)  # 200 x 200 px
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(400_100, 401_900, 40), rng.uniform(3_398_100, 3_399_900, 40)
    alerts = gpd.GeoDataFrame({"alert_id": [f"a{i}" for i in range(40)]}, geometry=[shapely.box(x, y, x + 30, y + 20) for x, y in zip(xs, ys)], crs=crs)
    assert [g.tolist() for g in chip_groups(alerts, grid, 10.0, 200 * 200)] == [list(range(40))]
    for limit in (100 * 100, 60 * 60, 1):
        groups = chip_groups(alerts, grid, 10.0, limit)
        assert sorted(i for g in groups for i in g) == list(range(40))
        for g in groups:
            h, w = chip_window(alerts.iloc[g], grid, 10.0).shape
            assert h * w <= limit or len(g) == 1
        assert 1 < len(groups) <= 40
    assert len(chip_groups(alerts, grid, 10.0, 1)) == 40
    assert chip_groups(alerts.iloc[:0], grid, 10.0, 100) == []


@pytest.mark.slow
@pytest.mark.parametrize("max_px, n_tiles, n_split", [(96, 3, 0), (64, 7, 3)])
def test_tiled_scan_equals_the_one_tile_scan(small_config, small_scan, tmp_path, max_px, n_tiles, n_split):
    """96 px: three tiles, each zone whole in one; 64 px: all three zones are split into
    pieces over several tiles and alerts crossing the cuts are stitched back."""
    from redline.scan import run_scan

    cfg = small_config.model_copy(update={"tiling": small_config.tiling.model_copy(update={"max_tile_px": max_px, "in_flight": 2})})
    tiled = run_scan(cfg, tmp_path / "out")
    one = small_scan
    m_tiled = json.loads((tmp_path / "out" / "manifest.json").read_text())
    m_one = json.loads((one.out_dir / "manifest.json").read_text())
    assert len(m_one["tiles"]) == 1 and len(m_tiled["tiles"]) == n_tiles
    whole = [z for t in m_tiled["tiles"] for z in t["zones"]]
    split = {z for t in m_tiled["tiles"] for z in t["pieces_of"]}
    assert len(split) == n_split and len(whole) == len(set(whole))  # each unsplit zone once
    assert sorted(set(whole) | split) == sorted(one.zone_stats["zone_id"]) and not set(whole) & split
    assert all(r1 - r0 <= 2 * max_px + 4 and c1 - c0 <= 2 * max_px + 4 for t in m_tiled["tiles"] for r0, r1, c0, c1 in [(*t["rows"], *t["cols"])])
    # the same alerts: no alert lost or counted twice at tile edges
    cols = ["zone_id", "first_detected", "disturbance_type", "confidence", "n_observations"]
    a, b = (x.sort_values(["zone_id", "first_detected", "area_m2"]).reset_index(drop=True) for x in (one.alerts, tiled.alerts))
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a["area_m2"], b["area_m2"], rtol=1e-9)
    # the same chips (below their title band, which names the alert): their windows are grouped
    # by the memory budget, not by the tiles
    from PIL import Image

    from maps import CHIP_TITLE_PX

    for ra, rb in zip(a.itertuples(), b.itertuples()):
        for col in ("chip_before", "chip_after"):
            pa, pb = (np.asarray(Image.open(d / getattr(r, col))) for d, r in ((one.out_dir, ra), (tmp_path / "out", rb)))
            np.testing.assert_array_equal(pa[CHIP_TITLE_PX:], pb[CHIP_TITLE_PX:])
    # the same zone and county statistics (region-wide FVC/RSEI fits stream over the same pixels)
    num = [c for c in one.zone_stats.columns if pd.api.types.is_numeric_dtype(one.zone_stats[c])]
    za, zb = (x.sort_values("zone_id").reset_index(drop=True) for x in (one.zone_stats, tiled.zone_stats))
    np.testing.assert_allclose(za[num].astype(float), zb[num].astype(float), rtol=1e-5, atol=1e-6)
    assert (za["status"] == zb["status"]).all()
    # the same per-pixel detection rasters inside the zones
    zones = gpd.read_file(small_config.zones.path)
    for stem in ("disturbance_date", "n_confirm", "rsei_monitor"):
        with rasterio.open(one.out_dir / "rasters" / f"{stem}.tif") as s1, rasterio.open(tmp_path / "out" / "rasters" / f"{stem}.tif") as s2:
            assert (s1.transform, s1.shape) == (s2.transform, s2.shape)
            inside = rasterio.features.geometry_mask(zones.to_crs(s1.crs).geometry, out_shape=s1.shape, transform=s1.transform, invert=True)
            np.testing.assert_allclose(s1.read(1)[inside], s2.read(1)[inside], atol=1e-6)
    assert not (tmp_path / "out" / ".tiles").exists()  # the mosaics' working files are removed
