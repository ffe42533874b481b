"""The full scan against the read-limit: reading and decoding exactly the pixels the scan needs.

Run with ``make bench`` (or ``python benchmarks/read_limit.py [--preset small] [--size PX]``).

On one generated COG stack, in the same run:

* **read-limit**: every asset the scan loads (the six reflectance bands and the SCL of every
  scene) opened with rasterio and the window covering the scan's analysis grid read and decoded
  at the asset's native resolution, on a thread pool as wide as the scan's Dask cluster
  (``dask.workers × dask.threads_per_worker``), with the same GDAL settings
  (``pipelines._cluster.GDAL_ENV``). Read twice; the faster read counts (a warm page cache,
  as the scan gets);
* **scan**: :func:`redline.scan.run_scan` on the same build served by the embedded STAC API
  (search, probe, load, mask, indices, baseline + detection, alerts, register, assessment,
  outputs, map), wall time from the call to its return, LocalCluster start included;
* **scan's compute step**: the scan's eager step alone (``redline.run.run_tiles``: per tile, the
  detection fields, composite, assessment inputs and clear-pixel counts computed together and
  written into the tile mosaics, and the tile's alerts) on an already running LocalCluster, and the load alone
  (``pipelines.load_series``: odc-stac onto the grid, scaling, quality mask; every chunk
  computed and summed, nothing gathered), to show
  where the scan's time goes.

Prints the ratios scan / read-limit (the issue's target: ≤ 1.5), compute step / read-limit and
load / read-limit, and the scan's per-stage timings (the manifest's ``timings``).

``--baseline-tree DIR`` (e.g. ``/work/main``, a checkout of an earlier commit) also times the
whole scan of that tree's redline against this one's, each in a process of its own on the same
build and STAC API, alternating ``--runs`` times (issue 25: the outputs before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import rasterio
from rasterio.windows import from_bounds

import _bench
import pipelines
from redline.config import load_config
from redline.run import ScanPlan, run_tiles
from redline.scan import run_scan
from redline.tiles import Mosaic

ASSETS = (*pipelines.REFLECTANCE_BANDS, "scl")


def _read(path: str, bounds: tuple[float, float, float, float]) -> int:
    with rasterio.open(path) as src:
        win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
        data = src.read(1, window=win, boundless=True, fill_value=0)
    return int(data.size)


def read_limit(items, bounds: tuple[float, float, float, float], threads: int) -> tuple[float, int]:
    """Seconds to read and decode the analysis window of every asset, and the pixels read."""
    paths = [pipelines.local_href_patch(it.assets[a].href) for it in items for a in ASSETS]
    t0 = time.perf_counter()
    pipelines.set_gdal_env()  # the scan's GDAL settings (pipelines._cluster.GDAL_ENV), as on its workers
    with ThreadPoolExecutor(threads) as pool:
        n = sum(pool.map(lambda p: _read(p, bounds), paths))
    return time.perf_counter() - t0, n


def _scan_json(build, out: Path) -> None:
    """``--scan-json``: one scan of ``build`` into ``out`` with the redline first on the path;
    prints its wall seconds (call to return) and the manifest's ``timings`` as one JSON line."""
    with pipelines.serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}})
        t0 = time.perf_counter()
        run_scan(cfg, out)
        seconds = time.perf_counter() - t0
    timings = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("timings")
    print("SCAN-JSON " + json.dumps({"seconds": seconds, "timings": timings}))


