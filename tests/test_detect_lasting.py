"""The lasting-disturbance and weak-anomaly rules of the detector (redline.detect LASTING_DAYS,
WEAK_Z_FACTOR, WEAK_LASTING_DAYS) and the hysteresis in space of the alerts (disturbed_mask)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from redline.alerts import disturbed_mask
from redline.detect import LASTING_DAYS, STACK_VARS, baseline_model, detect


def _stack(ndvi: np.ndarray, times: pd.DatetimeIndex) -> xr.DataArray:
    """(var, time, y=1, x=n) stack: NDVI as given, the other variables steady with noise."""
    rng = np.random.default_rng(1)
    n = ndvi.shape[1]
    data = np.empty((len(STACK_VARS), len(times), 1, n), dtype="float32")
    for i, v in enumerate(STACK_VARS):
        data[i, :, 0, :] = ndvi if v == "NDVI" else (0.1 + 0.005 * rng.standard_normal((len(times), n)))
    data[STACK_VARS.index("MNDWI")] -= 0.5  # land
    return xr.DataArray(data, dims=("var", "time", "y", "x"), coords={"var": list(STACK_VARS), "time": times})


def test_cropland_built_over_stays_disturbed_through_the_off_season_an_early_harvest_does_not():
    times = pd.date_range("2021-01-05", "2023-12-31", freq="10D")
    t = times.day_of_year.values / 365.25
    rng = np.random.default_rng(0)
    season = (t > 0.25) & (t < 0.8)  # one crop, April to mid-October: bare soil (NDVI 0.15) otherwise
    crop = 0.15 + 0.55 * np.where(season, np.sin(np.pi * (t - 0.25) / 0.55), 0.0)
    ndvi = np.repeat(crop[:, None], 2, axis=1) + 0.02 * rng.standard_normal((len(times), 2))
    mon = times >= "2023-01-01"
    built = mon & (times >= "2023-03-20")
    ndvi[built, 0] = 0.15 + 0.01 * rng.standard_normal(built.sum())  # pixel 0: built over from late March
    harvest = mon & (times >= "2023-08-25") & (times < "2023-10-20")
    ndvi[harvest, 1] = 0.15  # pixel 1: harvested early; the model's own harvest comes later
    ds = detect(_stack(ndvi.astype("float32"), times), baseline=("2021-01-01", "2022-12-31"), monitor=("2023-01-01", "2023-12-31")).compute()
    first = ds["first_date"].values[0]
    # pixel 0: disturbed, dated in spring, although its clear looks from November on are normal
    # for a crop model that expects bare soil then — three of them would have withdrawn it
    assert ds["disturbed"].values[0, 0] == 1 and ds["weak"].values[0, 0] == 0
    date0 = np.datetime64("1970-01-01") + np.timedelta64(int(first[0]), "D")
    assert np.datetime64("2023-03-20") <= date0 <= np.datetime64("2023-05-01")
    model, _ = baseline_model(times.values, ndvi[:, 0].astype("float64"), np.asarray(times < "2023-01-01"))
    late = np.asarray(times >= "2023-11-10")
    assert late.sum() >= 3 and (model[late] - ndvi[late, 0] < 0.10).all()  # below MIN_DROP["NDVI"]: normal looks
    assert ds["last_observed"].values[0, 0] - first[0] >= LASTING_DAYS
    # pixel 1: the early harvest was anomalous for ~2 months only and is withdrawn by the normal looks after it
    assert ds["disturbed"].values[0, 1] == 0


def test_weak_pixels_join_a_patch_only_through_strong_ones():
    disturbed = np.zeros((6, 8), "float32")
    weak = np.zeros((6, 8), "float32")
    disturbed[1:3, 1:3] = 1  # strong core
    disturbed[1:3, 3:5] = weak[1:3, 3:5] = 1  # weak, touching the core
    disturbed[4:6, 6:8] = weak[4:6, 6:8] = 1  # weak, alone
    mask = disturbed_mask({"disturbed": disturbed, "weak": weak})
    assert mask[1:3, 1:5].all() and not mask[4:6, 6:8].any() and mask.sum() == 8
    # without a weak field (older fields): every disturbed pixel
    assert disturbed_mask({"disturbed": disturbed}).sum() == disturbed.sum()
