"""The register: same place ⇒ same alert, reviews survive rescans, the history chain detects edits."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import pytest
import shapely

from redline.alerts import ALERT_COLUMNS, SCHEMA2_DEFAULTS
from redline.errors import RegisterError
from redline.register import Register, merge_alerts


def _alert(zone: str, x: float, first: str, last: str, n: int = 3, conf: str = "nominal", scan: str = "s1") -> dict:
    return {
        "alert_id": None, "zone_id": zone, "zone_name": "龙门山", "admin_id": "510182", "area_m2": 10000.0,
        "centroid_lon": x, "centroid_lat": 30.7, "first_detected": first, "last_observed": last, "confidence": conf,
        "disturbance_type": "clearing", "magnitude": 0.4, "n_observations": n, "status": "new", "scan_ids": scan,
        "chip_before": None, "chip_after": None, "recheck": 0, **SCHEMA2_DEFAULTS, "geometry": shapely.box(x, 30.7, x + 0.001, 30.701),
    }


def _gdf(rows: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")[[*ALERT_COLUMNS, "geometry"]]


def commit(reg: Register, found: gpd.GeoDataFrame, scan_id: str) -> gpd.GeoDataFrame:
    """A scan's merge of ``found`` into ``reg`` (one transaction); the merged alerts."""
    merged, stats = merge_alerts(reg.alerts(), found, scan_id)
    reg.commit_scan(merged, scan={"scan_id": scan_id, "name": "test", "n_items": 3, "new": stats.new, "updated": stats.updated,
                                  "unchanged": stats.unchanged})
    return merged


@pytest.fixture
def register(tmp_path):
    reg = Register(tmp_path / "register.gpkg")
    commit(reg, _gdf([_alert("Z1", 103.9, "2023-05-01", "2023-06-01"), _alert("Z2", 104.0, "2023-07-01", "2023-07-21")]), "s1")
    return reg


def test_new_alerts_get_stable_ids(register):
    ids = sorted(register.alerts()["alert_id"])
    assert ids == ["Z1-20230501-1", "Z2-20230701-1"]


def test_same_place_updates_instead_of_duplicating(register):
    later = _gdf([_alert("Z1", 103.9005, "2023-05-11", "2023-09-01", n=6, conf="high", scan="s2")])
    merged, stats = merge_alerts(register.alerts(), later, "s2")
    assert (stats.new, stats.updated) == (0, 1)
    row = merged.set_index("alert_id").loc["Z1-20230501-1"]
    assert row["last_observed"] == "2023-09-01" and row["first_detected"] == "2023-05-01"
    assert row["confidence"] == "high" and row["scan_ids"] == "s1,s2"
    assert len(merged) == 2


def test_same_place_in_another_zone_is_another_alert(register):
    merged, stats = merge_alerts(register.alerts(), _gdf([_alert("Z9", 103.9, "2023-05-01", "2023-06-01")]), "s2")
    assert stats.new == 1 and len(merged) == 3


def test_rerunning_the_same_scan_changes_nothing(register):
    again = _gdf([_alert("Z1", 103.9, "2023-05-01", "2023-06-01"), _alert("Z2", 104.0, "2023-07-01", "2023-07-21")])
    merged, stats = merge_alerts(register.alerts(), again, "s1")
    assert (stats.new, stats.updated, stats.unchanged) == (0, 0, 2)


def test_review_keeps_status_through_a_rescan(register):
    register.review("Z1-20230501-1", to_status="under_review", by="王工", note="看起来像采伐")
    merged, _ = merge_alerts(register.alerts(), _gdf([_alert("Z1", 103.9, "2023-05-01", "2023-10-01", scan="s2")]), "s2")
    assert merged.set_index("alert_id").loc["Z1-20230501-1", "status"] == "under_review"


def test_transition_not_allowed_is_a_clear_error(register):
    with pytest.raises(RegisterError, match="cannot go from 'new' to 'confirmed'"):
        register.review("Z1-20230501-1", to_status="confirmed", by="王工")


