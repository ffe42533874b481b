"""Which bands and quality masks a scan's scenes have, and what the scan can do with them.

A scan needs red and nir in every scene (NDVI, the minimum); every other band is optional. A
4-band sensor or composite (blue, green, red, nir: Gaofen-1/6 WFV and PMS, PlanetScope, NAIP)
scans on NDVI alone. Per scan, :func:`plan_bands` works out which bands every scene has, which
only some scenes have and which none has:

- the bands every scene has are loaded as required, the others as optional
  (:func:`pipelines.load_series` ``optional_bands``: NaN in the scenes without them);
- a stack variable (:data:`redline.detect.STACK_VARS`) is used only when every scene has its
  bands (:data:`STACK_NEEDS`, from the index formulas of :mod:`indices`): a harmonic model
  fitted on the dates of some sensors only would judge the others' looks blindly. Otherwise
  it is NaN in the detector's stack, dropped from ``detection.indices`` for this scan, and its
  pre/post typing values are NaN;
- ``ALB`` (broadband albedo, the mean of the six optical bands) is NaN unless every scene has
  all six: a mean of fewer bands is another quantity (a VNIR mean is darker over vegetation and
  brighter over water than the six-band mean), and the type rule's albedo thresholds
  (:data:`redline.alerts.ALB_DARK`, :data:`redline.alerts.ALB_BRIGHT`) were set on six bands;
- the disturbance types the rule can still give follow (:data:`TYPE_NEEDS`).

Scenes without a quality-mask asset (SCL, QA_PIXEL, Fmask …) are refused unless the config says
``masks: assume-clear`` (:func:`check_scenes`); then every pixel with data is clear in them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

import indices
from pipelines import REFLECTANCE_BANDS, parse_item
from redline.detect import STACK_VARS
from redline.errors import StacError

__all__ = ["NDVI_BANDS", "STACK_NEEDS", "TYPE_NEEDS", "BandPlan", "plan_bands", "bands_by_collection", "check_scenes"]

#: The bands every scene must have: NDVI's (Rouse et al. 1974), the detector's minimum.
NDVI_BANDS = indices.index_bands("NDVI")
#: The bands each detector stack variable is computed from (index formulas of the Awesome
#: Spectral Indices catalogue; ALB is the mean of the six optical bands).
STACK_NEEDS: dict[str, tuple[str, ...]] = {
    **{v: indices.index_bands(v) for v in STACK_VARS if v != "ALB"},
    "ALB": tuple(REFLECTANCE_BANDS),
}
#: The stack variables each disturbance type of :func:`redline.alerts.classify_type` reads
#: (its pre/post values; NaN compares False, so a type whose variables are NaN is never given):
#: water_loss MNDWI; fire dNBR with a dark surface (NBR, ALB) or the burn-like looks (NBR, ALB,
#: MNDWI residuals); mining a bright surface (ALB); construction NDBI and BI; clearing NDVI.
TYPE_NEEDS: dict[str, tuple[str, ...]] = {
    "clearing": ("NDVI",), "construction": ("NDBI", "BI"), "mining": ("ALB",), "fire": ("NBR", "ALB"),
    "water_loss": ("MNDWI",), "other": (),
}


@dataclass(frozen=True)
class BandPlan:
    """The bands and masks of a scan's scenes (see the module docstring).

    ``every``: bands every scene has; ``some``: band → number of scenes without it, for the
    bands some but not all scenes have; ``none``: bands no scene has (all in
    :data:`pipelines.REFLECTANCE_BANDS` order). ``without_mask``: ids of the scenes without a
    quality-mask asset.
    """

    n_scenes: int
    every: tuple[str, ...]
    some: dict[str, int]
    none: tuple[str, ...]
    without_mask: tuple[str, ...]
    collections: tuple[str, ...]
    example: dict[str, str]  # band → the id of a scene without it

    @property
    def optional(self) -> tuple[str, ...]:
        """Bands loaded where a scene has them (NaN in the others): all but :attr:`every`."""
        return tuple(b for b in REFLECTANCE_BANDS if b not in self.every)

    @property
    def complete(self) -> bool:
        """Every scene has all six bands: the scan runs as it always did."""
        return not self.optional

    @property
    def stack_vars(self) -> tuple[str, ...]:
        """The stack variables the scan computes (every scene has their bands); the rest are NaN."""
        return tuple(v for v in STACK_VARS if all(b in self.every for b in STACK_NEEDS[v]))

    def detection_indices(self, configured: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """``detection.indices`` less those whose bands some scene lacks."""
        return tuple(i for i in configured if i in self.stack_vars)

    @property
    def types(self) -> tuple[str, ...]:
        """The disturbance types the type rule can give with :attr:`stack_vars`."""
        return tuple(t for t, need in TYPE_NEEDS.items() if all(v in self.stack_vars for v in need))

    def note(self, configured: list[str] | tuple[str, ...]) -> str | None:
        """One console line on what the missing bands take away; None when every scene has all six."""
        if self.complete:
            return None
        lacking = []
        if self.none:
            lacking.append(f"scenes have no {', '.join(self.none)}")
        by_count: dict[int, list[str]] = {}
        for b, n in self.some.items():
            by_count.setdefault(n, []).append(b)
        lacking += [f"{n} of {self.n_scenes} scenes have no {', '.join(bs)} (NaN there; only bands every scene has are used to detect and type)"
                    for n, bs in sorted(by_count.items(), reverse=True)]
        det = self.detection_indices(configured)
        dropped = [i for i in configured if i not in det]
        why = "; ".join(f"{i} needs {', '.join(b for b in STACK_NEEDS[i] if b not in self.every)}" for i in dropped)
        text = f"{'; '.join(lacking)}: detection on {', '.join(det)}" + (f" only ({why})" if dropped else "")
        if tuple(self.types) != tuple(TYPE_NEEDS):
            text += f"; disturbance types limited to {'/'.join(self.types)}"
        return text

    def mask_note(self) -> str | None:
        """One console line on the scenes scanned without a quality mask (``masks: assume-clear``)."""
        if not self.without_mask:
            return None
        return (f"{len(self.without_mask)} of {self.n_scenes} scenes have no quality mask (e.g. {self.without_mask[0]}); "
                "masks: assume-clear counts every pixel with data in them as clear")

    def record(self, configured: list[str] | tuple[str, ...], masks: str) -> dict[str, Any]:
        """What the manifest records (``bands`` and ``masks``)."""
        return {
            "bands": {
                "every_scene": list(self.every), "some_scenes": {b: {"scenes_without": n, "example": self.example[b]} for b, n in self.some.items()},
                "no_scene": list(self.none), "stack_variables": list(self.stack_vars), "stack_variables_nan": [v for v in STACK_VARS if v not in self.stack_vars],
                "detection_indices": list(self.detection_indices(configured)),
                "dropped_indices": [i for i in configured if i not in self.detection_indices(configured)],
                "disturbance_types": list(self.types), "note": self.note(configured),
            },
            "masks": {"setting": masks, "scenes": self.n_scenes, "scenes_without_mask": len(self.without_mask),
                      "ids_without_mask": list(self.without_mask), "note": self.mask_note()},
        }


def plan_bands(items: list[pystac.Item]) -> BandPlan:
    """The :class:`BandPlan` of ``items`` (each parsed once, :func:`pipelines.parse_item`)."""
    parsed = [parse_item(it) for it in items]
    have = Counter(b for p in parsed for b in set(p.bands) & set(REFLECTANCE_BANDS))
    n = len(parsed)
    example = {b: next(p.id for p in parsed if b not in p.bands) for b in REFLECTANCE_BANDS if have[b] < n}
    return BandPlan(
        n_scenes=n,
        every=tuple(b for b in REFLECTANCE_BANDS if have[b] == n and n),
        some={b: n - have[b] for b in REFLECTANCE_BANDS if 0 < have[b] < n},
        none=tuple(b for b in REFLECTANCE_BANDS if have[b] == 0),
        without_mask=tuple(p.id for p in parsed if p.mask is None),
        collections=tuple(dict.fromkeys(it.collection_id or "" for it in items)),
        example=example,
    )


def bands_by_collection(items: list[pystac.Item]) -> dict[str, tuple[str, ...]]:
    """Per collection id, the bands each of its scenes must have: NDVI's and every band that any
    scene of the collection has. A scene lacking a band the rest of its collection has is a
    broken item (reported and left out, as before); a collection (sensor) without a band is not."""
    out: dict[str, set[str]] = {}
    for it in items:
        out.setdefault(it.collection_id or "", set(NDVI_BANDS)).update(set(parse_item(it).bands) & set(REFLECTANCE_BANDS))
    return {c: tuple(b for b in REFLECTANCE_BANDS if b in bands) for c, bands in out.items()}


def check_scenes(plan: BandPlan, *, masks: str, configured: list[str] | tuple[str, ...], config: Path | str | None = None) -> None:
    """Refuse, in one line (:class:`~redline.errors.StacError`, exit 2), found scenes the scan
    cannot use: no scene with red or nir (no NDVI); no configured detection index left; scenes
    without a quality mask while ``masks: required``."""
    where = str(config) if config else "the config"
    lost = [b for b in NDVI_BANDS if b in plan.none]
    if lost:
        raise StacError(
            f"stac.collections {', '.join(plan.collections)}: none of the {plan.n_scenes} scenes found has a {' or '.join(lost)} band "
            f"(e.g. {plan.example[lost[0]]}); NDVI, the least a scan detects on, needs red and nir: use a collection with them or a profile that maps them")
    if not plan.detection_indices(configured):
        need = "; ".join(f"{i} needs {', '.join(b for b in STACK_NEEDS[i] if b not in plan.every)}" for i in configured)
        raise StacError(f"detection.indices {', '.join(configured)}: the scenes found lack their bands ({need}); add NDVI to detection.indices in {where}")
    if masks == "required" and plan.without_mask:
        raise StacError(
            f"{len(plan.without_mask)} of {plan.n_scenes} scenes found have no quality mask asset (e.g. {plan.without_mask[0]}) and masks is "
            f"'required': set `masks: assume-clear` in {where} to treat every pixel with data as clear (composites already cloud-free), "
            "or add a mask asset (SCL, QA_PIXEL, Fmask)")
