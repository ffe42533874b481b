"""The seasonal baseline and the confirmation rule, on small synthetic series with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from redline.detect import FIELDS, STACK_VARS, decimal_year, design_matrix, detect

DATES = pd.date_range("2021-01-05", "2023-12-31", freq="10D")
BASE = ("2021-01-01", "2022-12-31")
MON = ("2023-01-01", "2023-12-31")


def make_stack(ndvi: np.ndarray, mndwi: np.ndarray | None = None, nbr: np.ndarray | None = None) -> xr.DataArray:
    """(var, time, y=1, x=n) stack; other variables are filled with a constant (NBR too unless given)."""
    t, n = ndvi.shape
    data = np.full((len(STACK_VARS), t, 1, n), 0.1, dtype="float32")
    data[0, :, 0, :] = ndvi
    if mndwi is not None:
        data[1, :, 0, :] = mndwi
    else:
        data[1] = -0.5
    if nbr is not None:
        data[STACK_VARS.index("NBR"), :, 0, :] = nbr
    return xr.DataArray(data, dims=("var", "time", "y", "x"), coords={"var": list(STACK_VARS), "time": DATES})


def _seasonal(rng: np.random.Generator, n: int, amp: float = 0.25, noise: float = 0.015) -> np.ndarray:
    doy = DATES.day_of_year.values[:, None]
    base = 0.55 + amp * np.sin(2 * np.pi * (doy - 100) / 365.25)
    return (base + rng.normal(0, noise, (len(DATES), n))).astype("float32")


def run_detect(stack: xr.DataArray, **kw) -> dict[str, np.ndarray]:
    ds = detect(stack.chunk({"x": 4}), baseline=BASE, monitor=MON, **kw).compute()
    return {k: ds[k].values[0] for k in FIELDS}


def test_design_matrix_has_annual_and_semiannual_terms():
    t = np.array([2021.0, 2021.25, 2021.5])
    X = design_matrix(t, harmonics=2, trend=True, t0=2021.0)
    assert X.shape == (3, 6)
    np.testing.assert_allclose(X[1], [1, 0.25, 0, 1, -1, 0], atol=1e-9)


def test_decimal_year_of_mid_year():
    assert decimal_year(np.array(["2023-07-02T12:00"], dtype="datetime64[ns]"))[0] == pytest.approx(2023.5, abs=0.002)


def test_stable_seasonal_pixels_do_not_alert():
    rng = np.random.default_rng(1)
    f = run_detect(make_stack(_seasonal(rng, 200)))
    assert f["disturbed"].sum() <= 1  # ≤ 0.5 % false positives at the defaults (z = 4, k = 2)


def test_clearing_is_detected_on_the_first_anomalous_date():
    rng = np.random.default_rng(2)
    ndvi = _seasonal(rng, 8)
    start = np.searchsorted(DATES, pd.Timestamp("2023-05-15"))
    ndvi[start:, :4] = 0.15 + rng.normal(0, 0.01, (len(DATES) - start, 4))
    f = run_detect(make_stack(ndvi))
    assert f["disturbed"][:4].tolist() == [1, 1, 1, 1]
    assert f["disturbed"][4:].sum() == 0
    first = pd.to_datetime(f["first_date"][:4], unit="D")
    assert (first == DATES[start]).all()
    assert (f["magnitude"][:4] > 0.4).all()
    assert (f["n_confirm"][:4] == len(DATES) - start).all()


def test_a_single_anomalous_observation_does_not_confirm():
    rng = np.random.default_rng(3)
    ndvi = _seasonal(rng, 4)
    i = np.searchsorted(DATES, pd.Timestamp("2023-06-01"))
    ndvi[i, :] = 0.1  # a missed cloud edge on one date
    assert run_detect(make_stack(ndvi))["disturbed"].sum() == 0
    ndvi[-1, :] = 0.1  # the last observation: with k = 1 it confirms (nothing after it to recover)
    f = run_detect(make_stack(ndvi), consecutive=1)
    assert f["disturbed"].sum() == 4
    assert (pd.to_datetime(f["first_date"], unit="D") == DATES[-1]).all()


def test_a_transient_dip_that_recovers_is_withdrawn():
    rng = np.random.default_rng(8)
    ndvi = _seasonal(rng, 4)
    i = np.searchsorted(DATES, pd.Timestamp("2023-02-01"))
    ndvi[i : i + 3, :] = 0.05  # a month of snow
    assert run_detect(make_stack(ndvi))["disturbed"].sum() == 0
    ndvi[i + 3 :, :2] = 0.1  # ... after which two pixels stay bare: a real clearing
    f = run_detect(make_stack(ndvi))
    assert f["disturbed"].tolist() == [1, 1, 0, 0]


def test_cloudy_dates_between_anomalies_do_not_break_the_run():
    rng = np.random.default_rng(4)
    ndvi = _seasonal(rng, 2)
    i = np.searchsorted(DATES, pd.Timestamp("2023-04-01"))
    ndvi[i:, :] = 0.1
    ndvi[i + 1, :] = np.nan  # masked
    f = run_detect(make_stack(ndvi))
    assert f["disturbed"].tolist() == [1, 1]
    assert (pd.to_datetime(f["first_date"], unit="D") == DATES[i]).all()


def test_water_loss_is_caught_on_mndwi_only_for_baseline_water():
    rng = np.random.default_rng(5)
    n = 4
    ndvi = np.full((len(DATES), n), -0.2, "float32") + rng.normal(0, 0.01, (len(DATES), n)).astype("float32")
    mndwi = np.full((len(DATES), n), 0.5, "float32") + rng.normal(0, 0.02, (len(DATES), n)).astype("float32")
    mndwi[:, 2:] = -0.3  # land
    i = np.searchsorted(DATES, pd.Timestamp("2023-08-01"))
    mndwi[i:, :] -= 0.6
    ndvi[i:, :] = 0.1  # NDVI rises when water becomes mud: not an NDVI drop
    f = run_detect(make_stack(ndvi, mndwi))
    assert f["disturbed"].tolist() == [1, 1, 0, 0]
    assert f["trigger"][:2].tolist() == [STACK_VARS.index("MNDWI")] * 2


def test_pixels_without_enough_baseline_observations_are_not_monitored():
    rng = np.random.default_rng(6)
    ndvi = _seasonal(rng, 2)
    ndvi[: np.searchsorted(DATES, pd.Timestamp("2022-11-01")), 0] = np.nan
    i = np.searchsorted(DATES, pd.Timestamp("2023-04-01"))
    ndvi[i:, :] = 0.1
    f = run_detect(make_stack(ndvi), min_baseline_obs=12)
    assert f["disturbed"].tolist() == [0, 1]
    assert f["n_base_clear"][0] < 12


def test_detect_is_lazy():
    rng = np.random.default_rng(7)
    stack = make_stack(_seasonal(rng, 8)).chunk({"x": 4})
    ds = detect(stack, baseline=BASE, monitor=MON)
    assert ds["disturbed"].chunks is not None


def test_the_short_series_floor_fades_with_the_residual_degrees_of_freedom():
    from redline.detect import PRIOR_SIGMA, SIGMA_FLOOR, short_series_floor

    floors = [short_series_floor(n, 5) for n in (6, 12, 24, 60)]
    assert floors == sorted(floors, reverse=True) and floors[0] < PRIOR_SIGMA["NDVI"]
    assert short_series_floor(60, 5) < SIGMA_FLOOR["NDVI"]  # a dense series keeps its own spread
    assert short_series_floor(4, 3) > 2 * SIGMA_FLOOR["NDVI"]  # 4 annual looks, one harmonic
