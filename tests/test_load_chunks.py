"""How :func:`pipelines.load_series` cuts its work: odc-stac reads in few large spatial chunks,
the returned arrays hold all dates in one chunk and at most ``chunk`` pixels a side, split
evenly, and the pixels do not depend on either choice."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from odc.geo.geobox import GeoBox

from pipelines import load_series


@pytest.fixture(scope="module")
def scenes(small_scenes):
    feats = json.loads((Path(small_scenes.root) / "items.json").read_text())["features"][:10]
    tr = feats[0]["assets"]["red"]["proj:transform"]
    # 100 × 90 px of the scenes' 10 m grid, 3 px in from their corner
    gb = GeoBox((100, 90), rasterio.Affine(10, 0, tr[2] + 30, 0, -10, tr[5] - 30), "EPSG:32648")
    return [pystac.Item.from_dict(f) for f in feats], gb


def _row_chunks(scenes, n: int, **kw) -> tuple[int, ...]:
    """The chunks along y of the lazy series on ``n`` rows of the scenes' grid (nothing is read)."""
    items, gb = scenes
    res = load_series(items, GeoBox((n, 90), gb.transform, gb.crs), check_assets=False, **kw)
    chunks = {dict(zip(var.dims, var.chunks))["y"] for var in res.data.data_vars.values()}
    assert len(chunks) == 1, chunks
    return chunks.pop()


@pytest.mark.parametrize(("n", "edge", "reads"), [(608, 2048, (608,)), (1030, 1024, (515, 515)), (5000, 2048, (1667, 1667, 1666)), (100, 64, (50, 50))])
def test_read_chunks_are_the_fewest_near_equal(scenes, n, edge, reads):
    # ``chunk`` as large as the grid: the returned chunks are odc-stac's read chunks
    assert _row_chunks(scenes, n, chunk=n, read_chunk=edge) == reads


@pytest.mark.parametrize(("n", "reads", "edge", "split"), [(608, 2048, 512, (304, 304)), (90, 45, 32, (23, 22, 23, 22)), (100, 100, 512, (100,))])
def test_compute_chunks_split_each_read_chunk_evenly(scenes, n, reads, edge, split):
    assert _row_chunks(scenes, n, chunk=edge, read_chunk=reads) == split


def test_all_dates_in_one_chunk_and_small_spatial_chunks(scenes):
    items, gb = scenes
    res = load_series(items, gb, chunk=32, read_chunk=64, check_assets=False)
    n = res.data.sizes["time"]
    for name, var in res.data.data_vars.items():
        assert dict(zip(var.dims, var.chunks)) == {"time": (n,), "y": (25, 25, 25, 25), "x": (23, 22, 23, 22)}, name


def test_pixels_do_not_depend_on_the_chunks(scenes):
    items, gb = scenes
    with dask.config.set(scheduler="synchronous"):
        small = load_series(items, gb, chunk=32, read_chunk=64, time_chunk=3, check_assets=False).data.compute()
        whole = load_series(items, gb, check_assets=False).data.compute()
    assert small.sizes == whole.sizes and small.sizes["time"] == 10
    for name in whole.data_vars:
        np.testing.assert_array_equal(small[name].values, whole[name].values, err_msg=name)
    # real pixels, not an empty frame: most of the red band has data, and some is clear
    assert np.isfinite(whole["red"].values).mean() > 0.9
    assert 0.1 < whole["clear"].values.mean() < 1.0
