"""The review service's JSON API (``/api/…``): the same alerts, rules and permissions as the
pages, for scripts (README "Review service" › API; docs/architecture.md §2).

Who calls (one dependency, :func:`api_router`'s ``caller``):

- a script with ``Authorization: Bearer <token>`` (RFC 6750 §2.1), a token from ``redline users
  token NAME`` (:func:`user_token`; stateless, see :mod:`redline.serve.auth`). No CSRF token: a
  bearer token is no ambient credential a browser would send on its own (OWASP CSRF Prevention
  Cheat Sheet). A token that is forged, expired or revoked is 401 with ``WWW-Authenticate:
  Bearer error="invalid_token"`` (RFC 6750 §3.1); after :data:`~redline.serve.auth.MAX_FAILURES`
  forged or malformed tokens from one address within 15 min, 429 with ``Retry-After`` (as the
  login);
- a logged-in browser (the session cookie); its POSTs need the session's CSRF token in the
  header ``X-CSRF-Token`` (``GET /api/me`` gives it);
- nobody: 401 with ``WWW-Authenticate: Bearer realm="redline"`` (RFC 6750 §3).

Every decision goes through :meth:`redline.register.Register.review` with ``by`` = the caller,
as the pages' do. An alert outside the caller's counties or zones is 404, the same answer as an
unknown id; a decision the caller's role or the separation of duties forbids, 403 with the
reason; one the alert's state does not allow, 409; a body that is not JSON, 400; one that breaks
a rule of the body (unknown field or code, dismissal without reason), 422. Every error is JSON
``{"detail": "one line"}``. The schema is ``/api/openapi.json``; ``/api/docs`` renders it with
Swagger UI from the installed ``fastapi-offline`` package (no CDN), started by
``static/api_docs.js`` (no inline script: the pages' Content-Security-Policy).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import fastapi_offline
import shapely
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException
from starlette.routing import Match

from redline.errors import NotPermitted, RegisterError
from redline.register import Register
from redline.register.users import User
from redline.serve.auth import MAX_TOKEN_DAYS, TOKEN_DAYS, ApiToken, LoginLimiter, Session, SessionStore, issue_token, load_secret, read_token, secret_path
from redline.serve.review import (
    MAX_TEXT, PAGE_SIZE, SORT_COLUMNS, AlertCache, dismissal_note, in_scope, queue_page,
)
from redline.vocabulary import ACTIVITY_CODES, CONFIDENCE_LEVELS, DISTURBANCE_TYPES, REVIEW_STEPS, STATUSES, STEP_RESULTS, USER_ROLES

__all__ = [
    "api_router", "user_token", "register_identity", "CSRF_HEADER", "SWAGGER_UI_DIR", "Me", "Alert", "AlertPage", "AlertDetail", "Actions",
    "HistoryEntry", "Decision", "ApiError",
]

log = logging.getLogger(__name__)

#: the header a cookie session's POST carries its CSRF token in
CSRF_HEADER = "X-CSRF-Token"
#: Swagger UI's files, as the installed ``fastapi-offline`` ships them (served under /lib/swagger-ui/)
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).parent / "static"
_SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
_REALM = 'Bearer realm="redline"'
_DESCRIPTION = ("The review service's alerts, history and decisions, with the same rules and permissions as its pages. Scripts send "
                "`Authorization: Bearer <token>` (a token from `redline users token NAME`); a logged-in browser's POSTs send the header "
                f"`{CSRF_HEADER}` (from `GET /api/me`). Errors are `{{\"detail\": \"one line\"}}`.")
_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redline review service · API</title>
<link rel="stylesheet" href="/lib/swagger-ui/swagger-ui.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
<div id="swagger-ui" data-openapi="/api/openapi.json"></div>
<script src="/lib/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/api_docs.js"></script>
</body>
</html>
"""


# -- the schema's models ----------------------------------------------------------------------
class ApiError(BaseModel):
    """Every error: one line, and for a refusal by the review rules its reason."""

    detail: str = Field(description="what went wrong, in one line")
    reason: str | None = Field(None, description="of a 403: user | role | separation (redline.register.rules)")


class Me(BaseModel):
    """The caller."""

    name: str
    role: Literal[tuple(USER_ROLES)]
    counties: list[str] = Field(description="county (admin_id) codes the user acts on; empty: all")
    zones: list[str] = Field(description="zone codes the user acts on; empty: all")
    auth: Literal["bearer", "session"] = Field(description="how this request was authenticated")
    token_expires: dt.datetime | None = Field(None, description="the bearer token's expiry (UTC)")
    csrf: str | None = Field(None, description=f"a cookie session's CSRF token, for the {CSRF_HEADER} header of its POSTs")


