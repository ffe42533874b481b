"""What the review service's pages and its JSON API share: the queue of alerts a user sees
(scope, filters, sort, paging, counts per status), the caches of the register's alerts and of
who holds each (assignments), and the rules of a decision's free text (its length, the
dismissal note). One place, so that ``/`` and ``/api/alerts`` list the same alerts in the same
order, and a dismissal recorded through the form or the API reads the same in the history."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from redline.register import Register
from redline.register.users import User
from redline.vocabulary import CONFIDENCE_LEVELS

__all__ = ["PAGE_SIZE", "SORT_COLUMNS", "QUEUE_FILTERS", "MAX_TEXT", "Queue", "AlertCache", "Assignments", "with_assignments", "in_scope", "queue_page",
           "dismissal_note"]

PAGE_SIZE = 50
#: queue columns one may sort by
SORT_COLUMNS = ("alert_id", "first_detected", "area_m2", "confidence", "status", "zone_id", "admin_id", "disturbance_type")
#: the queue's filters (query parameters); ``mine``: the alerts assigned to the user
QUEUE_FILTERS = ("status", "zone", "county", "type", "confidence", "since", "until", "mine")
#: longest free text a decision may send (characters): note, explanation, cause, legality
MAX_TEXT = 4000
_CONFIDENCE_RANK = {c: i for i, c in enumerate(CONFIDENCE_LEVELS)}


@dataclass
class Queue:
    """One page of the queue: the filtered, sorted alerts (no geometry), the filters as given
    and as applied, counts per status, and problems with the filters."""

    rows: pd.DataFrame
    params: dict[str, str]
    counts: dict[str, int]
    total: int
    page: int
    pages: int
    sort: str
    order: str
    problems: list[str] = field(default_factory=list)

    def page_rows(self) -> pd.DataFrame:
        """The alerts of this page (at most :data:`PAGE_SIZE`)."""
        return self.rows.iloc[(self.page - 1) * PAGE_SIZE: self.page * PAGE_SIZE]


class AlertCache:
    """The register's alerts without geometry, read again only when the chain's head moved
    (every change to an alert comes with a history entry: a scan's seal or a decision)."""

    def __init__(self, reg: Register):
        self._reg = reg
        self._head: str | None = None
        self._frame: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def frame(self) -> pd.DataFrame:
        """The alerts (``admin_id`` and ``zone_id`` as text), as of the chain's current head."""
        head = (self._reg.head() or {}).get("row_hash")
        with self._lock:
            if self._frame is None or head != self._head:
                a = pd.DataFrame(self._reg.alerts().drop(columns="geometry"))
                a["admin_id"] = a["admin_id"].astype(str)
                a["zone_id"] = a["zone_id"].astype(str)
                self._frame, self._head = a, head
            return self._frame


class Assignments:
    """Who holds each alert now (:meth:`Register.assignments`), read again only when the chain's
    head moved (an assignment is a history entry)."""

    def __init__(self, reg: Register):
        self._reg = reg
        self._head: str | None = None
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()

    def held(self) -> dict[str, str]:
        """Alert id → the name of the user it is assigned to (alerts nobody holds are absent)."""
        head = (self._reg.head() or {}).get("row_hash")
        with self._lock:
            if head != self._head:
                self._held, self._head = self._reg.assignments(), head
            return self._held


def with_assignments(frame: pd.DataFrame, held: Mapping[str, str]) -> pd.DataFrame:
    """The alerts with column ``assigned_to`` (the holder's name, NaN when nobody)."""
    return frame.assign(assigned_to=frame["alert_id"].map(held))


def in_scope(a: pd.DataFrame, user: User) -> pd.DataFrame:
    """The alerts of ``a`` in ``user``'s counties and zones."""
    if user.counties:
        a = a[a["admin_id"].isin(user.counties)]
    if user.zones:
        a = a[a["zone_id"].isin(user.zones)]
    return a


def _date(value: str) -> str | None:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def queue_page(frame: pd.DataFrame, user: User, query: Mapping[str, str], t: Any) -> Queue:
    """The queue a user sees with the filters (:data:`QUEUE_FILTERS`), sort, order and page of
    ``query``; ``t`` words the problems (a date that is not YYYY-MM-DD is ignored and named)."""
    params = {k: str(query.get(k, "")).strip() for k in QUEUE_FILTERS}
    problems = []
    a = in_scope(frame, user)
    if params["mine"]:
        params["mine"] = "1"
        a = a[a["assigned_to"] == user.name] if "assigned_to" in a else a.iloc[:0]
    for key, col in (("zone", "zone_id"), ("county", "admin_id"), ("type", "disturbance_type"), ("confidence", "confidence")):
        if params[key]:
            a = a[a[col].astype(str) == params[key]]
    for key, op in (("since", "ge"), ("until", "le")):
        if params[key]:
            d = _date(params[key])
            if d is None:
                problems.append(f"{t(key)}: {t('bad_date')}")
                params[key] = ""
            else:
                a = a[getattr(a["first_detected"].astype(str), op)(d)]
    counts = {s: int(n) for s, n in a["status"].value_counts().items()}
    if params["status"]:
        a = a[a["status"] == params["status"]]
    sort = query.get("sort", "first_detected")
    sort = sort if sort in SORT_COLUMNS else "first_detected"
    order = "asc" if query.get("order") == "asc" else "desc"
    key = (lambda s: s.map(_CONFIDENCE_RANK)) if sort == "confidence" else None
    a = a.sort_values([sort, "alert_id"] if sort != "alert_id" else ["alert_id"], ascending=order == "asc", key=key, kind="stable")
    total = len(a)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    try:
        page = min(max(1, int(query.get("page", 1))), pages)
    except ValueError:
        page = 1
    return Queue(rows=a, params=params, counts=counts, total=total, page=page, pages=pages, sort=sort, order=order, problems=problems)


def dismissal_note(reason: str, explanation: str, note: str = "") -> str:
    """The history note of a dismissal: ``reason: explanation`` and the free note in brackets."""
    return f"{reason}: {explanation.strip()}" + (f" ({note.strip()})" if note.strip() else "")
