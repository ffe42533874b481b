"""Time of one review decision on a register of many alerts, and decisions under concurrency.

Run with ``python benchmarks/register_decision.py [--alerts 10000] [--decisions 30]
[--processes 8 --per-process 50] [--register postgresql://…]``.

1. **One decision.** The same register (``--alerts`` alerts merged by one scan, the history
   growing with the decisions) is decided on two ways in the same run:
   - *rewrite* (the baseline, redline before the transactional register, kept below): read every
     alert and the whole history, append one row, write every layer into a new GeoPackage with
     pyogrio and swap it in;
   - *transaction* (:meth:`redline.register.Register.review`): one SQL transaction that reads one
     alert and the chain head, inserts one signed history row and updates one alert.
   Prints the median and p95 of each and the ratio of the medians.
2. **Concurrency** (``--processes``): that many processes each record ``--per-process``
   decisions on one register while a scan merges into it (a ``commit_scan`` of every alert);
   prints the wall time, p50/p95/max decision latency, and checks that every row is there and the
   chain and signatures are intact.

The signing key is made in a temporary folder (``$REDLINE_KEY``); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))


def synthetic_alerts(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    """``n`` alerts of 30 zones in Sichuan: 3–8-vertex polygons of 0.5–5 ha, EPSG:4326."""
    from redline.alerts import ALERT_COLUMNS

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x, y = 102.0 + rng.uniform(0, 2), 29.0 + rng.uniform(0, 2)
        r = rng.uniform(0.0004, 0.0012)
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        poly = shapely.Polygon(np.column_stack([x + r * np.cos(ang), y + r * np.sin(ang)])).buffer(0)
        rows.append({c: None for c in ALERT_COLUMNS} | {
            "alert_id": None, "zone_id": f"Z{i % 30:02d}", "zone_name": "龙门山", "admin_id": f"5101{i % 12:02d}", "area_m2": round(poly.area * 1.1e10, 1),
            "centroid_lon": round(poly.centroid.x, 6), "centroid_lat": round(poly.centroid.y, 6),
            "first_detected": f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}", "last_observed": "2023-12-31", "confidence": ("low", "nominal", "high")[i % 3],
            "disturbance_type": "clearing", "magnitude": 0.3, "n_observations": 3, "status": "new", "scan_ids": "bench", "recheck": 0,
            "geometry": poly})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def make_register(location: str, n: int):
    from redline.register import Register, merge_alerts

    reg = Register(location)
    merged, stats = merge_alerts(reg.alerts(), synthetic_alerts(n), "bench")
    reg.commit_scan(merged, scan={"scan_id": "bench", "name": "bench", "n_items": 1, "new": stats.new, "updated": 0, "unchanged": 0})
    return reg


# --- the baseline: a decision as redline made it before (a whole rewrite of the GeoPackage) ------------
def rewrite_decision(path: Path, alert_id: str, to_status: str, by: str) -> None:
    """Read every layer, append one hash-chained row, write a new GeoPackage and swap it in."""
    from redline.alerts import ALERT_COLUMNS
    from redline.register import append_history

    alerts = gpd.read_file(path, layer="alerts", engine="pyogrio")
    layers = {n for n, _ in pyogrio.list_layers(path)}
    history = pyogrio.read_dataframe(path, layer="review_history", read_geometry=False) if "review_history" in layers else pd.DataFrame()
    scans = pyogrio.read_dataframe(path, layer="scans", read_geometry=False) if "scans" in layers else pd.DataFrame()
    i = alerts.index[alerts["alert_id"] == alert_id][0]
    history, _ = append_history(history, alert_id=alert_id, by=by, from_status=alerts.at[i, "status"], to_status=to_status)
    alerts.at[i, "status"] = to_status
    tmp = path.with_name(f".{path.stem}.tmp.gpkg")
    pyogrio.write_dataframe(alerts[[*ALERT_COLUMNS, "geometry"]], tmp, layer="alerts", driver="GPKG", promote_to_multi=True)
    pyogrio.write_dataframe(history.reset_index(drop=True), tmp, layer="review_history", driver="GPKG")
    if not scans.empty:
        pyogrio.write_dataframe(scans, tmp, layer="scans", driver="GPKG")
    pyogrio.write_dataframe(pd.DataFrame({"key": ["schema_version"], "value": ["2"]}), tmp, layer="meta", driver="GPKG")
    os.replace(tmp, path)


def legacy_copy(reg, path: Path) -> None:
    """The same alerts as a register written the old way (one pyogrio write of every layer)."""
    from redline.alerts import ALERT_COLUMNS

    a = reg.alerts()
    pyogrio.write_dataframe(a[[*ALERT_COLUMNS, "geometry"]], path, layer="alerts", driver="GPKG", promote_to_multi=True)
    pyogrio.write_dataframe(pd.DataFrame({"key": ["schema_version"], "value": ["2"]}), path, layer="meta", driver="GPKG")


def _stats(ms: list[float]) -> str:
    return f"median {statistics.median(ms):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms  (n={len(ms)})"


def one_decision(location: str, tmp: Path, n_alerts: int, n_decisions: int) -> tuple[float, float]:
    reg = make_register(location, n_alerts)
    ids = sorted(reg.alerts()["alert_id"])
    old = tmp / "legacy.gpkg"
    legacy_copy(reg, old)
    t_old, t_new = [], []
    for k in range(n_decisions):  # interleaved: the same load on both
        aid = ids[k * 97 % len(ids)]
        t0 = time.perf_counter()
        rewrite_decision(old, aid, "under_review", "王工")
        t_old.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        reg.review(aid, to_status="under_review", by="王工")
        t_new.append((time.perf_counter() - t0) * 1000)
    print(f"one decision, {n_alerts} alerts ({reg.store.describe().split('@')[-1]}):")
    print(f"  rewrite (before):      {_stats(t_old)}")
    print(f"  transaction (after):   {_stats(t_new)}")
    ratio = statistics.median(t_old) / statistics.median(t_new)
    print(f"  ratio of medians: ×{ratio:.0f} faster")
    return statistics.median(t_new), ratio


def _worker(location: str, ids: list[str], by: str, q) -> None:
    from redline.register import Register

    reg = Register(location, lock_timeout=60)
    lat = []
    for aid in ids:
        t0 = time.perf_counter()
        reg.review(aid, to_status="under_review", by=by)
        lat.append((time.perf_counter() - t0) * 1000)
    q.put(lat)


def _scanner(location: str, q) -> None:
    from redline.register import Register, merge_alerts

    reg = Register(location, lock_timeout=60)
    t0 = time.perf_counter()
    merged, stats = merge_alerts(reg.alerts(), synthetic_alerts(len(reg.alerts()), seed=7).assign(last_observed="2024-01-31"), "bench-2")
    reg.commit_scan(merged, scan={"scan_id": "bench-2", "name": "bench", "n_items": 1, "new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged})
    q.put(("scan", (time.perf_counter() - t0) * 1000))


def concurrency(location: str, n_alerts: int, processes: int, per: int) -> None:
    """``processes`` × ``per`` decisions on one register while a scan merges into it."""
    reg = make_register(location, n_alerts)
    ids = sorted(reg.alerts()["alert_id"])
    before = len(reg.history())
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(location, ids[p * per:(p + 1) * per], f"reviewer-{p}", q)) for p in range(processes)]
    procs.append(ctx.Process(target=_scanner, args=(location, q)))
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat = [x for r in results if isinstance(r, list) for x in r]
    scan_ms = next(r[1] for r in results if isinstance(r, tuple))
    v = reg.verify()
    rows = len(reg.history()) - before
    print(f"concurrency: {processes} processes × {per} decisions while a scan merges {n_alerts} alerts ({reg.store.describe().split('@')[-1]}):")
    print(f"  wall {wall:.1f} s; decision latency p50 {np.percentile(lat, 50):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms, max {max(lat):.0f} ms; "
          f"the scan's merge {scan_ms / 1000:.1f} s")
    print(f"  rows recorded {rows}/{processes * per}; chain and signatures: {'intact' if not v.problems else v.problems[:3]}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=30)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--per-process", type=int, default=50)
    ap.add_argument("--register", default=None, help="a postgresql:// URL (an empty database) instead of a GeoPackage")
    args = ap.parse_args(argv)
    from _bench import machine

    print(machine())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        from redline.register.keys import KEY_ENV, create_key

        os.environ[KEY_ENV] = str(create_key(tmp / "key.pem").path)
        one_decision(args.register or str(tmp / "one.gpkg"), tmp, args.alerts, args.decisions)
        if args.processes:
            if args.register:
                print("concurrency on PostgreSQL: give an empty database per run (the first part filled this one)")
            else:
                concurrency(str(tmp / "busy.gpkg"), args.alerts, args.processes, args.per_process)


if __name__ == "__main__":
    main()
