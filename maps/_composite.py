"""The offline base layer: the scan's true-colour composite warped to Web Mercator as a PNG."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform

log = logging.getLogger(__name__)

WEB_MERCATOR = "EPSG:3857"
#: longest side of the PNG in pixels; larger composites are averaged down (the page stays light)
MAX_SIDE_PX = 4096


@dataclass(frozen=True)
class Composite:
    """A PNG ready for ``L.imageOverlay``: ``bounds`` are ``[[south, west], [north, east]]`` in
    degrees (EPSG:4326) of an image whose pixels are square in EPSG:3857, which is how Leaflet
    stretches an image overlay between its corners."""

    png: Path
    bounds: list[list[float]]
    shape: tuple[int, int]  # (rows, columns) of the PNG


def _to_uint8(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear 2–98 % stretch of a non-uint8 band to 1…255 (0 stays for no data)."""
    vals = band[valid]
    if vals.size == 0:
        return np.zeros(band.shape, dtype="uint8")
    lo, hi = np.percentile(vals, [2, 98])
    scaled = np.clip((band.astype("float64") - lo) / max(hi - lo, 1e-12), 0, 1) * 254 + 1
    return np.where(valid, scaled, 0).astype("uint8")


def write_composite_png(tif: Path, png: Path, *, max_side_px: int = MAX_SIDE_PX) -> Composite | None:
    """Warp an RGB GeoTIFF (any CRS; uint8 expected, nodata 0) to EPSG:3857 and write it as an
    RGBA PNG with no-data transparent. The warp keeps the source resolution (metres) unless the
    longest side would exceed ``max_side_px``, then it averages down. Returns None (and logs
    why) when the raster has no CRS or no valid pixel."""
    with rasterio.open(tif) as src:
        if src.crs is None:
            log.warning("%s has no CRS; the map has no base composite", tif)
            return None
        nodata = src.nodata if src.nodata is not None else 0
        dst_transform, width, height = calculate_default_transform(src.crs, WEB_MERCATOR, src.width, src.height, *src.bounds)
        factor = max(width, height) / max_side_px
        resampling = Resampling.nearest
        if factor > 1:
            new_w, new_h = max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor))
            sx, sy = width / new_w, height / new_h  # = dst_transform ∘ scale(sx, sy), without the `*`/`@` operator churn of affine 2→3
            t = dst_transform
            dst_transform = Affine(t.a * sx, t.b * sy, t.c, t.d * sx, t.e * sy, t.f)
            width, height = new_w, new_h
            resampling = Resampling.average
        bands = [1, 2, 3] if src.count >= 3 else [1, 1, 1]
        dtype = src.dtypes[0]
        data = np.full((3, height, width), nodata, dtype=dtype)
        for i, b in enumerate(bands):
            reproject(
                rasterio.band(src, b), data[i], src_transform=src.transform, src_crs=src.crs, src_nodata=nodata,
                dst_transform=dst_transform, dst_crs=WEB_MERCATOR, dst_nodata=nodata, resampling=resampling,
            )
    valid = (data != nodata).any(axis=0) & np.isfinite(data).all(axis=0)
    if not valid.any():
        log.warning("%s has no valid pixel; the map has no base composite", tif)
        return None
    rgb = data if dtype == "uint8" else np.stack([_to_uint8(data[i], valid) for i in range(3)])
    rgba = np.dstack([rgb[0], rgb[1], rgb[2], np.where(valid, 255, 0).astype("uint8")]).astype("uint8")
    png.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(png, rgba, format="png")

    x = [dst_transform.c, dst_transform.c + dst_transform.a * width]
    y = [dst_transform.f + dst_transform.e * height, dst_transform.f]
    lons, lats = transform(WEB_MERCATOR, "EPSG:4326", x, y)
    bounds = [[float(lats[0]), float(lons[0])], [float(lats[1]), float(lons[1])]]
    log.info("base composite %s → %s (%d×%d px, EPSG:3857)", tif.name, png.name, width, height)
    return Composite(png=png, bounds=bounds, shape=(height, width))
