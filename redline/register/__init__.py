"""The alert register: a GeoPackage that outlives scans (docs/architecture.md §4.4).

Layers
------
``alerts``          one row per alert (:data:`redline.alerts.ALERT_COLUMNS`), polygons in EPSG:4326.
``review_history``  append-only: ``seq, alert_id, time, by, from_status, to_status, note,
                    prev_hash, row_hash`` and (schema 2) ``step, result, activity_class, cause,
                    legality``; ``row_hash`` is the sha256 of the row's canonical JSON including
                    ``prev_hash`` (the previous row's ``row_hash``), so an edited, inserted or
                    deleted row breaks the chain. The schema-2 columns enter the hash only when
                    set, so rows written by schema 1 keep their hashes.
``scans``           one row per scan run that wrote to the register.
``meta``            ``key, value``: ``schema_version``, ``review_steps`` (comma-separated, from
                    the last scan's ``review.steps``).

Schema 2 (issue 11) adds the alert columns ``activity_candidates, activity_class, change_type,
cause, legality, before_dates, after_dates``, the statuses ``rectifying``, ``rectified``
(整改销号) and ``recovered``, and the three review steps. A schema-1 register is read as is
(missing columns empty) and written as schema 2 by the next write; nothing is lost.

Three-level review: the steps 自检 ``self_check``, 专检 ``specialist_check``, 验收
``acceptance`` (or the subset a team configures) are history rows with ``step`` and ``result``
(pass | fail). A step can be recorded once the steps before it (in the configured order) have
passed; an alert becomes ``confirmed`` only when the latest record of every configured step is a
pass.

Writes are transactions: the new register is written next to the old one and swapped in with
an atomic rename, under an exclusive lock (``<register>.lock``), so a scan killed half-way
leaves the register as it was, and two scans never write at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from redline.alerts import ALERT_COLUMNS, SCHEMA2_DEFAULTS
from redline.errors import RegisterError
from redline.vocabulary import ACTIVITY_CODES, REVIEW_STEPS, STATUSES, STEP_RESULTS, TRANSITIONS

__all__ = [
    "filter_alerts",
    "SCHEMA_VERSION",
    "STATUSES",
    "TRANSITIONS",
    "Register",
    "MergeStats",
    "merge_alerts",
    "of_scan",
    "row_hash",
]

SCHEMA_VERSION = 2
#: Who the scan's own history rows are recorded by (rectified sites re-checked).
SCAN_REVIEWER = "redline-scan"
_V1_HISTORY = ["seq", "alert_id", "time", "by", "from_status", "to_status", "note", "prev_hash", "row_hash"]
_V2_HISTORY = ["step", "result", "activity_class", "cause", "legality"]
HISTORY_COLUMNS = [*_V1_HISTORY, *_V2_HISTORY]
GENESIS = "0" * 64


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or v == ""


def row_hash(row: dict) -> str:
    """sha256 of a history row's canonical JSON (the schema-1 columns but ``row_hash``, plus
    each schema-2 column that is set)."""
    body = {k: (None if pd.isna(row[k]) else row[k]) if not isinstance(row[k], (list, dict)) else row[k]
            for k in _V1_HISTORY if k != "row_hash"}
    body.update({k: row[k] for k in _V2_HISTORY if not _blank(row.get(k))})
    body["seq"] = int(body["seq"])
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def append_history(history: pd.DataFrame, *, alert_id: str, by: str, from_status: str, to_status: str, note: str = "",
                   when: dt.datetime | None = None, **extra: str | None) -> tuple[pd.DataFrame, dict]:
    """``history`` with one hash-chained row appended (``extra``: schema-2 columns), and the row."""
    prev = history["row_hash"].iloc[-1] if not history.empty else GENESIS
    row = {
        "seq": int(history["seq"].max()) + 1 if not history.empty else 1,
        "alert_id": alert_id,
        "time": (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "by": by,
        "from_status": from_status,
        "to_status": to_status,
        "note": note or "",
        "prev_hash": prev,
        **{k: (extra.get(k) or None) for k in _V2_HISTORY},
    }
    row["row_hash"] = row_hash(row)
    return pd.concat([history, pd.DataFrame([row])], ignore_index=True) if not history.empty else pd.DataFrame([row], columns=HISTORY_COLUMNS), row


def steps_state(history: pd.DataFrame, alert_id: str) -> dict[str, dict]:
    """The latest record of each review step of an alert: step → history row (dict)."""
    if history.empty or "step" not in history:
        return {}
    h = history[(history["alert_id"] == alert_id) & history["step"].notna() & (history["step"] != "")]
    return {r["step"]: r for r in h.sort_values("seq").to_dict("records")}


@dataclass(frozen=True)
class MergeStats:
    new: int
    updated: int
    unchanged: int


def _next_id(zone_id: str, first: str, taken: set[str]) -> str:
    stem = f"{zone_id}-{first.replace('-', '')}"
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def of_scan(alerts: gpd.GeoDataFrame, scan_id: str) -> np.ndarray:
    """Boolean mask of the alerts the scan ``scan_id`` found or updated (``scan_ids`` holds it). A plain
    bool array: an empty object Series used as a mask would select columns instead of rows."""
    return np.array([scan_id in str(s or "").split(",") for s in alerts["scan_ids"]], dtype=bool)


def merge_alerts(existing: gpd.GeoDataFrame, found: gpd.GeoDataFrame, scan_id: str) -> tuple[gpd.GeoDataFrame, MergeStats]:
    """Merge a scan's alerts into the register's: same place ⇒ same alert.

    A found alert that intersects an existing alert of the same zone updates it: geometry is
    the union, area and centroid are recomputed by the caller's area function,
    ``first_detected`` the earlier, ``last_observed`` the later, ``n_observations`` and
    ``confidence`` the larger, and ``scan_ids`` gains this scan. Status and review history are
    never touched. Other found alerts are added with a new stable id ``<zone>-<yyyymmdd>-<n>``.
    """
    reg = existing.copy()
    taken = set(reg["alert_id"]) if not reg.empty else set()
    stats = {"new": 0, "updated": 0, "unchanged": 0}
    conf_rank = {"low": 0, "nominal": 1, "high": 2}
    new_rows = []
    for _, a in found.iterrows():
        hit = reg[(reg["zone_id"] == a["zone_id"]) & reg.geometry.intersects(a.geometry)] if not reg.empty else reg
        if hit.empty:
            row = a.copy()
            row["alert_id"] = _next_id(str(a["zone_id"]), a["first_detected"], taken)
            taken.add(row["alert_id"])
            new_rows.append(row)
            stats["new"] += 1
            continue
        i = hit.index[0]
        old = reg.loc[i].copy()
        geom = shapely.union_all([reg.at[i, "geometry"], a.geometry])
        scans = [s for s in str(old["scan_ids"] or "").split(",") if s]
        if scan_id not in scans:
            scans.append(scan_id)
        update = {
            "geometry": geom,
            "first_detected": min(old["first_detected"], a["first_detected"]),
            "last_observed": max(old["last_observed"], a["last_observed"]),
            "n_observations": max(int(old["n_observations"]), int(a["n_observations"])),
            "confidence": max(old["confidence"], a["confidence"], key=conf_rank.get),
            "magnitude": max(float(old["magnitude"]), float(a["magnitude"])),
            "scan_ids": ",".join(scans),
            "activity_candidates": a.get("activity_candidates"),
        }
        if _blank(old.get("change_type")):  # decided once, from the first scan that saw the alert
            update["change_type"] = a.get("change_type")
        # a dismissed alert whose patch keeps growing is flagged for a second look, not re-opened
        if old["status"] == "dismissed" and shapely.area(geom) > 1.1 * shapely.area(old["geometry"]):
            update["recheck"] = 1
        changed = any(
            (not shapely.equals(old["geometry"], v)) if k == "geometry" else not (old.get(k) == v or (_blank(old.get(k)) and _blank(v)))
            for k, v in update.items()
        )
        for k, v in update.items():
            reg.at[i, k] = v
        stats["updated" if changed else "unchanged"] += 1
    if new_rows:
        reg = pd.concat([reg, gpd.GeoDataFrame(new_rows, geometry="geometry", crs=found.crs or "EPSG:4326")], ignore_index=True)
    reg = gpd.GeoDataFrame(reg, geometry="geometry", crs="EPSG:4326")
    reg["recheck"] = reg["recheck"].fillna(0).astype(int) if "recheck" in reg else 0
    return reg, MergeStats(**stats)


def filter_alerts(
    alerts: gpd.GeoDataFrame,
    *,
    status: str | None = None,
    zone: str | None = None,
    admin: str | None = None,
    disturbance_type: str | None = None,
    confidence: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> gpd.GeoDataFrame:
    """Alerts matching every given filter (dates compare ``first_detected``, ISO YYYY-MM-DD)."""
    a = alerts
    for col, value in (("status", status), ("zone_id", zone), ("admin_id", admin), ("disturbance_type", disturbance_type), ("confidence", confidence)):
        if value is not None:
            a = a[a[col] == value]
    if since is not None:
        a = a[a["first_detected"] >= since]
    if until is not None:
        a = a[a["first_detected"] <= until]
    return a.sort_values("alert_id")


class Register:
    """The alert register at ``path`` (a GeoPackage; created on first write)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    # -- reading -------------------------------------------------------------------------------
    def _check_schema(self) -> None:
        if not self.path.exists():
            return
        try:
            layers = {name for name, _ in pyogrio.list_layers(self.path)}
        except (pyogrio.errors.DataSourceError, OSError) as exc:
            raise RegisterError(f"{self.path}: cannot open the register ({exc}); is it a redline register GeoPackage?") from None
        if "alerts" not in layers and "meta" not in layers:
            raise RegisterError(f"{self.path}: not a redline register (no 'alerts' or 'meta' layer; layers: {', '.join(sorted(layers)) or 'none'}); give another `register:` path")
        if "meta" in layers:
            meta = pyogrio.read_dataframe(self.path, layer="meta", read_geometry=False)
            try:
                version = int(meta.loc[meta["key"] == "schema_version", "value"].iloc[0])
            except (KeyError, IndexError, ValueError):
                raise RegisterError(f"{self.path}: the register's meta layer has no valid schema_version; restore it from a backup") from None
            if version > SCHEMA_VERSION:
                raise RegisterError(
                    f"{self.path}: register schema version {version} is newer than this redline supports "
                    f"({SCHEMA_VERSION}); upgrade redline"
                )

    def alerts(self) -> gpd.GeoDataFrame:
        """All alerts (EPSG:4326); an empty frame with the contract's columns if none."""
        self._check_schema()
        if self.path.exists() and "alerts" in {n for n, _ in pyogrio.list_layers(self.path)}:
            df = gpd.read_file(self.path, layer="alerts", engine="pyogrio")
            if not df.empty:
                if "recheck" not in df:
                    df["recheck"] = 0
                for col, default in SCHEMA2_DEFAULTS.items():  # a schema-1 register
                    if col not in df:
                        df[col] = default
                return df[[*ALERT_COLUMNS, "geometry"]]
        return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in ALERT_COLUMNS}, geometry=[], crs="EPSG:4326")

    def _table(self, layer: str, columns: list[str]) -> pd.DataFrame:
        if self.path.exists() and layer in {n for n, _ in pyogrio.list_layers(self.path)}:
            df = pyogrio.read_dataframe(self.path, layer=layer, read_geometry=False)
            if "fid" in df.columns:
                df = df.drop(columns="fid")
            return df
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})

    def history(self) -> pd.DataFrame:
        """The review history, ordered by ``seq`` (schema-2 columns None in schema-1 rows)."""
        h = self._table("review_history", HISTORY_COLUMNS)
        for col in _V2_HISTORY:
            if col not in h:
                h[col] = None
        return h.sort_values("seq").reset_index(drop=True)[HISTORY_COLUMNS] if not h.empty else h[HISTORY_COLUMNS]

    def meta(self) -> dict[str, str]:
        """The ``meta`` layer as a dict (empty for a new register)."""
        m = self._table("meta", ["key", "value"])
        return dict(zip(m["key"], m["value"])) if not m.empty else {}

    def review_steps(self) -> tuple[str, ...]:
        """The review steps an alert needs before ``confirmed`` (meta ``review_steps``, written
        by each scan from its ``review.steps``; all three when never set)."""
        text = self.meta().get("review_steps")
        return tuple(s for s in text.split(",") if s) if text is not None else tuple(REVIEW_STEPS)

    def scans(self) -> pd.DataFrame:
        return self._table("scans", ["scan_id", "name", "config_sha256", "started", "finished", "monitor_start", "monitor_end", "n_items", "new", "updated", "unchanged"])

    # -- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 30.0) -> Iterator[None]:
        """Exclusive writer lock; waits up to ``timeout`` seconds, then refuses with a clear error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fh = open(lock_path, "a+")
        except OSError as exc:
            raise RegisterError(f"{self.path}: cannot create the lock file {lock_path} ({exc.strerror}); check folder permissions") from None
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RegisterError(
                            f"{self.path}: the register is locked by another scan (waited {timeout:.0f} s); "
                            "wait for it to finish or use another register"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def _read_only(self) -> bool:
        """A register without write permission, or marked read-only (no write bit for anyone,
        e.g. ``chmod a-w`` to freeze it), is never written, not even by root."""
        return self.path.exists() and (not os.access(self.path, os.W_OK) or not self.path.stat().st_mode & 0o222)

    def check_writable(self) -> None:
        """Refuse, before a scan starts, a register this scan could not write: read-only, of a
        newer schema, not a register, or in a folder that cannot be written."""
        self._check_schema()
        if self._read_only():
            raise RegisterError(f"{self.path}: the register is read-only; make it writable (chmod u+w) or set `register:` to another file")
        folder = next((p for p in [self.path.parent, *self.path.parent.parents] if p.exists()), None)
        if folder is None or not os.access(folder, os.W_OK):
            raise RegisterError(f"{self.path}: cannot write in folder {folder}; check its permissions or set `register:` to another file")

    def write(self, alerts: gpd.GeoDataFrame, history: pd.DataFrame, scans: pd.DataFrame, *, review_steps: tuple[str, ...] | None = None) -> None:
        """Write all layers to a temporary GeoPackage and swap it in atomically (call under :meth:`lock`).
        ``review_steps`` replaces the stored required steps (kept as they are when None)."""
        steps = ",".join(review_steps) if review_steps is not None else (self.meta().get("review_steps") if self.path.exists() else None)
        if self._read_only():
            raise RegisterError(f"{self.path}: the register is read-only; make it writable (chmod u+w) or set `register:` to another file")
        tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp.gpkg")
        for stale in self.path.parent.glob(f".{self.path.stem}.*.tmp.gpkg"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        try:
            alerts = gpd.GeoDataFrame(alerts[[*ALERT_COLUMNS, "geometry"]], geometry="geometry", crs="EPSG:4326")
            alerts = alerts.astype({"n_observations": "int64", "area_m2": "float64", "magnitude": "float64"}) if not alerts.empty else alerts
            text_cols = list(SCHEMA2_DEFAULTS)
            alerts[text_cols] = alerts[text_cols].astype("object")
            pyogrio.write_dataframe(alerts, tmp, layer="alerts", driver="GPKG", geometry_type="MultiPolygon" if alerts.empty else None, promote_to_multi=True)
            for layer, df in (("review_history", history), ("scans", scans)):
                if not df.empty:
                    pyogrio.write_dataframe(df.reset_index(drop=True), tmp, layer=layer, driver="GPKG")
            meta = {"schema_version": str(SCHEMA_VERSION), **({"review_steps": steps} if steps is not None else {})}
            pyogrio.write_dataframe(pd.DataFrame({"key": list(meta), "value": list(meta.values())}), tmp, layer="meta", driver="GPKG")
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RegisterError(f"{self.path}: cannot write the register ({exc.strerror or exc}); check disk space and permissions") from None

    # -- reviewing ------------------------------------------------------------------------------
    def review(
        self, alert_id: str, *, by: str, to_status: str | None = None, note: str | None = None, when: dt.datetime | None = None,
        step: str | None = None, result: str | None = None, activity_class: str | None = None,
        cause: str | None = None, legality: str | None = None,
    ) -> dict:
        """Record a review decision as one hash-chained history row.

        Parameters
        ----------
        to_status
            New status (checked against :data:`TRANSITIONS`); None keeps the current one.
        step, result
            A review step (:data:`REVIEW_STEPS`, one of the register's :meth:`review_steps`) and
            its result (pass | fail, default pass). The steps before it must have passed.
        activity_class
            The reviewer's activity class (:data:`redline.alerts.activity.ACTIVITY_CODES`).
        cause, legality
            Free text: the cause found on the ground and the legality note (e.g. a permit number).

        ``confirmed`` is refused until every configured step's latest record is a pass (a step
        given in the same call counts).
        """

        if to_status is not None and to_status not in STATUSES:
            raise RegisterError(f"--status {to_status!r} is not a status; use one of {', '.join(STATUSES)}")
        if not by or not by.strip():
            raise RegisterError("--by is empty; give the reviewer's name")
        if activity_class is not None and activity_class not in ACTIVITY_CODES:
            raise RegisterError(f"--class {activity_class!r} is not an activity class; use one of {', '.join(ACTIVITY_CODES)}")
        if result is not None and step is None:
            raise RegisterError("--result needs --step; give the review step it belongs to")
        if step is not None and result is None:
            result = "pass"
        if result is not None and result not in STEP_RESULTS:
            raise RegisterError(f"--result {result!r} is not a step result; use pass or fail")
        if all(v is None for v in (to_status, step, activity_class, cause, legality)):
            raise RegisterError("nothing to record; give --status, --step, --class, --cause or --legality")
        with self.lock():
            alerts = self.alerts()
            hit = alerts.index[alerts["alert_id"] == alert_id]
            if len(hit) == 0:
                raise RegisterError(f"{self.path}: no alert '{alert_id}'; list them with `redline alerts list`")
            i = hit[0]
            current = alerts.at[i, "status"]
            target = to_status or current
            if to_status is not None and to_status not in TRANSITIONS[current]:
                allowed = ", ".join(TRANSITIONS[current]) or "none"
                raise RegisterError(f"alert {alert_id}: cannot go from '{current}' to '{to_status}'; allowed: {allowed}")
            history = self.history()
            required = self.review_steps()
            done = {k: r["result"] for k, r in steps_state(history, alert_id).items()}
            if step is not None:
                if step not in required:
                    raise RegisterError(f"--step {step!r} is not one of this register's review steps ({', '.join(required)}); see review.steps in the scan config")
                missing = [s for s in required[: required.index(step)] if done.get(s) != "pass"]
                if missing:
                    raise RegisterError(f"alert {alert_id}: step '{step}' needs {', '.join(missing)} passed first")
                done[step] = result
            if to_status == "confirmed":
                missing = [s for s in required if done.get(s) != "pass"]
                if missing:
                    raise RegisterError(f"alert {alert_id}: cannot be confirmed before the review step(s) {', '.join(missing)} have passed; record them with --step")
            history, row = append_history(
                history, alert_id=alert_id, by=by.strip(), from_status=current, to_status=target, note=note or "", when=when,
                step=step, result=result, activity_class=activity_class, cause=cause, legality=legality,
            )
            alerts.at[i, "status"] = target
            for col, value in (("activity_class", activity_class), ("cause", cause), ("legality", legality)):
                if value is not None:
                    alerts.at[i, col] = value
            self.write(alerts, history, self.scans())
            return row

    def verify_history(self) -> list[str]:
        """Walk the hash chain; return one message per broken link (empty when intact)."""
        problems = []
        prev = GENESIS
        expected_seq = 1
        for row in self.history().to_dict("records"):
            if int(row["seq"]) != expected_seq:
                problems.append(f"review_history: row seq {row['seq']} where {expected_seq} was expected (a row was inserted or deleted)")
                expected_seq = int(row["seq"])
            if row["prev_hash"] != prev:
                problems.append(f"review_history: row seq {row['seq']} does not chain to the previous row (a row was inserted, deleted or edited)")
            if row_hash(row) != row["row_hash"]:
                problems.append(f"review_history: row seq {row['seq']} (alert {row['alert_id']}) was edited after it was written")
            prev = row["row_hash"]
            expected_seq += 1
        problems += self._status_matches_history()
        return problems

    def _status_matches_history(self) -> list[str]:
        """Each alert's status must be where its history leaves it (``new`` with no history):
        catches a deleted last row, which the chain alone cannot, and a status edited in place."""
        alerts = self.alerts()
        if alerts.empty:
            return []
        last = self.history().groupby("alert_id")["to_status"].last() if not self.history().empty else pd.Series(dtype=str)
        out = []
        for aid, status in zip(alerts["alert_id"], alerts["status"], strict=True):
            expected = last.get(aid, "new")
            if status != expected:
                out.append(f"alerts: alert {aid} has status '{status}' but its review history ends at '{expected}' (a history row was deleted or the status edited)")
        h = self.history()
        for col in ("activity_class", "cause", "legality"):
            set_rows = h[h[col].notna() & (h[col] != "")] if not h.empty else h
            last_set = set_rows.groupby("alert_id")[col].last() if not set_rows.empty else pd.Series(dtype=str)
            for aid, value in zip(alerts["alert_id"], alerts[col], strict=True):
                expected = last_set.get(aid)
                if not (_blank(value) and expected is None) and value != expected:
                    out.append(f"alerts: alert {aid} has {col} {value!r} but its review history sets {expected!r} (the field was edited outside `redline alerts review`)")
        return out