def test_unknown_alert_is_a_clear_error(register):
    with pytest.raises(RegisterError, match="no alert 'nope'"):
        register.review("nope", to_status="under_review", by="x")


def test_history_chain_detects_an_edited_row(register):
    register.review("Z1-20230501-1", to_status="under_review", by="王工")
    seq = register.review("Z1-20230501-1", to_status="field_check", by="李工")["seq"]
    register.review("Z2-20230701-1", to_status="dismissed", by="李工", note="cloud")
    assert register.verify_history() == []
    with sqlite3.connect(register.path) as con:
        con.execute("UPDATE review_history SET \"by\" = '张工' WHERE seq = ?", (seq,))
    problems = register.verify_history()
    assert any(f"seq {seq} (alert Z1-20230501-1) was edited" in p for p in problems)


def test_history_chain_detects_a_deleted_row(register):
    seqs = [register.review("Z1-20230501-1", to_status=status, by="王工")["seq"] for status in ("under_review", "field_check")]
    for step in ("self_check", "specialist_check", "acceptance"):
        register.review("Z1-20230501-1", step=step, by="王工")
    register.review("Z1-20230501-1", to_status="confirmed", by="王工")
    with sqlite3.connect(register.path) as con:
        con.execute("DELETE FROM review_history WHERE seq = ?", (seqs[0],))
    assert any(f"entry seq {seqs[1]} where {seqs[0]} was expected" in p for p in register.verify_history())


def test_a_locked_register_refuses_after_the_timeout(register):
    with register.lock():
        with pytest.raises(RegisterError, match="locked by another scan"):
            with Register(register.path).lock(timeout=0.5):
                pass


def test_a_dismissed_alert_that_keeps_growing_is_flagged_not_reopened(register):
    register.review("Z2-20230701-1", to_status="dismissed", by="李工", note="cloud shadow")
    grown = _alert("Z2", 104.0, "2023-07-01", "2023-09-01", scan="s2")
    grown["geometry"] = shapely.box(104.0, 30.7, 104.002, 30.702)  # four times the area
    merged, _ = merge_alerts(register.alerts(), _gdf([grown]), "s2")
    row = merged.set_index("alert_id").loc["Z2-20230701-1"]
    assert row["status"] == "dismissed"
    assert row["recheck"] == 1


def test_deleting_the_last_history_row_is_caught_by_the_alert_status(register):
    """The chain alone cannot see a truncated tail; the alert's status still points past it."""
    register.review("Z1-20230501-1", to_status="under_review", by="王工")
    last = register.review("Z1-20230501-1", to_status="dismissed", by="李工", note="shadow")["seq"]
    assert register.verify_history() == []
    with sqlite3.connect(register.path) as con:
        con.execute("DELETE FROM review_history WHERE seq = ?", (last,))
    problems = register.verify_history()
    assert problems == [
        "alerts: alert Z1-20230501-1 has status 'dismissed' but its review history ends at 'under_review' "
        "(a history entry was deleted or the status edited)"
    ]


def test_verify_cli_names_an_edited_and_a_deleted_row(small_scan, tmp_path):
    """`redline verify` on a real scan's register: one row edited and another deleted with sqlite3."""
    import shutil
    import subprocess
    import sys

    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    reg = Register(out / "register.gpkg")
    ids = sorted(reg.alerts()["alert_id"])
    for aid in ids[:2]:
        reg.review(aid, to_status="under_review", by="王工")
        reg.review(aid, to_status="field_check", by="王工")
    run = [sys.executable, "-m", "redline.cli", "verify", str(out), "--register", str(reg.path)]
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0
    first = int(reg.history()["seq"].min())
    with sqlite3.connect(reg.path) as con:
        con.execute("UPDATE review_history SET note = 'changed later' WHERE seq = ?", (first,))
        con.execute("DELETE FROM review_history WHERE seq = ?", (first + 2,))
    res = subprocess.run(run, capture_output=True, text=True)
    assert res.returncode == 1
    assert f"entry seq {first} (alert {ids[0]}) was edited" in res.stderr
    assert f"entry seq {first + 3} where {first + 2} was expected" in res.stderr


