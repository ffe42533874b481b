"""Peak memory of a scan as the area grows (×1, ×4, ×16) and as the dates double.

Run with ``make bench`` (or ``python benchmarks/memory.py [--areas 1,4,16] [--no-dates]
[--malloc redline,glibc]``).

Each scan runs in its own Python process (a fresh interpreter, so no run inherits another's heap):
:func:`redline.scan.run_scan` on a generated build served by the embedded STAC API, with the
build's config (LocalCluster of ``dask.workers`` processes). This process samples, every 0.1 s,
the resident set size (RSS) of that process and all its descendants (the Dask scheduler is in
the scan's process; the two worker processes, their nanny and the STAC server are its children)
and reports the peak of the sum, with the scan's wall time.

* area: preset ``small`` (73 dates, 2022–2023) at a grid edge of 160 px (the preset), 320 px
  (×4 area) and 640 px (×16): zones and landscape scale with the grid (``generate_demo(size=…)``);
* dates: preset ``demo`` (320 px, 2021–2023) with every second scene (55 dates, a 20-day
  revisit; a copy of the build's ``items.json`` served from a folder beside it, same COGs) and
  with all its scenes (110 dates): same windows, same grid.

With the workers as threads (``dask.processes: false``, the default) their memory is the scan
process's own: ``--malloc redline,glibc`` runs each area with ``malloc_trim`` after each tile
(``pipelines.trim_memory``, as the scan runs) and without it, alternating per area so
that both see the same load. glibc's tunables reach the scans through the environment
(``MALLOC_TRIM_THRESHOLD_=65536 python benchmarks/memory.py``: what Dask's nanny gives its
worker processes).

Prints each peak and its ratio to the smallest run of its series, and wall time per
pixel × date relative to the same run (1.00 = linear).

``--budget`` (issue 25, the memory budget) runs instead, with the default config (tiles and
chunks sized by ``resources.memory_limit``'s default, :mod:`redline.budget`), preset ``small``
with a scene every 20 days (37 dates over 2022–2023) at 600 px (×1), 1200 px (×4 area) and
2400 px (×16), the 600-px grid with a scene every 5 days (146 dates: ×4 dates over the same
years), and the ×16 area and ×4 dates again under ``--memory-limit 1GB``; each run
``--repeat`` times (alternating), printing the peak of each run, the tile and chunk edges
the scan chose and the peak its manifest recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

import _bench

HERE = Path(__file__).resolve().parent


def _thinned(build) -> Path:
    """A folder beside the build serving every second of its scenes (same COGs, zones, config)."""
    root = Path(build.root)
    out = root.with_name(root.name + "-every2nd")
    out.mkdir(exist_ok=True)
    fc = json.loads((root / "items.json").read_text(encoding="utf-8"))
    fc["features"] = fc["features"][::2]
    (out / "items.json").write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    for name in ("collection.json", "zones.gpkg", "counties.gpkg", "scan.yml"):
        shutil.copyfile(root / name, out / name)
    return out


#: ``--malloc`` choices: redline's malloc_trim after each tile (pipelines/_cluster.py), or not.
MALLOC = ("redline", "glibc")


def _without_malloc_trim() -> None:
    """This process's scan as where malloc is not glibc's: :func:`pipelines.trim_memory` (called
    by ``compute_tiles`` after each tile) finds no ``malloc_trim`` in ``libc.so.6`` and does
    nothing; every other library loads as usual (nothing else here opens libc.so.6)."""
    import ctypes

    real = ctypes.CDLL

    def cdll(name, *args, **kwargs):
        if name == "libc.so.6":
            raise OSError("benchmarks/memory.py --malloc glibc: no malloc_trim after each tile")
        return real(name, *args, **kwargs)

    ctypes.CDLL = cdll


def _one(preset: str, size: int | None, every2nd: bool, tile_px: int | None = None, in_flight: int | None = None,
         malloc: str = "redline", revisit: int | None = None, limit: str | None = None) -> None:
    """Child process: one scan; prints a JSON line with its wall time, scenes, grid and the
    manifest's ``resources`` (budget, tile and chunk edges, peak recorded)."""
    import pipelines

    if malloc == "glibc":  # no malloc_trim after each tile
        _without_malloc_trim()
    from redline.config import load_config
    from redline.scan import run_scan

    build = _bench.build(preset, size=size, revisit_days=revisit)
    root = _thinned(build) if every2nd else Path(build.root)
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp, pipelines.serve_stac(root) as url:
        cfg = load_config(root / "scan.yml", overrides={
            "stac": {"url": url},
            **({"tiling": {"max_tile_px": tile_px, **({"in_flight": in_flight} if in_flight else {})}} if tile_px else {}),
            **({"resources": {"memory_limit": limit}} if limit else {})})
        t0 = time.perf_counter()
        result = run_scan(cfg, Path(tmp) / "out")
        seconds = time.perf_counter() - t0
        manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text(encoding="utf-8"))
    print(json.dumps({"seconds": seconds, "n_items": result.n_items, "shape": manifest["grid"]["shape"], "tiles": len(manifest["tiles"]),
                      "resources": manifest.get("resources", {})}))


