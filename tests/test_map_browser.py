"""The scan's map.html and report.html in a real headless Chromium with the network cut off:
offline, every alert drawn, popups with their chips, quiet online layers, Chinese text rendered
with real glyphs, a `<script>` zone name shown as text. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from maps import render_outputs
from tests.browser import ARTIFACTS, PageVisit, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EVIL = "<script>window.pwned=1</script>红线"
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # has no CJK glyph: draws empty boxes (tofu)
GLYPH_PX = 40


@pytest.fixture(scope="module")
def rerendered(small_scan, tmp_path_factory) -> Path:
    """A copy of the scan's output whose first zone is renamed to a name with a `<script>` tag,
    re-rendered by `redline map` (the register and everything else as the scan left them)."""
    out = tmp_path_factory.mktemp("browser") / "out"
    shutil.copytree(small_scan.out_dir, out)
    first = sorted(small_scan.zone_stats["zone_id"])[0]
    zones = gpd.read_file(out / "zones.geojson")
    zones.loc[zones["zone_id"] == first, "zone_name"] = EVIL
    for c in zones.select_dtypes("datetime").columns:  # GDAL reads ISO date fields (last_clear_date) as dates
        zones[c] = zones[c].dt.strftime("%Y-%m-%d")
    (out / "zones.geojson").write_text(zones.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    stats = pd.read_csv(out / "zone_stats.csv", dtype={"admin_id": str})
    stats.loc[stats["zone_id"] == first, "zone_name"] = EVIL
    stats.to_csv(out / "zone_stats.csv", index=False)
    render_outputs(out, register=out / "register.gpkg")  # what `redline map OUT` does (its CLI is tested in test_report.py)
    return out


@pytest.fixture
def visit(request):
    """Open a page (``visit(path)``); the browser is closed after the test."""
    opened: list[PageVisit] = []

    def _open(path: Path) -> PageVisit:
        opened.append(open_page(path))
        return opened[-1]

    yield _open
    for v in opened:
        v.driver.quit()


def _no_leaks(v: PageVisit) -> None:
    assert v.external_requests() == []
    assert v.console_errors == []


def _container_point(v: PageVisit, lon: float, lat: float) -> tuple[float, float]:
    """Viewport pixel (x, y) of a point on the Leaflet map."""
    return tuple(v.driver.execute_script(
        "var m = window.redlineMap.map, p = m.latLngToContainerPoint([arguments[1], arguments[0]]),"
        " r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];", lon, lat))


def _pointer_at(v: PageVisit, x: float, y: float, *, click: bool) -> None:
    """Move the real mouse to viewport pixel (x, y) (and click): events go through the browser's
    hit testing, as a reviewer's would."""
    body = v.driver.find_element(By.TAG_NAME, "body")
    rect = v.driver.execute_script("return [document.body.getBoundingClientRect().left, document.body.getBoundingClientRect().top,"
                                   " document.body.offsetWidth, document.body.offsetHeight]")
    chain = ActionChains(v.driver).move_to_element_with_offset(body, int(x - rect[0] - rect[2] / 2), int(y - rect[1] - rect[3] / 2))
    (chain.click() if click else chain).perform()


