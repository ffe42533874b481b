"""A real scan of generated scenes through the embedded STAC API: what it must find and not find."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from redline.evaluate import score_alerts
from redline.provenance import verify_outputs

pytestmark = pytest.mark.slow


def test_writes_the_contract_outputs(small_scan):
    out = small_scan.out_dir
    for name in ("alerts.geojson", "zone_stats.csv", "admin_stats.csv", "map.html", "manifest.json", "catalog.json", "register.gpkg"):
        assert (out / name).exists(), name
    for tif in ("disturbance_date", "magnitude", "ndvi_baseline", "ndvi_monitor", "fvc_monitor", "true_colour_monitor"):
        assert (out / "rasters" / f"{tif}.tif").exists(), tif


def test_finds_every_injected_disturbance_in_zones_above_the_unit(small_scan, truth):
    score = score_alerts(small_scan.alerts, truth, metric_crs="EPSG:32648")
    assert score.expected_events >= 5
    assert score.missed_events == [], score
    assert score.alerts_on_excluded_events == 0, score


def test_the_quarry_is_typed_mining_and_the_other_types_keep_theirs(small_scan, truth):
    """Per-type accuracy of the scan (redline.evaluate): the small preset's quarry, which grows in
    stages (redline.demo.events), is typed mining (redline.alerts rule 3); the clearing, the
    fire and the water loss keep their types (mining swallows none of them)."""
    per_type = score_alerts(small_scan.alerts, truth, metric_crs="EPSG:32648").type_accuracy_per_type
    assert per_type["mining"] == {"correct": 1, "total": 1, "accuracy": 1.0}, per_type
    for kind in ("clearing", "fire", "water_loss"):
        assert per_type[kind]["correct"] == per_type[kind]["total"], per_type


def test_no_alert_outside_zones_or_below_the_unit(small_scan, small_scenes, small_config):
    alerts = gpd.read_file(small_scan.out_dir / "alerts.geojson").to_crs(32648)
    zones = gpd.read_file(small_scenes.zones, layer="hongxian").to_crs(32648)
    assert not alerts.empty
    inside = alerts.geometry.buffer(-0.5).within(zones.union_all())
    assert inside.all()
    assert (alerts["area_m2"] >= small_config.detection.min_area_m2).all()
    assert (alerts.geometry.area >= small_config.detection.min_area_m2 - 1).all()


def test_alert_fields_follow_the_contract(small_scan):
    a = small_scan.alerts
    assert a["alert_id"].is_unique
    assert set(a["confidence"]) <= {"low", "nominal", "high"}
    assert set(a["disturbance_type"]) <= {"clearing", "construction", "mining", "fire", "water_loss", "other"}
    assert (a["status"] == "new").all()
    for r in a.itertuples():
        assert r.alert_id.startswith(f"{r.zone_id}-{r.first_detected.replace('-', '')}-")
        assert r.first_detected <= r.last_observed
    assert a["first_detected"].min() >= "2023-01-01"


def test_zone_and_county_tables(small_scan, small_scenes):
    zs = pd.read_csv(small_scan.out_dir / "zone_stats.csv", dtype={"admin_id": str})
    zones = gpd.read_file(small_scenes.zones, layer="hongxian")
    assert sorted(zs["zone_id"]) == sorted(zones["HXBH"])
    assert zs["alerts_total"].sum() == len(small_scan.alerts)
    assert (zs["valid_obs_fraction"] > 0.9).all()
    assert zs["ndvi_baseline"].between(-1, 1).all()
    adm = pd.read_csv(small_scan.out_dir / "admin_stats.csv", dtype={"admin_id": str})
    assert adm["alerts_total"].sum() == zs["alerts_total"].sum()
    assert adm["zones_total"].sum() == len(zs)


def test_manifest_records_items_and_checksums(small_scan, stac_url):
    m = json.loads((small_scan.out_dir / "manifest.json").read_text())
    assert m["stac"]["url"] == stac_url
    assert len(m["items"]) == small_scan.n_items
    assert all(v.startswith("file://") for it in m["items"] for v in it["assets"].values())
    assert m["items"][0]["scaling"]["red"] == {"scale": 0.0001, "offset": -0.1, "nodata": 0, "asset": "red",
                                               "source": "raster:bands", "reason": "declared in raster:bands"}
    assert "alerts.geojson" in m["outputs"]
    assert verify_outputs(small_scan.out_dir) == []


def test_verify_reports_a_changed_output(small_scan, tmp_path):
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, copy)
    with open(copy / "zone_stats.csv", "a", encoding="utf-8") as fh:
        fh.write("EDITED,,,,\n")
    res = subprocess.run([sys.executable, "-m", "redline.cli", "verify", str(copy), "--register", str(copy / "register.gpkg")], capture_output=True, text=True)
    assert res.returncode == 1
    assert "zone_stats.csv: changed since the scan" in res.stderr


def test_map_rerender_after_a_review_shows_it_and_keeps_verify_clean(small_scan, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    reg = out / "register.gpkg"
    aid = sorted(small_scan.alerts["alert_id"])[0]
    run = lambda *a: subprocess.run([sys.executable, "-m", "redline.cli", *a], capture_output=True, text=True)  # noqa: E731
    assert run("alerts", "review", aid, "--status", "field_check", "--by", "王工", "--register", str(reg)).returncode == 0
    res = run("map", str(out), "--register", str(reg))
    assert res.returncode == 0, res.stderr
    page = (out / "map.html").read_text(encoding="utf-8")
    assert "field_check" in page
    res = run("verify", str(out), "--register", str(reg))
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "manifest.json").read_text())["rerenders"][0]["files"][0] == "map.html"


def test_every_alert_has_chips_and_a_time_series_figure(small_scan):
    import numpy as np
    from PIL import Image

    from redline.register import Register

    reg = Register(small_scan.register).alerts().set_index("alert_id")
    for aid in small_scan.alerts["alert_id"]:
        before, after = (small_scan.out_dir / "chips" / f"{aid}_{t}.png" for t in ("before", "after"))
        assert before.exists() and after.exists()
        assert reg.loc[aid, "chip_before"] == f"chips/{aid}_before.png"
        assert (small_scan.out_dir / "figures" / f"{aid}.png").exists() and (small_scan.out_dir / "figures" / f"{aid}.svg").exists()
        a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in (before, after))
        assert np.abs(a - b).mean() > 3  # the disturbance changed what the chip shows


def test_first_clear_look_of_each_event_is_the_first_scene_that_saw_it(small_scenes, small_config, truth):
    """The accuracy harness's cloud delay: for each event, the first scene on or after its start
    whose SCL saw ≥ half of it clear — checked here against the whole SCL rasters."""

    import rasterio
    import rasterio.features

    from redline.evaluate import first_clear_looks

    masked = tuple(small_config.detection.scl_mask_classes)
    got = first_clear_looks(Path(small_scenes.root) / "items.json", truth, masked)
    feats = sorted(json.loads((Path(small_scenes.root) / "items.json").read_text())["features"], key=lambda f: f["properties"]["datetime"])

    def clear_share(f, ev) -> float:
        with rasterio.open(f["assets"]["scl"]["href"].removeprefix("file://")) as src:
            scl = src.read(1)
            geom = truth[truth["event_id"] == ev].to_crs(src.crs).geometry.iloc[0]
            inside = rasterio.features.geometry_mask([geom], scl.shape, src.transform, invert=True, all_touched=True)
        return float(np.isin(scl[inside], (0, *masked), invert=True).mean())

    assert set(got) == set(truth["event_id"])  # every event was seen clear at some point
    for ev, day in got.items():
        start = str(truth.loc[truth["event_id"] == ev, "start_date"].iloc[0])[:10]
        after = [f for f in feats if f["properties"]["datetime"][:10] >= start]
        shares = [clear_share(f, ev) for f in after]
        first = next(i for i, sh in enumerate(shares) if sh >= 0.5)
        assert after[first]["properties"]["datetime"][:10] == day, (ev, day, shares[: first + 1])
