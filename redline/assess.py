"""Ecological-status assessment per zone and per administrative unit (design.md §7).

Zonal means are weighted by the exact fraction of each pixel covered by the polygon
(exactextract, Baston 2023, https://github.com/isciences/exactextract), not by centre-point
rasterising, so that small and thin zones are measured correctly.

Fractional vegetation cover uses the dimidiate pixel model
FVC = (NDVI − NDVI_soil) / (NDVI_veg − NDVI_soil), clipped to [0, 1] (Gutman & Ignatov 1998,
doi:10.1080/014311698215333), with the soil and vegetation end-members taken as the 5 % and
95 % cumulative quantiles of the scene's NDVI, as is standard practice in China (李苗苗 等 2004,
资源科学 26(4): 153–159).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from exactextract import exact_extract

from redline.alerts import DISTURBANCE_TYPES

__all__ = ["FVC_QUANTILES", "fvc", "zone_statistics", "admin_statistics", "OBSERVED_MIN_FRACTION"]

#: Soil / vegetation end-member quantiles of NDVI for FVC (李苗苗 等 2004).
FVC_QUANTILES = (0.05, 0.95)
#: Below this share of the zone seen clear at least once in the monitor window, the zone's
#: status is ``not_observed``: "no alert" must not be read as "no change".
OBSERVED_MIN_FRACTION = 0.5


def fvc(ndvi: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Fractional vegetation cover (0–1) from NDVI, with the end-members used (soil, veg)."""
    finite = ndvi[np.isfinite(ndvi)]
    if finite.size == 0:
        return np.full_like(ndvi, np.nan), float("nan"), float("nan")
    soil, veg = (float(q) for q in np.quantile(finite, FVC_QUANTILES))
    out = np.clip((ndvi - soil) / max(veg - soil, 1e-6), 0.0, 1.0)
    return np.where(np.isfinite(ndvi), out, np.nan).astype("float32"), soil, veg


def _zonal_means(rasters: dict[str, Path], polys: gpd.GeoDataFrame, key: str) -> pd.DataFrame:
    stats = exact_extract([str(p) for p in rasters.values()], polys[[key, "geometry"]], ["mean"], include_cols=[key], output="pandas")
    rename = {f"{Path(p).stem}_mean": name for name, p in rasters.items()}
    if len(rasters) == 1:
        rename = {"mean": next(iter(rasters))}
    return stats.rename(columns=rename)


def zone_statistics(zones: gpd.GeoDataFrame, rasters: dict[str, Path], alerts: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per zone: the columns of design.md §7.

    Parameters
    ----------
    zones
        Zones in the rasters' metric CRS (``zone_id, zone_name, category, admin_id``).
    rasters
        Single-band float32 GeoTIFFs on the analysis grid, keyed ``ndvi_baseline``,
        ``ndvi_monitor``, ``fvc_monitor`` and ``observed`` (1 where the pixel had ≥ 1 clear
        observation in the monitor window, else 0).
    alerts
        This scan's alerts (any CRS) with ``zone_id``, ``area_m2``, ``disturbance_type``.
    """
    means = _zonal_means(rasters, zones, "zone_id")
    out = zones[["zone_id", "zone_name", "category", "admin_id"]].copy()
    out["area_km2"] = (zones.geometry.area / 1e6).round(6).values  # 1 m²: zones smaller than a pixel keep their area
    out = out.merge(means, on="zone_id", how="left")
    out = out.rename(columns={"observed": "valid_obs_fraction"})
    out["ndvi_change"] = out["ndvi_monitor"] - out["ndvi_baseline"]
    a = pd.DataFrame(alerts.drop(columns="geometry", errors="ignore"))
    area = a.groupby("zone_id")["area_m2"].sum() if not a.empty else pd.Series(dtype=float)
    out["disturbed_area_m2"] = out["zone_id"].map(area).fillna(0.0).round(1)
    out["disturbed_fraction"] = (out["disturbed_area_m2"] / (out["area_km2"] * 1e6)).round(6)
    counts = a.groupby(["zone_id", "disturbance_type"]).size().unstack(fill_value=0) if not a.empty else pd.DataFrame()
    out["alerts_total"] = out["zone_id"].map(counts.sum(axis=1) if not counts.empty else {}).fillna(0).astype(int)
    for t in DISTURBANCE_TYPES:
        col = counts[t] if t in counts.columns else pd.Series(dtype=int)
        out[f"alerts_{t}"] = out["zone_id"].map(col).fillna(0).astype(int)
    out["status"] = np.select(
        [out["valid_obs_fraction"].fillna(0) < OBSERVED_MIN_FRACTION, out["alerts_total"] > 0],
        ["not_observed", "alerts"],
        default="no_alert",
    )
    for c in ("valid_obs_fraction", "ndvi_baseline", "ndvi_monitor", "ndvi_change", "fvc_monitor"):
        out[c] = out[c].astype(float).round(4)
    cols = ["zone_id", "zone_name", "category", "admin_id", "area_km2", "valid_obs_fraction", "ndvi_baseline",
            "ndvi_monitor", "ndvi_change", "fvc_monitor", "disturbed_area_m2", "disturbed_fraction", "alerts_total",
            *[f"alerts_{t}" for t in DISTURBANCE_TYPES], "status"]
    return out[cols]


def admin_statistics(zone_stats: pd.DataFrame, admin_units: gpd.GeoDataFrame | None) -> pd.DataFrame:
    """Aggregate zone rows by ``admin_id``: sums of areas and counts, zone-area-weighted means."""
    zs = zone_stats.copy()
    zs["admin_id"] = zs["admin_id"].fillna("(none)")
    w = zs["area_km2"]
    g = zs.assign(**{f"_w_{c}": zs[c] * w for c in ("valid_obs_fraction", "ndvi_baseline", "ndvi_monitor", "fvc_monitor")}).groupby("admin_id")
    out = pd.DataFrame({"zones_total": g.size(), "zones_area_km2": g["area_km2"].sum()})
    for c in ("valid_obs_fraction", "ndvi_baseline", "ndvi_monitor", "fvc_monitor"):
        out[c] = (g[f"_w_{c}"].sum() / out["zones_area_km2"]).round(4)
    out["ndvi_change"] = (out["ndvi_monitor"] - out["ndvi_baseline"]).round(4)
    out["disturbed_area_m2"] = g["disturbed_area_m2"].sum().round(1)
    out["disturbed_fraction"] = (out["disturbed_area_m2"] / (out["zones_area_km2"] * 1e6)).round(6)
    for c in ["alerts_total", *[f"alerts_{t}" for t in DISTURBANCE_TYPES]]:
        out[c] = g[c].sum().astype(int)
    out["zones_with_alerts"] = g["alerts_total"].apply(lambda s: int((s > 0).sum()))
    out["zones_not_observed"] = g["status"].apply(lambda s: int((s == "not_observed").sum()))
    out = out.reset_index()
    if admin_units is not None:
        names = admin_units.set_index("admin_id")["admin_name"]
        out.insert(1, "admin_name", out["admin_id"].map(names))
        out.insert(2, "admin_area_km2", out["admin_id"].map((admin_units.set_index("admin_id").geometry.area / 1e6).round(4)))
    else:
        out.insert(1, "admin_name", None)
        out.insert(2, "admin_area_km2", np.nan)
    out["zones_area_km2"] = out["zones_area_km2"].round(4)
    return out
