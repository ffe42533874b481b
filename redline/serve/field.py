"""Field checks on a phone (外业核查): my assigned field checks sorted by distance, a link that
opens each site in a maps app, and the form that records a finding with photos.

Pages (README "Field checks on a phone"):

- ``GET /field``: the alerts assigned to the logged-in user or to an enabled team of theirs
  (``Register.assignments()``: alert → user or team, the latest ``assign`` entry;
  :meth:`redline.serve.review.AlertState.held_by`) that are in the user's scope and still open
  (:data:`OPEN_STATUSES`), sorted by the great-circle
  distance from ``?lat=…&lon=…`` (WGS 84 degrees; ``static/field.js`` fills them from
  ``navigator.geolocation``; without JavaScript a small form sends them), else by first-detected
  date, the longest waiting first. Each site links to ``geo:lat,lon`` (RFC 5870, WGS 84) and to
  OpenStreetMap (``?mlat=…&mlon=…``): plain links, the page itself requests nothing.
- ``GET /field/{alert_id}``: the alert's summary, its field findings, and the finding form
  (multipart, CSRF token): result, text, photos (``accept="image/jpeg,image/png"
  capture="environment"``), the browser's position and accuracy.
- ``POST /field/{alert_id}``: the photos checked by content and stored under their sha256
  (:class:`redline.register.photos.PhotoStore`), then one signed history entry through
  :meth:`redline.register.Register.review` with ``finding=`` and ``by`` = the user, under the
  rules of every decision. Answers: 411 without ``Content-Length``, 413 for a request above
  :data:`MAX_REQUEST_BYTES` or a photo above ``MAX_PHOTO_BYTES``, 403 without the CSRF token or
  a permission, 404 for an alert outside the user's scope, 415 for a file that is not a JPEG or
  PNG photo, 400 for other bad input, 409 when the alert's state no longer allows the change.
- ``GET /field/{alert_id}/photos/{sha256}``: a photo a finding of that alert names, to a user
  who may see the alert.

Limits and checks follow the OWASP File Upload Cheat Sheet (see :mod:`redline.register.photos`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from redline.errors import NotPermitted, RegisterError
from redline.register import Register
from redline.register.photos import MAX_PHOTO_BYTES, MAX_PHOTOS, FieldFinding, Photo, PhotoError, PhotoStore, PhotoTooLarge, default_photo_folder
from redline.register.users import User
from redline.serve.review import AlertState
from redline.vocabulary import FIELD_RESULTS

__all__ = ["field_router", "photo_store", "OPEN_STATUSES", "MAX_REQUEST_BYTES", "EARTH_RADIUS_KM", "distance_km", "geo_uri", "osm_url"]

#: Statuses in which an assigned alert still needs its field check: not yet settled
#: (``dismissed``, ``confirmed``, ``rectified``, ``recovered`` are); ``rectifying`` stays, since a
#: team checks on the ground that the rectification is done.
OPEN_STATUSES = ("new", "under_review", "field_check", "rectifying")
#: The largest finding a client may send: every photo at its limit, plus 1 MiB of form fields.
MAX_REQUEST_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 1024 * 1024
#: Form fields of the finding form (csrf, result, finding, lat, lon, accuracy, done) with room to spare.
_MAX_FIELDS = 20
#: Longest finding text (characters), as the notes of the alert page.
_MAX_TEXT = 4000
#: IUGG mean Earth radius R1 (Moritz 2000, Geodetic Reference System 1980), km.
EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: Any, lon2: Any) -> Any:
    """Great-circle (haversine) distance in km from one point to one or many (degrees; numpy
    arrays or pandas Series broadcast). A sphere is within 0.5 % of the ellipsoid: enough to
    order the sites of a day's round."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def geo_uri(lat: float, lon: float) -> str:
    """``geo:lat,lon`` (RFC 5870 §3: WGS 84 latitude then longitude, decimal degrees), which a
    phone opens in its maps app."""
    return f"geo:{lat:.6f},{lon:.6f}"


