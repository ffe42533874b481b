"""The review service's JSON API end to end: a real ``redline serve`` in a subprocess over the
five-alert register of tests/serve_site.py, users and bearer tokens made by the real command
line (``redline users add``, ``redline users token``), requests with httpx, and the docs page in
a real Chromium with the network cut off. One server for the module; each test decides on its
own alerts (A1: the three steps, A2: a refused role, A3: a dismissal, B1: separation of duties,
B2: an assignment and a cookie session)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import httpx
import pytest

from redline.alerts import ALERT_COLUMNS
from redline.register import Register
from redline.serve import CSRF_HEADER, MAX_FAILURES, user_token
from redline.serve.auth import ApiToken, issue_token, read_token
from tests.browser import open_server_page
from tests.serve_site import A1, A2, A3, B1, B2, PASSWORD, Site, add_users, build_out, cli, http_login, serving

#: users: name → (role, counties, zones)
USERS = {
    "wang": ("reviewer", "510182", ""),    # county reviewer of 510182
    "li": ("specialist", "", ""),          # provincial specialist
    "zhao": ("acceptor", "", ""),          # acceptance officer
    "boss": ("admin", "", ""),
    "zhou": ("reviewer", "510183", ""),    # county reviewer of 510183
    "sun": ("reviewer", "", ""),           # disabled in a test
    "wu": ("reviewer", "", ""),            # a new password in a test
}
PATHS = {"/api/me", "/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/decisions", "/api/assignments"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    out = tmp_path_factory.mktemp("serve-api") / "out"
    register = build_out(out)
    add_users(out, USERS)
    with serving(out, "--lang", "en") as url:
        yield Site(url=url, out=out, register=register)


@pytest.fixture(scope="module")
def token(site):
    """``token(name)``: a bearer token from ``redline users token NAME`` (made once per name)."""
    made: dict[str, str] = {}

    def _token(name: str) -> str:
        if name not in made:
            res = cli("users", "token", name, "--out", site.out)
            assert res.returncode == 0, res.stderr
            made[name] = res.stdout.strip()
        return made[name]

    return _token


def api(site: Site, token: str | None = None, **headers: str) -> httpx.Client:
    """A client of the API, with ``Authorization: Bearer TOKEN`` when given."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=site.url, headers=headers, timeout=30)


def decide(client: httpx.Client, alert_id: str, **body) -> httpx.Response:
    return client.post(f"/api/alerts/{alert_id}/decisions", json=body)


def one_line(res: httpx.Response) -> str:
    """The error's ``detail``, checked to be one line of JSON."""
    assert res.headers["content-type"].startswith("application/json"), res.text[:200]
    detail = res.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    return detail


# -- tokens -----------------------------------------------------------------------------------
def test_a_token_from_the_command_line_authenticates_its_user(site):
    before = dt.datetime.now(dt.timezone.utc)
    res = cli("users", "token", "wang", "--days", "7", "--out", site.out)
    assert res.returncode == 0, res.stderr
    token = res.stdout.strip()
    assert token.startswith("rl1.") and "\n" not in token and "valid until" in res.stderr  # stdout: the token alone
    me = api(site, token).get("/api/me")
    assert me.status_code == 200
    body = me.json()
    assert (body["name"], body["role"], body["counties"], body["zones"], body["auth"], body["csrf"]) == ("wang", "reviewer", ["510182"], [], "bearer", None)
    expires = dt.datetime.fromisoformat(body["token_expires"])
    assert dt.timedelta(days=7) - dt.timedelta(minutes=1) < expires - before < dt.timedelta(days=7, minutes=1)


