"""Zonal statistics: the exactextract path redline uses against rasterstats, same zones and rasters.

Run with ``make bench`` (or ``python benchmarks/zonal_stats.py [--preset small] [--size PX] [--cell M]``).

Rasters: three float32 GeoTIFFs (NaN nodata, 10 m, EPSG:32648) made from the clearest summer
scene of a generated build: NDVI, (NIR − green)/(NIR + green) and red reflectance. Zones: the
build's red-line zones (multipolygons with holes, EPSG:4490 → UTM) and the same zones cut by a
square grid of ``--cell`` metres (many small polygons, as a provincial assessment has).

Timed in the same run, single-threaded, best of ``--repeat``:

* **exactextract** as :func:`redline.assess.zonal_means` calls it: one ``exact_extract`` call
  with the three rasters, coverage-weighted ``mean`` (Baston 2023);
* **rasterstats** ``zonal_stats`` (its default: pixels whose centre is inside the polygon), one
  call per raster, ``mean``.

Prints the time ratio rasterstats / exactextract and the agreement of the means (median and
maximum absolute difference, in the rasters' units, over zones with a value from both tools).
The two differ by design at polygon edges: exactextract weights each pixel by the fraction of it
the polygon covers, rasterstats takes whole pixels by their centres.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterstats import zonal_stats

import _bench
from redline.assess import zonal_means


def _rasters(build, items, out: Path) -> dict[str, Path]:
    summer = [it for it in items if it.datetime.month in (6, 7, 8, 9)] or items
    item = min(summer, key=lambda it: it.properties.get("eo:cloud_cover", 100))
    dn = {}
    for b in ("green", "red", "nir"):
        with rasterio.open(item.assets[b].get_absolute_href().removeprefix("file://")) as src:
            dn[b] = src.read(1).astype("float32")
            profile = src.profile
    refl = {b: np.where(v == 0, np.nan, v * 0.0001 - 0.1).astype("float32") for b, v in dn.items()}  # the build's raster:bands scaling
    layers = {
        "ndvi": (refl["nir"] - refl["red"]) / (refl["nir"] + refl["red"]),
        "green_ndvi": (refl["nir"] - refl["green"]) / (refl["nir"] + refl["green"]),
        "red": refl["red"],
    }
    profile.update(dtype="float32", nodata=np.nan, count=1, driver="GTiff", compress="deflate", tiled=True, blockxsize=256, blockysize=256)
    paths = {}
    for name, arr in layers.items():
        paths[name] = out / f"{name}.tif"
        with rasterio.open(paths[name], "w", **profile) as dst:
            dst.write(arr, 1)
    return paths


def _zone_sets(build, crs, cell: float) -> dict[str, gpd.GeoDataFrame]:
    zones = gpd.read_file(build.zones, layer="hongxian").to_crs(crs)
    zones = zones.rename(columns={"HXBH": "zid"})[["zid", "geometry"]]
    w, s, e, n = zones.total_bounds
    xs, ys = np.arange(w, e, cell), np.arange(s, n, cell)
    grid = gpd.GeoDataFrame(geometry=[shapely.box(x, y, x + cell, y + cell) for x in xs for y in ys], crs=crs)
    cut = gpd.overlay(zones, grid, how="intersection", keep_geom_type=True).explode(index_parts=False)
    cut = cut[cut.geometry.area > 0].reset_index(drop=True)
    cut["zid"] = [f"{z}-{i}" for i, z in enumerate(cut["zid"])]
    return {"zones": zones, f"zones × {cell:.0f} m grid": cut}


def _best(fn, repeat: int):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _rasterstats(rasters: dict[str, Path], polys: gpd.GeoDataFrame) -> pd.DataFrame:
    cols = {"zid": polys["zid"].to_numpy()}
    for name, path in rasters.items():
        cols[name] = [r["mean"] for r in zonal_stats(polys, str(path), stats=["mean"], nodata=np.nan)]
    return pd.DataFrame(cols)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=20230101)
    ap.add_argument("--size", type=int, default=640, help="grid edge in px (default 640: a 6.4 km square)")
    ap.add_argument("--cell", type=float, default=200.0, help="edge in m of the grid cutting the zones")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    build = _bench.build(args.preset, args.seed, args.size)
    items = _bench.items_of(build)
    print(_bench.machine())
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        rasters = _rasters(build, items, Path(tmp))
        with rasterio.open(rasters["ndvi"]) as src:
            crs, shape = src.crs, src.shape
        print(f"build {args.preset} seed {args.seed}: rasters {shape[1]}×{shape[0]} px × {len(rasters)}; one thread")
        for label, polys in _zone_sets(build, crs, args.cell).items():
            ee_s, ee = _best(lambda: zonal_means(rasters, polys, "zid"), args.repeat)
            rs_s, rs = _best(lambda: _rasterstats(rasters, polys), args.repeat)
            both = ee.merge(rs, on="zid", suffixes=("_ee", "_rs"))
            diffs = np.concatenate([(both[f"{n}_ee"].astype(float) - both[f"{n}_rs"].astype(float)).abs().dropna().to_numpy() for n in rasters])
            print(f"{label}: {len(polys)} polygons, {polys.geometry.area.median():.0f} m² median")
            print(f"  exactextract {ee_s:.3f} s, rasterstats {rs_s:.3f} s")
            print(f"  |mean difference| median {np.median(diffs):.4f}, max {diffs.max():.4f} (over {diffs.size} zone × raster values)")
            print(f"  RATIO rasterstats / exactextract time = {rs_s / ee_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