def measure(preset: str, size: int | None, every2nd: bool = False, tile_px: int | None = None, in_flight: int | None = None,
            malloc: str = "redline", revisit: int | None = None, limit: str | None = None) -> dict:
    """Run one scan in a child process; its peak tree RSS (bytes) and its JSON line."""
    build = _bench.build(preset, size=size, revisit_days=revisit)  # build first, outside the measured process
    for f in Path(build.root).rglob("*"):  # and read it once: every run finds it in the page cache, not only the later ones
        if f.is_file():
            f.read_bytes()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", preset, str(size or 0), "every2nd" if every2nd else "", str(tile_px or 0), str(in_flight or 0),
           malloc, str(revisit or 0), limit or ""]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    proc, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, _bench.tree_rss(proc))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"scan {preset} size {size} failed: {err.strip().splitlines()[-1] if err.strip() else child.returncode}")
    return {"peak_bytes": peak, **json.loads(out.strip().splitlines()[-1])}


def _report(title: str, runs: list[tuple[str, dict]]) -> None:
    print(title)
    base = runs[0][1]
    base_work = base["shape"][0] * base["shape"][1] * base["n_items"]
    for label, r in runs:
        work = r["shape"][0] * r["shape"][1] * r["n_items"]
        print(f"  {label:10s} grid {r['shape'][1]}×{r['shape'][0]} px, {r['n_items']} dates, {r.get('tiles', 1)} tile(s): peak RSS {r['peak_bytes'] / 2**20:.0f} MiB "
              f"(×{r['peak_bytes'] / base['peak_bytes']:.2f}), scan {r['seconds']:.1f} s "
              f"(time per pixel-date ×{(r['seconds'] / work) / (base['seconds'] / base_work):.2f})"
              + (f"; budget {res['budget'] / 2**20:.0f} MiB ({res['source']}): tile {res['tile_px']} px, chunk {res['chunk_px']} px, "
                 f"model {res['estimate'] / 2**20:.0f} MiB, manifest peak {res['peak_rss_bytes'] / 2**20:.0f} MiB" if (res := r.get("resources")) else ""),
              flush=True)


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--one":
        _one(sys.argv[2], int(sys.argv[3]) or None, sys.argv[4] == "every2nd", int(sys.argv[5]) or None, int(sys.argv[6]) or None, sys.argv[7],
             int(sys.argv[8]) or None, sys.argv[9] or None)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--areas", default="1,4,16", help="area factors to run, of 1, 4, 16")
    ap.add_argument("--no-dates", action="store_true", help="skip the dates series")
    ap.add_argument("--in-flight", type=int, default=0, help="tiling.in_flight of the area series (0: the config default, 1)")
    ap.add_argument("--tile-px", type=int, default=160, help="tiling.max_tile_px of the area series (160: the ×1 grid is one tile); 0: the config's")
    ap.add_argument("--budget", action="store_true", help="the memory-budget series (issue 25) instead: default config, area ×1/×4/×16 "
                    "and dates ×4, and --memory-limit 1GB")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each --budget scan (alternating)")
    ap.add_argument("--budget-sizes", default="600,1200,2400", help="grid edges (px) of the --budget area series")
    ap.add_argument("--malloc", default="redline", help=f"comma-separated, of {', '.join(MALLOC)}: run the area series once with each "
                    "(redline: as the scan runs, malloc_trim after each tile; glibc: without), alternating per area so that they "
                    "share the machine's load")
    args = ap.parse_args(argv)
    print(_bench.machine())
    if args.budget:
        return _budget_series([int(x) for x in args.budget_sizes.split(",")], args.repeat)
    sizes = {1: None, 4: 320, 16: 640}
    mallocs = [m for m in args.malloc.split(",") if m]
    if set(mallocs) - set(MALLOC):
        ap.error(f"--malloc: {args.malloc}: use {', '.join(MALLOC)}")
    runs: dict[str, list] = {m: [] for m in mallocs}
    for f in (int(x) for x in args.areas.split(",") if x):
        for m in mallocs:
            runs[m].append((f"area ×{f}", measure("small", sizes[f], tile_px=args.tile_px or None, in_flight=args.in_flight or None, malloc=m)))
            print(f"  ... area ×{f} ({m}) done", flush=True)
    for m, series in runs.items():
        if series:
            _report(f"area (preset small, 73 dates, tiling.max_tile_px {args.tile_px or 'from the config'}, in_flight {args.in_flight or 1}, "
                    f"malloc {m}):", series)
    if not args.no_dates:
        _report("dates (preset demo, 320 px):", [("dates ×1", measure("demo", None, every2nd=True)), ("dates ×2", measure("demo", None))])
    return 0


