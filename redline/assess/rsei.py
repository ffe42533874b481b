"""Remote-sensing ecological index (RSEI, 遥感生态指数; 徐涵秋 Xu Hanqiu 2013, 中国环境科学 33(5):
889–897) per assessment period.

Indicators, per pixel, as growing-season means of the clear observations of a period
(:data:`redline.detect.GROWING_SEASON_MONTHS`):

- greenness NDVI (Rouse et al. 1974);
- wetness: tasselled-cap wetness (:func:`indices.tasselled_cap_wetness`; Shi & Xu 2019 for the
  13 Sentinel-2 bands, Baig et al. 2014 for the six OLI(-equivalent) bands);
- dryness NDBSI = (SI + IBI) / 2 (:func:`indices.ndbsi`);
- heat: land-surface temperature, only when the loaded data carry a thermal variable ``lst``
  (Kelvin, e.g. Landsat Collection 2 ST_B10). Without it the three-component variant is used and
  the output says so (:attr:`RseiResult.variant`). PCA needs every indicator at every pixel
  (Xu 2013), so when the thermal band covers too few of the pixels the other three cover (a
  Sentinel-2 series with a few Landsat dates: LST exists only where a Landsat date was clear
  in the growing season), heat is left out rather than most of the zone left ungraded:
  :data:`LST_MIN_COVERAGE`, a redline choice, stated in the variant line.

Method (Xu 2013): water is masked (period-mean MNDWI > 0, Xu 2006, doi:10.1080/01431160600589179)
because it distorts wetness and the principal components; each indicator is min–max normalised
to [0, 1] over the valid pixels; the first principal component of the normalised indicators is
taken; its sign is fixed so that greenness and wetness load positively and dryness and heat
negatively (Xu 2013 writes RSEI₀ = 1 − PC1 for the same purpose), so that **higher always means
better**; RSEI is PC1 min–max normalised to [0, 1].

Periods: by default each period is normalised and decomposed on its own, as published
(``pooled=False``). With ``pooled=True`` the periods share one normalisation and one PC1 (the
pixels of all periods are stacked), so that RSEI values of different periods sit on one scale
and their difference is a change rather than a shift of scale; redline uses the pooled form
for the change between periods (see :func:`rsei_periods`).

Grades: five classes at 0.2 steps (Xu 2013 and the RSEI literature), named after the grades of
the Chinese ecological-status standard HJ 192-2015 (差 poor, 较差 fair, 一般 moderate, 良 good,
优 excellent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import xarray as xr

import indices
from redline.detect import GROWING_SEASON_MONTHS

__all__ = [
    "COMPONENTS",
    "DIRECTION",
    "GRADES",
    "GRADE_EDGES",
    "WATER_MNDWI",
    "LST_MIN_COVERAGE",
    "RseiResult",
    "period_inputs",
    "rsei",
    "rsei_periods",
    "fit_rsei",
    "apply_rsei",
    "RseiFit",
    "grade",
]

#: Indicator names in the order they enter the PCA.
COMPONENTS = ("NDVI", "WET", "NDBSI", "LST")
#: Direction of each indicator for ecological quality: + better when higher, − worse.
DIRECTION = {"NDVI": 1.0, "WET": 1.0, "NDBSI": -1.0, "LST": -1.0}
#: Grade code → (English key, Chinese name); codes 1–5 at RSEI 0.2 steps (Xu 2013; names HJ 192-2015).
GRADES = {1: ("poor", "差"), 2: ("fair", "较差"), 3: ("moderate", "一般"), 4: ("good", "良"), 5: ("excellent", "优")}
#: Upper edges of grades 1–4 (grade 5 is ≥ 0.8).
GRADE_EDGES = (0.2, 0.4, 0.6, 0.8)
#: Share of the pixels valid for NDVI, WET and NDBSI that must also have LST, in every period,
#: for the four-component RSEI (redline's choice: at most a tenth of a zone left ungraded).
LST_MIN_COVERAGE = 0.9
#: Period-mean MNDWI above which a pixel is water and left out of RSEI (Xu 2006 threshold 0).
WATER_MNDWI = 0.0


def _gs_mean(da: xr.DataArray, months: xr.DataArray) -> xr.DataArray:
    return da.where(months).mean("time", skipna=True)


def period_inputs(refl: xr.Dataset, windows: dict[str, tuple[str, str]], *, sensor: str = "sentinel-2") -> xr.Dataset:
    """The per-pixel RSEI and assessment inputs of each period, lazily.

    Parameters
    ----------
    refl
        Masked reflectance (0–1, NaN where not clear), dims ``(time, y, x)``, with the six bands
        ``blue … swir22``; an optional ``lst`` variable (land-surface temperature, Kelvin) adds
        the heat indicator.
    windows
        Period name → inclusive (start, end) ISO dates, e.g. ``{"baseline": (…), "monitor": (…)}``.
    sensor
        Tasselled-cap coefficient family (see :func:`indices.wetness_set_for`).

    Returns
    -------
    xarray.Dataset
        For each period ``p``: ``{NDVI,WET,NDBSI,MNDWI[,LST]}_{p}`` (growing-season means of the
        clear observations, float32) and ``nclear_{p}`` (clear observations in the whole
        window). Dask-backed; nothing is computed.
    """
    bands = [b for b in ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09", "swir16", "swir22") if b in refl]
    optical = refl[bands]
    per_obs = {
        "NDVI": indices.compute_indices(optical, ["NDVI"])["NDVI"],
        "MNDWI": indices.compute_indices(optical, ["MNDWI"])["MNDWI"],
        "WET": indices.tasselled_cap_wetness(optical, sensor=sensor),
        "NDBSI": indices.ndbsi(optical),
    }
    if "lst" in refl:
        per_obs["LST"] = refl["lst"].astype("float32")
    gs = refl["time"].dt.month.isin(list(GROWING_SEASON_MONTHS))
    out = {}
    for p, (start, end) in windows.items():
        sel = slice(str(start), str(end))
        for name, da in per_obs.items():
            out[f"{name}_{p}"] = _gs_mean(da.sel(time=sel), gs.sel(time=sel)).astype("float32")
        out[f"nclear_{p}"] = per_obs["NDVI"].sel(time=sel).notnull().sum("time").astype("int16")
    wet_set = per_obs["WET"].attrs.get("coefficients", "")
    return xr.Dataset(out, attrs={"wetness_coefficients": wet_set, "wetness_reference": per_obs["WET"].attrs.get("reference", "")})


@dataclass(frozen=True)
class RseiResult:
    """RSEI of one period (or of each period of a pooled run).

    ``rsei`` maps period → (y, x) float32 in [0, 1], NaN where water or an indicator is missing;
    ``loadings`` are PC1's weights on the normalised indicators after the sign fix (NDVI, WET
    positive when higher = better); ``pc1_share`` the share of variance PC1 explains.
    """

    rsei: dict[str, np.ndarray]
    components: tuple[str, ...]
    loadings: dict[str, float]
    pc1_share: float
    pooled: bool
    note: str = ""

    @property
    def variant(self) -> str:
        """One line stating which RSEI variant was computed, written into the outputs."""
        kind = "4-component (NDVI, WET, NDBSI, LST)" if "LST" in self.components else "3-component (NDVI, WET, NDBSI; no thermal band)"
        scale = "pooled across periods" if self.pooled else "per period"
        return f"RSEI {kind}, normalised {scale}" + (f"; {self.note}" if self.note else "")


def _valid(components: dict[str, np.ndarray], mndwi: np.ndarray | None) -> np.ndarray:
    ok = np.logical_and.reduce([np.isfinite(v) for v in components.values()])
    if mndwi is not None:
        ok &= ~(np.nan_to_num(mndwi, nan=-1.0) > WATER_MNDWI)
    return ok


#: One pass over the indicator images: an iterable of blocks, each (period → indicator → (…)
#: array, period → period-mean MNDWI array or None). A callable, because the fit reads the
#: blocks several times (in memory: one block of whole images; in a tiled scan: the windows of
#: the written mosaics, so that memory is bounded by a block, not the region).
Blocks = Callable[[], Iterable[tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray] | None]]]


@dataclass(frozen=True)
class RseiFit:
    """What RSEI needs beyond each pixel's indicators: per period, the min–max normalisation of
    the indicators (``lo``, ``span``), PC1 (after the sign fix) and the min–max of the PC1 score
    (``s_lo``, ``s_span``) of its group of periods; None where too few pixels were valid."""

    names: tuple[str, ...]
    params: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None]
    loadings: dict[str, float]
    pc1_share: float
    pooled: bool
    note: str = ""


def _rows(comps: dict[str, np.ndarray], names: tuple[str, ...], mndwi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    valid = _valid({n: comps[n] for n in names}, mndwi)
    return valid, np.stack([comps[n][valid] for n in names], axis=1).astype("float64")


def fit_rsei(blocks: Blocks, periods: list[str], names: tuple[str, ...], *, pooled: bool = False) -> RseiFit:
    """Fit RSEI over all pixels of ``blocks`` (see :data:`Blocks`) in four streaming passes:
    thermal coverage, indicator min–max, covariance of the normalised indicators (Σz, Σzzᵀ in
    float64) and PC1-score min–max. Equal to the in-memory method of Xu 2013 for any blocking."""
    names = tuple(n for n in COMPONENTS if n in names)
    if not {"NDVI", "WET", "NDBSI"} <= set(names):
        raise ValueError(f"RSEI needs NDVI, WET and NDBSI; got {', '.join(names)}")
    note = ""
    if "LST" in names:
        n_base, n_lst = dict.fromkeys(periods, 0), dict.fromkeys(periods, 0)
        for comps, mndwi in blocks():
            for p in periods:
                base = _valid({n: comps[p][n] for n in ("NDVI", "WET", "NDBSI")}, (mndwi or {}).get(p))
                n_base[p] += int(base.sum())
                n_lst[p] += int(np.isfinite(comps[p]["LST"])[base].sum())
        cover = min((n_lst[p] / n_base[p] if n_base[p] else 0.0) for p in periods)
        if cover < LST_MIN_COVERAGE:
            names = tuple(n for n in names if n != "LST")
            note = f"thermal band left out: land-surface temperature covers {cover:.0%} of the graded pixels (< {LST_MIN_COVERAGE:.0%})"
    k = len(names)
    groups = [tuple(periods)] if pooled else [(p,) for p in periods]
    n = {g: 0 for g in groups}
    lo = {g: np.full(k, np.inf) for g in groups}
    hi = {g: np.full(k, -np.inf) for g in groups}
    for comps, mndwi in blocks():  # pass: min–max of each indicator
        for g in groups:
            for p in g:
                _, X = _rows(comps[p], names, (mndwi or {}).get(p))
                if len(X):
                    n[g] += len(X)
                    lo[g], hi[g] = np.minimum(lo[g], X.min(0)), np.maximum(hi[g], X.max(0))
    live = [g for g in groups if n[g] >= k + 1]
    span = {g: np.where(hi[g] > lo[g], hi[g] - lo[g], 1.0) for g in live}
    s1 = {g: np.zeros(k) for g in live}
    s2 = {g: np.zeros((k, k)) for g in live}
    for comps, mndwi in blocks():  # pass: covariance of the normalised indicators
        for g in live:
            for p in g:
                _, X = _rows(comps[p], names, (mndwi or {}).get(p))
                Z = (X - lo[g]) / span[g]
                s1[g] += Z.sum(0)
                s2[g] += Z.T @ Z
    pcs: dict[tuple[str, ...], np.ndarray] = {}
    loadings: dict[str, float] = {}
    share = float("nan")
    direction = np.array([DIRECTION[m] for m in names])
    for g in live:
        cov = (s2[g] - np.outer(s1[g], s1[g]) / n[g]) / (n[g] - 1)
        evals, evecs = np.linalg.eigh(cov)
        pc1 = evecs[:, int(np.argmax(evals))]
        agreement = float(pc1 @ direction)
        # sign fix: higher = better. If PC1 is orthogonal to the expected direction (never seen),
        # fall back on greenness.
        if agreement < 0 or (agreement == 0 and pc1[names.index("NDVI")] < 0):
            pc1 = -pc1
        pcs[g] = pc1
        loadings = {m: round(float(w), 4) for m, w in zip(names, pc1)}
        share = float(evals.max() / evals.sum()) if evals.sum() > 0 else float("nan")
    s_lo = {g: np.inf for g in live}
    s_hi = {g: -np.inf for g in live}
    for comps, mndwi in blocks():  # pass: min–max of the PC1 score
        for g in live:
            for p in g:
                _, X = _rows(comps[p], names, (mndwi or {}).get(p))
                if len(X):
                    score = ((X - lo[g]) / span[g]) @ pcs[g]
                    s_lo[g], s_hi[g] = min(s_lo[g], float(score.min())), max(s_hi[g], float(score.max()))
    params: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None] = {}
    for g in groups:
        for p in g:
            params[p] = None if g not in live else (
                lo[g], span[g], pcs[g], s_lo[g], (s_hi[g] - s_lo[g]) if s_hi[g] > s_lo[g] else 1.0)
    return RseiFit(names=names, params=params, loadings=loadings, pc1_share=round(share, 4), pooled=pooled, note=note)


def apply_rsei(fit: RseiFit, period: str, comps: dict[str, np.ndarray], mndwi: np.ndarray | None = None) -> np.ndarray:
    """RSEI (0–1, float32; NaN where water or an indicator is missing) of one block of
    ``period``'s indicators with a fitted :class:`RseiFit`."""
    par = fit.params[period]
    img = np.full(comps["NDVI"].shape, np.nan, "float32")
    if par is None:
        return img
    lo, span, pc1, s_lo, s_span = par
    valid, X = _rows(comps, fit.names, mndwi)
    img[valid] = ((((X - lo) / span) @ pc1 - s_lo) / s_span).astype("float32")
    return img


