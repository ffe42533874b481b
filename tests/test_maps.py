"""map.html from a small real output folder: offline assets, escaping, layers, legend, popups,
register-driven status. Real files (geopandas, rasterio, GeoPackage), no mocks."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import folium
import geopandas as gpd
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.warp
import shapely
from rasterio.transform import Affine

from redline.alerts import ALERT_COLUMNS
from redline.register import Register
from maps import CATEGORY_STYLE, OSM_URL, STATUS_STYLE, TIANDITU_NAME, TIANDITU_URL, TYPE_STYLE, esc, render_map, write_composite_png

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|code\.jquery|maxcdn|googleapis|bootstrapcdn|netdna|fontawesome\.com")
X0, Y0 = 400_000, 3_400_000  # EPSG:32648 (UTM 48N), near 104.0° E, 30.7° N (Sichuan)
SCRIPT_NAME = "<script>alert(1)</script>`${x}`\\u"
ALERTS = [  # (disturbance_type, status, zone)
    ("clearing", "new", "Z1"),
    ("mining", "under_review", "Z1"),
    ("fire", "confirmed", "Z2"),
    ("water_loss", "dismissed", "Z3"),
]


def alert_id_of(i: int) -> str:
    return f"Z-2023060{i + 1}-{i + 1}"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A scan output folder: 3 zones, 2 counties, 4 alerts, an RGB composite in EPSG:32648, chips."""
    return make_out_dir(tmp_path / "out")


def make_out_dir(out: Path) -> Path:
    """Write the folder of the ``out_dir`` fixture at ``out``."""
    out.mkdir(parents=True)
    zones = gpd.GeoDataFrame(
        {
            "zone_id": ["Z1", "Z2", "Z3"],
            "zone_name": ["龙门山水源涵养生态保护红线", SCRIPT_NAME, "白鹿山水土保持生态保护红线"],
            "category": ["水源涵养", "水土保持", "<b>custom</b>"],
            "admin_id": ["510182", "510181", "510181"],
            "status": ["alerts", "alerts", "not_observed"],
        },
        geometry=[shapely.box(X0, Y0 - 1000, X0 + 1000, Y0), shapely.box(X0 + 1200, Y0 - 1000, X0 + 1800, Y0),
                  shapely.box(X0, Y0 - 1900, X0 + 1800, Y0 - 1200)],
        crs=32648,
    ).to_crs(4326)
    (out / "zones.geojson").write_text(zones.to_json(ensure_ascii=False, drop_id=True), encoding="utf-8")
    admin = gpd.GeoDataFrame(
        {"admin_id": ["510181", "510182"], "admin_name": ["都江堰市", "彭州市"]},
        geometry=[shapely.box(X0 - 200, Y0 - 2000, X0 + 600, Y0 + 100), shapely.box(X0 + 600, Y0 - 2000, X0 + 2000, Y0 + 100)],
        crs=32648,
    ).to_crs(4326)
    (out / "admin_units.geojson").write_text(admin.to_json(ensure_ascii=False, drop_id=True), encoding="utf-8")

    rows = []
    zone_x = {"Z1": X0 + 100, "Z2": X0 + 1300, "Z3": X0 + 800}
    for i, (kind, status, zone) in enumerate(ALERTS):
        x = zone_x[zone] + 150 * (i % 2)
        y = Y0 - 1400 if zone == "Z3" else Y0 - 300
        rows.append({
            "alert_id": alert_id_of(i), "zone_id": zone, "zone_name": zones.set_index("zone_id").at[zone, "zone_name"], "admin_id": "510182",
            "area_m2": 8000.0, "centroid_lon": 104.0, "centroid_lat": 30.7, "first_detected": "2023-06-01", "last_observed": "2023-07-01",
            "confidence": "high", "disturbance_type": kind, "magnitude": 0.4, "n_observations": 4, "status": status,
            "geometry": shapely.box(x, y - 100, x + 80, y),
        })
    alerts = gpd.GeoDataFrame(rows, geometry="geometry", crs=32648).to_crs(4326)
    (out / "alerts.geojson").write_text(alerts.to_json(ensure_ascii=False, drop_id=True), encoding="utf-8")

    (out / "rasters").mkdir()
    rgb = np.random.default_rng(0).integers(1, 255, (3, 100, 200), dtype="uint8")
    rgb[:, :, :20] = 0  # a no-data strip on the west edge
    with rasterio.open(out / "rasters" / "true_colour_monitor.tif", "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8",
                       crs="EPSG:32648", transform=Affine(10, 0, X0 - 100, 0, -20, Y0 + 50), nodata=0) as dst:
        dst.write(rgb)

    (out / "chips").mkdir()
    (out / "figures").mkdir()
    chip = np.zeros((8, 8, 3), dtype="uint8")
    for rel in (f"chips/{alert_id_of(0)}_before.png", f"chips/{alert_id_of(0)}_after.png", f"figures/{alert_id_of(0)}.png"):
        matplotlib.image.imsave(out / rel, chip)
    return out


