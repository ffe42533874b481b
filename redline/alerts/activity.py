"""Human-activity classes, change type and the recovery re-check of rectified alerts.

The vocabulary of the national red-line / nature-reserve supervision (the 绿盾 inspections; the
human-activity classes of the ecological protection red-line supervision technical standards,
HJ 1140–1146-2020): every alert carries

- ``activity_candidates``: the classes the detector suggests, most likely first (comma-separated
  codes), from the spectral disturbance type and the patch shape (rule below);
- ``activity_class``: the class a reviewer sets (``redline alerts review … --class``), never
  overwritten by a scan;
- ``change_type``: ``new`` (新增) or ``expansion`` (规模扩大), from the baseline composite.

Candidate rule (first match of the shape test, then the type's list; duplicates dropped)
-------------------------------------------------------------------------------------------
1. A *linear* patch puts ``transport`` first, then ``energy`` (pipelines and power-line
   corridors are also linear). Linear when (a) its elongation — the square root of the ratio of
   the principal second moments of its area, which is length / width for a rectangle and, unlike
   a bounding rectangle, barely moves for a staircase outline or a small blob stuck to one end —
   is at least :data:`LINEAR_ELONGATION`, and (b) its width — twice the smallest inward buffer
   (5 m steps) that leaves less than 5 % of its area — is at most :data:`LINEAR_MAX_WIDTH_M`.
2. Then by disturbance type (:data:`TYPE_CANDIDATES`): mining → quarry, industrial_mining;
   construction → settlement, transport, energy, tourism, industrial_mining; clearing →
   agriculture, settlement, energy, tourism; water_loss → aquaculture, agriculture, energy;
   fire and other → agriculture, other_artificial.
3. ``other_artificial`` closes every list (the national catch-all class).

Change type
-----------
``expansion`` when the alert touches ground that was already non-vegetated (bare or built, not
water) in the baseline: among the analysis pixels within :data:`EXPANSION_RING_M` of the alert
(and inside its zone), at least :data:`EXPANSION_MIN_PIXELS` pixels and
:data:`EXPANSION_MIN_SHARE` of them had a baseline growing-season mean NDVI from
:data:`NDVI_BARE_MIN` up to :data:`NDVI_BARE` and MNDWI ≤ 0 (bare or built, not water); otherwise
``new``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import rasterio.features
import shapely
from affine import Affine

from redline.vocabulary import ACTIVITY_CLASSES, ACTIVITY_CODES, CHANGE_TYPES

__all__ = [
    "ACTIVITY_CLASSES",
    "ACTIVITY_CODES",
    "CHANGE_TYPES",
    "TYPE_CANDIDATES",
    "activity_candidates",
    "activity_label",
    "change_type",
    "elongation",
    "is_linear",
    "recovery_verdict",
]


#: Candidate classes per spectral disturbance type (redline.alerts.DISTURBANCE_TYPES), most
#: likely first. Expert ordering from the classes' definitions: a bright bare pit is a quarry
#: or a mine; sealed surfaces are buildings, roads, power plants or resorts; forest cleared to
#: soil is most often reclaimed for farming; a lake or pond that dries is most often drained
#: for fish ponds or fields.
TYPE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "mining": ("quarry", "industrial_mining"),
    "construction": ("settlement", "transport", "energy", "tourism", "industrial_mining"),
    "clearing": ("agriculture", "settlement", "energy", "tourism"),
    "water_loss": ("aquaculture", "agriculture", "energy"),
    "fire": ("agriculture",),
    "other": ("agriculture",),
}

#: A patch is linear when its moment elongation is at least this (a road 30 m wide and 300 m
#: long is 10; compact pits, fields and building plots are rarely above 3; on the generated
#: landscapes the road with noise pixels attached scores 4.3, every other alert ≤ 2.1) …
LINEAR_ELONGATION = 3.5
#: … and at most this wide, metres: the roadbed of an 8-lane expressway is 42 m (JTG B01-2014
#: 《公路工程技术标准》, roadbed widths), plus cut/fill slopes and one mixed 10 m pixel on each side
#: of the detected patch.
LINEAR_MAX_WIDTH_M = 80.0
#: Bare ground has a positive NDVI; water (and snow) a negative one.
NDVI_BARE_MIN = 0.0

#: Growing-season mean NDVI below which a baseline pixel is non-vegetated (bare soil, rock or
#: built): the bare-soil NDVI of the NDVI-threshold method, NDVI_s = 0.2 (Sobrino, Jiménez-Muñoz
#: & Paolini 2004, doi:10.1016/j.rse.2004.02.003).
NDVI_BARE = 0.2
#: Water (MNDWI > 0, Xu 2006, doi:10.1080/01431160600589179) is not bare ground.
MNDWI_WATER = 0.0
#: Width of the ring searched around an alert, metres (two 10 m pixels: touching, allowing for
#: the mixed pixel at the edge of the old patch).
EXPANSION_RING_M = 20.0
#: Pixels of the ring that must be non-vegetated in the baseline (3 pixels = 300 m² at 10 m, so
#: that one noisy pixel never makes an expansion) …
EXPANSION_MIN_PIXELS = 3
#: … and their share of the ring: a new road whose end touches an old road shares ~5 % of its
#: outline with it, a quarry that grew from one face ~30 % (tuned on the generated landscapes).
EXPANSION_MIN_SHARE = 0.10

#: Recovery of a rectified site: vegetation is back when the NDVI of the latest clear looks
#: reaches 80 % of the baseline expectation for those dates (the R80P recovery indicator:
#: Pickell et al. 2016, "Forest recovery trends derived from Landsat time series for North
#: American boreal forests", Int. J. Remote Sens. 37(1):138–149, 2016).
RECOVERY_SHARE = 0.8
#: Latest clear observations used for the verdict (their median; a single look may be haze).
RECOVERY_LOOKS = 3
#: A look counts when at least this share of the alert's pixels is clear.
RECOVERY_MIN_CLEAR = 0.5


def activity_label(code: str | None, lang: str = "en") -> str:
    """Chinese (``zh``) or English label of an activity code; '' for none; unknown codes as is."""
    if not code:
        return ""
    zh, en = ACTIVITY_CLASSES.get(code, (code, code))
    return zh if lang == "zh" else en


def is_linear(geom: shapely.Geometry) -> bool:
    """True for an elongated thin patch (metric CRS; rule in the module docstring)."""
    area = float(geom.area)
    if area <= 0 or elongation(geom) < LINEAR_ELONGATION:
        return False
    return any(geom.buffer(-d).area < 0.05 * area for d in np.arange(5.0, LINEAR_MAX_WIDTH_M / 2 + 1e-9, 5.0))


def elongation(geom: shapely.Geometry) -> float:
    """√(λ1/λ2) of the covariance of the area (sampled on a grid of ≤ 5 m, ≥ ~400 points); metric CRS."""
    w, s, e, n = geom.bounds
    step = min(5.0, np.sqrt(geom.area) / 20)
    xs, ys = np.meshgrid(np.arange(w + step / 2, e, step), np.arange(s + step / 2, n, step))
    inside = shapely.contains_xy(geom, xs.ravel(), ys.ravel())
    if inside.sum() < 3:
        return 1.0
    lam = np.sort(np.linalg.eigvalsh(np.cov(np.column_stack([xs.ravel()[inside], ys.ravel()[inside]]).T)))
    return float(np.sqrt(lam[1] / lam[0])) if lam[0] > 0 else float("inf")


def activity_candidates(disturbance_type: str, geom: shapely.Geometry) -> list[str]:
    """Ordered candidate activity codes for a patch (geometry in a metric CRS)."""
    out: list[str] = []
    if is_linear(geom):
        out += ["transport", "energy"]
    out += list(TYPE_CANDIDATES.get(disturbance_type, ()))
    out.append("other_artificial")
    return list(dict.fromkeys(out))


def change_type(
    geom: shapely.Geometry, zone: shapely.Geometry | None, ndvi_base: np.ndarray, mndwi_base: np.ndarray, transform: Affine
) -> str:
    """``new`` or ``expansion`` for an alert polygon (rule in the module docstring).

    Parameters
    ----------
    geom, zone
        The alert polygon and its zone, in the grid's metric CRS (metres).
    ndvi_base, mndwi_base
        Computed (y, x) baseline growing-season mean NDVI and MNDWI on the analysis grid; NaN
        where never seen clear (not counted).
    transform
        The grid's affine transform.
    """
    ring = geom.buffer(EXPANSION_RING_M).difference(geom)
    if zone is not None:
        ring = ring.intersection(zone)
    if ring.is_empty:
        return "new"
    inside = rasterio.features.geometry_mask([ring], out_shape=ndvi_base.shape, transform=transform, invert=True, all_touched=False)
    ndvi, mndwi = ndvi_base[inside], mndwi_base[inside]
    seen = np.isfinite(ndvi)
    bare = seen & (ndvi >= NDVI_BARE_MIN) & (ndvi < NDVI_BARE) & ~(mndwi > MNDWI_WATER)
    n_bare = int(bare.sum())
    if n_bare >= EXPANSION_MIN_PIXELS and n_bare >= EXPANSION_MIN_SHARE * max(int(seen.sum()), 1):
        return "expansion"
    return "new"


def recovery_verdict(
    times: np.ndarray, ndvi: np.ndarray, clear_share: np.ndarray, expected: np.ndarray, *, after: np.datetime64 | None = None
) -> tuple[str | None, float, float]:
    """Has vegetation come back on a rectified site?

    Parameters
    ----------
    times
        datetime64 dates of the observations, ascending.
    ndvi
        Median NDVI of the alert's clear pixels on each date (NaN when none).
    clear_share
        Share (0–1) of the alert's pixels clear on each date.
    expected
        The baseline model's NDVI expectation on each date (seasonal, so a winter look is not
        compared with a summer baseline).
    after
        Only looks strictly after this date count (the rectification was recorded then).

    Returns
    -------
    (verdict, observed, expected)
        ``"recovered"`` when the median NDVI of the :data:`RECOVERY_LOOKS` latest usable looks
        reaches :data:`RECOVERY_SHARE` of the median expectation on those dates (R80P ≥ 1),
        ``"continuing"`` otherwise, ``None`` when there is no usable look yet; with the two
        medians (NDVI units; NaN when no verdict).
    """
    times = np.asarray(times).astype("datetime64[D]")
    ok = (np.asarray(clear_share) >= RECOVERY_MIN_CLEAR) & np.isfinite(ndvi) & np.isfinite(expected)
    if after is not None:
        ok &= times > np.datetime64(after, "D")
    idx = np.flatnonzero(ok)[-RECOVERY_LOOKS:]
    if idx.size == 0:
        return None, float("nan"), float("nan")
    obs, exp = float(np.median(np.asarray(ndvi)[idx])), float(np.median(np.asarray(expected)[idx]))
    return ("recovered" if obs >= RECOVERY_SHARE * exp else "continuing"), round(obs, 4), round(exp, 4)


def join_codes(codes: list[str] | tuple[str, ...] | None) -> str:
    """Comma-separated codes as stored in the register."""
    return ",".join(codes or ())


def split_codes(text: object) -> list[str]:
    """The codes of a stored comma-separated value ('' or NaN → [])."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return []
    return [c for c in str(text).split(",") if c]
