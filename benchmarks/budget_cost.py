"""What the default memory budget costs a scan in time, against a budget that holds it in one tile.

Run with ``python benchmarks/budget_cost.py [--size 600] [--max-cloud 71] [--budgets default,8GB] [--repeat 3]``.

The default budget (``resources.memory_limit`` unset: :func:`redline.budget.machine_memory_limit`,
512 MiB per compute thread) cuts a scan into tiles that fit it; a large budget lets the same
scan run as one tile. Smaller tiles bound the peak memory (benchmarks/README.md §5b) and cost
time per tile: each tile's graph is built anew (odc-stac's per-scene work) and the cluster
starts and drains on each tile. On one demo build (default: the ``small`` preset at 600 × 600 px,
the scenes of at most 71 % cloud: 39 dates, 7 assets each, local COGs behind the embedded STAC
API), the whole scan (:func:`redline.scan.run_scan`, default configuration but the budget) runs
in its own process per budget, the budgets alternating ``--repeat`` times. Prints per run the
wall time, the tile and chunk edges, the peak RSS the manifest recorded and the manifest's stage
timings, then per budget the median wall time and its ratio to the first budget's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bench

HERE = Path(__file__).resolve().parent


def _one(size: int, max_cloud: float, budget: str, out: str) -> None:
    """One scan in this process; prints its JSON line."""
    import pipelines
    from rangeserver import items_over_http
    from redline.config import load_config
    from redline.scan import run_scan

    build = _bench.build("small", size=size)
    with tempfile.TemporaryDirectory(prefix="redline-bench-budget-") as tmp:
        folder = items_over_http(build.root, Path(tmp) / "stac", None)
        with pipelines.serve_stac(folder) as url:
            over = {"stac": {"url": url, "max_cloud_cover": max_cloud}}
            if budget != "default":
                over["resources"] = {"memory_limit": budget}
            cfg = load_config(build.config, overrides=over)
            t0 = time.perf_counter()
            run_scan(cfg, Path(out))
            seconds = time.perf_counter() - t0
    m = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    r = m["resources"]
    print(json.dumps({"seconds": seconds, "tile_px": r["tile_px"], "chunk_px": r["chunk_px"], "budget": r["budget"],
                      "peak_rss": r.get("peak_rss_bytes"), "tiles": len(m["tiles"]), "stages": m["timings"]["stages"],
                      "outputs": m["timings"]["outputs"]}))


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--one":
        _one(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=600, help="grid edge of the small preset in px")
    ap.add_argument("--max-cloud", type=float, default=71, help="stac.max_cloud_cover (71: 39 of the small preset's 73 dates)")
    ap.add_argument("--budgets", default="default,8GB", help="resources.memory_limit of each variant, comma-separated (default: unset)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    _bench.build("small", size=args.size)  # built once, before any timed run
    print(_bench.machine(), flush=True)
    budgets = args.budgets.split(",")
    runs: dict[str, list[dict]] = {b: [] for b in budgets}
    with tempfile.TemporaryDirectory(prefix="redline-bench-budget-out-") as tmp:
        for rnd in range(args.repeat):
            for b in budgets:
                out = Path(tmp) / f"{b}-{rnd}"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(args.size), str(args.max_cloud), b, str(out)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
                if done.returncode != 0:
                    raise RuntimeError(f"scan with budget {b} failed: {done.stderr.strip().splitlines()[-1:]}")
                r = json.loads(done.stdout.strip().splitlines()[-1])
                runs[b].append(r)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items() if v >= 0.3)
                outputs = ", ".join(f"{k} {v:.1f}" for k, v in r["outputs"].items() if v >= 0.3)
                print(f"  round {rnd + 1} budget {b:8s}: {r['seconds']:6.1f} s, {r['tiles']} tile(s) of ≤ {r['tile_px']} px, chunks {r['chunk_px']} px, "
                      f"peak {r['peak_rss'] / 2**20:.0f} MiB; stages: {stages}; outputs: {outputs}", flush=True)
    base = statistics.median(r["seconds"] for r in runs[budgets[0]])
    print("summary (median over rounds)")
    for b in budgets:
        med = statistics.median(r["seconds"] for r in runs[b])
        print(f"  budget {b:8s}: {med:6.1f} s (×{med / base:.2f} the {budgets[0]} budget's), peak {statistics.median(r['peak_rss'] for r in runs[b]) / 2**20:.0f} MiB")
    print(_bench.machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