class Alert(BaseModel):
    """An alert's register fields (docs/architecture.md §4.4; README "The register")."""

    alert_id: str
    zone_id: str | None = None
    zone_name: str | None = None
    admin_id: str | None = Field(None, description="county code")
    area_m2: float | None = Field(None, description="area, m²")
    centroid_lon: float | None = Field(None, description="centroid longitude, EPSG:4326 degrees")
    centroid_lat: float | None = Field(None, description="centroid latitude, EPSG:4326 degrees")
    first_detected: str | None = Field(None, description="YYYY-MM-DD")
    last_observed: str | None = Field(None, description="YYYY-MM-DD")
    confidence: str | None = Field(None, description=" | ".join(CONFIDENCE_LEVELS))
    disturbance_type: str | None = Field(None, description=" | ".join(DISTURBANCE_TYPES))
    magnitude: float | None = Field(None, description="median index drop")
    n_observations: int | None = Field(None, description="confirming clear observations")
    status: str = Field(description=" | ".join(STATUSES))
    scan_ids: str | None = Field(None, description="comma list of the scans that found or updated it")
    chip_before: str | None = Field(None, description="chip path relative to the scan's output folder")
    chip_after: str | None = None
    recheck: int | None = Field(None, description="1: a rectified site where the disturbance goes on")
    activity_candidates: str | None = None
    activity_class: str | None = Field(None, description=" | ".join(ACTIVITY_CODES))
    change_type: str | None = Field(None, description="new (新增) | expansion (规模扩大)")
    cause: str | None = None
    legality: str | None = None
    before_dates: str | None = Field(None, description="dates of the looks in the before chip")
    after_dates: str | None = None
    assigned_to: str | None = Field(None, description="the user or team the alert is assigned to (not a register column: its latest assign entry)")
    assigned_team: bool = Field(False, description="true: assigned_to is a team (its enabled members see the alert under mine, in their scope)")


class AlertPage(BaseModel):
    """One page of the queue, as ``/`` shows it: the alerts without geometry."""

    items: list[Alert]
    total: int = Field(description="alerts matching the filters, all pages")
    page: int
    pages: int
    page_size: int = PAGE_SIZE
    sort: str
    order: Literal["asc", "desc"]
    counts: dict[str, int] = Field(description="alerts per status, the status filter aside")
    filters: dict[str, str] = Field(description="the filters applied")


class HistoryEntry(BaseModel):
    """A signed entry of the review history (``review_history``; README "The register")."""

    seq: int
    alert_id: str | None = None
    time: str = Field(description="ISO 8601, UTC")
    by: str
    from_status: str | None = None
    to_status: str | None = None
    note: str | None = None
    step: str | None = None
    result: str | None = None
    activity_class: str | None = None
    cause: str | None = None
    legality: str | None = None
    kind: str | None = Field(None, description="review (a decision) | assign (an assignment)")
    payload: str | None = Field(None, description='JSON of an assign entry: {"to": name} for a user, {"to": name, "team": true} for a team'),
    prev_hash: str
    row_hash: str = Field(description="sha256 of the entry's canonical JSON, prev_hash included")
    key_id: str | None = Field(None, description="the signing key")
    signature: str | None = Field(None, description="ed25519 signature of row_hash")


class Actions(BaseModel):
    """What the caller may record on the alert now (``Register.allowed_actions``)."""

    statuses: list[str] = Field(description="status changes allowed")
    step: str | None = Field(None, description="the next review step, if the caller may record it")
    annotate: bool = Field(description="class, cause, legality and notes")
    assign: bool = Field(description="hand the alert to a user (on the alert page)")
    why_not: dict[str, str] = Field(description="per refused status or step, the reason")
    dismiss_reasons: list[str] = Field(description="the reasons a dismissal chooses from (when dismissing is allowed)")


class Geometry(BaseModel):
    """A GeoJSON geometry, EPSG:4326 (RFC 7946)."""

    type: str
    coordinates: list[Any]


class AlertDetail(Alert):
    """An alert: every register field, its outline, its history and what the caller may do."""

    geometry: Geometry | None = Field(None, description="GeoJSON, EPSG:4326")
    history: list[HistoryEntry]
    actions: Actions


