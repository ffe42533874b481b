"""Scheduled scans from a state (issue 26): a rescan after 1 and after 5 new scenes, and with
nothing new, against a full scan over the same scenes; the state's size; the peak memory.

Run with ``python benchmarks/incremental.py [--preset small] [--size 600] [--revisit-days 10] [--max-cloud 71]
[--repeat 1] [--delay 0.08]``.

On one demo build (default: the ``small`` preset at 600 × 600 px, the scenes of at most 71 %
cloud: 39 dates of 7 assets, local COGs behind the embedded STAC API, default configuration) the
catalogue first lacks the last six scenes of the monitor window. A full scan of it writes the
state into a folder; then, each scan in its own process (``run_scan`` timed inside it, as a
cron job's scan is, after the imports):

1. one scene more: the rescan from the state (incremental) and, on a copy of the folder as it
   was, the full rescan (``--full``) — same scenes, same register before;
2. the five other scenes: the same pair;
3. nothing new: the rescan of the same folder (the up-to-date path).

``--delay D``: the scenes' assets behind :class:`rangeserver.RangeServer` on loopback, each range
request answered after D seconds (an object store across the internet: 50–150 ms, issue 25),
as the scheduled scans of Earth Search or Planetary Computer read them.

Prints per scan the wall time, the state's size (bytes, per million pixels of the grid and per
detection index) and the peak RSS the manifest recorded, then the ratios incremental / full.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bench
from rangeserver import RangeServer, items_over_http

HERE = Path(__file__).resolve().parent


def _one(catalogue: str, out: str, full: str) -> None:
    """One scan in this process; prints its JSON line."""
    import pipelines
    from redline.config import load_config
    from redline.scan import run_scan

    build = json.loads(Path(f"{catalogue}.build.json").read_text(encoding="utf-8"))  # beside it: the server reads every JSON in it
    with pipelines.serve_stac(catalogue) as url:
        cfg = load_config(build["config"], overrides={"stac": {"url": url, "max_cloud_cover": build["max_cloud"]}})
        text = Path(build["config"]).read_text(encoding="utf-8")
        t0 = time.perf_counter()
        res = run_scan(cfg, Path(out), config_text=text, full=full == "full")
        seconds = time.perf_counter() - t0
    m = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    print(json.dumps({"seconds": seconds, "up_to_date": res.up_to_date, "state": m.get("state"), "peak_rss": m["resources"].get("peak_rss_bytes"),
                      "grid": m.get("grid", {}), "stages": (m.get("timings") or {}).get("stages", {}),
                      "outputs": (m.get("timings") or {}).get("outputs", {}), "n_items": res.n_items}))


def _catalogue(build, dst: Path, drop: set[str], max_cloud: float, url: str | None = None) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(build.root) / "collection.json", dst / "collection.json")
    if url:  # the assets over HTTP (rangeserver.RangeServer)
        fc = json.loads((items_over_http(build.root, Path(f"{dst}.http"), url) / "items.json").read_text(encoding="utf-8"))
    else:
        fc = json.loads(Path(build.items).read_text(encoding="utf-8"))
    fc["features"] = [f for f in fc["features"] if f["id"] not in drop]
    (dst / "items.json").write_text(json.dumps(fc), encoding="utf-8")
    Path(f"{dst}.build.json").write_text(json.dumps({"config": str(build.config), "max_cloud": max_cloud}), encoding="utf-8")
    return dst


def _run(catalogue: Path, out: Path, full: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(catalogue), str(out), "full" if full else "auto"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"scan failed: {done.stderr.strip().splitlines()[-3:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--one":
        _one(*sys.argv[2:5])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=("small", "demo"),
                    help="small: 1 baseline year (2022); demo: 2 baseline years (2021-2022); both monitor 2023")
    ap.add_argument("--size", type=int, default=600, help="grid edge of the preset in px")
    ap.add_argument("--revisit-days", type=int, default=None, help="days between scenes (the presets': 10; 5: Sentinel-2's two satellites)")
    ap.add_argument("--max-cloud", type=float, default=71, help="stac.max_cloud_cover (71: 39 of the small preset's 73 dates)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the whole sequence")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each range request is answered (0: local files)")
    args = ap.parse_args(argv)
    build = _bench.build(args.preset, size=args.size, revisit_days=args.revisit_days)
    print(_bench.machine(), flush=True)
    fc = json.loads(Path(build.items).read_text(encoding="utf-8"))
    kept = sorted((f["properties"]["datetime"], f["id"]) for f in fc["features"] if f["properties"].get("eo:cloud_cover", 0) <= args.max_cloud)
    last6 = [i for _, i in kept[-6:]]
    with tempfile.TemporaryDirectory(prefix="redline-bench-incremental-") as tmp, RangeServer(build.root, delay=args.delay) as srv:
        t = Path(tmp)
        url = srv.url if args.delay > 0 else None
        print(f"assets: {'over HTTP, ' + format(args.delay * 1000, '.0f') + ' ms per request' if url else 'local files'}", flush=True)
        cats = {"first": _catalogue(build, t / "c-first", set(last6), args.max_cloud, url),
                "plus1": _catalogue(build, t / "c-plus1", set(last6[1:]), args.max_cloud, url),
                "plus5": _catalogue(build, t / "c-plus5", set(), args.max_cloud, url)}
        for rnd in range(args.repeat):
            out = t / f"scheduled-{rnd}"
            first = _run(cats["first"], out)
            st = first["state"]
            px = first["grid"].get("shape", [0, 0])
            mpx = (px[0] * px[1]) / 1e6 if px[0] else float("nan")
            print(f"round {rnd + 1}: full scan of {first['n_items']} scenes {first['seconds']:.1f} s, peak {first['peak_rss'] / 2**20:.0f} MiB; "
                  f"state {st['bytes'] / 2**20:.1f} MiB in {st['tiles']} tile(s), {st['days']} days"
                  + (f", {st['bytes'] / mpx / 2**20:.0f} MiB per Mpx, {st['bytes'] / mpx / 3 / 2**20:.0f} MiB per Mpx and detection index" if mpx == mpx else ""),
                  flush=True)
            for step in ("plus1", "plus5"):
                twin = t / f"twin-{rnd}-{step}"
                shutil.copytree(out, twin)
                inc = _run(cats[step], out)
                full = _run(cats[step], twin, full=True)
                shutil.rmtree(twin)
                print(f"  {step}: incremental {inc['seconds']:.1f} s ({len(inc['state'].get('new_scenes', []))} new, peak "
                      f"{inc['peak_rss'] / 2**20:.0f} MiB) vs full {full['seconds']:.1f} s (peak {full['peak_rss'] / 2**20:.0f} MiB): "
                      f"×{inc['seconds'] / full['seconds']:.3f}; stages, incremental: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in inc["stages"].items() if v >= 0.2)
                      + " (outputs by kind: " + ", ".join(f"{k} {v:.1f}" for k, v in inc["outputs"].items() if v >= 0.2) + ")"
                      + "; full: " + ", ".join(f"{k} {v:.1f}" for k, v in full["stages"].items() if v >= 0.2)
                      + " (outputs by kind: " + ", ".join(f"{k} {v:.1f}" for k, v in full["outputs"].items() if v >= 0.2) + ")", flush=True)
            same = _run(cats["plus5"], out)
            print(f"  nothing new: {same['seconds']:.2f} s (up to date: {same['up_to_date']})", flush=True)
    print(_bench.machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
