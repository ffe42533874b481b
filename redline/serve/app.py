"""The review service's pages (FastAPI + Jinja2): login, the queue, an alert and its decisions.

Every decision goes through :meth:`redline.register.Register.review` with ``by`` = the logged-in
user, so the web obeys the same rules as the command line (:mod:`redline.register.rules`). An
alert outside the user's counties or zones answers 404 (its id reveals nothing); an action the
user may not take, 403 with the reason; a decision the alert's state no longer allows (the page
was stale), 409 with the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import shapely
import xstatic.pkg.bootstrap as xs_bootstrap
import xstatic.pkg.leaflet as xs_leaflet
from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redline.outputs import ZONES_GEOJSON
from redline.errors import NotPermitted, RegisterError
from redline.geojson import to_geojson
from redline.register import Register
from redline.register.export import MEDIA_TYPES, export_alerts, ledger_context, ledger_table, write_ledger
from redline.register.users import User, dummy_verify
from redline.serve.api import api_router
from redline.serve.auth import IDLE_TIMEOUT_S, LoginLimiter, Session, SessionStore, cookie_name, load_secret, secret_path
from redline.serve.field import field_router, photo_store
from redline.serve.i18n import DISMISS_REASONS, LANGS, label, translator
from redline.serve.review import (
    MAX_TEXT, PAGE_SIZE, SORT_COLUMNS, AlertCache, Queue, dismissal_note, in_scope, queue_page,
)
from redline.vocabulary import ACTIVITY_CLASSES, CONFIDENCE_LEVELS, DISTURBANCE_TYPES, STATUSES, STEP_RESULTS

__all__ = ["create_app", "PAGE_SIZE", "SORT_COLUMNS", "SECURITY_HEADERS", "EXPORTS"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
_CHIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: argon2 verifications at once (each takes 64 MiB and ~0.2 s): a burst of logins queues instead
#: of taking the machine's memory
LOGIN_SLOTS = 4
#: pages (the queue, an alert, the queue's map, and the API's equivalent reads) made at once: the
#: rest wait their turn. Making a page is Python work under the GIL, so two at once take as long
#: as one after the other; a decision's write transaction, meanwhile, takes the GIL back after
#: each SQLite statement, and the more threads compete for it the longer it holds the register's
#: write lock (measured: 1 ms with one page thread, 19 ms median with six; benchmarks/README.md §8)
PAGE_SLOTS = 1
#: OWASP HTTP Headers / Clickjacking Defense / Content Security Policy cheat sheets. ``img-src
#: data:`` for the SVG icons inside Bootstrap's CSS; no inline script or style anywhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(self), payment=()",  # geolocation: the field pages (serve/field.py)
}
_STATIC_PREFIXES = ("/static/", "/lib/")
#: the queue's downloads of its filtered set: file name → (format, the full ledger?), written by
#: the command line's writers (:mod:`redline.register.export`)
EXPORTS = {"alerts.geojson": ("geojson", False), "alerts.gpx": ("gpx", False), "alerts.kml": ("kml", False),
           "alerts.csv": ("csv", False), "ledger.csv": ("csv", True), "ledger.xlsx": ("xlsx", True)}


class _SecurityHeaders:
    """ASGI middleware: the security headers on every response, ``Cache-Control: no-store`` on
    every page (pages carry names and decisions; assets may be cached), HSTS behind TLS."""

    def __init__(self, app: ASGIApp, *, hsts: bool):
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(_STATIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers[k] = v
                if not static:
                    headers["Cache-Control"] = "no-store"
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _queue_qs(q: Queue, **changes: Any) -> str:
    """The queue's query string (non-empty filters, sort, order, page) with ``changes``."""
    p = {k: v for k, v in q.params.items() if v}
    p.update(sort=q.sort, order=q.order, page=q.page)
    p.update(changes)
    return urlencode({k: v for k, v in p.items() if v not in ("", None)})