def test_a_token_says_only_what_was_signed():
    """Each part of a token is under its MAC: another name, a later expiry, another seq, another
    register or another installation's secret, and it reads as nothing."""
    secret, register = b"s" * 32, "f" * 64
    token = issue_token(secret, register, "王工", 7, 1_900_000_000)
    assert read_token(secret, register, token) == ApiToken(name="王工", expires=1_900_000_000, seq=7)
    prefix, name, expires, seq, mac = token.split(".")
    other = issue_token(secret, register, "li", 7, 1_900_000_000).split(".")[1]
    for forged in (f"{prefix}.{other}.{expires}.{seq}.{mac}", f"{prefix}.{name}.1999999999.{seq}.{mac}", f"{prefix}.{name}.{expires}.8.{mac}",
                   f"{prefix}.{name}.{expires}.{seq}.{mac[:-1]}", token + ".x", "", "Bearer " + token):
        assert read_token(secret, register, forged) is None, forged
    assert read_token(secret, "0" * 64, token) is None and read_token(b"t" * 32, register, token) is None


def test_no_credentials_is_401_with_a_bearer_challenge(site):
    res = httpx.get(f"{site.url}/api/alerts")
    assert res.status_code == 401 and res.headers["www-authenticate"] == 'Bearer realm="redline"'
    assert "Authorization: Bearer" in one_line(res)
    forged = api(site, "rl1.d2FuZw.4102444800.4.AAAA", **{"X-Forwarded-For": "192.0.2.30"}).get("/api/me")
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]
    assert one_line(forged) == "invalid token"


