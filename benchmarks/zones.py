"""A scan of the same area as its few zones and as hundreds or thousands of small patches.

Run with ``python benchmarks/zones.py [--size 600] [--patches 400,4000] [--repeat 2]
[--zone-figures changed|all|none]``.

A county's red line is hundreds of small patches, a province's tens of thousands. This cuts the
demo build's zones (preset ``small`` at ``--size`` px: 3 zones, 10.6 km² at 600 px) along a
square grid into about N pieces each (:func:`patches`: every piece keeps its zone's name,
category and county; the union is the same area), and runs the whole scan
(:func:`redline.scan.run_scan`, default configuration, its own Python process, the build's
STAC API) on the zones and on each patch set, alternating them ``--repeat`` times so that each
sees the same load. It prints per run the wall time and its ratio to the zones' scan of the
same round, the files written into OUT (and figures among them), and the time chromium takes to
open ``map.html`` to the map's ready state (Debian's chromium + chromedriver through selenium,
as tests/browser.py: ``window.redlineMapReady`` set once every layer is drawn), and the size of
``map.html`` and ``report.html``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import shapely

import _bench

HERE = Path(__file__).resolve().parent


def patches(zones: gpd.GeoDataFrame, n: int, id_field: str) -> gpd.GeoDataFrame:
    """``zones`` (any CRS; cut in their UTM zone) cut along one square grid into about ``n``
    pieces in all: the cell edge is found by bisection so that the count of non-empty pieces is
    within 2 % of ``n``. Each piece keeps its zone's attributes; its id is ``<zone id>-P<k>``.
    Returned in the zones' CRS."""
    import aoi

    utm = zones.to_crs(aoi.utm_crs_for(zones))
    w, s, e, nn = utm.total_bounds

    def cut(edge: float) -> gpd.GeoDataFrame:
        xs = [w + i * edge for i in range(int(math.ceil((e - w) / edge)) + 1)]
        ys = [s + j * edge for j in range(int(math.ceil((nn - s) / edge)) + 1)]
        cells = gpd.GeoDataFrame(geometry=[shapely.box(x, y, x + edge, y + edge) for x in xs for y in ys], crs=utm.crs)
        pieces = gpd.overlay(utm, cells, how="intersection", keep_geom_type=True)
        return pieces[pieces.geometry.area > 1.0].reset_index(drop=True)  # slivers under 1 m² are float noise

    lo, hi = 1.0, math.sqrt(utm.area.sum())
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        got = len(cut(mid))
        if abs(got - n) <= 0.02 * n:
            break
        lo, hi = (mid, hi) if got > n else (lo, mid)
    pieces = cut(mid)
    pieces[id_field] = [f"{z}-P{k:05d}" for k, z in enumerate(pieces[id_field])]
    return pieces.to_crs(zones.crs)


def patch_build(build, n: int) -> Path:
    """A folder beside the build whose ``scan.yml`` scans the same scenes over the build's zones
    cut into about ``n`` patches (``zones.gpkg`` replaced; everything else the build's)."""
    import yaml

    root = Path(build.root)
    out = root.with_name(f"{root.name}-{n}patches")
    cfg = yaml.safe_load((root / "scan.yml").read_text(encoding="utf-8"))
    if not (out / "zones.gpkg").is_file():
        out.mkdir(exist_ok=True)
        z = gpd.read_file(root / "zones.gpkg", layer=cfg["zones"]["layer"])
        patches(z, n, cfg["zones"]["id_field"]).to_file(out / "zones.gpkg", layer=cfg["zones"]["layer"], driver="GPKG")
    for name in ("items.json", "collection.json", "counties.gpkg", "scan.yml"):
        shutil.copyfile(root / name, out / name)
    return out


def _one(root: str, out: str, zone_figures: str) -> None:
    """Child process: one scan of the folder ``root`` into ``out`` (``outputs.zone_figures``
    as given); prints a JSON line."""
    import pipelines
    from redline.config import load_config
    from redline.scan import run_scan

    with pipelines.serve_stac(Path(root)) as url:
        cfg = load_config(Path(root) / "scan.yml", overrides={"stac": {"url": url}, "outputs": {"zone_figures": zone_figures}})
        t0 = time.perf_counter()
        result = run_scan(cfg, Path(out))
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "alerts": len(result.alerts), "zones": len(result.zone_stats)}))


def scan(root: Path, out: Path, zone_figures: str = "changed") -> dict:
    """One scan in a child process: its JSON line plus the files it wrote."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(root), str(out), zone_figures]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"scan of {root} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    files = [f for f in out.rglob("*") if f.is_file()]
    r["files"] = len(files)
    r["figures"] = sum(1 for f in files if f.parent.name == "figures")
    r["map_bytes"] = (out / "map.html").stat().st_size
    r["report_bytes"] = (out / "report.html").stat().st_size
    return r


def map_open_seconds(html: Path, timeout_s: float = 60.0) -> float:
    """Seconds from ``driver.get`` to the map's ready state (``window.redlineMapReady``) in
    Debian's headless chromium (a fresh browser per measure: nothing cached)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        t0 = time.perf_counter()
        driver.get(html.resolve().as_uri())
        while not driver.execute_script("return window.redlineMapReady === true"):
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError(f"{html}: map not ready after {timeout_s:.0f} s")
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--one":
        _one(sys.argv[2], sys.argv[3], sys.argv[4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=600, help="grid edge of the small preset in px")
    ap.add_argument("--patches", default="400,4000", help="patch counts, comma-separated")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--zone-figures", default="changed", help="outputs.zone_figures of the patch scans (the zones' scan: changed)")
    args = ap.parse_args(argv)
    build = _bench.build("small", size=args.size)
    for f in Path(build.root).rglob("*"):  # read once: every run finds the scenes in the page cache
        if f.is_file():
            f.read_bytes()
    variants = [("zones", Path(build.root))] + [(f"{n} patches", patch_build(build, int(n))) for n in args.patches.split(",")]
    print(_bench.machine(), flush=True)
    rows: dict[str, list[dict]] = {label: [] for label, _ in variants}
    with tempfile.TemporaryDirectory(prefix="redline-bench-zones-") as tmp:
        for rnd in range(args.repeat):
            base = None
            for label, root in variants:
                r = scan(root, Path(tmp) / label.replace(" ", "-"), "changed" if label == "zones" else args.zone_figures)
                r["map_open_s"] = map_open_seconds(Path(tmp) / label.replace(" ", "-") / "map.html")
                base = base or r["seconds"]
                r["ratio"] = r["seconds"] / base
                rows[label].append(r)
                print(f"  round {rnd + 1} {label:13s} {r['zones']:5d} zones: scan {r['seconds']:6.1f} s (×{r['ratio']:.2f} the zones' scan), "
                      f"{r['alerts']} alerts, {r['files']} files ({r['figures']} figures), map.html {r['map_bytes'] / 2**20:.1f} MiB opens in "
                      f"{r['map_open_s']:.2f} s, report.html {r['report_bytes'] / 2**20:.1f} MiB", flush=True)
    print("summary (mean over rounds; spread = max − min of the ratio)")
    for label, rs in rows.items():
        ratios = [r["ratio"] for r in rs]
        print(f"  {label:13s} scan ×{sum(ratios) / len(ratios):.2f} (spread {max(ratios) - min(ratios):.2f}), "
              f"map opens in {sum(r['map_open_s'] for r in rs) / len(rs):.2f} s, {rs[-1]['files']} files")
    print(_bench.machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
