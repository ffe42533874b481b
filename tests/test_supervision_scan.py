"""Issue 11 on real scans: a generated scene set with a road built through a zone and a quarry
that existed before the first scene and grows, scanned through the embedded STAC API; reviews
through the CLI between a scan without one monitor scene and a scan with it (into a copy of the
reviewed register): the rescan and the diff. Two scans in all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest

from pipelines import serve_stac
from redline.config import load_config
from redline.demo import generate_demo
from redline.demo.events import EventRequest
from redline.demo.stac import PROCESSING_BASELINE
from redline.register.export import ledger_columns
from redline.register import Register
from redline.scan import run_scan

pytestmark = pytest.mark.slow

UTM = "EPSG:32648"
#: placed after the small preset's seven events: E08 the road, E09 the old quarry that grows
EXTRA = (
    EventRequest("construction", 1, True, (9000, 14000), (4, 6), shape="line"),
    EventRequest("mining", 1, True, (10000, 16000), (4, 6), preexisting=0.45),
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *map(str, args)], capture_output=True, text=True)


def _scan(root: Path, config: Path, out: Path, **overrides) -> None:
    with serve_stac(root) as url:
        cfg = load_config(config, overrides={"stac": {"url": url}, **overrides})
        run_scan(cfg, out, config_text=config.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("sup") / "scenes", preset="small", extra_events=EXTRA)


@pytest.fixture(scope="module")
def truth(build):
    return gpd.read_file(build.truth, layer="events").to_crs(UTM).set_index("event_id")


@pytest.fixture(scope="module")
def scan_a(build, truth, tmp_path_factory):
    """Scan A: the scene set without the monitor scene on which the road was first visible
    (a scene that arrived late), into a fresh register."""
    root = tmp_path_factory.mktemp("sup_a")
    items = json.loads((build.root / "items.json").read_text(encoding="utf-8"))
    start = truth.loc["E08", "start_date"]
    gone = [f for f in items["features"] if f["properties"]["datetime"].startswith(start)]
    assert len(gone) == 1
    items["features"] = [f for f in items["features"] if f is not gone[0]]
    scenes = root / "scenes"
    scenes.mkdir()
    (scenes / "items.json").write_text(json.dumps(items), encoding="utf-8")
    shutil.copy(build.root / "collection.json", scenes / "collection.json")
    out = root / "out"
    _scan(scenes, build.config, out)
    return out, gone[0]["id"]


def _alert_on(alerts: gpd.GeoDataFrame, geom) -> pd.Series:
    hit = alerts[alerts.to_crs(UTM).intersects(geom)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


@pytest.fixture(scope="module")
def reviewed(scan_a, truth):
    """Reviews through the CLI on scan A's register: the road goes through all three steps,
    is confirmed as transport and rectified; the quarry gets its class only."""
    out, _ = scan_a
    reg = out / "register.gpkg"
    alerts = gpd.read_file(out / "alerts.geojson")
    road = _alert_on(alerts, truth.loc["E08", "geometry"])["alert_id"]
    quarry = _alert_on(alerts, truth.loc["E09", "geometry"])["alert_id"]
    steps = [
        ("--status", "under_review", "--by", "张三"),
        ("--step", "self_check", "--by", "张三", "--class", "transport", "--note", "影像判读为新建道路"),
        ("--step", "specialist_check", "--by", "李四", "--cause", "乡道施工"),
        ("--step", "acceptance", "--status", "confirmed", "--by", "王五", "--legality", "未办理用地审批"),
        ("--status", "rectifying", "--by", "王五"),
        ("--status", "rectified", "--by", "王五", "--note", "已复绿"),
    ]
    for args in steps:
        res = _cli("alerts", "review", road, *args, "--register", reg)
        assert res.returncode == 0, res.stderr
    res = _cli("alerts", "review", quarry, "--class", "quarry", "--by", "李四", "--register", reg)
    assert res.returncode == 0, res.stderr
    return {"road": road, "quarry": quarry}


@pytest.fixture(scope="module")
def scan_b(build, scan_a, reviewed, tmp_path_factory):
    """Scan B: the whole scene set (the late scene included) into a copy of scan A's reviewed
    register: a rescan of a register under review. Its own name, so that its alerts.geojson
    holds the alerts it found (the scan id is name + monitor end)."""
    out = tmp_path_factory.mktemp("sup_b") / "out"
    out.mkdir()
    shutil.copy(scan_a[0] / "register.gpkg", out / "register.gpkg")
    _scan(build.root, build.config, out, name="demo-small-rescan")
    return out


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_road_through_a_zone_is_a_new_alert_with_transport_first(scan_a, scan_b, truth, which):
    out = scan_a[0] if which == "a" else scan_b
    a = _alert_on(gpd.read_file(out / "alerts.geojson"), truth.loc["E08", "geometry"])
    assert a["change_type"] == "new"
    assert a["activity_candidates"].split(",")[0] == "transport"
    assert a["disturbance_type"] == "construction"


def test_an_old_quarry_that_grows_is_an_expansion(scan_b, truth):
    alerts = gpd.read_file(scan_b / "alerts.geojson")
    old = _alert_on(alerts, truth.loc["E09", "geometry"])
    assert old["change_type"] == "expansion"
    assert old["disturbance_type"] == "mining"
    assert old["activity_candidates"].split(",")[:2] == ["quarry", "industrial_mining"]
    fresh = _alert_on(alerts, truth.loc["E03", "geometry"])  # a pit opened in the monitor year
    assert fresh["change_type"] == "new"
    others = alerts[~alerts["alert_id"].isin([old["alert_id"]])]
    assert (others["change_type"] == "new").all()


def test_chip_dates_bracket_the_first_detection(scan_b):
    for a in gpd.read_file(scan_b / "alerts.geojson").itertuples():
        b0, b1 = a.before_dates.split("/")
        f0, f1 = a.after_dates.split("/")
        first = str(a.first_detected)[:10]  # the GeoJSON reader may parse it as a Timestamp
        assert b0 <= b1 < first <= f0 <= f1


def test_reviews_and_rectification_survive_the_rescan(scan_b, reviewed):
    out = scan_b
    reg = Register(out / "register.gpkg")
    a = reg.alerts().set_index("alert_id")
    road = a.loc[reviewed["road"]]
    assert (road["status"], road["activity_class"], road["cause"], road["legality"]) == ("rectified", "transport", "乡道施工", "未办理用地审批")
    assert a.loc[reviewed["quarry"], "activity_class"] == "quarry"
    h = reg.history()
    steps = h[(h["alert_id"] == reviewed["road"]) & h["step"].notna()]
    assert list(steps["step"]) == ["self_check", "specialist_check", "acceptance"]
    assert list(steps["by"]) == ["张三", "李四", "王五"]
    assert len(h) == 7  # the rectification was recorded after the last image: no re-check row
    res = _cli("verify", out)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_ledger_of_the_rescan(scan_b, reviewed, tmp_path, lang):
    out = scan_b
    dest = tmp_path / f"台账_{lang}.xlsx"
    res = _cli("alerts", "export", "--ledger", "--format", "xlsx", "--lang", lang, "--to", dest, "--out", out)
    assert res.returncode == 0, res.stderr
    headers = [z if lang == "zh" else e for _, e, z in ledger_columns()]
    assert [c.value for c in openpyxl.load_workbook(dest).active[1]] == headers
    table = pd.read_excel(dest, dtype=str)
    assert list(table.columns) == headers
    assert len(table) == len(Register(out / "register.gpkg").alerts())
    col = {f: h for (f, _, _), h in zip(ledger_columns(), headers, strict=True)}
    road = table.set_index(col["alert_id"]).loc[reviewed["road"]]
    assert road[col["activity_class"]] == ("交通设施" if lang == "zh" else "transport facility")
    assert road[col["change_type"]] == ("新增" if lang == "zh" else "new")
    assert road[col["rectification"]] == ("已整改销号" if lang == "zh" else "rectified")
    assert road[col["acceptance_by"]] == "王五"
    counties = gpd.read_file(out / "admin_units.geojson").set_index("admin_id")["admin_name"]
    assert road[col["admin_name"]] == counties[road[col["admin_id"]]]
    assert float(road[col["area_mu"]]) == pytest.approx(float(road[col["area_m2"]]) / 666.6667, abs=0.01)


def _expected_diff(a_path: Path, b_path: Path) -> tuple[set, set, set]:
    """Added, withdrawn and changed alerts, from the two alert files alone: pairs are alerts of
    one zone whose polygons intersect."""
    a, b = gpd.read_file(a_path), gpd.read_file(b_path)
    j = gpd.sjoin(a, b, how="inner", predicate="intersects", lsuffix="a", rsuffix="b")
    j = j[j["zone_id_a"] == j["zone_id_b"]]
    assert j["alert_id_a"].is_unique and j["alert_id_b"].is_unique  # one to one on this scene set
    changed = set()
    for r in j.itertuples():
        differs = abs(r.area_m2_a - r.area_m2_b) >= 1 or any(
            getattr(r, f"{k}_a") != getattr(r, f"{k}_b") and not (pd.isna(getattr(r, f"{k}_a")) and pd.isna(getattr(r, f"{k}_b")))
            for k in ("first_detected", "disturbance_type", "change_type", "activity_class", "activity_candidates"))
        if differs:
            changed.add((r.alert_id_a, r.alert_id_b))
    return set(b["alert_id"]) - set(j["alert_id_b"]), set(a["alert_id"]) - set(j["alert_id_a"]), changed


def test_diff_names_exactly_the_alerts_that_change(scan_a, scan_b, reviewed):
    out_a, late = scan_a
    res = _cli("diff", out_a, scan_b, "--format", "json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    added, withdrawn, changed = _expected_diff(out_a / "alerts.geojson", scan_b / "alerts.geojson")
    assert {x["alert_id"] for x in d["added"]} == added
    assert {x["alert_id"] for x in d["withdrawn"]} == withdrawn
    assert {(x["alert_id_a"], x["alert_id_b"]) for x in d["changed"]} == changed
    road = next(x for x in d["changed"] if x["alert_id_a"] == reviewed["road"])
    first_a, first_b = road["changes"]["first_detected"]  # the late scene moves the road's date earlier
    assert first_b < first_a
    assert d["items_only_b"] == [late] and d["items_only_a"] == []
    assert d["n_items"][1] == d["n_items"][0] + 1
    assert d["baselines"] == {"a": {PROCESSING_BASELINE: d["n_items"][0]}, "b": {PROCESSING_BASELINE: d["n_items"][1]}}
    assert {p["key"] for p in d["parameters"]} >= {"name"}
    text = _cli("diff", out_a, scan_b)
    assert text.returncode == 0 and late in text.stdout and f"changed {reviewed['road']}" in text.stdout
