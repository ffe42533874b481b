"""Processing tiles and the mosaics their results are written into (docs/architecture.md §1.3).

A scan's zones are grouped into **tiles**: windows of the scan's analysis grid (one UTM zone,
the grid of :func:`redline.run.graph.analysis_grid`) of at most ``tiling.max_tile_px`` pixels a
side. Each zone belongs to exactly one tile (the grid cell of its bounding-box centre), so a
zone crossing a cell edge is processed once and its alerts are never counted twice; the tile's
**core** is the union of its zones' pixel boxes, and it is computed on the core plus a margin
(the cloud-mask dilation) so that every core pixel sees the same neighbourhood as in a scan of
the whole grid. A tile is one Dask graph; its results come to the writer, which writes the
tile's core into the **mosaics** (tiled GeoTIFFs of the whole grid, written window by window
and never held whole) and forgets the tile. The COGs in ``OUT/rasters/`` are made from the
mosaics at the end, and the statistics that need the whole region (FVC end-members, RSEI
normalisation and PCA) stream over the mosaics block by block. Peak memory is set by the tile
size, not by the region.

A zone larger than a tile (its box wider or taller than ``max_tile_px``) is **split**: each
grid cell it reaches holds a piece of it (the zone cut along the cell's pixel edges) in that
cell's tile, so no tile grows with the zones. A patch crossing a cut is found in pieces; the
scan stitches them back from the written per-pixel fields (:func:`redline.run.stitch.stitch_split_zones`), so
each disturbance is still one alert, measured on the whole zone, with the minimum mapping unit
applied to the whole patch.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from redline.cogs import CogSpec, write_cog

__all__ = ["Tile", "plan_tiles", "Mosaic"]

log = logging.getLogger(__name__)

#: Pixels added around each zone's box (the whole-grid scan pads its grid by the same 2 px).
ZONE_PAD_PX = 2


@dataclass(frozen=True)
class Tile:
    """One processing tile: rows/cols are half-open pixel ranges of the scan grid."""

    id: str
    zone_ids: tuple[str, ...]  # zones wholly processed in this tile
    core: tuple[int, int, int, int]  # r0, r1, c0, c1: written to the mosaics
    window: tuple[int, int, int, int]  # r0, r1, c0, c1: computed (core + margin, inside the grid)
    split_ids: tuple[str, ...] = ()  # zones larger than a tile, of which this tile holds the piece in its cell
    cell: tuple[int, int, int, int] = (0, 0, 0, 0)  # r0, r1, c0, c1 of the grid cell the pieces are cut to

    @property
    def shape(self) -> tuple[int, int]:
        r0, r1, c0, c1 = self.window
        return r1 - r0, c1 - c0

    def geobox(self, grid: GeoBox) -> GeoBox:
        """The tile's computed window as a GeoBox on the scan grid (same CRS and pixel edges)."""
        r0, r1, c0, c1 = self.window
        return grid[r0:r1, c0:c1]

    def core_in_window(self) -> tuple[slice, slice]:
        """Slices of the tile's arrays (computed window) that hold its core."""
        r0, r1, c0, c1 = self.core
        w0, _, v0, _ = self.window
        return slice(r0 - w0, r1 - w0), slice(c0 - v0, c1 - v0)

    def zones(self, zones_utm: gpd.GeoDataFrame, grid: GeoBox) -> gpd.GeoDataFrame:
        """The zones this tile finds alerts in: its whole zones, and its pieces of split zones
        (cut to the cell along pixel edges; same ``zone_id``)."""
        whole = zones_utm[zones_utm["zone_id"].isin(self.zone_ids)]
        if not self.split_ids:
            return whole.reset_index(drop=True)
        r0, r1, c0, c1 = self.cell
        x0, y0 = grid.transform * (c0, r0)
        x1, y1 = grid.transform * (c1, r1)
        cut = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        pieces = zones_utm[zones_utm["zone_id"].isin(self.split_ids)].copy()
        pieces["geometry"] = pieces.geometry.intersection(cut)
        pieces = pieces[~pieces.geometry.is_empty]
        return gpd.GeoDataFrame(pd.concat([whole, pieces], ignore_index=True), geometry="geometry", crs=zones_utm.crs)