def _local_next(target: str | None) -> str:
    """Where to go after login: a local path only (never ``//host`` or a scheme: no open redirect)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(c.isspace() or ord(c) < 0x20 for c in target)):  # browsers drop tabs and newlines: "/\t/x" would be "//x"
        return "/"
    return target


def create_app(register_location: str | Path, out_dir: str | Path | None = None, *, secret: bytes | None = None, lang: str = "zh",
               secure_cookies: bool = False, idle_timeout_s: float = IDLE_TIMEOUT_S, dismiss_reasons: Sequence[str] | None = None,
               register: Register | None = None, photos_dir: str | Path | None = None, figure_cache: str | Path | None = None,
               draw_zone_figure: Callable[..., Path | None] | None = None) -> FastAPI:
    """The review service for the register at ``register_location`` (a GeoPackage or a
    ``postgresql://`` URL); ``out_dir``: the scan's output folder whose chips the alert pages
    show. ``secret``: the session secret (default: ``serve_secret`` next to the signing key,
    made on first use). ``secure_cookies``: behind TLS. ``dismiss_reasons``: the reasons a
    dismissal chooses from (default :data:`redline.serve.i18n.DISMISS_REASONS`). ``photos_dir``:
    the field photos' folder (default: the GeoPackage's ``<stem>-photos``; required for a
    ``postgresql://`` register; :mod:`redline.serve.field`). ``draw_zone_figure``: a zone's
    figure, ``draw_zone_figure(out_dir, zone_id, cache=folder) -> PNG path | None`` (the CLI
    passes :func:`maps.zone_figure`: the scan's, else drawn when first opened into
    ``figure_cache``, default :func:`_figure_cache`); None: alert pages show no zone figure.

    Refuses (one-line :class:`RegisterError`) a register without users, a missing signing key,
    or one the register does not list."""
    if lang not in LANGS:
        raise RegisterError(f"--lang {lang!r} is not supported; use {' or '.join(LANGS)}")
    reg = register or Register(register_location)
    photos = photo_store(reg, photos_dir)  # before any connection: a PostgreSQL register needs --photos
    if not reg.has_users():
        raise RegisterError(f"{reg.store.describe()}: the register has no users, so no one could log in; add one with "
                            "`redline users add NAME --role admin --register …`")
    reg.check_writable()  # the signing key is there and may sign this register
    dummy_verify("-")  # the unknown-name hash made now: the first login with a wrong name takes as long as the next ones
    if secret is None:
        secret = load_secret(secret_path(reg.key.path))
    out = Path(out_dir).resolve() if out_dir is not None else None
    reasons = tuple(dismiss_reasons) if dismiss_reasons else DISMISS_REASONS[lang]
    sessions = SessionStore(secret, idle_timeout_s=idle_timeout_s)
    limiter = LoginLimiter()
    cache = AlertCache(reg)
    geometries = _Geometries(reg)
    cookie = cookie_name(secure_cookies)
    login_slots = threading.BoundedSemaphore(LOGIN_SLOTS)
    page_slots = threading.BoundedSemaphore(PAGE_SLOTS)

    def one_page_at_a_time(handler: Any) -> Any:
        """``handler`` (a page route, sync: it runs in the thread pool) waits for a page slot
        (:data:`PAGE_SLOTS`)."""
        @functools.wraps(handler)
        def slotted(*args: Any, **kwargs: Any) -> Any:
            with page_slots:
                return handler(*args, **kwargs)
        return slotted

    t = translator(lang)
    zones_geojson = _zone_geometries(out)
    zone_admin = _zone_admins(out) if draw_zone_figure is not None else {}
    figure_cache = _figure_cache(out) if figure_cache is None and out is not None else figure_cache
    figure_lock = threading.Lock()

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(t=t, lang=lang, label=lambda kind, code: label(kind, code, lang), statuses=STATUSES, types=DISTURBANCE_TYPES,
                       confidences=CONFIDENCE_LEVELS, activity_classes=ACTIVITY_CLASSES, results=STEP_RESULTS)
    templates = Jinja2Templates(env=env)

    app = FastAPI(title="redline review service", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders, hsts=secure_cookies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/lib/leaflet", StaticFiles(directory=xs_leaflet.BASE_DIR), name="leaflet")
    app.mount("/lib/bootstrap", StaticFiles(directory=xs_bootstrap.BASE_DIR), name="bootstrap")

    # -- helpers ------------------------------------------------------------------------------
    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(cookie))

    def logged_in(request: Request) -> tuple[Session, User] | None:
        """The session and its user, re-read from the register on every request (a disabled
        user, or one removed, is logged out at once; a changed role or scope applies at once)."""
        s = session_of(request)
        if s is None or s.user is None:
            return None
        u = reg.user(s.user)
        if u is None or u.disabled:
            sessions.drop(s)
            return None
        return s, u

    def set_cookie(response: Response, s: Session) -> Response:
        response.set_cookie(cookie, sessions.cookie_value(s), httponly=True, samesite="strict", secure=secure_cookies, path="/")
        return response

    def page(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200, session: Session | None = None,
             user: User | None = None, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        flash = list(session.flash) if session is not None else []
        if session is not None:
            session.flash.clear()
        ctx = {"user": user, "csrf": sessions.csrf_token(session) if session is not None else "", "flash": flash, **context}
        return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=dict(headers or {}))

    def error(request: Request, status_code: int, title: str, message: str, *, session: Session | None = None, user: User | None = None,
              headers: Mapping[str, str] | None = None) -> HTMLResponse:
        return page(request, "error.html", {"title": title, "message": message, "status_code": status_code}, status_code=status_code,
                    session=session, user=user, headers=headers)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    def visible_alert(user: User, alert_id: str) -> dict[str, Any] | None:
        a = reg.alert(alert_id)
        return a if a is not None and user.in_scope(a.get("admin_id"), a.get("zone_id")) else None

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: t("not_found"), 405: t("not_allowed")}
        return error(request, exc.status_code, titles.get(exc.status_code, str(exc.status_code)), str(exc.detail))

    # -- login --------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        s = session_of(request)
        if s is not None and s.user is not None:
            return RedirectResponse(_local_next(next), status_code=303)
        if s is None:
            s = sessions.new(None)
        return set_cookie(page(request, "login.html", {"next": _local_next(next), "name": ""}, session=s), s)

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""), next: str = Form("/")) -> Response:
        s = session_of(request)
        if not sessions.csrf_ok(s, csrf):
            return error(request, 403, t("not_allowed"), t("forbidden_csrf"))
        keys = limiter.keys(username, request.client.host if request.client else "?")
        wait = limiter.retry_after(keys)
        if wait is not None:
            log.warning("login refused for %r from %s: too many failures (retry in %d s)", username[:64], keys[1][5:], wait)
            ctx = {"next": _local_next(next), "name": username[:64], "error": f"{t('too_many')} ({wait} {t('retry_in')})"}
            return page(request, "login.html", ctx, status_code=429, session=s, headers={"Retry-After": str(wait)})
        try:
            with login_slots:
                user = reg.authenticate(username, password)
        except NotPermitted:
            limiter.failed(keys)
            log.warning("failed login for %r from %s", username[:64], keys[1][5:])
            return page(request, "login.html", {"next": _local_next(next), "name": username[:64], "error": t("login_failed")}, status_code=401, session=s)
        limiter.succeeded(keys[0])
        sessions.drop(s)  # a new id at login: no session fixation
        fresh = sessions.new(user.name)
        log.info("login: %s (%s)", user.name, user.role)
        return set_cookie(RedirectResponse(_local_next(next), status_code=303), fresh)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        s = session_of(request)
        if not sessions.csrf_ok(s, csrf):
            return error(request, 403, t("not_allowed"), t("forbidden_csrf"))
        sessions.drop(s)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie, path="/", secure=secure_cookies, httponly=True, samesite="strict")
        return response

    # -- the queue ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    @one_page_at_a_time
    def queue(request: Request) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        state = cache.state()
        q = queue_page(state, user, request.query_params, t)
        can_assign = user.role in reg.policy().assign_roles
        ctx = {"q": q, "rows": q.page_rows(), "qs": _queue_qs(q), "zones": q.zones, "counties": q.counties,
               "can_assign": can_assign, "exports": list(EXPORTS), "assignees": [u.name for u in reg.users() if not u.disabled] if can_assign else [],
               "team_assignees": [n for n, team in state.teams.items() if not team.disabled] if can_assign else [],
               "sort_link": lambda col: _queue_qs(q, sort=col, order="asc" if q.sort == col and q.order == "desc" else "desc", page=1),
               "page_link": lambda n: _queue_qs(q, page=n), "status_link": lambda st: _queue_qs(q, status=st, page=1)}
        return page(request, "queue.html", ctx, session=s, user=user)

    # -- one alert ----------------------------------------------------------------------------
    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    @one_page_at_a_time
    def alert_page(request: Request, alert_id: str) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        a = visible_alert(user, alert_id)
        if a is None:
            return error(request, 404, t("not_found"), alert_id, session=s, user=user)
        state = cache.state()
        held = state.held
        q = queue_page(state, user, request.query_params, t)
        ids = q.ids
        at = np.flatnonzero(ids == alert_id)
        i = int(at[0]) if len(at) else None
        prev_id = ids[i - 1] if i is not None and i > 0 else None
        next_id = ids[i + 1] if i is not None and i + 1 < len(ids) else None
        history = reg.history(alert_id).to_dict("records")
        for h in history:  # a field finding's result, position and photos (its payload's ``field``)
            payload = json.loads(h["payload"]) if isinstance(h.get("payload"), str) and h.get("kind") == "review" else {}
            h["field"] = payload.get("field") if isinstance(payload, dict) else None
        geometry = a.pop("geometry")
        chips = {w: f"/alerts/{alert_id}/chip/{w}" for w in ("before", "after") if _chip_file(out, a, w) is not None}
        actions = reg.allowed_actions(alert_id, user)
        users = {u.name: u for u in reg.users()} if actions.assign else {}
        assignees = [u.name for u in users.values() if not u.disabled and u.in_scope(a.get("admin_id"), a.get("zone_id"))]
        team_assignees = [n for n, team in state.teams.items() if team.reaches(users, a.get("admin_id"), a.get("zone_id"))]
        ctx = {"a": a, "history": history, "actions": actions, "chips": chips, "prev_id": prev_id, "next_id": next_id,
               "assigned_to": held.get(alert_id), "assigned_team": held.get(alert_id) in state.teams, "assignees": assignees,
               "team_assignees": team_assignees,
               "qs": _queue_qs(q), "position": (i + 1 if i is not None else None, len(ids)), "reasons": reasons,
               "geometry": json.dumps(shapely.geometry.mapping(geometry)) if geometry is not None else "",
               "zone_geometry": zones_geojson.get(str(a.get("zone_id")), ""),
               "zone_figure": f"/zones/{quote(str(a.get('zone_id')), safe='')}/figure" if str(a.get("zone_id")) in zone_admin else None}
        return page(request, "alert.html", ctx, session=s, user=user)

    @app.get("/zones/{zone_id}/figure")
    def zone_figure(request: Request, zone_id: str) -> Response:
        """A zone's figure (PNG): the one the scan drew, else drawn now into the service's cache
        (:func:`maps.zone_figure`; scans draw only the zones that changed, outputs.zone_figures)."""
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        if zone_id not in zone_admin or not user.in_scope(zone_admin[zone_id], zone_id):
            return error(request, 404, t("not_found"), zone_id, session=s, user=user)
        with figure_lock:  # pyplot is not thread-safe; a figure takes about a second
            png = draw_zone_figure(out, zone_id, cache=figure_cache)
        if png is None:
            return error(request, 404, t("not_found"), zone_id, session=s, user=user)
        return FileResponse(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/alerts/{alert_id}/chip/{which}")
    def chip(request: Request, alert_id: str, which: str) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        a = visible_alert(user, alert_id)
        f = _chip_file(out, a, which) if a is not None else None
        if f is None:
            return error(request, 404, t("not_found"), f"{alert_id} {which}", session=s, user=user)
        return FileResponse(f, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/alerts/{alert_id}", response_class=HTMLResponse)
    def decide(request: Request, alert_id: str, csrf: str = Form(""), action: str = Form(""), step: str = Form(""), result: str = Form(""),
               to_status: str = Form(""), reason: str = Form(""), explanation: str = Form(""), note: str = Form(""),
               activity_class: str = Form(""), cause: str = Form(""), legality: str = Form(""), q: str = Form("")) -> Response:
        s = session_of(request)
        if not sessions.csrf_ok(s, csrf):  # before anything else: a forged form does nothing
            return error(request, 403, t("not_allowed"), t("forbidden_csrf"))
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        if visible_alert(user, alert_id) is None:
            return error(request, 404, t("not_found"), alert_id, session=s, user=user)
        queue_qs = urlencode(parse_qsl(q)[:20])  # the queue's filters, re-encoded: nothing else rides on the redirect
        back = f"/alerts/{quote(alert_id)}" + (f"?{queue_qs}" if queue_qs else "")
        if any(len(v) > MAX_TEXT for v in (note, explanation, cause, legality)):
            return error(request, 400, t("bad_request"), f"{t('note')}: > {MAX_TEXT}", session=s, user=user)
        kwargs: dict[str, Any] = {"note": note.strip() or None}
        if action == "step":
            kwargs.update(step=step or None, result=result or "pass")
        elif action == "status":
            kwargs["to_status"] = to_status or None
            if to_status == "dismissed":
                if not reason or not explanation.strip():
                    s.flash.append(("error", t("reasons_required")))
                    return RedirectResponse(back, status_code=303)
                if reason not in reasons:
                    s.flash.append(("error", t("unknown_reason")))
                    return RedirectResponse(back, status_code=303)
                kwargs["note"] = dismissal_note(reason, explanation, note)
        elif action == "annotate":
            kwargs.update(activity_class=activity_class or None, cause=cause.strip() or None, legality=legality.strip() or None)
        else:
            return error(request, 400, t("bad_request"), f"action {action[:40]!r}", session=s, user=user)
        try:
            reg.review(alert_id, by=user.name, **kwargs)
        except NotPermitted as exc:
            log.warning("refused: %s on %s: %s", user.name, alert_id, exc)
            if exc.reason == "scope":
                return error(request, 404, t("not_found"), alert_id, session=s, user=user)
            return error(request, 403, t("not_allowed"), str(exc), session=s, user=user)
        except RegisterError as exc:
            return error(request, 409, t("conflict"), str(exc), session=s, user=user)
        log.info("decision: %s on %s: %s", user.name, alert_id, {k: v for k, v in kwargs.items() if v is not None and k != "note"})
        s.flash.append(("ok", t("saved")))
        return RedirectResponse(back, status_code=303)

    # -- the filtered set: map and downloads ---------------------------------------------------
    @app.get("/map.geojson")
    @one_page_at_a_time
    def queue_map(request: Request) -> Response:
        """The queue's filtered alerts (every page) as GeoJSON for the queue's map: id, status,
        type, zone, first date and outline (EPSG:4326)."""
        who = logged_in(request)
        if who is None:
            return to_login(request)
        _, user = who
        q = queue_page(cache.state(), user, request.query_params, t)
        g = _with_geometry(q.frame.take(q.positions)[["alert_id", "status", "disturbance_type", "zone_id", "first_detected"]], geometries.series())
        g = g.assign(status_label=[label("status", v, lang) for v in g["status"]], type_label=[label("type", v, lang) for v in g["disturbance_type"]])
        return Response(to_geojson(g, id_column="alert_id"), media_type="application/geo+json")

    @app.get("/export/{name}")
    def export(request: Request, name: str) -> Response:
        """The queue's filtered alerts (every page) as a download: GPX / KML / GeoJSON / CSV for
        field teams, or the 台账 as CSV / XLSX (:data:`EXPORTS`), in the service's language."""
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        if name not in EXPORTS:
            return error(request, 404, t("not_found"), name[:80], session=s, user=user)
        fmt, full = EXPORTS[name]
        q = queue_page(cache.state(), user, request.query_params, t)
        alerts = _with_geometry(q.rows, geometries.series())
        stem = f"redline-{dt.date.today().isoformat()}-{name}"
        with tempfile.TemporaryDirectory(prefix="redline-export-") as tmp:
            dest = Path(tmp) / stem
            if full:
                zones, admin = ledger_context(out)
                history = reg.history()
                write_ledger(ledger_table(alerts, history[history["alert_id"].isin(set(alerts["alert_id"]))], lang=lang, zones=zones, admin=admin), dest, fmt)
            else:
                export_alerts(alerts, dest, fmt, lang=lang)
            body = dest.read_bytes()
        log.info("export: %s downloaded %s of %d alert(s)", user.name, name, len(alerts))
        return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{stem}"'})

    @app.post("/assign", response_class=HTMLResponse)
    async def assign(request: Request) -> Response:
        """Hand the selected alerts (``ids``), or every alert of the queue's current filters
        (``scope=filtered``), to user or team ``to`` (empty: take them back); back to where the form was."""
        form = await request.form()
        s = session_of(request)
        if not sessions.csrf_ok(s, str(form.get("csrf", ""))):
            return error(request, 403, t("not_allowed"), t("forbidden_csrf"))
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        queue_qs = urlencode(parse_qsl(str(form.get("q", "")))[:20])
        state = cache.state()
        if form.get("scope") == "filtered":
            ids = queue_page(state, user, dict(parse_qsl(queue_qs)), t).ids.tolist()
        else:
            ids = [str(v) for v in form.getlist("ids")][:10_000]
            visible = set(in_scope(state.frame, user)["alert_id"])
            if any(i not in visible for i in ids):  # out of scope or no such alert: the same answer
                return error(request, 404, t("not_found"), next(i for i in ids if i not in visible)[:80], session=s, user=user)
        one = form.get("from") == "alert" and len(ids) == 1
        back = (f"/alerts/{quote(ids[0])}" if one else "/") + (f"?{queue_qs}" if queue_qs else "")
        if not ids:
            s.flash.append(("error", t("nothing_selected")))
            return RedirectResponse(back, status_code=303)
        to = str(form.get("to", "")).strip() or None
        try:
            rows = reg.assign(ids, to=to, by=user.name)
        except NotPermitted as exc:
            log.warning("assignment refused: %s: %s", user.name, exc)
            return error(request, 403, t("not_allowed"), str(exc), session=s, user=user)
        except RegisterError as exc:
            s.flash.append(("error", str(exc)))
            return RedirectResponse(back, status_code=303)
        log.info("assignment: %s assigned %d alert(s) to %s", user.name, len(rows), to)
        s.flash.append(("ok", f"{len(rows)} {t('alerts_shown')} → {to or t('unassigned')}"))
        return RedirectResponse(back, status_code=303)

    app.include_router(api_router(reg, secret=secret, sessions=sessions, session_user=logged_in, alerts=cache, reasons=reasons, translate=t,
                                  page_slots=page_slots))
    app.include_router(field_router(reg, photos, alerts=cache.state, logged_in=logged_in, session_of=session_of,
                                    csrf_ok=sessions.csrf_ok, page=page, error=error, to_login=to_login, visible_alert=visible_alert, t=t))
    return app


class _Geometries:
    """Alert id → outline (EPSG:4326), read again only when the register's scans changed (only a
    scan writes geometries; decisions do not)."""

    def __init__(self, reg: Register):
        self._reg = reg
        self._key: tuple | None = None
        self._geoms: pd.Series = pd.Series(dtype=object)
        self._lock = threading.Lock()

    def series(self) -> pd.Series:
        scans = self._reg.scans()
        key = tuple(map(tuple, scans[["scan_id", "finished"]].astype(str).itertuples(index=False))) if not scans.empty else ()
        with self._lock:
            if key != self._key or self._geoms.empty:
                a = self._reg.alerts()
                self._geoms, self._key = pd.Series(a.geometry.values, index=a["alert_id"].values), key
            return self._geoms


def _with_geometry(rows: pd.DataFrame, geoms: pd.Series) -> gpd.GeoDataFrame:
    """Queue rows as a GeoDataFrame (EPSG:4326) with their outlines."""
    g = rows.drop(columns=[c for c in ("assigned_to",) if c in rows])
    return gpd.GeoDataFrame(g, geometry=gpd.GeoSeries(rows["alert_id"].map(geoms).values, index=rows.index, crs=4326), crs=4326)


def _chip_file(out: Path | None, alert: Mapping[str, Any] | None, which: str) -> Path | None:
    """The chip image an alert row names (``chip_before`` / ``chip_after``), if it is a file
    inside ``out`` with an image suffix: only files the row names, never outside OUT."""
    if out is None or alert is None or which not in ("before", "after"):
        return None
    name = alert.get(f"chip_{which}")
    if not name or not isinstance(name, str):
        return None
    try:
        f = (out / name).resolve()
    except (OSError, ValueError):
        return None
    if not f.is_relative_to(out) or f.suffix.lower() not in _CHIP_SUFFIXES or not f.is_file():
        return None
    return f


def _zone_admins(out: Path | None) -> dict[str, str]:
    """Zone id → its county code, from OUT's ``zone_stats.csv``; empty without it (no zone figures)."""
    f = out / "zone_stats.csv" if out is not None else None
    if f is None or not f.is_file():
        return {}
    stats = pd.read_csv(f, dtype={"zone_id": str, "admin_id": str}, usecols=lambda c: c in ("zone_id", "admin_id"))
    return dict(zip(stats["zone_id"], stats["admin_id"] if "admin_id" in stats else [None] * len(stats)))


def _figure_cache(out: Path) -> Path:
    """The folder the service draws zone figures into: under ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``redline/zone-figures/<key>``, the key a hash of OUT's path and of its
    ``zone_stats.csv``'s size and time (a new scan into OUT gets new figures). Not inside OUT,
    whose files the manifest checksums."""
    stats = out / "zone_stats.csv"
    st = stats.stat() if stats.is_file() else None
    key = hashlib.sha256(f"{out}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "redline" / "zone-figures" / key


def _zone_geometries(out: Path | None) -> dict[str, str]:
    """Zone id → its geometry as GeoJSON text, from OUT's ``zones.geojson`` (EPSG:4326); empty
    without it."""
    f = out / ZONES_GEOJSON if out is not None else None
    if f is None or not f.is_file():
        return {}
    try:
        features = json.loads(f.read_text(encoding="utf-8")).get("features", [])
    except (OSError, ValueError) as exc:
        log.warning("%s: not read (%s); alert pages show no zone outline", f, exc)
        return {}
    return {str(ft.get("properties", {}).get("zone_id")): json.dumps(ft.get("geometry")) for ft in features if ft.get("geometry")}
