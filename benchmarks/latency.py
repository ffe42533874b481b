"""The scan at internet latency: scenes behind a range-request server that waits before each answer.

Run with ``python benchmarks/latency.py [--preset small] [--size 600] [--every 2] [--delays 0.08 0.15]``.

Object stores across the internet answer each range request in 50–150 ms (issue 25). On one
generated COG stack (default: the ``small`` preset at 600 × 600 px, the scenes of at most 71 %
cloud cover: 39 dates, 7 assets each), in the same run:

* **local**: :func:`redline.scan.run_scan` with the STAC Items pointing at the local COGs;
* **http D ms**: the same scan with the Items pointing at :class:`rangeserver.RangeServer` on
  loopback (HTTP/1.1 keep-alive, ranges, each request answered after D ms), default config
  (``io.concurrency`` 32); alternated with the local scan, each twice; every HTTP run reads other
  URLs (``?run=n``) so that GDAL's in-process cache starts empty, as in a new scan process;
* **requests and bytes**: what the scan's manifest counted (GDAL's network statistics, checked
  against the server's own count) against the minimum a reader needs: per asset one request
  for the header and one for the tiles it needs over the analysis grid (several ranges in one
  request, RFC 9110 §14.1.2), and the bytes of the header (up to the first tile) and of those
  tiles (TIFF tile offsets and sizes);
* **obvious**: the odc-stac + xarray pipeline of ``vs_odc_xarray.py`` over the same server at
  the first delay (worker processes, 256 px chunks), once.

Prints the ratios http / local (the issue's target: ≤ 1.3) and obvious / redline over HTTP
(target ≥ 3).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.windows import Window, from_bounds

import _bench
import pipelines
from rangeserver import RangeServer, items_over_http
from redline.config import load_config
from redline.scan import run_scan
from vs_odc_xarray import obvious_pipeline

ASSETS = (*pipelines.REFLECTANCE_BANDS, "scl")


def minimum_io(items: list[pystac.Item], bounds: tuple[float, float, float, float]) -> tuple[int, int]:
    """Fewest requests and bytes that read the analysis window of every asset of ``items``: per
    asset, its header (bytes before the first tile) in one request and the tiles the window
    touches in one more request."""
    requests = nbytes = 0
    for it in items:
        for a in ASSETS:
            with rasterio.open(pipelines.local_href_patch(it.assets[a].href)) as src:
                win = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
                win = win.intersection(Window(0, 0, src.width, src.height))
                bh, bw = src.block_shapes[0]
                rows = math.ceil(src.height / bh)
                cols = math.ceil(src.width / bw)
                blocks = []
                first = min(int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)) for r in range(rows) for c in range(cols))
                for r in range(int(win.row_off // bh), min(rows, math.ceil((win.row_off + win.height) / bh))):
                    for c in range(int(win.col_off // bw), min(cols, math.ceil((win.col_off + win.width) / bw))):
                        off = int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
                        size = int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1))
                        blocks.append((off, size))
            blocks.sort()
            requests += 1 + (1 if blocks else 0)
            nbytes += first + sum(s for _, s in blocks)
    return requests, nbytes


def scan(build, stac_folder: Path, tmp: Path, name: str, max_cloud: float) -> tuple[float, dict, int]:
    """Seconds of one whole scan of the Items in ``stac_folder``, its manifest's ``io`` and its alert count."""
    with pipelines.serve_stac(stac_folder) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url, "max_cloud_cover": max_cloud}})
        t0 = time.perf_counter()
        res = run_scan(cfg, tmp / name)
        seconds = time.perf_counter() - t0
    io = json.loads((tmp / name / "manifest.json").read_text(encoding="utf-8"))["io"]
    return seconds, io, len(res.alerts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=20230101)
    ap.add_argument("--size", type=int, default=600, help="grid edge in px")
    ap.add_argument("--every", type=int, default=1, help="keep one scene in this many")
    ap.add_argument("--max-cloud", type=float, default=71, help="stac.max_cloud_cover (71: 39 of the small preset's 73 dates)")
    ap.add_argument("--delays", type=float, nargs="+", default=[0.08, 0.15], help="seconds per request")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-obvious", action="store_true", help="skip the odc-stac + xarray pipeline")
    args = ap.parse_args(argv)
    _, build, _, cfg, _, geobox = _bench.setup(["--preset", args.preset, "--seed", str(args.seed), "--size", str(args.size)], "")
    print(_bench.machine())
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp_s, RangeServer(build.root) as srv:
        tmp = Path(tmp_s)
        local_dir = items_over_http(build.root, tmp / "stac-local", None, every=args.every)

        def http_dir(run: str) -> Path:
            return items_over_http(build.root, tmp / f"stac-http-{run}", srv.url, every=args.every, query=f"run={run}")

        def read(folder: Path) -> list[pystac.Item]:
            return [it for f in json.loads((folder / "items.json").read_text(encoding="utf-8"))["features"]
                    for it in [pystac.Item.from_dict(f)] if it.properties.get("eo:cloud_cover", 0) <= args.max_cloud]

        items = read(local_dir)
        b = geobox.boundingbox
        min_req, min_bytes = minimum_io(items, (b.left, b.bottom, b.right, b.top))
        print(f"build {args.preset} seed {args.seed}: {len(items)} scenes × {len(ASSETS)} assets, grid {geobox.shape[1]}×{geobox.shape[0]} px; "
              f"LocalCluster {cfg.dask.workers} × {cfg.dask.threads_per_worker} thread; io.concurrency {cfg.io.concurrency}")
        print(f"minimum to read the grid's window of every asset: {min_req} requests, {min_bytes / 1e6:.1f} MB")
        times: dict[str, list[float]] = {"local": []}
        for d in args.delays:
            times[f"http {d * 1000:.0f} ms"] = []
        ios: dict[str, dict] = {}
        n = 0
        for rep in range(args.repeats):
            s, _, alerts = scan(build, local_dir, tmp, f"local-{rep}", args.max_cloud)
            times["local"].append(s)
            print(f"  local run {rep + 1}: {s:.1f} s, {alerts} alerts", flush=True)
            for d in args.delays:
                key = f"http {d * 1000:.0f} ms"
                srv.delay = d
                srv.reset_counts()
                s, io, alerts = scan(build, http_dir(str(n)), tmp, f"http-{n}", args.max_cloud)
                n += 1
                times[key].append(s)
                ios[key] = {**io, "server_requests": srv.requests, "server_bytes": srv.bytes_sent, "max_in_flight": srv.max_in_flight}
                print(f"  {key} run {rep + 1}: {s:.1f} s, {alerts} alerts; {io['requests']} requests "
                      f"(server: {srv.requests}, at most {srv.max_in_flight} at once), {io['bytes_fetched'] / 1e6:.1f} MB fetched, "
                      f"{io['bytes_decoded'] / 1e6:.1f} MB decoded", flush=True)
        obvious_s = None
        if not args.no_obvious:
            srv.delay = args.delays[0]
            with pipelines.dask_client(None, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=True):
                t0 = time.perf_counter()
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)
                    obvious_pipeline(read(http_dir("obvious")), geobox, cfg).compute()
                obvious_s = time.perf_counter() - t0
    print(f"load average now: {', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    local = min(times["local"])
    print(f"local scan: {local:.1f} s (runs: {', '.join(f'{s:.1f}' for s in times['local'])})")
    for d in args.delays:
        key = f"http {d * 1000:.0f} ms"
        best = min(times[key])
        io = ios[key]
        print(f"{key} scan: {best:.1f} s (runs: {', '.join(f'{s:.1f}' for s in times[key])}); {io['requests']} requests "
              f"({io['requests'] / min_req:.2f}× the minimum), {io['bytes_fetched'] / 1e6:.1f} MB ({io['bytes_fetched'] / min_bytes:.2f}× the minimum)")
        print(f"RATIO {key} / local = {best / local:.2f}")
    if obvious_s is not None:
        key = f"http {args.delays[0] * 1000:.0f} ms"
        print(f"obvious odc-stac + xarray pipeline over {key}: {obvious_s:.1f} s")
        print(f"RATIO obvious / redline full scan over {key} = {obvious_s / min(times[key]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
