"""The alert register: every alert and every decision on it, in a GeoPackage or a PostGIS database.

Layout (schema 3; docs/architecture.md §4.4)
--------------------------------------------
``alerts``          one row per alert (:data:`redline.alerts.ALERT_COLUMNS`), MultiPolygons in
                    EPSG:4326, ``alert_id`` unique.
``review_history``  append-only and hash-chained: ``seq, alert_id, time, by, from_status,
                    to_status, note, prev_hash, row_hash``, the review columns ``step, result,
                    activity_class, cause, legality`` and (schema 3) ``kind, payload, key_id,
                    signature``. ``row_hash`` is the sha256 of the row's canonical JSON including
                    ``prev_hash`` (the previous row's ``row_hash``); columns added after schema 1
                    enter it only when set, so older rows keep their hashes. ``signature`` is the
                    ed25519 signature of ``row_hash`` by the key ``key_id``
                    (:mod:`redline.register.keys`).
``alert_seals``     ``seq, alert_id, seal``: the sha256 of each alert's scan-owned fields
                    (every column but the review-owned ``status, activity_class, cause,
                    legality``, and the geometry) as the scan entry ``seq`` wrote them.
``signers``         the keys that may sign: ``key_id, public_key, role`` (admin | signer), an
                    index of the signed ``key`` entries of the history.
``scans``           one row per scan id that wrote to the register.
``meta``            ``key, value``: ``schema_version``.
``users``           the review service's accounts (:mod:`redline.register.users`): ``name``
                    (unique), ``role``, ``counties``, ``zones``, ``password_hash`` (argon2id),
                    ``disabled``, ``created``, ``seq``; created when missing by the first user.
``teams``           teams of users that alerts are assigned to: ``name`` (unique; one namespace
                    with the users), ``members`` (a comma list of user names), ``disabled``,
                    ``created``, ``seq``; created when missing by the first team.

Entries (``kind``): ``review`` (a decision on one alert: a status, a review step, a class, a
cause, a legality, or a field check's finding, whose ``payload`` is ``{"field": …}`` with the
sha256 of each photo (:mod:`redline.register.photos`); scans record their re-checks of
rectified sites as ``review`` rows by ``redline-scan``), ``key`` (a key allowed to sign; the
first is the register's own, an admin, self-signed), ``policy`` (the review steps an alert needs before ``confirmed``; admins only),
``scan`` (a scan's merge: its ``scans`` row and the digest of the seals it wrote), ``user``
(a user added or changed: name, role, scope, disabled, the sha256 of the password hash; admins
only) and ``team`` (a team added or changed: name, members, disabled; admins only). ``assign``
(an alert handed to a user, payload ``{"to": name}``, or to a team, ``{"to": name, "team": true}``;
``{"to": null}`` takes it back) is about one alert, as ``review``. The policy names the role of each step (``step_roles``) and whether duties are separated.

Who may record what (:mod:`redline.register.rules`): a register with users accepts decisions
only by an enabled user whose role and scope allow them, one review step of an alert per user;
a register without users records any name (single-user mode).

Transactions, not rewrites: a decision is one transaction that reads one alert and the chain's
head, inserts one history row and updates one alert; a scan's merge is one transaction. A
writer waits at most ``lock_timeout`` seconds for another writer's transaction, never for a
whole scan (two scans of one register still run one after the other: :meth:`Register.lock`).

What the signatures prove, and what they do not (docs/architecture.md §4.4): someone who holds
the register but not a signer's key cannot edit, insert, reorder or forge an entry, change a
scan-owned alert field, delete an alert, or change the review policy without :meth:`verify`
naming the entry; they can delete the newest entries (the tail) and set the statuses back to
match. That is caught against a chain head published earlier: the manifest and the report carry
the head at scan time, and ``redline verify --head HASH`` checks any head written down since.

Three-level review: the steps 自检 ``self_check``, 专检 ``specialist_check``, 验收
``acceptance`` (or the subset the policy names) are history rows with ``step`` and ``result``
(pass | fail). A step can be recorded once the steps before it have passed; an alert becomes
``confirmed`` only when the latest record of every required step is a pass.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from redline.vocabulary import ALERT_COLUMNS
from redline.errors import NotPermitted, RegisterError
from redline.register.keys import SigningKey, key_id_of, load_key, verify_signature
from redline.register.photos import FieldFinding, default_photo_folder, verify_photos
from redline.register.postgis import PostgisStore
from redline.register.rules import Actions, Policy, StepRecord, allowed_actions, assign_refusal, refusal
from redline.outputs import is_register_url
from redline.register.store import TABLE_COLUMNS, GeoPackageStore, Store, Tx
from redline.register.users import (
    Team, User, check_name, check_role, dummy_verify, hash_password, holder_names, parse_codes, parse_members, password_matches, team_payload,
    user_payload,
)
from redline.vocabulary import ACTIVITY_CODES, REVIEW_STEPS, STATUSES, STEP_RESULTS, TRANSITIONS

__all__ = [
    "filter_alerts",
    "SCHEMA_VERSION",
    "STATUSES",
    "TRANSITIONS",
    "Register",
    "MergeStats",
    "Verification",
    "merge_alerts",
    "of_scan",
    "row_hash",
    "alert_seal",
    "alert_fields",
    "append_history",
    "steps_state",
    "HISTORY_COLUMNS",
    "ALERT_KINDS",
    "REVIEW_OWNED",
    "SCAN_REVIEWER",
    "Policy",
    "User",
    "Team",
    "Actions",
    "FieldFinding",
    "AlertChanges",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
#: Who the scan's own history rows are recorded by (merges, rectified sites re-checked).
SCAN_REVIEWER = "redline-scan"
_V1_HISTORY = ["seq", "alert_id", "time", "by", "from_status", "to_status", "note", "prev_hash", "row_hash"]
_V2_HISTORY = ["step", "result", "activity_class", "cause", "legality"]
_V3_HISTORY = ["kind", "payload"]  # in the hash when set; key_id and signature are not (the signature binds the key)
HISTORY_COLUMNS = [*_V1_HISTORY, *_V2_HISTORY, *_V3_HISTORY, "key_id", "signature"]
GENESIS = "0" * 64
#: Alert fields that decisions change; every other field (and the geometry) is the scans'.
REVIEW_OWNED = ("status", "activity_class", "cause", "legality")
SCAN_OWNED = [c for c in ALERT_COLUMNS if c not in REVIEW_OWNED]
_REAL = {"area_m2", "centroid_lon", "centroid_lat", "magnitude"}
_INTEGER = {"n_observations", "recheck"}
ALERT_TYPES = {c: "REAL" if c in _REAL else "INTEGER" if c in _INTEGER else "TEXT" for c in ALERT_COLUMNS}
_HISTORY_TYPES = {c: "INTEGER NOT NULL" if c == "seq" else "TEXT" for c in HISTORY_COLUMNS}
#: History entry kinds about one alert that people write: ``review`` (a decision, step or note) and
#: ``assign`` (the alert handed to a user, payload ``{"to": name}``, or to a team,
#: ``{"to": name, "team": true}``; ``null`` takes it back).
ALERT_KINDS = ("review", "assign")
SCAN_COLUMNS = ["scan_id", "name", "config_sha256", "started", "finished", "monitor_start", "monitor_end", "n_items", "new", "updated", "unchanged"]


def _blank(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v) or (isinstance(v, str) and v == "")


def row_hash(row: Mapping) -> str:
    """sha256 of a history row's canonical JSON (the schema-1 columns but ``row_hash``, plus
    each later column that is set; never ``key_id`` and ``signature``)."""
    body = {k: (None if _blank(row[k]) and not isinstance(row[k], str) else row[k]) for k in _V1_HISTORY if k != "row_hash"}
    body.update({k: row[k] for k in (*_V2_HISTORY, *_V3_HISTORY) if not _blank(row.get(k))})
    body["seq"] = int(body["seq"])
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def append_history(history: pd.DataFrame, *, alert_id: str, by: str, from_status: str, to_status: str, note: str = "",
                   when: dt.datetime | None = None, **extra: str | None) -> tuple[pd.DataFrame, dict]:
    """``history`` (a frame, in memory) with one hash-chained, unsigned decision row appended
    (``extra``: the review columns), and the row. The register signs the rows it stores;
    this is for code that works on a copy, e.g. the rectification re-check."""
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
        "kind": "review",
        "payload": None,
    }
    row["row_hash"] = row_hash(row)
    row.update(key_id=None, signature=None)
    new = pd.DataFrame([row], columns=HISTORY_COLUMNS)
    return (pd.concat([history, new], ignore_index=True) if not history.empty else new), row


def steps_state(history: pd.DataFrame, alert_id: str) -> dict[str, dict]:
    """The latest record of each review step of an alert: step → history row (dict)."""
    if history.empty or "step" not in history:
        return {}
    h = history[(history["alert_id"] == alert_id) & history["step"].notna() & (history["step"] != "")]
    return {r["step"]: r for r in h.sort_values("seq").to_dict("records")}


def _multi(geom: Any) -> Any:
    """Polygons as one-part MultiPolygons: the register's geometry type."""
    return shapely.MultiPolygon([geom]) if isinstance(geom, shapely.Polygon) else geom


def _canon(column: str, value: Any) -> Any:
    """A field's value as the register stores it (blank → None; REAL → float; INTEGER → int)."""
    if _blank(value):
        return None
    if column in _REAL:
        return float(value)
    if column in _INTEGER:
        return int(value)
    return str(value)


def alert_fields(row: Mapping) -> dict[str, Any]:
    """An alert's scan-owned fields as the register stores them, with the sha256 of its
    geometry (ISO WKB, little-endian, as a MultiPolygon) as ``geometry_sha256``."""
    body = {c: _canon(c, row.get(c)) for c in SCAN_OWNED}
    body["geometry_sha256"] = hashlib.sha256(shapely.to_wkb(_multi(row["geometry"]), byte_order=1, flavor="iso")).hexdigest()
    return body