#: A way through the allowed transitions from ``new`` to each status (review policy without steps).
_PATH = {"new": [], "under_review": ["under_review"], "field_check": ["field_check"], "dismissed": ["dismissed"],
         "confirmed": ["under_review", "confirmed"], "rectifying": ["under_review", "confirmed", "rectifying"],
         "rectified": ["under_review", "confirmed", "rectifying", "rectified"]}


def write_register(out: Path, status_of_first: str) -> Path:
    """A register (through redline.register): the scan's alerts and an alert of another area,
    merged by a scan, each reviewed to its status in alerts.geojson, and the first one then to
    ``status_of_first`` with a note (the review policy without steps)."""
    alerts = gpd.read_file(out / "alerts.geojson")
    far = alerts.iloc[[1]].copy()
    far["alert_id"], far["zone_id"] = "FAR-1", "ELSEWHERE"
    far["geometry"] = [shapely.box(110, 20, 110.001, 20.001)]
    alerts = gpd.GeoDataFrame(pd.concat([alerts, far], ignore_index=True), crs=4326)
    for col in ALERT_COLUMNS:  # the fixture's alerts.geojson has the fields the map shows
        if col not in alerts:
            alerts[col] = None
    alerts["n_observations"] = alerts["n_observations"].fillna(0)
    reg = Register(out / "register.gpkg")
    reg.commit_scan(alerts.assign(status="new"), scan={"scan_id": "fixture"}, review_steps=())
    for i, (aid, status) in enumerate(zip(alerts["alert_id"], alerts["status"])):
        for to in _PATH[status_of_first if i == 0 else status][: None if i else -1]:
            reg.review(aid, to_status=to, by="李工")
    reg.review(alert_id_of(0), to_status=_PATH[status_of_first][-1], by="王工", note="<img src=x onerror=alert(2)> 已派员核查",
               when=dt.datetime(2023, 8, 1, 10, tzinfo=dt.timezone.utc))
    return reg.path


def _alert_tooltips(page: str) -> set[str]:
    return set(re.findall(r"<div>\s*(Z-\d{8}-\d · [a-z_ ]+ \S+ · [a-z_ ]+ \S+)\s*</div>", page))


