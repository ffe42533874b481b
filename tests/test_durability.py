"""The register through real scans: re-running changes nothing; kill -9 never corrupts it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redline.register import Register
from redline.scan import run_scan
from tests.configs import cli_config

pytestmark = pytest.mark.slow


def _alert_table(reg: Path):
    a = Register(reg).alerts()
    return a.drop(columns="geometry").sort_values("alert_id").reset_index(drop=True), a.geometry.area.round(12).tolist()


def test_rerunning_a_scan_changes_no_alert_and_keeps_reviews(small_scan, small_config, tmp_path):
    reg = tmp_path / "register.gpkg"
    reg.write_bytes(small_scan.register.read_bytes())
    first = sorted(Register(reg).alerts()["alert_id"])
    Register(reg).review(first[0], to_status="under_review", by="王工", note="先看影像")
    before, before_areas = _alert_table(reg)
    run_scan(small_config.model_copy(update={"register_path": reg}), tmp_path / "again")
    after, after_areas = _alert_table(reg)
    assert after.equals(before)
    assert after_areas == before_areas
    assert len(Register(reg).history()) == 1 and Register(reg).verify_history() == []
    assert len(Register(reg).scans()) == 1


@pytest.mark.parametrize("delay", [4.0, 9.0, 13.0])
def test_kill_9_mid_scan_leaves_a_consistent_register(small_scan, small_scenes, stac_url, tmp_path, delay):
    reg = tmp_path / "register.gpkg"
    cfg = cli_config(small_scenes, stac_url, tmp_path, register=str(reg))
    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "scan", str(cfg), "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    if proc.poll() is None:
        import os

        os.killpg(proc.pid, signal.SIGKILL)  # the scan and its Dask workers, with no chance to clean up
    proc.wait()
    if reg.exists():  # killed after the register write: it must be whole
        table, _ = _alert_table(reg)
        assert table["alert_id"].is_unique
    res = subprocess.run([sys.executable, "-m", "redline.cli", "scan", str(cfg), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    expected, expected_areas = _alert_table(small_scan.register)
    got, got_areas = _alert_table(reg)
    cols = ["alert_id", "zone_id", "first_detected", "last_observed", "disturbance_type", "area_m2", "status"]
    assert got[cols].equals(expected[cols])
    assert not list(tmp_path.glob(".register.*.tmp.gpkg"))


def test_a_later_scan_keeps_ids_and_reviews_and_adds_new_alerts(small_config, small_scan, tmp_path):
    import datetime as dt

    reg = tmp_path / "register.gpkg"
    early = small_config.model_copy(update={
        "register_path": reg,
        "monitor": small_config.monitor.model_copy(update={"end": dt.date(2023, 6, 30)}),
    })
    first = run_scan(early, tmp_path / "june")
    ids_june = sorted(first.alerts["alert_id"])
    assert ids_june and first.scan_id.endswith("20230630")
    Register(reg).review(ids_june[0], to_status="field_check", by="王工", note="无人机详查")
    full = run_scan(small_config.model_copy(update={"register_path": reg}), tmp_path / "december")
    alerts = Register(reg).alerts().set_index("alert_id")
    assert set(ids_june) <= set(alerts.index)                       # ids stable
    assert alerts.loc[ids_june[0], "status"] == "field_check"        # review kept
    assert alerts.index.is_unique and len(alerts) == len(small_scan.alerts)  # nothing duplicated
    assert len(alerts) > len(ids_june)                               # later events added
    assert all("20231231" in s for s in alerts.loc[ids_june, "scan_ids"])
    assert len(Register(reg).scans()) == 2 and Register(reg).verify_history() == []
    assert full.alerts["alert_id"].is_unique


def test_a_scheduled_rerun_with_no_new_scene_redoes_nothing(small_scan, small_config, small_scenes):
    """cron runs the same config into the same folder: same scenes found ⇒ nothing redone."""
    out = small_scan.out_dir
    before = {p: p.read_bytes() for p in (small_scan.register, out / "manifest.json", out / "alerts.geojson")}
    res = run_scan(small_config, out, config_text=Path(small_scenes.config).read_text(encoding="utf-8"))
    assert res.up_to_date
    assert sorted(res.alerts["alert_id"]) == sorted(small_scan.alerts["alert_id"])
    assert all(p.read_bytes() == b for p, b in before.items())