def osm_url(lat: float, lon: float) -> str:
    """The OpenStreetMap page with a marker at the point (a fallback for browsers without a
    ``geo:`` handler)."""
    return f"https://www.openstreetmap.org/?{urlencode({'mlat': f'{lat:.6f}', 'mlon': f'{lon:.6f}'})}#map=17/{lat:.6f}/{lon:.6f}"


def photo_store(register: Register, folder: Path | str | None) -> PhotoStore:
    """The photo store of ``register``: ``folder`` when given, else the GeoPackage's
    ``<stem>-photos`` folder; a ``postgresql://`` register needs ``folder`` (one-line
    :class:`RegisterError`)."""
    chosen = Path(folder) if folder is not None else default_photo_folder(register.location)
    if chosen is None:
        raise RegisterError(f"{register.store.describe()}: a register on PostgreSQL keeps field photos in a folder of this server; "
                            "give one with --photos DIR (and back it up with the database)")
    if chosen.exists() and not chosen.is_dir():
        raise RegisterError(f"--photos {chosen}: not a folder; give a folder for the field photos")
    return PhotoStore(chosen)


def _number(text: object) -> float | None:
    """A decimal number typed in a form (comma or point); None when blank; ValueError when not a number."""
    s = str(text or "").strip().replace(",", ".")
    if not s:
        return None
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(s)
    return value


def _position(query: Mapping[str, Any]) -> tuple[float, float] | None:
    """(lat, lon) of ``query`` when both are valid WGS 84 degrees; None when absent; ValueError when malformed."""
    lat, lon = _number(query.get("lat")), _number(query.get("lon"))
    if lat is None and lon is None:
        return None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"{lat}, {lon}")
    return lat, lon


def _where(row: Mapping[str, Any]) -> tuple[float, float] | None:
    lat, lon = row.get("centroid_lat"), row.get("centroid_lon")
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    return (lat, lon) if math.isfinite(lat) and math.isfinite(lon) else None


def _mine(alerts: AlertState, user: User) -> pd.DataFrame:
    """The field checks of ``user``: the alerts ``alerts.held`` gives them or an enabled team of
    theirs (:meth:`AlertState.held_by`), in their scope and open (:data:`OPEN_STATUSES`); a new
    frame with ``assigned_to`` (the holder) and ``assigned_team`` (True: a team)."""
    rows = alerts.held_by(user)
    rows = rows[alerts.scope(user).mask[rows]]
    mine = alerts.frame.take(rows)
    mine = mine[mine["status"].isin(OPEN_STATUSES).to_numpy()]
    holders = [alerts.held[a] for a in mine["alert_id"].tolist()]
    return mine.assign(assigned_to=pd.Series(holders, index=mine.index, dtype=object),
                       assigned_team=pd.Series([h in alerts.teams for h in holders], index=mine.index, dtype=bool))


def _findings(history: pd.DataFrame) -> list[dict[str, Any]]:
    """The field findings among an alert's history rows (payload ``field``), newest first."""
    out = []
    for h in history.to_dict("records"):
        try:
            payload = json.loads(h["payload"]) if isinstance(h.get("payload"), str) else {}
        except ValueError:
            continue
        if isinstance(payload, dict) and isinstance(payload.get("field"), dict):
            out.append({**h, "field": payload["field"]})
    return out[::-1]