def test_page_loads_only_local_assets(out_dir):
    path = render_map(out_dir)
    assert path == out_dir / "map.html" and path.exists()
    page = path.read_text(encoding="utf-8")
    assert not CDN.search(page)
    # the only network URL is the optional OpenStreetMap layer's tile template, not shown on opening
    assert re.findall(r"https?://[^\s\"'<>]+", page) == [OSM_URL]
    assert "awesome-markers" not in page and "AwesomeMarkers" not in page
    links = re.findall(r"""<(?:script|link)[^>]+(?:src|href)=["']([^"']+)["']""", page)
    assert len(links) == 6
    for rel in links:
        assert not rel.startswith(("/", "file:")) and (out_dir / rel).is_file(), rel
    for rel in ("lib/leaflet/leaflet.js", "lib/leaflet/leaflet.css", "lib/jquery/jquery.min.js", "lib/bootstrap/css/bootstrap.min.css",
                "lib/fontawesome/css/all.min.css"):
        assert rel in links
    assert (out_dir / "lib/leaflet/images/layers.png").is_file()
    assert (out_dir / "lib/fontawesome/webfonts/fa-solid-900.woff2").is_file()  # all.min.css refers to ../webfonts/
    assert "1.9.3" in (out_dir / "lib/leaflet/leaflet.js").read_text(encoding="utf-8")[:300]
    # the base layer is a PNG next to the page, not a tile server
    assert 'L.imageOverlay(\n                "map_composite.png"' in page
    assert page.count("L.tileLayer") == 1


def test_folium_class_defaults_are_untouched(out_dir):
    before_js, before_css = list(folium.Map.default_js), list(folium.Map.default_css)
    render_map(out_dir)
    assert folium.Map.default_js == before_js and folium.Map.default_css == before_css


def test_utf8_and_chinese_text(out_dir):
    raw = render_map(out_dir).read_bytes()
    assert re.search(rb"<head>\s*<meta charset=\"utf-8\">", raw)
    page = raw.decode("utf-8")
    assert "龙门山水源涵养生态保护红线" in page and "都江堰市" in page and "\\u9f99" not in page


