"""The review service end to end: a real ``redline serve`` (uvicorn) in a subprocess on a free
127.0.0.1 port, over a register built by the real API (a ``commit_scan`` of alerts in two
counties) with users made by the real command line (tests/serve_site.py), driven by Debian's
chromium (selenium) and by raw HTTP requests (httpx). One server for the module."""

from __future__ import annotations

import time

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from redline.alerts import ALERT_COLUMNS
from redline.register import Register
from redline.serve import SECURITY_HEADERS, SessionStore
from tests.browser import PageVisit, open_server_page
from tests.serve_site import A1, A2, A3, B1, B2, EVIL, PASSWORD, Site, add_users, build_out, cli, csrf_of, http_login, serving

pytestmark = [pytest.mark.browser]

#: users: name → (role, counties, zones)
USERS = {
    "wang": ("reviewer", "510182", ""),    # county reviewer of 510182
    "li": ("specialist", "", ""),          # provincial specialist
    "zhao": ("acceptor", "", ""),          # acceptance officer
    "boss": ("admin", "", ""),
    "zhou": ("reviewer", "510183", ""),    # county reviewer of 510183
    "qian": ("reviewer", "", ""),          # only for the rate-limit test
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    out = tmp_path_factory.mktemp("serve") / "out"
    register = build_out(out)
    add_users(out, USERS)
    with serving(out, "--lang", "zh") as url:
        yield Site(url=url, out=out, register=register)


# -- helpers --------------------------------------------------------------------------------
@pytest.fixture
def browser(site):
    """``browser(name)``: chromium logged in as ``name`` on the queue page; quit after the test."""
    opened: list[PageVisit] = []

    def _open(name: str) -> PageVisit:
        v = open_server_page(f"{site.url}/login")
        opened.append(v)
        v.driver.find_element(By.ID, "username").send_keys(name)
        v.driver.find_element(By.ID, "password").send_keys(PASSWORD)
        v.driver.find_element(By.ID, "login").click()
        v.wait_for("return document.getElementById('who') !== null")
        return v

    yield _open
    for v in opened:
        v.driver.quit()


def _go(v: PageVisit, url: str) -> None:
    v.driver.get(url)
    v.wait_for("return document.readyState === 'complete'")


def _submit(v: PageVisit, button_id: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    old = v.driver.find_element(By.TAG_NAME, "html")
    v.driver.find_element(By.ID, button_id).click()
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            old.tag_name  # noqa: B018 - raises once the page was replaced
        except Exception:  # selenium's StaleElementReferenceException: the new page is there
            break
        time.sleep(0.05)
    v.wait_for("return document.readyState === 'complete'")


def _texts(v: PageVisit, css: str) -> list[str]:
    return [e.text for e in v.driver.find_elements(By.CSS_SELECTOR, css)]


# -- pages in a real browser ----------------------------------------------------------------
def test_login_filter_the_queue_and_open_an_alert(site, browser):
    v = browser("wang")
    rows = v.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert sorted(r.get_attribute("data-alert") for r in rows) == [A1, A2, A3]  # county 510182 only
    assert v.driver.find_element(By.CSS_SELECTOR, "[data-status=new] .count").text == "3"
    Select(v.driver.find_element(By.ID, "f-zone")).select_by_value("Z1")
    Select(v.driver.find_element(By.ID, "f-type")).select_by_value("construction")
    _submit(v, "apply")
    assert [r.get_attribute("data-alert") for r in v.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")] == [A2]
    _go(v, f"{site.url}/?zone=Z1&sort=first_detected&order=asc")
    assert [r.get_attribute("data-alert") for r in v.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")] == [A1, A2]
    v.driver.find_element(By.LINK_TEXT, A1).click()
    v.wait_for("return window.redlineAlertMap !== undefined")
    assert v.driver.find_element(By.ID, "alert-id").text.startswith(A1)
    fields = {e.get_attribute("data-field") for e in v.driver.find_elements(By.CSS_SELECTOR, "#fields tr")}
    assert fields == set(ALERT_COLUMNS)
    for w in ("before", "after"):
        assert v.wait_for(f"var i = document.getElementById('chip-{w}'); return i && i.complete && i.naturalWidth === 64")
    assert v.driver.find_elements(By.CSS_SELECTOR, "#alert-map path.leaflet-interactive")  # the alert (and its zone) drawn
    nxt = v.driver.find_element(By.ID, "next")
    assert nxt.get_attribute("accesskey") == "n" and f"/alerts/{A2}?" in nxt.get_attribute("href") and "zone=Z1" in nxt.get_attribute("href")
    assert v.driver.find_element(By.ID, "back").get_attribute("accesskey") == "b"
    assert v.driver.find_element(By.ID, "form-step").is_displayed()  # wang may record 自检 …
    assert "专检" not in v.driver.find_element(By.ID, "form-step").text  # … and nothing of another role
    v.screenshot("serve_alert_page")
    nxt.click()
    v.wait_for("return document.getElementById('prev') !== null")
    assert v.driver.find_element(By.ID, "alert-id").text.startswith(A2)
    assert v.external_requests() == [] and v.console_errors == []


def test_three_users_record_the_three_steps_and_the_acceptor_confirms(site, browser):
    v = browser("wang")
    _go(v, f"{site.url}/alerts/{A1}")
    v.driver.find_element(By.ID, "to-under_review").click()
    _submit(v, "submit-status")
    v.driver.find_element(By.ID, "step-note").send_keys("影像判读：疑似林地砍伐")
    _submit(v, "submit-step")
    assert "已记录" in v.driver.find_element(By.CSS_SELECTOR, ".flash").text
    assert not v.driver.find_elements(By.ID, "form-step")  # 专检 is not wang's
    v = browser("li")
    _go(v, f"{site.url}/alerts/{A1}")
    assert "专检" in v.driver.find_element(By.ID, "form-step").text
    _submit(v, "submit-step")
    v = browser("zhao")
    _go(v, f"{site.url}/alerts/{A1}")
    assert not v.driver.find_elements(By.ID, "to-confirmed")  # not before 验收
    assert "验收" in v.driver.find_element(By.ID, "form-step").text
    _submit(v, "submit-step")
    v.driver.find_element(By.ID, "to-confirmed").click()
    _submit(v, "submit-status")
    assert "已确认" in v.driver.find_element(By.ID, "alert-id").text
    assert _texts(v, "#history td.by") == ["wang", "wang", "li", "zhao", "zhao"]
    assert _texts(v, "#history td.step")[1:4] == ["自检 · 通过", "专检 · 通过", "验收 · 通过"]
    assert v.console_errors == []
    reg = Register(site.register)
    assert reg.alert(A1)["status"] == "confirmed" and reg.verify().problems == []


def test_a_script_in_a_note_or_a_zone_name_shows_as_text(site, browser):
    v = browser("boss")
    assert EVIL in v.driver.find_element(By.CSS_SELECTOR, f"tr[data-alert='{A3}']").text
    _go(v, f"{site.url}/alerts/{A3}")
    v.driver.find_element(By.ID, "annotate-note").send_keys(EVIL)
    v.driver.find_element(By.ID, "cause").send_keys(EVIL)
    Select(v.driver.find_element(By.ID, "activity_class")).select_by_value("quarry")
    _submit(v, "submit-annotate")
    assert _texts(v, "#history td.note")[-1] == EVIL
    assert EVIL in v.driver.find_element(By.CSS_SELECTOR, "tr[data-field=zone_name] td").text
    assert EVIL in v.driver.find_element(By.CSS_SELECTOR, "tr[data-field=cause] td").text
    assert v.driver.execute_script("return window.pwned === undefined")
    assert v.console_errors == []


# -- raw requests ---------------------------------------------------------------------------
def test_pages_need_a_login_and_carry_the_security_headers(site):
    res = httpx.get(f"{site.url}/alerts/{A1}")
    assert res.status_code == 303 and res.headers["location"].startswith("/login?next=")
    login = httpx.get(f"{site.url}/login")
    for k, v in SECURITY_HEADERS.items():
        assert login.headers[k] == v
    assert login.headers["cache-control"] == "no-store"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    c = httpx.Client(base_url=site.url)
    form = c.get("/login")
    anonymous = c.cookies["redline_session"]
    res = c.post("/login", data={"username": "wang", "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/"})
    assert res.status_code == 303 and res.headers["location"] == "/"
    assert c.cookies["redline_session"] != anonymous  # a new session id at login (no fixation)
    assert c.get("/").status_code == 200
    c2 = httpx.Client(base_url=site.url)
    form = c2.get("/login?next=//evil.example/x")
    res = c2.post("/login", data={"username": "wang", "password": PASSWORD, "csrf": csrf_of(form.text), "next": "//evil.example/x"})
    assert res.headers["location"] == "/"  # never an open redirect


def test_the_wrong_role_is_refused_with_403_and_the_reason(site):
    c, _ = http_login(site, "li")
    page = c.get(f"/alerts/{A2}")
    assert page.status_code == 200 and 'id="form-step"' not in page.text  # the next step (自检) is not a specialist's
    res = c.post(f"/alerts/{A2}", data={"csrf": csrf_of(page.text), "action": "step", "step": "self_check", "result": "pass"})
    assert res.status_code == 403 and "recorded by a reviewer" in res.text and "li is a specialist" in res.text
    assert Register(site.register).history(A2).empty


def test_one_user_cannot_record_two_steps_of_an_alert(site):
    c, _ = http_login(site, "boss")
    token = csrf_of(c.get(f"/alerts/{B1}").text)
    assert c.post(f"/alerts/{B1}", data={"csrf": token, "action": "status", "to_status": "under_review"}).status_code == 303
    assert c.post(f"/alerts/{B1}", data={"csrf": token, "action": "step", "step": "self_check"}).status_code == 303
    res = c.post(f"/alerts/{B1}", data={"csrf": token, "action": "step", "step": "specialist_check"})
    assert res.status_code == 403 and "separation of duties" in res.text
    assert Register(site.register).history(B1)["step"].dropna().tolist() == ["self_check"]


def test_a_county_user_cannot_reach_another_countys_alert(site):
    c, _ = http_login(site, "wang")
    token = csrf_of(c.get("/").text)
    assert c.get(f"/alerts/{B1}").status_code == 404
    assert c.get(f"/alerts/{B1}/chip/before").status_code == 404
    assert c.post(f"/alerts/{B1}", data={"csrf": token, "action": "annotate", "cause": "x"}).status_code == 404
    assert B1 not in c.get("/").text
    z, _ = http_login(site, "zhou")
    assert z.get(f"/alerts/{B1}").status_code == 200


def test_chips_are_only_the_files_the_alert_names_inside_out(site):
    c, _ = http_login(site, "boss")
    assert c.get(f"/alerts/{A1}/chip/before").content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get(f"/alerts/{B2}/chip/before").status_code == 404  # its row names ../secret.png
    assert c.get(f"/alerts/{A1}/chip/..%2F..%2Fregister.gpkg").status_code == 404
    assert c.get("/static/../register.gpkg").status_code == 404


def test_a_post_without_or_with_a_wrong_csrf_token_is_403(site):
    c, _ = http_login(site, "zhou")
    other, _ = http_login(site, "boss")
    foreign = csrf_of(other.get("/").text)
    for data in ({}, {"csrf": "0" * 64}, {"csrf": foreign}):
        res = c.post(f"/alerts/{B2}", data={**data, "action": "annotate", "cause": "forged"})
        assert res.status_code == 403, data
    assert Register(site.register).history(B2).empty
    assert httpx.post(f"{site.url}/login", data={"username": "zhou", "password": PASSWORD}).status_code == 403
    assert c.post("/logout").status_code == 403 and c.get("/").status_code == 200  # still logged in


def test_six_wrong_passwords_answer_429_with_retry_after(site):
    """Per name (qian, from one address) and per address (many names): the 6th try is refused
    with 429, even with the right password. The addresses come through X-Forwarded-For, which
    the server trusts from 127.0.0.1 (a reverse proxy on the same host), so this test does not
    lock out the other tests' logins from 127.0.0.1; nothing is sent to those addresses."""
    c = httpx.Client(base_url=site.url, headers={"X-Forwarded-For": "192.0.2.10"})
    token = csrf_of(c.get("/login").text)
    codes = [c.post("/login", data={"username": "qian", "password": f"wrong {i}", "csrf": token}).status_code for i in range(5)]
    assert codes == [401] * 5
    res = c.post("/login", data={"username": "qian", "password": "wrong 6", "csrf": token})
    assert res.status_code == 429 and 0 < int(res.headers["retry-after"]) <= 15 * 60
    assert c.post("/login", data={"username": "qian", "password": PASSWORD, "csrf": token}).status_code == 429
    d = httpx.Client(base_url=site.url, headers={"X-Forwarded-For": "192.0.2.11"})
    token = csrf_of(d.get("/login").text)
    assert [d.post("/login", data={"username": f"nobody{i}", "password": "x" * 10, "csrf": token}).status_code for i in range(6)] == [401] * 5 + [429]
    ok, res = http_login(site, "zhou")  # 127.0.0.1 and other names are not affected
    assert res.status_code == 303


def test_sessions_end_after_the_idle_timeout():
    now = [0.0]
    store = SessionStore(b"k" * 32, idle_timeout_s=30 * 60, clock=lambda: now[0])
    s = store.new("wang")
    cookie = store.cookie_value(s)
    now[0] = 29 * 60
    assert store.get(cookie) is s  # activity moves the deadline
    now[0] = 29 * 60 + 30 * 60 + 1
    assert store.get(cookie) is None
    assert store.get(cookie.replace(".", "x.")) is None and store.get(s.sid + ".0") is None  # a forged cookie


# -- the command line with users --------------------------------------------------------------
def test_cli_review_on_a_register_with_users_needs_the_right_password(site):
    args = ["alerts", "review", A3, "--by", "wang", "--status", "under_review", "--out", site.out]
    res = cli(*args, "--password-stdin", stdin="not the password\n")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "wrong user name or password" in res.stderr
    res = cli(*args, stdin="", env={"REDLINE_PASSWORD": ""})
    assert res.returncode == 2 and "--password-stdin" in res.stderr
    res = cli("alerts", "review", A3, "--by", "li", "--step", "self_check", "--out", site.out, env={"REDLINE_PASSWORD": PASSWORD})
    assert res.returncode == 2 and "recorded by a reviewer" in res.stderr
    res = cli(*args, env={"REDLINE_PASSWORD": PASSWORD})
    assert res.returncode == 0, res.stderr
    assert Register(site.register).history(A3)["by"].tolist()[-1] == "wang"


def test_the_register_verifies_and_names_a_tampered_users_row(site, tmp_path):
    import sqlite3

    reg = Register(site.register)
    assert reg.verify().problems == []
    copy = Register(tmp_path / "copy.gpkg")
    reg.copy_to(copy)
    with sqlite3.connect(copy.path) as con:
        con.execute("UPDATE users SET role = 'admin', counties = '' WHERE name = 'wang'")
    problems = copy.verify().problems
    assert any(p.startswith("users: user wang: role, counties differ(s) from its signed entry") for p in problems), problems
    res = cli("users", "list", "--register", copy.path)
    assert res.returncode == 0 and "argon2" not in res.stdout


# -- assignment (after the tests that read whole histories) --------------------------------------
def test_a_specialist_assigns_in_the_browser_and_the_reviewer_filters_assigned_to_me(site, browser):
    v = browser("li")
    _go(v, f"{site.url}/?zone=Z1")
    for aid in (A1, A2):
        v.driver.find_element(By.CSS_SELECTOR, f"tr[data-alert='{aid}'] input[name=ids]").click()
    Select(v.driver.find_element(By.ID, "assign-to")).select_by_value("wang")
    _submit(v, "assign-selected")
    assert "2" in v.driver.find_element(By.CSS_SELECTOR, ".flash").text
    assert _texts(v, "#queue td.assigned") == ["wang", "wang"]  # back on the same filtered queue
    assert Register(site.register).assignments() == {A1: "wang", A2: "wang"}
    v = browser("wang")
    assert not v.driver.find_elements(By.ID, "assign-form")  # a reviewer does not assign
    v.driver.find_element(By.ID, "f-mine").click()
    _submit(v, "apply")
    assert sorted(r.get_attribute("data-alert") for r in v.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == [A1, A2]
    _go(v, f"{site.url}/alerts/{A2}")
    assert v.driver.find_element(By.CSS_SELECTOR, "#assigned .holder").text == "wang"
    assert "分派" in _texts(v, "#history td")[3] and _texts(v, "#history td.by")[-1] == "li"
    assert v.console_errors == []


def test_assignment_is_checked_like_a_decision(site):
    li, _ = http_login(site, "li")
    token = csrf_of(li.get("/").text)
    res = li.post("/assign", data={"csrf": token, "ids": B1, "to": "wang", "from": "alert"}, follow_redirects=True)
    assert "outside the scope of wang" in res.text  # B1 lies in county 510183
    res = li.post("/assign", data={"csrf": token, "scope": "filtered", "q": "zone=Z3", "to": "zhou"})
    assert res.status_code == 303 and res.headers["location"] == "/?zone=Z3"
    held = Register(site.register).assignments()
    assert held[B1] == held[B2] == "zhou" and held.get(A3) is None
    assert li.post("/assign", data={"ids": A3, "to": "li"}).status_code == 403  # no CSRF token
    wang, _ = http_login(site, "wang")
    res = wang.post("/assign", data={"csrf": csrf_of(wang.get("/").text), "ids": A3, "to": "wang"})
    assert res.status_code == 403 and "assigned by a specialist or an admin" in res.text
    zhou, _ = http_login(site, "zhou")
    assert zhou.post("/assign", data={"csrf": csrf_of(zhou.get("/").text), "ids": A3, "to": "zhou"}).status_code == 404  # not in zhou's county
    assert Register(site.register).assignments().get(A3) is None and Register(site.register).verify().problems == []


TEAM = "巡护一队"


def test_a_team_is_assigned_in_the_browser_and_is_each_members_assigned_to_me_in_their_scope(site, browser):
    res = cli("users", "team-add", TEAM, "--members", "wang,zhou", "--out", site.out)  # while the service runs
    assert res.returncode == 0, res.stderr
    v = browser("li")
    _go(v, f"{site.url}/?zone=Z2")
    v.driver.find_element(By.CSS_SELECTOR, f"tr[data-alert='{A3}'] input[name=ids]").click()
    Select(v.driver.find_element(By.ID, "assign-to")).select_by_value(TEAM)
    _submit(v, "assign-selected")
    assert _texts(v, "#queue td.assigned") == [f"{TEAM} (小组)"]
    assert Register(site.register).assignments()[A3] == TEAM
    v = browser("wang")  # a member: his own alerts and his team's
    v.driver.find_element(By.ID, "f-mine").click()
    _submit(v, "apply")
    assert sorted(r.get_attribute("data-alert") for r in v.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == [A1, A2, A3]
    _go(v, f"{site.url}/alerts/{A3}")
    assert v.driver.find_element(By.CSS_SELECTOR, "#assigned .holder").text == f"{TEAM} (小组)"
    assert v.console_errors == []
    for name, expected in (("zhou", [B1, B2]), ("zhao", [])):  # zhou: a member, but A3 lies outside his county; zhao: no member
        html = http_login(site, name)[0].get("/", params={"mine": "1"}).text
        assert [i for i in (A1, A2, A3, B1, B2) if f'data-alert="{i}"' in html] == expected, name
    assert Register(site.register).verify().problems == []


# -- the filtered set: map and downloads -------------------------------------------------------
def test_the_queue_maps_every_alert_of_its_filter(site, browser):
    v = browser("wang")
    _go(v, f"{site.url}/?zone=Z1")
    assert v.wait_for("return window.redlineQueueMap && window.redlineQueueMap.count") == 2  # Z1's alerts, of every page
    v.driver.execute_script("window.redlineQueueMap.layer.getLayers()[0].openPopup()")
    link = v.driver.find_element(By.CSS_SELECTOR, ".leaflet-popup-content a")
    # textContent, not .text: while Leaflet pans the opened popup into view it may lie outside the
    # map's overflow box, where selenium reports no visible text
    assert link.get_attribute("textContent") in (A1, A2) and "zone=Z1" in link.get_attribute("href")
    _go(v, f"{site.url}/")
    assert v.wait_for("return window.redlineQueueMap && window.redlineQueueMap.count") == 3  # county 510182 only
    assert v.external_requests() == [] and v.console_errors == []


def test_downloads_hold_the_filtered_set_written_by_the_cli_writers(site, tmp_path):
    import xml.etree.ElementTree as ET

    import openpyxl

    c, _ = http_login(site, "wang")
    res = c.get("/export/alerts.gpx?zone=Z1")
    assert res.status_code == 200 and res.headers["content-type"] == "application/gpx+xml"
    assert "attachment" in res.headers["content-disposition"]
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    assert sorted(w.find("g:name", ns).text for w in ET.fromstring(res.content).findall("g:wpt", ns)) == [A1, A2]
    gj = c.get("/export/alerts.geojson").json()  # no filter: wang's county, every page
    assert sorted(f["properties"]["alert_id"] for f in gj["features"]) == [A1, A2, A3]
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in gj["features"])
    (tmp_path / "l.xlsx").write_bytes(c.get("/export/ledger.xlsx?type=mining").content)
    rows = list(openpyxl.load_workbook(tmp_path / "l.xlsx").active.values)
    assert len(rows) == 2 and rows[0][1] == "图斑编号" and rows[1][1] == A3  # Chinese headers: the service's language
    csv = c.get("/export/alerts.csv?county=510183").content.decode("utf-8-sig")
    assert csv.count("\n") == 1  # the header only: 510183 is not wang's county
    kml = c.get("/export/alerts.kml?zone=Z2")
    assert kml.status_code == 200 and "<script>" not in kml.text  # escaped in the XML …
    assert any(EVIL in text for text in ET.fromstring(kml.content).itertext())  # … and read back as the zone's name
    assert c.get("/export/register.gpkg").status_code == 404
    assert httpx.get(f"{site.url}/export/alerts.gpx").status_code == 303  # a login first
