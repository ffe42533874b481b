"""NDVI trends on the real Slovenia Sentinel-2 series (2015–2017, three growing seasons), and
the laziness of the assessment inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio import features
from scipy import stats
from shapely.geometry import shape

from redline import assess
from redline.assess import trends
from redline.detect import GROWING_SEASON_MONTHS

DATA = Path(__file__).parent / "data" / "slovenia" / "ndvi_series.npz"
TRANSFORM = Affine(10.0, 0.0, 465181.05, 0.0, -10.0, 5080254.63)  # ≈ 10 m, see tests/data/README.md
LULC = {1: "cultivated", 2: "forest", 3: "grassland"}


@pytest.fixture(scope="module")
def series() -> xr.DataArray:
    d = np.load(DATA)
    ndvi = np.where(d["valid"], d["ndvi_x10000"] / 10000.0, np.nan).astype("float32")
    times = pd.to_datetime(d["timestamps"]).values
    return xr.DataArray(ndvi, dims=("time", "y", "x"), coords={"time": times}).chunk({"time": -1, "y": 50, "x": 50}), d["lulc"]


def test_annual_growing_season_ndvi_and_trends_per_land_cover_unit(series, tmp_path):
    ndvi, lulc = series
    annual = trends.annual_growing_season_ndvi(ndvi)
    years = [int(y) for y in annual["year"].values]
    assert years == [2015, 2016, 2017]
    values = annual.compute().values
    path = tmp_path / "ndvi_annual.tif"
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[2], height=values.shape[1], count=3, dtype="float32",
                       crs="EPSG:32633", transform=TRANSFORM, nodata=np.nan) as dst:
        dst.write(values)
        for i, y in enumerate(years):
            dst.set_band_description(i + 1, str(y))
    units = [{"unit": LULC[int(v)], "geometry": shape(g)} for g, v in features.shapes(lulc, transform=TRANSFORM) if int(v) in LULC]
    polys = gpd.GeoDataFrame(units, crs=32633).dissolve(by="unit").reset_index()
    table = assess.annual_means(path, polys, "unit")
    months = pd.DatetimeIndex(ndvi["time"].values).month
    raw = ndvi.values
    for r in table.itertuples():
        sel = (pd.DatetimeIndex(ndvi["time"].values).year == r.year) & np.isin(months, GROWING_SEASON_MONTHS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # never-clear pixels: all-NaN slices
            per_pixel = np.nanmean(raw[sel], axis=0)
        cls = [k for k, v in LULC.items() if v == r.unit][0]
        mask = (lulc == cls) & np.isfinite(per_pixel)
        assert r.ndvi_gs == pytest.approx(per_pixel[mask].mean(), abs=1e-4)
    tr = trends.unit_trends(table, "unit").set_index("unit")
    for unit, g in table.groupby("unit"):
        expected = stats.theilslopes(g["ndvi_gs"], g["year"]).slope
        assert tr.loc[unit, "ndvi_trend_slope"] == pytest.approx(expected, abs=1e-5)
        assert tr.loc[unit, "ndvi_trend_years"] == 3
        assert tr.loc[unit, "ndvi_trend_p"] >= 0.33  # three years can never be significant
        assert tr.loc[unit, "ndvi_trend"] == "no_trend"
    print(tr[["ndvi_trend_slope", "ndvi_trend_tau", "ndvi_trend_p"]])


def test_trend_significance_and_short_series():
    trend_years = list(range(2015, 2023))
    rising = [0.50, 0.52, 0.51, 0.55, 0.56, 0.58, 0.57, 0.61]
    t = trends.trend(trend_years, rising)
    assert t.significant and t.direction == "increasing"
    assert t.slope == pytest.approx(stats.theilslopes(rising, trend_years).slope)
    assert t.p_value == pytest.approx(stats.kendalltau(trend_years, rising).pvalue)
    assert trends.trend([2022, 2023], [0.6, 0.5]).direction == "too_short"
    assert trends.trend([2021, 2022, 2023], [0.6, np.nan, 0.5]).direction == "too_short"
