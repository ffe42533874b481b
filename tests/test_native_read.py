"""Coarse bands read at their own resolution and upsampled per chunk (:func:`pipelines.coarse_grid`)
give what odc-stac's GDAL warp onto the 10 m grid gives: the same no-data pixels, values within
GDAL's rounding to the band's integer DN (half a DN), masks exactly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from odc.geo.geobox import GeoBox

from pipelines import coarse_grid, load_series

SCALE = 1e-4  # the generated scenes' reflectance scale (raster:bands scale)


def _items(small_scenes, n: int = 8) -> list[pystac.Item]:
    feats = json.loads((Path(small_scenes.root) / "items.json").read_text())["features"][:n]
    return [pystac.Item.from_dict(f) for f in feats]


def _grid(items: list[pystac.Item], dy: int, dx: int, shape=(70, 64)) -> GeoBox:
    """A 10 m grid on the scenes' lattice, ``dy``/``dx`` pixels in from their corner."""
    tr = items[0].assets["red"].extra_fields["proj:transform"]
    return GeoBox(shape, rasterio.Affine(10, 0, tr[2] + 10 * dx, 0, -10, tr[5] - 10 * dy), "EPSG:32648")


def _both(items, gb):
    with dask.config.set(scheduler="synchronous"):
        warped = load_series(items, gb, native=False, check_assets=False).data.compute()
        native = load_series(items, gb, check_assets=False).data.compute()
    return warped, native


def _agree(warped, native, names):
    for name in names:
        a, b = warped[name].values, native[name].values
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=f"{name}: no-data pixels")
        ok = np.isfinite(a)
        assert ok.mean() > 0.5, name  # real pixels compared, not an empty frame
        assert np.abs(a[ok] - b[ok]).max() <= 0.5 * SCALE + 1e-6, name


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, 1), (1, 4)])
def test_20m_bands_read_natively_match_the_gdal_warp(small_scenes, dy, dx):
    items = _items(small_scenes)
    gb = _grid(items, dy, dx)
    grid = coarse_grid([it for it in items], "swir16", gb)
    assert grid is not None and grid.k == 2
    warped, native = _both(items, gb)
    _agree(warped, native, ["swir16", "swir22"])
    np.testing.assert_array_equal(warped["clear"].values, native["clear"].values)  # SCL: nearest, exactly
    for name in ("red", "nir"):  # the 10 m bands are read as before
        np.testing.assert_array_equal(warped[name].values, native[name].values)
    # the upsampling interpolates: most 10 m pixels differ from the 20 m pixel they lie in
    assert (np.abs(np.diff(native["swir16"].values, axis=-1)) > 0).mean() > 0.5


def _as_30m(asset: pystac.Asset, data: np.ndarray, path: Path) -> None:
    """Point ``asset`` at a new GeoTIFF of ``data`` (nodata 0) on a 30 m grid from the asset's
    own origin, and say so in its ``proj:`` fields."""
    tr = asset.extra_fields["proj:transform"]
    h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype=data.dtype, nodata=0,
                       crs="EPSG:32648", transform=rasterio.Affine(30, 0, tr[2], 0, -30, tr[5])) as dst:
        dst.write(data, 1)
    asset.href = str(path)
    asset.extra_fields["proj:transform"] = [30, 0, tr[2], 0, -30, tr[5]]
    asset.extra_fields["proj:shape"] = [h, w]


@pytest.fixture(scope="module")
def thirty_m(small_scenes, tmp_path_factory):
    """The scenes with their swir16 asset replaced by a 30 m GeoTIFF (Landsat's pixel) of random
    DN with 8 % no-data pixels, on the scenes' lattice."""
    out = tmp_path_factory.mktemp("thirty")
    items = []
    rng = np.random.default_rng(3)
    for it in _items(small_scenes, 6):
        it = copy.deepcopy(it)
        a = it.assets["swir16"]
        data = rng.integers(1000, 4000, (53, 53), dtype="uint16")
        data[rng.random(data.shape) < 0.08] = 0  # no data
        _as_30m(a, data, out / f"{it.id}_swir16_30m.tif")
        items.append(it)
    return items


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (2, 1)])
def test_30m_band_with_holes_matches_the_gdal_warp(thirty_m, dy, dx):
    gb = _grid(thirty_m, dy, dx, shape=(100, 95))
    grid = coarse_grid(thirty_m, "swir16", gb)
    assert grid is not None and grid.k == 3
    warped, native = _both(thirty_m, gb)
    _agree(warped, native, ["swir16"])
    assert np.isnan(native["swir16"].values).mean() > 0.03  # the holes are there, where GDAL has them


def test_grids_that_do_not_line_up_are_warped(small_scenes):
    items = _items(small_scenes, 3)
    gb = _grid(items, 0, 0)
    assert coarse_grid(items, "red", gb) is None  # same resolution: nothing to do
    half = GeoBox(gb.shape, gb.transform * rasterio.Affine.translation(0.5, 0), gb.crs)  # 5 m off the lattice
    assert coarse_grid(items, "swir16", half) is None
    fifteen = GeoBox(gb.shape, rasterio.Affine(15, 0, gb.transform.c, 0, -15, gb.transform.f), gb.crs)  # 20/15: not whole
    assert coarse_grid(items, "swir16", fifteen) is None
    other = GeoBox(gb.shape, gb.transform, "EPSG:32649")
    assert coarse_grid(items, "swir16", other) is None
    bare = copy.deepcopy(items)
    del bare[1].assets["swir16"].extra_fields["proj:transform"]
    assert coarse_grid(bare, "swir16", gb) is None
    shifted = copy.deepcopy(items)  # one scene on another 20 m lattice (10 m off)
    t = shifted[2].assets["swir16"].extra_fields["proj:transform"]
    shifted[2].assets["swir16"].extra_fields["proj:transform"] = [t[0], 0, t[2] + 10, 0, t[4], t[5]]
    assert coarse_grid(shifted, "swir16", gb) is None
    # and such a grid still loads, warped as before
    with dask.config.set(scheduler="synchronous"):
        v = load_series(items, half, check_assets=False).data["swir16"].compute().values
    assert np.isfinite(v).mean() > 0.5


def test_a_sensor_with_every_band_coarser_loads_natively(small_scenes, tmp_path):
    """Every asset at 30 m (a Landsat-like item on the grid's lattice): no band is read at the
    grid's resolution, the series is built from the upsampled bands alone."""
    rng = np.random.default_rng(5)
    items = []
    for it in _items(small_scenes, 4):
        it = copy.deepcopy(it)
        for key, a in it.assets.items():
            if "proj:transform" not in a.extra_fields:
                continue
            data = rng.integers(1, 12, (53, 53), dtype="uint8") if key == "scl" else rng.integers(1000, 4000, (53, 53), dtype="uint16")
            data[rng.random(data.shape) < 0.05] = 0
            _as_30m(a, data, tmp_path / f"{it.id}_{key}_30m.tif")
        items.append(it)
    gb = _grid(items, 1, 2, shape=(60, 66))
    assert all(coarse_grid(items, b, gb) is not None for b in ("red", "nir", "scl"))
    warped, native = _both(items, gb)
    assert native.sizes == warped.sizes and native.sizes["time"] == 4
    np.testing.assert_array_equal(native["time"].values, warped["time"].values)
    _agree(warped, native, ["blue", "green", "red", "nir", "swir16", "swir22"])
    np.testing.assert_array_equal(warped["clear"].values, native["clear"].values)
    assert 0.2 < native["clear"].values.mean() < 0.95  # SCL classes masked, nearest, as GDAL does
