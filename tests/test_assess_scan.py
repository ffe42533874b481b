"""The assessment a real scan of the generated scenes writes: RSEI on a cleared zone, admin
figures as pixel aggregates, the GeoPackage, COGs, figures; and `redline assess` alone."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features

from redline.vocabulary import DISTURBANCE_TYPES
from redline.assess.rsei import GRADES
from tests._reference import coverage_fractions, weighted_mean
from tests.configs import cli_config

pytestmark = pytest.mark.slow

GRADE_KEYS = [k for k, _ in GRADES.values()]


def _read(path):
    """Band 1 as float64, NaN at the raster's no-data (flags are uint8 with nodata 255)."""
    with rasterio.open(path) as src:
        return src.read(1, masked=True).astype("float64").filled(np.nan), src.transform, src.crs


@pytest.fixture(scope="module")
def zone_stats(small_scan):
    return pd.read_csv(small_scan.out_dir / "zone_stats.csv", dtype={"admin_id": str}).set_index("zone_id")


@pytest.fixture(scope="module")
def admin_stats(small_scan):
    return pd.read_csv(small_scan.out_dir / "admin_stats.csv", dtype={"admin_id": str}).set_index("admin_id")


def test_a_cleared_zone_scores_lower_after_than_before(small_scan, truth, zone_stats):
    out = small_scan.out_dir
    before, transform, crs = _read(out / "rasters" / "rsei_baseline.tif")
    after, _, _ = _read(out / "rasters" / "rsei_monitor.tif")
    clearing = truth[(truth["type"] == "clearing") & truth["above_mmu"]].to_crs(crs)
    assert len(clearing) >= 1
    for ev in clearing.itertuples():
        cover = coverage_fractions(ev.geometry, transform, before.shape, k=10)
        b, a = weighted_mean(before, cover), weighted_mean(after, cover)
        print(f"RSEI over clearing {ev.event_id}: {b:.3f} before, {a:.3f} after")
        assert a < b - 0.2
        zone = zone_stats.loc[ev.zone_id]
        print(f"zone {ev.zone_id}: RSEI {zone.rsei_baseline:.4f} → {zone.rsei_monitor:.4f}")
        assert zone.rsei_monitor < zone.rsei_baseline
        assert zone.rsei_change == pytest.approx(zone.rsei_monitor - zone.rsei_baseline, abs=2e-4)
        assert zone.rsei_monitor_share_good + zone.rsei_monitor_share_excellent < zone.rsei_baseline_share_good + zone.rsei_baseline_share_excellent


def test_rsei_is_higher_where_greener_and_records_its_variant(small_scan):
    meta = json.loads((small_scan.out_dir / "assessment.json").read_text(encoding="utf-8"))
    assert meta["rsei"]["components"] == ["NDVI", "WET", "NDBSI"]
    assert "no thermal band" in meta["rsei"]["variant"]
    assert meta["rsei"]["loadings_pc1"]["NDVI"] > 0 and meta["rsei"]["loadings_pc1"]["WET"] > 0 and meta["rsei"]["loadings_pc1"]["NDBSI"] < 0
    rsei, _, _ = _read(small_scan.out_dir / "rasters" / "rsei_monitor.tif")
    ndvi, _, _ = _read(small_scan.out_dir / "rasters" / "ndvi_monitor.tif")
    ok = np.isfinite(rsei) & np.isfinite(ndvi)
    assert np.corrcoef(rsei[ok], ndvi[ok])[0, 1] > 0.5
    # FVC end-members: 5 % / 95 % NDVI of the land pixels inside the zones (RSEI is NaN on water)
    soil, veg = meta["fvc_end_members"]["monitor"]["ndvi_soil"], meta["fvc_end_members"]["monitor"]["ndvi_veg"]
    _, transform, crs = _read(small_scan.out_dir / "rasters" / "ndvi_monitor.tif")
    zones = gpd.read_file(small_scan.out_dir / "zones.geojson").to_crs(crs)
    land = rasterio.features.geometry_mask(zones.geometry, out_shape=ndvi.shape, transform=transform, invert=True) & np.isfinite(rsei)
    assert np.quantile(ndvi[land], 0.05) == pytest.approx(soil, abs=1e-3) and np.quantile(ndvi[land], 0.95) == pytest.approx(veg, abs=1e-3)
    assert soil > np.nanquantile(ndvi, 0.01)  # water (NDVI < 0) is not a soil end-member


@pytest.mark.parametrize("column", ["ndvi_monitor", "ndvi_baseline", "fvc_baseline", "rsei_monitor", "rsei_baseline", "valid_obs_fraction"])
def test_admin_figures_are_the_pixel_aggregate_of_their_zones(small_scan, small_scenes, admin_stats, column):
    raster = {"valid_obs_fraction": "observed"}.get(column, column)
    values, transform, crs = _read(small_scan.out_dir / "rasters" / f"{raster}.tif")
    zones = gpd.read_file(small_scenes.zones, layer="hongxian").to_crs(crs)
    for admin_id, group in zones.groupby("XZQDM"):
        cover = coverage_fractions(group.union_all(), transform, values.shape, k=20)
        assert admin_stats.loc[admin_id, column] == pytest.approx(weighted_mean(values, cover), abs=5e-4)


