"""Seasonal support of the baseline (issue #20; redline.detect SEASON_SUPPORT_DAYS): a monitor
look is judged only where clear baseline looks bracket its day of year, so that the harmonic
model interpolates; elsewhere only a strong look (two indices agree) is an anomaly. Each test
shows the rule changing the outcome on a series where the model alone would raise an alert, and
a real change still found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from redline.detect import MIN_DROP, SEASON_SUPPORT_DAYS, baseline_model, season_support
from tests.test_detect import DATES, make_stack, run_detect

MONTH = DATES.month.values
MON_2023 = DATES.year.values == 2023
DOY = DATES.day_of_year.values


def _curve(rng: np.random.Generator, n: int, dip: float) -> np.ndarray:
    """NDVI 0.6 + 0.02·sin (peak in July) with noise, ``dip`` lower in October–November every
    year: a leaf fall earlier and sharper than two harmonics can follow."""
    base = 0.6 + 0.02 * np.sin(2 * np.pi * (DOY[:, None] - 100) / 365.25) - dip * np.isin(MONTH, (10, 11))[:, None]
    return (base + rng.normal(0, 0.01, (len(DATES), n))).astype("float32")


def _unbracketed(clear_base: np.ndarray) -> list[int]:
    """Brute force: the 2023 looks without a clear baseline look (``clear_base``) on or before
    and one on or after their day of year within SEASON_SUPPORT_DAYS days."""
    out = []
    for t in np.flatnonzero(MON_2023):
        d = (DOY[clear_base] - DOY[t] + 182.625) % 365.25 - 182.625
        if not ((np.abs(d) <= SEASON_SUPPORT_DAYS) & (d <= 0)).any() or not ((np.abs(d) <= SEASON_SUPPORT_DAYS) & (d >= 0)).any():
            out.append(int(t))
    return out


def test_season_support_lists_the_baseline_looks_on_each_side():
    ptr, idx, side = season_support(DOY, ~MON_2023)
    t = int(np.searchsorted(DATES, pd.Timestamp("2023-01-05")))  # across the new year
    near = DATES[idx[ptr[t]:ptr[t + 1]]]
    assert set(near.year) == {2021, 2022} and {-1, 1} <= set(side[ptr[t]:ptr[t + 1]].tolist())
    assert any(d.month == 12 for d in near) and all(min(abs(d.day_of_year - 5), 365 - abs(d.day_of_year - 5)) <= 45 for d in near)


def test_a_season_the_baseline_never_saw_clear_is_not_judged():
    rng = np.random.default_rng(11)
    ndvi = _curve(rng, 4, dip=0.15)
    seen = run_detect(make_stack(ndvi))
    assert seen["disturbed"].sum() == 0 and (seen["n_mon_unsupported"] == 0).all()  # the baseline saw the dip: the model knows it
    gap = (DOY >= 253) & (DOY <= 354)  # 10 Sep – 20 Dec under cloud, as in the real Slovenia baselines
    hidden = ndvi.copy()
    hidden[gap & ~MON_2023] = np.nan
    f = run_detect(make_stack(hidden))
    assert f["disturbed"].sum() == 0  # the model runs through the dip it never saw; those looks are not judged
    lonely = _unbracketed(~MON_2023 & ~gap)
    assert len(lonely) >= 4 and (f["n_mon_unsupported"] == len(lonely)).all()
    assert (f["unsupported_months"] == sum(1 << (m - 1) for m in set(MONTH[lonely]))).all()
    # ... and there the model misses the dip by more than the minimum drop and 4 σ: without the
    # rule these looks would have been anomalies
    model, sigma = baseline_model(DATES.values, hidden[:, 0].astype("float64"), ~MON_2023)
    miss = ndvi[lonely, 0] - model[lonely]
    assert ((miss <= -MIN_DROP["NDVI"]) & (miss < -4 * sigma)).sum() >= 2


def test_one_side_of_the_season_is_not_enough():
    rng = np.random.default_rng(12)
    ndvi = _curve(rng, 4, dip=0.15)
    late = (DOY >= 253) & ~MON_2023  # every baseline look from 10 Sep on under cloud: the model's year ends there
    ndvi_h = ndvi.copy()
    ndvi_h[late] = np.nan
    f = run_detect(make_stack(ndvi_h))
    lonely = _unbracketed(~MON_2023 & ~late)
    assert len(lonely) >= 6 and (f["n_mon_unsupported"] == len(lonely)).all()
    assert f["disturbed"].sum() == 0


def test_without_support_a_strong_look_still_counts():
    rng = np.random.default_rng(13)
    ndvi = _curve(rng, 4, dip=0.0)
    gap = (DOY >= 200) & (DOY <= 300) & ~MON_2023  # a monsoon summer: no clear baseline look from July to October
    ndvi[gap] = np.nan
    start = int(np.searchsorted(DATES, pd.Timestamp("2023-08-20")))
    cleared = np.zeros_like(ndvi, dtype=bool)
    cleared[start:, :2] = True
    ndvi[cleared] = 0.15
    nbr = np.full_like(ndvi, 0.3)
    nbr[gap] = np.nan
    nbr_ndvi_only = nbr.copy()
    nbr[cleared] = -0.1  # soil where forest stood: NBR falls as well — a strong look
    f = run_detect(make_stack(ndvi, nbr=nbr))
    assert f["disturbed"].tolist() == [1, 1, 0, 0]
    assert (pd.to_datetime(f["first_date"][:2], unit="D") == DATES[start]).all()  # dated in the unsupported summer
    assert (f["n_mon_unsupported"][:2] > 0).all()
    g = run_detect(make_stack(ndvi, nbr=nbr_ndvi_only))  # NDVI alone falls: judged only once the season is supported
    assert (g["disturbed"][:2] == 1).all() and (g["first_date"][:2] > f["first_date"][:2]).all()