def test_selecting_a_scans_alerts_from_an_empty_register_keeps_the_columns(tmp_path):
    """A scan that finds nothing on a new register (regression: an empty object mask selected
    columns, and the scan died on a KeyError 'alert_id')."""
    from redline.register import of_scan

    none = Register(tmp_path / "r.gpkg").alerts()
    empty, _ = merge_alerts(none, none.copy(), "s1")
    mine = empty[of_scan(empty, "s1")]
    assert mine.empty and "alert_id" in mine.columns
    assert mine.sort_values("alert_id").columns.tolist() == empty.columns.tolist()


def _cli(*args: str, env: dict | None = None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_bad_registers_and_keys_are_one_line_exit_2_and_write_nothing(register, tmp_path):
    """A file that is not a register, a key file that is missing or readable by others, and a key
    the register does not list: one line each, exit 2, the register unchanged."""
    from redline.register.keys import create_key

    before = register.head()
    parcels = tmp_path / "parcels.gpkg"
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326).to_file(parcels, layer="parcels")
    stranger = create_key(tmp_path / "stranger.pem")
    loose = create_key(tmp_path / "loose.pem")
    loose.path.chmod(0o644)
    cases = [
        (("alerts", "review", "Z1-20230501-1", "--status", "under_review", "--by", "王工", "--register", str(parcels)), {},
         f"{parcels}: not a redline register (no 'alerts' or 'meta' table; tables: "),
        (("alerts", "review", "Z1-20230501-1", "--status", "under_review", "--by", "王工", "--register", str(register.path)),
         {"REDLINE_KEY": str(tmp_path / "missing.pem")}, f"no signing key at {tmp_path / 'missing.pem'}; create one with `redline keys create`"),
        (("alerts", "review", "Z1-20230501-1", "--status", "under_review", "--by", "王工", "--register", str(register.path)),
         {"REDLINE_KEY": str(loose.path)}, f"signing key {loose.path} can be read by others (mode 644); run `chmod 600 {loose.path}`"),
        (("alerts", "review", "Z1-20230501-1", "--status", "under_review", "--by", "王工", "--register", str(register.path)),
         {"REDLINE_KEY": str(stranger.path)}, f"this installation's signing key {stranger.key_id} ({stranger.path}) may not sign this register"),
    ]
    for args, env, message in cases:
        res = _cli(*args, env=env)
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
    assert register.head() == before and register.verify().problems == []
    assert "Z1" not in str(gpd.read_file(parcels).columns)  # the foreign file untouched
    res = _cli("keys", "show", env={"REDLINE_KEY": str(stranger.path)})
    assert res.returncode == 0 and stranger.public_hex in res.stdout and stranger.key_id in res.stdout
    res = _cli("keys", "create", env={"REDLINE_KEY": str(stranger.path)})
    assert res.returncode == 2 and "is never overwritten" in res.stderr
    res = _cli("keys", "trust", stranger.public_hex, "--register", str(register.path))
    assert res.returncode == 0 and f"key {stranger.key_id} may sign as signer" in res.stdout
    ok = _cli("alerts", "review", "Z1-20230501-1", "--status", "under_review", "--by", "王工", "--register", str(register.path),
              env={"REDLINE_KEY": str(stranger.path)})
    assert ok.returncode == 0, ok.stderr
    assert register.verify().problems == [] and register.chain()["key_id"].iloc[-1] == stranger.key_id


def test_a_new_key_file_is_private(tmp_path):
    res = _cli("keys", "create", "--key", str(tmp_path / "cfg" / "k.pem"))
    assert res.returncode == 0 and "created signing key" in res.stdout
    assert (tmp_path / "cfg" / "k.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cfg").stat().st_mode & 0o777 == 0o700