def _ink(gray: np.ndarray) -> np.ndarray:
    """Darkness (0–255) cropped to the inked box of a grey image (text dark on light)."""
    dark = 255.0 - gray.astype("float64")
    ys, xs = np.nonzero(dark > 60)
    assert ys.size, "no ink: the text was not drawn at all"
    return dark[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _reference(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    img = Image.new("L", (int(font.getlength(text)) + 2 * GLYPH_PX, 2 * GLYPH_PX), 255)
    ImageDraw.Draw(img).text((GLYPH_PX // 2, GLYPH_PX // 3), text, font=font, fill=0)
    return _ink(np.asarray(img))


def _similarity(shot: np.ndarray, ref: np.ndarray) -> float:
    ref = np.asarray(Image.fromarray(ref.astype("uint8")).resize(shot.shape[::-1], Image.BILINEAR), dtype="float64")
    return float(np.corrcoef(shot.ravel(), ref.ravel())[0, 1])


def _noto_sc() -> ImageFont.FreeTypeFont:
    for i in range(10):
        font = ImageFont.truetype(str(NOTO_CJK), GLYPH_PX, index=i)
        if font.getname()[0] == "Noto Sans CJK SC":
            return font
    raise AssertionError(f"no Noto Sans CJK SC face in {NOTO_CJK}")


def assert_cjk_rendered(v: PageVisit, element, text: str, name: str) -> tuple[float, float]:
    """Screenshot ``element`` (its font size set to 40 px, its font as the page chose) and compare
    its glyphs with ``text`` drawn in Noto Sans CJK SC and in a font without CJK (empty boxes)."""
    v.driver.execute_script("arguments[0].style.fontSize = '%dpx'; arguments[0].style.fontWeight = 'normal';"
                            " arguments[0].scrollIntoView({block: 'center'});" % GLYPH_PX, element)
    png = element.screenshot_as_png
    shot = _ink(np.asarray(Image.open(io.BytesIO(png)).convert("L")))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    real, tofu = _similarity(shot, _reference(text, _noto_sc())), _similarity(shot, _reference(text, ImageFont.truetype(str(DEJAVU), GLYPH_PX)))
    print(f"{name}: similarity to Noto Sans CJK SC {real:.3f}, to empty boxes {tofu:.3f}")
    assert real > 0.8 and real > tofu + 0.4, (real, tofu)
    return real, tofu


def test_map_works_offline_and_shows_every_alert(small_scan, visit):
    v = visit(small_scan.out_dir / "map.html")
    _no_leaks(v)
    js = v.driver.execute_script
    assert js("return typeof L !== 'undefined' && L.version") == "1.9.3"
    assert js("return window.redlineMap.alertLayer.getLayers().length") == len(small_scan.alerts) > 0
    assert js("return window.redlineMap.zoneLayer.getLayers().length") == len(small_scan.zone_stats)
    assert js("return window.redlineMap.adminLayer.getLayers().length") == len(small_scan.admin_stats)
    # one SVG path per alert polygon part, drawn in the alerts pane
    assert js("return document.querySelectorAll('.leaflet-redline_alerts-pane path').length") >= len(small_scan.alerts)
    assert js("var i = document.querySelector('.leaflet-redline_composite-pane img'); return i.complete && i.naturalWidth") > 0
    # fitted to the zones: every zone is inside the view
    w, s, e, n = gpd.read_file(small_scan.out_dir / "zones.geojson").total_bounds
    assert js("return window.redlineMap.map.getBounds().contains([[%f, %f], [%f, %f]])" % (s, w, n, e))
    labels = js("return Array.from(document.querySelectorAll('.leaflet-control-layers label')).map(l => [l.textContent.trim(), l.querySelector('input').checked])")
    assert ["OpenStreetMap (online 在线)", False] in labels and ["Alerts 预警图斑", True] in labels
    v.screenshot("map")
    size = sum(p.stat().st_size for p in [small_scan.out_dir / "map.html", small_scan.out_dir / "map_composite.png", *(small_scan.out_dir / "lib").rglob("*")] if p.is_file())
    print(f"map.html load {v.load_ms:.0f} ms; map.html {(small_scan.out_dir / 'map.html').stat().st_size / 1024:.0f} KiB, with assets {size / 1024:.0f} KiB")


def test_alert_popup_opens_with_its_chips_loaded(small_scan, visit):
    v = visit(small_scan.out_dir / "map.html")
    alert = gpd.read_file(small_scan.out_dir / "alerts.geojson").sort_values("area_m2").iloc[-1]
    p = alert.geometry.representative_point()
    v.driver.execute_script("window.redlineMap.map.setView([arguments[1], arguments[0]], 17, {animate: false});", p.x, p.y)
    _pointer_at(v, *_container_point(v, p.x, p.y), click=True)
    assert v.wait_for("return document.querySelector('.leaflet-popup-content') !== null")
    loaded = v.wait_for("var imgs = document.querySelectorAll('.leaflet-popup-content img');"
                        " return imgs.length === 3 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0)"
                        " && Array.from(imgs).map(i => [i.getAttribute('src'), i.naturalWidth]);")
    assert loaded, v.driver.execute_script("return document.querySelector('.leaflet-popup-content').innerHTML")
    aid = alert["alert_id"]
    assert [src for src, _ in loaded] == [f"chips/{aid}_before.png", f"chips/{aid}_after.png", f"figures/{aid}.png"]
    text = v.driver.execute_script("return document.querySelector('.leaflet-popup-content').textContent")
    for value in (aid, alert["zone_name"], alert["disturbance_type"], str(alert["first_detected"])[:10], alert["confidence"], alert["status"],
                  f"{alert['area_m2']:,.0f} m²"):
        assert value in text, value
    v.screenshot("map_popup")
    _no_leaks(v)


def test_online_basemap_fails_quietly_offline(small_scan, visit):
    v = visit(small_scan.out_dir / "map.html")
    assert not v.driver.find_element(By.ID, "redline-offline-note").is_displayed()
    box = v.driver.find_element(By.XPATH, "//label[contains(., 'OpenStreetMap')]//input")
    box.click()  # a reviewer ticks the online layer with no network
    assert v.wait_for("return document.getElementById('redline-offline-note').style.display === 'block'")
    v.refresh_logs()
    tried = [u for u in v.requests if "openstreetmap" in u]
    assert tried and all(u.startswith("https://tile.openstreetmap.org/") for u in tried)
    # nothing got through: every tile failed (blocked before DNS), no script error, the map still works
    assert v.driver.execute_script("return Array.from(document.querySelectorAll('.leaflet-tile-pane img')).filter(i => i.naturalWidth > 0).length") == 0
    assert all("net::ERR_" in e for e in v.console_errors), v.console_errors
    assert v.driver.execute_script("return window.redlineMap.alertLayer.getLayers().length") == len(small_scan.alerts)
    v.screenshot("map_offline_osm")


def test_zone_name_with_script_is_shown_as_text_and_chinese_renders_on_the_map(rerendered, visit):
    v = visit(rerendered / "map.html")
    _no_leaks(v)
    zones = gpd.read_file(rerendered / "zones.geojson")
    alerts = gpd.read_file(rerendered / "alerts.geojson")
    zone = zones[zones["zone_name"] == EVIL].iloc[0]
    free = zone.geometry.buffer(-1e-4).difference(alerts.union_all().buffer(1e-4)).representative_point()  # inside the zone, off the alerts
    _pointer_at(v, *_container_point(v, free.x, free.y), click=False)
    tip = v.wait_for("var t = document.querySelector('.leaflet-tooltip'); return t && t.textContent")
    assert EVIL in tip and zone["zone_id"] in tip
    assert v.driver.execute_script("return window.pwned === undefined && document.querySelectorAll('.leaflet-tooltip script').length === 0")
    v.screenshot("map_script_zone")
    # a Chinese zone name in its hover tooltip
    other = zones[zones["zone_name"] != EVIL].iloc[0]
    free = other.geometry.buffer(-1e-4).difference(alerts.union_all().buffer(1e-4)).representative_point()
    _pointer_at(v, *_container_point(v, free.x, free.y), click=False)
    assert v.wait_for("var t = document.querySelector('.leaflet-tooltip b'); return t && t.textContent === %s" % json.dumps(other["zone_name"]))
    assert_cjk_rendered(v, v.driver.find_element(By.CSS_SELECTOR, ".leaflet-tooltip b"), other["zone_name"], "map_cjk_tooltip")


def test_report_works_offline_with_its_images_map_and_chinese_text(rerendered, small_scan, visit):
    v = visit(rerendered / "report.html")
    _no_leaks(v)
    js = v.driver.execute_script
    images = js("return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    assert images and all(ok for _, ok in images), images
    srcs = [s for s, _ in images]
    for aid in small_scan.alerts["alert_id"]:
        assert f"chips/{aid}_before.png" in srcs and f"chips/{aid}_after.png" in srcs and f"figures/{aid}.png" in srcs
    assert js("return document.querySelectorAll('tr.alert').length") == len(small_scan.alerts)
    assert js("return document.querySelectorAll('article.zone').length") == len(small_scan.zone_stats)
    # the embedded map is the real one, with every alert
    assert v.wait_for("try { return document.querySelector('iframe.map').contentWindow.redlineMap.alertLayer.getLayers().length }"
                      " catch (e) { return 0 }") == len(small_scan.alerts)
    # the <script> zone name is text, and the page runs no script at all
    names = js("return Array.from(document.querySelectorAll('.zone-title .zone-name')).map(e => e.textContent)")
    assert EVIL in names and js("return window.pwned === undefined && document.scripts.length === 0")
    v.screenshot("report")
    print(f"report.html load {v.load_ms:.0f} ms")
    chinese = next(n for n in names if n != EVIL)
    el = next(e for e in v.driver.find_elements(By.CSS_SELECTOR, ".zone-title .zone-name") if e.text == chinese)
    assert_cjk_rendered(v, el, chinese, "report_cjk_zone_name")


def test_glyph_check_tells_boxes_from_glyphs(visit, tmp_path):
    """The CJK check itself fails on empty boxes: private-use code points, which no installed font
    draws, render as the boxes a missing CJK font would give."""
    page = tmp_path / "tofu.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><span id='t'>%s</span></body></html>"
                    % "".join(chr(0xE000 + i) for i in range(7)), encoding="utf-8")
    v = visit(page)
    with pytest.raises(AssertionError):
        assert_cjk_rendered(v, v.driver.find_element(By.ID, "t"), "龙门山水源涵养", "tofu_check")
