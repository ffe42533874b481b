"""Field checks on a phone, end to end: a real ``redline serve`` on a free 127.0.0.1 port over a
register built by the real API (alerts in two counties, five in ``field_check``, assigned), a
signed manifest, users made by the real command line; Debian's chromium at a phone's 360 × 740
viewport with an emulated position, raw HTTP requests (httpx), and the real ``redline verify``."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import ExifTags, Image
from selenium.webdriver.common.by import By

from redline.alerts import ALERT_COLUMNS
from redline.provenance import register_record, write_manifest
from redline.register import Register, merge_alerts
from redline.register.keys import load_key
from redline.register.photos import MAX_PHOTO_BYTES, PhotoError, PhotoStore, inspect_photo, verify_photos
from redline.serve import SECURITY_HEADERS
from tests.browser import PageVisit, open_server_page
from tests.serve_site import PASSWORD, Site, alert_row, cli, csrf_of, http_login, serving

pytestmark = [pytest.mark.browser]

#: field_check alerts of county 510182 (latitude 30.7005): id → (zone, centroid longitude − 0.0005, first detected)
FIELD = {"Z1-20230401-1": ("Z1", 103.90, "2023-04-01"), "Z1-20230501-1": ("Z1", 103.95, "2023-05-01"),
         "Z2-20230601-1": ("Z2", 104.20, "2023-06-01"), "Z2-20230901-1": ("Z2", 104.40, "2023-09-01")}
MID, NEAR, FAR, HTTP_ALERT = FIELD
NEW_ONE = "Z1-20230701-1"  # county 510182, status new, assigned to no one
OTHER = "Z3-20230801-1"  # county 510183, field_check, zhou's
HERE = (30.7005, 103.9505)  # the phone's position: next to NEAR
USERS = {"tian": ("reviewer", "510182"), "zhou": ("reviewer", "510183")}  # tian: a county field reviewer


def jpeg(*, taken: str = "2024:05:01 10:20:30", lat: tuple = (30.0, 42.0, 1.8), lon: tuple = (103.0, 57.0, 1.8), seed: int = 1,
         size: tuple[int, int] = (480, 360)) -> bytes:
    """A real JPEG (noise, so it has some size) with EXIF DateTimeOriginal and GPS (N/E)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "redline-test"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", lat
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", lon
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", exif=exif, quality=85)
    return buf.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    out = tmp_path_factory.mktemp("field") / "out"
    out.mkdir()
    rows = [alert_row(z, "510182", x, first) for z, x, first in FIELD.values()]
    rows += [alert_row("Z1", "510182", 103.951, "2023-07-01"), alert_row("Z3", "510183", 104.50, "2023-08-01")]
    reg = Register(out / "register.gpkg")
    merged, _ = merge_alerts(reg.alerts(), gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)[[*ALERT_COLUMNS, "geometry"]], "s1")
    reg.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 6, "new": 6, "updated": 0, "unchanged": 0})
    assert set(reg.alerts()["alert_id"]) == {*FIELD, NEW_ONE, OTHER}
    for aid in [*FIELD, OTHER]:  # single-user mode still: the desk review sends them to the field …
        reg.review(aid, by="desk", to_status="field_check")
    reg.assign(list(FIELD), to="tian", by="desk")  # … and assigns them: /field lists the alerts assigned to me
    reg.assign([OTHER], to="zhou", by="desk")
    for name, (role, counties) in USERS.items():
        res = cli("users", "add", name, "--role", role, "--counties", counties, "--password-stdin", "--out", out, stdin=PASSWORD + "\n")
        assert res.returncode == 0, res.stderr
    write_manifest(out, {"register": register_record(out, reg.path, head=reg.head()), "not_checksummed": ["register.gpkg"]},
                   key=load_key(), exclude=("register.gpkg",))
    with serving(out, "--lang", "zh") as url:
        yield Site(url=url, out=out, register=reg.path)


def _post(client, aid: str, photos: list[tuple[str, bytes, str]], *, csrf: str | None = "page", **data):
    """POST a finding on ``aid`` (the page's CSRF token unless ``csrf`` is given or None)."""
    token = csrf_of(client.get(f"/field/{aid}").text) if csrf == "page" else csrf
    form = {"result": "activity_found", "finding": "现场发现挖方", **data, **({"csrf": token} if token is not None else {})}
    return client.post(f"/field/{aid}", data=form, files=[("photos", p) for p in photos])


def _last_finding(register: Path, aid: str) -> tuple[dict, dict]:
    h = Register(register).history(aid).iloc[-1].to_dict()
    return h, json.loads(h["payload"])["field"]


