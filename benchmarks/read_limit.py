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
load / read-limit.
"""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> int:
    args, build, items, cfg, zones, geobox = _bench.setup(argv, __doc__.splitlines()[0])
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