class Decision(BaseModel):
    """A decision, as the alert page's forms record them, in one body: a review step with its
    result, a status change (dismissing needs ``reason`` from the list and ``explanation``), the
    findings (class, cause, legality) and a note; at least one of them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    step: Literal[tuple(REVIEW_STEPS)] | None = None
    result: Literal[STEP_RESULTS] | None = Field(None, description="of the step; default pass")
    to_status: Literal[STATUSES] | None = None
    reason: str | None = Field(None, max_length=200, description="to dismiss: one of actions.dismiss_reasons")
    explanation: str | None = Field(None, max_length=MAX_TEXT, description="to dismiss: why")
    activity_class: Literal[ACTIVITY_CODES] | None = None
    cause: str | None = Field(None, max_length=MAX_TEXT)
    legality: str | None = Field(None, max_length=MAX_TEXT)
    note: str | None = Field(None, max_length=MAX_TEXT)

    @model_validator(mode="after")
    def _one_decision(self) -> Decision:
        if self.result is not None and self.step is None:
            raise ValueError("result needs step: give the review step it belongs to")
        if self.to_status == "dismissed" and not (self.reason and self.explanation):
            raise ValueError("dismissing needs a reason from the list and an explanation")
        if self.to_status != "dismissed" and (self.reason or self.explanation):
            raise ValueError("reason and explanation go with to_status 'dismissed'")
        if not any((self.step, self.to_status, self.activity_class, self.cause, self.legality, self.note)):
            raise ValueError("nothing to record; give step, to_status, activity_class, cause, legality or note")
        return self


class Assignment(BaseModel):
    """Hand alerts to a user or a team (``to``; null takes them back): the given ``alert_ids``,
    all in one transaction (every one is assigned or none)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    alert_ids: list[str] = Field(..., min_length=1, max_length=10_000)
    to: str | None = Field(..., max_length=64, description="a user whose counties and zones cover each alert, or an enabled team with an enabled "
                                                          "member whose counties and zones cover each alert; null: take back")
    note: str | None = Field(None, max_length=MAX_TEXT)


_ERRORS = {code: {"model": ApiError, "description": text} for code, text in (
    (401, "no credentials, or a forged, expired or revoked token"), (403, "refused by the review rules, or a cookie POST without its CSRF token"),
    (404, "no such alert for this caller"), (409, "the alert's state does not allow it"), (400, "the body is not JSON"),
    (422, "the body or a parameter breaks a rule"), (429, "too many invalid tokens from this address"))}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: _ERRORS[c] for c in codes}


