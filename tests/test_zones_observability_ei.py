"""Zone tiers (管控分区), observability per zone (so that "no alert" is never read as "no change")
and the HJ 192-2015 ecological index EI per county.

One extra real scan (module-scoped) of a small demo build (128 px) in which one zone is kept
under thick cloud for the whole monitor window, with a tier field on the zones and a county
table for EI.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely

from pipelines import serve_stac
from redline.assess import ei as EI
from redline.config import load_config
from redline.demo import generate_demo
from redline.errors import ConfigError, ZonesError
from tests.browser import ARTIFACTS, open_page
from tests.test_bad_input import run_cli

OVERCAST = "510182-HX-0004"
TIERS = {"510181-HX-0001": "核心保护区", "510182-HX-0003": "general", OVERCAST: "一般控制区"}
TABLE = pd.DataFrame({  # county areas here are ~0.8 km² (the 128 px build)
    "admin_id": ["510181", "510182"],
    "pollution_load": [12.5, 20.0],
    "env_restriction": [0.0, -2.0],
    "water_resources_1e6m3": [np.nan, 0.3],
    "erosion_severe_km2": [np.nan, 0.02],
    "erosion_moderate_km2": [np.nan, 0.05],
})


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("overcast") / "b", preset="small", size=128, overcast_zones=(OVERCAST,))


@pytest.fixture(scope="module")
def scan(build, tmp_path_factory):
    from redline.scan import run_scan

    tmp = tmp_path_factory.mktemp("overcast-scan")
    zones = gpd.read_file(build.zones, layer="hongxian")
    zones["GKFQ"] = zones["HXBH"].map(TIERS)
    zones.to_file(tmp / "zones.gpkg", layer="hongxian", driver="GPKG")
    TABLE.to_csv(tmp / "ei.csv", index=False)
    with serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}, "zones": {"path": str(tmp / "zones.gpkg"), "tier_field": "GKFQ"},
                                                   "assess": {"county_table": str(tmp / "ei.csv")}})
        return run_scan(cfg, tmp / "out", config_text=Path(build.config).read_text(encoding="utf-8")), cfg


# --- tiers ------------------------------------------------------------------------------
def test_zone_tiers_are_read_in_both_languages_and_split_alerts_by_tier(scan):
    result, _ = scan
    zs = result.zone_stats.set_index("zone_id")
    assert zs["tier"].to_dict() == {"510181-HX-0001": "core", "510182-HX-0003": "general", OVERCAST: "general"}
    a = result.admin_stats.set_index("admin_id")
    tiers = [t for t in ("core", "general") if f"alerts_tier_{t}" in a]
    assert tiers == ["core", "general"]
    # per-tier counts and areas add up to the unit's totals (every zone has a tier here)
    assert (a[[f"alerts_tier_{t}" for t in tiers]].sum(axis=1) == a["alerts_total"]).all()
    assert np.allclose(a[[f"disturbed_area_m2_tier_{t}" for t in tiers]].sum(axis=1), a["disturbed_area_m2"], atol=0.5)
    # and match the zones' own rows
    for t in tiers:
        by_admin = zs[zs["tier"] == t].groupby("admin_id")["alerts_total"].sum()
        assert a[f"alerts_tier_{t}"].to_dict() == {k: int(by_admin.get(k, 0)) for k in a.index}
    alerts = gpd.read_file(result.out_dir / "alerts.geojson")
    assert len(alerts) > 0
    assert (alerts["zone_tier"] == alerts["zone_id"].map(zs["tier"])).all()


def test_unknown_tier_value_is_one_line_exit_2(build, tmp_path):
    zones = gpd.read_file(build.zones, layer="hongxian")
    zones["GKFQ"] = ["核心保护区", "缓冲带", "general"]
    zones.to_file(tmp_path / "zones.gpkg", layer="hongxian", driver="GPKG")
    text = Path(build.config).read_text(encoding="utf-8").replace("path: zones.gpkg,", f"path: {tmp_path / 'zones.gpkg'}, tier_field: GKFQ,")
    text = text.replace("landcover.tif", str(build.land_cover)).replace("rivers.gpkg", str(build.rivers))
    text = text.replace("counties.gpkg", str(build.counties))
    (tmp_path / "scan.yml").write_text(text, encoding="utf-8")
    res = run_cli("validate", tmp_path / "scan.yml")
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "缓冲带" in line and "GKFQ" in line and "core (核心保护区)" in line and "Traceback" not in res.stderr
    import aoi

    with pytest.raises(ZonesError, match="缓冲带"):
        aoi.read_zones(tmp_path / "zones.gpkg", id_field="HXBH", tier_field="GKFQ")


# --- observability ----------------------------------------------------------------------
def test_zone_under_cloud_all_window_is_not_observed_and_has_no_alert(scan):
    result, cfg = scan
    zs = result.zone_stats.set_index("zone_id")
    z = zs.loc[OVERCAST]
    print(zs[["status", "alerts_total", "valid_obs_fraction", "clear_obs_monitor", "clear_obs_baseline", "last_clear_date", "last_clear_age_days"]].to_string())
    assert z["valid_obs_fraction"] < 0.05 and z["clear_obs_monitor"] == 0
    assert z["status"] == "not_observed" and z["alerts_total"] == 0
    assert z["clear_obs_baseline"] >= 10  # it was seen in the baseline …
    last = dt.date.fromisoformat(z["last_clear_date"])
    assert last <= cfg.baseline.end  # … and last seen there
    assert z["last_clear_age_days"] == (cfg.monitor.end - last).days >= 365
    for zid in zs.index.drop(OVERCAST):  # the others were seen often and lately
        o = zs.loc[zid]
        assert o["valid_obs_fraction"] > 0.95 and o["clear_obs_monitor"] >= 8 and o["last_clear_age_days"] <= 30
        assert o["status"] != "not_observed"
    # per-pixel check of the median clear count against the written raster
    with rasterio.open(result.out_dir / "rasters" / "nclear_monitor.tif") as src:
        counts = src.read(1)
    assert counts.max() >= 10 and counts.min() == 0
    a = result.admin_stats.set_index("admin_id")
    assert a.loc["510182", "zones_not_observed"] == 1 and np.isfinite(a.loc["510182", "clear_obs_monitor"])


def test_zones_report_the_share_of_looks_the_baseline_could_not_judge(scan):
    """unsupported_fraction: the zone's clear monitor looks without seasonal support (detector
    field n_mon_unsupported over the clear monitor looks nclear_monitor, summed over its pixels),
    checked against the written rasters read back with rasterio; unsupported_months lists
    months; none for a zone never seen."""
    import rasterio.mask

    result, _ = scan
    zs = result.zone_stats.set_index("zone_id")
    zones = gpd.read_file(result.out_dir / "zones.geojson").set_index("zone_id")
    rdir = result.out_dir / "rasters"
    with rasterio.open(rdir / "n_unsupported_monitor.tif") as u, rasterio.open(rdir / "nclear_monitor.tif") as c:
        for zid in zs.index.drop(OVERCAST):
            geom = [zones.to_crs(u.crs).geometry[zid]]
            un, _ = rasterio.mask.mask(u, geom, crop=True, filled=False, indexes=1)
            cl, _ = rasterio.mask.mask(c, geom, crop=True, filled=False, indexes=1)
            share = float(un.sum()) / float(cl.sum())
            assert 0.0 <= zs.loc[zid, "unsupported_fraction"] < 0.5
            assert abs(zs.loc[zid, "unsupported_fraction"] - share) < 0.02, zid  # exactextract weights edge pixels by coverage
    assert np.isnan(zs.loc[OVERCAST, "unsupported_fraction"])  # no clear monitor look: nothing to judge
    months = zs["unsupported_months"].dropna().astype(str)
    assert all(m == "" or set(m.split(",")) <= {str(k) for k in range(1, 13)} for m in months)
    a = result.admin_stats.set_index("admin_id")
    assert np.isfinite(a["unsupported_fraction"]).all()


def test_map_marks_the_zone_that_could_not_be_seen(scan):
    result, _ = scan
    zones = json.loads((result.out_dir / "zones.geojson").read_text(encoding="utf-8"))
    props = {f["properties"]["zone_id"]: f["properties"] for f in zones["features"]}
    assert props[OVERCAST]["status"] == "not_observed" and props[OVERCAST]["clear_obs_monitor"] == 0
    v = open_page(result.map_html)
    try:
        js = v.driver.execute_script
        marked = js("return Array.from(document.querySelectorAll('path.redline-not-observed')).length")
        assert marked == 1
        fill = js("return getComputedStyle(document.querySelector('path.redline-not-observed')).fill")
        assert "redline-hatch" in fill
        legend = js("return document.querySelector(\"#redline-legend [data-zone-status='not_observed']\").textContent")
        assert "未有效观测" in legend
        tips = js("return window.redlineMap.zoneLayer.getLayers().map(g => g.getTooltip() ? String(g.getTooltip().getContent()) : '')")
        tip = next(t for t in tips if OVERCAST in t)
        assert "clear views 晴空观测次数 0" in tip and "last clear view 最近晴空观测 2022-" in tip
        assert v.external_requests() == [] and v.console_errors == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        v.driver.save_screenshot(str(ARTIFACTS / "map_not_observed_zone.png"))  # for a human look
    finally:
        v.driver.quit()
    report = (result.out_dir / "report.html").read_text(encoding="utf-8")
    assert "最近晴空观测" in report and "EI 生态环境状况指数" in report


# --- EI (HJ 192-2015) ---------------------------------------------------------------------
def _exact_shares(lc_path: Path, county: shapely.Geometry, classes: dict[int, str]) -> dict[str, float]:
    """Area share of each land type in ``county`` from pixel ∩ polygon areas (shapely), the
    expectation computed independently of exactextract."""
    with rasterio.open(lc_path) as src:
        lc, t = src.read(1), src.transform
    rows, cols = np.indices(lc.shape)
    x0, y0 = t * (cols.ravel(), rows.ravel())
    boxes = shapely.box(x0, y0 + t.e, x0 + t.a, y0)
    area = shapely.area(shapely.intersection(boxes, county))
    codes = lc.ravel()
    total = area[np.isin(codes, list(classes))].sum()
    out = {k: 0.0 for k in EI.LAND_TYPES}
    for c, name in classes.items():
        out[name] += area[codes == c].sum() / total
    return out


def _exact_mean(path: Path, poly: shapely.Geometry) -> float:
    with rasterio.open(path) as src:
        v, t = src.read(1).astype("float64"), src.transform
    rows, cols = np.indices(v.shape)
    x0, y0 = t * (cols.ravel(), rows.ravel())
    w = shapely.area(shapely.intersection(shapely.box(x0, y0 + t.e, x0 + t.a, y0), poly))
    ok = np.isfinite(v.ravel()) & (w > 0)
    return float((v.ravel()[ok] * w[ok]).sum() / w[ok].sum())


def test_ei_of_a_county_equals_the_formula_computed_by_hand(scan, build):
    result, cfg = scan
    a = result.admin_stats.set_index("admin_id")
    counties = gpd.read_file(build.counties, layer="xzq").to_crs(32648).set_index("XZQDM")
    rivers = gpd.read_file(build.rivers).to_crs(32648)
    classes = dict(cfg.assess.land_cover_classes)
    cid = "510182"  # the county with the river, the lake and a complete table row
    g = counties.geometry[cid]
    area_km2 = g.area / 1e6
    s = _exact_shares(build.land_cover, g, classes)
    hq = min(100.0, 511.2642131067 * (
        0.35 * (0.6 * s["forest"] + 0.25 * s["shrubland"] + 0.15 * s["sparse_forest"])
        + 0.21 * (0.6 * s["grassland_high"] + 0.3 * s["grassland_medium"] + 0.1 * s["grassland_low"])
        + 0.28 * (0.1 * s["river"] + 0.3 * s["lake_reservoir"] + 0.5 * (s["tidal_flat"] + s["marsh"]) + 0.1 * s["glacier_snow"])
        + 0.11 * (0.6 * s["paddy"] + 0.4 * s["dryland"])
        + 0.04 * (0.3 * s["urban"] + 0.4 * s["rural_settlement"] + 0.3 * s["other_built"])
        + 0.01 * (0.2 * s["sand"] + 0.3 * s["saline"] + 0.2 * s["bare_soil"] + 0.2 * s["bare_rock"] + 0.1 * s["other_unused"])))
    veg = min(100.0, 121.165124 * _exact_mean(result.out_dir / "rasters" / "ndvi_monitor.tif", g))
    river_km = rivers.geometry.intersection(g).length.sum() / 1000
    row = TABLE.set_index("admin_id").loc[cid]
    water = min(100.0, (84.3704083981 * river_km / area_km2 + 591.7908642005 * (s["river"] + s["lake_reservoir"])
                        + 86.3869548281 * row["water_resources_1e6m3"] / area_km2) / 3)
    stress = min(100.0, 236.0435677948 * (0.4 * row["erosion_severe_km2"] / area_km2 + 0.2 * row["erosion_moderate_km2"] / area_km2
                                          + 0.2 * (s["urban"] + s["rural_settlement"] + s["other_built"])))
    expected = 0.35 * hq + 0.25 * veg + 0.15 * water + 0.15 * (100 - stress) + 0.10 * (100 - row["pollution_load"]) + row["env_restriction"]
    print(f"county {cid}: HQ {hq:.3f} veg {veg:.3f} water {water:.3f} stress {stress:.3f} → EI {expected:.3f} (redline {a.loc[cid, 'ei']:.3f})")
    assert river_km > 0 and s["forest"] > 0.3 and s["lake_reservoir"] > 0.02 and s["paddy"] > 0.05
    assert 5 < water < 100 and 5 < stress < 100  # not at the caps, so each term counts
    assert a.loc[cid, "ei"] == pytest.approx(expected, abs=0.01)
    assert a.loc[cid, "ei_bio"] == pytest.approx(hq, abs=0.01) and a.loc[cid, "ei_veg"] == pytest.approx(veg, abs=0.01)
    assert a.loc[cid, "ei_grade"] == EI.ei_grade(expected) and pd.isna(a.loc[cid, "ei_missing"])
    # the other county's table row lacks water resources and erosion: stated, counted 0, EI still complete
    other = a.loc["510181"]
    assert "no water_resources_1e6m3" in other["ei_water_network_terms"] and "erosion_severe not given" in other["ei_land_stress_terms"]
    assert np.isfinite(other["ei"])
    gpkg = gpd.read_file(result.out_dir / "assessment.gpkg", layer="admin_stats").set_index("admin_id")
    assert gpkg.loc[cid, "ei"] == pytest.approx(a.loc[cid, "ei"]) and gpkg.loc[cid, "ei_grade"] == a.loc[cid, "ei_grade"]


def test_ei_without_county_table_is_reported_missing_not_invented(small_scan):
    a = small_scan.admin_stats.set_index("admin_id")
    assert a["ei"].isna().all() and a["ei_grade"].isna().all()
    assert a["ei_missing"].str.contains("pollution_load").all() and a["ei_missing"].str.contains("env_restriction").all()
    assert a["ei_bio"].between(1, 100).all() and a["ei_veg"].between(1, 100).all()


@pytest.mark.parametrize(
    ("assess", "match"),
    [
        ({"land_cover": "landcover.tif"}, "without land_cover_classes"),
        ({"land_cover": "landcover.tif", "land_cover_classes": {1: "woods"}}, "land_cover_classes.1"),
    ],
)
def test_bad_assess_config_is_one_line(build, tmp_path, assess, match):
    text = Path(build.config).read_text(encoding="utf-8").split("assess:")[0]
    (tmp_path / "scan.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "scan.yml", overrides={"assess": assess})


def test_bad_county_table_names_file_and_column(tmp_path):
    (tmp_path / "t.csv").write_text("admin_id,pollution_load,pm25\n510181,10,3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="column 'pm25' is unknown"):
        EI.read_county_table(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("admin_id,pollution_load\n510181,high\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'high'.*not a number"):
        EI.read_county_table(tmp_path / "t.csv")


def test_ledger_of_a_tiered_scan_carries_each_alerts_tier(scan, tmp_path):
    """The 台账 exported through the CLI names each alert's 管控分区 from the scan folder."""
    from redline.cli import main

    result, _ = scan
    to = tmp_path / "ledger.csv"
    assert main(["alerts", "export", "--ledger", "--format", "csv", "--lang", "en", "--out", str(result.out_dir), "--to", str(to)]) in (0, None)
    ledger = pd.read_csv(to, encoding="utf-8-sig")
    tiers = result.zone_stats.set_index("zone_id")["tier"]
    id_col = next(c for c in ledger.columns if c.lower().startswith("alert"))
    zone_col = next(c for c in ledger.columns if c.lower().startswith("zone code") or c.lower() == "zone id" or c.lower() == "zone_id")
    tier_col = next(c for c in ledger.columns if "tier" in c.lower())
    assert len(ledger) == len(result.alerts) > 0
    assert (ledger[tier_col] == ledger[zone_col].map(tiers)).all(), ledger[[id_col, zone_col, tier_col]]
