"""Trends of annual growing-season NDVI per zone and per admin unit.

When the scan window holds at least :data:`MIN_YEARS` years with growing-season observations,
each unit gets a Theil–Sen slope (Sen 1968, doi:10.1080/01621459.1968.10480934; robust median of
pairwise slopes, ``scipy.stats.theilslopes``) and a Mann–Kendall test of monotonic trend (Mann
1945; Kendall 1975). The Mann–Kendall S statistic is Kendall's τ between time and the values,
so its p-value is that of ``scipy.stats.kendalltau`` (two-sided; ties handled by the τ-b
variance). With three years the smallest attainable two-sided p is 0.33, so no three-year trend
is "significant" at :data:`ALPHA`: the slope is reported, the significance honestly not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from redline.detect import GROWING_SEASON_MONTHS

__all__ = ["MIN_YEARS", "ALPHA", "Trend", "annual_growing_season_ndvi", "trend", "unit_trends"]

#: Fewest years with a growing-season value for a trend (issue #7: "≥ 3 years").
MIN_YEARS = 3
#: Significance level of the Mann–Kendall test (two-sided).
ALPHA = 0.05


def annual_growing_season_ndvi(ndvi: xr.DataArray) -> xr.DataArray:
    """Per-pixel mean NDVI of the clear growing-season observations of each calendar year, lazily.

    ``ndvi`` is (time, y, x), NaN where not clear. Returns (year, y, x) float32; years with no
    growing-season date in ``ndvi`` are absent.
    """
    gs = ndvi["time"].dt.month.isin(list(GROWING_SEASON_MONTHS))
    sel = ndvi.isel(time=np.flatnonzero(gs.values))
    if sel.sizes["time"] == 0:  # a window without growing-season dates: no year at all
        empty = ndvi.isel(time=slice(0, 0)).rename({"time": "year"}).astype("float32")
        return empty.assign_coords(year=np.array([], dtype=int)).rename("ndvi_annual")
    return sel.groupby("time.year").mean("time", skipna=True).astype("float32").rename("ndvi_annual")


@dataclass(frozen=True)
class Trend:
    """Theil–Sen slope (NDVI per year) with its 95 % interval, Mann–Kendall τ and p."""

    n_years: int
    slope: float
    slope_low: float
    slope_high: float
    tau: float
    p_value: float

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p_value) and self.p_value < ALPHA)

    @property
    def direction(self) -> str:
        """``increasing`` / ``decreasing`` when significant, ``no_trend`` when not, ``too_short``."""
        if self.n_years < MIN_YEARS:
            return "too_short"
        if not self.significant:
            return "no_trend"
        return "increasing" if self.slope > 0 else "decreasing"


def trend(years: np.ndarray | list[int], values: np.ndarray | list[float]) -> Trend:
    """Theil–Sen slope and Mann–Kendall test of ``values`` (one per year); NaN values skipped."""
    y = np.asarray(values, dtype="float64")
    t = np.asarray(years, dtype="float64")
    ok = np.isfinite(y) & np.isfinite(t)
    t, y = t[ok], y[ok]
    n = int(ok.sum())
    if n < MIN_YEARS:
        nan = float("nan")
        return Trend(n, nan, nan, nan, nan, nan)
    res = stats.theilslopes(y, t, alpha=0.95)
    if np.ptp(y) == 0:  # a constant series: no trend, τ undefined
        return Trend(n, 0.0, float(res.low_slope), float(res.high_slope), 0.0, 1.0)
    tau = stats.kendalltau(t, y)
    p = float(tau.pvalue) if not math.isnan(tau.pvalue) else 1.0
    return Trend(n, float(res.slope), float(res.low_slope), float(res.high_slope), float(tau.statistic), p)


def unit_trends(annual: pd.DataFrame, key: str) -> pd.DataFrame:
    """One trend row per unit from a long table ``key, year, ndvi_gs``.

    Columns: ``key, ndvi_trend_years, ndvi_trend_slope`` (NDVI per year),
    ``ndvi_trend_slope_low/high`` (95 % interval), ``ndvi_trend_tau, ndvi_trend_p,
    ndvi_trend`` (increasing | decreasing | no_trend | too_short).
    """
    rows = []
    for unit, g in annual.sort_values("year").groupby(key, sort=False):
        tr = trend(g["year"].to_numpy(), g["ndvi_gs"].to_numpy())
        rows.append({
            key: unit, "ndvi_trend_years": tr.n_years, "ndvi_trend_slope": round(tr.slope, 5),
            "ndvi_trend_slope_low": round(tr.slope_low, 5), "ndvi_trend_slope_high": round(tr.slope_high, 5),
            "ndvi_trend_tau": round(tr.tau, 4), "ndvi_trend_p": round(tr.p_value, 4), "ndvi_trend": tr.direction,
        })
    cols = [key, "ndvi_trend_years", "ndvi_trend_slope", "ndvi_trend_slope_low", "ndvi_trend_slope_high", "ndvi_trend_tau", "ndvi_trend_p", "ndvi_trend"]
    return pd.DataFrame(rows, columns=cols)
