"""Provisional disturbances (redline.detect PROVISIONAL_Z_FACTOR): anomalous looks pending at the
end of the window, too few to confirm, are held when two indices agree — and an alert with fewer
confirming looks than ``consecutive`` is always of low confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from redline.alerts import confidence_level
from redline.detect import PROVISIONAL_Z_FACTOR, STACK_VARS, detect

TIMES = pd.date_range("2021-01-05", "2023-12-31", freq="10D")
V = {v: i for i, v in enumerate(STACK_VARS)}


def _forest(n: int) -> np.ndarray:
    """(var, time, y=1, x=n) evergreen forest with a mild season and clear-sky noise."""
    rng = np.random.default_rng(3)
    doy = TIMES.day_of_year.values[:, None] / 365.25
    season = np.cos(2 * np.pi * (doy - 0.55))
    base = {"NDVI": 0.78 + 0.04 * season, "MNDWI": -0.47 + 0.01 * season, "NBR": 0.55 + 0.03 * season,
            "BI": -0.23 + 0.0 * season, "NDBI": -0.27 + 0.0 * season, "ALB": 0.11 + 0.0 * season}
    data = np.empty((len(STACK_VARS), len(TIMES), 1, n), dtype="float32")
    for v, i in V.items():
        data[i, :, 0, :] = base[v] + 0.01 * rng.standard_normal((len(TIMES), n))
    return data


def test_a_clearing_seen_once_at_the_end_is_provisional_haze_and_snow_are_not():
    data = _forest(4)
    late = np.flatnonzero(np.asarray(TIMES >= "2023-10-15"))
    last = late[-1]
    clean = data.copy()
    data[:, late[:-1], 0, :] = np.nan  # cloud from mid-October: one clear look left, the last
    clearing = {"NDVI": 0.15, "NBR": -0.10, "MNDWI": -0.49, "BI": 0.10, "NDBI": 0.19, "ALB": 0.19}  # bare soil
    # pixel 0: cleared to bare soil, seen once (NDVI and NBR both collapse)
    for v, x in clearing.items():
        data[V[v], last, 0, 0] = x
    # pixel 1: a haze ring the mask missed: the visible brightens, NDVI falls, NBR barely moves
    data[[V["NDVI"], V["NBR"], V["ALB"]], last, 0, 1] = [0.40, 0.50, 0.16]
    # pixel 2: unmasked snow: NDVI falls, NBR and MNDWI rise (snow is dark in the SWIR)
    data[[V["NDVI"], V["NBR"], V["MNDWI"], V["ALB"]], last, 0, 2] = [0.15, 0.70, 0.40, 0.26]
    # pixel 3: the clearing's values on the look before, then a normal clear look (it did not last)
    data[:, late[-2], 0, 3] = clean[:, late[-2], 0, 3]
    for v, x in clearing.items():
        data[V[v], late[-2], 0, 3] = x
    stack = xr.DataArray(data, dims=("var", "time", "y", "x"), coords={"var": list(STACK_VARS), "time": TIMES})
    ds = detect(stack, baseline=("2021-01-01", "2022-12-31"), monitor=("2023-01-01", "2023-12-31"), z_threshold=4.0, consecutive=2).compute()
    dist = ds["disturbed"].values[0]
    assert dist[0] == 1 and ds["n_confirm"].values[0, 0] == 1  # provisional: one confirming look
    assert ds["first_date"].values[0, 0] == (TIMES[last] - pd.Timestamp("1970-01-01")).days
    assert ds["zscore"].values[0, 0] >= PROVISIONAL_Z_FACTOR * 4.0
    assert dist[1] == 0 and dist[2] == 0  # one index alone does not make a provisional look
    assert dist[3] == 0  # one anomalous look followed by a normal one is not held
    # with k = 1 a single look confirms anyway: the haze pixel shows the NDVI anomaly is there
    k1 = detect(stack, baseline=("2021-01-01", "2022-12-31"), monitor=("2023-01-01", "2023-12-31"), z_threshold=4.0, consecutive=1).compute()
    assert k1["disturbed"].values[0, 1] == 1


def test_alerts_with_fewer_looks_than_consecutive_are_low_confidence():
    assert confidence_level(1, 12.0, consecutive=2, z_threshold=4.0) == "low"
    assert confidence_level(2, 12.0, consecutive=2, z_threshold=4.0) == "nominal"
    assert confidence_level(4, 12.0, consecutive=2, z_threshold=4.0) == "high"