def _budget_series(sizes: list[int], repeat: int) -> int:
    """The memory-budget series: default config, area ×1/×4/×16 (``sizes``) at 37 dates, dates
    ×4 (146) at the second size (its ×1 is that size's 37-date run), and the dates ×4 and the
    largest area again under ``--memory-limit 1GB``; ``repeat`` rounds, each running every scan
    once (so that each scan sees the load of every round)."""
    area = {f"area ×{(s // sizes[0]) ** 2}": dict(size=s, revisit=20) for s in sizes}
    dates_base = list(area)[1 if len(sizes) > 1 else 0]
    dates = {"dates ×4": dict(size=area[dates_base]["size"], revisit=5)}
    largest = list(area)[-1]
    limited = {"dates ×4, 1GB": {**dates["dates ×4"], "limit": "1GB"}, f"{largest}, 1GB": {**area[largest], "limit": "1GB"}}
    order = [*list(area)[:-1], "dates ×4", "dates ×4, 1GB", largest, f"{largest}, 1GB"]
    every = {**area, **dates, **limited}
    out: dict[str, list[dict]] = {k: [] for k in order}
    for r in range(repeat):
        for label in order:
            kw = every[label]
            out[label].append(measure("small", kw["size"], revisit=kw["revisit"], limit=kw.get("limit")))
            res = out[label][-1].get("resources", {})
            print(f"  ... round {r + 1}: {label} done: {json.dumps({'peak_mib': round(out[label][-1]['peak_bytes'] / 2**20), 'seconds': round(out[label][-1]['seconds'], 1), 'tiles': out[label][-1]['tiles'], 'tile_px': res.get('tile_px'), 'chunk_px': res.get('chunk_px'), 'dates': res.get('n_dates'), 'budget_mib': round(res.get('budget', 0) / 2**20), 'manifest_peak_mib': round(res.get('peak_rss_bytes', 0) / 2**20)})}"
                  f"; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    for r in range(repeat):
        _report(f"round {r + 1}: area, default config (resources.memory_limit unset), preset small, 20-day revisit (37 dates):",
                [(k, out[k][r]) for k in area])
        _report(f"round {r + 1}: dates, default config, {area[dates_base]['size']} px:", [(f"{dates_base} (37 dates)", out[dates_base][r]), ("dates ×4", out["dates ×4"][r])])
        _report(f"round {r + 1}: --memory-limit 1GB (ratios to the default-config area ×1):", [("area ×1", out[list(area)[0]][r]), *((k, out[k][r]) for k in limited)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