def test_admin_rsei_is_not_a_mean_of_zone_means(small_scan, small_scenes, zone_stats, admin_stats):
    """The wetland zone's water is left out of RSEI: the county's pixel aggregate differs from the
    zone-area-weighted mean of zone means (the check above would fail on a mean of means)."""
    zones = gpd.read_file(small_scenes.zones, layer="hongxian")
    zs = zone_stats.join(zones.set_index("HXBH")["XZQDM"])
    diffs = []
    for admin_id, g in zs.groupby("XZQDM"):
        mean_of_means = float((g["rsei_monitor"] * g["area_km2"]).sum() / g["area_km2"].sum())
        diffs.append(abs(mean_of_means - admin_stats.loc[admin_id, "rsei_monitor"]))
    assert max(diffs) > 0.005


def test_tables_keep_the_contract_and_add_the_assessment(small_scan, zone_stats, admin_stats):
    contract = ["zone_name", "category", "admin_id", "area_km2", "valid_obs_fraction", "ndvi_baseline", "ndvi_monitor", "ndvi_change",
                "fvc_monitor", "disturbed_area_m2", "disturbed_fraction", "alerts_total", *[f"alerts_{t}" for t in DISTURBANCE_TYPES], "status"]
    assert list(zone_stats.columns[: len(contract)]) == contract
    for c in ("fvc_baseline", "fvc_change", "rsei_baseline", "rsei_monitor", "rsei_change", "rsei_grade_monitor", "monitored_fraction",
              "ndvi_trend", "ndvi_trend_slope", "ndvi_trend_p", "alerts_status_new", "rsei_variant", *[f"rsei_monitor_share_{k}" for k in GRADE_KEYS]):
        assert c in zone_stats.columns and c in admin_stats.columns, c
    for table in (zone_stats, admin_stats):
        shares = table[[f"rsei_monitor_share_{k}" for k in GRADE_KEYS]].sum(axis=1)
        assert np.allclose(shares, 1.0, atol=2e-3)
        statuses = table[[c for c in table.columns if c.startswith("alerts_status_")]].sum(axis=1)
        assert (statuses == table["alerts_total"]).all()
        assert set(table["rsei_grade_monitor"]) <= {"差", "较差", "一般", "良", "优"}
    assert (zone_stats["ndvi_trend"] == "too_short").all()  # the small scenes span two years
    assert (zone_stats["ndvi_trend_years"] == 2).all()


def test_geopackage_cogs_and_figures(small_scan, zone_stats, admin_stats):
    out = small_scan.out_dir
    gz = gpd.read_file(out / "assessment.gpkg", layer="zone_stats")
    ga = gpd.read_file(out / "assessment.gpkg", layer="admin_stats")
    annual = gpd.read_file(out / "assessment.gpkg", layer="ndvi_annual")
    assert gz.crs.to_epsg() == 4326 and ga.crs.to_epsg() == 4326
    assert sorted(gz["zone_id"]) == sorted(zone_stats.index) and not gz.geometry.is_empty.any()
    assert np.allclose(gz.set_index("zone_id").loc[zone_stats.index, "rsei_monitor"], zone_stats["rsei_monitor"])
    assert sorted(ga["admin_id"]) == sorted(admin_stats.index)
    assert len(annual) == 2 * (len(zone_stats) + len(admin_stats)) and set(annual["year"]) == {2022, 2023}
    for name in ("rsei_baseline", "rsei_monitor", "rsei_change", "rsei_grade_monitor", "fvc_baseline", "fvc_monitor", "ndvi_annual"):
        with rasterio.open(out / "rasters" / f"{name}.tif") as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", name
    with rasterio.open(out / "rasters" / "ndvi_annual.tif") as src:
        assert src.descriptions == ("2022", "2023")
    from PIL import Image

    for fig in ("rsei_grades_by_zone.png", "ndvi_trends_by_county.png", "ndvi_trends_by_zone.png"):
        img = np.asarray(Image.open(out / "figures" / fig).convert("RGB"))
        assert img.shape[0] > 200 and img.std() > 10
    m = json.loads((out / "manifest.json").read_text())
    assert "assessment.gpkg" in m["outputs"] and "rasters/rsei_monitor.tif" in m["outputs"]


def test_assess_command_runs_the_assessment_alone(small_scan, small_scenes, stac_url, zone_stats, tmp_path):
    cfg = cli_config(small_scenes, stac_url, tmp_path, register=str(small_scan.register))
    out = tmp_path / "assess"
    res = subprocess.run([sys.executable, "-m", "redline.cli", "assess", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "510181-HX-0001" in res.stdout and "no thermal band" in res.stdout
    assert not (out / "alerts.geojson").exists() and not (out / "rasters" / "disturbance_date.tif").exists()
    alone = pd.read_csv(out / "zone_stats.csv", dtype={"admin_id": str}).set_index("zone_id")
    assert list(alone.columns) == list(zone_stats.columns)
    for c in ("valid_obs_fraction", "ndvi_baseline", "ndvi_monitor", "fvc_monitor", "rsei_baseline", "rsei_monitor", "alerts_total", "disturbed_area_m2"):
        np.testing.assert_allclose(alone.loc[zone_stats.index, c], zone_stats[c], atol=1e-4, err_msg=c)
    for name in ("ndvi_baseline", "ndvi_monitor", "observed", "rsei_monitor", "fvc_monitor"):
        assert (out / "rasters" / f"{name}.tif").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "assessment" and len(m["items"]) == small_scan.n_items
    verify = subprocess.run([sys.executable, "-m", "redline.cli", "verify", str(out), "--register", str(small_scan.register)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
