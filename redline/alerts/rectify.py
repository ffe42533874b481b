"""Re-check of rectified alerts (整改销号) by a later scan.

A reviewer marks a site ``rectified`` once the activity was stopped and the ground restored.
Every later scan looks at the alert polygon again: the median NDVI of its clear pixels on each
date after the rectification was recorded, compared with the seasonal baseline model of the same
polygon (fitted on the scan's baseline window, as :func:`redline.detect.baseline_model`).
:func:`redline.alerts.activity.recovery_verdict` decides: ``recovered`` (the scan moves the alert to
status ``recovered``, a history row by ``redline-scan``) or ``continuing`` (the alert stays
``rectified``, gets ``recheck = 1`` and a history row by ``redline-scan`` saying so). Without a
clear look after the rectification nothing is recorded. Each scan id records at most one row per
alert, so re-running a scan adds nothing.
"""

from __future__ import annotations

import logging

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from redline.alerts.activity import RECOVERY_SHARE, recovery_verdict
from redline.detect import nanmedian_last, baseline_model
from redline.register import SCAN_REVIEWER, append_history

__all__ = ["recheck_rectified"]

log = logging.getLogger(__name__)


def _rectified_on(history: pd.DataFrame, alert_id: str) -> np.datetime64 | None:
    h = history[(history["alert_id"] == alert_id) & (history["to_status"] == "rectified") & (history["from_status"] != "rectified")]
    return np.datetime64(pd.Timestamp(h["time"].iloc[-1]).tz_localize(None).date(), "D") if not h.empty else None


def recheck_rectified(
    alerts: gpd.GeoDataFrame,
    history: pd.DataFrame,
    stack: xr.DataArray,
    geobox: GeoBox,
    *,
    baseline: tuple[str, str],
    scan_id: str,
    harmonics: int = 2,
    trend: bool = False,
    alert_ids: set[str] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame, dict[str, str]]:
    """Re-check the ``rectified`` alerts that lie on the scan's grid.

    Parameters
    ----------
    alerts
        The register's alerts (EPSG:4326).
    history
        The register's review history.
    stack
        The detector's (var, time, y, x) stack on ``geobox`` (lazy; only small windows around
        the rectified alerts are computed, in one pass).
    baseline
        The scan's baseline window (ISO dates, inclusive).
    alert_ids
        Only these alerts (a tile's); None: all on the grid.

    Returns
    -------
    (alerts, history, verdicts)
        Updated copies, and alert_id → ``recovered`` | ``continuing`` for each alert decided.
    """
    alerts = alerts.copy()
    rect = alerts[(alerts["status"] == "rectified") & (alerts["alert_id"].isin(alert_ids) if alert_ids is not None else True)]
    if rect.empty:
        return alerts, history, {}
    tag = f"scan {scan_id}:"
    todo = []
    for i, a in rect.iterrows():
        mine = history[(history["alert_id"] == a["alert_id"]) & (history["by"] == SCAN_REVIEWER)] if not history.empty else history
        if not mine.empty and mine["note"].astype(str).str.startswith(tag).any():
            continue  # this scan already recorded its verdict
        after = _rectified_on(history, a["alert_id"])
        if after is None:
            continue
        todo.append((i, after))
    if not todo:
        return alerts, history, {}
    inv = ~geobox.transform
    height, width = geobox.shape
    utm = alerts.loc[[i for i, _ in todo]].to_crs(geobox.crs)
    windows, lazy = [], []
    for (i, after), geom in zip(todo, utm.geometry, strict=True):
        w, s, e, n = geom.bounds
        c0, r0 = inv * (w, n)
        c1, r1 = inv * (e, s)
        r0, c0 = max(int(np.floor(r0)), 0), max(int(np.floor(c0)), 0)
        r1, c1 = min(int(np.ceil(r1)), height), min(int(np.ceil(c1)), width)
        if r1 <= r0 or c1 <= c0:
            continue  # not on this scan's grid
        windows.append((i, after, geom, r0, c0, r1, c1))
        lazy.append(stack.sel(var="NDVI").isel(y=slice(r0, r1), x=slice(c0, c1)))
    computed = dask.compute(*lazy)
    times = stack["time"].values
    days = times.astype("datetime64[D]")
    in_base = (days >= np.datetime64(baseline[0])) & (days <= np.datetime64(baseline[1]))
    verdicts = {}
    for (i, after, geom, r0, c0, r1, c1), win in zip(windows, computed, strict=True):
        arr = np.asarray(win.values, dtype="float64")  # (time, y, x)
        transform = geobox.transform * Affine.translation(c0, r0)
        inside = rasterio.features.geometry_mask([geom], out_shape=arr.shape[1:], transform=transform, invert=True)
        if not inside.any():
            continue
        px = arr[:, inside]
        clear = np.isfinite(px).mean(axis=1)
        med = nanmedian_last(px)[:, 0]  # per date; NaN on dates without a clear pixel, without a warning
        if np.isfinite(med[in_base]).sum() < 4:
            continue
        expected, _ = baseline_model(times, med, in_base, var="NDVI", harmonics=harmonics, trend=trend)
        verdict, obs, exp = recovery_verdict(times, med, clear, expected, after=after)
        if verdict is None:
            continue
        aid = alerts.at[i, "alert_id"]
        if verdict == "recovered":
            note = f"{tag} recovered: NDVI {obs:.3f} of the latest clear looks ≥ {RECOVERY_SHARE:g} × baseline {exp:.3f}"
            history, _ = append_history(history, alert_id=aid, by=SCAN_REVIEWER, from_status="rectified", to_status="recovered", note=note)
            alerts.at[i, "status"] = "recovered"
            alerts.at[i, "recheck"] = 0
        else:
            note = f"{tag} recheck: NDVI {obs:.3f} of the latest clear looks < {RECOVERY_SHARE:g} × baseline {exp:.3f}; the disturbance goes on"
            history, _ = append_history(history, alert_id=aid, by=SCAN_REVIEWER, from_status="rectified", to_status="rectified", note=note)
            alerts.at[i, "recheck"] = 1
        log.info("alert %s: %s", aid, note)
        verdicts[aid] = verdict
    return alerts, history, verdicts