def _scan_in(tree: Path, argv: list[str]) -> dict:
    """One ``--scan-json`` run of this script in a process whose redline is ``tree``'s."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(Path(__file__).parent)])}
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        res = subprocess.run([sys.executable, __file__, *argv, "--scan-json", str(Path(tmp) / "out")], env=env, capture_output=True, text=True,
                             check=True)
    return json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("SCAN-JSON "))[len("SCAN-JSON "):])


def _timings_table(timings: dict | None) -> str:
    """The manifest's ``timings`` as two lines (stages, then outputs by kind), seconds."""
    if not timings:
        return "  (no timings in this tree's manifest)"
    return ("  stages: " + ", ".join(f"{k} {v:.2f}" for k, v in timings["stages"].items()) + f" (wall {timings['wall_s']:.2f})\n"
            "  outputs by kind (side by side): " + ", ".join(f"{k} {v:.2f}" for k, v in timings["outputs"].items()))


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--baseline-tree", type=Path, default=None, help="time this tree's whole scan too, alternating with this one's")
    own.add_argument("--runs", type=int, default=2, help="alternations of baseline / this tree with --baseline-tree")
    own.add_argument("--scan-json", type=Path, default=None, help=argparse.SUPPRESS)
    opts, rest = own.parse_known_args(sys.argv[1:] if argv is None else argv)
    args, build, items, cfg, zones, geobox = _bench.setup(rest, __doc__.splitlines()[0])
    if opts.scan_json is not None:
        _scan_json(build, opts.scan_json)
        return 0
    b = geobox.boundingbox
    bounds = (b.left, b.bottom, b.right, b.top)
    threads = cfg.dask.workers * cfg.dask.threads_per_worker
    print(_bench.machine())
    print(f"build {args.preset} seed {args.seed}: {len(items)} scenes, grid {geobox.shape[1]}×{geobox.shape[0]} px; {threads} threads")

    reads = [read_limit(items, bounds, threads) for _ in range(2)]
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp, pipelines.serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}})
        t0 = time.perf_counter()
        result = run_scan(cfg, Path(tmp) / "out")
        scan_s = time.perf_counter() - t0
        timings = json.loads((Path(tmp) / "out" / "manifest.json").read_text(encoding="utf-8")).get("timings")
    with pipelines.dask_client(None, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=cfg.dask.processes):
        plan = ScanPlan.build(cfg, zones, None, None, items=items)
        with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
            t0 = time.perf_counter()
            run_tiles(plan, Mosaic(Path(tmp), plan.grid, plan.zones_utm), progress=False, scan_id="bench")
            compute_s = time.perf_counter() - t0
        loaded = pipelines.load_series(items, geobox, profile=pipelines.get_profile(cfg.stac.profile),
                                       mask=pipelines.MaskRules(scl_classes=tuple(cfg.detection.scl_mask_classes)))
        t0 = time.perf_counter()
        dask.compute(*[v.sum() for v in loaded.data.data_vars.values()])  # every chunk read, nothing gathered
        load_s = time.perf_counter() - t0
    reads.append(read_limit(items, bounds, threads))
    limit_s, n_px = min(reads)
    print(f"read-limit: {n_px / 1e6:.1f} M pixels of {len(items) * len(ASSETS)} assets in {limit_s:.2f} s (runs: {', '.join(f'{s:.2f}' for s, _ in reads)})")
    print(f"scan: {scan_s:.1f} s ({len(result.alerts)} alerts)")
    print(f"scan's compute step alone: {compute_s:.1f} s")
    print(f"RATIO scan / read-limit = {scan_s / limit_s:.1f}")
    print(f"load alone (odc-stac, scaling, mask): {load_s:.1f} s")
    print(f"RATIO compute step / read-limit = {compute_s / limit_s:.1f}")
    print(f"RATIO load / read-limit = {load_s / limit_s:.1f}")
    print("the scan's timings (manifest):")
    print(_timings_table(timings))
    if opts.baseline_tree is not None:
        here = Path(__file__).resolve().parent.parent
        for k in range(opts.runs):
            for name, tree in (("baseline", opts.baseline_tree), ("this tree", here)):
                run = _scan_in(tree, rest)
                print(f"run {k + 1} {name} ({tree}): whole scan {run['seconds']:.1f} s, RATIO scan / read-limit = {run['seconds'] / limit_s:.1f}")
                print(_timings_table(run["timings"]))
        print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