# -- errors as one line of JSON -----------------------------------------------------------------
def _problem(status: int, detail: str, *, headers: dict[str, str] | None = None, reason: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if reason is not None:
        body["reason"] = reason
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_line(exc: RequestValidationError) -> tuple[int, str]:
    """(400 or 422, one line) for a request that failed validation: the first problem."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return 400, f"the body is not JSON ({(first.get('ctx') or {}).get('error', 'decode error')})"
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {msg}{more}" if where else f"{msg}{more}"


class _JSONErrorsRoute(APIRoute):
    """An API route whose errors (validation, HTTP) answer ``{"detail": "one line"}`` (the
    app's error pages are HTML)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _problem(*_validation_line(exc))
            except HTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
                return _problem(exc.status_code, detail, headers=dict(exc.headers or {}),
                                reason=getattr(exc, "reason", None))

        return route


class _Refused(HTTPException):
    """A 403 of the review rules, with its reason."""

    def __init__(self, detail: str, reason: str):
        super().__init__(403, detail)
        self.reason = reason


# -- tokens ---------------------------------------------------------------------------------
def register_identity(reg: Register) -> str:
    """The register's identity in its API tokens: the hash of its first history entry (it never
    changes and survives ``register copy``), so a token of one register opens no other one
    served by the same installation."""
    chain = reg.chain()
    if chain.empty:
        raise RegisterError(f"{reg.store.describe()}: the register has no history yet; add a user first (`redline users add`)")
    return str(chain["row_hash"].iloc[0])


def user_token(reg: Register, name: str, *, days: int = TOKEN_DAYS, expires: dt.datetime | None = None,
               secret: bytes | None = None) -> tuple[str, dt.datetime]:
    """A bearer token for the enabled user ``name`` and its expiry (UTC): ``days`` from now
    (1–:data:`~redline.serve.auth.MAX_TOKEN_DAYS`), or at ``expires`` as given. Needs this
    installation's key to be an admin of the register (as ``redline users add``); ``secret``:
    the session secret (default: the installation's, next to the key, which ``redline serve``
    uses too). The token is not stored anywhere; it stops working when it expires, when the user
    is disabled or their account changes, or when the secret is replaced."""
    kid = reg.key.key_id
    role = reg.signers().get(kid)
    if role != "admin":
        raise RegisterError(f"{reg.store.describe()}: issuing an API token needs an admin key of the register; this installation's key {kid} "
                            f"is {'a ' + role if role else 'not listed'} (`redline keys trust` by an admin)")
    user = reg.user(name)
    if user is None:
        raise RegisterError(f"no user {name!r} in {reg.store.describe()}; list them with `redline users list`")
    if user.disabled:
        raise RegisterError(f"user {user.name} is disabled; enable them first (`redline users enable {user.name}`)")
    if expires is None:
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise RegisterError(f"--days {days}: a token lives 1 to {MAX_TOKEN_DAYS} days")
        expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days)
    secret = secret if secret is not None else load_secret(secret_path(reg.key.path))
    return issue_token(secret, register_identity(reg), user.name, user.seq, int(expires.timestamp())), expires.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class _Caller:
    user: User
    session: Session | None = None  # a cookie session
    token: ApiToken | None = None  # a bearer token


# -- plain values for JSON ----------------------------------------------------------------------
def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with NaN as None and numpy scalars as Python ones."""
    out = {}
    for k, v in row.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def api_router(reg: Register, *, secret: bytes, sessions: SessionStore, session_user: Callable[[Request], tuple[Session, User] | None],
               alerts: AlertCache, reasons: Sequence[str], translate: Callable[[str], str], clock: Callable[[], float] = time.time,
               page_slots: threading.BoundedSemaphore | None = None) -> APIRouter:
    """The JSON API of the review service over ``reg`` (module docstring), to include in the
    app of :func:`redline.serve.create_app`: ``secret`` the installation's session secret (it
    signs the tokens), ``sessions`` and ``session_user`` the pages' sessions and who is logged in
    through the request's cookie, ``alerts`` the pages' cache of the alerts and their holders,
    ``reasons`` the dismissal reasons, ``translate`` the pages' words (the queue's problems),
    ``page_slots`` the pages' slots (:data:`redline.serve.app.PAGE_SLOTS`), for which the heavy
    reads (the queue, an alert) wait as the pages do (None: no wait)."""
    router = APIRouter(route_class=_JSONErrorsRoute, tags=["review"])
    register_id = register_identity(reg)
    bearer = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="rl1 token",
                        description="`redline users token NAME`: a token for scripts (RFC 6750)")
    csrf_header = APIKeyHeader(name=CSRF_HEADER, auto_error=False, scheme_name="csrf",
                               description="a logged-in browser's POSTs: the session's CSRF token (GET /api/me)")
    bad_tokens = LoginLimiter()  # forged or malformed tokens, per client address
    openapi: dict[str, Any] = {}

    def one_at_a_time(handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler`` (sync: it runs in the thread pool) waits for a page slot. Defined here:
        FastAPI reads the handler's annotations in its wrapper's module."""
        if page_slots is None:
            return handler

        @functools.wraps(handler)
        def slotted(*args: Any, **kwargs: Any) -> Any:
            with page_slots:
                return handler(*args, **kwargs)
        return slotted

    def unauthorized(detail: str, error: str | None = None) -> HTTPException:
        challenge = _REALM + (f', error="{error}", error_description="{detail}"' if error else "")
        return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})

    def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> _Caller:
        """Who calls: a bearer token's user, else a logged-in browser's; else 401."""
        if credentials is None:
            who = session_user(request)
            if who is None:
                raise unauthorized("authentication required: send Authorization: Bearer <token> (redline users token NAME) or log in")
            return _Caller(user=who[1], session=who[0])
        key = (f"addr:{_client(request)}",)
        wait = bad_tokens.retry_after(key)
        if wait is not None:
            raise HTTPException(429, f"too many invalid tokens from this address; retry in {wait} s", headers={"Retry-After": str(wait)})
        claims = read_token(secret, register_id, credentials.credentials)
        if claims is None:
            bad_tokens.failed(key)
            log.warning("API: invalid token from %s", _client(request))
            raise unauthorized("invalid token", "invalid_token")
        if claims.expires <= clock():
            when = dt.datetime.fromtimestamp(claims.expires, dt.timezone.utc).isoformat()
            raise unauthorized(f"the token expired at {when}; issue a new one with redline users token", "invalid_token")
        user = reg.user(claims.name)
        if user is None or user.disabled or user.seq != claims.seq:
            log.warning("API: revoked token of %s from %s", claims.name, _client(request))
            raise unauthorized("the token was revoked (the user was disabled or their account changed); issue a new one", "invalid_token")
        return _Caller(user=user, token=claims)

    def writer(who: _Caller = Depends(caller), csrf: str | None = Depends(csrf_header)) -> _Caller:
        """A caller who may write: a bearer token, or a cookie session with its CSRF token."""
        if who.session is not None and not sessions.csrf_ok(who.session, csrf):
            raise HTTPException(403, f"a POST with the session cookie needs the header {CSRF_HEADER} (GET /api/me gives it)")
        return who

    def visible(user: User, alert_id: str) -> dict[str, Any]:
        a = reg.alert(alert_id)
        if a is None or not user.in_scope(a.get("admin_id"), a.get("zone_id")):
            raise HTTPException(404, f"no alert {alert_id[:80]!r}")
        return a

    # -- who am I -------------------------------------------------------------------------------
    @router.get("/api/me", response_model=Me, responses=_errors(401, 429), summary="The authenticated user")
    def me(who: _Caller = Depends(caller)) -> Me:
        u = who.user
        expires = dt.datetime.fromtimestamp(who.token.expires, dt.timezone.utc) if who.token else None
        return Me(name=u.name, role=u.role, counties=list(u.counties), zones=list(u.zones), auth="bearer" if who.token else "session",
                  token_expires=expires, csrf=sessions.csrf_token(who.session) if who.session is not None else None)

    # -- the queue ------------------------------------------------------------------------------
    @router.get("/api/alerts", response_model=AlertPage, responses=_errors(401, 422, 429), summary="The queue: alerts in the caller's scope")
    @one_at_a_time
    def list_alerts(
        who: _Caller = Depends(caller),
        status: Literal[STATUSES] | None = Query(None),
        zone: str | None = Query(None, max_length=32, description="zone code"),
        county: str | None = Query(None, max_length=32, description="county (admin_id) code"),
        type: Literal[DISTURBANCE_TYPES] | None = Query(None, description="disturbance type"),  # noqa: A002 - the queue page's name
        confidence: Literal[CONFIDENCE_LEVELS] | None = Query(None),
        since: dt.date | None = Query(None, description="first detected on or after (YYYY-MM-DD)"),
        until: dt.date | None = Query(None, description="first detected on or before (YYYY-MM-DD)"),
        sort: Literal[SORT_COLUMNS] = Query("first_detected"),
        order: Literal["asc", "desc"] = Query("desc"),
        mine: bool = Query(False, description="only the alerts assigned to the caller or to an enabled team of theirs"),
        page: int = Query(1, ge=1, description=f"{PAGE_SIZE} alerts a page; past the last, the last"),
    ) -> AlertPage:
        given = {"status": status, "zone": zone, "county": county, "type": type, "confidence": confidence, "since": since, "until": until,
                 "mine": "1" if mine else None, "sort": sort, "order": order, "page": page}
        q = queue_page(alerts.state(), who.user, {k: str(v) for k, v in given.items() if v is not None}, translate)
        items = [Alert(**_plain(r)) for r in q.page_rows()]
        return AlertPage(items=items, total=q.total, page=q.page, pages=q.pages, sort=q.sort, order=q.order, counts=q.counts,
                         filters={k: v for k, v in q.params.items() if v})

    # -- one alert ------------------------------------------------------------------------------
    @router.get("/api/alerts/{alert_id}", response_model=AlertDetail, responses=_errors(401, 404, 429),
                summary="An alert: its fields, outline, history and what the caller may record")
    @one_at_a_time
    def get_alert(alert_id: str, who: _Caller = Depends(caller)) -> AlertDetail:
        a = visible(who.user, alert_id)
        geometry = a.pop("geometry")
        history = [HistoryEntry(**_plain(r)) for r in reg.history(alert_id).to_dict("records")]
        acts = reg.allowed_actions(alert_id, who.user)
        if acts is None:  # deleted meanwhile
            raise HTTPException(404, f"no alert {alert_id[:80]!r}")
        actions = Actions(statuses=list(acts.statuses), step=acts.step, annotate=acts.annotate, assign=acts.assign, why_not=dict(acts.why_not),
                          dismiss_reasons=list(reasons) if "dismissed" in acts.statuses else [])
        state = alerts.state()
        holder = state.held.get(alert_id)
        return AlertDetail(**_plain(a), assigned_to=holder, assigned_team=holder in state.teams,
                           geometry=shapely.geometry.mapping(geometry) if geometry is not None else None, history=history, actions=actions)

    @router.post("/api/alerts/{alert_id}/decisions", response_model=HistoryEntry, status_code=201,
                 responses=_errors(400, 401, 403, 404, 409, 422, 429), summary="Record a decision (Register.review by the caller)")
    def decide(alert_id: str, decision: Decision, who: _Caller = Depends(writer)) -> HistoryEntry:
        user = who.user
        visible(user, alert_id)
        d = decision
        note = d.note or ""
        if d.to_status == "dismissed":
            if d.reason not in reasons:
                raise HTTPException(422, f"reason {d.reason[:80]!r} is not one of the dismissal reasons: {', '.join(reasons)}")
            note = dismissal_note(d.reason, d.explanation, note)
        try:
            row = reg.review(alert_id, by=user.name, to_status=d.to_status, step=d.step, result=d.result, activity_class=d.activity_class,
                             cause=d.cause or None, legality=d.legality or None, note=note or None)
        except NotPermitted as exc:
            log.warning("API refused: %s on %s: %s", user.name, alert_id, exc)
            if exc.reason == "scope":
                raise HTTPException(404, f"no alert {alert_id[:80]!r}") from None
            raise _Refused(str(exc), exc.reason) from None
        except RegisterError as exc:
            raise HTTPException(409, str(exc)) from None
        log.info("API decision: %s on %s: %s", user.name, alert_id, d.model_dump(exclude_none=True, exclude={"note", "explanation"}))
        return HistoryEntry(**_plain(row))

    @router.post("/api/assignments", response_model=list[HistoryEntry], status_code=201, responses=_errors(400, 401, 403, 404, 422, 429),
                 summary="Assign alerts to a user or a team (Register.assign by the caller)")
    def assign(body: Assignment, who: _Caller = Depends(writer)) -> list[HistoryEntry]:
        user = who.user
        ids = list(dict.fromkeys(body.alert_ids))
        visible_ids = set(in_scope(alerts.frame(), user)["alert_id"])
        hidden = next((i for i in ids if i not in visible_ids), None)
        if hidden is not None:  # out of scope or no such alert: the same answer
            raise HTTPException(404, f"no alert {hidden[:80]!r}")
        try:
            rows = reg.assign(ids, to=body.to, by=user.name, note=body.note)
        except NotPermitted as exc:
            log.warning("API assignment refused: %s: %s", user.name, exc)
            raise _Refused(str(exc), exc.reason) from None
        except RegisterError as exc:  # the assignee is no user or team, disabled, or does not cover an alert
            raise HTTPException(422, str(exc)) from None
        log.info("API assignment: %s assigned %d alert(s) to %s", user.name, len(rows), body.to)
        return [HistoryEntry(**_plain(r)) for r in rows]

    # -- the schema and its page ------------------------------------------------------------------
    @router.get("/api/openapi.json", include_in_schema=False)
    def openapi_json() -> JSONResponse:
        if not openapi:
            try:
                version = metadata.version("redline")
            except metadata.PackageNotFoundError:
                version = "unknown"
            openapi.update(get_openapi(title="redline review service API", version=version, routes=router.routes, description=_DESCRIPTION))
        return JSONResponse(openapi)

    @router.get("/api/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(_DOCS_PAGE)

    @router.get("/lib/swagger-ui/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        f = SWAGGER_UI_DIR / name
        if name not in _SWAGGER_FILES or not f.is_file():
            raise HTTPException(404, f"no file {name[:80]!r}")
        return FileResponse(f, headers={"Cache-Control": "public, max-age=86400"})

    @router.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def elsewhere(request: Request, rest: str) -> Response:
        """Any other path under /api: 405 on a known path with another method, else 404."""
        allowed = sorted({m for r in router.routes if isinstance(r, APIRoute) and r.endpoint is not elsewhere
                          and r.matches(request.scope)[0] == Match.PARTIAL for m in (r.methods or ())})
        if allowed:
            raise HTTPException(405, f"{request.method} is not allowed here; use {', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        raise HTTPException(404, f"no API path /api/{rest[:80]} (see /api/docs)")

    return router