def test_input_text_is_escaped(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text in the zone tooltip and the popups
    assert esc(SCRIPT_NAME) in page
    assert "${x}" not in page and "`${" not in page  # would be evaluated inside folium's JS template literals
    assert "\\u`" not in page  # a raw backslash would start an escape in a template literal
    assert "<b>custom</b>" not in page and "&lt;b&gt;custom&lt;/b&gt;" in page  # category, in tooltip and legend
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert all("alert(1)" not in s.replace("&lt;script&gt;alert(1)", "") for s in scripts)


def test_layers_hook_and_bounds(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    for name in ("Alerts 预警图斑", "Red-line zones 生态保护红线", "Counties 行政区", "Composite 合成影像"):
        assert json.dumps(name)[1:-1] in page or name in page
    assert "L.control.layers" in page
    last_script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)[-1]
    hook = re.search(r"window\.redlineMap = \{map: (\w+), alertLayer: (\w+), zoneLayer: (\w+), adminLayer: (\w+), compositeLayer: (\w+), onlineLayers: \[\w+\]\};", last_script)
    assert hook, last_script
    for var in hook.groups():
        assert f"var {var} = " in page
    assert page.rstrip().endswith("</script>\n</html>")
    # each alert / county is one child layer of its group (what alertLayer.getLayers() counts); the
    # zones are one GeoJSON layer of one feature each (SVG paths for a few zones, not a canvas)
    assert page.count(f".addTo({hook.group(2)});") == 4
    assert len(_zone_layer(page, hook.group(3))[0]["features"]) == 3 and "L.canvas" not in page
    assert page.count(f".addTo({hook.group(4)});") == 2
    # fitted to the zones: south-west and north-east corners in degrees
    zones = gpd.read_file(out_dir / "zones.geojson")
    w, s, e, n = zones.total_bounds
    fit = re.search(r"\.fitBounds\(\s*\[\[([\d.]+), ([\d.]+)\], \[([\d.]+), ([\d.]+)\]\]", page)
    assert fit and np.allclose([float(v) for v in fit.groups()], [s, w, n, e])


def test_composite_png_is_web_mercator_with_transparent_nodata(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    png = matplotlib.image.imread(out_dir / "map_composite.png")
    assert png.shape[2] == 4 and png[..., 3].min() == 0 and png[..., 3].max() == 1
    assert png[png.shape[0] // 2, 0, 3] == 0  # the west no-data strip
    bounds = json.loads(re.search(r'"map_composite.png",\s*(\[\[.*?\]\])', page, flags=re.S).group(1))
    with rasterio.open(out_dir / "rasters/true_colour_monitor.tif") as src:
        w, s, e, n = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    (south, west), (north, east) = bounds
    assert np.allclose([south, west, north, east], [s, w, n, e], atol=2e-4)  # same footprint, ~20 m


def test_large_composite_is_averaged_down(out_dir, tmp_path):
    tif = out_dir / "rasters/true_colour_monitor.tif"
    full = write_composite_png(tif, tmp_path / "full.png")
    small = write_composite_png(tif, tmp_path / "small.png", max_side_px=50)
    assert max(small.shape) == 50 and max(full.shape) > 50
    assert np.allclose(small.bounds, full.bounds, atol=1e-4)  # same footprint, coarser pixels
    assert matplotlib.image.imread(tmp_path / "small.png").shape[:2] == small.shape


def _popups(page: str) -> dict[str, dict[str, str]]:
    """Every alert popup of a map page: alert id → {field label: value} (HTML unescaped)."""
    import html

    out = {}
    for popup in re.findall(r"<div class='redline-popup'.*?</div>", page, flags=re.S):
        rows = {html.unescape(k): html.unescape(v) for k, v in re.findall(r"<tr><th[^>]*>(.*?)</th><td>(.*?)</td></tr>", popup, flags=re.S)}
        out[rows["alert 预警编号"]] = rows
    return out


def _bilingual(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]", text)) and bool(re.search(r"[\u4e00-\u9fff]", text))


def test_popups_show_alert_fields_and_chips(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    popups = _popups(page)
    assert set(popups) == {alert_id_of(i) for i in range(len(ALERTS))}
    for i, (kind, status, zone) in enumerate(ALERTS):
        p = popups[alert_id_of(i)]
        assert p["type 变化类型"] == TYPE_STYLE[kind].label and p["status 核查状态"] == STATUS_STYLE[status].label
        assert f"{alert_id_of(i)} · {TYPE_STYLE[kind].label} · {STATUS_STYLE[status].label}" in page  # the hover text
    first = popups[alert_id_of(0)]
    assert first["zone 红线区"] == "龙门山水源涵养生态保护红线 (Z1)" and first["area 面积"] == "8,000 m² (0.80 ha)"
    assert first["county 行政区"] == "彭州市 (510182)"  # the name from admin_units.geojson, not the code alone
    assert first["confidence 置信度"] == "high 高" and first["type 变化类型"] == "clearing 植被清除" and first["status 核查状态"] == "new 新发现"
    assert (first["first detected 首次发现"], first["last observed 最近观测"]) == ("2023-06-01", "2023-07-01")
    for rel in (f"chips/{alert_id_of(0)}_before.png", f"chips/{alert_id_of(0)}_after.png", f"figures/{alert_id_of(0)}.png"):
        assert f'<img src="{rel}"' in page
    assert f"chips/{alert_id_of(1)}_before.png" not in page  # only images that exist


def test_popups_translate_every_coded_value(out_dir):
    """Codes (type, status, confidence, change type, activity classes, zone tier) are shown in both
    languages with the vocabulary's labels (those of the review service and the ledger)."""
    alerts = gpd.read_file(out_dir / "alerts.geojson")
    alerts["change_type"] = ["expansion", "new", None, "new"]
    alerts["activity_candidates"] = ["agriculture,quarry", "", None, "settlement"]
    alerts["activity_class"] = ["quarry", None, None, None]
    alerts["zone_tier"] = ["core", None, "general", None]
    for c in alerts.select_dtypes("datetime").columns:  # GDAL reads the ISO date fields as dates
        alerts[c] = alerts[c].dt.strftime("%Y-%m-%d")
    (out_dir / "alerts.geojson").write_text(alerts.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    popups = _popups(render_map(out_dir).read_text(encoding="utf-8"))
    first = popups[alert_id_of(0)]
    assert first["change type 变化类型"] == "expansion 规模扩大"
    assert first["activity candidates 候选活动类型"] == "agricultural land 农业用地; quarry 采石场"
    assert first["activity class 人类活动类型"] == "quarry 采石场" and first["zone tier 管控分区"] == "core 核心保护区"
    assert "activity candidates 候选活动类型" not in popups[alert_id_of(1)]  # an empty value is left out, not shown as a code
    coded = ("type 变化类型", "status 核查状态", "confidence 置信度", "change type 变化类型", "activity candidates 候选活动类型",
             "activity class 人类活动类型", "zone tier 管控分区")
    shown = [(label, p[label]) for p in popups.values() for label in coded if label in p]
    assert len(shown) >= 4 * 3 + 8 and all(_bilingual(v) for _, v in shown), shown


def test_legend_lists_types_statuses_and_categories(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    legend = re.search(r"<div id='redline-legend'.*?</details>", page, flags=re.S).group(0)
    for key, style in TYPE_STYLE.items():
        assert f"data-type='{key}'" in legend and esc(style.label) in legend
    for key, style in STATUS_STYLE.items():
        assert f"data-status='{key}'" in legend and esc(style.label) in legend
    assert "clearing 植被清除 (1)" in legend and "construction 建设占用 (0)" in legend
    assert f"水源涵养 {CATEGORY_STYLE['水源涵养'][1]}" in legend and CATEGORY_STYLE["水源涵养"][0] in legend
    assert "not observed" in legend and "county border" in legend


def _zone_layer(page: str, var: str | None = None) -> tuple[dict, list[dict]]:
    """The zone layer's FeatureCollection and its style table, as the page holds them."""
    var = var or re.search(r"zoneLayer: (\w+)", page).group(1)
    m = re.search(rf"var {var} = L\.geoJSON\((.*?), \{{\n.*?return (\[.*?\])\[f\.properties\.s\];", page, flags=re.S)
    return json.loads(m.group(1)), json.loads(m.group(2))


def test_styles_follow_type_and_status(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    styles = [json.loads(s) for s in re.findall(r"return (\{.*?\});", page)] + _zone_layer(page)[1]
    alert_styles = {(s["fillColor"], s["color"], s["weight"], s.get("dashArray")) for s in styles if s.get("fillOpacity") == 0.55}
    assert alert_styles == {(TYPE_STYLE[k].colour, STATUS_STYLE[st].colour, STATUS_STYLE[st].weight, STATUS_STYLE[st].dash) for k, st, _ in ALERTS}
    assert STATUS_STYLE["dismissed"].dash and not STATUS_STYLE["new"].dash and STATUS_STYLE["new"].weight > STATUS_STYLE["under_review"].weight
    zone_colours = {s["color"] for s in styles if s.get("fillOpacity") == 0.1}
    assert CATEGORY_STYLE["水源涵养"][0] in zone_colours and CATEGORY_STYLE["水土保持"][0] in zone_colours and len(zone_colours) == 3
    assert any(s.get("dashArray") == "8 6" and s.get("fill") is False for s in styles)  # county borders, dashed


def test_register_status_drives_the_map(out_dir):
    without = render_map(out_dir).read_text(encoding="utf-8")
    reg = write_register(out_dir, "field_check")
    with_reg = render_map(out_dir, register=reg).read_text(encoding="utf-8")
    assert f"{alert_id_of(0)} · clearing 植被清除 · new 新发现" in without
    assert _alert_tooltips(with_reg) == ({f"{alert_id_of(0)} · clearing 植被清除 · field check 实地核查"}
                                         | (_alert_tooltips(without) - {f"{alert_id_of(0)} · clearing 植被清除 · new 新发现"}))
    assert "FAR-1" not in with_reg  # the register's alerts of other areas stay off this map
    assert "王工" in with_reg and "已派员核查" in with_reg  # latest review in the popup
    assert "<img src=x" not in with_reg and "&lt;img src=x onerror=alert(2)&gt;" in with_reg
    assert "field check 实地核查 (1)" in with_reg and "new 新发现 (0)" in with_reg


def test_missing_register_is_an_error(out_dir):
    with pytest.raises(FileNotFoundError):
        render_map(out_dir, register=out_dir / "nope.gpkg")


def test_empty_alerts_and_no_optional_inputs(out_dir):
    (out_dir / "alerts.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}), encoding="utf-8")
    (out_dir / "admin_units.geojson").unlink()
    (out_dir / "rasters" / "true_colour_monitor.tif").unlink()
    page = render_map(out_dir).read_text(encoding="utf-8")
    assert _alert_tooltips(page) == set()
    assert re.search(r"alertLayer: \w+, zoneLayer: \w+, adminLayer: null, compositeLayer: null, onlineLayers: \[\w+\]\};", page)
    assert "Counties 行政区" not in page and "L.imageOverlay" not in page
    assert "clearing 植被清除 (0)" in page


def _tile_layers(page: str) -> dict[str, str]:
    """folium variable name → URL template of every ``L.tileLayer`` on the page."""
    return {var: json.loads(f'"{url}"') for var, url in re.findall(r"var (tile_layer_\w+) = L\.tileLayer\(\s*\"([^\"]+)\"", page)}


def test_online_basemaps_are_optional_layers_off_on_opening(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    layers = _tile_layers(page)
    assert list(layers.values()) == [OSM_URL]
    (var,) = layers
    assert f"{var}.addTo(" not in page  # not shown when the page opens: an offline page requests no tile
    assert "OpenStreetMap (online" in page and "L.control.layers" in page
    assert "redline-offline-note" in page and "tileerror" in page  # a failing tile shows one quiet note


def test_tianditu_needs_a_key_and_no_online_layer_on_request(out_dir):
    with_key = render_map(out_dir, tianditu_key="0123abcdef").read_text(encoding="utf-8")
    urls = sorted(_tile_layers(with_key).values())
    assert urls == sorted([OSM_URL, TIANDITU_URL % ("img", "img", "0123abcdef"), TIANDITU_URL % ("cia", "cia", "0123abcdef")])
    assert json.dumps(TIANDITU_NAME)[1:-1] in with_key and '"subdomains": "01234567"' in with_key
    offline = render_map(out_dir, online_basemaps=False).read_text(encoding="utf-8")
    assert _tile_layers(offline) == {} and "http://" not in offline and "https://" not in offline
    with pytest.raises(ValueError, match="tianditu key"):
        render_map(out_dir, tianditu_key="x\"};alert(1)//")


def test_thousands_of_zones_are_one_canvas_layer(out_dir):
    """1,000 zones (a grid of 40 m squares cut from the three): one GeoJSON layer on a canvas,
    each zone a feature with its tooltip, a few hundred bytes per zone."""
    zones = gpd.read_file(out_dir / "zones.geojson")
    w, s, e, n = zones.total_bounds
    cells = [shapely.box(w + i * (e - w) / 40, s + j * (n - s) / 25, w + (i + 1) * (e - w) / 40, s + (j + 1) * (n - s) / 25)
             for i in range(40) for j in range(25)]
    many = gpd.GeoDataFrame({"zone_id": [f"P{k:04d}" for k in range(len(cells))], "zone_name": "patch", "category": "水源涵养",
                             "admin_id": "510182", "alerts_total": 0}, geometry=cells, crs=4326)
    (out_dir / "zones.geojson").write_text(many.to_json(ensure_ascii=False, drop_id=True), encoding="utf-8")
    page = render_map(out_dir).read_text(encoding="utf-8")
    data, styles = _zone_layer(page)
    assert len(data["features"]) == 1000 and "L.canvas" in page and len(styles) == 1
    assert data["features"][7]["properties"]["t"].startswith("<b>patch</b><br>P0007")
    assert len(page.encode()) < 1000 * 600 + 200_000
