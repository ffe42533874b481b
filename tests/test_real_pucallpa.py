"""The detector on real Landsat epochs of Pucallpa, Peru (Amazon clearing 1985–2020): the pixels
whose NDVI collapses between epochs are flagged, the forest that stays is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import xarray as xr

from redline.detect import STACK_VARS, detect

DATA = Path(__file__).parent / "data" / "pucallpa"
YEARS = tuple(range(1985, 2021, 5))


def _bands() -> np.ndarray:
    """(time, band, y, x) of the 8 epochs (bands: SWIR1, NIR, red, green; NaN = no data)."""
    out = []
    for year in YEARS:
        with rasterio.open(DATA / f"{year}.tif") as ds:
            a = ds.read().astype("float32")
        a[a == 0] = np.nan
        out.append(a)
    return np.stack(out)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b)


def _stack(bands: np.ndarray) -> xr.DataArray:
    """The detector's stack from the 4 bands (qualitative: 8-bit stretched composites)."""
    swir, nir, red, green = (bands[:, i] for i in range(4))
    data = np.stack([
        _nd(nir, red),  # NDVI
        np.full_like(nir, -0.5),  # MNDWI: land everywhere (no blue/green-SWIR water test here)
        _nd(nir, swir),  # NBR (SWIR1 stands in for SWIR2)
        _nd(swir + red, nir + green),  # BI-like
        _nd(swir, nir),  # NDBI
        (swir + nir + red + green) / (4 * 255.0),  # ALB
    ]).astype("float32")
    assert data.shape[0] == len(STACK_VARS)
    data[:, ~np.isfinite(data).all(0)] = np.nan
    times = pd.to_datetime([f"{y}-07-01" for y in YEARS]).values  # annual composites, mid-year
    return xr.DataArray(data, dims=("var", "time", "y", "x"), coords={"var": list(STACK_VARS), "time": times}).chunk({"y": 60, "x": 80})


def test_collapsed_forest_is_flagged_and_standing_forest_is_not():
    bands = _bands()
    ndvi = _nd(bands[:, 1], bands[:, 2])
    base, mon = ndvi[:4], ndvi[4:]  # 1985–2000 baseline, 2005–2020 monitor
    forest_then = np.nanmin(base, axis=0) > 0.6
    # reference, independent of the detector: forest in every baseline epoch whose NDVI stays
    # ≥ 0.3 below its baseline mean in the last two epochs (cleared and not grown back)
    collapsed = forest_then & (np.nanmax(ndvi[6:], axis=0) < np.nanmean(base, axis=0) - 0.3)
    standing = (np.nanmin(ndvi, axis=0) > 0.6) & (np.nanmax(ndvi, axis=0) - np.nanmin(ndvi, axis=0) < 0.1)
    assert collapsed.sum() > 200 and standing.sum() > 2000  # the window holds both

    out = detect(
        _stack(bands), baseline=("1985-01-01", "2000-12-31"), monitor=("2001-01-01", "2020-12-31"),
        indices=("NDVI",), harmonics=1, min_baseline_obs=4, consecutive=2,
    ).compute()
    flagged = out["disturbed"].values > 0
    assert flagged[collapsed].mean() >= 0.9
    assert flagged[standing].mean() <= 0.01
    # the disturbance date is an epoch at or before the first collapsed epoch of each pixel
    first = pd.to_datetime(out["first_date"].values[collapsed & flagged], unit="D").year
    assert set(first) <= {2005, 2010, 2015}
    assert np.isfinite(mon).any()


def test_a_short_series_does_not_turn_small_differences_into_alerts():
    """4 baseline epochs and one harmonic leave one residual degree of freedom: the spread of
    the residuals is luck, and before the prior floor (redline.detect.PRIOR_SIGMA) 2.4 % of the
    standing forest whose every monitor epoch stays within 0.15 NDVI of its baseline mean was
    flagged (1.2 % after; NDVI alone 1.1 % → 0.6 %)."""
    bands = _bands()
    ndvi = _nd(bands[:, 1], bands[:, 2])
    mean = np.nanmean(ndvi[:4], axis=0)
    small = (np.nanmin(ndvi[:4], axis=0) > 0.6) & (np.nanmax(np.abs(ndvi[4:] - mean), axis=0) < 0.15)
    assert small.sum() > 5000
    out = detect(_stack(bands), baseline=("1985-01-01", "2000-12-31"), monitor=("2001-01-01", "2020-12-31"),
                 harmonics=1, min_baseline_obs=4, consecutive=2).compute()
    assert (out["disturbed"].values > 0)[small].mean() <= 0.015
    # the spread of a 4-look baseline is floored near the prior (d = 1: 0.05·√(4/5) ≈ 0.045)
    assert np.nanmedian(out["sigma_ndvi"].values[small]) >= 0.044