def _stable_submit(v: PageVisit, button_id: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    old = v.driver.find_element(By.TAG_NAME, "html")
    v.driver.find_element(By.ID, button_id).click()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            old.tag_name  # noqa: B018 - raises once the page was replaced
        except Exception:  # selenium's StaleElementReferenceException: the new page is there
            break
        time.sleep(0.05)
    v.wait_for("return document.readyState === 'complete'")


def _width(v: PageVisit) -> int:
    return int(v.driver.execute_script("return document.documentElement.scrollWidth"))


# -- a phone in the field -----------------------------------------------------------------
def test_a_field_check_with_a_photo_on_a_360px_phone(site, tmp_path):
    photo = jpeg(seed=7)
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(photo)
    v = open_server_page(f"{site.url}/login", window=(360, 740))
    try:
        v.driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": site.url, "permissions": ["geolocation"]})
        v.driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": HERE[0], "longitude": HERE[1], "accuracy": 8})
        assert _width(v) <= 360
        v.driver.find_element(By.ID, "username").send_keys("tian")
        v.driver.find_element(By.ID, "password").send_keys(PASSWORD)
        _stable_submit(v, "login")
        v.driver.find_element(By.ID, "nav-field").click()
        # field.js asks for the position and reloads the list sorted by distance from it
        assert v.wait_for("var l = document.getElementById('field-list'); return l && l.dataset.positioned === '1'", 20)
        items = v.driver.find_elements(By.CSS_SELECTOR, "#field-checks li")
        assert [li.get_attribute("data-alert") for li in items] == [NEAR, MID, FAR, HTTP_ALERT]  # NEW_ONE is no one's, OTHER zhou's
        km = [float(li.find_element(By.CSS_SELECTOR, ".distance").get_attribute("data-km")) for li in items]
        assert km == sorted(km) and km[0] < 0.1 and 4 < km[1] < 6
        geo = items[0].find_element(By.CSS_SELECTOR, "a.geo-link").get_attribute("href")
        assert geo == "geo:30.700500,103.950500"  # RFC 5870: latitude first, WGS 84
        osm = items[0].find_element(By.CSS_SELECTOR, "a.osm-link").get_attribute("href")
        assert osm.startswith("https://www.openstreetmap.org/?mlat=30.700500&mlon=103.950500")
        assert _width(v) <= 360, "the list scrolls sideways at 360 px"
        v.screenshot("field_list_360")
        items[0].find_element(By.CSS_SELECTOR, "a.field-id").click()
        assert v.wait_for("var e = document.getElementById('lat'); return e && e.value !== ''", 20)  # filled from the position
        assert float(v.driver.find_element(By.ID, "accuracy").get_attribute("value")) == 8
        file_input = v.driver.find_element(By.ID, "photos")
        assert file_input.get_attribute("accept") == "image/jpeg,image/png" and file_input.get_attribute("capture") == "environment"
        assert _width(v) <= 360, "the form scrolls sideways at 360 px"
        v.driver.find_element(By.ID, "result-activity_found").click()
        v.driver.find_element(By.ID, "finding").send_keys("现场为新修便道，约 200 m²")
        file_input.send_keys(str(path))
        v.screenshot("field_form_360")
        _stable_submit(v, "submit-finding")
        assert "已记录" in v.driver.find_element(By.CSS_SELECTOR, ".flash").text
        shown = v.driver.find_element(By.CSS_SELECTOR, "#findings .finding")
        assert "发现人类活动" in shown.text and "现场为新修便道" in shown.text and "2024-05-01T10:20:30" in shown.text
        assert _width(v) <= 360, "the recorded finding scrolls sideways at 360 px"
        v.screenshot("field_recorded_360")
        assert v.external_requests() == [] and v.console_errors == []
    finally:
        v.driver.quit()

    sha = hashlib.sha256(photo).hexdigest()
    entry, finding = _last_finding(site.register, NEAR)
    assert entry["by"] == "tian" and entry["kind"] == "review" and entry["note"] == "现场为新修便道，约 200 m²"
    assert (entry["from_status"], entry["to_status"]) == ("field_check", "under_review")  # "field check done" is ticked by default
    assert finding["result"] == "activity_found"
    assert finding["position"] == {"lat": HERE[0], "lon": HERE[1], "accuracy_m": 8.0}
    assert finding["photos"] == [{"sha256": sha, "media_type": "image/jpeg", "bytes": len(photo), "exif_time": "2024-05-01T10:20:30",
                                  "exif_lat": pytest.approx(30.7005), "exif_lon": pytest.approx(103.9505)}]
    assert (site.out / "register-photos" / f"{sha}.jpg").read_bytes() == photo  # untouched: the EXIF block kept
    res = cli("verify", site.out)
    assert res.returncode == 0, res.stdout + res.stderr
    m = re.search(r"photos: (\d+)/(\d+) intact", res.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 1, res.stdout


# -- the list without JavaScript -----------------------------------------------------------
def test_without_a_position_the_list_is_by_date_and_typed_coordinates_sort_it(site):
    c = http_login(site, "tian")[0]
    by_date = re.findall(r'data-alert="([^"]+)"', c.get("/field").text)
    assert [a for a in by_date if a != NEAR] == [MID, FAR, HTTP_ALERT]  # NEAR may have left the list (the phone test closed it)
    typed = re.findall(r'data-alert="([^"]+)"', c.get("/field", params={"lat": "30.7005", "lon": "104.4005"}).text)
    assert [a for a in typed if a != NEAR] == [HTTP_ALERT, FAR, MID]
    bad = c.get("/field", params={"lat": "95", "lon": "104"})
    assert bad.status_code == 200 and 'id="position-problem"' in bad.text


def test_the_pages_may_ask_for_the_position_and_nothing_else(site):
    res = http_login(site, "tian")[0].get("/field")
    assert res.headers["Permissions-Policy"] == SECURITY_HEADERS["Permissions-Policy"]
    assert "geolocation=(self)" in res.headers["Permissions-Policy"] and "camera=()" in res.headers["Permissions-Policy"]
    assert "<script>" not in res.text and "script-src" not in res.headers["Content-Security-Policy"]  # default-src 'self' only


# -- uploads over HTTP ------------------------------------------------------------------------
def test_a_text_file_named_jpg_is_refused_with_415(site):
    c = http_login(site, "tian")[0]
    before = len(Register(site.register).history(HTTP_ALERT))
    res = _post(c, HTTP_ALERT, [("IMG_0002.jpg", b"this is not a photo\n" * 50, "image/jpeg")])
    assert res.status_code == 415 and "not a JPEG or PNG photo" in res.text
    assert len(Register(site.register).history(HTTP_ALERT)) == before


def test_a_photo_above_the_limit_is_refused_with_413(site):
    c = http_login(site, "tian")[0]
    big = jpeg(seed=3) + b"\0" * MAX_PHOTO_BYTES
    res = _post(c, HTTP_ALERT, [("big.jpg", big, "image/jpeg")])
    assert res.status_code == 413 and "MiB" in res.text


def test_a_finding_without_the_csrf_token_is_403(site):
    c = http_login(site, "tian")[0]
    for token in (None, "0" * 64):
        res = _post(c, HTTP_ALERT, [("a.jpg", jpeg(seed=4), "image/jpeg")], csrf=token)
        assert res.status_code == 403


def test_another_countys_alert_is_404(site):
    c = http_login(site, "tian")[0]
    assert c.get(f"/field/{OTHER}").status_code == 404
    assert _post(c, OTHER, [], csrf=csrf_of(c.get("/field").text)).status_code == 404
    assert OTHER not in c.get("/field").text


def test_field_check_done_applies_only_to_an_alert_in_field_check(site):
    c = http_login(site, "tian")[0]
    before = len(Register(site.register).history(NEW_ONE))
    res = _post(c, NEW_ONE, [], done="1")  # status new: the page offers no "done"; a crafted form is refused
    assert res.status_code == 409 and "not field_check" in res.text
    assert len(Register(site.register).history(NEW_ONE)) == before


@pytest.fixture(scope="module")
def recorded(site) -> tuple[str, bytes, int]:
    """A finding with one JPEG recorded over HTTP on HTTP_ALERT (status kept): (sha256, bytes, entry seq)."""
    c = http_login(site, "tian")[0]
    photo = jpeg(seed=11, taken="2024:06:02 08:00:00")
    res = _post(c, HTTP_ALERT, [("IMG_0003.JPG", photo, "application/octet-stream")], lat="30.70", lon="104.40", accuracy="25")
    assert res.status_code == 303, res.text[-800:]
    entry, finding = _last_finding(site.register, HTTP_ALERT)
    assert entry["to_status"] == "field_check" and finding["photos"][0]["exif_time"] == "2024-06-02T08:00:00"
    return hashlib.sha256(photo).hexdigest(), photo, int(entry["seq"])


def test_a_recorded_photo_is_served_to_who_may_see_the_alert(site, recorded):
    sha, photo, _ = recorded
    res = http_login(site, "tian")[0].get(f"/field/{HTTP_ALERT}/photos/{sha}")
    assert res.status_code == 200 and res.content == photo and res.headers["content-type"] == "image/jpeg"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert http_login(site, "zhou")[0].get(f"/field/{HTTP_ALERT}/photos/{sha}").status_code == 404
    assert http_login(site, "tian")[0].get(f"/field/{HTTP_ALERT}/photos/{'0' * 64}").status_code == 404



def test_the_alert_page_lists_the_finding_and_links_its_photo(site, recorded):
    sha, _, seq = recorded
    page = http_login(site, "tian")[0].get(f"/alerts/{HTTP_ALERT}")
    assert page.status_code == 200
    row = re.search(rf'<tr data-seq="{seq}">(.*?)</tr>', page.text, re.S).group(1)
    assert f'href="/field/{HTTP_ALERT}/photos/{sha}"' in row and 'class="field-finding"' in row
    assert f'href="/field/{HTTP_ALERT}"' in page.text  # the alert's field page


def test_verify_names_an_altered_or_missing_photo(site, recorded):
    sha, photo, seq = recorded
    stored = site.out / "register-photos" / f"{sha}.jpg"
    res = cli("verify", site.out)
    assert res.returncode == 0 and re.search(r"photos: (\d+)/\1 intact", res.stdout), res.stdout + res.stderr
    try:
        stored.write_bytes(photo[:-10] + b"0123456789")
        res = cli("verify", site.out)
        assert res.returncode == 1
        assert f"photos: photo of alert {HTTP_ALERT} (entry seq {seq}): {sha}.jpg was altered" in res.stderr, res.stderr
        stored.unlink()
        res = cli("verify", site.out)
        assert res.returncode == 1 and f"{sha}.jpg is missing" in res.stderr, res.stderr
    finally:
        stored.write_bytes(photo)
    assert cli("verify", site.out).returncode == 0


def test_photos_named_but_no_folder_is_a_problem_not_a_skip(site, recorded):
    """A register on PostgreSQL checked without --photos: its photos cannot be found, and verify says so."""
    check = verify_photos(Register(site.register).chain(), None)
    assert check.named >= 1 and check.intact == 0 and len(check.problems) == 1 and "give --photos DIR" in check.problems[0]
    assert verify_photos(Register(site.register).chain(), site.out / "register-photos").problems == []


# -- the photo store ----------------------------------------------------------------------------
def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("data, why", [
    (b"GIF89a" + b"\0" * 100, "not a JPEG or PNG"),
    (_png((10, 10))[:-20], "not a JPEG or PNG"),  # truncated
    (_png((10_000, 10_000), "1"), "decompression bomb"),  # 10^8 px in a few kB
    (b"", "empty"),
])
def test_the_store_refuses_what_is_not_a_photo(tmp_path, data, why):
    with pytest.raises(PhotoError, match=why):
        PhotoStore(tmp_path).put(data)
    assert list(tmp_path.iterdir()) == []


def test_the_store_keeps_the_bytes_under_their_sha256_once(tmp_path):
    photo = jpeg(seed=5)
    store = PhotoStore(tmp_path / "photos")
    first = store.put(photo)
    assert store.put(photo) == first == inspect_photo(photo)
    assert [p.name for p in (tmp_path / "photos").iterdir()] == [f"{hashlib.sha256(photo).hexdigest()}.jpg"]
    assert (first.exif_lat, first.exif_lon) == (pytest.approx(30.7005), pytest.approx(103.9505))
    with pytest.raises(PhotoError):
        store.path_of("../../etc/passwd", "image/jpeg")


def test_a_photo_with_a_broken_exif_block_is_kept_without_time_or_place():
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff broken")
    with pytest.warns(UserWarning, match="Corrupt EXIF"):  # Pillow's own warning; the photo is still a photo
        photo = inspect_photo(buf.getvalue())
    assert (photo.media_type, photo.exif_time, photo.exif_lat, photo.exif_lon) == ("image/jpeg", None, None, None)


def test_a_postgresql_register_needs_a_photo_folder():
    res = cli("serve", "--register", "postgresql://redline@127.0.0.1:1/none")
    assert res.returncode == 2 and "--photos DIR" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_teams_field_check_is_on_the_list_of_each_member_who_covers_it(site):
    """A team of a county reviewer (ma, 510182) and zhou (510183): NEW_ONE (510182) assigned to
    it by a specialist is on ma's list, marked as the team's; not on zhou's (outside his county)
    nor on tian's (no member)."""
    for name, role, counties in (("ma", "reviewer", "510182"), ("li", "specialist", "")):
        res = cli("users", "add", name, "--role", role, "--counties", counties, "--password-stdin", "--out", site.out, stdin=PASSWORD + "\n")
        assert res.returncode == 0, res.stderr
    assert cli("users", "team-add", "外业一队", "--members", "ma,zhou", "--out", site.out).returncode == 0
    res = cli("alerts", "assign", NEW_ONE, "--to", "外业一队", "--by", "li", "--password-stdin", "--out", site.out, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    html = http_login(site, "ma")[0].get("/field").text
    assert re.findall(r'data-alert="([^"]+)"', html) == [NEW_ONE] and "外业一队 (小组)" in html
    assert re.findall(r'data-alert="([^"]+)"', http_login(site, "zhou")[0].get("/field").text) == [OTHER]
    assert NEW_ONE not in http_login(site, "tian")[0].get("/field").text
