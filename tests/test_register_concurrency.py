"""Many writers on one register: 8 processes × 50 decisions while a scan merges into it — every row
kept, the chain and signatures intact, no "database is locked" crash; a writer that waits longer
than its lock timeout gets one clear line."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely

from redline.alerts import ALERT_COLUMNS
from redline.errors import RegisterError
from redline.register import Register, merge_alerts

PROCESSES, PER_PROCESS, N_ALERTS = 8, 50, 2000


def _alerts(n: int, last: str = "2023-12-31") -> gpd.GeoDataFrame:
    rng = np.random.default_rng(3)
    xs, ys = 102 + rng.uniform(0, 1, n), 29 + rng.uniform(0, 1, n)
    rows = [{c: None for c in ALERT_COLUMNS} | {
        "zone_id": f"Z{i % 20:02d}", "zone_name": "龙门山", "admin_id": "510182", "area_m2": 5000.0 + i, "centroid_lon": x, "centroid_lat": y,
        "first_detected": "2023-06-01", "last_observed": last, "confidence": "high", "disturbance_type": "clearing", "magnitude": 0.3,
        "n_observations": 3, "status": "new", "scan_ids": "s", "recheck": 0, "geometry": shapely.box(x, y, x + 0.0005, y + 0.0005)}
        for i, (x, y) in enumerate(zip(xs, ys))]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def _decide(location: str, ids: list[str], by: str, q) -> None:
    try:
        reg = Register(location, lock_timeout=60)
        lat = []
        for aid in ids:
            t0 = time.perf_counter()
            reg.review(aid, to_status="under_review", by=by, note=f"{by} looked at {aid}")
            lat.append(time.perf_counter() - t0)
        q.put(("ok", lat))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        q.put(("error", repr(exc)))


def _scan(location: str, q) -> None:
    try:
        reg = Register(location, lock_timeout=60)
        merged, stats = merge_alerts(reg.alerts(), _alerts(N_ALERTS, last="2024-02-29"), "s2")
        reg.commit_scan(merged, scan={"scan_id": "s2", "name": "t", "n_items": 2, "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged})
        q.put(("scan", stats.updated))
    except Exception as exc:  # noqa: BLE001
        q.put(("error", repr(exc)))


def _register(location: str) -> Register:
    reg = Register(location)
    merged, _ = merge_alerts(reg.alerts(), _alerts(N_ALERTS), "s1")
    reg.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 1, "new": N_ALERTS, "updated": 0, "unchanged": 0})
    return reg


def run_concurrently(location: str) -> tuple[Register, list[float], int]:
    reg = _register(location)
    ids = sorted(reg.alerts()["alert_id"])
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_decide, args=(location, ids[p * PER_PROCESS:(p + 1) * PER_PROCESS], f"审核员{p}", q)) for p in range(PROCESSES)]
    procs.append(ctx.Process(target=_scan, args=(location, q)))
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[1] for r in results if r[0] == "error"]
    assert errors == []
    lat = [x for r in results if r[0] == "ok" for x in r[1]]
    updated = next(r[1] for r in results if r[0] == "scan")
    return reg, lat, updated


def test_eight_reviewers_and_a_scan_on_one_geopackage(tmp_path):
    reg, lat, updated = run_concurrently(str(tmp_path / "register.gpkg"))
    h = reg.history()
    assert len(h) == PROCESSES * PER_PROCESS and h["seq"].is_unique  # none lost, none twice
    assert set(h["by"]) == {f"审核员{p}" for p in range(PROCESSES)}
    assert (reg.alerts()["status"] == "under_review").sum() == PROCESSES * PER_PROCESS
    assert updated == N_ALERTS and (reg.alerts()["last_observed"] == "2024-02-29").all()  # the scan's fields, the reviewers' statuses
    v = reg.verify()
    assert v.problems == [] and v.signed == v.rows and v.sealed == N_ALERTS
    with sqlite3.connect(reg.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_writer_waits_for_a_transaction_then_refuses_with_one_line(tmp_path):
    reg = _register(str(tmp_path / "register.gpkg"))
    aid = sorted(reg.alerts()["alert_id"])[0]
    con = sqlite3.connect(reg.path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        assert len(Register(reg.path).alerts()) == N_ALERTS  # readers are not blocked
        t0 = time.monotonic()
        with pytest.raises(RegisterError, match=r"the register is busy \(another writer held it longer than 0.5 s\); try again or raise --lock-timeout"):
            Register(reg.path, lock_timeout=0.5).review(aid, to_status="under_review", by="王工")
        assert 0.4 < time.monotonic() - t0 < 5
    finally:
        con.execute("ROLLBACK")
        con.close()
    Register(reg.path).review(aid, to_status="under_review", by="王工")  # and goes through once it is free
    assert len(reg.history()) == 1


def test_a_review_does_not_wait_for_a_running_scan(tmp_path):
    """The scans' lock is held for a whole scan; a review never takes it."""
    reg = _register(str(tmp_path / "register.gpkg"))
    aid = sorted(reg.alerts()["alert_id"])[0]
    with reg.lock():
        t0 = time.monotonic()
        Register(reg.path, lock_timeout=1).review(aid, to_status="under_review", by="王工")
        assert time.monotonic() - t0 < 1