def field_router(reg: Register, photos: PhotoStore, *, alerts: Callable[[], AlertState],
                 logged_in: Callable[[Request], tuple[Any, User] | None], session_of: Callable[[Request], Any],
                 csrf_ok: Callable[[Any, str | None], bool], page: Callable[..., HTMLResponse], error: Callable[..., HTMLResponse],
                 to_login: Callable[[Request], Response], visible_alert: Callable[[User, str], dict[str, Any] | None],
                 t: Callable[[str], str]) -> APIRouter:
    """The field pages (module docstring) on the app factory's helpers: ``alerts`` the register's
    alerts without geometry and who holds each (:meth:`redline.serve.review.AlertCache.state`, cached), ``logged_in`` the session and user of a request,
    ``session_of`` its session, ``csrf_ok`` the CSRF check, ``page`` / ``error`` the page
    renderers, ``to_login`` the redirect to the login, ``visible_alert`` an alert the user may
    see (None: 404), ``t`` the page text."""
    router = APIRouter()

    @router.get("/field", response_class=HTMLResponse)
    def field_list(request: Request) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        rows = _mine(alerts(), user).copy()
        problems = []
        try:
            here = _position(request.query_params)
        except ValueError:
            here = None
            problems.append(t("bad_position"))
        where = [_where(r) for r in rows.to_dict("records")]
        rows["lat"] = [w[0] if w else math.nan for w in where]
        rows["lon"] = [w[1] if w else math.nan for w in where]
        if here is not None and len(rows):
            rows["distance_km"] = distance_km(here[0], here[1], rows["lat"].to_numpy(), rows["lon"].to_numpy())
            rows = rows.sort_values(["distance_km", "alert_id"], na_position="last", kind="stable")
        else:
            rows["distance_km"] = math.nan
            rows = rows.sort_values(["first_detected", "alert_id"], kind="stable")
        items = [{**r, "geo": geo_uri(r["lat"], r["lon"]) if r["lat"] == r["lat"] else "",
                  "osm": osm_url(r["lat"], r["lon"]) if r["lat"] == r["lat"] else ""} for r in rows.to_dict("records")]
        ctx = {"items": items, "here": here, "problems": problems, "query": urlencode({"lat": f"{here[0]:.6f}", "lon": f"{here[1]:.6f}"}) if here else ""}
        return page(request, "field.html", ctx, session=s, user=user)

    @router.get("/field/{alert_id}", response_class=HTMLResponse)
    def field_form(request: Request, alert_id: str) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        a = visible_alert(user, alert_id)
        if a is None:
            return error(request, 404, t("not_found"), alert_id, session=s, user=user)
        a.pop("geometry", None)
        where = _where(a)
        actions = reg.allowed_actions(alert_id, user)
        ctx = {"a": a, "geo": geo_uri(*where) if where else "", "osm": osm_url(*where) if where else "",
               "findings": _findings(reg.history(alert_id)), "may_record": bool(actions and actions.annotate),
               "may_close": bool(actions and a.get("status") == "field_check" and "under_review" in actions.statuses),
               "field_results": FIELD_RESULTS, "max_photos": MAX_PHOTOS, "max_mb": MAX_PHOTO_BYTES // 2**20,
               "back": "/field" + (f"?{urlencode({k: request.query_params[k] for k in ('lat', 'lon') if k in request.query_params})}"
                                   if "lat" in request.query_params else "")}
        return page(request, "field_alert.html", ctx, session=s, user=user)

    @router.get("/field/{alert_id}/photos/{sha256}")
    def field_photo(request: Request, alert_id: str, sha256: str) -> Response:
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        a = visible_alert(user, alert_id)
        record = None
        if a is not None:
            record = next((p for f in _findings(reg.history(alert_id)) for p in f["field"].get("photos") or []
                           if isinstance(p, dict) and p.get("sha256") == sha256), None)
        if record is None:
            return error(request, 404, t("not_found"), f"{alert_id} {sha256[:16]}", session=s, user=user)
        try:
            path = photos.path_of(sha256, str(record.get("media_type")))
        except PhotoError:
            path = None
        if path is None or not path.is_file():
            return error(request, 404, t("not_found"), f"{alert_id} {sha256[:16]}", session=s, user=user)
        return FileResponse(path, media_type=str(record["media_type"]), headers={"Cache-Control": "private, max-age=3600"})

    @router.post("/field/{alert_id}", response_class=HTMLResponse)
    async def record_finding(request: Request, alert_id: str) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():  # a chunked body could be any size: refused before it is read
            return error(request, 411, t("bad_request"), t("length_required"))
        if int(length) > MAX_REQUEST_BYTES:
            return error(request, 413, t("too_large"), f"> {MAX_REQUEST_BYTES // 2**20} MiB ({MAX_PHOTOS} × {MAX_PHOTO_BYTES // 2**20} MiB)")
        async with request.form(max_files=MAX_PHOTOS, max_fields=_MAX_FIELDS) as form:
            s = session_of(request)
            if not csrf_ok(s, str(form.get("csrf") or "")):  # before anything else: a forged form does nothing
                return error(request, 403, t("not_allowed"), t("forbidden_csrf"))
            uploads = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and (f.filename or f.size)]
            fields = {k: str(form.get(k) or "") for k in ("result", "finding", "lat", "lon", "accuracy", "done")}
            return await run_in_threadpool(_record, request, alert_id, fields, uploads)

    def _record(request: Request, alert_id: str, fields: dict[str, str], uploads: list[UploadFile]) -> Response:
        """The finding of a posted form (after the CSRF check), in a worker thread: Pillow and the register block."""
        who = logged_in(request)
        if who is None:
            return to_login(request)
        s, user = who
        a = visible_alert(user, alert_id)
        if a is None:
            return error(request, 404, t("not_found"), alert_id, session=s, user=user)
        actions = reg.allowed_actions(alert_id, user)
        if actions is None or not actions.annotate:
            return error(request, 403, t("not_allowed"), alert_id, session=s, user=user)
        text = fields["finding"].strip()
        if len(text) > _MAX_TEXT:
            return error(request, 400, t("bad_request"), f"{t('finding_text')}: > {_MAX_TEXT}", session=s, user=user)
        if fields["result"] not in FIELD_RESULTS:
            return error(request, 400, t("bad_request"), t("result_required"), session=s, user=user)
        try:
            here = _position(fields)
            accuracy = _number(fields["accuracy"]) if here is not None else None
        except ValueError:
            return error(request, 400, t("bad_request"), t("bad_position"), session=s, user=user)
        if len(uploads) > MAX_PHOTOS:
            return error(request, 413, t("too_large"), f"{len(uploads)} > {MAX_PHOTOS} {t('photos')}", session=s, user=user)
        stored: list[Photo] = []
        for i, f in enumerate(uploads, 1):
            label = f"{t('photo')} {i}"
            data = f.file.read(MAX_PHOTO_BYTES + 1)  # never more than one byte past the limit
            try:
                stored.append(photos.put(data, label=label))
            except PhotoTooLarge as exc:
                return error(request, 413, t("too_large"), str(exc), session=s, user=user)
            except PhotoError as exc:
                return error(request, 415, t("photo_refused"), str(exc), session=s, user=user)
            except RegisterError as exc:  # the folder cannot be written
                return error(request, 500, t("conflict"), str(exc), session=s, user=user)
        done = fields["done"] == "1"
        if done and a.get("status") != "field_check":  # "field check done" ends a field check, nothing else (a stale page)
            return error(request, 409, t("conflict"), f"{alert_id}: status {a.get('status')}, not field_check", session=s, user=user)
        try:
            finding = FieldFinding(result=fields["result"], photos=tuple(stored), lat=here[0] if here else None, lon=here[1] if here else None,
                                   accuracy_m=accuracy)
            reg.review(alert_id, by=user.name, finding=finding, note=text or None, to_status="under_review" if done else None)
        except NotPermitted as exc:
            if exc.reason == "scope":
                return error(request, 404, t("not_found"), alert_id, session=s, user=user)
            return error(request, 403, t("not_allowed"), str(exc), session=s, user=user)
        except RegisterError as exc:
            return error(request, 409 if done else 400, t("conflict"), str(exc), session=s, user=user)
        s.flash.append(("ok", t("saved")))
        return RedirectResponse(f"/field/{quote(alert_id)}", status_code=303)

    return router
