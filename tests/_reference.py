"""Brute-force references for the tests: pixel coverage fractions by supersampling, and the
detector's per-pixel kernel as it was before it moved to a compiled per-pixel loop (numpy,
vectorised over a batch of pixels: ``reference_kernel``), to check the new kernel field by field.
The seasonal-support rule (clear baseline looks bracketing a look's day of year; issue #20) was
added to both, each written its own way."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
from affine import Affine
from rasterio import features

from redline.detect import (
    BURN_DNBR,
    FIELDS,
    GROWING_SEASON_MONTHS,
    LASTING_DAYS,
    MIN_DROP,
    NBR_NDVI_SUPPORT,
    PROVISIONAL_Z_FACTOR,
    RECOVERY,
    SEASON_SUPPORT_DAYS,
    SEVERE_DNBR,
    PRIOR_DOF,
    PRIOR_SIGMA,
    SIGMA_FLOOR,
    STACK_VARS,
    WEAK_LASTING_DAYS,
    WEAK_SHARE,
    WEAK_Z_FACTOR,
    design_matrix,
)


@contextmanager
def _quiet():
    """Silence numpy's all-NaN-slice warnings: all-NaN rows are expected (never-clear pixels)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def coverage_fractions(geom, transform: Affine, shape: tuple[int, int], k: int = 25) -> np.ndarray:
    """Fraction (0–1) of each pixel of a (rows, cols) grid covered by ``geom``, estimated by
    splitting every pixel into k × k sub-pixels and counting those whose centre is inside."""
    rows, cols = shape
    out = np.zeros(shape, dtype="float64")
    w, s, e, n = geom.bounds
    inv = ~transform
    ca, ra = inv * (w, n)
    cb, rb = inv * (e, s)
    r0, c0 = max(int(np.floor(min(ra, rb))), 0), max(int(np.floor(min(ca, cb))), 0)
    r1, c1 = min(int(np.ceil(max(ra, rb))), rows), min(int(np.ceil(max(ca, cb))), cols)
    h, wd = r1 - r0, c1 - c0
    if h <= 0 or wd <= 0:
        return out
    x0, y0 = transform * (c0, r0)
    fine = Affine(transform.a / k, 0.0, x0, 0.0, transform.e / k, y0)
    burned = features.rasterize([(geom, 1)], out_shape=(h * k, wd * k), transform=fine, fill=0, dtype="uint8")
    out[r0:r1, c0:c1] = burned.reshape(h, k, wd, k).mean(axis=(1, 3))
    return out


def weighted_mean(values: np.ndarray, cover: np.ndarray) -> float:
    """Σ c·v / Σ c over the pixels where ``values`` is finite."""
    ok = np.isfinite(values) & (cover > 0)
    return float((values[ok] * cover[ok]).sum() / cover[ok].sum())


# --- the detector kernel as of commit 1d4e426 (numpy, batch-vectorised), kept verbatim ---

#: Pixels per batch inside a chunk, to bound the kernel's float64 temporaries (~100 MB).
_BATCH = 4096


def reference_kernel(block: np.ndarray, **kw) -> np.ndarray:
    """The numpy kernel of redline.detect before the compiled loop (commit 1d4e426), with the
    lasting and weak rules added since (LASTING_DAYS, WEAK_Z_FACTOR, WEAK_LASTING_DAYS, WEAK_SHARE), written
    independently in numpy: block (y, x, var, time) → (y, x, field) float32."""
    ny, nx, nv, nt = block.shape
    flat = block.reshape(ny * nx, nv, nt)
    out = np.empty((ny * nx, len(FIELDS)), dtype="float32")
    for s in range(0, flat.shape[0], _BATCH):
        out[s : s + _BATCH] = _pixels(flat[s : s + _BATCH], **kw)
    return out.reshape(ny, nx, -1)


def nanmedian_last(a: np.ndarray) -> np.ndarray:
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
    med = nanmedian_last(resid)
    return 1.4826 * nanmedian_last(np.abs(resid - med))[..., 0]


