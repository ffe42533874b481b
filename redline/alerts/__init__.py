"""From disturbed pixels to alerts: patches, clipping to zones, type, date and confidence.

One alert is one connected patch of disturbed pixels (8-connected, as GLAD alerts are
aggregated) clipped to one zone; a patch crossing two zones gives one alert in each. The
minimum mapping unit is applied after clipping, on the area in the metric (UTM) analysis CRS.

Disturbance type (rule applied to the patch medians of the per-pixel "pre" values — the
baseline model's expectation on the disturbance date — and "post" values — the median of the
clear observations after it). First rule that matches wins:

1. ``water_loss``  pre MNDWI > 0 and post MNDWI < 0: the pixel stopped being water
   (MNDWI > 0 for open water, Xu 2006, doi:10.1080/01431160600589179).
2. ``fire``        dNBR = pre NBR − post NBR ≥ 0.10 (lower bound of "low severity",
   Key & Benson 2006, USGS RMRS-GTR-164-CD) and a dark surface after, ALB < 0.12 (char and
   ash are dark; bare soil and rock are not — tuned on the generated landscapes); or most of
   the patch's pixels were confirmed by burn-like looks (the detector's ``burn`` field: dNBR ≥
   0.27, darker, not wetter, :data:`redline.detect.BURN_DNBR`), which catches burns that green
   up again soon, whose median after the date is vegetation again.
3. ``mining``      a bare surface after, post NDVI < :data:`NDVI_BARE` (0.2, the bare-soil NDVI
   of Sobrino et al. 2004, doi:10.1016/j.rse.2004.02.003, as :data:`redline.alerts.activity.NDVI_BARE`:
   no regrowth), that is brighter than before, post − pre ALB ≥ :data:`ALB_RISE_MINING` (0.12:
   exposed rock, spoil and tailings brighten a forest far more than bare soil does; tuned), and
   any of three signs of a quarry or mine rather than a one-off clearing:

   a. *bright*: post ALB ≥ :data:`ALB_BRIGHT` (0.25: exposed rock, as before; tuned on the
      generated landscapes);
   b. *grown* (the temporal shape): at least :data:`GROWTH_SHARE` (20 %) of the patch's pixels
      were reached by the disturbance :data:`GROWTH_STEP_DAYS` (30) days or more after the
      patch's date, had been *seen undisturbed after that date* (the detector's ``last_normal``,
      the last clear look judged normal before a pixel's own date, falls after the patch's date)
      and are 8-connected to the patch's earlier pixels (:func:`growth_share`): a pit that grows
      bench by bench over months. A clearing seen late under cloud is not growth — its late
      pixels were never seen undisturbed after the patch's date — nor is a clear-cut, which is
      done within weeks;
   c. *beside old bare ground* (the scene context): the alert touches ground already bare or
      built in the baseline, ``change_type`` ``expansion`` (:func:`redline.alerts.activity.change_type`):
      a working face that advances from an existing pit or spoil heap.

   Without (a)–(c) a bare, brighter patch is a one-off change and falls to the rules below.
   Measured on the tuning landscapes only (``hard`` seeds 101–116, ``demo`` seeds 101–108, 48
   quarries; benchmarks/README.md "Mining by temporal shape"): quarries grew by 0.26–0.60 of
   their pixels and brightened by 0.155–0.236 ALB; clearings grew by at most 0.05 and brightened
   by at most 0.086. Growth alone does not make a quarry — a construction site on cropland
   "grew" by 0.56 (crop pixels seen normal in the off-season), a water loss by 0.22 — hence the
   bare-and-brighter condition (construction sites brightened by at most 0.031; water losses and
   fires are typed first). Brightness alone and growth alone each type all 48 quarries right on
   that set; the context met one of them (the generated quarries open in forest).
4. ``construction`` post NDBI > 0 (built-up, Zha et al. 2003, doi:10.1080/01431160304987) and
   post BI < 0.15 (sealed surfaces are less soil-like than bare soil; BI: Rikimaru et al.
   2002; threshold tuned on the generated landscapes).
5. ``clearing``    vegetation lost: pre NDVI ≥ 0.4 and post NDVI < 0.4 … with bare soil after
   (post BI ≥ 0.1).
6. ``other``       anything else (e.g. partial degradation) — kept only when the patch's median
   drop (``magnitude``, in units of its triggering index) is at least
   :data:`OTHER_MIN_MAGNITUDE` × that index's smallest anomalous drop
   (:data:`redline.detect.MIN_DROP`: NDVI 0.20, NBR 0.20, MNDWI 0.40). An ``other`` patch has no
   typed evidence (no bare soil, burn, built-up surface or water loss), so it stands on the size
   of its drop alone, and a reviewer must be able to see it on the before/after chips: a forest
   whose NDVI falls by 0.1 looks the same in true colour. On the real Pucallpa Landsat epochs
   1,644 of 1,842 alerts were ``other`` with a median NDVI drop of 0.175 (issue #20).

Confidence (in the spirit of GLAD-S2 / RADD: more confirming observations and a larger drop
mean higher confidence; Pickens et al. 2020, doi:10.1016/j.rse.2020.111716):

- ``high``     ≥ ``consecutive`` + 2 confirming observations and a mean z-drop ≥ 2 × threshold;
- ``low``      only ``consecutive`` confirming observations and a mean z-drop < 1.5 × threshold,
  or fewer than ``consecutive``: a *provisional* alert, raised on the strong anomalous looks
  pending at the end of the window (``redline.detect.PROVISIONAL_Z_FACTOR``), or one severe-burn
  look — the GLAD/RADD "probable" tier, which the next scan confirms or leaves unconfirmed;
- ``nominal``  otherwise.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage

from redline.alerts.activity import NDVI_BARE, activity_candidates, change_type, join_codes
from redline.detect import MIN_DROP, STACK_VARS
from redline.vocabulary import ALERT_COLUMNS, CONFIDENCE_LEVELS, DISTURBANCE_TYPES, SCHEMA2_DEFAULTS  # noqa: F401  (the columns: here for callers)

__all__ = [
    "ALERT_COLUMNS",
    "disturbed_mask",
    "DISTURBANCE_TYPES",
    "CONFIDENCE_LEVELS",
    "SCHEMA2_DEFAULTS",
    "classify_type",
    "growth_share",
    "confidence_level",
    "alerts_from_fields",
    "apply_unit",
]


#: Thresholds of the type rule (module docstring gives the sources).
MNDWI_WATER = 0.0
DNBR_FIRE = 0.10
ALB_DARK = 0.12
ALB_BRIGHT = 0.25
#: Mining: post − pre ALB of a quarry or mine (tuned: the middle of the gap between the largest
#: rise of another type, 0.086, and the smallest of a quarry, 0.155, on the tuning landscapes).
ALB_RISE_MINING = 0.12
#: Mining by growth: days after the patch's date from which a pixel counts as reached later (a
#: month: a clear-cut is done within weeks, a quarry's benches advance over months; 20 and 45
#: days gave the same separation on the tuning landscapes) …
GROWTH_STEP_DAYS = 30.0
#: … and the share of the patch's pixels so reached (tuned: quarries 0.26–0.60, clearings at most
#: 0.05 on the tuning landscapes; module docstring).
GROWTH_SHARE = 0.2
NDBI_BUILT = 0.0
BI_SOIL = 0.15
NDVI_VEGETATED = 0.4
#: An ``other`` alert needs a median drop of at least this many times its triggering index's
#: :data:`redline.detect.MIN_DROP` (module docstring).
OTHER_MIN_MAGNITUDE = 2.0


_EPOCH = dt.date(1970, 1, 1)


def classify_type(
    pre: dict[str, float], post: dict[str, float], *, burn_share: float = 0.0, growth: float = 0.0, expansion: bool = False
) -> str:
    """Disturbance type from patch-median pre/post index values, the share of the patch's
    pixels confirmed by burn-like looks, the share of its pixels the disturbance reached later
    (``growth``, :func:`growth_share`) and whether it touches ground bare in the baseline
    (``expansion``); rule in the module docstring."""
    if pre["MNDWI"] > MNDWI_WATER and post["MNDWI"] < MNDWI_WATER:
        return "water_loss"
    if (pre["NBR"] - post["NBR"] >= DNBR_FIRE and post["ALB"] < ALB_DARK) or burn_share > 0.5:
        return "fire"
    bare_brighter = post["NDVI"] < NDVI_BARE and post["ALB"] - pre["ALB"] >= ALB_RISE_MINING
    if bare_brighter and (post["ALB"] >= ALB_BRIGHT or growth >= GROWTH_SHARE or expansion):
        return "mining"
    if post["NDBI"] > NDBI_BUILT and post["BI"] < BI_SOIL:
        return "construction"
    if pre["NDVI"] >= NDVI_VEGETATED and post["NDVI"] < NDVI_VEGETATED:
        return "clearing"
    return "other"


def growth_share(first_date: np.ndarray, last_normal: np.ndarray, sel: np.ndarray) -> float:
    """Share of a patch's pixels that its disturbance reached later: pixels of ``sel`` whose
    first date is :data:`GROWTH_STEP_DAYS` or more after the patch's date (:func:`_robust_first`),
    that were seen undisturbed after that date (``last_normal`` later than it: so not a part of
    a one-off change that cloud hid for a while) and that are 8-connected, through such pixels,
    to the patch's earlier pixels. 2-D arrays of one grid (dates in days since 1970-01-01, NaN =
    none); 0.0 for an empty selection."""
    if not sel.any():
        return 0.0
    start = _robust_first(first_date[sel])
    late = sel & (first_date - start >= GROWTH_STEP_DAYS)
    early = sel & ~late & np.isfinite(first_date)
    grown = late & (last_normal > start)
    eight = np.ones((3, 3), dtype=bool)
    labels, n = ndimage.label(grown, structure=eight)
    if n == 0:
        return 0.0
    touching = np.unique(labels[grown & ndimage.binary_dilation(early, structure=eight)])
    return float(np.isin(labels, touching[touching > 0]).sum() / sel.sum())


def confidence_level(n_confirm: float, zscore: float, *, consecutive: int, z_threshold: float) -> str:
    """low / nominal / high from confirming observations and mean z (rule in the module docstring)."""
    if n_confirm < consecutive:  # a provisional or single-look alert (redline.detect.PROVISIONAL_Z_FACTOR)
        return "low"
    if n_confirm >= consecutive + 2 and zscore >= 2 * z_threshold:
        return "high"
    if n_confirm <= consecutive and zscore < 1.5 * z_threshold:
        return "low"
    return "nominal"


def _date(days: float) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(days))


def _robust_first(days: np.ndarray) -> float:
    """Patch disturbance date: the 10th percentile (nearest rank) of its pixels' first dates,
    so that a few isolated early false pixels do not pull the date forward."""
    s = np.sort(days[np.isfinite(days)])
    return float(s[int(np.floor(0.1 * (len(s) - 1)))])


def _visible(magnitude: float, trigger: np.ndarray | None, sel: np.ndarray) -> bool:
    """An ``other`` patch's median drop is at least :data:`OTHER_MIN_MAGNITUDE` × the smallest
    anomalous drop of its triggering index (the index most of its pixels were triggered by)."""
    var = "NDVI"
    if trigger is not None:
        codes = trigger[sel]
        codes = codes[np.isfinite(codes)].astype(int)
        if codes.size:
            var = STACK_VARS[int(np.bincount(codes).argmax())]
    return bool(magnitude >= OTHER_MIN_MAGNITUDE * MIN_DROP.get(var, MIN_DROP["NDVI"]))


def _nanmedian(values: np.ndarray) -> float:
    """Median of the finite values, NaN (without numpy's all-NaN warning) when there are none:
    the typing variables of bands a scan's scenes lack are NaN throughout (redline.bands)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def disturbed_mask(fields: dict[str, np.ndarray]) -> np.ndarray:
    """Disturbed pixels: the strongly disturbed ones, and the weakly disturbed ones
    (:data:`redline.detect.WEAK_Z_FACTOR`, field ``weak``) 8-connected to them through weakly
    or strongly disturbed pixels (hysteresis in space); weak pixels alone never make a patch."""
    disturbed = np.nan_to_num(fields["disturbed"]) > 0.5
    if "weak" not in fields:
        return disturbed
    weak = np.nan_to_num(fields["weak"]) > 0.5
    strong = disturbed & ~weak
    if not weak.any():
        return strong
    labels, _ = ndimage.label(disturbed, structure=np.ones((3, 3), dtype=bool))
    keep = np.unique(labels[strong])
    return np.isin(labels, keep[keep > 0])


def apply_unit(pieces: gpd.GeoDataFrame, min_area_m2: float, *, exempt: frozenset[str] | set[str] = frozenset()) -> gpd.GeoDataFrame:
    """The minimum mapping unit, the one place it is applied: the patch pieces (one zone each,
    ``zone_id``) of at least ``min_area_m2`` m², and every piece of the zones in ``exempt``. The
    area is the pieces' ``area_m2`` where they have it (measured in the analysis CRS), else
    their geometry's (which must then be in a metric CRS)."""
    area = pieces["area_m2"].values if "area_m2" in pieces else pieces.geometry.area.values
    keep = area >= min_area_m2
    if exempt:
        keep |= pieces["zone_id"].isin(exempt).values
    return pieces[keep]


def alerts_from_fields(
    fields: dict[str, np.ndarray],
    transform: Affine,
    crs: object,
    zones: gpd.GeoDataFrame,
    *,
    min_area_m2: float,
    consecutive: int,
    z_threshold: float,
    scan_id: str,
    baseline: dict[str, np.ndarray] | None = None,
    unit_exempt: frozenset[str] | set[str] = frozenset(),
) -> gpd.GeoDataFrame:
    """Turn computed per-pixel detection fields into alerts, one per patch per zone.

    Parameters
    ----------
    fields
        2-D numpy arrays named as :data:`redline.detect.FIELDS` (already computed).
    transform, crs
        Grid of the arrays (metric CRS, e.g. UTM; pixel size in metres).
    zones
        Zones in the same CRS with ``zone_id, zone_name, admin_id``.
    min_area_m2
        Minimum mapping unit, applied after clipping to each zone (:func:`apply_unit`).
    unit_exempt
        Zones whose patches are all kept whatever their area: the pieces of a zone split across
        tiles, to which the unit applies once they are stitched whole (:mod:`redline.tiles`).
    baseline
        Computed baseline growing-season means on the same grid, ``{"NDVI": …, "MNDWI": …}``;
        when given, ``change_type`` is decided (:func:`redline.alerts.activity.change_type`), else None.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns :data:`ALERT_COLUMNS` (``alert_id`` provisional, the register assigns the final
        one), geometry in EPSG:4326; ``area_m2`` measured in ``crs``.
    """
    disturbed = disturbed_mask(fields)
    strong = disturbed & ~(np.nan_to_num(fields["weak"]) > 0.5) if "weak" in fields else disturbed
    labels, n = ndimage.label(disturbed, structure=np.ones((3, 3), dtype=bool))
    empty = gpd.GeoDataFrame({c: [] for c in ALERT_COLUMNS}, geometry=[], crs="EPSG:4326")
    if n == 0:
        return empty
    shapes = rasterio.features.shapes(labels.astype("int32"), mask=disturbed, transform=transform, connectivity=8)
    polys: dict[int, list] = {}
    for geom, value in shapes:
        polys.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    patches = gpd.GeoDataFrame(
        {"patch": list(polys)}, geometry=[shapely.union_all(p) for p in polys.values()], crs=crs
    )
    pieces = gpd.overlay(patches, zones[["zone_id", "zone_name", "admin_id", "geometry"]], how="intersection", keep_geom_type=True)
    pieces = apply_unit(pieces, min_area_m2, exempt=unit_exempt)
    if pieces.empty:
        return empty

    rows = []
    height, width = labels.shape
    zone_geom = dict(zip(zones["zone_id"], zones.geometry))
    for piece in pieces.itertuples():
        inside = rasterio.features.geometry_mask([piece.geometry], out_shape=(height, width), transform=transform, invert=True, all_touched=False)
        sel = inside & (labels == piece.patch)
        if not sel.any():  # a sliver whose pixel centres fall outside the piece
            sel = labels == piece.patch
        # dates, confidence and type from the strongly disturbed pixels: weak ones (hysteresis)
        # only widen the outline, their anomalies are too faint to decide what happened
        if (sel & strong).any():
            sel = sel & strong
        med = {k: float(np.nanmedian(fields[k][sel])) for k in ("n_confirm", "zscore", "magnitude")}
        pre = {v: _nanmedian(fields[f"pre_{v}"][sel]) for v in STACK_VARS}
        post = {v: _nanmedian(fields[f"post_{v}"][sel]) for v in STACK_VARS}
        ctype = None
        if baseline is not None:
            ctype = change_type(piece.geometry, zone_geom.get(piece.zone_id), baseline["NDVI"], baseline["MNDWI"], transform)
        growth = growth_share(fields["first_date"], fields["last_normal"], sel) if "last_normal" in fields else 0.0
        dtype = classify_type(pre, post, burn_share=float(np.nanmean(fields["burn"][sel])) if "burn" in fields else 0.0,
                              growth=growth, expansion=ctype == "expansion")
        if dtype == "other" and not _visible(med["magnitude"], fields.get("trigger"), sel):
            continue
        rows.append(
            {
                "zone_id": piece.zone_id,
                "zone_name": piece.zone_name,
                "admin_id": piece.admin_id,
                "area_m2": float(piece.geometry.area),
                "first_detected": _date(_robust_first(fields["first_date"][sel])).isoformat(),
                "last_observed": _date(np.nanmax(fields["last_observed"][sel])).isoformat(),
                "confidence": confidence_level(
                    round(med["n_confirm"]), med["zscore"],
                    consecutive=consecutive, z_threshold=z_threshold,
                ),
                "disturbance_type": dtype,
                "magnitude": round(med["magnitude"], 4),
                "n_observations": int(round(med["n_confirm"])),
                "status": "new",
                "scan_ids": scan_id,
                "chip_before": None,
                "chip_after": None,
                "recheck": 0,
                "activity_candidates": join_codes(activity_candidates(dtype, piece.geometry)),
                "activity_class": None,
                "change_type": ctype,
                "cause": None,
                "legality": None,
                "before_dates": None,
                "after_dates": None,
                "geometry": piece.geometry,
            }
        )
    if not rows:
        return empty
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    cent = out.geometry.centroid.to_crs(4326)
    out["centroid_lon"] = cent.x.round(6)
    out["centroid_lat"] = cent.y.round(6)
    out = out.to_crs(4326)
    out["alert_id"] = None
    return out[[*ALERT_COLUMNS, "geometry"]]
