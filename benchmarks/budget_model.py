"""The memory budget's cost model (redline/budget.py): RSS of the tile loop per tile and chunk edge.

Run with ``python benchmarks/budget_model.py``. Each run in its own Python process: the plan of
a generated build (preset ``small``, 320 px and 160 px, 73 dates; 146 and 37 dates at 160 px)
with the tile and chunk edges forced, :func:`redline.run.run_tiles` on a LocalCluster of two
threads, the process's RSS sampled every 0.05 s; prints the RSS before the loop, its peak and
the increment, which the module docstring of :mod:`redline.budget` fits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(build: str, tile: int, chunk: int) -> None:
    """Child process: one tile loop; prints a JSON line."""
    import tempfile

    import psutil

    import pipelines
    from redline.config import load_config
    from redline.budget import Sizing, PeakSampler
    from redline.run.plan import read_areas, find_scenes, checked_plan, ScanPlan
    from redline.run.tileloop import run_tiles
    from redline.tiles import Mosaic
    root = Path(build)
    with pipelines.serve_stac(root) as url, tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(root / "scan.yml", overrides={"stac": {"url": url}, "tiling": {"max_tile_px": 2048}})
        zones, admin = read_areas(cfg)
        plan = checked_plan(cfg, zones, admin, find_scenes(cfg, zones))
        n_dates = len({pipelines.solar_day(it) for it in plan.items})
        s = Sizing(budget=10**12, source="x", tile_px=tile, chunk_px=chunk, n_dates=n_dates, n_bands=6, bytes_per_value=2, slots=2, in_flight=1, estimate=0)
        plan = ScanPlan.build(cfg, plan.zones, admin, plan.search, items=plan.items, sizing=s)
        with pipelines.dask_client(None, workers=2):
            pipelines.trim_memory()
            before = psutil.Process().memory_info().rss
            t0 = time.perf_counter()
            with PeakSampler(0.05) as smp:
                run_tiles(plan, Mosaic(Path(tmp) / "m", plan.grid, plan.zones_utm), progress=False, scan_id="x")
            secs = time.perf_counter() - t0
        big = max(t.shape[0] * t.shape[1] for t in plan.tiles)
        print(json.dumps({"tile": tile, "chunk": chunk, "dates": n_dates, "tiles": len(plan.tiles), "largest_tile_px2": big,
                          "grid": list(plan.grid.shape), "before_mib": before / 2**20, "peak_mib": smp.peak / 2**20,
                          "delta_mib": (smp.peak - before) / 2**20, "s": secs}), flush=True)

def main() -> int:
    import _bench

    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    print(_bench.machine())
    B = str(_bench.build("small").root)
    for kw in (dict(size=320), dict(revisit_days=5), dict(revisit_days=20)):
        _bench.build("small", **kw)
    runs = [(B + "-320px", 320, 320), (B + "-320px", 320, 160), (B + "-320px", 320, 80), (B + "-320px", 160, 160), (B + "-320px", 160, 80),
            (B, 160, 160), (B + "-5d", 160, 160), (B + "-5d", 160, 80), (B + "-20d", 160, 160), (B + "-320px", 320, 320)]
    for b, t, c in runs:
        r = subprocess.run([sys.executable, __file__, "--one", b, str(t), str(c)], capture_output=True, text=True, cwd=HERE)
        print(b.rsplit("/", 1)[-1], r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
