"""Issue 11, register side: activity classes, change type, three-level review, rectification and
its re-check, the ledger (台账) and the scan diff's input checks — on real register files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import xarray as xr
from odc.geo.geobox import GeoBox

from redline.alerts.activity import ACTIVITY_CLASSES, activity_candidates, change_type, is_linear, recovery_verdict
from redline.alerts import ALERT_COLUMNS
from redline.errors import RegisterError
from redline.register.export import MU_M2, ledger_columns, ledger_table, write_ledger
from redline.alerts.rectify import recheck_rectified
from redline.register import SCAN_REVIEWER, Register, merge_alerts

UTM = "EPSG:32648"
V1_COLUMNS = ALERT_COLUMNS[: ALERT_COLUMNS.index("recheck") + 1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True)


def _v1_hash(row: dict) -> str:
    """The schema-1 row hash, written out here as schema 1 computed it."""
    body = {k: row[k] for k in ("seq", "alert_id", "time", "by", "from_status", "to_status", "note", "prev_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _utm_box(x0: float, y0: float, w: float, h: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x0 + w, y0 + h)


@pytest.fixture
def v1_register(tmp_path):
    """A register as schema 1 wrote it: v1 alert columns, a two-row hash chain, schema_version 1."""
    path = tmp_path / "register.gpkg"
    geoms = gpd.GeoSeries([_utm_box(400500, 3399000, 100, 100), _utm_box(401000, 3399000, 120, 80)], crs=UTM).to_crs(4326)
    rows = []
    for k, g in enumerate(geoms):
        c = g.centroid
        rows.append({"alert_id": f"Z1-2023050{k + 1}-1", "zone_id": "Z1", "zone_name": "龙门山", "admin_id": "510182", "area_m2": 10000.0 - 400 * k,
                     "centroid_lon": round(c.x, 6), "centroid_lat": round(c.y, 6), "first_detected": f"2023-05-0{k + 1}", "last_observed": "2023-10-01",
                     "confidence": "high", "disturbance_type": "clearing", "magnitude": 0.4, "n_observations": 5, "status": "new", "scan_ids": "old-20231231",
                     "chip_before": None, "chip_after": None, "recheck": 0, "geometry": g})
    alerts = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)[[*V1_COLUMNS, "geometry"]]
    history, prev = [], "0" * 64
    for seq, (to, by) in enumerate([("under_review", "王工"), ("field_check", "李工")], start=1):
        r = {"seq": seq, "alert_id": "Z1-20230501-1", "time": f"2023-11-0{seq}T08:00:00+00:00", "by": by,
             "from_status": "new" if seq == 1 else "under_review", "to_status": to, "note": "", "prev_hash": prev}
        r["row_hash"] = prev = _v1_hash(r)
        history.append(r)
    alerts.loc[0, "status"] = "field_check"
    pyogrio.write_dataframe(alerts, path, layer="alerts", driver="GPKG", promote_to_multi=True)
    pyogrio.write_dataframe(pd.DataFrame(history), path, layer="review_history", driver="GPKG")
    pyogrio.write_dataframe(pd.DataFrame({"key": ["schema_version"], "value": ["1"]}), path, layer="meta", driver="GPKG")
    return Register(path)


def test_a_schema_1_register_opens_keeps_alerts_and_reviews_and_migrates_on_write(v1_register):
    reg = v1_register
    assert reg.verify_history() == []
    a = reg.alerts()
    assert list(a.columns) == [*ALERT_COLUMNS, "geometry"]
    assert a["activity_class"].isna().all() and len(a) == 2
    reg.review("Z1-20230501-1", step="self_check", by="张三", note="影像判读")
    assert reg.meta()["schema_version"] == "3"
    assert (reg.path.parent / "register.schema1-backup.gpkg").is_file()  # the file as it was, before the upgrade
    assert Register(reg.path.parent / "register.schema1-backup.gpkg").meta()["schema_version"] == "1"
    h = reg.history()
    assert len(h) == 3 and list(h["by"]) == ["王工", "李工", "张三"]
    assert h["step"].iloc[:2].isna().all() and h["step"].iloc[2] == "self_check"
    v = reg.verify()
    assert v.problems == [] and v.unsigned == 2 and v.sealed == 2  # the old rows keep their chain; the upgrade sealed both alerts
    assert list(reg.chain()["kind"].iloc[2:5]) == ["key", "policy", "scan"]
    assert reg.alerts().set_index("alert_id").loc["Z1-20230501-1", "status"] == "field_check"
    assert set(gpd.list_layers(reg.path)["name"]) >= {"alerts", "review_history", "alert_seals", "signers", "scans", "meta"}  # GDAL reads it


def test_confirmed_needs_every_configured_step_in_order(v1_register):
    reg, aid = v1_register, "Z1-20230501-1"
    with pytest.raises(RegisterError, match="cannot be confirmed before the review step"):
        reg.review(aid, to_status="confirmed", by="王工")
    with pytest.raises(RegisterError, match="needs self_check passed first"):
        reg.review(aid, step="specialist_check", by="李工")
    reg.review(aid, step="self_check", by="张三")
    reg.review(aid, step="specialist_check", result="fail", by="李工", note="边界不准")
    with pytest.raises(RegisterError, match="specialist_check, acceptance"):
        reg.review(aid, to_status="confirmed", by="王工")
    reg.review(aid, step="specialist_check", by="李工")
    row = reg.review(aid, step="acceptance", to_status="confirmed", by="赵处长")  # the last step and the decision in one row
    assert (row["step"], row["result"], row["to_status"]) == ("acceptance", "pass", "confirmed")
    assert reg.verify_history() == []


def test_a_team_with_one_review_step(v1_register):
    reg = v1_register
    reg.set_policy(("acceptance",))
    assert reg.review_steps() == ("acceptance",)
    with pytest.raises(RegisterError, match="not one of this register's review steps"):
        reg.review("Z1-20230501-1", step="self_check", by="张三")
    reg.review("Z1-20230501-1", step="acceptance", to_status="confirmed", by="赵处长")
    assert reg.alerts().set_index("alert_id").loc["Z1-20230501-1", "status"] == "confirmed"


def test_reviewer_class_survives_a_merge_and_an_edit_is_caught(v1_register):
    reg, aid = v1_register, "Z1-20230502-1"
    with pytest.raises(RegisterError, match="not an activity class"):
        reg.review(aid, activity_class="road", by="王工")
    reg.review(aid, activity_class="transport", cause="乡道施工", legality="无审批手续", by="王工")
    found = reg.alerts()
    found = found[found["alert_id"] == aid].copy()
    found["alert_id"], found["scan_ids"], found["activity_class"] = None, "new-scan", None
    found["activity_candidates"] = "settlement,transport,other_artificial"
    merged, stats = merge_alerts(reg.alerts(), found, "new-scan")
    row = merged.set_index("alert_id").loc[aid]
    assert stats.updated == 1
    assert (row["activity_class"], row["cause"], row["activity_candidates"]) == ("transport", "乡道施工", "settlement,transport,other_artificial")
    with sqlite3.connect(reg.path) as con:  # written around `alerts review`
        con.execute("UPDATE alerts SET activity_class = 'quarry' WHERE alert_id = ?", (aid,))
    assert any("activity_class 'quarry'" in p for p in reg.verify_history())


def test_rectification_goes_through_its_statuses(v1_register):
    reg, aid = v1_register, "Z1-20230501-1"
    for step in ("self_check", "specialist_check", "acceptance"):
        reg.review(aid, step=step, by="王工")
    reg.review(aid, to_status="confirmed", by="王工")
    with pytest.raises(RegisterError, match="cannot go from 'confirmed' to 'rectified'"):
        reg.review(aid, to_status="rectified", by="王工")
    reg.review(aid, to_status="rectifying", by="王工", note="限期整改")
    reg.review(aid, to_status="rectified", by="王工", note="已复绿")
    assert reg.alerts().set_index("alert_id").loc[aid, "status"] == "rectified"
    assert reg.verify_history() == []


# --------------------------------------------------------------------------- candidates, change type


def test_an_elongated_thin_patch_puts_transport_first():
    road = shapely.affinity.rotate(_utm_box(0, 0, 400, 30), 35)
    pit = _utm_box(0, 0, 120, 90)
    assert is_linear(road) and not is_linear(pit)
    assert activity_candidates("construction", road)[0] == "transport"
    assert activity_candidates("construction", pit)[0] == "settlement"
    assert activity_candidates("mining", pit)[:2] == ["quarry", "industrial_mining"]
    assert activity_candidates("water_loss", pit)[0] == "aquaculture"
    assert set(activity_candidates("fire", pit)) <= set(ACTIVITY_CLASSES)


def test_change_type_from_the_baseline_around_the_alert():
    from affine import Affine

    transform = Affine(10, 0, 0, 0, -10, 400)
    ndvi = np.full((40, 40), 0.7, "float32")
    mndwi = np.full((40, 40), -0.4, "float32")
    alert = _utm_box(100, 100, 100, 100)  # rows 20–29, cols 10–19
    zone = _utm_box(0, 0, 400, 400)
    assert change_type(alert, zone, ndvi, mndwi, transform) == "new"
    ndvi[20:30, 20:24] = 0.08  # an old pit along the alert's east side
    assert change_type(alert, zone, ndvi, mndwi, transform) == "expansion"
    mndwi[20:30, 20:24] = 0.3  # … but water is not bare ground
    assert change_type(alert, zone, ndvi, mndwi, transform) == "new"


# --------------------------------------------------------------------------- rectified sites re-checked


def _series(days: pd.DatetimeIndex, drop_on: str, regrow: bool) -> np.ndarray:
    doy = days.day_of_year.values
    ndvi = 0.55 + 0.2 * np.sin(2 * np.pi * (doy - 100) / 365.25)
    after = days >= pd.Timestamp(drop_on)
    ndvi[after] = 0.12
    if regrow:
        late = days >= pd.Timestamp("2023-09-01")
        ndvi[late] = 0.9 * (0.55 + 0.2 * np.sin(2 * np.pi * (doy[late] - 100) / 365.25))
    return ndvi


@pytest.mark.parametrize("regrow, verdict", [(True, "recovered"), (False, "continuing")])
def test_a_later_scan_marks_a_rectified_site_recovered_or_flags_it(v1_register, regrow, verdict):
    reg, aid = v1_register, "Z1-20230501-1"
    for step in ("self_check", "specialist_check", "acceptance"):
        reg.review(aid, step=step, by="王工")
    reg.review(aid, to_status="confirmed", by="王工")
    reg.review(aid, to_status="rectifying", by="王工")
    reg.review(aid, to_status="rectified", by="王工", when=dt.datetime(2023, 8, 1, tzinfo=dt.timezone.utc))
    days = pd.date_range("2022-01-05", "2023-12-31", freq="10D")
    geobox = GeoBox.from_bbox((400400, 3398900, 401200, 3399200), crs=UTM, resolution=10)
    ny, nx = geobox.shape
    cube = np.broadcast_to(_series(days, "2023-05-01", regrow)[:, None, None], (len(days), ny, nx)).astype("float32").copy()
    cube[::7] = np.nan  # cloudy days
    stack = xr.DataArray(cube[None], dims=("var", "time", "y", "x"), coords={"var": ["NDVI"], "time": days.values})
    before = reg.history()
    alerts, history, verdicts = recheck_rectified(reg.alerts(), before, stack, geobox, baseline=("2022-01-01", "2022-12-31"), scan_id="s2")
    assert verdicts == {aid: verdict}
    reg.commit_scan(alerts, scan={"scan_id": "s2"}, decisions=history.iloc[len(before):].to_dict("records"))
    row = reg.alerts().set_index("alert_id").loc[aid]
    last = reg.history().iloc[-1]
    assert last["by"] == SCAN_REVIEWER and last["note"].startswith("scan s2:")
    if verdict == "recovered":
        assert row["status"] == "recovered" and row["recheck"] == 0
    else:
        assert row["status"] == "rectified" and row["recheck"] == 1 and "goes on" in last["note"]
    assert reg.verify_history() == []
    again = recheck_rectified(reg.alerts(), reg.history(), stack, geobox, baseline=("2022-01-01", "2022-12-31"), scan_id="s2")
    assert again[2] == {}  # the same scan records its verdict once


def test_no_verdict_without_a_clear_look_after_the_rectification():
    days = pd.date_range("2023-01-01", periods=10, freq="10D").values
    v, obs, exp = recovery_verdict(days, np.full(10, 0.6), np.ones(10), np.full(10, 0.6), after=np.datetime64("2024-01-01"))
    assert v is None and np.isnan(obs)
    v, obs, exp = recovery_verdict(days, np.full(10, 0.47), np.ones(10), np.full(10, 0.6))
    assert (v, obs, exp) == ("continuing", 0.47, 0.6)  # 0.47 < 0.8 × 0.6


# --------------------------------------------------------------------------- ledger


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_ledger_opens_in_openpyxl_and_pandas_with_its_headers(v1_register, tmp_path, lang):
    import openpyxl

    reg = v1_register
    reg.review("Z1-20230501-1", step="self_check", by="张三", activity_class="quarry")
    a = reg.alerts()
    xlsx = write_ledger(ledger_table(a, reg.history(), lang=lang), tmp_path / f"ledger_{lang}.xlsx", "xlsx")
    csv = write_ledger(ledger_table(a, reg.history(), lang=lang), tmp_path / f"ledger_{lang}.csv", "csv")
    headers = [z if lang == "zh" else e for _, e, z in ledger_columns()]
    ws = openpyxl.load_workbook(xlsx).active
    assert [c.value for c in ws[1]] == headers
    for table in (pd.read_excel(xlsx), pd.read_csv(csv, encoding="utf-8-sig")):
        assert list(table.columns) == headers
        assert len(table) == 2
        row = table.iloc[0]
        i = {f: k for k, (f, _, _) in enumerate(ledger_columns())}
        assert row.iloc[i["area_mu"]] == pytest.approx(a["area_m2"].iloc[0] / MU_M2, abs=0.01)
        assert row.iloc[i["activity_class"]] == ("采石场" if lang == "zh" else "quarry")
        assert row.iloc[i["self_check_by"]] == "张三"
        assert row.iloc[i["self_check_result"]] == ("通过" if lang == "zh" else "pass")
        lon, lat = row.iloc[i["lon_cgcs2000"]], row.iloc[i["lat_cgcs2000"]]
        assert abs(lon - a["centroid_lon"].iloc[0]) < 1e-5 and abs(lat - a["centroid_lat"].iloc[0]) < 1e-5  # CGCS2000 ≈ WGS 84 (< 1 m)
    assert "自检人" in headers if lang == "zh" else "self-check by" in headers


def test_ledger_cli_refuses_an_unknown_format(v1_register, tmp_path):
    res = _cli("alerts", "export", "--ledger", "--format", "gpx", "--to", str(tmp_path / "x.gpx"), "--register", str(v1_register.path))
    assert res.returncode == 2
    assert "use one of csv, xlsx" in res.stderr and len(res.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- diff input


def test_diff_of_a_folder_that_is_not_a_scan_is_one_line_exit_2(tmp_path):
    (tmp_path / "a").mkdir()
    res = _cli("diff", str(tmp_path / "a"), str(tmp_path / "missing"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no manifest.json" in res.stderr
    (tmp_path / "a" / "manifest.json").write_text("{not json", encoding="utf-8")
    res = _cli("diff", str(tmp_path / "a"), str(tmp_path / "a"))
    assert res.returncode == 2 and "manifest.json: cannot be read" in res.stderr
