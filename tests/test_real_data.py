"""The detector on real Sentinel-2 data: a mostly undisturbed Slovenian landscape (eo-learn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from redline.detect import STACK_VARS, detect

DATA = Path(__file__).parent / "data" / "slovenia" / "ndvi_series.npz"
MMU_PX = 50  # 5 000 m² at 10 m


def slovenia_stack() -> tuple[xr.DataArray, np.ndarray]:
    z = np.load(DATA)
    ts = pd.to_datetime([t[:19] for t in z["timestamps"]])
    keep = ~pd.Index(ts.normalize()).duplicated()  # two acquisitions on 2015-12-08
    ndvi = z["ndvi_x10000"][keep].astype("float32") / 10000
    valid = z["valid"][keep]
    data = np.zeros((len(STACK_VARS), *ndvi.shape), dtype="float32")
    data[STACK_VARS.index("NDVI")] = ndvi
    data[STACK_VARS.index("MNDWI")] = -0.5  # land: NDVI carries the test (the series has no other bands)
    data[:, ~valid] = np.nan
    da = xr.DataArray(data, dims=("var", "time", "y", "x"), coords={"var": list(STACK_VARS), "time": ts[keep].values})
    return da.chunk({"x": 50, "y": 50}), z["lulc"]


def _patches(disturbed: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(disturbed, structure=np.ones((3, 3)))
    return ndimage.sum(disturbed, labels, range(1, n + 1)) if n else np.array([])


def test_no_false_alert_patch_over_the_whole_year_leaf_fall_and_snow_included():
    """2017 whole: the leaf fall of October–November (forest NDVI 0.59 → 0.25), which neither
    baseline autumn saw clear (no look from 9 Sep to 18 Dec 2015 nor from 23 Sep to 12 Dec 2016),
    and the snow of late November and December (grassland NDVI 0.0–0.06), which the s2cloudless
    mask leaves. Before the seasonal-support rule: 34 % of the patch disturbed, five patches of
    the mapping unit."""
    stack, lulc = slovenia_stack()
    out = detect(stack, baseline=("2015-07-01", "2016-12-31"), monitor=("2017-01-01", "2017-12-31")).compute()
    disturbed = out["disturbed"].values > 0
    assert (_patches(disturbed) >= MMU_PX).sum() == 0
    assert disturbed.mean() < 0.02 and disturbed[lulc == 2].mean() < 0.02  # all, forest
    assert np.median(out["n_base_clear"].values) >= 12  # the baseline was really fitted
    # the looks the baseline cannot judge are counted, and their months named: the autumn
    months = out["unsupported_months"].values.astype(int)
    for m in (10, 11):
        assert ((months >> (m - 1)) & 1).mean() > 0.9, m
    assert ((months >> 6) & 1).mean() < 0.05  # July is well supported
    share = np.nansum(out["n_mon_unsupported"].values) / np.nansum(out["n_mon_clear"].values)
    assert 0.1 < share < 0.5


def test_no_false_alert_patch_on_the_real_snow_free_season():
    stack, lulc = slovenia_stack()
    out = detect(stack, baseline=("2015-07-01", "2016-12-31"), monitor=("2017-03-15", "2017-10-31")).compute()
    disturbed = out["disturbed"].values > 0
    assert (_patches(disturbed) >= MMU_PX).sum() == 0
    assert disturbed[lulc == 2].mean() < 0.05  # forest
    assert np.median(out["n_base_clear"].values) >= 12  # the baseline was really fitted


def test_a_real_clearing_pasted_into_the_real_series_is_found():
    """Replace a real forest block's 2017 observations after 1 June by bare-soil NDVI."""
    stack, lulc = slovenia_stack()
    data = stack.values.copy()
    forest = np.argwhere(lulc == 2)
    y0, x0 = forest[len(forest) // 2]
    y0, x0 = min(y0, 90), min(x0, 90)
    after = stack["time"].values >= np.datetime64("2017-06-01")
    block = data[0][:, y0 : y0 + 10, x0 : x0 + 10]
    block[after] = np.where(np.isfinite(block[after]), 0.15, np.nan)
    data[0][:, y0 : y0 + 10, x0 : x0 + 10] = block
    out = detect(stack.copy(data=data).chunk({"x": 50, "y": 50}), baseline=("2015-07-01", "2016-12-31"), monitor=("2017-01-01", "2017-12-31")).compute()
    hit = out["disturbed"].values[y0 : y0 + 10, x0 : x0 + 10] > 0
    assert hit.mean() > 0.9
    first = pd.to_datetime(out["first_date"].values[y0 : y0 + 10, x0 : x0 + 10][hit], unit="D")
    assert first.min() >= pd.Timestamp("2017-06-01") and first.max() <= pd.Timestamp("2017-07-31")
