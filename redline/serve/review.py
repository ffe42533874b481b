"""What the review service's pages and its JSON API share: the queue of alerts a user sees
(scope, filters, sort, paging, counts per status), the caches of the register's alerts and of
who holds each (assignments), and the rules of a decision's free text (its length, the
dismissal note). One place, so that ``/`` and ``/api/alerts`` list the same alerts in the same
order, and a dismissal recorded through the form or the API reads the same in the history."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from redline.register import Register
from redline.register.users import Team, User, holder_names
from redline.vocabulary import CONFIDENCE_LEVELS

__all__ = ["PAGE_SIZE", "SORT_COLUMNS", "QUEUE_FILTERS", "MAX_TEXT", "Queue", "AlertCache", "AlertState", "Scope", "in_scope", "queue_page",
           "dismissal_note"]

PAGE_SIZE = 50
#: queue columns one may sort by
SORT_COLUMNS = ("alert_id", "first_detected", "area_m2", "confidence", "status", "zone_id", "admin_id", "disturbance_type")
#: the queue's filters (query parameters); ``mine``: the alerts assigned to the user or to an
#: enabled team of theirs (:meth:`AlertState.held_by`), within their scope
QUEUE_FILTERS = ("status", "zone", "county", "type", "confidence", "since", "until", "mine")
#: longest free text a decision may send (characters): note, explanation, cause, legality
MAX_TEXT = 4000
_CONFIDENCE_RANK = {c: i for i, c in enumerate(CONFIDENCE_LEVELS)}


@dataclass
class Queue:
    """One page of the queue: the filtered, sorted alerts (``positions``: their rows in
    ``frame``, the alerts without geometry, in queue order; ``held``: who holds each alert;
    ``teams``: which holders are teams), the filters as given and as applied, counts per
    status, the zones and counties of the user's scope, and problems with the filters. Nothing
    is copied from ``frame`` but what is asked for."""

    frame: pd.DataFrame
    positions: np.ndarray
    held: Mapping[str, str]
    teams: frozenset[str]
    params: dict[str, str]
    counts: dict[str, int]
    total: int
    page: int
    pages: int
    sort: str
    order: str
    zones: list[str] = field(default_factory=list)
    counties: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ids(self) -> np.ndarray:
        """The filtered alerts' ids, in queue order."""
        return self.frame["alert_id"].to_numpy()[self.positions]

    @property
    def rows(self) -> pd.DataFrame:
        """The filtered alerts in queue order (a new frame) with ``assigned_to`` (the holder's
        name, None when nobody)."""
        part = self.frame.take(self.positions)
        return part.assign(assigned_to=pd.Series([self.held.get(a) for a in part["alert_id"].tolist()], index=part.index, dtype=object))

    def page_rows(self) -> list[dict[str, Any]]:
        """The alerts of page :attr:`page` (at most :data:`PAGE_SIZE`), one dict each, with
        ``assigned_to`` and ``assigned_team`` (True: the holder is a team)."""
        part = self.frame.take(self.positions[(self.page - 1) * PAGE_SIZE: self.page * PAGE_SIZE])
        rows = [dict(zip(part.columns, r)) for r in part.to_numpy(dtype=object).tolist()]
        for r in rows:
            r["assigned_to"] = self.held.get(r["alert_id"])
            r["assigned_team"] = r["assigned_to"] in self.teams
        return rows


@dataclass(frozen=True)
class Scope:
    """The alerts of a scope (counties, zones) in an :class:`AlertState`: which rows, and the
    zones and counties among them."""

    mask: np.ndarray
    zones: list[str]
    counties: list[str]


