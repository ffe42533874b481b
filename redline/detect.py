"""Per-pixel seasonal baseline and disturbance detection.

The model, per pixel and per index, is fitted on the clear observations of the baseline
window only:

    y(t) = a0 [+ b·t] + Σ_{k=1..K} (a_k cos 2πkt + b_k sin 2πkt)          t in years

(K = 2: annual + semi-annual terms; the harmonic form of BFAST Monitor, Verbesselt et al. 2012,
doi:10.1016/j.rse.2012.02.022, and of CCDC, Zhu & Woodcock 2014, doi:10.1016/j.rse.2014.01.011).
The residual spread is robust: σ = 1.4826 · MAD of the baseline residuals (the normal-consistent
MAD, Rousseeuw & Croux 1993), floored at :data:`SIGMA_FLOOR` so that very stable pixels do not
alert on sensor noise.

In the monitor window each clear observation gets a standardised residual z = (y − ŷ)/σ. An
observation is *anomalous* when z < −``z_threshold`` **and** the drop ŷ − y exceeds
:data:`MIN_DROP` of that index. The default threshold z = 4 was set on the real Slovenia
Sentinel-2 series (eo-learn TestEOPatch, 2015–2017): at z = 3 grassland mowing and late-season
dips left 3 false patches ≥ 5 000 m² in 1 km² in the snow-free 2017 season, at z = 4 none; on
the generated landscapes recall stays 10/10 at z = 4 (benchmarks/README.md). A pixel is *disturbed* when ``consecutive`` clear observations
in a row are anomalous (a single missed cloud edge or shadow never confirms; the GLAD and RADD
alerts confirm with repeated observations in the same spirit: Hansen et al. 2016,
doi:10.1088/1748-9326/11/3/034008; Reiche et al. 2021, doi:10.1088/1748-9326/abd0a8). The
disturbance date is the date of the first anomalous observation of the confirming run. A
confirmed anomaly is withdrawn when :data:`RECOVERY` clear observations in a row fall back on
the baseline (snow or flooding pass; a clearing or a mine does not recover within weeks), and
the search goes on — except a burn scar (a run of looks with dNBR ≥ :data:`BURN_DNBR`, a darker
surface and no wetting), which regrows within months and is still a fire; and one clear look
of a severe burn (:data:`SEVERE_DNBR`, ≥ 2 × the z threshold) confirms alone, because under
monsoon cloud a burn can green up before a second clear look.

MNDWI drops are only considered on pixels that were water in the baseline (mean MNDWI > 0,
Xu 2006, doi:10.1080/01431160600589179), so that water or wetland loss is caught while land
pixels are judged on NDVI and NBR. NBR catches burns of senesced or sparse vegetation whose
NDVI barely moves (Key & Benson 2006, USGS RMRS-GTR-164-CD); because NBR's SWIR band is 20 m,
an NBR anomaly counts only where the 10 m NDVI also falls (by more than one σ and by
:data:`NBR_NDVI_SUPPORT`), so patch outlines keep the 10 m detail (tuned on the generated
landscapes, tune seed).

Everything here is lazy: :func:`detect` builds a Dask graph with ``xarray.apply_ufunc``; the
numeric kernel runs per spatial chunk when the scan's writer computes.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "STACK_VARS",
    "FIELDS",
    "SIGMA_FLOOR",
    "MIN_DROP",
    "GROWING_SEASON_MONTHS",
    "stack_indices",
    "detect",
    "design_matrix",
    "decimal_year",
    "baseline_model",
]

#: Variables stacked for the detector: detection indices first, then those used for typing.
#: ALB is the mean reflectance of the six optical bands (a broadband brightness).
STACK_VARS = ("NDVI", "MNDWI", "NBR", "BI", "NDBI", "ALB")

#: Floor of the robust residual spread per index (index units). Sentinel-2 L2A NDVI of stable
#: dense vegetation varies by ~0.01–0.02 between clear dates from noise, residual atmosphere
#: and BRDF (e.g. Roy et al. 2017, doi:10.1016/j.rse.2017.06.019 for S2/Landsat BRDF effects);
#: 0.02 keeps z = 3 above that. Tuned on the generated landscapes (tune set, seed 20230101).
SIGMA_FLOOR = {"NDVI": 0.02, "MNDWI": 0.03, "NBR": 0.02, "BI": 0.02, "NDBI": 0.02, "ALB": 0.01}

#: Smallest drop (ŷ − y, index units) that can count as anomalous: a forest thinning or a
#: drought dip smaller than this is not a red-line disturbance. 0.10 NDVI is the lower bound of
#: the change classes used for clearing detection in many NDVI-differencing studies (e.g. Lyon
#: et al. 1998, PE&RS 64(2)); MNDWI 0.2 (water → wet soil); NBR 0.1 is the "unburned/low"
#: dNBR boundary of Key & Benson 2006 (USGS RMRS-GTR-164-CD).
MIN_DROP = {"NDVI": 0.10, "MNDWI": 0.20, "NBR": 0.10}

#: NDVI drop (index units) that must accompany an NBR anomaly (about 2σ of clear-sky NDVI noise
#: of dense vegetation; tuned on the generated landscapes, tune seed 20230101).
NBR_NDVI_SUPPORT = 0.03

#: Half-width (days of year) of the seasonal support an anomaly needs: the baseline must have
#: seen the pixel clear within this many days of the same day of year. A harmonic model fitted
#: without winter looks extrapolates wildly into winter (seen on the real Slovenia series).
SEASON_SUPPORT_DAYS = 45.0

#: Normal clear observations in a row after which a confirmed anomaly is withdrawn as transient
#: (snow, flooding, haze): three clear looks (≥ 30 days at a 10-day revisit) back on the seasonal
#: baseline. In the spirit of the RADD/GLAD alerts, whose unconfirmed alerts expire (Reiche et
#: al. 2021); tuned on the real Slovenia series (snow) and the generated landscapes.
RECOVERY = 3

#: dNBR (NBR drop) of at least moderate-low burn severity (Key & Benson 2006, USGS
#: RMRS-GTR-164-CD, FIREMON Landscape Assessment: 0.27). A confirmed run whose looks mostly show
#: it, with a darker surface (char: broadband albedo below the model) and no wetting (MNDWI not
#: above the model: not a flood), is a burn scar and is not withdrawn when vegetation regrows —
#: regrowth within months is what burns do, and the fire still happened.
BURN_DNBR = 0.27
#: dNBR of moderate-high burn severity (Key & Benson 2006: 0.44). One clear look with a burn
#: signature this severe, at least twice the z threshold below the model, confirms alone: under
#: monsoon cloud a burn can green up before a second clear look (GLAD alerts likewise raise a
#: single-look alert when the change is strong, Hansen et al. 2016). A missed cloud edge or haze
#: brightens and a shadow keeps NBR (a band ratio), so neither passes these four tests.
SEVERE_DNBR = 0.44

#: Growing season for the NDVI composites of the assessment (April–October, the main
#: vegetation period of subtropical Sichuan; HJ 1171-2021 uses the growing-season mean).
GROWING_SEASON_MONTHS = (4, 5, 6, 7, 8, 9, 10)

_EPOCH = np.datetime64("1970-01-01", "D")


def _field_names() -> tuple[str, ...]:
    base = (
        "n_base_clear",
        "n_mon_clear",
        "last_clear",
        "disturbed",
        "first_date",
        "last_observed",
        "n_confirm",
        "magnitude",
        "zscore",
        "trigger",
        "ndvi_base_gs",
        "ndvi_mon_gs",
        "sigma_ndvi",
        "burn",
    )
    pre = tuple(f"pre_{v}" for v in STACK_VARS)
    post = tuple(f"post_{v}" for v in STACK_VARS)
    return base + pre + post


#: Per-pixel output fields of :func:`detect` (dates are days since 1970-01-01; NaN = none).
FIELDS = _field_names()


def decimal_year(times: np.ndarray) -> np.ndarray:
    """Decimal years (float64) of datetime64 values, e.g. 2023-07-02 → 2023.5."""
    t = pd.DatetimeIndex(times)
    start = pd.DatetimeIndex([f"{y}-01-01" for y in t.year])
    length = np.where(t.is_leap_year, 366.0, 365.0)
    return t.year.values + ((t - start).total_seconds().values / 86400.0) / length


def design_matrix(t: np.ndarray, harmonics: int = 2, trend: bool = False, t0: float = 0.0) -> np.ndarray:
    """Columns [1, (t − t0), cos 2πkt, sin 2πkt …] for k = 1..``harmonics``; shape (T, P)."""
    cols = [np.ones_like(t)]
    if trend:
        cols.append(t - t0)
    for k in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * k * t), np.sin(2 * np.pi * k * t)]
    return np.stack(cols, axis=1)


def stack_indices(indices: xr.Dataset, reflectance: xr.Dataset) -> xr.DataArray:
    """Stack the detector's variables into one (var, time, y, x) float32 array, NaN = unclear.

    ``indices`` must hold NDVI, MNDWI, NBR, BI and NDBI (masked); ``reflectance`` the six optical
    bands (masked), from which ALB (mean reflectance) is derived.
    """
    alb = sum(reflectance[b] for b in ("blue", "green", "red", "nir", "swir16", "swir22")) / 6.0
    parts = [indices[v] for v in STACK_VARS[:-1]] + [alb.astype("float32").rename("ALB")]
    return xr.concat(parts, dim=pd.Index(list(STACK_VARS), name="var"))


@contextmanager
def _quiet():
    """Silence numpy's all-NaN-slice warnings: all-NaN rows are expected (never-clear pixels)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


