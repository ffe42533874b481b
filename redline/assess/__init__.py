"""Ecological-status assessment per zone and per administrative unit (生态状况调查与评估;
docs/architecture.md §1.3, §4.3): the statistics library the scan and ``redline assess``
(:mod:`redline.run.assessment`) write their tables with. The package holds the indices of
ecological status as well: :mod:`redline.assess.rsei` (remote-sensing ecological index),
:mod:`redline.assess.ei` (HJ 192-2015 EI per county) and :mod:`redline.assess.trends`
(Theil–Sen / Mann–Kendall of annual NDVI).

Zonal means are weighted by the exact fraction of each pixel covered by the polygon
(exactextract, Baston 2023, https://github.com/isciences/exactextract), not by centre-point
rasterising, so that small and thin zones are measured correctly. Admin-unit figures are taken
the same way over the union of the unit's zones, so they are the coverage-weighted aggregate of
the zones' pixels — not a mean of zone means.

Fractional vegetation cover uses the dimidiate pixel model
FVC = (NDVI − NDVI_soil) / (NDVI_veg − NDVI_soil), clipped to [0, 1] (Gutman & Ignatov 1998,
doi:10.1080/014311698215333; Carlson & Ripley 1997, doi:10.1016/S0034-4257(97)00104-1), with the
soil and vegetation end-members taken as the 5 % and 95 % cumulative quantiles of the period's
NDVI over the analysis grid, as is standard practice in China (李苗苗 等 2004, 资源科学 26(4):
153–159). The end-members used are written to ``assessment.json``.

The ecological index is RSEI (:mod:`redline.assess.rsei`), the trends Theil–Sen / Mann–Kendall
(:mod:`redline.assess.trends`).

Library functions here take arrays, rasters and frames and return frames; the writer
(:func:`write_assessment`) is called by the scan and by ``redline assess`` after their one
eager step.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from exactextract import exact_extract

from redline.assess import rsei as _rsei
from redline import outputs
from redline.assess import trends as _trends
from redline.cogs import COGS, CogSpec
from redline.tiles import Mosaic, Tile
from redline.vocabulary import DISTURBANCE_TYPES, STATUSES

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

    from redline.config import ScanConfig

__all__ = [
    "FVC_QUANTILES",
    "OBSERVED_MIN_FRACTION",
    "PERIODS",
    "fvc",
    "lazy_inputs",
    "last_clear_of",
    "resumed_inputs",
    "zonal_means",
    "grade_shares",
    "annual_means",
    "zone_statistics",
    "admin_statistics",
    "write_inputs",
    "stream_quantiles",
    "fvc_end_members",
    "fvc_from",
    "write_assessment",
]

log = logging.getLogger(__name__)

#: Soil / vegetation end-member quantiles of NDVI for FVC (李苗苗 等 2004).
FVC_QUANTILES = (0.05, 0.95)
#: Below this share of the zone seen clear at least once in the monitor window, the zone's
#: status is ``not_observed``: "no alert" must not be read as "no change".
OBSERVED_MIN_FRACTION = 0.5
#: The two assessment periods, named as in the config.
PERIODS = ("baseline", "monitor")
#: Rasters whose zonal mean is a §7 column or an extension (output stem = column name).
_MEAN_COLUMNS = (
    "observed", "monitored", "ndvi_baseline", "ndvi_monitor", "fvc_baseline", "fvc_monitor", "rsei_baseline", "rsei_monitor",
)
_GRADE_KEYS = [key for key, _ in _rsei.GRADES.values()]
#: exactextract's processing order for the zonal statistics: "raster-sequential" reads each
#: raster block once for all the polygons over it, where "feature-sequential" (its default) reads
#: the blocks under each polygon in turn, again for each neighbour; same values (exactextract's
#: documentation, ``exact_extract(strategy=…)``), ×4–8 faster with 4,000 small zones
#: (benchmarks/README.md §10)
EXACT_STRATEGY = "raster-sequential"


#: Histogram bins of the streaming quantile's second pass (only the bins holding the wanted
#: ranks are kept in the third pass, so memory is bounded by a bin, not by the region).
_QUANTILE_BINS = 1 << 16


def stream_quantiles(blocks: Callable[[], Iterable[np.ndarray]], qs: tuple[float, ...]) -> list[float]:
    """Exact quantiles (numpy's default "linear" method) of the finite values of all ``blocks``
    in three streaming passes (range; histogram of :data:`_QUANTILE_BINS` bins; the values of
    the bins holding the wanted ranks), so a region's quantiles need one block in memory.
    ``blocks`` returns a fresh iterable of arrays on each call. NaN when there is no value."""
    n, lo, hi, dtype = 0, np.inf, -np.inf, np.dtype("float64")
    for b in blocks():
        f = b[np.isfinite(b)]
        dtype = b.dtype
        if f.size:
            n, lo, hi = n + f.size, min(lo, float(f.min())), max(hi, float(f.max()))
    if n == 0:
        return [float("nan")] * len(qs)
    if hi == lo:
        return [lo] * len(qs)

    def bins(f: np.ndarray) -> np.ndarray:
        return np.clip(((f.astype("float64") - lo) / (hi - lo) * _QUANTILE_BINS).astype("int64"), 0, _QUANTILE_BINS - 1)

    counts = np.zeros(_QUANTILE_BINS, dtype="int64")
    for b in blocks():
        counts += np.bincount(bins(b[np.isfinite(b)]), minlength=_QUANTILE_BINS)
    cum = np.cumsum(counts)
    pos = [q * (n - 1) for q in qs]
    ranks = sorted({int(np.floor(x)) for x in pos} | {int(np.ceil(x)) for x in pos})
    where = {k: int(np.searchsorted(cum, k, side="right")) for k in ranks}  # the bin holding the k-th value
    kept: dict[int, list[np.ndarray]] = {b: [] for b in set(where.values())}
    for b in blocks():
        f = b[np.isfinite(b)]
        fb = bins(f)
        for k in kept:
            kept[k].append(f[fb == k])
    sorted_bins = {k: np.sort(np.concatenate(v)) for k, v in kept.items()}

    def kth(k: int) -> np.ndarray:
        b = where[k]
        return sorted_bins[b][k - (cum[b] - counts[b])]

    # numpy's own interpolation between the two neighbouring order statistics
    return [float(np.quantile(np.array([kth(int(np.floor(x))), kth(int(np.ceil(x)))], dtype=dtype), x - np.floor(x))) for x in pos]


def land_ndvi(mosaic: Mosaic, period: str, blocks: list[Any], stem: str | None = None) -> Callable[[], Iterable[np.ndarray]]:
    """Blocks of ``period``'s growing-season NDVI (``stem``, default the assessment input) on
    land inside the zones, NaN elsewhere: the pixels FVC's end-members are fitted on. Water
    (period-mean MNDWI > 0, Xu 2006, as RSEI masks it) is left out: its NDVI is not a soil's."""
    name = stem or f"in_NDVI_{period}"

    def gen() -> Iterable[np.ndarray]:
        for w in blocks:
            land = mosaic.inside(w) & ~(np.nan_to_num(mosaic.read(f"in_MNDWI_{period}", w), nan=-1.0) > _rsei.WATER_MNDWI)
            yield np.where(land, mosaic.read(name, w), np.nan)

    return gen


def fvc_end_members(blocks: Callable[[], Iterable[np.ndarray]]) -> tuple[float, float]:
    """NDVI soil and vegetation end-members (:data:`FVC_QUANTILES` of the finite NDVI)."""
    soil, veg = stream_quantiles(blocks, FVC_QUANTILES)
    return soil, veg


def fvc_from(ndvi: np.ndarray, soil: float, veg: float) -> np.ndarray:
    """FVC (0–1, float32; NaN where NDVI is) with given end-members (Gutman & Ignatov 1998)."""
    if not np.isfinite(soil):
        return np.full(ndvi.shape, np.nan, "float32")
    out = np.clip((ndvi - soil) / max(veg - soil, 1e-6), 0.0, 1.0)
    return np.where(np.isfinite(ndvi), out, np.nan).astype("float32")


def fvc(ndvi: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Fractional vegetation cover (0–1) from NDVI, with the end-members used (soil, veg)."""
    soil, veg = fvc_end_members(lambda: [ndvi])
    return fvc_from(ndvi, soil, veg), soil, veg


def _sensor(cfg: ScanConfig) -> str:
    return "landsat-oli" if any("landsat" in c.lower() for c in cfg.stac.collections) else "sentinel-2"


def lazy_inputs(cfg: ScanConfig, refl: xr.Dataset) -> xr.Dataset:
    """The assessment's per-pixel inputs as one lazy Dataset: the RSEI indicators and clear
    counts of both periods (:func:`redline.assess.rsei.period_inputs`) and the annual growing-season
    NDVI over the whole window (``ndvi_annual``, dims year, y, x). Nothing is computed."""
    windows = {p: (str(getattr(cfg, p).start), str(getattr(cfg, p).end)) for p in PERIODS}
    ds = _rsei.period_inputs(refl, windows, sensor=_sensor(cfg))
    ndvi = _clear_ndvi(refl.sel(time=slice(str(cfg.baseline.start), str(cfg.monitor.end))))
    ds["ndvi_annual"] = _trends.annual_growing_season_ndvi(ndvi)
    ds["last_clear"] = last_clear_day(ndvi)
    return ds


def resumed_inputs(cfg: ScanConfig, stock: xr.Dataset, pre: xr.Dataset) -> xr.Dataset:
    """:func:`lazy_inputs` of a rescan that starts from a state (:mod:`redline.run.state`): the
    monitor period's inputs, the annual NDVI of the later years and the last clear day from
    ``stock`` (the masked reflectance of every look from the state's first kept day on, which
    holds the whole monitor window and the whole of each year it touches), the baseline
    period's, the earlier years' annual NDVI and their last clear day from ``pre`` (as stored:
    ``<name>_baseline``, ``ndvi_annual`` (year, y, x), ``last_clear``). The same values as
    :func:`lazy_inputs` over every look. Lazy."""
    window = (str(cfg.monitor.start), str(cfg.monitor.end))
    ds = _rsei.period_inputs(stock, {"monitor": window}, sensor=_sensor(cfg))
    for k in pre.data_vars:
        if str(k).endswith("_baseline"):
            ds[k] = pre[k]
    ndvi = _clear_ndvi(stock.sel(time=slice(None, str(cfg.monitor.end))))
    ds["ndvi_annual"] = xr.concat([pre["ndvi_annual"].astype("float32"), _trends.annual_growing_season_ndvi(ndvi)], dim="year")
    ds["last_clear"] = np.fmax(pre["last_clear"], last_clear_day(ndvi)).astype("float32")
    return ds


def _clear_ndvi(refl: xr.Dataset) -> xr.DataArray:
    import indices

    return indices.compute_indices(refl[["red", "nir"]], ["NDVI"])["NDVI"]


def last_clear_of(refl: xr.Dataset) -> xr.DataArray:
    """:func:`last_clear_day` of the looks of ``refl`` (masked reflectance, NaN where not clear),
    clear where their NDVI is, as :func:`lazy_inputs` counts them. Lazy."""
    return last_clear_day(_clear_ndvi(refl))


def last_clear_day(da: xr.DataArray) -> xr.DataArray:
    """Per pixel, the day of the last clear observation of ``da`` (NaN where not clear), as
    days since 1970-01-01 (float32; exact for whole days), NaN where never clear. Lazy."""
    if da.sizes.get("time", 0) == 0:
        return xr.full_like(da.sum("time"), np.nan, dtype="float32")
    days = ((da["time"] - np.datetime64("1970-01-01", "ns")) / np.timedelta64(1, "D")).astype("float64")
    # −∞ where not clear rather than NaN: numpy's nanmax warns on every pixel never seen clear
    # (from Dask's worker threads, where a warning filter is not thread-safe); the same days
    last = xr.where(da.notnull(), np.floor(days), -np.inf).max("time")
    return last.where(np.isfinite(last)).astype("float32")


# --------------------------------------------------------------------------- zonal statistics


def zonal_means(rasters: dict[str, Path], polys: gpd.GeoDataFrame, key: str) -> pd.DataFrame:
    """Coverage-weighted means of single-band rasters per polygon: columns ``key`` + raster names.

    Pixels at the raster's nodata (NaN) are left out of both the sum and the weights.
    """
    names = list(rasters)
    stats = exact_extract([str(rasters[n]) for n in names], polys[[key, "geometry"]], ["mean"], include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    if len(names) == 1:
        return stats.rename(columns={"mean": names[0]})
    return stats.rename(columns={f"{Path(rasters[n]).stem}_mean": n for n in names})


def grade_shares(grade_raster: Path, polys: gpd.GeoDataFrame, key: str, prefix: str) -> pd.DataFrame:
    """Area share (0–1, coverage-weighted) of each RSEI grade among the graded pixels of each
    polygon: columns ``{prefix}_share_{poor…excellent}``; 0 where a grade is absent."""
    stats = exact_extract(str(grade_raster), polys[[key, "geometry"]], ["unique", "frac"], include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    rows = []
    for r in stats.itertuples(index=False):
        shares = dict(zip(np.asarray(r.unique, dtype=int).tolist(), np.asarray(r.frac, dtype=float).tolist()))
        rows.append({key: getattr(r, key), **{f"{prefix}_share_{k}": round(shares.get(code, 0.0), 4) for code, (k, _) in _rsei.GRADES.items()}})
    return pd.DataFrame(rows, columns=[key, *[f"{prefix}_share_{k}" for k in _GRADE_KEYS]])


def annual_means(annual_raster: Path, polys: gpd.GeoDataFrame, key: str) -> pd.DataFrame:
    """Long table ``key, year, ndvi_gs`` of coverage-weighted zonal means of a multi-band raster
    whose band descriptions are the years."""
    import rasterio

    with rasterio.open(annual_raster) as src:
        years = [int(d) for d in src.descriptions]
    stats = exact_extract(str(annual_raster), polys[[key, "geometry"]], ["mean"], include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    if len(years) == 1:
        stats = stats.rename(columns={"mean": "band_1_mean"})
    long = stats.melt(id_vars=[key], value_vars=[f"band_{i + 1}_mean" for i in range(len(years))], var_name="band", value_name="ndvi_gs")
    long["year"] = long["band"].str.split("_").str[1].astype(int).map(lambda b: years[b - 1])
    long["ndvi_gs"] = long["ndvi_gs"].astype(float).round(4)
    return long[[key, "year", "ndvi_gs"]].sort_values([key, "year"]).reset_index(drop=True)


def _alert_columns(frame: pd.DataFrame, key: str, alerts: gpd.GeoDataFrame | pd.DataFrame, area_m2: pd.Series) -> pd.DataFrame:
    """Disturbed area and fraction, alert counts by type and by review status, per ``key``."""
    a = pd.DataFrame(alerts.drop(columns="geometry", errors="ignore"))
    out = frame
    if a.empty or key not in a:
        a = pd.DataFrame({key: pd.Series(dtype=str), "area_m2": pd.Series(dtype=float), "disturbance_type": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
    area = a.groupby(key)["area_m2"].sum()
    out["disturbed_area_m2"] = out[key].map(area).fillna(0.0).astype(float).round(1)
    out["disturbed_fraction"] = (out["disturbed_area_m2"] / area_m2.replace(0, np.nan)).fillna(0.0).round(6)
    out["alerts_total"] = out[key].map(a.groupby(key).size()).fillna(0).astype(int)
    for col, values, prefix in (("disturbance_type", DISTURBANCE_TYPES, "alerts_"), ("status", STATUSES, "alerts_status_")):
        counts = a.groupby([key, col]).size().unstack(fill_value=0) if col in a and not a.empty else pd.DataFrame()
        for v in values:
            series = counts[v] if v in counts.columns else pd.Series(dtype=int)
            out[f"{prefix}{v}"] = out[key].map(series).fillna(0).astype(int)
    return out


def _assessment_columns(polys: gpd.GeoDataFrame, key: str, rasters: dict[str, Path]) -> pd.DataFrame:
    """Means, changes, grades, grade shares and trends of the assessment rasters per polygon."""
    means = zonal_means({k: rasters[k] for k in _MEAN_COLUMNS if k in rasters}, polys, key)
    out = polys[[key]].merge(means, on=key, how="left")
    out = out.rename(columns={"observed": "valid_obs_fraction", "monitored": "monitored_fraction"})
    out["ndvi_change"] = out["ndvi_monitor"] - out["ndvi_baseline"]
    if "fvc_baseline" in out:
        out["fvc_change"] = out["fvc_monitor"] - out["fvc_baseline"]
    if "rsei_baseline" in out:
        out["rsei_change"] = out["rsei_monitor"] - out["rsei_baseline"]
        for p in PERIODS:
            codes = _rsei.grade(out[f"rsei_{p}"].to_numpy(dtype="float64"))
            out[f"rsei_grade_{p}"] = [_rsei.GRADES[c][1] if c else None for c in codes]
    for c in out.columns:
        if c != key and out[c].dtype.kind == "f":
            out[c] = out[c].astype(float).round(4)
    for p in PERIODS:
        if f"rsei_grade_{p}" in rasters:
            out = out.merge(grade_shares(rasters[f"rsei_grade_{p}"], polys, key, f"rsei_{p}"), on=key, how="left")
    if "ndvi_annual" in rasters:
        out = out.merge(_trends.unit_trends(annual_means(rasters["ndvi_annual"], polys, key), key), on=key, how="left")
    return out


_EPOCH = dt.date(1970, 1, 1)
#: Observability columns of zone_stats.csv / admin_stats.csv (:func:`observability_columns`).
OBSERVABILITY_COLUMNS = ("clear_obs_monitor", "clear_obs_baseline", "last_clear_date", "last_clear_age_days", "unsupported_fraction",
                         "unsupported_months")
#: A month is listed in ``unsupported_months`` when at least this share of the polygon's area had
#: a clear monitor look in it that the baseline could not judge.
UNSUPPORTED_MONTH_SHARE = 0.5


def observability_columns(polys: gpd.GeoDataFrame, key: str, rasters: dict[str, Path], *, window_end: dt.date | None) -> pd.DataFrame:
    """How well each polygon could be seen, so that "no alert" is never read as "no change".

    ``clear_obs_monitor`` / ``clear_obs_baseline``: the median over the polygon's pixels
    (coverage-weighted, exactextract) of the number of clear observations in the window;
    ``last_clear_date``: the median over the pixels of the date of their last clear observation
    (baseline start to monitor end), i.e. half of the polygon was seen clear on or after it;
    ``last_clear_age_days``: days from it to ``window_end`` (the monitor end). NaN/None where
    the rasters (``nclear_monitor``, ``nclear_baseline``, ``last_clear``) are absent or empty.
    """
    have = [k for k in ("nclear_monitor", "nclear_baseline", "last_clear") if k in rasters]
    out = polys[[key]].copy()
    if not have:
        out = out.assign(clear_obs_monitor=np.nan, clear_obs_baseline=np.nan, last_clear_date=np.nan, last_clear_age_days=np.nan)
        return out.merge(support_columns(polys, key, rasters), on=key, how="left")[[key, *OBSERVABILITY_COLUMNS]]
    stats = exact_extract([str(rasters[k]) for k in have], polys[[key, "geometry"]], ["median"], include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    stats = stats.rename(columns={"median": f"{have[0]}_median"} if len(have) == 1 else {f"{Path(rasters[k]).stem}_median": f"{k}_median" for k in have})
    out = out.merge(stats, on=key, how="left")
    for col, k in (("clear_obs_monitor", "nclear_monitor"), ("clear_obs_baseline", "nclear_baseline")):
        out[col] = out[f"{k}_median"].astype(float).round(1) if f"{k}_median" in out else np.nan
    day = out["last_clear_median"].astype(float) if "last_clear_median" in out else pd.Series(np.nan, index=out.index)
    day = np.floor(day)
    out["last_clear_date"] = [(_EPOCH + dt.timedelta(days=int(d))).isoformat() if np.isfinite(d) else None for d in day]
    age = (window_end - _EPOCH).days - day if window_end is not None else pd.Series(np.nan, index=out.index)
    out["last_clear_age_days"] = pd.array([int(a) if np.isfinite(a) else None for a in age], dtype="Int64")
    out = out.merge(support_columns(polys, key, rasters), on=key, how="left")
    return out[[key, *OBSERVABILITY_COLUMNS]]


def support_columns(polys: gpd.GeoDataFrame, key: str, rasters: dict[str, Path]) -> pd.DataFrame:
    """Which monitor looks the detector's baseline could not judge (:mod:`redline.detect`: no
    clear baseline look on both sides of their day of year): ``unsupported_fraction``, the share of
    the polygon's clear monitor looks (coverage-weighted sums of ``n_unsupported_monitor`` over
    ``nclear_monitor``), and ``unsupported_months``, the months (``"10,11,12"``) in which at
    least :data:`UNSUPPORTED_MONTH_SHARE` of its area had such a look. NaN/None without the
    detection rasters (``redline assess`` alone)."""
    out = polys[[key]].copy()
    if not all(k in rasters for k in ("n_unsupported_monitor", "nclear_monitor", "unsupported_months")):
        return out.assign(unsupported_fraction=np.nan, unsupported_months=None)
    sums = exact_extract([str(rasters["n_unsupported_monitor"]), str(rasters["nclear_monitor"])], polys[[key, "geometry"]], ["sum"],
                         include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    unsup, clear = sums["n_unsupported_monitor_sum"].astype(float), sums["nclear_monitor_sum"].astype(float)
    sums["unsupported_fraction"] = np.where(clear > 0, (unsup / clear.where(clear > 0)).round(3), np.nan)
    bits = exact_extract(str(rasters["unsupported_months"]), polys[[key, "geometry"]], ["unique", "frac"], include_cols=[key], output="pandas", strategy=EXACT_STRATEGY)
    months = []
    for r in bits.itertuples(index=False):
        share = np.zeros(12)
        for value, frac in zip(np.asarray(r.unique, dtype=int).tolist(), np.asarray(r.frac, dtype=float).tolist()):
            share += frac * np.array([(value >> m) & 1 for m in range(12)])
        listed = [str(m + 1) for m in range(12) if share[m] >= UNSUPPORTED_MONTH_SHARE]
        months.append({key: getattr(r, key), "unsupported_months": ",".join(listed)})
    out = out.merge(sums[[key, "unsupported_fraction"]], on=key, how="left")
    return out.merge(pd.DataFrame(months, columns=[key, "unsupported_months"]), on=key, how="left")

_ZONE_HEAD = ["zone_id", "zone_name", "category", "admin_id", "area_km2", "valid_obs_fraction", "ndvi_baseline", "ndvi_monitor",
              "ndvi_change", "fvc_monitor", "disturbed_area_m2", "disturbed_fraction", "alerts_total", *[f"alerts_{t}" for t in DISTURBANCE_TYPES], "status",
              "tier", *OBSERVABILITY_COLUMNS]


def _ordered(frame: pd.DataFrame, head: list[str]) -> pd.DataFrame:
    return frame[[c for c in head if c in frame] + [c for c in frame.columns if c not in head]]


def zone_statistics(
    zones: gpd.GeoDataFrame, rasters: dict[str, Path], alerts: gpd.GeoDataFrame, *, rsei_variant: str | None = None, window_end: dt.date | None = None
) -> pd.DataFrame:
    """One row per zone: the columns of the README's outputs table, then the extensions of the assessment.

    Parameters
    ----------
    zones
        Zones in the rasters' metric CRS (``zone_id, zone_name, category, admin_id``).
    rasters
        GeoTIFFs on the analysis grid. Required: ``ndvi_baseline``, ``ndvi_monitor``,
        ``fvc_monitor`` (float32, NaN = no data) and ``observed`` (1 where the pixel had ≥ 1
        clear observation in the monitor window, else 0). Optional extensions: ``fvc_baseline``,
        ``monitored`` (1 where the baseline had enough clear observations for the detector),
        ``rsei_baseline``, ``rsei_monitor`` (0–1), ``rsei_grade_baseline``,
        ``rsei_grade_monitor`` (uint8 grade codes 1–5, 0 = none) and ``ndvi_annual`` (one band
        per year, band descriptions = years).
    alerts
        Alerts (any CRS) with ``zone_id``, ``area_m2``, ``disturbance_type``, ``status``.
    rsei_variant
        The RSEI variant line (:attr:`redline.assess.rsei.RseiResult.variant`), repeated per row.
    window_end
        End of the monitor window: the age of the last clear view is counted from it.

    Returns
    -------
    pandas.DataFrame
        §7 columns first (``zone_id … alerts_by_type…, status``), ``tier`` (管控分区 code,
        when the zones carry one), the observability columns of :func:`observability_columns`,
        then ``monitored_fraction,
        fvc_baseline, fvc_change, rsei_{baseline,monitor,change}, rsei_grade_{period}`` (差 …
        优 of the zone mean), ``rsei_{period}_share_{poor…excellent}`` (area share of each
        grade among the zone's graded pixels), ``alerts_status_{status}``, the NDVI trend
        columns of :func:`redline.assess.trends.unit_trends`, ``rsei_variant``. Areas in km² and m²
        in the zones' metric CRS.
    """
    out = zones[["zone_id", "zone_name", "category", "admin_id"]].copy()
    if "tier" in zones and zones["tier"].notna().any():
        out.insert(4, "tier", zones["tier"].values)
    out["area_km2"] = (zones.geometry.area / 1e6).round(6).values  # 1 m²: zones smaller than a pixel keep their area
    out = out.merge(_assessment_columns(zones, "zone_id", rasters), on="zone_id", how="left")
    out = out.merge(observability_columns(zones, "zone_id", rasters, window_end=window_end), on="zone_id", how="left")
    out = _alert_columns(out, "zone_id", alerts, out["area_km2"] * 1e6)
    out["status"] = np.select(
        [out["valid_obs_fraction"].fillna(0) < OBSERVED_MIN_FRACTION, out["alerts_total"] > 0],
        ["not_observed", "alerts"],
        default="no_alert",
    )
    if rsei_variant is not None:
        out["rsei_variant"] = rsei_variant
    return _ordered(out, _ZONE_HEAD)


def admin_statistics(
    zone_stats: pd.DataFrame,
    admin_units: gpd.GeoDataFrame | None,
    *,
    zones: gpd.GeoDataFrame,
    rasters: dict[str, Path],
    alerts: gpd.GeoDataFrame,
    rsei_variant: str | None = None,
    window_end: dt.date | None = None,
) -> pd.DataFrame:
    """One row per admin unit (``admin_id`` of the zones; ``(none)`` for zones without one).

    Means, grade shares and annual NDVI are measured with exactextract over the union of the
    unit's zones (``zones``, in the rasters' CRS), so each figure is the coverage-weighted
    aggregate of the zones' pixels (overlapping zones count once), not a mean of zone means.
    Areas and alert counts are sums over the zones; ``zones_total``, ``zones_with_alerts`` and
    ``zones_not_observed`` count zones. ``admin_area_km2`` is the unit's own area when
    ``admin_units`` (same CRS) is given. The observability columns
    (:func:`observability_columns`) are measured over the union of the unit's zones too. When
    the zones carry a ``tier``, alert counts and areas are split by tier:
    ``alerts_tier_{tier}``, ``disturbed_area_m2_tier_{tier}`` and ``zones_area_km2_tier_{tier}``
    for each tier present (codes of :data:`aoi.ZONE_TIERS`).
    """
    z = zones[["admin_id", "geometry"]].copy()
    z["admin_id"] = z["admin_id"].fillna("(none)").astype(str)
    units = z.dissolve(by="admin_id").reset_index()
    zs = zone_stats.copy()
    zs["admin_id"] = zs["admin_id"].fillna("(none)").astype(str)
    g = zs.groupby("admin_id")
    out = pd.DataFrame({"admin_id": units["admin_id"]})
    out["zones_total"] = out["admin_id"].map(g.size()).astype(int)
    out["zones_area_km2"] = (units.geometry.area / 1e6).round(4).values
    out = out.merge(_assessment_columns(units, "admin_id", rasters), on="admin_id", how="left")
    a = pd.DataFrame(alerts.drop(columns="geometry", errors="ignore")).copy()
    if not a.empty:
        admin_of = zs.set_index("zone_id")["admin_id"]
        a["admin_id"] = a["zone_id"].map(admin_of).fillna("(none)")
    out = _alert_columns(out, "admin_id", a, out["zones_area_km2"] * 1e6)
    out = out.merge(observability_columns(units, "admin_id", rasters, window_end=window_end), on="admin_id", how="left")
    out = _tier_columns(out, zones, a)
    out["zones_with_alerts"] = out["admin_id"].map(g["alerts_total"].apply(lambda s: int((s > 0).sum()))).fillna(0).astype(int)
    out["zones_not_observed"] = out["admin_id"].map(g["status"].apply(lambda s: int((s == "not_observed").sum()))).fillna(0).astype(int)
    if admin_units is not None:
        ua = admin_units.set_index("admin_id")
        out.insert(1, "admin_name", out["admin_id"].map(ua["admin_name"]))
        out.insert(2, "admin_area_km2", out["admin_id"].map((ua.geometry.area / 1e6).round(4)))
    else:
        out.insert(1, "admin_name", None)
        out.insert(2, "admin_area_km2", np.nan)
    if rsei_variant is not None:
        out["rsei_variant"] = rsei_variant
    head = ["admin_id", "admin_name", "admin_area_km2", "zones_total", "zones_area_km2", "valid_obs_fraction", "ndvi_baseline",
            "ndvi_monitor", "fvc_monitor", "ndvi_change", "disturbed_area_m2", "disturbed_fraction", "alerts_total",
            *[f"alerts_{t}" for t in DISTURBANCE_TYPES], "zones_with_alerts", "zones_not_observed"]
    return _ordered(out, head)


def _tier_columns(out: pd.DataFrame, zones: gpd.GeoDataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    """Per-tier alert counts, disturbed areas (m²) and zone areas (km²) per admin unit; the
    frame unchanged when the zones carry no tier."""
    if "tier" not in zones or not zones["tier"].notna().any():
        return out
    from aoi import ZONE_TIERS

    tier_of = dict(zip(zones["zone_id"], zones["tier"]))
    z = zones.assign(admin_id=zones["admin_id"].fillna("(none)").astype(str))
    a = alerts.assign(tier=alerts["zone_id"].map(tier_of)) if not alerts.empty else pd.DataFrame(columns=["admin_id", "tier", "area_m2"])
    for t in [t for t in ZONE_TIERS if t in set(zones["tier"].dropna())]:
        sel = a[a["tier"] == t]
        out[f"alerts_tier_{t}"] = out["admin_id"].map(sel.groupby("admin_id").size()).fillna(0).astype(int)
        out[f"disturbed_area_m2_tier_{t}"] = out["admin_id"].map(sel.groupby("admin_id")["area_m2"].sum()).fillna(0.0).astype(float).round(1)
        zt = z[z["tier"] == t]
        area = (zt.dissolve(by="admin_id").geometry.area / 1e6) if not zt.empty else pd.Series(dtype=float)
        out[f"zones_area_km2_tier_{t}"] = out["admin_id"].map(area).fillna(0.0).astype(float).round(4)
    return out


# --------------------------------------------------------------------------- the writer


def _grade_legend(colours: dict[str, str]) -> tuple[tuple[str, ...], dict[int, tuple[int, int, int, int]]]:
    """Category names of the RSEI grade codes 0 (none) … 5 (``差 poor`` …) and their RGBA
    colours from ``colours`` (grade key → ``#rrggbb``; code 0 transparent)."""
    names = ("无 none", *(f"{zh} {key}" for key, zh in _rsei.GRADES.values()))
    rgba = {0: (0, 0, 0, 0)}
    for code, (key, _) in _rsei.GRADES.items():
        hexa = colours[key].lstrip("#")
        rgba[code] = (int(hexa[0:2], 16), int(hexa[2:4], 16), int(hexa[4:6], 16), 255)
    return names, rgba


def _assessment_rasters(out: Path, mosaic: Mosaic, years: list[int], *, basic: bool, min_baseline_obs: int,
                        grade_colours: dict[str, str]) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the assessment COGs from the inputs written tile by tile into ``mosaic`` (stems
    ``in_<variable>`` of :func:`lazy_inputs`); return paths and what was used. Each COG has the
    type, no-data and metadata of its :data:`redline.cogs.COGS` spec; grades carry the colours
    ``grade_colours`` (grade key → ``#rrggbb``) and the grade names.

    Per-pixel outputs are derived block by block. The region-wide parameters — FVC's NDVI
    end-members and RSEI's normalisation and PC1 — are fitted in streaming passes over the
    pixels inside the zones (the study area: the same pixels whatever the tiling), so no
    output needs the region in memory. RSEI outside the zones (the tiles' margins) is clipped
    to [0, 1]."""
    rdir = out / outputs.RASTERS_DIR
    paths: dict[str, Path] = {}
    info: dict[str, Any] = {"fvc_end_members": {}, "fvc_quantiles": list(FVC_QUANTILES),
                            "fvc_fitted_over": f"land pixels inside the zones (period-mean MNDWI ≤ {_rsei.WATER_MNDWI})"}
    blocks = list(mosaic.blocks())

    def read(stem: str, w: Any, band: int = 1) -> np.ndarray:
        return mosaic.read(f"in_{stem}", w, band).astype("float32")

    def derive(stem: str, fn: Callable[[Any], np.ndarray], spec: CogSpec | None = None) -> None:
        spec = spec or COGS[stem]
        for w in blocks:
            mosaic.put_window(stem, w, spec.encode(fn(w)), nodata=spec.kind.nodata, description=spec.description)
        paths[stem] = mosaic.to_cog(stem, rdir / f"{stem}.tif", spec)

    def copy(stem_in: str, stem: str) -> None:  # float32 inputs kept as they are
        paths[stem] = mosaic.to_cog(f"in_{stem_in}", rdir / f"{stem}.tif", COGS[stem])

    for p in PERIODS:
        soil, veg = fvc_end_members(land_ndvi(mosaic, p, blocks))
        info["fvc_end_members"][p] = {"ndvi_soil": round(soil, 4), "ndvi_veg": round(veg, 4)}
        if basic or p == "baseline":
            derive(f"fvc_{p}", lambda w, p=p, soil=soil, veg=veg: fvc_from(read(f"NDVI_{p}", w), soil, veg),
                   COGS[f"fvc_{p}"].described(f"fractional vegetation cover of the {p} window (0-1), NDVI soil {soil:.3f} / veg {veg:.3f}"))
        if basic:
            copy(f"NDVI_{p}", f"ndvi_{p}")

    def at_least(stem: str, k: int) -> Callable[[Any], np.ndarray]:
        def fn(w: Any) -> np.ndarray:
            n = read(stem, w)
            return np.where(np.isfinite(n), (n >= k).astype("float32"), np.nan).astype("float32")
        return fn

    if basic:
        derive("observed", at_least("nclear_monitor", 1))
    for p in PERIODS:
        derive(f"nclear_{p}", lambda w, p=p: read(f"nclear_{p}", w))
    if "in_last_clear" in mosaic.meta:
        derive("last_clear", lambda w: read("last_clear", w))
    derive("monitored", at_least("nclear_baseline", min_baseline_obs),
           COGS["monitored"].described(f"1 if the baseline window had at least {min_baseline_obs} clear observations (enough for the detector)"))
    names = tuple(n for n in _rsei.COMPONENTS if all(f"in_{n}_{p}" in mosaic.meta for p in PERIODS))

    def fit_blocks() -> Iterable[tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]]:
        for w in blocks:
            inside = mosaic.inside(w)
            yield ({p: {n: np.where(inside, read(f"{n}_{p}", w), np.nan) for n in names} for p in PERIODS},
                   {p: read(f"MNDWI_{p}", w) for p in PERIODS})

    fit = _rsei.fit_rsei(fit_blocks, list(PERIODS), names, pooled=True)
    variant = _rsei.RseiResult(rsei={}, components=fit.names, loadings=fit.loadings, pc1_share=fit.pc1_share, pooled=True, note=fit.note).variant

    def rsei_of(p: str, w: Any) -> np.ndarray:
        r = _rsei.apply_rsei(fit, p, {n: read(f"{n}_{p}", w) for n in fit.names}, read(f"MNDWI_{p}", w))
        return np.clip(r, 0.0, 1.0)

    legend = _grade_legend(grade_colours)
    for p in PERIODS:  # RSEI once per block; grades and change read it back from the mosaic
        derive(f"rsei_{p}", lambda w, p=p: rsei_of(p, w), COGS[f"rsei_{p}"].described(f"{variant}; {p} window; 0 (worst) – 1 (best); water masked"))
        derive(f"rsei_grade_{p}", lambda w, p=p: _rsei.grade(mosaic.read(f"rsei_{p}", w)), COGS[f"rsei_grade_{p}"].with_legend(*legend))
    derive("rsei_change", lambda w: (mosaic.read("rsei_monitor", w) - mosaic.read("rsei_baseline", w)).astype("float32"))
    if years:
        paths["ndvi_annual"] = mosaic.to_cog("in_ndvi_annual", rdir / "ndvi_annual.tif", COGS["ndvi_annual"])
    info["rsei"] = {"variant": variant, "components": list(fit.names), "loadings_pc1": fit.loadings, "pc1_variance_share": fit.pc1_share,
                    "pooled": True, "grades": {str(c): {"key": k, "name": n} for c, (k, n) in _rsei.GRADES.items()},
                    "grade_edges": list(_rsei.GRADE_EDGES), "water_mask": f"period-mean MNDWI > {_rsei.WATER_MNDWI}",
                    "fitted_over": "pixels inside the zones"}
    return paths, info


def write_inputs(mosaic: Mosaic, tile: Tile, ds: xr.Dataset) -> list[int]:
    """Write one tile's computed :func:`lazy_inputs` into ``mosaic`` (stems ``in_<variable>``,
    float32, NaN = none); returns the years of ``ndvi_annual``."""
    years = [int(y) for y in ds["year"].values] if "year" in ds.dims else []
    for k in ds.data_vars:
        da = ds[k]
        if "year" in da.dims:
            if years:
                mosaic.put(f"in_{k}", tile, da.transpose("year", "y", "x").values.astype("float32"), nodata=np.nan,
                           description="growing-season mean NDVI per calendar year (band description = year)",
                           band_descriptions=[str(y) for y in years])
            continue
        mosaic.put(f"in_{k}", tile, da.values.astype("float32"), nodata=np.nan, description=str(da.attrs.get("description", k)))
    return years


def _with_ei(admin_stats: pd.DataFrame, cfg: ScanConfig, admin_utm: gpd.GeoDataFrame | None, zones_utm: gpd.GeoDataFrame,
             paths: dict[str, Path], info: dict[str, Any]) -> pd.DataFrame:
    """``admin_stats`` with the HJ 192-2015 EI columns (:mod:`redline.assess.ei`), measured over each
    county's own polygon (``admin_units``), or over the union of its zones when no admin units
    are given; the method and coefficients go to ``assessment.json`` (``info``)."""
    from redline.assess import ei as _ei

    rivers, table = _ei.check_inputs(cfg.assess)
    if admin_utm is not None:
        units, basis = admin_utm[["admin_id", "geometry"]], "county polygons (admin_units)"
    else:
        z = zones_utm.assign(admin_id=zones_utm["admin_id"].fillna("(none)").astype(str))
        units, basis = z.dissolve(by="admin_id").reset_index()[["admin_id", "geometry"]], "union of the zones of each admin_id (no admin_units given)"
    res = _ei.county_ei(units, "admin_id", land_cover=cfg.assess.land_cover, classes=dict(cfg.assess.land_cover_classes),
                        ndvi=paths["ndvi_monitor"], rivers=rivers, table=table)
    info["ei"] = {"standard": "HJ 192-2015 生态环境状况评价技术规范", "units": basis, "ndvi": "growing-season mean NDVI of the monitor window",
                  "coefficients": {"A_bio": _ei.A_BIO, "A_veg": _ei.A_VEG, "A_riv": _ei.A_RIV, "A_lak": _ei.A_LAK, "A_res": _ei.A_RES, "A_ero": _ei.A_ERO},
                  "weights": _ei.EI_WEIGHTS, "land_cover": str(cfg.assess.land_cover), "classes": {str(k): v for k, v in cfg.assess.land_cover_classes.items()},
                  "rivers": str(cfg.assess.rivers) if cfg.assess.rivers else None, "county_table": str(cfg.assess.county_table) if cfg.assess.county_table else None}
    return admin_stats.merge(res, on="admin_id", how="left")


def write_assessment(
    out: Path,
    *,
    cfg: ScanConfig,
    zones: gpd.GeoDataFrame,
    admin: gpd.GeoDataFrame | None,
    utm: Any,
    geobox: GeoBox,
    inputs: Mosaic,
    years: list[int],
    alerts: gpd.GeoDataFrame,
    rasters: dict[str, Path] | None = None,
    attrs: dict[str, Any] | None = None,
    figure_failed: Callable[[Exception], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the assessment: rasters, ``zone_stats.csv``, ``admin_stats.csv``, ``assessment.gpkg``
    (layers ``zone_stats``, ``admin_stats`` with geometry in EPSG:4326, ``ndvi_annual`` as a
    table), ``assessment.json`` (methods and parameters) and the figures in ``figures/``.
    ``figure_failed``: called with the error when the figures cannot be written (an unwritable
    ``figures/``), the rest written all the same (the scan lists it as a failure); None: raised.

    ``inputs`` holds the computed variables of :func:`lazy_inputs`, written tile by tile
    (:func:`write_inputs`); ``rasters`` the scan's
    own rasters (``ndvi_baseline``, ``ndvi_monitor``, ``fvc_monitor``, ``observed``): when None
    (``redline assess``), they are written here from ``inputs``.
    """
    import maps

    basic = rasters is None
    paths, info = _assessment_rasters(out, inputs, years, basic=basic, min_baseline_obs=cfg.detection.min_baseline_obs,
                                      grade_colours=maps.GRADE_COLOURS)
    if not basic:
        paths = {**{k: rasters[k] for k in ("ndvi_baseline", "ndvi_monitor", "fvc_monitor", "observed")},
                 **{k: rasters[k] for k in ("n_unsupported_monitor", "unsupported_months") if k in rasters}, **paths}
    info["wetness"] = {"coefficients": (attrs or {}).get("wetness_coefficients"), "reference": (attrs or {}).get("wetness_reference")}
    variant = info["rsei"]["variant"] + f"; tasselled-cap wetness {info['wetness']['coefficients']} ({info['wetness']['reference']})"
    zones_utm = zones.to_crs(utm)
    zone_stats = zone_statistics(zones_utm, paths, alerts, rsei_variant=variant, window_end=cfg.monitor.end)
    admin_utm = admin.to_crs(utm) if admin is not None else None
    admin_stats = admin_statistics(zone_stats, admin_utm, zones=zones_utm, rasters=paths, alerts=alerts, rsei_variant=variant, window_end=cfg.monitor.end)
    if cfg.assess.land_cover is not None:
        admin_stats = _with_ei(admin_stats, cfg, admin_utm, zones_utm, paths, info)
    zone_stats.to_csv(out / outputs.ZONE_STATS_CSV, index=False, encoding="utf-8")
    admin_stats.to_csv(out / outputs.ADMIN_STATS_CSV, index=False, encoding="utf-8")

    gpkg = out / outputs.ASSESSMENT_GPKG
    gpkg.unlink(missing_ok=True)
    zgeo = zones[["zone_id", "geometry"]].to_crs(4326).merge(zone_stats, on="zone_id")
    zgeo.to_file(gpkg, layer="zone_stats", driver="GPKG")
    units = zones_utm.assign(admin_id=zones_utm["admin_id"].fillna("(none)").astype(str)).dissolve(by="admin_id").reset_index()[["admin_id", "geometry"]]
    ageo = units.merge(admin_stats, on="admin_id").to_crs(4326)
    ageo.to_file(gpkg, layer="admin_stats", driver="GPKG")
    annual = pd.DataFrame(columns=["unit_type", "unit_id", "year", "ndvi_gs"])
    if "ndvi_annual" in paths:
        za = annual_means(paths["ndvi_annual"], zones_utm, "zone_id").rename(columns={"zone_id": "unit_id"}).assign(unit_type="zone")
        aa = annual_means(paths["ndvi_annual"], units, "admin_id").rename(columns={"admin_id": "unit_id"}).assign(unit_type="admin")
        annual = pd.concat([za, aa], ignore_index=True)[["unit_type", "unit_id", "year", "ndvi_gs"]]
    import pyogrio

    pyogrio.write_dataframe(annual, gpkg, layer="ndvi_annual", driver="GPKG")
    annual.to_csv(out / outputs.NDVI_ANNUAL_CSV, index=False, encoding="utf-8")

    figs = out / outputs.FIGURES_DIR
    try:
        maps.render_grade_shares(figs / "rsei_grades_by_zone.png", zone_stats, periods=PERIODS, title=info["rsei"]["variant"])
        adm = annual[annual["unit_type"] == "admin"].rename(columns={"unit_id": "admin_id"})
        names = admin_stats.set_index("admin_id")["admin_name"].to_dict()
        maps.render_trends(figs / "ndvi_trends_by_county.png", adm, names=names, trends=admin_stats.set_index("admin_id"))
        zon = annual[annual["unit_type"] == "zone"].rename(columns={"unit_id": "admin_id"})  # same lines, one per zone
        maps.render_trends(figs / "ndvi_trends_by_zone.png", zon, trends=zone_stats.set_index("zone_id").rename_axis("admin_id"),
                           title="annual growing-season NDVI per red-line zone")
    except (OSError, ValueError, RuntimeError) as exc:
        if figure_failed is None:
            raise
        figure_failed(exc)
    info["trends"] = {"years": years, "min_years": _trends.MIN_YEARS, "alpha": _trends.ALPHA,
                      "method": "Theil–Sen slope (scipy.stats.theilslopes), Mann–Kendall via Kendall's tau (scipy.stats.kendalltau)"}
    info["growing_season_months"] = list(_rsei.GROWING_SEASON_MONTHS)
    (out / outputs.ASSESSMENT_JSON).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return zone_stats, admin_stats