@dataclass(frozen=True)
class AlertState:
    """One state of :class:`AlertCache`: the alerts without geometry (``frame``; ``admin_id``
    and ``zone_id`` as text), who holds each (``held``: alert id → user or team name), the
    register's teams by name (``teams``), per row the rank of its id (the queue's tie-break),
    each id's row, and per scope its :class:`Scope` (made when first asked). Never changed once
    handed out: a request may keep using it while another refreshes the cache. Everything but
    ``frame`` and ``held`` is shared by the states between two whole reads: decisions and
    assignments change no id, county, zone or team."""

    frame: pd.DataFrame
    held: Mapping[str, str]
    id_rank: np.ndarray
    row_of: dict[str, int]
    scopes: dict[tuple[tuple[str, ...], tuple[str, ...]], Scope]
    teams: Mapping[str, Team] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame, held: Mapping[str, str] | None = None, teams: Sequence[Team] = ()) -> AlertState:
        """The state of ``frame`` (alerts as :meth:`Register.alert_changes` reads them), ``held`` and ``teams``."""
        frame = _queue_columns(frame)
        ids = frame["alert_id"].to_numpy()
        return cls(frame=frame, held=dict(held or {}), id_rank=_ranks(ids), row_of={a: i for i, a in enumerate(ids.tolist())}, scopes={},
                   teams={t.name: t for t in teams})

    def held_by(self, user: User) -> np.ndarray:
        """The rows (ascending positions into ``frame``) of the alerts "assigned to" ``user``:
        held by the user or by an enabled team they are a member of
        (:func:`redline.register.users.holder_names`); the user's scope is not applied. One
        pass over the holders, as many as there are assigned alerts."""
        names = holder_names(user.name, self.teams.values())
        return np.array(sorted(self.row_of[a] for a, to in self.held.items() if to in names and a in self.row_of), dtype=np.int64)

    def scope(self, user: User) -> Scope:
        """The rows, zones and counties of the user's scope."""
        key = (tuple(user.counties), tuple(user.zones))
        found = self.scopes.get(key)
        if found is None:  # two threads may both make it: the same value
            mask = _scope_mask(self.frame, user)
            zones, counties = (sorted(set(self.frame[c].to_numpy()[mask].tolist())) for c in ("zone_id", "admin_id"))
            found = self.scopes.setdefault(key, Scope(mask=mask, zones=zones, counties=counties))
        return found

    def updated(self, rows: pd.DataFrame | None, assigned: Mapping[str, str | None]) -> AlertState | None:
        """This state with ``rows`` (a few alerts as :meth:`Register.alert_changes` reads them;
        None: none) in place of the alerts of the same ids, and the holders ``assigned`` (None:
        taken back). Only the columns whose values differ are copied; this state stays as it
        was. None when an id is unknown or an id, county or zone changed (only a scan does that,
        and after a scan the cache reads everything)."""
        state = self
        if rows is not None and len(rows):
            rows = _queue_columns(rows)
            pos = np.array([self.row_of.get(a, -1) for a in rows["alert_id"].tolist()], dtype=np.int64)
            if (pos < 0).any():
                return None
            updates = {}
            for c in self.frame.columns:
                old, new = self.frame[c].to_numpy(), rows[c].to_numpy()
                if old[pos].tolist() == new.tolist():
                    continue
                if c in ("alert_id", "admin_id", "zone_id"):
                    return None
                column = old.copy()
                column[pos] = new
                updates[c] = pd.Series(column, index=self.frame.index, dtype=self.frame[c].dtype)  # as it was: no str dtype inferred
            if updates:
                state = replace(state, frame=self.frame.assign(**updates))
        if assigned:
            held = dict(self.held)
            for a, to in assigned.items():
                if to:
                    held[a] = to
                else:
                    held.pop(a, None)
            state = replace(state, held=held)
        return state


class AlertCache:
    """The register's alerts without geometry and who holds each, kept in step with the chain's
    head.

    Each :meth:`state` asks the register what changed since the head it last saw
    (:meth:`Register.alert_changes`: the head, the rows and the holders in one read snapshot):
    after decisions, only the alerts their ``review`` entries name are read again, after
    assignments only the holders their ``assign`` entries name; after anything else (a scan's
    merge, a policy, a user or a team) every alert, holder and team. Every change to an alert comes with a
    history entry, so the state is what :meth:`Register.alerts` and
    :meth:`Register.assignments` would read. A refresh makes a new state (pandas copy-on-write:
    only the changed columns are copied); a state handed out is never changed."""

    def __init__(self, reg: Register):
        self._reg = reg
        self._head: dict[str, Any] | None = None
        self._state: AlertState | None = None
        self._lock = threading.Lock()

    def state(self) -> AlertState:
        """The alerts and their holders as the register holds them now."""
        with self._lock:  # one refresh at a time; the head and the state change together
            changes = self._reg.alert_changes(self._head if self._state is not None else None)
            if not changes.full and self._state is not None:
                current = self._state.updated(changes.alerts, changes.assigned)
                if current is None:  # an alert the state lacks, or a changed id or place
                    changes = self._reg.alert_changes(None)
                else:
                    self._state = current
            if changes.full or self._state is None:
                self._state = AlertState.of(changes.alerts, changes.assigned, changes.teams or ())
            self._head = changes.head
            return self._state

    def frame(self) -> pd.DataFrame:
        """The alerts (``admin_id`` and ``zone_id`` as text) as of the chain's current head (a
        frame never changed later)."""
        return self.state().frame

    def held(self) -> Mapping[str, str]:
        """Alert id → the name of the user or team it is assigned to (alerts nobody holds are absent)."""
        return self.state().held


