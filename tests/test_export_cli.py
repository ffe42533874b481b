"""Review and field-check export through the real command line, read back with GDAL."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from redline.alerts import ALERT_COLUMNS
from redline.register import Register, merge_alerts


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True)


@pytest.fixture
def reg(tmp_path):
    rows = []
    for i, (zone, t) in enumerate([("Z1", "clearing"), ("Z1", "mining"), ("Z2", "fire")]):
        x = 103.9 + 0.01 * i
        rows.append({c: None for c in ALERT_COLUMNS} | {
            "zone_id": zone, "zone_name": "龙门山", "admin_id": "510182", "area_m2": 8000.0 + i, "centroid_lon": x + 0.0005,
            "centroid_lat": 30.7005, "first_detected": f"2023-0{5 + i}-01", "last_observed": "2023-09-01", "confidence": "high",
            "disturbance_type": t, "magnitude": 0.4, "n_observations": 4, "status": "new", "scan_ids": "s1", "recheck": 0,
            "geometry": shapely.box(x, 30.7, x + 0.001, 30.701)})
    r = Register(tmp_path / "register.gpkg")
    merged, _ = merge_alerts(r.alerts(), gpd.GeoDataFrame(rows, geometry="geometry", crs=4326), "s1")
    r.commit_scan(merged, scan={"scan_id": "s1"})
    return r


def test_review_then_export_field_checks_as_gpx_and_kml(reg, tmp_path):
    ids = sorted(reg.alerts()["alert_id"])
    for aid in ids[:2]:
        assert _cli("alerts", "review", aid, "--status", "field_check", "--by", "王工", "--register", str(reg.path)).returncode == 0
    gpx = tmp_path / "fc.gpx"
    res = _cli("alerts", "export", "--status", "field_check", "--format", "gpx", "--to", str(gpx), "--register", str(reg.path))
    assert res.returncode == 0, res.stderr
    wpts = pyogrio.read_dataframe(gpx, layer="waypoints")
    assert sorted(wpts["name"]) == ids[:2]
    a = reg.alerts().set_index("alert_id")
    for w in wpts.itertuples():
        assert abs(w.geometry.x - float(a.loc[w.name, "centroid_lon"])) < 1e-6
        assert "龙门山" in w.desc and a.loc[w.name, "disturbance_type"] in w.desc
    assert len(pyogrio.read_dataframe(gpx, layer="tracks")) == 2
    kml = tmp_path / "fc.kml"
    assert _cli("alerts", "export", "--status", "field_check", "--format", "kml", "--to", str(kml), "--register", str(reg.path)).returncode == 0
    k = pyogrio.read_dataframe(kml, layer="waypoints")
    assert sorted(k["Name"] if "Name" in k else k["name"]) == ids[:2]


def test_ledger_csv_in_chinese(reg, tmp_path):
    dest = tmp_path / "ledger.csv"
    assert _cli("alerts", "export", "--format", "csv", "--lang", "zh", "--to", str(dest), "--register", str(reg.path)).returncode == 0
    df = pd.read_csv(dest, encoding="utf-8-sig", dtype=str)
    assert list(df.columns[:4]) == ["序号", "预警编号", "行政区代码", "红线区编号"]
    assert set(df["变化类型"]) == {"植被清除", "采矿采石", "火烧"}


def test_list_filters_and_geojson(reg):
    res = _cli("alerts", "list", "--zone", "Z1", "--since", "2023-06-01", "--format", "geojson", "--register", str(reg.path))
    fc = json.loads(res.stdout)
    assert [f["properties"]["disturbance_type"] for f in fc["features"]] == ["mining"]


def test_bad_transition_is_one_line_exit_2(reg):
    aid = sorted(reg.alerts()["alert_id"])[0]
    res = _cli("alerts", "review", aid, "--status", "confirmed", "--by", "x", "--register", str(reg.path))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "cannot go from 'new' to 'confirmed'" in res.stderr


def test_show_prints_history(reg):
    aid = sorted(reg.alerts()["alert_id"])[0]
    _cli("alerts", "review", aid, "--status", "under_review", "--by", "王工", "--note", "看起来像采伐", "--register", str(reg.path))
    res = _cli("alerts", "show", aid, "--register", str(reg.path))
    assert res.returncode == 0 and "王工: new → under_review" in res.stdout and "看起来像采伐" in res.stdout
