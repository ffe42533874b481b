"""Coarser bands read at their own resolution and upsampled in the compute step.

Sentinel-2's SWIR bands and SCL are 20 m, Landsat's 30 m; the analysis grid is 10 m. Warping
every scene of such a band onto the 10 m grid with GDAL (odc-stac's read) was the largest single
cost of a load (benchmarks/README.md, "Read-limit"). When a band's pixels are an integer multiple
``k`` of the grid's and every scene's pixel grid lines up with it, odc-stac instead reads the band
onto a coarse grid that *is* the scenes' own pixel grid (a paste: no warp), and the upsampling to
10 m runs once per chunk in a compiled loop:

* reflectance: bilinear interpolation between the four nearest coarse pixel centres, with the
  weights of GDAL's bilinear kernel (``GWKBilinearResample4Sample``: weight 1 − d per axis,
  d the distance in coarse pixels) and the same treatment of no data (a pixel whose centre lies
  in a no-data coarse pixel has no data; otherwise no-data neighbours are left out and the
  weights of the others renormalised, as ``GWKBilinearResample4Sample`` does). It
  differs from GDAL's result only by GDAL's rounding to the band's integer DN (≤ half a DN);
* masks: nearest neighbour, i.e. each 10 m pixel takes the coarse pixel it lies in (exactly
  what GDAL's nearest gives on aligned grids).

Anything else (another CRS, a non-integer ratio, grids offset by a fraction of a pixel, no
``proj:`` metadata on the assets) is read the usual way, warped by odc-stac.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numba
import numpy as np
import pystac
import xarray as xr
from affine import Affine
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from pipelines._bands import item_grid

#: Largest coarse-to-grid ratio read natively (30 m Landsat on a 10 m grid is 3).
MAX_FACTOR = 8


@dataclass(frozen=True)
class CoarseGrid:
    """A band's own pixel grid around the analysis grid: ``geobox`` (the coarse pixels covering
    the analysis grid plus one coarse pixel on every side, for the bilinear neighbours) and
    ``k`` (coarse pixel edge / analysis pixel edge)."""

    geobox: GeoBox
    k: int


def _whole(x: float, tol: float = 1e-6) -> int | None:
    n = round(x)
    return int(n) if abs(x - n) <= tol else None


def coarse_grid(items: list[pystac.Item], band: str, geobox: GeoBox) -> CoarseGrid | None:
    """The coarse grid to read ``band`` of ``items`` on, or None when it must be warped as usual
    (its pixels are not an integer multiple ≥ 2 of ``geobox``'s, not north-up, in another CRS,
    not on one pixel grid with the analysis grid, or an item has no ``proj:`` grid for it)."""
    g = geobox.transform
    if g.b != 0 or g.d != 0 or g.e >= 0 or abs(g.a) != abs(g.e):
        return None
    res = g.a
    origin = None
    k = None
    for it in items:
        epsg, _, tr = item_grid(it, it.assets.get(band)) if band in it.assets else (None, None, None)
        if tr is None or epsg is None or CRS(f"EPSG:{epsg}") != geobox.crs:
            return None
        t = Affine(*tr)
        if t.b != 0 or t.d != 0 or t.e >= 0 or abs(t.a) != abs(t.e):
            return None
        kk = _whole(t.a / res)
        if kk is None or kk < 2 or kk > MAX_FACTOR or (k is not None and kk != k):
            return None
        k = kk
        if origin is None:
            origin = (t.c, t.f)
        # every scene on one coarse pixel grid, and the analysis grid on its sub-grid
        if _whole((t.c - origin[0]) / t.a) is None or _whole((t.f - origin[1]) / t.e) is None:
            return None
        if _whole((g.c - t.c) / res) is None or _whole((g.f - t.f) / g.e) is None:
            return None
    if k is None or origin is None:
        return None
    big = k * res
    # coarse columns/rows (relative to the first scene's origin) covering the grid, ±1 pixel
    c0 = int(np.floor((g.c - origin[0]) / big + 1e-9)) - 1
    c1 = int(np.ceil((g.c + geobox.shape.x * res - origin[0]) / big - 1e-9)) + 1
    r0 = int(np.floor((origin[1] - g.f) / big + 1e-9)) - 1
    r1 = int(np.ceil((origin[1] - (g.f - geobox.shape.y * res)) / big - 1e-9)) + 1
    coarse = GeoBox((r1 - r0, c1 - c0), Affine(big, 0.0, origin[0] + c0 * big, 0.0, -big, origin[1] - r0 * big), geobox.crs)
    return CoarseGrid(coarse, k)


def _offsets(geobox: GeoBox, grid: CoarseGrid) -> tuple[int, int]:
    """The analysis grid's top-left corner within the coarse grid, in analysis pixels (y, x)."""
    g, c = geobox.transform, grid.geobox.transform
    return _whole((c.f - g.f) / g.a), _whole((g.c - c.c) / g.a)  # type: ignore[return-value]


