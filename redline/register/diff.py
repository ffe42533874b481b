"""``redline diff OUT_A OUT_B``: what changed between two scans of the same config.

Typical use: a collection was reprocessed (a new processing baseline) or a scene was added or
withdrawn, and the team needs to know which alerts moved. Alerts are paired across the two
``alerts.geojson`` files as the register pairs them (docs/architecture.md §4.4, "same place ⇒
same alert"): same ``alert_id`` if both hold it and the polygons intersect, else the same zone
and intersecting polygons, the largest overlap first, one to one. Unpaired alerts of B are
*added*, unpaired alerts of A *withdrawn*; a pair is *changed* when any of
:data:`COMPARED` differs (area by more than :data:`AREA_TOLERANCE_M2`). The manifests give
the item ids each scan used, their processing baselines (``s2:processing_baseline``, recorded per
item since schema 2 of the register; "unknown" in older manifests) and the resolved config
parameters that differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from redline import outputs
from redline.errors import OutputsError

__all__ = ["COMPARED", "AREA_TOLERANCE_M2", "ScanDiff", "diff_scans"]

#: Alert fields compared between paired alerts.
COMPARED = ("area_m2", "first_detected", "disturbance_type", "change_type", "activity_class", "activity_candidates")
#: Areas are stored to 0.1 m²; a difference below this is rounding, not change.
AREA_TOLERANCE_M2 = 1.0


@dataclass
class ScanDiff:
    """The differences of scan B against scan A (JSON-ready via :meth:`as_dict`)."""

    a: str
    b: str
    scan_ids: tuple[str, str]
    added: list[dict] = field(default_factory=list)
    withdrawn: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    unchanged: int = 0
    items_only_a: list[str] = field(default_factory=list)
    items_only_b: list[str] = field(default_factory=list)
    n_items: tuple[int, int] = (0, 0)
    baselines: dict[str, dict[str, int]] = field(default_factory=dict)
    baseline_changed: list[dict] = field(default_factory=list)
    parameters: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _read(out: Path) -> tuple[dict, gpd.GeoDataFrame]:
    out = Path(out)
    if not out.is_dir():
        raise OutputsError(f"{out}: not a folder; give the output folder of a finished scan")
    try:
        manifest = json.loads((out / outputs.MANIFEST_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutputsError(f"{out}: no manifest.json; give the output folder of a finished scan") from None
    except (OSError, ValueError) as exc:
        raise OutputsError(f"{out}/manifest.json: cannot be read ({exc.__class__.__name__}); restore it or re-run the scan") from None
    if not isinstance(manifest, dict) or "items" not in manifest or "config" not in manifest:
        raise OutputsError(f"{out}/manifest.json: not a redline scan manifest (no 'items'/'config'); give the output folder of a finished scan")
    path = out / outputs.ALERTS_GEOJSON
    if not path.is_file():
        raise OutputsError(f"{out}: no alerts.geojson; give the output folder of a finished scan")
    try:
        alerts = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same user problem
        raise OutputsError(f"{path}: cannot be read ({exc.__class__.__name__}); restore it or re-run the scan") from None
    if alerts.empty:
        alerts = gpd.GeoDataFrame({"alert_id": [], "zone_id": []}, geometry=[], crs=4326)
    for col in alerts.columns:  # the GeoJSON reader parses ISO dates: back to YYYY-MM-DD text
        if pd.api.types.is_datetime64_any_dtype(alerts[col]):
            alerts[col] = alerts[col].dt.strftime("%Y-%m-%d")
    for col in ("alert_id", "zone_id", *COMPARED):
        if col not in alerts:
            alerts[col] = None
    return manifest, alerts.to_crs(4326)


def _pairs(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> list[tuple[int, int]]:
    """One-to-one pairs (index in a, index in b): same id first, then largest overlap."""
    pairs, used_a, used_b = [], set(), set()
    ids_b = {aid: j for j, aid in zip(b.index, b["alert_id"])}
    for i, aid in zip(a.index, a["alert_id"]):
        j = ids_b.get(aid)
        if j is not None and a.geometry[i].intersects(b.geometry[j]):
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    cand = []
    for i in a.index.difference(list(used_a)):
        for j in b.index.difference(list(used_b)):
            if a.at[i, "zone_id"] == b.at[j, "zone_id"] and a.geometry[i].intersects(b.geometry[j]):
                cand.append((a.geometry[i].intersection(b.geometry[j]).area, i, j))
    for _, i, j in sorted(cand, key=lambda c: -c[0]):
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def _value(v: object) -> object:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) or v == "" else v


def _flat(d: object, prefix: str = "") -> dict[str, object]:
    if isinstance(d, dict):
        out: dict[str, object] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _baselines(manifest: dict) -> dict[str, str]:
    return {it["id"]: str(it.get("processing_baseline") or "unknown") for it in manifest["items"]}


def diff_scans(out_a: Path | str, out_b: Path | str) -> ScanDiff:
    """Compare two finished scans' outputs (rule in the module docstring).

    Raises
    ------
    OutputsError
        A folder without a readable manifest.json or alerts.geojson. Config differences
        (the name included) are reported in ``parameters``, not refused.
    """
    ma, a = _read(Path(out_a))
    mb, b = _read(Path(out_b))
    d = ScanDiff(str(out_a), str(out_b), (ma.get("scan_id"), mb.get("scan_id")))
    pairs = _pairs(a, b)
    pa, pb = {i for i, _ in pairs}, {j for _, j in pairs}
    brief = ("alert_id", "zone_id", "first_detected", "area_m2", "disturbance_type", "change_type")
    d.added = [{k: _value(b.at[j, k]) for k in brief} for j in b.index if j not in pb]
    d.withdrawn = [{k: _value(a.at[i, k]) for k in brief} for i in a.index if i not in pa]
    for i, j in pairs:
        changes = {}
        for k in COMPARED:
            va, vb = _value(a.at[i, k]), _value(b.at[j, k])
            if k == "area_m2" and va is not None and vb is not None:
                if abs(float(va) - float(vb)) >= AREA_TOLERANCE_M2:
                    changes[k] = [round(float(va), 1), round(float(vb), 1)]
            elif va != vb:
                changes[k] = [va, vb]
        if changes:
            d.changed.append({"alert_id_a": a.at[i, "alert_id"], "alert_id_b": b.at[j, "alert_id"], "zone_id": b.at[j, "zone_id"], "changes": changes})
        else:
            d.unchanged += 1
    ba, bb = _baselines(ma), _baselines(mb)
    d.items_only_a, d.items_only_b = sorted(set(ba) - set(bb)), sorted(set(bb) - set(ba))
    d.n_items = (len(ba), len(bb))
    d.baselines = {"a": dict(pd.Series(list(ba.values()), dtype=str).value_counts().sort_index()),
                   "b": dict(pd.Series(list(bb.values()), dtype=str).value_counts().sort_index())}
    d.baselines = {k: {str(x): int(n) for x, n in v.items()} for k, v in d.baselines.items()}
    d.baseline_changed = [{"id": i, "a": ba[i], "b": bb[i]} for i in sorted(set(ba) & set(bb)) if ba[i] != bb[i]]
    pa_, pb_ = _flat(ma["config"].get("resolved", {})), _flat(mb["config"].get("resolved", {}))
    d.parameters = [{"key": k, "a": pa_.get(k), "b": pb_.get(k)} for k in sorted(set(pa_) | set(pb_)) if pa_.get(k) != pb_.get(k)]
    return d