def _ranks(values: np.ndarray) -> np.ndarray:
    """The rank (0 = smallest) of each of ``values`` (distinct, comparable) among them."""
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank


def _queue_order(values: np.ndarray, id_rank: np.ndarray, ascending: bool) -> np.ndarray:
    """The order (positions into ``values``) that sorts by ``values``, then by the id ranks
    ``id_rank``, ascending or both descending; blanks last either way (as pandas'
    ``sort_values``). Works on integer ranks: strings are compared once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # blanks: -1
    k = len(uniques)
    value_rank = np.where(codes >= 0, _ranks(np.asarray(uniques))[codes] if k else 0, k).astype(np.int64)
    m = int(id_rank.max(initial=-1)) + 1
    if not ascending:
        value_rank = np.where(codes >= 0, k - 1 - value_rank, k)
    return np.argsort(value_rank * m + (id_rank if ascending else m - 1 - id_rank), kind="stable")


def _queue_columns(a: pd.DataFrame) -> pd.DataFrame:
    """Alerts as the queue filters them: ``admin_id`` and ``zone_id`` as text."""
    return a.assign(**{c: pd.Series([str(v) for v in a[c]], index=a.index, dtype=object) for c in ("admin_id", "zone_id")})


def _scope_mask(frame: pd.DataFrame, user: User) -> np.ndarray:
    """Which alerts of ``frame`` are in the user's counties and zones (bool per row)."""
    mask = np.ones(len(frame), dtype=bool)
    if user.counties:
        mask &= frame["admin_id"].astype(str).isin(user.counties).to_numpy()
    if user.zones:
        mask &= frame["zone_id"].astype(str).isin(user.zones).to_numpy()
    return mask


def in_scope(a: pd.DataFrame, user: User) -> pd.DataFrame:
    """The alerts of ``a`` in ``user``'s counties and zones."""
    return a[_scope_mask(a, user)]


def _date(value: str) -> str | None:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def queue_page(alerts: AlertState, user: User, query: Mapping[str, str], t: Any) -> Queue:
    """The queue a user sees in ``alerts`` (:meth:`AlertCache.state`) with the filters
    (:data:`QUEUE_FILTERS`), sort, order and page of ``query``; ``t`` words the problems (a date
    that is not YYYY-MM-DD is ignored and named). Filters are masks over the alerts and the sort
    an order of positions: nothing is copied but the page shown."""
    frame = alerts.frame
    params = {k: str(query.get(k, "")).strip() for k in QUEUE_FILTERS}
    problems = []
    scope = alerts.scope(user)
    mask = scope.mask.copy()
    if params["mine"]:
        params["mine"] = "1"
        mine = np.zeros(len(frame), dtype=bool)
        mine[alerts.held_by(user)] = True
        mask &= mine
    for key, col in (("zone", "zone_id"), ("county", "admin_id"), ("type", "disturbance_type"), ("confidence", "confidence")):
        if params[key]:
            mask &= frame[col].to_numpy() == params[key]
    for key, op in (("since", "ge"), ("until", "le")):
        if params[key]:
            d = _date(params[key])
            if d is None:
                problems.append(f"{t(key)}: {t('bad_date')}")
                params[key] = ""
            else:
                mask &= getattr(frame["first_detected"], op)(d).to_numpy(dtype=bool, na_value=False)  # no date: neither
    status = frame["status"].to_numpy()
    counts = {s: n for s, n in Counter(status[mask].tolist()).items() if isinstance(s, str)}
    if params["status"]:
        mask &= status == params["status"]
    sort = query.get("sort", "first_detected")
    sort = sort if sort in SORT_COLUMNS else "first_detected"
    order = "asc" if query.get("order") == "asc" else "desc"
    positions = np.flatnonzero(mask)
    values = frame[sort].to_numpy()[positions] if sort != "alert_id" else np.zeros(len(positions))
    if sort == "confidence":
        values = np.array([_CONFIDENCE_RANK.get(v, np.nan) for v in values], dtype=float)
    positions = positions[_queue_order(values, alerts.id_rank[positions], order == "asc")]
    total = len(positions)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    try:
        page = min(max(1, int(query.get("page", 1))), pages)
    except ValueError:
        page = 1
    return Queue(frame=frame, positions=positions, held=alerts.held, teams=frozenset(alerts.teams), params=params, counts=counts, total=total, page=page, pages=pages,
                 sort=sort, order=order, zones=scope.zones, counties=scope.counties, problems=problems)


def dismissal_note(reason: str, explanation: str, note: str = "") -> str:
    """The history note of a dismissal: ``reason: explanation`` and the free note in brackets."""
    return f"{reason}: {explanation.strip()}" + (f" ({note.strip()})" if note.strip() else "")
