"""Score a scan's alerts against ground truth (the demo generator's ``truth.gpkg``).

Matching is spatial: an alert *hits* an event when their polygons overlap (in a metric CRS).
Expected events are those inside a zone and above the minimum mapping unit; events outside
every zone or below the unit must produce no alert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = ["Score", "score_alerts"]


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
    type_confusion: dict[str, dict[str, int]]

    def as_dict(self) -> dict:
        return asdict(self)


def score_alerts(alerts: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, metric_crs: object, revisit_days: float = 10.0) -> Score:
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
    date_err, ious, type_ok = [], [], []
    confusion: dict[str, dict[str, int]] = {}
    for ev in expected.itertuples():
        if ev.event_id not in hit_events:
            continue
        mine = a.loc[hits.index[hits["event_id"] == ev.event_id].unique()]
        first = pd.to_datetime(mine["first_detected"]).min()
        date_err.append((first - pd.Timestamp(ev.start_date)).days)
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
    )