#: Pixels per batch inside a chunk, to bound the kernel's float64 temporaries (~100 MB).
_BATCH = 4096


def _kernel(block: np.ndarray, **kw) -> np.ndarray:
    """Numpy kernel on one chunk: block (y, x, var, time) → (y, x, field) float32."""
    ny, nx, nv, nt = block.shape
    flat = block.reshape(ny * nx, nv, nt)
    out = np.empty((ny * nx, len(FIELDS)), dtype="float32")
    for s in range(0, flat.shape[0], _BATCH):
        out[s : s + _BATCH] = _pixels(flat[s : s + _BATCH], **kw)
    return out.reshape(ny, nx, -1)


def _nanmedian_last(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are NaN), keepdims.

    The same values as ``np.nanmedian`` but by one sort (NaN sort last) and the counts, several
    times faster on the kernel's (pixels, var, time) batches than numpy's masked-array path."""
    s = np.sort(a, axis=-1)
    n = np.isfinite(a).sum(axis=-1, keepdims=True)
    lo = np.take_along_axis(s, np.clip((n - 1) // 2, 0, None), axis=-1)
    hi = np.take_along_axis(s, np.clip(n // 2, 0, None), axis=-1)
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``values`` where ``mask`` (broadcast), NaN where none: the
    same as ``np.nanmean`` on finite masked values, without its copies."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, values, 0.0).sum(axis=-1) / mask.sum(axis=-1)


def _robust_sigma(resid: np.ndarray) -> np.ndarray:
    """1.4826 · MAD over the last axis, ignoring NaN."""
    med = _nanmedian_last(resid)
    return 1.4826 * _nanmedian_last(np.abs(resid - med))[..., 0]


def _pixels(
    block: np.ndarray,
    *,
    t: np.ndarray,
    days: np.ndarray,
    months: np.ndarray,
    doys: np.ndarray,
    in_base: np.ndarray,
    in_mon: np.ndarray,
    det_vars: tuple[int, ...],
    z_threshold: float,
    consecutive: int,
    harmonics: int,
    trend: bool,
    min_obs: int,
) -> np.ndarray:
    """The kernel on a batch of pixels: (n, var, time) → (n, field) float32."""
    n, nv, nt = block.shape
    Y = block.astype("float64")
    out = np.full((n, len(FIELDS)), np.nan, dtype="float32")
    F = {name: i for i, name in enumerate(FIELDS)}
    clear = np.isfinite(Y).all(axis=1)  # (n, T)
    W = clear & in_base[None, :]
    Wm = clear & in_mon[None, :]
    out[:, F["n_base_clear"]] = W.sum(1)
    out[:, F["n_mon_clear"]] = Wm.sum(1)
    last_idx = np.where(Wm.any(1), nt - 1 - np.argmax(Wm[:, ::-1], axis=1), -1)
    out[:, F["last_clear"]] = np.where(last_idx >= 0, days[np.clip(last_idx, 0, None)], np.nan)
    gs = np.isin(months, GROWING_SEASON_MONTHS)
    ndvi = Y[:, 0, :]
    with _quiet():
        out[:, F["ndvi_base_gs"]] = _masked_mean(ndvi, W & gs)
        out[:, F["ndvi_mon_gs"]] = _masked_mean(ndvi, Wm & gs)

    ok = W.sum(1) >= min_obs
    out[:, F["disturbed"]] = 0.0
    if not ok.any():
        return out
    Yk, Wk, Wmk = Y[ok], W[ok], Wm[ok]
    X = design_matrix(t, harmonics, trend, t0=float(t[in_base].mean()) if in_base.any() else 0.0)
    P = X.shape[1]
    Y0 = np.where(Wk[:, None, :], Yk, 0.0)
    # weighted least squares per pixel, as BLAS products: A = Σ_t w_t x_t x_tᵀ (one per pixel,
    # shared by its variables), B = Σ_t w_t y_t x_t, then one solve per pixel for all variables
    XX = (X[:, :, None] * X[:, None, :]).reshape(len(X), P * P)
    A = (Wk.astype("float64") @ XX).reshape(-1, P, P) + 1e-6 * np.eye(P)
    m_, v_ = Yk.shape[:2]
    B = (Y0.reshape(m_ * v_, nt) @ X).reshape(m_, v_, P)  # one GEMM, not n small ones
    beta = np.linalg.solve(A, B.transpose(0, 2, 1)).transpose(0, 2, 1)  # (n, V, P)
    pred = (beta.reshape(m_ * v_, P) @ X.T).reshape(m_, v_, nt)
    resid = Yk - pred
    # the robust spread is needed only for the detection indices and NDVI (the NBR support test);
    # the typing variables use the model's prediction, not their z-scores
    need = sorted({*det_vars, 0})
    sigma = np.full(resid.shape[:2], np.nan)
    with _quiet():
        base_t = np.flatnonzero(in_base)  # the spread of the baseline's residuals only
        sigma[:, need] = _robust_sigma(np.where(Wk[:, None, base_t], resid[:, need][:, :, base_t], np.nan))  # (n, V)
    floors = np.array([SIGMA_FLOOR[v] for v in STACK_VARS])
    sigma = np.maximum(np.nan_to_num(sigma, nan=0.0), floors[None, :])
    # z-scores and drops only of the variables tested (the detection indices and NDVI)
    z = {v: resid[:, v, :] / sigma[:, v, None] for v in need}
    drop = {v: -resid[:, v, :] for v in need}

    anom = np.zeros(Wmk.shape, dtype=bool)
    for v in det_vars:
        name = STACK_VARS[v]
        a = (z[v] < -z_threshold) & (drop[v] >= MIN_DROP[name])
        if name == "MNDWI":
            a &= (_masked_mean(Yk[:, v, :], Wk) > 0.0)[:, None]  # baseline water only
        if name == "NBR":
            # NBR uses the 20 m SWIR band, whose footprint bleeds a pixel beyond a 10 m change:
            # count it only where the 10 m NDVI also falls: by more than one σ and 0.03.
            a &= (z[0] < -1.0) & (drop[0] >= NBR_NDVI_SUPPORT)
        anom |= a
    anom &= Wmk
    # the seasonal model is trusted only where it was fitted: a clear baseline look within
    # SEASON_SUPPORT_DAYS of the same day of year (no extrapolation into unseen seasons)
    gap = np.abs(doys[:, None] - doys[None, :])  # (T, T) days of year apart
    near = (np.minimum(gap, 365.25 - gap) <= SEASON_SUPPORT_DAYS).astype("float32")
    anom &= (Wk.astype("float32") @ near) > 0  # any clear baseline look near each date's doy

    # confirmation: `consecutive` anomalous clear observations in a row (unclear ones skipped);
    # withdrawal: RECOVERY normal clear observations in a row after confirmation (snow, floods,
    # a missed haze episode pass; a clearing, a mine or a burn scar does not recover in weeks).
    # burns: a run of mostly burn-like looks is not withdrawn; one severe burn look confirms alone
    m = Yk.shape[0]
    iN, iM, iA = (STACK_VARS.index(v) for v in ("NBR", "MNDWI", "ALB"))
    burn_look = (-resid[:, iN, :] >= BURN_DNBR) & (resid[:, iA, :] < 0) & (resid[:, iM, :] <= 0)  # (n, T)
    severe = burn_look & (-resid[:, iN, :] >= SEVERE_DNBR) & (resid[:, iN, :] < -2 * z_threshold * sigma[:, iN, None])
    run = np.zeros(m, dtype=np.int32)
    burn_run = np.zeros(m, dtype=np.int32)  # burn-like looks in the current run
    burn = np.zeros(m, dtype=bool)  # the confirmed run was a burn (never withdrawn)
    normal_run = np.zeros(m, dtype=np.int32)
    run_start = np.full(m, -1, dtype=np.int64)
    first = np.full(m, -1, dtype=np.int64)
    for ti in np.flatnonzero(in_mon):
        c = Wmk[:, ti]
        a = anom[:, ti]
        pending = first < 0
        start_now = pending & a & (run == 0)
        run_start[start_now] = ti
        run = np.where(pending & c & a, run + 1, np.where(pending & c & ~a, 0, run))
        burn_run = np.where(pending & c & a, burn_run + burn_look[:, ti], np.where(pending & c & ~a, 0, burn_run))
        confirmed = pending & ((run >= consecutive) | (c & a & severe[:, ti]))
        first[confirmed] = run_start[confirmed]
        burn[confirmed] = 2 * burn_run[confirmed] >= run[confirmed]
        held = ~pending
        normal_run = np.where(held & c & ~a, normal_run + 1, np.where(held & c & a, 0, normal_run))
        recovered = held & (normal_run >= RECOVERY) & ~burn
        first[recovered] = -1
        run[recovered] = 0
        burn_run[recovered] = 0
        normal_run[recovered] = 0

    dist = first >= 0
    res = out[ok]
    res[:, F["disturbed"]] = dist.astype("float32")
    res[:, F["sigma_ndvi"]] = sigma[:, 0]
    res[:, F["burn"]] = (dist & burn).astype("float32")  # 1: confirmed by a burn signature
    if dist.any():
        ti = np.arange(nt)[None, :]
        after = (ti >= first[:, None]) & dist[:, None]
        conf = anom & after
        res[dist, F["first_date"]] = days[first[dist]]
        last_after = np.where(Wmk & after, ti, -1).max(1)
        res[dist, F["last_observed"]] = days[last_after[dist]]
        res[:, F["n_confirm"]] = np.where(dist, conf.sum(1), np.nan)
        # the triggering index: the detection variable with the largest mean z-drop
        det = np.array(det_vars)
        zmean = np.full((m, nv), np.nan)  # (m, V): mean z-drop and index drop of the confirming looks
        dmean = np.full((m, nv), np.nan)
        zmean[:, det] = _masked_mean(-np.stack([z[v] for v in det], 1), conf[:, None, :])
        dmean[:, det] = _masked_mean(np.stack([drop[v] for v in det], 1), conf[:, None, :])
        post = np.full((m, nv), np.nan)  # (m, V): median of the clear looks since the date
        with _quiet():
            post[dist] = _nanmedian_last(np.where((Wmk & after)[dist][:, None, :], Yk[dist], np.nan))[..., 0]
        zdet = np.where(np.isfinite(zmean[:, det]), zmean[:, det], -np.inf)
        trig = det[np.argmax(zdet, axis=1)]
        rows = np.arange(m)
        res[dist, F["trigger"]] = trig[dist]
        res[dist, F["zscore"]] = zmean[rows, trig][dist]
        res[dist, F["magnitude"]] = dmean[rows, trig][dist]
        fidx = np.clip(first, 0, None)
        pre = pred[rows, :, fidx]  # (m, V): the model's expectation on the disturbance date
        for vi, v in enumerate(STACK_VARS):
            res[dist, F[f"pre_{v}"]] = pre[dist, vi]
            res[dist, F[f"post_{v}"]] = post[dist, vi]
    out[ok] = res
    return out


def detect(
    stack: xr.DataArray,
    *,
    baseline: tuple[np.datetime64 | str, np.datetime64 | str],
    monitor: tuple[np.datetime64 | str, np.datetime64 | str],
    indices: tuple[str, ...] = ("NDVI", "MNDWI", "NBR"),
    z_threshold: float = 4.0,
    consecutive: int = 2,
    harmonics: int = 2,
    trend: bool = False,
    min_baseline_obs: int = 12,
) -> xr.Dataset:
    """Fit the seasonal baseline and monitor for disturbances, lazily.

    Parameters
    ----------
    stack
        (var, time, y, x) float32 from :func:`stack_indices`; NaN where not clear.
    baseline, monitor
        Inclusive (start, end) dates of the two windows.
    indices
        Detection indices (subset of NDVI, MNDWI, NBR).
    z_threshold, consecutive, harmonics, trend, min_baseline_obs
        See :class:`redline.config.DetectionConfig`.

    Returns
    -------
    xarray.Dataset
        One (y, x) float32 variable per name in :data:`FIELDS`; dates as days since 1970-01-01.
        Dask-backed: nothing is computed until the caller asks.
    """
    times = stack["time"].values.astype("datetime64[D]")
    b0, b1 = (np.datetime64(str(d)[:10], "D") for d in baseline)
    m0, m1 = (np.datetime64(str(d)[:10], "D") for d in monitor)
    in_base = (times >= b0) & (times <= b1)
    in_mon = (times >= m0) & (times <= m1)
    unknown = [i for i in indices if i not in MIN_DROP]
    if unknown:
        raise ValueError(f"detection index {unknown[0]} is not supported; use NDVI, MNDWI or NBR")
    stack = stack.chunk({"var": -1, "time": -1})
    result = xr.apply_ufunc(
        _kernel,
        stack,
        input_core_dims=[["var", "time"]],
        output_core_dims=[["field"]],
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"field": len(FIELDS)}},
        kwargs=dict(
            t=decimal_year(stack["time"].values),
            days=(times - _EPOCH).astype("float64"),
            months=pd.DatetimeIndex(stack["time"].values).month.values,
            doys=pd.DatetimeIndex(stack["time"].values).day_of_year.values.astype("float64"),
            in_base=in_base,
            in_mon=in_mon,
            det_vars=tuple(STACK_VARS.index(i) for i in indices),
            z_threshold=z_threshold,
            consecutive=consecutive,
            harmonics=harmonics,
            trend=trend,
            min_obs=min_baseline_obs,
        ),
    )
    result = result.assign_coords(field=list(FIELDS))
    return result.to_dataset(dim="field")


def baseline_model(
    times: np.ndarray,
    values: np.ndarray,
    in_base: np.ndarray,
    *,
    var: str = "NDVI",
    harmonics: int = 2,
    trend: bool = False,
    at: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The baseline model of one pixel, as :func:`detect` fits it: ŷ at ``at`` (default
    ``times``) and the floored robust σ. ``values`` NaN where not clear. For figures."""
    t = decimal_year(times)
    use = in_base & np.isfinite(values)
    t0 = float(t[in_base].mean()) if in_base.any() else 0.0
    X = design_matrix(t[use], harmonics, trend, t0=t0)
    beta, *_ = np.linalg.lstsq(X, values[use].astype("float64"), rcond=None)
    with _quiet():
        sigma = float(_robust_sigma((values[use] - X @ beta)[None, :])[0])
    sigma = max(sigma if np.isfinite(sigma) else 0.0, SIGMA_FLOOR[var])
    ta = decimal_year(at) if at is not None else t
    return design_matrix(ta, harmonics, trend, t0=t0) @ beta, sigma