def _pixel_box(bounds: tuple[float, float, float, float], grid: GeoBox) -> tuple[int, int, int, int]:
    inv = ~grid.transform
    w, s, e, n = bounds
    c0, r0 = inv * (w, n)
    c1, r1 = inv * (e, s)
    h, wd = grid.shape
    return (max(int(np.floor(r0)) - ZONE_PAD_PX, 0), min(int(np.ceil(r1)) + ZONE_PAD_PX, h),
            max(int(np.floor(c0)) - ZONE_PAD_PX, 0), min(int(np.ceil(c1)) + ZONE_PAD_PX, wd))


def plan_tiles(zones_utm: gpd.GeoDataFrame, grid: GeoBox, *, max_px: int, margin_px: int = 0) -> list[Tile]:
    """Group the zones into tiles of about ``max_px`` × ``max_px`` pixels of ``grid``.

    Parameters
    ----------
    zones_utm
        Zones (``zone_id``, geometry) in ``grid``'s CRS (metres).
    grid
        The scan's analysis grid over all the zones.
    max_px
        Tile edge in pixels (``tiling.max_tile_px``). The grid is cut into cells of this size.
        A zone whose box fits in ``max_px`` goes whole to the cell holding its box's centre (so
        a tile's core exceeds its cell by at most half a zone on each side); a larger zone is
        split, one piece per cell it reaches. Every tile is at most ``2 × max_px`` (+ pads).
    margin_px
        Pixels computed around the core so that neighbourhood operations (the mask dilation)
        see the same pixels as on the whole grid; clipped to the grid.
    """
    h, w = grid.shape
    whole: dict[tuple[int, int], list[tuple[str, tuple[int, int, int, int]]]] = {}
    split: dict[tuple[int, int], list[tuple[str, tuple[int, int, int, int]]]] = {}
    for zid, geom in zip(zones_utm["zone_id"], zones_utm.geometry):
        box = _pixel_box(geom.bounds, grid)
        if max(box[1] - box[0], box[3] - box[2]) <= max_px:
            cell = (((box[0] + box[1]) // 2) // max_px, ((box[2] + box[3]) // 2) // max_px)
            whole.setdefault(cell, []).append((str(zid), box))
            continue
        for ri in range(box[0] // max_px, (box[1] - 1) // max_px + 1):
            for ci in range(box[2] // max_px, (box[3] - 1) // max_px + 1):
                cb = (ri * max_px, min((ri + 1) * max_px, h), ci * max_px, min((ci + 1) * max_px, w))
                x0, y0 = grid.transform * (cb[2], cb[0])
                x1, y1 = grid.transform * (cb[3], cb[1])
                if not geom.intersects(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))):
                    continue
                piece = (max(box[0], cb[0]), min(box[1], cb[1]), max(box[2], cb[2]), min(box[3], cb[3]))
                split.setdefault((ri, ci), []).append((str(zid), piece))
    tiles = []
    for k, cell in enumerate(sorted(set(whole) | set(split))):
        members = whole.get(cell, []) + split.get(cell, [])
        r0, r1 = min(b[0] for _, b in members), max(b[1] for _, b in members)
        c0, c1 = min(b[2] for _, b in members), max(b[3] for _, b in members)
        window = (max(r0 - margin_px, 0), min(r1 + margin_px, h), max(c0 - margin_px, 0), min(c1 + margin_px, w))
        cb = (cell[0] * max_px, min((cell[0] + 1) * max_px, h), cell[1] * max_px, min((cell[1] + 1) * max_px, w))
        tiles.append(Tile(id=f"t{k:03d}", zone_ids=tuple(z for z, _ in whole.get(cell, [])), core=(r0, r1, c0, c1), window=window,
                          split_ids=tuple(z for z, _ in split.get(cell, [])), cell=cb))
    return tiles


class Mosaic:
    """Whole-grid rasters written tile by tile, then turned into COGs.

    Each stem is a tiled, uncompressed, sparse GeoTIFF in ``folder`` (blocks never written take
    no space and read as nodata); :meth:`put` opens it, writes one tile's core and closes it,
    so nothing of the grid stays in memory between tiles. Where tile cores overlap (zones'
    boxes overlap) both tiles hold the same values: every output is a per-pixel function of
    the pixel's own series, and the margin gives the mask dilation the same neighbours.
    """

    BLOCK = 256

    def __init__(self, folder: Path, grid: GeoBox, zones: gpd.GeoDataFrame | None = None) -> None:
        self.folder = Path(folder)
        self.grid = grid
        self.zones = zones  # in the grid's CRS: the study area of :meth:`inside`
        self.meta: dict[str, dict] = {}
        self.cores: list[tuple[int, int, int, int]] = []

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.tif"

    def put(self, stem: str, tile: Tile, data: np.ndarray, *, nodata: float | int | None, description: str = "",
            band_descriptions: list[str] | None = None) -> None:
        """Write the core of ``tile`` from ``data`` ((y, x) or (band, y, x) on the tile's window)."""
        arr = data if data.ndim == 3 else data[None]
        ys, xs = tile.core_in_window()
        r0, _, c0, _ = tile.core
        self.put_window(stem, Window(c0, r0, xs.stop - xs.start, ys.stop - ys.start), arr[:, ys, xs], nodata=nodata,
                        description=description, band_descriptions=band_descriptions)
        if tile.core not in self.cores:
            self.cores.append(tile.core)

    def put_window(self, stem: str, window: Window, data: np.ndarray, *, nodata: float | int | None, description: str = "",
                   band_descriptions: list[str] | None = None) -> None:
        """Write ``data`` ((y, x) or (band, y, x)) at ``window`` of the grid, creating the stem."""
        arr = data if data.ndim == 3 else data[None]
        path = self.path(stem)
        if stem not in self.meta:
            self.folder.mkdir(parents=True, exist_ok=True)
            h, w = self.grid.shape
            profile = dict(driver="GTiff", width=w, height=h, count=arr.shape[0], dtype=arr.dtype.name, crs=str(self.grid.crs),
                           transform=self.grid.transform, nodata=nodata, tiled=True, blockxsize=self.BLOCK, blockysize=self.BLOCK,
                           sparse_ok=True, BIGTIFF="IF_SAFER")
            with rasterio.open(path, "w", **profile) as dst:
                if description:
                    dst.update_tags(description=description)
                for i, text in enumerate(band_descriptions or []):
                    dst.set_band_description(i + 1, text)
            self.meta[stem] = {"nodata": nodata, "dtype": arr.dtype.name, "count": arr.shape[0]}
        with rasterio.open(path, "r+") as dst:
            dst.write(arr.astype(self.meta[stem]["dtype"], copy=False), window=window)

    def blocks(self) -> Iterator[Window]:
        """Non-overlapping windows (:attr:`BLOCK` × 4 px) covering every tile core once."""
        step = 4 * self.BLOCK
        h, w = self.grid.shape
        for r in range(0, h, step):
            for c in range(0, w, step):
                rr, cc = min(r + step, h), min(c + step, w)
                if any(r < r1 and rr > r0 and c < c1 and cc > c0 for r0, r1, c0, c1 in self.cores):
                    yield Window(c, r, cc - c, rr - r)

    def inside(self, window: Window) -> np.ndarray:
        """Pixels of ``window`` whose centre lies in a zone (the study area over which the
        region-wide statistics are fitted: the same pixels whatever the tiling)."""
        h, w = int(window.height), int(window.width)
        if self.zones is None:
            return np.ones((h, w), dtype=bool)
        transform = rasterio.windows.transform(window, self.grid.transform)
        x0, y0 = transform * (0, 0)
        x1, y1 = transform * (w, h)
        near = self.zones.iloc[self.zones.sindex.query(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))]
        if near.empty:
            return np.zeros((h, w), dtype=bool)
        return rasterio.features.geometry_mask(near.geometry, out_shape=(h, w), transform=transform, invert=True)

    def read(self, stem: str, window: Window, band: int = 1) -> np.ndarray:
        """One window of a written stem, NaN (float) or nodata where no tile wrote."""
        with rasterio.open(self.path(stem)) as src:
            return src.read(band, window=window)

    def to_cog(self, stem: str, dst: Path, spec: CogSpec) -> Path:
        """Copy a written stem to the COG ``dst`` with the band metadata, overview resampling and
        legend of ``spec`` (:func:`redline.cogs.write_cog`; GDAL streams it block by block)."""
        return write_cog(self.path(stem), dst, spec, blocksize=self.BLOCK)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