def alert_seal(row: Mapping) -> str:
    """sha256 of :func:`alert_fields`' canonical JSON: what a scan entry signs for each alert it wrote."""
    return hashlib.sha256(json.dumps(alert_fields(row), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sealed(rows: list[Mapping]) -> list[tuple[str, str, str]]:
    """Per alert row: its id, :func:`alert_seal` and the canonical JSON of its fields (what
    ``alert_seals`` stores)."""
    texts = [json.dumps(alert_fields(r), sort_keys=True, ensure_ascii=False) for r in rows]
    return [(str(_canon("alert_id", r.get("alert_id"))), hashlib.sha256(t.encode()).hexdigest(), t) for r, t in zip(rows, texts)]


def _holder(payload: str | None) -> str | None:
    """The user or team an ``assign`` entry's payload hands its alert to (None: taken back)."""
    return (json.loads(payload).get("to") or None) if payload else None


def _seals_digest(seals: list[tuple[str, str]]) -> str:
    """sha256 over a scan entry's sorted ``(alert_id, seal)`` pairs."""
    return hashlib.sha256("".join(f"{a} {s}\n" for a, s in sorted(seals)).encode()).hexdigest()


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


@dataclass
class Verification:
    """What :meth:`Register.verify` checked and what it found (``problems`` empty: intact)."""

    problems: list[str] = field(default_factory=list)
    rows: int = 0  # history entries walked
    signed: int = 0  # signatures checked and valid
    unsigned: int = 0  # entries written before schema 3 (chain only)
    alerts: int = 0
    sealed: int = 0  # alerts whose fields match their last scan entry's seal
    head: dict[str, Any] | None = None  # the last entry: seq, row_hash, signature, key_id
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # key id → (public key, role), from the signed key entries
    photos: int = 0  # photos the field findings name (redline.register.photos)
    photos_intact: int = 0  # of them, present with their signed sha256

    @property
    def signers(self) -> dict[str, str]:
        """Key id → role of the keys the signed entries allow."""
        return {k: role for k, (_, role) in self.keys.items()}


def _same_file(fh: Any, path: Path) -> bool:
    """True when the open file ``fh`` is still the file at ``path`` (same device and inode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fh.fileno())
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _empty_alerts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in ALERT_COLUMNS}, geometry=[], crs="EPSG:4326")


def _number(value: Any, blank: float = float("nan")) -> float:
    """``value`` as a float (as ``pd.to_numeric(errors="coerce")``: what is no number is ``blank``)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return blank
    return blank if f != f else f


def _alert_table(rows: list[tuple], cols: list[str], *, objects: bool = False) -> pd.DataFrame:
    """Alert rows of the columns ``cols`` as a frame of every :data:`ALERT_COLUMNS` (missing
    ones blank, ``recheck`` 0), REAL columns float64 and INTEGER columns int64; the text
    columns as pandas infers them, or with ``objects`` as the Python values read (None where
    NULL)."""
    if objects:  # column by column: a few rows (a decision's) cost little
        values = dict(zip(cols, zip(*rows))) if rows else {}
        blank = (None,) * len(rows)
        return pd.DataFrame({c: np.array([_number(v) for v in values.get(c, blank)], dtype="float64") if c in _REAL
                             else np.array([int(_number(v, 0)) for v in values.get(c, blank)], dtype="int64") if c in _INTEGER
                             else pd.Series(values.get(c, blank), dtype=object) for c in ALERT_COLUMNS})
    if rows:
        df = pd.DataFrame(rows, columns=cols)
    else:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    for c in ALERT_COLUMNS:
        if c not in df:
            df[c] = 0 if c == "recheck" else None
    for c in _REAL:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in _INTEGER:
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0).astype("int64")
    return df[ALERT_COLUMNS]


@dataclass(frozen=True)
class AlertChanges:
    """What :meth:`Register.alert_changes` found: the chain's ``head`` (``seq``, ``row_hash``,
    ``signature``, ``key_id``; None: no entry yet); ``alerts`` (no geometry; numbers as
    :meth:`Register.alerts` reads them, text as Python objects, None where blank): every alert
    when ``full``, else those changed since the given entry (None: none changed); and
    ``assigned``: when ``full`` who holds each alert now (as :meth:`Register.assignments`), else
    the alerts whose assignment changed since the given entry → their holder now (None: taken
    back); ``teams``: when ``full`` every team (as :meth:`Register.teams`), else None (a team
    changes only with a ``team`` entry, after which the changes are ``full``)."""

    head: dict[str, Any] | None
    full: bool
    alerts: pd.DataFrame | None
    assigned: dict[str, str | None] = field(default_factory=dict)
    teams: tuple[Team, ...] | None = None


def _q(name: str) -> str:
    return f'"{name}"'


def _insert_alerts(tx: Tx, store: Store, rows: list[Mapping[str, Any]]) -> None:
    """Insert whole alert rows (every column as the register stores it; no status: ``new``)."""
    cols = list(ALERT_COLUMNS)
    tx.many(f'INSERT INTO "alerts" ("geom", {", ".join(map(_q, cols))}) VALUES ({store.geom_param}, {", ".join("?" * len(cols))})',
            [[store.encode_geometry(_multi(r["geometry"])), *[(r.get(c) or "new") if c == "status" else _canon(c, r.get(c)) for c in cols]]
             for r in rows])


class Register:
    """The alert register at ``location``: a GeoPackage path (created on the first write) or a
    ``postgresql://`` URL.

    Parameters
    ----------
    key
        The signing key of writes; default: :func:`redline.register.keys.load_key` at the first
        write (reading and verifying need no key).
    lock_timeout
        Seconds a write waits for another writer's transaction before it refuses (one line).
    """

    def __init__(self, location: Path | str, *, key: SigningKey | None = None, lock_timeout: float = 30.0):
        self.location = str(location)
        self.store: Store = PostgisStore(str(location)) if is_register_url(location) else GeoPackageStore(location)
        self.path: Path | None = None if is_register_url(location) else Path(location)
        self._key = key
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Register({self.store.describe()!r})"

    @property
    def key(self) -> SigningKey:
        """The key this register's writes are signed with (loaded at first use)."""
        if self._key is None:
            self._key = load_key()
        return self._key

    # -- reading -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[Tx | None]:
        """A read snapshot of the register (None: it does not exist yet), after the schema check."""
        if not self.store.exists():
            yield None
            return
        with self.store.transaction(write=False, timeout=self.lock_timeout) as tx:
            yield tx if self._version(tx) is not None else None

    def _version(self, tx: Tx) -> int | None:
        """The schema version (None: an empty database); refuses a newer register or a database
        that is not a register."""
        tables = self.store.tables(tx)
        if "alerts" not in tables and "meta" not in tables:
            if not tables or tables <= {"spatial_ref_sys", "geography_columns", "geometry_columns"}:
                return None
            raise RegisterError(f"{self.store.describe()}: not a redline register (no 'alerts' or 'meta' table; tables: "
                                f"{', '.join(sorted(tables))}); give another `register:` path")
        if "meta" not in tables:
            return 1
        try:
            version = int(tx.one('SELECT "value" FROM "meta" WHERE "key" = ?', ("schema_version",))[0])
        except (TypeError, ValueError):
            raise RegisterError(f"{self.store.describe()}: the register's meta table has no valid schema_version; restore it from a backup") from None
        if version > SCHEMA_VERSION:
            raise RegisterError(f"{self.store.describe()}: register schema version {version} is newer than this redline supports "
                                f"({SCHEMA_VERSION}); upgrade redline")
        return version

    def _frame(self, tx: Tx, table: str, wanted: list[str], where: str = "", order: str = '"fid"', params: tuple = ()) -> pd.DataFrame:
        if table not in self.store.tables(tx):
            return pd.DataFrame({c: pd.Series(dtype="object") for c in wanted})
        have = set(self.store.columns(tx, table))
        cols = [c for c in wanted if c in have]
        rows = tx.rows(f"SELECT {', '.join(map(_q, cols))} FROM {_q(table)} {where} ORDER BY {order}", params)
        df = pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        for c in wanted:
            if c not in df:
                df[c] = None
        return df[wanted]

    def _alerts(self, tx: Tx) -> gpd.GeoDataFrame:
        if "alerts" not in self.store.tables(tx):
            return _empty_alerts()
        have = set(self.store.columns(tx, "alerts"))
        cols = [c for c in ALERT_COLUMNS if c in have]
        rows = tx.rows(f'SELECT {self.store.geom_select}, {", ".join(map(_q, cols))} FROM "alerts" ORDER BY "fid"')
        if not rows:
            return _empty_alerts()
        return gpd.GeoDataFrame(_alert_table([r[1:] for r in rows], cols), geometry=self.store.decode_geometry([r[0] for r in rows]),
                                crs="EPSG:4326")

    def _alert_rows(self, tx: Tx, ids: list[str] | None = None) -> pd.DataFrame:
        """The alerts without geometry (of ``ids``; every alert with None), in ``fid`` order;
        text as the Python values read (None where NULL)."""
        if "alerts" not in self.store.tables(tx):
            return _alert_table([], list(ALERT_COLUMNS), objects=True)
        cols = [c for c in ALERT_COLUMNS if c in set(self.store.columns(tx, "alerts"))]
        select = f'SELECT {", ".join(map(_q, cols))} FROM "alerts"'
        if ids is None:
            return _alert_table(tx.rows(f'{select} ORDER BY "fid"'), cols, objects=True)
        rows: list[tuple] = []
        for i in range(0, len(ids), 500):  # bound the parameters of one statement
            chunk = ids[i:i + 500]
            rows += tx.rows(f'{select} WHERE "alert_id" IN ({", ".join("?" * len(chunk))}) ORDER BY "fid"', chunk)
        return _alert_table(rows, cols, objects=True)

    def alert_changes(self, since: Mapping[str, Any] | None = None) -> AlertChanges:
        """The alerts (without geometry) and the assignments that changed after the chain's
        entry ``since`` (``seq`` and ``row_hash``, as :meth:`head` gives them), read in one
        snapshot with the head they lead to.

        Only entries about alerts (:data:`ALERT_KINDS`) came after ``since``: the alerts the
        ``review`` entries name, as they are now (an ``assign`` entry changes no alert row), and
        the holders the ``assign`` entries leave. Anything else (a scan, a policy, a key or user
        entry), no ``since``, or a ``since`` that is no longer in the chain (another register, a
        shortened chain): every alert, every holder and every team (``full``). Nothing changed: ``full``
        False, ``alerts`` None, ``assigned`` empty. Every change to an alert comes with a history
        entry (a scan's seal or a decision), so a reader that applies these changes to its copy
        holds what :meth:`alerts` and :meth:`assignments` would read."""
        with self._reading() as tx:
            if tx is None or "review_history" not in self.store.tables(tx):
                return AlertChanges(head=None, full=True, alerts=self._alert_rows(tx) if tx is not None else _alert_table([], list(ALERT_COLUMNS), objects=True),
                                    teams=tuple(self._teams(tx)) if tx is not None else ())
            head = self._head(tx)
            same = head is not None and since is not None and (int(since["seq"]), since["row_hash"]) == (head["seq"], head["row_hash"])
            if same:
                return AlertChanges(head=head, full=False, alerts=None)
            kinds = "kind" in self._history_columns(tx)
            if kinds and since is not None and head is not None and int(since["seq"]) < head["seq"]:
                at = tx.one('SELECT "row_hash" FROM "review_history" WHERE "seq" = ?', (int(since["seq"]),))
                later = tx.rows('SELECT "kind", "alert_id", "payload" FROM "review_history" WHERE "seq" > ? ORDER BY "seq"', (int(since["seq"]),)) \
                    if at is not None and at[0] == since["row_hash"] else None
                if later is not None and all(_blank(k) or k in ALERT_KINDS for k, _, _ in later):
                    ids = sorted({str(a) for k, a, _ in later if k != "assign" and not _blank(a)})
                    assigned = {str(a): _holder(p) for k, a, p in later if k == "assign" and not _blank(a)}
                    return AlertChanges(head=head, full=False, alerts=self._alert_rows(tx, ids) if ids else None, assigned=assigned)
            return AlertChanges(head=head, full=True, alerts=self._alert_rows(tx), assigned=self._assignments(tx) if kinds else {},
                                teams=tuple(self._teams(tx)))

    def alerts(self) -> gpd.GeoDataFrame:
        """All alerts (EPSG:4326); an empty frame with the contract's columns if none."""
        with self._reading() as tx:
            return self._alerts(tx) if tx is not None else _empty_alerts()

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert's fields and geometry (None: no such alert), read by its id."""
        with self._reading() as tx:
            if tx is None:
                return None
            have = set(self.store.columns(tx, "alerts"))
            cols = [c for c in ALERT_COLUMNS if c in have]
            row = tx.one(f'SELECT {self.store.geom_select}, {", ".join(map(_q, cols))} FROM "alerts" WHERE "alert_id" = ?', (alert_id,))
        if row is None:
            return None
        return {**dict(zip(cols, row[1:])), "geometry": self.store.decode_geometry([row[0]])[0]}

    def _chain(self, tx: Tx, where: str = "", params: tuple = ()) -> pd.DataFrame:
        h = self._frame(tx, "review_history", HISTORY_COLUMNS, where, order='"seq"', params=params)
        h["seq"] = pd.to_numeric(h["seq"]).astype("int64") if not h.empty else h["seq"]
        return h.reset_index(drop=True)

    def history(self, alert_id: str | None = None) -> pd.DataFrame:
        """The entries about alerts (kinds :data:`ALERT_KINDS`: decisions and assignments), ordered
        by ``seq``: the review history a reviewer reads (of one alert with ``alert_id``).
        :meth:`chain` has every entry."""
        with self._reading() as tx:
            if tx is None:
                return pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})
            kinds = ", ".join(f"'{k}'" for k in ALERT_KINDS)
            clauses = [f'("kind" IS NULL OR "kind" IN ({kinds}))'] if "kind" in self._history_columns(tx) else []
            if alert_id is not None:
                clauses.append('"alert_id" = ?')
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            params = (alert_id,) if alert_id is not None else ()
            return self._chain(tx, where, params)

    def _history_columns(self, tx: Tx) -> set[str]:
        return set(self.store.columns(tx, "review_history")) if "review_history" in self.store.tables(tx) else set()

    def chain(self) -> pd.DataFrame:
        """Every history entry (decisions, keys, policies, scans), ordered by ``seq``."""
        with self._reading() as tx:
            return self._chain(tx) if tx is not None else pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})

    def _pairs(self, table: str, key: str, value: str) -> dict[str, str]:
        with self._reading() as tx:
            if tx is None:
                return {}
            df = self._frame(tx, table, [key, value])
        return dict(zip(df[key], df[value]))

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (empty for a new register)."""
        return self._pairs("meta", "key", "value")

    def scans(self) -> pd.DataFrame:
        """One row per scan id that wrote to the register."""
        with self._reading() as tx:
            return self._frame(tx, "scans", SCAN_COLUMNS) if tx is not None else pd.DataFrame({c: [] for c in SCAN_COLUMNS})

    def signers(self) -> dict[str, str]:
        """The keys that may sign this register: key id → role (admin | signer)."""
        return self._pairs("signers", "key_id", "role")

    @staticmethod
    def _policy_entry(tx: Tx) -> Policy | None:
        """The policy of the latest signed ``policy`` entry (None: there is none)."""
        row = tx.one("SELECT \"payload\" FROM \"review_history\" WHERE \"kind\" = 'policy' ORDER BY \"seq\" DESC LIMIT 1")
        return Policy.from_payload(json.loads(row[0])) if row is not None else None

    @classmethod
    def _policy(cls, tx: Tx, has_kind: bool, meta_steps: str | None) -> tuple[str, ...]:
        entry = cls._policy_entry(tx) if has_kind else None
        if entry is not None:
            return entry.review_steps
        if meta_steps is not None:  # a register written before schema 3
            return tuple(s for s in meta_steps.split(",") if s)
        return tuple(REVIEW_STEPS)

    def policy(self) -> Policy:
        """The review policy: steps, the role of each step, separation of duties (the latest
        signed ``policy`` entry; defaults when there is none)."""
        with self._reading() as tx:
            if tx is None:
                return Policy()
            if self._version(tx) < SCHEMA_VERSION:
                return Policy(review_steps=self._policy(tx, False, self._meta_value(tx, "review_steps")))
            return self._policy_entry(tx) or Policy()

    def review_steps(self) -> tuple[str, ...]:
        """The review steps an alert needs before ``confirmed``: the latest signed ``policy``
        entry (all three steps when there is none)."""
        with self._reading() as tx:
            if tx is None:
                return tuple(REVIEW_STEPS)
            legacy = self._version(tx) < SCHEMA_VERSION  # before signed policies, meta held the steps
            return self._policy(tx, not legacy, self._meta_value(tx, "review_steps") if legacy else None)

    def _meta_value(self, tx: Tx, key: str) -> str | None:
        if "meta" not in self.store.tables(tx):
            return None
        row = tx.one('SELECT "value" FROM "meta" WHERE "key" = ?', (key,))
        return row[0] if row else None

    def head(self) -> dict[str, Any] | None:
        """The chain's last entry: ``seq``, ``row_hash``, ``signature``, ``key_id`` (None: empty)."""
        with self._reading() as tx:
            return self._head(tx) if tx is not None and "review_history" in self.store.tables(tx) else None

    def _head(self, tx: Tx) -> dict[str, Any] | None:
        signed = "signature" in self._history_columns(tx)
        row = tx.one('SELECT "seq", "row_hash"' + (', "signature", "key_id"' if signed else "") + ' FROM "review_history" ORDER BY "seq" DESC LIMIT 1')
        if row is None:
            return None
        return {"seq": int(row[0]), "row_hash": row[1], "signature": row[2] if signed else None, "key_id": row[3] if signed else None}

    # -- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 30.0) -> Iterator[None]:
        """The scans' lock: two scans of one register run one after the other (a scan holds it
        from its merge's read to its write). Reviews never take it. Waits up to ``timeout``
        seconds, then refuses with a clear error."""
        if self.path is None:
            with self.store.scan_lock(timeout):  # type: ignore[attr-defined]
                yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fh = open(lock_path, "a+")
            except OSError as exc:
                raise RegisterError(f"{self.path}: cannot create the lock file {lock_path} ({exc.strerror}); check folder permissions") from None
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                if time.monotonic() > deadline:
                    raise RegisterError(
                        f"{self.path}: the register is locked by another scan (waited {timeout:.0f} s); "
                        "wait for it to finish or use another register"
                    ) from None
                time.sleep(0.2)
                continue
            if _same_file(fh, lock_path):
                break
            fh.close()  # the holder removed the file as it let go: lock the one at the path now
        try:
            yield
        finally:
            # no lock file is left in OUT: removed while still held, so a waiter that opened it
            # sees it gone (_same_file) and locks a new one (flock(2) locks the open file, not the name)
            with contextlib.suppress(OSError):
                lock_path.unlink()
            with contextlib.suppress(OSError):
                fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    def _read_only(self) -> bool:
        """A register file without write permission, or marked read-only (no write bit for
        anyone, e.g. ``chmod a-w`` to freeze it), is never written, not even by root."""
        return self.path is not None and self.path.exists() and (not os.access(self.path, os.W_OK) or not self.path.stat().st_mode & 0o222)

    def check_writable(self, *, review_steps: tuple[str, ...] | None = None) -> None:
        """Refuse, before a scan starts, a register this scan could not write: read-only, of a
        newer schema, not a register, in a folder that cannot be written, one this
        installation's key may not sign (or no key at all), or whose review policy differs from
        ``review_steps`` when this key is not an admin."""
        key = self.key  # no key: one line naming where it was looked for
        with self._reading() as tx:
            if tx is not None and "signers" in self.store.tables(tx):
                self._check_signer(tx, key, admin=False)
                if review_steps is not None and self._version(tx) == SCHEMA_VERSION and self._policy(tx, True, None) != tuple(review_steps):
                    self._check_signer(tx, key, admin=True)
        if self._read_only():
            raise RegisterError(f"{self.path}: the register is read-only; make it writable (chmod u+w) or set `register:` to another file")
        if self.path is not None:
            folder = next((p for p in [self.path.parent, *self.path.parent.parents] if p.exists()), None)
            if folder is None or not os.access(folder, os.W_OK):
                raise RegisterError(f"{self.path}: cannot write in folder {folder}; check its permissions or set `register:` to another file")

    def _check_signer(self, tx: Tx, key: SigningKey, *, admin: bool) -> None:
        row = tx.one('SELECT "role" FROM "signers" WHERE "key_id" = ?', (key.key_id,))
        if row is None:
            raise RegisterError(
                f"{self.store.describe()}: this installation's signing key {key.key_id} ({key.path}) may not sign this register; "
                f"an admin of the register adds it with `redline keys trust {key.public_hex} --register {self.location}`")
        if admin and row[0] != "admin":
            raise RegisterError(f"{self.store.describe()}: key {key.key_id} is a signer, not an admin; only an admin changes the review "
                                "policy or the signers")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Tx]:
        """A write transaction on a register of the current schema, signed by :attr:`key`: a new
        register is created (every table, empty; this key its admin), an older one migrated
        in place after a backup copy."""
        if self._read_only():
            raise RegisterError(f"{self.path}: the register is read-only; make it writable (chmod u+w) or set `register:` to another file")
        key = self.key
        with self.store.transaction(write=True, timeout=self.lock_timeout) as tx:
            version = self._version(tx)
            if version is None:
                self.store.create(tx, ALERT_TYPES, _HISTORY_TYPES)
                tx.run('INSERT INTO "meta" ("key", "value") VALUES (?, ?)', ("schema_version", str(SCHEMA_VERSION)))
                self._add_key(tx, key.public_hex, "admin")
                self._set_policy(tx, tuple(REVIEW_STEPS))  # every register starts with a signed policy (default roles, duties separated)
            elif version < SCHEMA_VERSION:
                self._migrate(tx, version)
            self._check_signer(tx, key, admin=False)
            yield tx

    def _append(self, tx: Tx, *, alert_id: str = "", by: str, from_status: str = "", to_status: str = "", note: str = "",
                when: dt.datetime | None = None, kind: str = "review", payload: Mapping | None = None, **review: str | None) -> dict:
        """Insert the next signed history entry after the chain's head (in ``tx``) and return it."""
        head = self._head(tx)
        row = {
            "seq": head["seq"] + 1 if head else 1, "alert_id": alert_id,
            "time": (when or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"), "by": by,
            "from_status": from_status, "to_status": to_status, "note": note or "", "prev_hash": head["row_hash"] if head else GENESIS,
            **{k: (review.get(k) or None) for k in _V2_HISTORY},
            "kind": kind, "payload": json.dumps(payload, sort_keys=True, ensure_ascii=False) if payload is not None else None,
        }
        row["row_hash"] = row_hash(row)
        row["key_id"] = self.key.key_id
        row["signature"] = self.key.sign(row["row_hash"])
        tx.run(f'INSERT INTO "review_history" ({", ".join(map(_q, HISTORY_COLUMNS))}) VALUES ({", ".join("?" * len(HISTORY_COLUMNS))})',
               [row[c] for c in HISTORY_COLUMNS])
        return row

    def _add_key(self, tx: Tx, public_hex: str, role: str) -> dict:
        kid = key_id_of(public_hex)
        row = self._append(tx, by=self.key.key_id, kind="key", payload={"key_id": kid, "public_key": public_hex, "role": role},
                           note=f"key {kid} may sign as {role}")
        tx.run('DELETE FROM "signers" WHERE "key_id" = ?', (kid,))
        tx.run('INSERT INTO "signers" ("key_id", "public_key", "role", "seq") VALUES (?, ?, ?, ?)', (kid, public_hex, role, row["seq"]))
        return row

    def trust(self, public_hex: str, *, role: str = "signer") -> dict:
        """Let another installation's key (64 hex digits) sign this register (``role``: signer |
        admin). Only an admin may; a signed ``key`` entry records it."""
        if role not in ("signer", "admin"):
            raise RegisterError(f"--role {role!r}: use signer or admin")
        try:
            if len(bytes.fromhex(public_hex)) != 32:
                raise ValueError
        except ValueError:
            raise RegisterError(f"{public_hex!r} is not an ed25519 public key (64 hex digits, as `redline keys show` prints it)") from None
        with self._writing() as tx:
            self._check_signer(tx, self.key, admin=True)
            return self._add_key(tx, public_hex, role)

    def set_policy(self, steps: tuple[str, ...] | list[str] | None = None, *, step_roles: Mapping[str, str] | None = None,
                   separation_of_duties: bool | None = None, assign_roles: Sequence[str] | None = None) -> dict | None:
        """Change the review policy (a signed ``policy`` entry; an admin's key only): the steps an
        alert needs before ``confirmed``, the role that records each step (``step_roles``, merged
        into the current ones), whether one user may record two steps of one alert, and the roles
        that assign alerts. What is not given stays as it is. None when nothing changes."""
        with self._writing() as tx:
            return self._set_policy(tx, tuple(steps) if steps is not None else None, step_roles=step_roles,
                                    separation_of_duties=separation_of_duties, assign_roles=assign_roles)

    def _set_policy(self, tx: Tx, steps: tuple[str, ...] | None, *, step_roles: Mapping[str, str] | None = None,
                    separation_of_duties: bool | None = None, assign_roles: Sequence[str] | None = None) -> dict | None:
        current = self._policy_entry(tx)
        base = current or Policy()
        new = Policy(review_steps=base.review_steps if steps is None else tuple(steps), step_roles={**base.step_roles, **(step_roles or {})},
                     separation_of_duties=base.separation_of_duties if separation_of_duties is None else bool(separation_of_duties),
                     assign_roles=base.assign_roles if assign_roles is None else tuple(assign_roles)).checked()
        if current is not None and new == current:
            return None
        self._check_signer(tx, self.key, admin=True)
        return self._append(tx, by=self.key.key_id, kind="policy", payload=new.payload(), note=new.describe())

    def _migrate(self, tx: Tx, version: int) -> None:
        """Schema 1/2 → 3 in place: the history checked, a backup copy, GDAL's R-tree index
        dropped, the new columns and tables, this key as the admin, the policy, and a signed
        entry sealing every alert as it stands."""
        chain = self._chain(tx)
        if not chain.empty:
            broken = self._walk(chain, Verification()).problems
            if broken:
                raise RegisterError(f"{self.store.describe()}: cannot upgrade a register whose history is broken ({broken[0]}); "
                                    "restore it from a backup first")
        if self.path is not None:
            backup = self.path.with_name(f"{self.path.stem}.schema{version}-backup{self.path.suffix}")
            shutil.copyfile(self.path, backup)
            log.info("%s: schema %d backed up to %s before the upgrade to schema %d", self.path, version, backup, SCHEMA_VERSION)
            self.store.drop_spatial_index(tx)  # type: ignore[attr-defined]
        have = set(self.store.columns(tx, "review_history")) if "review_history" in self.store.tables(tx) else None
        if have is not None:
            for c in HISTORY_COLUMNS:
                if c not in have:
                    tx.run(f'ALTER TABLE "review_history" ADD COLUMN {_q(c)} TEXT')
        alerts_have = set(self.store.columns(tx, "alerts")) if "alerts" in self.store.tables(tx) else set()
        for c in ALERT_COLUMNS:
            if alerts_have and c not in alerts_have:
                tx.run(f'ALTER TABLE "alerts" ADD COLUMN {_q(c)} {ALERT_TYPES[c]}')
        meta_steps = self._meta_value(tx, "review_steps")
        self.store.create(tx, ALERT_TYPES, _HISTORY_TYPES)
        tx.run('DELETE FROM "meta" WHERE "key" IN (?, ?)', ("schema_version", "review_steps"))
        tx.run('INSERT INTO "meta" ("key", "value") VALUES (?, ?)', ("schema_version", str(SCHEMA_VERSION)))
        self._add_key(tx, self.key.public_hex, "admin")
        self._set_policy(tx, self._policy(tx, False, meta_steps))
        alerts = self._alerts(tx)
        self._seal(tx, _sealed(alerts.to_dict("records")), {"scan_id": f"schema {version} → {SCHEMA_VERSION}", "migrated_from": version})

    def _seal(self, tx: Tx, sealed: list[tuple[str, str, str]], scan: Mapping[str, Any]) -> dict:
        """A signed ``scan`` entry sealing the alerts of ``sealed`` (:func:`_sealed`) as they are written now."""
        seals = [(a, s) for a, s, _ in sealed]
        payload = {**{k: (None if _blank(v) else v if isinstance(v, (str, int, float)) else str(v)) for k, v in scan.items()},
                   "sealed": len(seals), "seals": _seals_digest(seals)}
        row = self._append(tx, by=SCAN_REVIEWER, kind="scan", payload=payload, note=f"scan {scan.get('scan_id')}: {len(seals)} alert(s) sealed")
        tx.many('INSERT INTO "alert_seals" ("seq", "alert_id", "seal", "fields") VALUES (?, ?, ?, ?)',
                [(row["seq"], a, s, t) for a, s, t in sealed])
        return row

    def commit_scan(self, merged: gpd.GeoDataFrame, *, scan: Mapping[str, Any], decisions: list[Mapping[str, Any]] = (),
                    review_steps: tuple[str, ...] | None = None) -> dict:
        """A scan's merge as one transaction: the alerts of ``merged`` whose scan-owned fields or
        geometry differ from the register's are inserted or updated (never their status or the
        reviewers' fields), sealed in a signed ``scan`` entry with the ``scans`` row ``scan``;
        then ``decisions`` (the scan's re-checks: ``alert_id, from_status, to_status, note``)
        are recorded for alerts still in ``from_status``; ``review_steps``, when they differ
        from the policy, become a new policy (admins only). Returns the scan entry."""
        merged = gpd.GeoDataFrame(merged, geometry="geometry", crs="EPSG:4326")
        records = merged.to_dict("records")
        for r in records:
            r["geometry"] = _multi(r["geometry"])
        sealed = _sealed(records)  # before the transaction: the writers' lock is held for the writes, not for hashing
        with self._writing() as tx:
            if review_steps is not None:
                self._set_policy(tx, tuple(review_steps))
            stored = {a: s for a, s in tx.rows('SELECT "alert_id", "seal" FROM "alert_seals" ORDER BY "seq"')}
            existing = {r[0] for r in tx.rows('SELECT "alert_id" FROM "alerts"')}
            changed = [i for i, (a, seal, _) in enumerate(sealed) if seal != stored.get(a)]
            rows = [records[i] for i in changed]
            new = [r for r in rows if str(r["alert_id"]) not in existing]
            upd = [r for r in rows if str(r["alert_id"]) in existing]
            _insert_alerts(tx, self.store, new)
            owned = [c for c in SCAN_OWNED if c != "alert_id"]
            tx.many(f'UPDATE "alerts" SET "geom" = {self.store.geom_param}, {", ".join(f"{_q(c)} = ?" for c in owned)} WHERE "alert_id" = ?',
                    [[self.store.encode_geometry(r["geometry"]), *[_canon(c, r.get(c)) for c in owned], str(r["alert_id"])] for r in upd])
            run = {k: _canon(k, v) if k in ("n_items", "new", "updated", "unchanged") else v for k, v in scan.items()}
            entry = self._seal(tx, [sealed[i] for i in changed], run)
            tx.run('DELETE FROM "scans" WHERE "scan_id" = ?', (run["scan_id"],))
            tx.run(f'INSERT INTO "scans" ({", ".join(map(_q, SCAN_COLUMNS))}) VALUES ({", ".join("?" * len(SCAN_COLUMNS))})',
                   [run.get(c) for c in SCAN_COLUMNS])
            for d in decisions:
                cur = tx.one('SELECT "status" FROM "alerts" WHERE "alert_id" = ?', (d["alert_id"],))
                if cur is None or cur[0] != d["from_status"]:
                    log.info("alert %s: re-check not recorded (status is now %s)", d["alert_id"], cur[0] if cur else "gone")
                    continue
                self._append(tx, alert_id=d["alert_id"], by=d.get("by") or SCAN_REVIEWER, from_status=d["from_status"], to_status=d["to_status"],
                             note=d.get("note") or "", kind="review")
                tx.run('UPDATE "alerts" SET "status" = ? WHERE "alert_id" = ?', (d["to_status"], d["alert_id"]))
            if rows:
                b = merged.total_bounds
                self.store.touched(tx, tuple(float(v) for v in b))
            return entry

    # -- reviewing ------------------------------------------------------------------------------
    def review(
        self, alert_id: str, *, by: str, to_status: str | None = None, note: str | None = None, when: dt.datetime | None = None,
        step: str | None = None, result: str | None = None, activity_class: str | None = None,
        cause: str | None = None, legality: str | None = None, finding: FieldFinding | None = None,
    ) -> dict:
        """Record a review decision: one transaction inserts one signed history row and updates
        one alert.

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
        finding
            A field check's finding (:class:`~redline.register.photos.FieldFinding`; its photos
            stored first): the entry's payload ``{"field": …}``, with ``note`` as its text.

        ``confirmed`` is refused until every required step's latest record is a pass (a step
        given in the same call counts).
        """
        if to_status is not None and to_status not in STATUSES:
            raise RegisterError(f"--status {to_status!r} is not a status; use one of {', '.join(STATUSES)}")
        by = check_name(by, "--by")  # the one rule for names (redline.register.users): no line breaks, escapes, floods
        if activity_class is not None and activity_class not in ACTIVITY_CODES:
            raise RegisterError(f"--class {activity_class!r} is not an activity class; use one of {', '.join(ACTIVITY_CODES)}")
        if result is not None and step is None:
            raise RegisterError("--result needs --step; give the review step it belongs to")
        if step is not None and result is None:
            result = "pass"
        if result is not None and result not in STEP_RESULTS:
            raise RegisterError(f"--result {result!r} is not a step result; use pass or fail")
        if all(v is None for v in (to_status, step, activity_class, cause, legality, finding)) and not (note or "").strip():
            raise RegisterError("nothing to record; give --status, --step, --class, --cause, --legality or --note")
        if not self.store.exists():
            raise RegisterError(f"{self.store.describe()}: no register there yet; run a scan first or give --register")
        with self._writing() as tx:
            cur = tx.one('SELECT "status", "admin_id", "zone_id" FROM "alerts" WHERE "alert_id" = ?', (alert_id,))
            if cur is None:
                raise RegisterError(f"{self.store.describe()}: no alert '{alert_id}'; list them with `redline alerts list`")
            alert = {"alert_id": alert_id, "status": cur[0], "admin_id": cur[1], "zone_id": cur[2]}
            users_mode, user = self._user_of(tx, by)
            problem = refusal(self._policy_entry(tx) or Policy(), alert, self._step_records(tx, alert_id), by=by.strip(), user=user,
                              users_mode=users_mode, to_status=to_status, step=step, result=result)
            if problem is not None:
                raise problem
            current = alert["status"]
            target = to_status or current
            row = self._append(tx, alert_id=alert_id, by=user.name if user is not None else by.strip(), from_status=current, to_status=target,
                               note=note or "", when=when, step=step, result=result, activity_class=activity_class, cause=cause, legality=legality,
                               payload={"field": finding.payload()} if finding is not None else None)
            sets = {"status": target, **{c: v for c, v in (("activity_class", activity_class), ("cause", cause), ("legality", legality)) if v is not None}}
            tx.run(f'UPDATE "alerts" SET {", ".join(f"{_q(c)} = ?" for c in sets)} WHERE "alert_id" = ?', [*sets.values(), alert_id])
            return row

    def assign(self, alert_ids: Sequence[str], *, to: str | None, by: str, note: str | None = None, when: dt.datetime | None = None) -> list[dict]:
        """Hand alerts to the user or team ``to`` (None: take the assignment back): one signed
        ``assign`` entry per alert (payload ``{"to": name}``, and ``"team": true`` for a team),
        all in one transaction: every alert is assigned or none (the first refusal is the one
        line of the error).

        On a register with users, ``by`` is a user whose role is among the policy's
        ``assign_roles`` (default specialist, admin) with the alerts in scope, and ``to`` an
        enabled user whose scope covers each alert, or an enabled team with an enabled member
        whose scope covers each alert (:func:`redline.register.rules.assign_refusal`).
        The status does not change."""
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            raise RegisterError("no alert to assign; give alert ids (or a filter that matches some)")
        by = check_name(by, "--by")
        target = check_name(to, "--to") if to is not None else None
        if not self.store.exists():
            raise RegisterError(f"{self.store.describe()}: no register there yet; run a scan first or give --register")
        with self._writing() as tx:
            users_mode, user = self._user_of(tx, by)
            _, assignee = self._user_of(tx, target) if target is not None else (users_mode, None)
            team_row = self._team_row(tx, target) if target is not None and assignee is None else None
            team = Team.from_row(team_row) if team_row is not None else None
            members = [u for u in (self._user_row(tx, m) for m in team.members) if u is not None] if team is not None else []
            members = [User.from_row(m) for m in members]
            policy = self._policy_entry(tx) or Policy()
            name = assignee.name if assignee is not None else team.name if team is not None else target
            payload: dict[str, Any] = {"to": name, "team": True} if team is not None else {"to": name}
            rows = []
            for aid in ids:
                cur = tx.one('SELECT "status", "admin_id", "zone_id" FROM "alerts" WHERE "alert_id" = ?', (aid,))
                if cur is None:
                    raise RegisterError(f"{self.store.describe()}: no alert '{aid}'; list them with `redline alerts list`")
                alert = {"alert_id": aid, "status": cur[0], "admin_id": cur[1], "zone_id": cur[2]}
                problem = assign_refusal(policy, alert, by=by.strip(), user=user, users_mode=users_mode, to=target, assignee=assignee,
                                         team=team, members=members)
                if problem is not None:
                    raise problem
                default = f"assigned to {'team ' if team is not None else ''}{name}" if name else "assignment taken back"
                rows.append(self._append(tx, alert_id=aid, by=user.name if user is not None else by.strip(), from_status=cur[0], to_status=cur[0],
                                         note=note or default, when=when, kind="assign", payload=payload))
            return rows

    def assignments(self) -> dict[str, str]:
        """Alert id → the user or team it is assigned to now (its latest ``assign`` entry; alerts
        never assigned, or taken back, are absent). Which holders are teams: :meth:`teams`."""
        with self._reading() as tx:
            if tx is None or "kind" not in self._history_columns(tx):
                return {}
            return self._assignments(tx)

    def assigned_to(self, name: str) -> dict[str, str]:
        """The alerts "assigned to" ``name`` (alert id → holder): for a user, those held by the
        user or by an enabled team they are a member of, within the user's own counties and
        zones (what the review service's "assigned to me" shows); for a team, those it holds;
        any other name (the single-user mode's), those held under that name. One snapshot."""
        with self._reading() as tx:
            if tx is None or "kind" not in self._history_columns(tx):
                return {}
            held = self._assignments(tx)
            key = unicodedata.normalize("NFC", (name or "").strip())
            row = self._user_row(tx, key)
            if row is None:
                return {a: h for a, h in held.items() if h == key}
            user = User.from_row(row)
            names = holder_names(user.name, self._teams(tx))
            mine = [a for a, h in held.items() if h in names]
            places = self._alert_rows(tx, mine)[["alert_id", "admin_id", "zone_id"]].itertuples(index=False) if mine else []
            return {a: held[a] for a, c, z in places if user.in_scope(c, z)}

    @staticmethod
    def _assignments(tx: Tx) -> dict[str, str]:
        """:meth:`assignments` in the open transaction ``tx``."""
        current: dict[str, str] = {}
        for aid, payload in tx.rows("SELECT \"alert_id\", \"payload\" FROM \"review_history\" WHERE \"kind\" = 'assign' ORDER BY \"seq\""):
            to = _holder(payload)
            if to:
                current[aid] = to
            else:
                current.pop(aid, None)
        return current

    @staticmethod
    def _step_records(tx: Tx, alert_id: str) -> list[StepRecord]:
        """The review steps recorded on an alert, in history order."""
        return [StepRecord(step=st, result=r or "pass", by=b) for st, r, b in tx.rows(
            'SELECT "step", "result", "by" FROM "review_history" WHERE "alert_id" = ? AND "step" IS NOT NULL AND "step" != \'\' ORDER BY "seq"',
            (alert_id,))]

    def allowed_actions(self, alert_id: str, user: User | None) -> Actions | None:
        """What ``user`` (None in the single-user mode) may record on an alert now, by the same
        rules :meth:`review` enforces (:func:`redline.register.rules.allowed_actions`); None:
        no such alert."""
        with self._reading() as tx:
            if tx is None:
                return None
            cur = tx.one('SELECT "status", "admin_id", "zone_id" FROM "alerts" WHERE "alert_id" = ?', (alert_id,))
            if cur is None:
                return None
            alert = {"alert_id": alert_id, "status": cur[0], "admin_id": cur[1], "zone_id": cur[2]}
            legacy = self._version(tx) < SCHEMA_VERSION
            policy = Policy(review_steps=self._policy(tx, False, self._meta_value(tx, "review_steps"))) if legacy else (self._policy_entry(tx) or Policy())
            records = self._step_records(tx, alert_id) if "step" in self._history_columns(tx) else []
            users_mode = self._has_users(tx)
        return allowed_actions(policy, alert, records, user, users_mode=users_mode)

    # -- users ----------------------------------------------------------------------------------
    def _has_users(self, tx: Tx) -> bool:
        """The register has users (multi-user mode): the ``users`` table holds a row, enabled or not."""
        return "users" in self.store.tables(tx) and tx.one('SELECT 1 FROM "users" LIMIT 1') is not None

    def _user_row(self, tx: Tx, name: str) -> dict[str, Any] | None:
        cols = [c for c, _ in TABLE_COLUMNS["users"]]
        row = tx.one(f'SELECT {", ".join(map(_q, cols))} FROM "users" WHERE "name" = ?', (name,)) if "users" in self.store.tables(tx) else None
        return dict(zip(cols, row)) if row is not None else None

    def _user_of(self, tx: Tx, by: str) -> tuple[bool, User | None]:
        """(multi-user mode, the user named ``by`` or None)."""
        if not self._has_users(tx):
            return False, None
        row = self._user_row(tx, unicodedata.normalize("NFC", by.strip()))
        return True, User.from_row(row) if row is not None else None

    def users(self) -> list[User]:
        """The register's users, by name (empty: the single-user mode)."""
        with self._reading() as tx:
            if tx is None:
                return []
            df = self._frame(tx, "users", [c for c, _ in TABLE_COLUMNS["users"]], order='"name"')
        return [User.from_row(r) for r in df.to_dict("records")]

    def user(self, name: str) -> User | None:
        """The user ``name`` (None: no such user)."""
        with self._reading() as tx:
            row = self._user_row(tx, unicodedata.normalize("NFC", (name or "").strip())) if tx is not None else None
        return User.from_row(row) if row is not None else None

    def has_users(self) -> bool:
        """True when the register has users (multi-user mode), enabled or not."""
        with self._reading() as tx:
            return tx is not None and self._has_users(tx)

    def authenticate(self, name: str, password: str) -> User:
        """The enabled user ``name`` if ``password`` is theirs; else :class:`NotPermitted`
        (reason ``credentials``) with the same line for an unknown name, a wrong password and a
        disabled user, after the same argon2 work (no user enumeration; OWASP Authentication
        Cheat Sheet)."""
        with self._reading() as tx:
            row = self._user_row(tx, unicodedata.normalize("NFC", (name or "").strip())) if tx is not None else None
        if row is None:
            dummy_verify(password)
        elif password_matches(row["password_hash"], password or "") and not int(row["disabled"] or 0):
            return User.from_row(row)
        raise NotPermitted(f"{self.store.describe()}: wrong user name or password (or the user is disabled)", "credentials")

    def add_user(self, name: str, *, role: str, password: str, counties: str | tuple[str, ...] = "", zones: str | tuple[str, ...] = "") -> dict:
        """Add a user (``role``: reviewer | specialist | acceptor | admin; ``counties`` / ``zones``:
        comma lists of codes, empty = all) with an argon2id hash of ``password``: a ``users`` row
        and a signed ``user`` entry, by an admin key. Returns the entry."""
        name, role = check_name(name), check_role(role)
        c, z = parse_codes(",".join(counties) if isinstance(counties, tuple) else counties, "counties"), parse_codes(
            ",".join(zones) if isinstance(zones, tuple) else zones, "zones")
        pw_hash = hash_password(password)
        with self._writing() as tx:
            self._check_signer(tx, self.key, admin=True)
            if "users" not in self.store.tables(tx):
                self.store.create_tables(tx, _HISTORY_TYPES)
            if self._user_row(tx, name) is not None:
                raise RegisterError(f"user {name} exists; change them with `redline users set {name}` or choose another name")
            if self._team_row(tx, name) is not None:
                raise RegisterError(f"{name} is a team's name (users and teams share one namespace); choose another name")
            entry = self._user_entry(tx, name, role, c, z, False, pw_hash, f"user {name} added")
            tx.run(f'INSERT INTO "users" ({", ".join(_q(col) for col, _ in TABLE_COLUMNS["users"])}) VALUES ({", ".join("?" * len(TABLE_COLUMNS["users"]))})',
                   (name, role, ",".join(c), ",".join(z), pw_hash, 0, entry["time"], entry["seq"]))
            return entry

    def update_user(self, name: str, *, role: str | None = None, counties: str | None = None, zones: str | None = None,
                    disabled: bool | None = None, password: str | None = None) -> dict:
        """Change a user's role, counties, zones, disabled flag or password (what is given; an
        admin key): the row and a signed ``user`` entry. Returns the entry."""
        role = check_role(role) if role is not None else None
        c = parse_codes(counties, "counties") if counties is not None else None
        z = parse_codes(zones, "zones") if zones is not None else None
        pw_hash = hash_password(password) if password is not None else None
        with self._writing() as tx:
            self._check_signer(tx, self.key, admin=True)
            row = self._user_row(tx, unicodedata.normalize("NFC", (name or "").strip()))
            if row is None:
                raise RegisterError(f"no user {name!r} in {self.store.describe()}; list them with `redline users list`")
            old = User.from_row(row)
            new = User(name=old.name, role=role or old.role, counties=old.counties if c is None else c, zones=old.zones if z is None else z,
                       disabled=old.disabled if disabled is None else bool(disabled), created=old.created)
            pw = pw_hash or row["password_hash"]
            changed = [w for w, a, b in (("role", old.role, new.role), ("counties", old.counties, new.counties), ("zones", old.zones, new.zones),
                                         ("disabled" if new.disabled else "enabled", old.disabled, new.disabled), ("password", row["password_hash"], pw))
                       if a != b]
            if not changed:
                raise RegisterError(f"user {old.name}: nothing to change (the user already has these values)")
            entry = self._user_entry(tx, new.name, new.role, new.counties, new.zones, new.disabled, pw, f"user {new.name}: {', '.join(changed)}")
            tx.run('UPDATE "users" SET "role" = ?, "counties" = ?, "zones" = ?, "password_hash" = ?, "disabled" = ?, "seq" = ? WHERE "name" = ?',
                   (new.role, ",".join(new.counties), ",".join(new.zones), pw, int(new.disabled), entry["seq"], new.name))
            return entry

    def disable_user(self, name: str) -> dict:
        """Disable a user (they can no longer log in or record); their decisions stay."""
        return self.update_user(name, disabled=True)

    def _user_entry(self, tx: Tx, name: str, role: str, counties: tuple[str, ...], zones: tuple[str, ...], disabled: bool, pw_hash: str,
                    note: str) -> dict:
        return self._append(tx, by=self.key.key_id, kind="user", payload=user_payload(name, role, counties, zones, disabled, pw_hash), note=note)

    # -- teams ----------------------------------------------------------------------------------
    def _team_row(self, tx: Tx, name: str) -> dict[str, Any] | None:
        cols = [c for c, _ in TABLE_COLUMNS["teams"]]
        row = tx.one(f'SELECT {", ".join(map(_q, cols))} FROM "teams" WHERE "name" = ?', (name,)) if "teams" in self.store.tables(tx) else None
        return dict(zip(cols, row)) if row is not None else None

    def _teams(self, tx: Tx) -> list[Team]:
        df = self._frame(tx, "teams", [c for c, _ in TABLE_COLUMNS["teams"]], order='"name"')
        return [Team.from_row(r) for r in df.to_dict("records")]

    def teams(self) -> list[Team]:
        """The register's teams, by name (disabled ones too)."""
        with self._reading() as tx:
            return self._teams(tx) if tx is not None else []

    def team(self, name: str) -> Team | None:
        """The team ``name`` (None: no such team)."""
        with self._reading() as tx:
            row = self._team_row(tx, unicodedata.normalize("NFC", (name or "").strip())) if tx is not None else None
        return Team.from_row(row) if row is not None else None

    def _check_members(self, tx: Tx, team: str, members: tuple[str, ...]) -> None:
        unknown = [m for m in members if self._user_row(tx, m) is None]
        if unknown:
            raise RegisterError(f"team {team}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a user of this register; "
                                "members are users (`redline users list`)")

    def add_team(self, name: str, *, members: str | Sequence[str]) -> dict:
        """Add a team of ``members`` (a comma list or names of existing users, enabled or not):
        a ``teams`` row and a signed ``team`` entry, by an admin key. Its name may be neither a
        user's nor another team's (:func:`redline.register.users.check_name`). Returns the entry."""
        name, names = check_name(name, "team name"), parse_members(members)
        with self._writing() as tx:
            self._check_signer(tx, self.key, admin=True)
            if "teams" not in self.store.tables(tx):
                self.store.create_tables(tx, _HISTORY_TYPES)
            if self._team_row(tx, name) is not None:
                raise RegisterError(f"team {name} exists; change it with `redline users team-set {name}` or choose another name")
            if self._user_row(tx, name) is not None:
                raise RegisterError(f"{name} is a user's name (users and teams share one namespace); choose another team name")
            self._check_members(tx, name, names)
            entry = self._team_entry(tx, name, names, False, f"team {name} added: {', '.join(names)}")
            tx.run(f'INSERT INTO "teams" ({", ".join(_q(col) for col, _ in TABLE_COLUMNS["teams"])}) VALUES ({", ".join("?" * len(TABLE_COLUMNS["teams"]))})',
                   (name, ",".join(names), 0, entry["time"], entry["seq"]))
            return entry

    def update_team(self, name: str, *, members: str | Sequence[str] | None = None, disabled: bool | None = None) -> dict:
        """Change a team's members (the whole list) or disabled flag (what is given; an admin
        key): the row and a signed ``team`` entry. Alerts the team holds stay its own; while it
        is disabled they are nobody's "assigned to me". Returns the entry."""
        names = parse_members(members) if members is not None else None
        with self._writing() as tx:
            self._check_signer(tx, self.key, admin=True)
            row = self._team_row(tx, unicodedata.normalize("NFC", (name or "").strip()))
            if row is None:
                raise RegisterError(f"no team {name!r} in {self.store.describe()}; list them with `redline users teams`")
            old = Team.from_row(row)
            new = Team(name=old.name, members=old.members if names is None else names, disabled=old.disabled if disabled is None else bool(disabled),
                       created=old.created)
            if names is not None:
                self._check_members(tx, new.name, names)
            changed = [w for w, a, b in (("members", old.members, new.members), ("disabled" if new.disabled else "enabled", old.disabled, new.disabled))
                       if a != b]
            if not changed:
                raise RegisterError(f"team {old.name}: nothing to change (the team already has these values)")
            what = ", ".join(f"members {','.join(new.members)}" if w == "members" else w for w in changed)
            entry = self._team_entry(tx, new.name, new.members, new.disabled, f"team {new.name}: {what}")
            tx.run('UPDATE "teams" SET "members" = ?, "disabled" = ?, "seq" = ? WHERE "name" = ?',
                   (",".join(new.members), int(new.disabled), entry["seq"], new.name))
            return entry

    def _team_entry(self, tx: Tx, name: str, members: tuple[str, ...], disabled: bool, note: str) -> dict:
        return self._append(tx, by=self.key.key_id, kind="team", payload=team_payload(name, members, disabled), note=note)

    # -- verifying ------------------------------------------------------------------------------
    def verify(self, *, heads: tuple[str, ...] = (), photos: Path | str | None = None) -> Verification:
        """Check everything the register can prove: the hash chain, every signature (by a key
        the register lists, keys and policies by an admin), each alert's scan-owned fields
        against its last seal, no sealed alert missing, the statuses and reviewers' fields
        where the decisions leave them, the scans table against the signed scan entries, the
        users and teams tables against their latest signed ``user`` / ``team`` entries, that
        each of ``heads`` (row hashes published earlier) is still in the chain, and that every
        photo a field finding names is in the photo folder with its signed sha256 (``photos``;
        default: a GeoPackage's ``<stem>-photos`` folder, :mod:`redline.register.photos`)."""
        with self._reading() as tx:
            if tx is None:
                v = Verification()
                if heads:
                    v.problems.append(f"{self.store.describe()}: no register there, so published head(s) {', '.join(h[:12] for h in heads)} are missing")
                return v
            snap = self._snapshot(tx)
        v = self._verify(snap, heads)
        folder = photos if photos is not None else default_photo_folder(self.location)
        check = verify_photos(snap["review_history"], folder, where=f" for {self.store.describe()}")
        v.photos, v.photos_intact = check.named, check.intact
        v.problems += check.problems
        return v

    #: The tables besides ``alerts`` as :meth:`_snapshot` reads them (every column: a copy takes them as they are).
    _SNAPSHOT_TABLES = (("review_history", HISTORY_COLUMNS), ("alert_seals", [c for c, _ in TABLE_COLUMNS["alert_seals"]]),
                        ("signers", [c for c, _ in TABLE_COLUMNS["signers"]]), ("scans", SCAN_COLUMNS), ("meta", ["key", "value"]),
                        ("users", [c for c, _ in TABLE_COLUMNS["users"]]), ("teams", [c for c, _ in TABLE_COLUMNS["teams"]]))

    def _snapshot(self, tx: Tx) -> dict[str, pd.DataFrame]:
        """Every table of the register in one read snapshot: ``alerts`` (a GeoDataFrame), the
        history ordered by ``seq`` as ``review_history``, and the others as they are stored."""
        snap: dict[str, pd.DataFrame] = {"review_history": self._chain(tx)}
        snap.update({t: self._frame(tx, t, cols, order='"seq"' if t == "alert_seals" else '"fid"')
                     for t, cols in self._SNAPSHOT_TABLES if t != "review_history"})
        snap["alerts"] = self._alerts(tx)
        return snap

    def _verify(self, snap: dict[str, pd.DataFrame], heads: tuple[str, ...]) -> Verification:
        """:meth:`verify` of a :meth:`_snapshot`."""
        v = Verification()
        chain, alerts, seals, signers, scans, users = (snap[t] for t in ("review_history", "alerts", "alert_seals", "signers", "scans", "users"))
        self._walk(chain, v)
        v.alerts = len(alerts)
        v.head = None if chain.empty else {k: (int(chain.iloc[-1][k]) if k == "seq" else chain.iloc[-1][k]) for k in ("seq", "row_hash", "signature", "key_id")}
        listed = {r["key_id"]: (r["public_key"], r["role"]) for r in signers.to_dict("records")}
        if v.signed and listed != v.keys:
            v.problems.append("signers: the table differs from the signed key entries (a key was added or its role changed outside `redline keys trust`)")
        if v.signed:
            self._check_seals(chain, alerts, seals, v)
            self._check_scans(chain, scans, v)
        self._check_users(chain, users, v)
        self._check_teams(chain, snap["teams"], v)
        v.problems += self._status_matches_history(alerts, chain)
        known = set(chain["row_hash"]) if not chain.empty else set()
        for h in heads:
            if h not in known:
                v.problems.append(f"review_history: the published head {h[:16]}… is not in the chain (entries after an earlier head were deleted, "
                                  "or the register was replaced by an older copy)")
        return v

    @staticmethod
    def _walk(chain: pd.DataFrame, v: Verification) -> Verification:
        """The chain, signatures and key roles, entry by entry (``v`` filled in)."""
        keys = v.keys
        prev, expected = GENESIS, 1
        for row in chain.to_dict("records"):
            seq = int(row["seq"])
            what = f"review_history: entry seq {seq}" + (f" (alert {row['alert_id']})" if not _blank(row["alert_id"]) else f" ({row['kind']})" if not _blank(row.get("kind")) else "")
            if seq != expected:
                v.problems.append(f"review_history: entry seq {seq} where {expected} was expected (an entry was inserted or deleted)")
                expected = seq
            if row["prev_hash"] != prev:
                v.problems.append(f"{what} does not chain to the entry before it (an entry was inserted, deleted or edited)")
            if row_hash(row) != row["row_hash"]:
                v.problems.append(f"{what} was edited after it was written (its hash differs)")
            prev, expected = row["row_hash"], expected + 1
            v.rows += 1
            kid, sig = row.get("key_id"), row.get("signature")
            if _blank(kid) or _blank(sig):
                if keys:
                    v.problems.append(f"{what} is not signed (entries after the first signed one must be)")
                else:
                    v.unsigned += 1
                continue
            payload = json.loads(row["payload"]) if not _blank(row.get("payload")) else {}
            genesis = not keys and row.get("kind") == "key"
            public, role = (payload.get("public_key"), payload.get("role")) if genesis else keys.get(kid, (None, None))
            if public is None:
                v.problems.append(f"{what} is signed by key {kid}, which is not among the register's signers")
                continue
            if key_id_of(public) != kid or not verify_signature(public, row["row_hash"], sig):
                v.problems.append(f"{what} has an invalid signature by key {kid} (forged, or edited and re-hashed)")
                continue
            v.signed += 1
            if row.get("kind") in ("key", "policy", "user", "team") and role != "admin":
                v.problems.append(f"{what} changes the {row['kind']} but key {kid} is not an admin")
                continue
            if row.get("kind") == "key":
                if key_id_of(payload.get("public_key", "00")) != payload.get("key_id"):
                    v.problems.append(f"{what} names key {payload.get('key_id')} with another key's public key")
                else:
                    keys[payload["key_id"]] = (payload["public_key"], payload["role"])
        return v

    @staticmethod
    def _check_seals(chain: pd.DataFrame, alerts: gpd.GeoDataFrame, seals: pd.DataFrame, v: Verification) -> None:
        """Each scan entry's seals match its signed digest; each alert matches its last seal."""
        entries = {int(r["seq"]): json.loads(r["payload"]) for r in chain.to_dict("records") if r.get("kind") == "scan"}
        seals = seals.assign(seq=pd.to_numeric(seals["seq"]).astype("int64")) if not seals.empty else seals
        by_seq = {int(s): list(zip(g["alert_id"], g["seal"])) for s, g in seals.groupby("seq")} if not seals.empty else {}
        for seq, payload in entries.items():
            got = by_seq.get(seq, [])
            if len(got) != payload.get("sealed") or _seals_digest(got) != payload.get("seals"):
                v.problems.append(f"alert_seals: the seals of scan entry seq {seq} ({payload.get('scan_id')}) differ from what it signed "
                                  "(a seal was edited, added or deleted)")
        for seq in set(by_seq) - set(entries):
            v.problems.append(f"alert_seals: seals under seq {seq}, which is no scan entry (added outside a scan)")
        last = {a: (int(q), s, f) for q, a, s, f in seals[["seq", "alert_id", "seal", "fields"]].itertuples(index=False)} if not seals.empty else {}
        present = set()
        for r in alerts.to_dict("records"):
            aid = str(r["alert_id"])
            present.add(aid)
            if aid not in last:
                v.problems.append(f"alerts: alert {aid} has no seal (added outside a scan)")
            elif alert_seal(r) != last[aid][1]:
                now, then = alert_fields(r), json.loads(last[aid][2]) if isinstance(last[aid][2], str) else {}
                changed = ", ".join(("geometry" if k == "geometry_sha256" else k) for k in now if now[k] != then.get(k)) or "its fields"
                v.problems.append(f"alerts: alert {aid}: {changed} differ(s) from what scan entry seq {last[aid][0]} sealed (edited outside a scan)")
            else:
                v.sealed += 1
        for aid in sorted(set(last) - present):
            v.problems.append(f"alerts: alert {aid}, sealed by scan entry seq {last[aid][0]}, is missing (deleted)")

    @staticmethod
    def _check_scans(chain: pd.DataFrame, scans: pd.DataFrame, v: Verification) -> None:
        """The ``scans`` table holds, per scan id, what its last signed scan entry recorded."""
        signed = {}
        for r in chain.to_dict("records"):
            if r.get("kind") == "scan":
                p = json.loads(r["payload"])
                if "migrated_from" not in p:
                    signed[p["scan_id"]] = p
        seen = set()
        for r in scans.to_dict("records"):
            sid = r["scan_id"]
            seen.add(sid)
            p = signed.get(sid)
            if p is None:
                v.problems.append(f"scans: scan {sid} has no signed scan entry (added outside a scan)")
            elif any(str(_canon(c, r.get(c))) != str(_canon(c, p.get(c))) for c in SCAN_COLUMNS):
                v.problems.append(f"scans: the row of scan {sid} differs from its signed scan entry (edited)")
        for sid in sorted(set(signed) - seen):
            v.problems.append(f"scans: the row of scan {sid} is missing (deleted)")

    @staticmethod
    def _check_users(chain: pd.DataFrame, users: pd.DataFrame, v: Verification) -> None:
        """The ``users`` table holds, per name, what its latest signed ``user`` entry recorded
        (role, counties, zones, disabled, the sha256 of the password hash)."""
        signed: dict[str, tuple[int, dict]] = {}
        for r in chain.to_dict("records"):
            if r.get("kind") == "user":
                p = json.loads(r["payload"])
                signed[p["name"]] = (int(r["seq"]), p)
        rows = {str(r["name"]): r for r in users.to_dict("records")}
        for name in sorted(set(rows) - set(signed)):
            v.problems.append(f"users: user {name} has no signed user entry (added outside `redline users`)")
        for name in sorted(set(signed) - set(rows)):
            v.problems.append(f"users: user {name}, recorded by entry seq {signed[name][0]}, is missing (deleted)")
        for name in sorted(set(rows) & set(signed)):
            r, (seq, p) = rows[name], signed[name]
            # the stored text as it is (a tampered value may not even parse)
            now = user_payload(name, str(r["role"]), [str(r["counties"] or "")], [str(r["zones"] or "")],
                               str(r["disabled"]).strip() not in ("0", "", "None"), str(r["password_hash"] or ""))
            differ = [("password hash" if k == "password_sha256" else k) for k in now if now[k] != p.get(k)]
            if differ:
                v.problems.append(f"users: user {name}: {', '.join(differ)} differ(s) from its signed entry seq {seq} (edited outside `redline users`)")
            elif str(r["seq"]) != str(seq):  # API tokens name the seq: setting it back would revive revoked tokens
                v.problems.append(f"users: user {name}: seq {r['seq']} is not that of its latest signed entry, {seq} (edited outside `redline users`)")

    @staticmethod
    def _check_teams(chain: pd.DataFrame, teams: pd.DataFrame, v: Verification) -> None:
        """The ``teams`` table holds, per name, what its latest signed ``team`` entry recorded
        (members, disabled) under that entry's seq."""
        signed: dict[str, tuple[int, dict]] = {}
        for r in chain.to_dict("records"):
            if r.get("kind") == "team":
                p = json.loads(r["payload"])
                signed[p["name"]] = (int(r["seq"]), p)
        rows = {str(r["name"]): r for r in teams.to_dict("records")}
        for name in sorted(set(rows) - set(signed)):
            v.problems.append(f"teams: team {name} has no signed team entry (added outside `redline users team-add`)")
        for name in sorted(set(signed) - set(rows)):
            v.problems.append(f"teams: team {name}, recorded by entry seq {signed[name][0]}, is missing (deleted)")
        for name in sorted(set(rows) & set(signed)):
            r, (seq, p) = rows[name], signed[name]
            # the stored text as it is (a tampered value may not even parse)
            differ = [k for k, now, then in (("members", str(r["members"] or ""), ",".join(p.get("members") or [])),
                                             ("disabled", str(r["disabled"]).strip() not in ("0", "", "None"), bool(p.get("disabled")))) if now != then]
            if differ:
                v.problems.append(f"teams: team {name}: {', '.join(differ)} differ(s) from its signed entry seq {seq} (edited outside `redline users`)")
            elif str(r["seq"]) != str(seq):
                v.problems.append(f"teams: team {name}: seq {r['seq']} is not that of its latest signed entry, {seq} (edited outside `redline users`)")

    def verify_history(self) -> list[str]:
        """:meth:`verify`'s problems (empty when intact)."""
        return self.verify().problems

    @staticmethod
    def _status_matches_history(alerts: gpd.GeoDataFrame, chain: pd.DataFrame) -> list[str]:
        """Each alert's status must be where its decisions leave it (``new`` with none), and its
        class, cause and legality what the last decision that set them said: catches a deleted
        last entry (with the chain's tail) and a field edited in place."""
        if alerts.empty:
            return []
        h = chain[chain["kind"].isna() | (chain["kind"] == "review")] if not chain.empty else chain
        last = h.groupby("alert_id")["to_status"].last() if not h.empty else pd.Series(dtype=str)
        out = []
        for aid, status in zip(alerts["alert_id"], alerts["status"], strict=True):
            expected = last.get(aid, "new")
            if status != expected:
                out.append(f"alerts: alert {aid} has status '{status}' but its review history ends at '{expected}' (a history entry was deleted or the status edited)")
        for col in ("activity_class", "cause", "legality"):
            set_rows = h[h[col].notna() & (h[col] != "")] if not h.empty else h
            last_set = set_rows.groupby("alert_id")[col].last() if not set_rows.empty else pd.Series(dtype=str)
            for aid, value in zip(alerts["alert_id"], alerts[col], strict=True):
                expected = last_set.get(aid)
                if not (_blank(value) and expected is None) and value != expected:
                    out.append(f"alerts: alert {aid} has {col} {value!r} but its review history sets {expected!r} (the field was edited outside `redline alerts review`)")
        return out

    # -- copying --------------------------------------------------------------------------------
    def copy_to(self, destination: Register) -> int:
        """Copy this register, row for row, into ``destination`` (a new file, or an empty
        PostgreSQL database): the same alerts, entries, seals, signers, scans and meta, so every
        hash and signature stays valid (GeoPackage ↔ PostGIS both ways). Returns the number of
        history entries copied. Refuses a source that does not verify, or a destination that
        already holds a register."""
        with self._reading() as tx:
            if tx is None or self._version(tx) < SCHEMA_VERSION:
                raise RegisterError(f"{self.store.describe()}: not a schema-{SCHEMA_VERSION} register; a review or `redline keys trust` "
                                    "upgrades an older one first")
            snap = self._snapshot(tx)  # what is checked is what is copied: one snapshot
        problems = self._verify(snap, ()).problems
        alerts = snap.pop("alerts")
        tables = snap
        if problems:
            raise RegisterError(f"{self.store.describe()}: does not verify ({problems[0]}); copy only an intact register")
        if destination.path is not None and destination.path.exists():
            raise RegisterError(f"{destination.path}: exists; copy into a new file")
        with destination.store.transaction(write=True, timeout=destination.lock_timeout) as tx:
            if destination._version(tx) is not None:
                raise RegisterError(f"{destination.store.describe()}: already holds a register; copy into an empty database")
            destination.store.create(tx, ALERT_TYPES, _HISTORY_TYPES)
            _insert_alerts(tx, destination.store, alerts.to_dict("records"))
            for table, df in tables.items():
                df = df.astype(object).where(df.notna(), None)
                if table in ("review_history", "alert_seals", "signers", "users", "teams"):
                    df["seq"] = [int(s) for s in df["seq"]]
                if table in ("users", "teams"):
                    df["disabled"] = [int(d) for d in df["disabled"]]
                tx.many(f'INSERT INTO {_q(table)} ({", ".join(map(_q, df.columns))}) VALUES ({", ".join("?" * len(df.columns))})',
                        df.values.tolist())
            destination.store.touched(tx, tuple(float(v) for v in alerts.total_bounds) if not alerts.empty else None)
        return len(tables["review_history"])