def _pixels(
    block: np.ndarray,
    *,
    t: np.ndarray,
    days: np.ndarray,
    months: np.ndarray,
    support: object,
    in_base: np.ndarray,
    in_mon: np.ndarray,
    det_vars: tuple[int, ...],
    z_threshold: float,
    consecutive: int,
    harmonics: int,
    trend: bool,
    min_obs: int,
    present: tuple[bool, ...] | None = None,
) -> np.ndarray:
    """The kernel on a batch of pixels: (n, var, time) → (n, field) float32. ``present``: the
    variables a clear look must have (default all; redline.detect.detect's ``present``)."""
    n, nv, nt = block.shape
    Y = block.astype("float64")
    out = np.full((n, len(FIELDS)), np.nan, dtype="float32")
    F = {name: i for i, name in enumerate(FIELDS)}
    use = np.ones(nv, dtype=bool) if present is None else np.asarray(present, dtype=bool)
    clear = np.isfinite(Y[:, use]).all(axis=1)  # (n, T)
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
    out[:, F["n_mon_unsupported"]] = Wm.sum(1)  # pixels not monitored: no look judged
    month_bits = (2 ** (np.asarray(months) - 1)).astype(np.int64)  # (T,) each date's month bit
    out[:, F["unsupported_months"]] = np.bitwise_or.reduce(np.where(Wm, month_bits[None, :], 0), axis=1)
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
    need = sorted({*det_vars, 0, STACK_VARS.index("NBR")})
    sigma = np.full(resid.shape[:2], np.nan)
    with _quiet():
        base_t = np.flatnonzero(in_base)  # the spread of the baseline's residuals only
        sigma[:, need] = _robust_sigma(np.where(Wk[:, None, base_t], resid[:, need][:, :, base_t], np.nan))  # (n, V)
    floors = np.array([SIGMA_FLOOR[v] for v in STACK_VARS])
    # short series: the prior spread weighted by the residual degrees of freedom (Smyth 2004)
    dof = np.maximum(Wk.sum(1) - P, 0)
    prior = np.array([PRIOR_SIGMA[v] for v in STACK_VARS])[None, :] * np.sqrt(PRIOR_DOF / (PRIOR_DOF + dof))[:, None]
    sigma = np.maximum(np.maximum(np.nan_to_num(sigma, nan=0.0), floors[None, :]), prior)
    # z-scores and drops only of the variables tested (the detection indices and NDVI)
    z = {v: resid[:, v, :] / sigma[:, v, None] for v in need}
    drop = {v: -resid[:, v, :] for v in need}

    # seasonal support of each date: clear baseline looks on or before and on or after its day of
    # year within SEASON_SUPPORT_DAYS (signed circular differences, any baseline year)
    m = Yk.shape[0]
    base_t = np.flatnonzero(in_base)
    # the compiled kernel's `support` is ignored: days of year are derived here from `days`
    dates = np.datetime64("1970-01-01", "D") + days.astype("int64").astype("timedelta64[D]")
    doys = (dates - dates.astype("datetime64[Y]").astype("datetime64[D]")).astype("int64").astype("float64") + 1
    delta = (doys[base_t][:, None] - doys[None, :] + 182.625) % 365.25 - 182.625  # (B, T)
    near = np.abs(delta) <= SEASON_SUPPORT_DAYS
    Wb = Wk[:, base_t].astype("float32")
    supported = ((Wb @ (near & (delta <= 0)).astype("float32")) > 0) & ((Wb @ (near & (delta >= 0)).astype("float32")) > 0)  # (m, T)

    # anomalies: below the model (z, minimum drop; MNDWI on baseline water only; NBR only where
    # the 10 m NDVI also falls by more than one σ and NBR_NDVI_SUPPORT, as its 20 m SWIR bleeds a
    # pixel beyond a 10 m change)
    iN, iM, iA = (STACK_VARS.index(v) for v in ("NBR", "MNDWI", "ALB"))
    water = _masked_mean(Yk[:, iM, :], Wk) > 0.0
    anom = np.zeros(Wmk.shape, dtype=bool)
    anom_w = np.zeros(Wmk.shape, dtype=bool)
    z_weak = WEAK_Z_FACTOR * z_threshold
    for v in det_vars:
        name = STACK_VARS[v]
        okv = drop[v] >= MIN_DROP[name]
        if name == "MNDWI":
            okv &= water[:, None]
        if name == "NBR":
            okv &= (z[0] < -1.0) & (drop[0] >= NBR_NDVI_SUPPORT)
        anom |= okv & (z[v] < -z_threshold)
        anom_w |= okv & (z[v] < -z_weak)
    below = anom_w.copy()  # weakly below the model on some detection index

    # strong looks (provisional alerts; the only anomalies without seasonal support): two indices
    # agree, one at PROVISIONAL_Z_FACTOR × the threshold — NDVI and NBR on land, MNDWI on a
    # brighter surface on baseline water
    zs = PROVISIONAL_Z_FACTOR * z_threshold
    zV, zB = z[0], resid[:, iN, :] / sigma[:, iN, None]
    land = ((drop[0] >= MIN_DROP["NDVI"]) & (-resid[:, iN, :] >= MIN_DROP["NBR"]) & (zV < -z_threshold)
            & (zB < -z_threshold) & (np.minimum(zV, zB) < -zs))
    if iM in det_vars:
        wet = (water[:, None] & (-resid[:, iM, :] >= MIN_DROP["MNDWI"]) & (resid[:, iM, :] / sigma[:, iM, None] < -zs) & (resid[:, iA, :] > 0))
    else:
        wet = np.zeros_like(land)
    strong_look = below & (land | wet)
    # judged looks (Wj): supported; without support a strong look (an anomaly) or one not below
    # the model at all (a normal look); others skipped
    Wj = Wmk & (supported | strong_look | ~below)
    anom = Wmk & np.where(supported, anom, strong_look)
    anom_w = Wmk & np.where(supported, anom_w, strong_look)
    strong = anom & (land | wet)
    res_unsup = (Wmk & ~supported).sum(1)
    bits = (2 ** (np.asarray(months) - 1)).astype(np.int64)
    res_unsup_months = np.bitwise_or.reduce(np.where(Wmk & ~supported, bits[None, :], 0), axis=1)

    # confirmation: `consecutive` anomalous clear observations in a row (unclear ones skipped);
    # withdrawal: RECOVERY normal clear observations in a row after confirmation (snow, floods,
    # a missed haze episode pass; a clearing, a mine or a burn scar does not recover in weeks).
    # burns: a run of mostly burn-like looks is not withdrawn; one severe burn look confirms alone
    reached = Wmk & (supported | strong_look)  # looks whose burn signature is tested
    burn_look = reached & (-resid[:, iN, :] >= BURN_DNBR) & (resid[:, iA, :] < 0) & (resid[:, iM, :] <= 0)  # (n, T)
    severe = burn_look & (-resid[:, iN, :] >= SEVERE_DNBR) & (resid[:, iN, :] < -2 * z_threshold * sigma[:, iN, None])

    def confirm(an: np.ndarray, zt: float, st: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ndvi, resid0, sig0 = Yk[:, 0, :], resid[:, 0, :], sigma[:, 0]
        run = np.zeros(m, dtype=np.int32)
        strong_run = np.zeros(m, dtype=np.int32)  # strong looks in the current run
        burn_run = np.zeros(m, dtype=np.int32)  # burn-like looks in the current run
        burn = np.zeros(m, dtype=bool)  # the confirmed run was a burn (never withdrawn)
        normal_run = np.zeros(m, dtype=np.int32)
        run_start = np.full(m, -1, dtype=np.int64)
        first = np.full(m, -1, dtype=np.int64)
        last_anom = np.full(m, -1, dtype=np.int64)
        level = np.zeros(m)
        n_level = np.zeros(m)
        for ti in np.flatnonzero(in_mon):
            c = Wj[:, ti]
            a = an[:, ti]
            pending = first < 0
            start_now = pending & a & (run == 0)
            run_start[start_now] = ti
            level[start_now], n_level[start_now] = 0.0, 0.0
            run = np.where(pending & c & a, run + 1, np.where(pending & c & ~a, 0, run))
            burn_run = np.where(pending & c & a, burn_run + burn_look[:, ti], np.where(pending & c & ~a, 0, burn_run))
            if st is not None:
                strong_run = np.where(pending & c & a, strong_run + st[:, ti], np.where(pending & c & ~a, 0, strong_run))
            ca = c & a
            level = np.where(ca, level + np.nan_to_num(ndvi[:, ti]), level)
            n_level = np.where(ca, n_level + 1, n_level)
            last_anom = np.where(ca, ti, last_anom)
            confirmed = pending & ((run >= consecutive) | (ca & severe[:, ti]))
            first[confirmed] = run_start[confirmed]
            burn[confirmed] = 2 * burn_run[confirmed] >= run[confirmed]
            held = ~pending
            lasting = (days[np.clip(last_anom, 0, None)] - days[np.clip(first, 0, None)]) >= LASTING_DAYS
            with np.errstate(invalid="ignore"):
                telling = (ndvi[:, ti] - resid0[:, ti]) - level / np.maximum(n_level, 1) >= zt * sig0
            normal_run = np.where(held & c & ~a & (telling | ~lasting), normal_run + 1, np.where(held & ca, 0, normal_run))
            recovered = held & (normal_run >= RECOVERY) & ~burn
            first[recovered] = -1
            run[recovered] = 0
            strong_run[recovered] = 0
            burn_run[recovered] = 0
            normal_run[recovered] = 0
        # provisional: a run pending at the end whose every look is strong
        prov = (first < 0) & (run >= 1) & (strong_run == run)
        first[prov] = run_start[prov]
        burn[prov] = 2 * burn_run[prov] >= run[prov]
        span = np.where(first >= 0, days[np.clip(last_anom, 0, None)] - days[np.clip(first, 0, None)], 0.0)
        return first, burn, span

    first, burn, _ = confirm(anom, z_threshold, strong)
    first_w, _, span_w = confirm(anom_w, z_weak)
    # steady: of the clear looks since its date that could show it, WEAK_SHARE are weak anomalies
    tt = np.arange(nt)[None, :]
    after_w = (tt >= first_w[:, None]) & (first_w[:, None] >= 0) & Wj
    aw = anom_w & after_w
    level_w = np.where(aw, np.nan_to_num(Yk[:, 0, :]), 0.0).sum(1) / np.maximum(aw.sum(1), 1)
    with np.errstate(invalid="ignore"):
        could = after_w & ((Yk[:, 0, :] - resid[:, 0, :]) - level_w[:, None] >= z_weak * sigma[:, 0, None])
    steady = (anom_w & could).sum(1) >= WEAK_SHARE * could.sum(1)
    weak = (first < 0) & (first_w >= 0) & (span_w >= WEAK_LASTING_DAYS) & steady
    first = np.where(weak, first_w, first)
    burn &= ~weak
    anom = np.where(weak[:, None], anom_w, anom)

    dist = first >= 0
    res = out[ok]
    res[:, F["disturbed"]] = dist.astype("float32")
    res[:, F["sigma_ndvi"]] = sigma[:, 0]
    res[:, F["burn"]] = (dist & burn).astype("float32")  # 1: confirmed by a burn signature
    res[:, F["weak"]] = weak.astype("float32")
    res[:, F["n_mon_unsupported"]] = res_unsup
    res[:, F["unsupported_months"]] = res_unsup_months
    if dist.any():
        ti = np.arange(nt)[None, :]
        after = (ti >= first[:, None]) & dist[:, None]
        conf = anom & after
        res[dist, F["first_date"]] = days[first[dist]]
        # the last clear look judged normal before the date (the growth test of the type rule)
        last_normal = np.where(Wj & ~anom & (ti < first[:, None]), ti, -1).max(1)
        seen = dist & (last_normal >= 0)
        res[seen, F["last_normal"]] = days[last_normal[seen]]
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
            post[dist] = nanmedian_last(np.where((Wmk & after)[dist][:, None, :], Yk[dist], np.nan))[..., 0]
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