@numba.njit(cache=True, nogil=True)
def _bilinear(a: np.ndarray, iy: np.ndarray, wy: np.ndarray, ix: np.ndarray, wx: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(t, h, w) float32 with NaN → (t, len(iy), len(ix)): pixel (y, x) from coarse rows iy[y],
    iy[y]+1 with weights 1 − wy[y], wy[y] (columns likewise); NaN neighbours left out and the
    remaining weights renormalised; NaN where the coarse pixel holding the pixel's centre is
    NaN (GDAL's warp kernel skips a destination pixel whose source pixel is not valid)."""
    nt = a.shape[0]
    out = np.empty((nt, iy.size, ix.size), np.float32)
    for t in range(nt):
        for y in range(iy.size):
            r = iy[y]
            fy = wy[y]
            for x in range(ix.size):
                c = ix[x]
                fx = wx[x]
                # no data where the coarse pixel holding this pixel's centre has none (GDAL)
                hold = a[t, r + (1 if fy >= 0.5 else 0), c + (1 if fx >= 0.5 else 0)]
                if hold != hold:
                    out[t, y, x] = np.nan
                    continue
                acc = 0.0
                wsum = 0.0
                v = a[t, r, c]
                w = (1.0 - fy) * (1.0 - fx)
                if v == v and w > 0.0:
                    acc += w * v
                    wsum += w
                v = a[t, r, c + 1]
                w = (1.0 - fy) * fx
                if v == v and w > 0.0:
                    acc += w * v
                    wsum += w
                v = a[t, r + 1, c]
                w = fy * (1.0 - fx)
                if v == v and w > 0.0:
                    acc += w * v
                    wsum += w
                v = a[t, r + 1, c + 1]
                w = fy * fx
                if v == v and w > 0.0:
                    acc += w * v
                    wsum += w
                out[t, y, x] = acc / wsum if wsum > 0.0 else np.nan
    return out


def _positions(n: int, offset: int, k: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Coarse index and weight of each of ``n`` analysis pixels starting ``offset`` analysis
    pixels into the coarse grid: bilinear, the coarse pixel centre at or before the pixel's
    centre and the distance to it (coarse pixels); nearest, the coarse pixel it lies in."""
    centre = (np.arange(n, dtype="float64") + offset + 0.5) / k  # in coarse pixels from the edge
    if method == "nearest":
        return np.floor(centre).astype(np.int64), np.zeros(n)
    u = centre - 0.5  # from the first coarse pixel's centre
    i0 = np.floor(u).astype(np.int64)
    return i0, u - i0


def upsample(coarse: xr.DataArray, geobox: GeoBox, grid: CoarseGrid, chunks: tuple[tuple[int, ...], tuple[int, ...]], method: str) -> xr.DataArray:
    """``coarse`` (time, y, x) on ``grid.geobox`` onto ``geobox`` lazily, one task per output
    chunk (``chunks`` = (y chunks, x chunks) of the analysis grid), each reading only the coarse
    pixels it needs. ``method``: ``bilinear`` (float, NaN = no data) or ``nearest`` (any dtype)."""
    oy, ox = _offsets(geobox, grid)
    iy, wy = _positions(geobox.shape.y, oy, grid.k, method)
    ix, wx = _positions(geobox.shape.x, ox, grid.k, method)
    arr = coarse.data
    rows = []
    y0 = 0
    for h in chunks[0]:
        cols = []
        x0 = 0
        for w in chunks[1]:
            ry, rx = iy[y0:y0 + h], ix[x0:x0 + w]
            lo_y, lo_x = int(ry.min()), int(rx.min())
            hi_y, hi_x = int(ry.max()) + 2, int(rx.max()) + 2
            if lo_y < 0 or lo_x < 0 or hi_y > arr.shape[1] or hi_x > arr.shape[2]:  # the compiled loop does not check bounds
                raise ValueError(f"coarse grid {arr.shape[1:]} does not surround the analysis grid {tuple(geobox.shape)}")
            piece = arr[:, lo_y:hi_y, lo_x:hi_x].rechunk((-1, -1, -1))
            if method == "nearest":
                block = piece.map_blocks(_take, ry - lo_y, rx - lo_x, chunks=(arr.shape[0], h, w), dtype=arr.dtype)
            else:
                block = piece.map_blocks(_bilinear, ry - lo_y, wy[y0:y0 + h], rx - lo_x, wx[x0:x0 + w],
                                         chunks=(arr.shape[0], h, w), dtype=np.float32)
            cols.append(block)
            x0 += w
        rows.append(cols)
        y0 += h
    data = da.block(rows)
    grid_coords = xr_coords(geobox)
    coords = {"time": coarse["time"], **grid_coords}
    return xr.DataArray(data, dims=("time", "y", "x"), coords=coords, attrs=coarse.attrs)


def _take(a: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    return a[:, iy][:, :, ix]