def rsei_periods(
    components: dict[str, dict[str, np.ndarray]],
    mndwi: dict[str, np.ndarray] | None = None,
    *,
    pooled: bool = False,
) -> RseiResult:
    """RSEI of several periods held in memory (:func:`fit_rsei` on one block).

    Parameters
    ----------
    components
        Period → indicator name (subset of :data:`COMPONENTS`, at least NDVI, WET, NDBSI) →
        (y, x) array. Every period must hold the same indicators.
    mndwi
        Period → (y, x) period-mean MNDWI; pixels above :data:`WATER_MNDWI` are water and masked.
    pooled
        False: each period normalised and decomposed on its own (Xu 2013). True: one
        normalisation and one PC1 over the pixels of all periods, so periods compare on one scale.
    """
    periods = list(components)
    fit = fit_rsei(lambda: [(components, mndwi)], periods, tuple(components[periods[0]]), pooled=pooled)
    out = {p: apply_rsei(fit, p, components[p], (mndwi or {}).get(p)) for p in periods}
    return RseiResult(rsei=out, components=fit.names, loadings=fit.loadings, pc1_share=fit.pc1_share, pooled=pooled, note=fit.note)


def rsei(components: dict[str, np.ndarray], mndwi: np.ndarray | None = None) -> RseiResult:
    """RSEI of one image / period (Xu 2013): ``components`` maps indicator → (y, x) array."""
    return rsei_periods({"period": components}, None if mndwi is None else {"period": mndwi})


def grade(values: np.ndarray) -> np.ndarray:
    """RSEI grade codes 1 (差) … 5 (优) at 0.2 steps, 0 where ``values`` is NaN (uint8)."""
    codes = (np.digitize(np.nan_to_num(values, nan=-1.0), GRADE_EDGES) + 1).astype("uint8")
    codes[~np.isfinite(values)] = 0
    return codes
