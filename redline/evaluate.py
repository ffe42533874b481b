"""Score a scan's alerts against ground truth (the demo generator's ``truth.gpkg``).

Matching is spatial: an alert *hits* an event when their polygons overlap (in a metric CRS).
Expected events are those inside a zone and above the minimum mapping unit; events outside
every zone or below the unit must produce no alert.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import rasterio.windows

__all__ = ["Score", "score_alerts", "per_type_accuracy", "per_type_line", "first_clear_looks"]


@dataclass(frozen=True)
class Score:
    """Accuracy of one scan against ground truth."""

    expected_events: int
    found_events: int
    missed_events: list[str]
    recall: float
    alerts: int
    true_alerts: int
    false_alerts: int
    precision: float
    alerts_on_excluded_events: int
    date_error_days_median: float
    date_error_days_max: float
    date_error_revisits_median: float
    iou_median: float
    type_accuracy: float
    #: true type → alert type of its main alert → events
    type_confusion: dict[str, dict[str, int]]
    #: true type → ``{"correct": …, "total": …, "accuracy": correct / total}`` over the found
    #: events of that type (the recall of each type; :func:`per_type_accuracy`)
    type_accuracy_per_type: dict[str, dict[str, float]]
    #: alert date − the event's first clear look (what cloud allowed), when those are given
    delay_after_first_clear_days_median: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def score_alerts(
    alerts: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, metric_crs: object, revisit_days: float = 10.0,
    first_clear: dict[str, str] | None = None,
) -> Score:
    """Compare alerts with truth events.

    Parameters
    ----------
    alerts
        Alerts with ``first_detected`` (ISO date) and ``disturbance_type``, any CRS.
    truth
        Events with ``event_id, type, start_date, in_zone, above_mmu``, any CRS.
    metric_crs
        CRS in metres for areas and overlaps (e.g. the scan's UTM zone).
    revisit_days
        Nominal revisit interval, to express date errors in revisits.
    first_clear
        Event id → ISO date of the first scene after the start that saw most of the event clear
        (no detector can date it earlier): splits the date error into cloud delay and the
        detector's own delay.
    """
    a = alerts.to_crs(metric_crs).reset_index(drop=True)
    t = truth.to_crs(metric_crs).reset_index(drop=True)
    expected = t[t["in_zone"].astype(bool) & t["above_mmu"].astype(bool)]
    excluded = t.drop(expected.index)
    hits = gpd.sjoin(a, t[["event_id", "geometry"]], how="inner", predicate="intersects") if not a.empty else pd.DataFrame(columns=["event_id"])
    hit_events = set(hits["event_id"]) if len(hits) else set()
    found = [e for e in expected["event_id"] if e in hit_events]
    missed = [e for e in expected["event_id"] if e not in hit_events]
    true_alert_idx = set(hits.index[hits["event_id"].isin(expected["event_id"])]) if len(hits) else set()
    on_excluded = set(hits.index[hits["event_id"].isin(excluded["event_id"])]) if len(hits) else set()
    date_err, ious, type_ok, delays = [], [], [], []
    confusion: dict[str, dict[str, int]] = {}
    for ev in expected.itertuples():
        if ev.event_id not in hit_events:
            continue
        mine = a.loc[hits.index[hits["event_id"] == ev.event_id].unique()]
        first = pd.to_datetime(mine["first_detected"]).min()
        date_err.append((first - pd.Timestamp(ev.start_date)).days)
        if first_clear and first_clear.get(ev.event_id):
            delays.append((first - pd.Timestamp(first_clear[ev.event_id])).days)
        union = mine.union_all()
        ious.append(union.intersection(ev.geometry).area / union.union(ev.geometry).area)
        main = mine.loc[mine.geometry.intersection(ev.geometry).area.idxmax(), "disturbance_type"]
        type_ok.append(main == ev.type)
        confusion.setdefault(ev.type, {}).setdefault(main, 0)
        confusion[ev.type][main] += 1
    n_alerts = len(a)
    n_true = len(true_alert_idx)
    errs = np.abs(np.array(date_err, dtype=float))
    return Score(
        expected_events=len(expected),
        found_events=len(found),
        missed_events=missed,
        recall=len(found) / len(expected) if len(expected) else float("nan"),
        alerts=n_alerts,
        true_alerts=n_true,
        false_alerts=n_alerts - n_true - len(on_excluded - true_alert_idx),
        precision=n_true / n_alerts if n_alerts else float("nan"),
        alerts_on_excluded_events=len(on_excluded - true_alert_idx),
        date_error_days_median=float(np.median(date_err)) if date_err else float("nan"),
        date_error_days_max=float(errs.max()) if date_err else float("nan"),
        date_error_revisits_median=float(np.median(date_err)) / revisit_days if date_err else float("nan"),
        iou_median=float(np.median(ious)) if ious else float("nan"),
        type_accuracy=float(np.mean(type_ok)) if type_ok else float("nan"),
        type_confusion=confusion,
        type_accuracy_per_type=per_type_accuracy(confusion),
        delay_after_first_clear_days_median=float(np.median(delays)) if delays else float("nan"),
    )


def per_type_accuracy(confusion: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per true type, the found events whose main alert has that type: ``correct``, ``total``
    and ``accuracy`` (correct / total), from a confusion table true type → alert type → count."""
    out: dict[str, dict[str, float]] = {}
    for true, got in confusion.items():
        total = sum(got.values())
        correct = got.get(true, 0)
        out[true] = {"correct": correct, "total": total, "accuracy": correct / total if total else float("nan")}
    return out


def per_type_line(per_type: dict[str, dict[str, float]]) -> str:
    """One line of :attr:`Score.type_accuracy_per_type`: ``types: clearing 4/4, mining 2/2, …``
    (found events typed right / found events, per true type, in the order of the types)."""
    from redline.vocabulary import DISTURBANCE_TYPES

    order = [t for t in DISTURBANCE_TYPES if t in per_type] + sorted(set(per_type) - set(DISTURBANCE_TYPES))
    return "types: " + ", ".join(f"{t} {per_type[t]['correct']:.0f}/{per_type[t]['total']:.0f}" for t in order)


def first_clear_looks(items_json: Path, truth: gpd.GeoDataFrame, masked: tuple[int, ...], share: float = 0.5) -> dict[str, str]:
    """Event id → date of the first scene on or after the event's start whose SCL saw at least
    ``share`` of the event's pixels clear (not in ``masked``, not no data): the earliest date any
    detector could give it. Each scene's SCL COG is opened once, in date order, and read over
    the windows of the events still waiting for a clear look."""
    feats = sorted(json.loads(items_json.read_text())["features"], key=lambda f: f["properties"]["datetime"])
    starts = {ev.event_id: str(ev.start_date)[:10] for ev in truth.itertuples()}
    out: dict[str, str] = {}
    for f in feats:
        day = f["properties"]["datetime"][:10]
        waiting = [e for e, start in starts.items() if e not in out and start <= day]
        if not waiting:
            continue
        with rasterio.open(f["assets"]["scl"]["href"].removeprefix("file://")) as src:
            geoms = truth.set_index("event_id").loc[waiting].geometry.to_crs(src.crs)
            for ev, geom in geoms.items():
                win = rasterio.windows.from_bounds(*geom.bounds, transform=src.transform).round_offsets().round_lengths()
                scl = src.read(1, window=win, boundless=True, fill_value=0)
                inside = rasterio.features.geometry_mask([geom], scl.shape, src.window_transform(win), invert=True, all_touched=True)
                if inside.any() and np.isin(scl[inside], (0, *masked), invert=True).mean() >= share:
                    out[ev] = day
        if len(out) == len(starts):
            break
    return out