def test_an_expired_token_is_401(site):
    token, expires = user_token(Register(site.register), "wang", expires=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    res = api(site, token).get("/api/me")
    assert res.status_code == 401 and 'error="invalid_token"' in res.headers["www-authenticate"]
    assert one_line(res).startswith(f"the token expired at {expires.replace(microsecond=0).isoformat()}")
    fresh, _ = user_token(Register(site.register), "wang", days=1)  # the same function with a future expiry works
    assert api(site, fresh).get("/api/me").json()["name"] == "wang"


def test_disabling_a_user_revokes_their_tokens_for_good(site, token):
    client = api(site, token("sun"))
    assert client.get("/api/me").json()["name"] == "sun"
    assert cli("users", "disable", "sun", "--out", site.out).returncode == 0
    res = client.get("/api/me")
    assert res.status_code == 401 and "revoked" in one_line(res)
    assert cli("users", "enable", "sun", "--out", site.out).returncode == 0
    assert client.get("/api/me").status_code == 401  # enabled again, the old token stays dead (the account changed)
    res = cli("users", "disable", "sun", "--out", site.out)
    assert res.returncode == 0
    res = cli("users", "token", "sun", "--out", site.out)
    assert res.returncode == 2 and "disabled" in res.stderr and res.stderr.strip().count("\n") == 0 and res.stdout == ""


def test_a_new_password_revokes_the_users_tokens(site, token):
    client = api(site, token("wu"))
    assert client.get("/api/alerts").status_code == 200
    res = cli("users", "set", "wu", "--password", "--password-stdin", "--out", site.out, stdin="another long passphrase\n")
    assert res.returncode == 0, res.stderr
    res = client.get("/api/alerts")
    assert res.status_code == 401 and "revoked" in one_line(res)
    assert cli("users", "token", "nobody", "--out", site.out).returncode == 2


def test_forged_tokens_are_rate_limited_per_address(site, token):
    """The addresses come through X-Forwarded-For, trusted from 127.0.0.1 (tests/test_serve.py
    explains); other addresses are not affected."""
    bad = api(site, "rl1.x.1.2.forged", **{"X-Forwarded-For": "192.0.2.20"})
    assert [bad.get("/api/me").status_code for _ in range(MAX_FAILURES)] == [401] * MAX_FAILURES
    res = bad.get("/api/me")
    assert res.status_code == 429 and 0 < int(res.headers["retry-after"]) <= 15 * 60 and "too many invalid tokens" in one_line(res)
    assert api(site, token("boss"), **{"X-Forwarded-For": "192.0.2.20"}).get("/api/me").status_code == 429  # even a good one from there
    assert api(site, token("boss"), **{"X-Forwarded-For": "192.0.2.21"}).get("/api/me").status_code == 200


# -- scope and the queue ------------------------------------------------------------------------
def test_a_county_user_neither_sees_nor_reaches_another_countys_alert(site, token):
    wang = api(site, token("wang"))
    page = wang.get("/api/alerts").json()
    assert sorted(a["alert_id"] for a in page["items"]) == [A1, A2, A3] and page["total"] == 3
    assert all(a["admin_id"] == "510182" for a in page["items"]) and "geometry" not in page["items"][0]
    assert wang.get("/api/alerts", params={"county": "510183"}).json()["items"] == []
    other, unknown = wang.get(f"/api/alerts/{B1}"), wang.get("/api/alerts/Z9-20230101-9")
    assert (other.status_code, unknown.status_code) == (404, 404)
    assert one_line(other) == f"no alert '{B1}'" and one_line(unknown) == "no alert 'Z9-20230101-9'"  # existence is not revealed
    res = decide(wang, B1, cause="not mine")
    assert res.status_code == 404 and one_line(res) == f"no alert '{B1}'"
    assert Register(site.register).history(B1)["by"].tolist().count("wang") == 0
    assert api(site, token("zhou")).get(f"/api/alerts/{B1}").json()["admin_id"] == "510183"


@pytest.mark.parametrize("query, expected", [
    ({"zone": "Z1", "sort": "first_detected", "order": "asc"}, [A1, A2]),
    ({"type": "construction"}, [A2]),
    ({"since": "2023-07-01"}, [B2, B1, A3]),
    ({"county": "510183", "sort": "alert_id", "order": "asc"}, [B1, B2]),
    ({"confidence": "high"}, [A2]),
])
def test_the_queue_filters_and_sorts_as_the_queue_page(site, token, query, expected):
    page = api(site, token("boss")).get("/api/alerts", params=query).json()
    assert [a["alert_id"] for a in page["items"]] == expected
    assert (page["total"], page["page"], page["pages"], page["page_size"]) == (len(expected), 1, 1, 50)
    assert sum(page["counts"].values()) == len(expected)  # no status filter: the counts are these alerts'
    browser_like, _ = http_login(site, "boss")
    html = browser_like.get("/", params=query).text
    assert [i for i in (A1, A2, A3, B1, B2) if f'data-alert="{i}"' in html] == sorted(expected)
    positions = [html.index(f'data-alert="{i}"') for i in expected]
    assert positions == sorted(positions)  # the page lists them in the API's order


def test_assigned_alerts_show_their_holder_and_the_mine_filter(site, token):
    """An assignment made by the real command line: ``assigned_to``, ``mine=true`` and the
    assign entry in the alert's history (B2 is zhou's county)."""
    res = cli("alerts", "assign", B2, "--to", "zhou", "--by", "li", "--password-stdin", "--out", site.out, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    zhou = api(site, token("zhou"))
    assert [a["alert_id"] for a in zhou.get("/api/alerts", params={"mine": "true"}).json()["items"]] == [B2]
    assert [a["alert_id"] for a in api(site, token("boss")).get("/api/alerts", params={"mine": "true"}).json()["items"]] == []
    detail = zhou.get(f"/api/alerts/{B2}").json()
    assert detail["assigned_to"] == "zhou" and detail["history"][-1]["kind"] == "assign" and detail["history"][-1]["by"] == "li"


def test_a_bad_filter_is_422_in_one_line(site, token):
    boss = api(site, token("boss"))
    res = boss.get("/api/alerts", params={"since": "2023-13-01"})
    assert res.status_code == 422 and one_line(res).startswith("query.since:")
    res = boss.get("/api/alerts", params={"status": "gone"})
    assert res.status_code == 422 and one_line(res).startswith("query.status: Input should be 'new'")


# -- decisions ----------------------------------------------------------------------------------
def test_three_users_record_the_three_steps_and_the_acceptor_confirms(site, token):
    wang, li, zhao = (api(site, token(n)) for n in ("wang", "li", "zhao"))
    assert decide(wang, A1, to_status="under_review").status_code == 201
    row = decide(wang, A1, step="self_check", note="影像判读：疑似林地砍伐")
    assert row.status_code == 201
    entry = row.json()
    assert (entry["by"], entry["step"], entry["result"], entry["from_status"], entry["to_status"]) == ("wang", "self_check", "pass", "under_review", "under_review")
    assert len(entry["signature"]) == 128 and entry["row_hash"] == Register(site.register).head()["row_hash"]
    assert decide(li, A1, step="specialist_check", result="pass").status_code == 201
    detail = zhao.get(f"/api/alerts/{A1}").json()
    assert detail["actions"]["step"] == "acceptance" and "confirmed" not in detail["actions"]["statuses"]
    assert "acceptance" in detail["actions"]["why_not"]["confirmed"]
    assert decide(zhao, A1, step="acceptance").status_code == 201
    assert "confirmed" in zhao.get(f"/api/alerts/{A1}").json()["actions"]["statuses"]
    assert decide(zhao, A1, to_status="confirmed").status_code == 201
    detail = zhao.get(f"/api/alerts/{A1}").json()
    assert detail["status"] == "confirmed"
    assert [h["by"] for h in detail["history"]] == ["wang", "wang", "li", "zhao", "zhao"]
    assert [h["step"] for h in detail["history"]] == [None, "self_check", "specialist_check", "acceptance", None]
    assert detail["history"][1]["note"] == "影像判读：疑似林地砍伐"
    reg = Register(site.register)
    assert reg.alert(A1)["status"] == "confirmed" and reg.verify().problems == []
    assert [h["row_hash"] for h in detail["history"]] == reg.history(A1)["row_hash"].tolist()


def test_an_alert_in_geojson_with_every_register_field(site, token):
    detail = api(site, token("boss")).get(f"/api/alerts/{A2}").json()
    assert set(ALERT_COLUMNS) <= set(detail)
    assert (detail["zone_id"], detail["admin_id"], detail["disturbance_type"], detail["confidence"]) == ("Z1", "510182", "construction", "high")
    assert detail["geometry"]["type"] == "MultiPolygon"
    ring = detail["geometry"]["coordinates"][0][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    assert (min(lons), max(lons), min(lats), max(lats)) == pytest.approx((103.92, 103.921, 30.7, 30.701))  # EPSG:4326 degrees


def test_the_wrong_role_is_403_with_the_reason(site, token):
    res = decide(api(site, token("li")), A2, step="self_check")
    assert res.status_code == 403 and res.json()["reason"] == "role"
    assert one_line(res) == f"alert {A2}: step 'self_check' is recorded by a reviewer (or an admin), and li is a specialist"
    assert Register(site.register).history(A2).empty


def test_one_user_records_at_most_one_step_of_an_alert(site, token):
    boss = api(site, token("boss"))
    assert decide(boss, B1, to_status="under_review", step="self_check").status_code == 201
    res = decide(boss, B1, step="specialist_check")
    assert res.status_code == 403 and res.json()["reason"] == "separation" and "separation of duties" in one_line(res)
    res = decide(boss, B1, to_status="rectified")
    assert res.status_code == 409 and one_line(res) == f"alert {B1}: cannot go from 'under_review' to 'rectified'; allowed: field_check, confirmed, dismissed"


def test_dismissing_needs_a_reason_from_the_list_and_an_explanation(site, token):
    boss = api(site, token("boss"))
    detail = boss.get(f"/api/alerts/{A3}").json()
    reasons = detail["actions"]["dismiss_reasons"]
    assert reasons[0] == "cloud or cloud shadow"  # --lang en: the built-in English list
    for body, status, start in (
        ({"to_status": "dismissed"}, 422, "body: dismissing needs a reason from the list and an explanation"),
        ({"to_status": "dismissed", "reason": reasons[0]}, 422, "body: dismissing needs a reason"),
        ({"to_status": "dismissed", "reason": "because", "explanation": "x"}, 422, "reason 'because' is not one of the dismissal reasons: cloud or cloud shadow, "),
        ({"to_status": "under_review", "reason": reasons[0]}, 422, "body: reason and explanation go with to_status 'dismissed'"),
        ({"to_status": "dismissed", "colour": "red"}, 422, "body.colour: Extra inputs are not permitted"),
        ({"step": "self_check", "result": "maybe"}, 422, "body.result: Input should be 'pass' or 'fail'"),
        ({}, 422, "body: nothing to record"),
    ):
        res = decide(boss, A3, **body)
        assert res.status_code == status and one_line(res).startswith(start), (body, res.text)
    res = boss.post(f"/api/alerts/{A3}/decisions", content=b'{"to_status": ', headers={"Content-Type": "application/json"})
    assert res.status_code == 400 and one_line(res).startswith("the body is not JSON")
    assert Register(site.register).history(A3).empty
    res = decide(boss, A3, to_status="dismissed", reason=reasons[0], explanation="  云影，次景清晰  ", note="复核")
    assert res.status_code == 201 and res.json()["note"] == f"{reasons[0]}: 云影，次景清晰 (复核)"  # as the page's form writes it
    assert Register(site.register).alert(A3)["status"] == "dismissed"


def test_a_cookie_session_posts_only_with_its_csrf_header(site):
    browser_like, _ = http_login(site, "zhou")
    me = browser_like.get("/api/me").json()
    assert (me["name"], me["auth"]) == ("zhou", "session") and len(me["csrf"]) == 64
    for headers in ({}, {CSRF_HEADER: "0" * 64}):
        res = browser_like.post(f"/api/alerts/{B2}/decisions", json={"cause": "forged"}, headers=headers)
        assert res.status_code == 403 and CSRF_HEADER in one_line(res)
    assert "forged" not in Register(site.register).history(B2)["cause"].tolist()
    res = browser_like.post(f"/api/alerts/{B2}/decisions", json={"cause": "采石"}, headers={CSRF_HEADER: me["csrf"]})
    assert res.status_code == 201 and res.json()["by"] == "zhou" and Register(site.register).alert(B2)["cause"] == "采石"


# -- the schema and its page ----------------------------------------------------------------------
def test_the_openapi_schema_lists_the_api(site):
    res = httpx.get(f"{site.url}/api/openapi.json")
    assert res.status_code == 200
    schema = res.json()
    assert set(schema["paths"]) == PATHS
    assert set(schema["paths"]["/api/alerts/{alert_id}/decisions"]) == {"post"}
    post = schema["paths"]["/api/alerts/{alert_id}/decisions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Decision"
    assert {"201", "400", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert post["responses"]["409"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ApiError"
    components = schema["components"]
    assert set(components["schemas"]["Alert"]["properties"]) == {*ALERT_COLUMNS, "assigned_to", "assigned_team"}
    assert components["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "rl1 token",
                                                       "description": "`redline users token NAME`: a token for scripts (RFC 6750)"}
    assert components["schemas"]["Decision"]["properties"]["to_status"]["anyOf"][0]["enum"][:2] == ["new", "under_review"]


def test_other_api_paths_and_methods_answer_json(site, token):
    boss = api(site, token("boss"))
    res = boss.get("/api/nothing")
    assert res.status_code == 404 and one_line(res) == "no API path /api/nothing (see /api/docs)"
    res = boss.delete(f"/api/alerts/{A1}")
    assert res.status_code == 405 and res.headers["allow"] == "GET" and one_line(res).startswith("DELETE is not allowed")


@pytest.mark.browser
def test_the_docs_page_renders_the_schema_offline(site):
    v = open_server_page(f"{site.url}/api/docs")
    try:
        assert v.wait_for("return document.querySelectorAll('.opblock').length === 5", 20)
        paths = v.driver.execute_script("return Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.dataset.path)")
        assert set(paths) == PATHS
        v.screenshot("serve_api_docs")
        assert v.external_requests() == [] and v.console_errors == []  # no CDN, and nothing the CSP refused
    finally:
        v.driver.quit()
    res = httpx.get(f"{site.url}/api/docs")
    assert "<script>" not in res.text and "script-src" not in res.headers["content-security-policy"]  # default-src 'self' only


def test_verify_names_a_users_seq_set_back(site, tmp_path):
    """Tokens name the seq of the user's latest entry: setting it back (to revive a revoked
    token) is an edit ``redline verify`` names."""
    copy = Register(tmp_path / "copy.gpkg")
    Register(site.register).copy_to(copy)
    assert copy.verify().problems == []
    with sqlite3.connect(copy.path) as con:
        con.execute("UPDATE users SET seq = seq - 1 WHERE name = 'wu'")
    assert any(p.startswith("users: user wu: seq ") and "not that of its latest signed entry" in p for p in copy.verify().problems)


# -- assignment (last: it adds entries to A3's history) ------------------------------------------
def test_a_specialist_assigns_through_the_api_under_the_same_rules(site, token):
    li = api(site, token("li"))
    res = li.post("/api/assignments", json={"alert_ids": [A3], "to": "wang"})
    assert res.status_code == 201 and [(r["kind"], r["by"], r["alert_id"]) for r in res.json()] == [("assign", "li", A3)]
    assert api(site, token("wang")).get(f"/api/alerts/{A3}").json()["assigned_to"] == "wang"
    res = li.post("/api/assignments", json={"alert_ids": [B1], "to": "wang"})  # B1 lies outside wang's county
    assert res.status_code == 422 and "outside the scope of wang" in one_line(res)
    res = api(site, token("wang")).post("/api/assignments", json={"alert_ids": [A3], "to": "wang"})
    assert res.status_code == 403 and "assigned by a specialist or an admin" in one_line(res)
    res = api(site, token("zhou")).post("/api/assignments", json={"alert_ids": [A3], "to": None})
    assert res.status_code == 404  # not zhou's county: the same answer as no such alert
    res = li.post("/api/assignments", json={"alert_ids": [A3], "to": None})
    assert res.status_code == 201 and Register(site.register).assignments().get(A3) is None


def test_a_team_takes_alerts_through_the_api_and_its_members_see_them_as_mine(site, token):
    """A team of wang (510182) and zhou (510183): B1 assigned to it is zhou's (with B2, his own)
    under ``mine``, not wang's (outside his county) nor boss's (no member); a disabled team is 422."""
    assert cli("users", "team-add", "county-team", "--members", "wang,zhou", "--out", site.out).returncode == 0
    res = api(site, token("li")).post("/api/assignments", json={"alert_ids": [B1], "to": "county-team"})
    assert res.status_code == 201 and res.json()[0]["payload"] == '{"team": true, "to": "county-team"}'
    zhou = api(site, token("zhou"))
    assert [(a["alert_id"], a["assigned_to"], a["assigned_team"]) for a in zhou.get("/api/alerts", params={"mine": "true", "sort": "alert_id",
                                                                                                             "order": "asc"}).json()["items"]] == \
        [(B1, "county-team", True), (B2, "zhou", False)]
    assert zhou.get(f"/api/alerts/{B1}").json()["assigned_team"] is True
    for name in ("wang", "boss"):
        assert B1 not in [a["alert_id"] for a in api(site, token(name)).get("/api/alerts", params={"mine": "true"}).json()["items"]]
    assert cli("users", "team-set", "county-team", "--disable", "--out", site.out).returncode == 0
    res = api(site, token("li")).post("/api/assignments", json={"alert_ids": [B2], "to": "county-team"})
    assert res.status_code == 422 and one_line(res) == f"alert {B2}: team county-team is disabled; assign to an enabled team or user"
    assert zhou.get("/api/alerts", params={"mine": "true"}).json()["total"] == 1  # B2: a disabled team's alerts are nobody's
