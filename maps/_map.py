"""The reviewers' map (folium): offline base composite, zones, counties, alerts, legend."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.map import CustomPane
from jinja2 import Template

from maps._composite import write_composite_png
from redline.register import Register
from maps._offline import copy_assets
from maps._style import (
    ADMIN_STYLE,
    NOT_OBSERVED_CLASS,
    NOT_OBSERVED_DASH,
    NOT_OBSERVED_FILL,
    NOT_OBSERVED_HATCH,
    STATUS_STYLE,
    TYPE_STYLE,
    UNCATEGORISED,
    StatusStyle,
    category_colours,
    category_label,
    code_label,
    esc,
    legend_html,
)

log = logging.getLogger(__name__)

MAP_HTML = "map.html"
COMPOSITE_TIF = "rasters/true_colour_monitor.tif"
COMPOSITE_PNG = "map_composite.png"  # written next to the page
#: LayerControl names
ALERTS_NAME = "Alerts 预警图斑"
ZONES_NAME = "Red-line zones 生态保护红线"
ADMIN_NAME = "Counties 行政区"
COMPOSITE_NAME = "Composite 合成影像"
#: optional online basemaps (WGS84 / CGCS2000 Web-Mercator tiles, so they align with the data with
#: no GCJ-02 shift); off when the page opens, so an offline page requests nothing from them
OSM_NAME = "OpenStreetMap (online 在线)"
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTR = "&copy; OpenStreetMap contributors"
#: Tianditu (天地图, the national platform of the Ministry of Natural Resources) WMTS imagery
#: and its annotation layer; needs a user key (tk), https://console.tianditu.gov.cn/
TIANDITU_NAME = "天地图影像 Tianditu imagery (online 在线)"
TIANDITU_LABEL_NAME = "天地图注记 Tianditu labels (online 在线)"
TIANDITU_URL = ("https://t{s}.tianditu.gov.cn/%s_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=%s&STYLE=default"
                "&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=%s")
TIANDITU_ATTR = "&copy; 天地图 Tianditu (www.tianditu.gov.cn)"
#: display simplification of zone and county outlines, in degrees (about 2 m); alerts are exact
SIMPLIFY_DEG = 2e-5
#: zones drawn on one canvas instead of one SVG path each from this many zones on (Leaflet's
#: canvas renderer: thousands of paths stay fast to draw and pan; the not-observed hatching,
#: an SVG pattern, is then left out: such zones stay grey and dotted)
CANVAS_ZONES = 500
#: decimals of the zones' display coordinates (1e-6° ≈ 0.1 m, under the 2 m simplification)
ZONE_DECIMALS = 6
#: panes keep the drawing order fixed when layers are toggled: alerts over counties over zones over the image
_PANES = {"composite": 250, "zones": 410, "admin": 420, "alerts": 430}
_UNKNOWN_STATUS = StatusStyle("#333333", 2, None, "unknown")


def _pane(key: str) -> str:
    return f"redline_{key}"


def is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and other non-scalars
        return False


def display_text(value: object) -> str:
    """Display text of a field value: '–' when missing, ISO date for dates/timestamps."""
    if is_missing(value):
        return "–"
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.date().isoformat() if (value.hour, value.minute, value.second) == (0, 0, 0) else value.isoformat(timespec="minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def read_layer(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """A vector layer in EPSG:4326 (GeoJSON without a CRS is taken as EPSG:4326, per RFC 7946);
    features without geometry are dropped."""
    df = gpd.read_file(path, layer=layer, engine="pyogrio")
    df = df.set_crs(4326) if df.crs is None else df.to_crs(4326)
    empty = df.geometry.isna() | df.geometry.is_empty
    if empty.any():
        log.warning("%s: %d feature(s) without geometry left off the map", path.name, int(empty.sum()))
        df = df[~empty]
    return df.reset_index(drop=True)


def read_alerts(out_dir: Path, register: Path | str | None, zone_ids: set[str]) -> gpd.GeoDataFrame:
    """Alerts from the register's ``alerts`` layer (authoritative status) or ``alerts.geojson``.

    The register may hold alerts of other areas; only those in this map's zones are kept.
    """
    if register is not None:
        reg = Register(register)  # a GeoPackage or a postgresql:// URL
        if reg.path is not None and not reg.path.exists():
            raise FileNotFoundError(f"register {register} does not exist")
        register = reg.path or Path(reg.store.describe())  # for the messages: never the password
        alerts = reg.alerts()  # through the register's schema check (redline.register)
        empty = alerts.geometry.isna() | alerts.geometry.is_empty
        if empty.any():
            log.warning("%s: %d alert(s) without geometry left off the map", register.name, int(empty.sum()))
        alerts = alerts[~empty].to_crs(4326).reset_index(drop=True)
        if zone_ids and "zone_id" in alerts and not alerts.empty:
            keep = alerts["zone_id"].astype(str).isin(zone_ids)
            if (~keep).any():
                log.info("register %s: %d alert(s) outside this map's zones left off", register.name, int((~keep).sum()))
            alerts = alerts[keep].reset_index(drop=True)
        return alerts
    path = out_dir / "alerts.geojson"
    if not path.exists():
        log.warning("%s not found; the map shows no alerts", path)
        return gpd.GeoDataFrame(geometry=[], crs=4326)
    return read_layer(path)


def latest_reviews(register: Path | str | None) -> dict[str, dict[str, Any]]:
    """The latest decision (``review`` entry, by ``seq``) per alert id, if the register has one;
    assignments are not decisions."""
    if register is None:
        return {}
    h = Register(register).history()  # ordered by seq
    h = h[h["kind"].isna() | (h["kind"] == "review")] if "kind" in h else h
    if h.empty:
        return {}
    return {str(k): row for k, row in h.groupby("alert_id").tail(1).set_index("alert_id").to_dict("index").items()}


def relative_file(out_dir: Path, rel: object) -> str | None:
    """``rel`` if it names an existing file inside ``out_dir`` (as a POSIX relative path)."""
    if is_missing(rel) or not str(rel).strip():
        return None
    p = PurePosixPath(str(rel).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        return None
    return p.as_posix() if (out_dir / p).is_file() else None


def _img(rel: str, caption: str, width: int = 160) -> str:
    src = esc(quote(rel))
    return (f'<figure style="display:inline-block;margin:2px 4px 0 0"><a href="{src}" target="_blank">'
            f'<img src="{src}" width="{width}" alt="{esc(caption)}"></a><figcaption style="font-size:11px">{esc(caption)}</figcaption></figure>')


def county_text(admin_id: object, names: Mapping[str, str]) -> str:
    """A county as shown: its name and code, ``"都江堰市 (510181)"`` (the code alone when the
    counties file has no name for it; '–' when missing)."""
    if is_missing(admin_id):
        return "–"
    code = display_text(admin_id)
    name = names.get(code)
    return f"{name} ({code})" if name else code


def county_names(admin: gpd.GeoDataFrame | pd.DataFrame | None) -> dict[str, str]:
    """``admin_id`` → ``admin_name`` of a counties table (``admin_units.geojson``); empty without one."""
    if admin is None or "admin_id" not in admin or "admin_name" not in admin:
        return {}
    return {display_text(k): str(v) for k, v in zip(admin["admin_id"], admin["admin_name"]) if not is_missing(k) and not is_missing(v)}


def _popup_html(a: Mapping[str, Any], out_dir: Path, review: Mapping[str, Any] | None, counties: Mapping[str, str] | None = None) -> str:
    """An alert's popup: a table of its fields, codes shown by their bilingual labels (the
    vocabulary's, as the review service shows them), the county by name, and any chips/figure
    found next to the page. Field names follow the review service's (redline/serve/i18n.py)."""
    area = a.get("area_m2")
    area_txt = "–" if is_missing(area) else f"{float(area):,.0f} m² ({float(area) / 1e4:,.2f} ha)"
    lon, lat = a.get("centroid_lon"), a.get("centroid_lat")
    rows: list[tuple[str, str]] = [
        ("alert 预警编号", display_text(a.get("alert_id"))),
        ("zone 红线区", f"{display_text(a.get('zone_name'))} ({display_text(a.get('zone_id'))})"),
        ("county 行政区", county_text(a.get("admin_id"), counties or {})),
        ("type 变化类型", code_label("type", a.get("disturbance_type"))),
        ("first detected 首次发现", display_text(a.get("first_detected"))),
        ("last observed 最近观测", display_text(a.get("last_observed"))),
        ("area 面积", area_txt),
        ("confidence 置信度", code_label("confidence", a.get("confidence"))),
        ("status 核查状态", code_label("status", a.get("status"))),
    ]
    if not is_missing(a.get("magnitude")):
        rows.append(("magnitude 变化幅度", f"{float(a['magnitude']):.3f}"))
    if not is_missing(a.get("n_observations")):
        rows.append(("observations 观测次数", display_text(int(a["n_observations"]))))
    if not (is_missing(lon) or is_missing(lat)):
        rows.append(("centroid 中心点", f"{float(lon):.5f}, {float(lat):.5f}"))
    if not is_missing(a.get("zone_tier")) and str(a.get("zone_tier")).strip():
        rows.append(("zone tier 管控分区", code_label("tier", a.get("zone_tier"))))
    for key, kind, label in (("change_type", "change", "change type 变化类型"), ("activity_class", "activity", "activity class 人类活动类型"),
                             ("activity_candidates", "activity", "activity candidates 候选活动类型")):
        if not is_missing(a.get(key)) and str(a.get(key)).strip():
            rows.append((label, code_label(kind, a.get(key))))
    for key, label in (("cause", "cause 变化原因"), ("legality", "legality 合法性说明")):
        if not is_missing(a.get(key)) and str(a.get(key)).strip():
            rows.append((label, display_text(a.get(key))))
    if not is_missing(a.get("recheck")) and int(a["recheck"]):
        rows.append(("recheck 需复核", "yes 是"))
    if review:
        rows.append(("last review 最近审核", f"{display_text(review.get('time'))} · {display_text(review.get('by'))}"))
        if not is_missing(review.get("note")):
            rows.append(("note 备注", display_text(review.get("note"))))
    table = "".join(f"<tr><th style='text-align:left;padding-right:8px;white-space:nowrap'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)

    aid = display_text(a.get("alert_id"))
    images = []
    for rel, caption, width in (
        (relative_file(out_dir, a.get("chip_before")) or relative_file(out_dir, f"chips/{aid}_before.png"), "before 变化前", 160),
        (relative_file(out_dir, a.get("chip_after")) or relative_file(out_dir, f"chips/{aid}_after.png"), "after 变化后", 160),
        (relative_file(out_dir, f"figures/{aid}.png"), "index time series 指数时序", 330),
    ):
        if rel:
            images.append(_img(rel, caption, width))
    return f"<div class='redline-popup' style='font-size:12px'><table>{table}</table>{''.join(images)}</div>"


def alert_tooltip(a: Mapping[str, Any]) -> str:
    """An alert's hover text: id · type · status, codes by their bilingual labels (escaped HTML)."""
    return " · ".join(esc(t) for t in (display_text(a.get("alert_id")), code_label("type", a.get("disturbance_type")), code_label("status", a.get("status"))))


def _alert_style(a: Mapping[str, Any]) -> dict[str, Any]:
    fill = TYPE_STYLE.get(str(a.get("disturbance_type")), TYPE_STYLE["other"]).colour
    s = STATUS_STYLE.get(str(a.get("status")), _UNKNOWN_STATUS)
    style: dict[str, Any] = {"color": s.colour, "weight": s.weight, "opacity": 1.0, "fillColor": fill, "fillOpacity": 0.55}
    if s.dash:
        style["dashArray"] = s.dash
    return style


def _zone_tooltip(z: Mapping[str, Any], counties: Mapping[str, str] | None = None) -> str:
    lines = [f"<b>{esc(display_text(z.get('zone_name')))}</b>", f"{esc(display_text(z.get('zone_id')))} · {esc(category_label(z.get('category')))}"]
    if not is_missing(z.get("admin_id")):
        lines.append(f"county 行政区 {esc(county_text(z.get('admin_id'), counties or {}))}")
    if not is_missing(z.get("area_km2")):
        lines.append(f"area 面积 {float(z['area_km2']):,.2f} km²")
    if not is_missing(z.get("alerts_total")):
        lines.append(f"alerts 预警 {int(z['alerts_total'])}")
    if not is_missing(z.get("tier")):
        lines.append(f"tier 管控分区 {esc(code_label('tier', z['tier']))}")
    if not is_missing(z.get("valid_obs_fraction")):
        lines.append(f"observed 有效观测 {100 * float(z['valid_obs_fraction']):.0f} %")
    if not is_missing(z.get("clear_obs_monitor")):
        base = "" if is_missing(z.get("clear_obs_baseline")) else f" (baseline 基准期 {float(z['clear_obs_baseline']):.0f})"
        lines.append(f"clear views 晴空观测次数 {float(z['clear_obs_monitor']):.0f}{base}")
    if not is_missing(z.get("last_clear_date")):
        age = "" if is_missing(z.get("last_clear_age_days")) else f", {int(z['last_clear_age_days'])} d before the window end 距监测期末"
        lines.append(f"last clear view 最近晴空观测 {esc(display_text(z.get('last_clear_date')))}{age}")
    if not is_missing(z.get("unsupported_fraction")):
        months = "" if is_missing(z.get("unsupported_months")) or not str(z.get("unsupported_months")) else f"; not months 月份 {esc(display_text(z.get('unsupported_months')))}"
        lines.append(f"judged by the baseline 基准期可判读 {100 * (1 - float(z['unsupported_fraction'])):.0f} %{months}")
    if not is_missing(z.get("status")):
        lines.append(esc(code_label("zone_status", z["status"])))
    return "<br>".join(lines)


def _display_geometry(geom: Any, simplify: bool) -> dict[str, Any]:
    if simplify:
        simple = geom.simplify(SIMPLIFY_DEG, preserve_topology=True)
        if not simple.is_empty:
            geom = simple
    return json.loads(json.dumps(geom.__geo_interface__))


class _ZoneLayer(MacroElement):
    """All zones as one Leaflet GeoJSON layer (one feature per zone, its style by index into a
    short table and its tooltip HTML as properties), on a canvas from :data:`CANVAS_ZONES`
    zones on: one layer instead of one per zone keeps the page small and quick to open with
    thousands of zones."""

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.geoJSON({{ this.data }}, {
  pane: {{ this.pane }},
  {% if this.canvas %}renderer: L.canvas({pane: {{ this.pane }}}),{% endif %}
  style: function (f) { return {{ this.styles }}[f.properties.s]; },
  onEachFeature: function (f, layer) { layer.bindTooltip(f.properties.t, {sticky: true}); }
}).addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self, data: dict[str, Any], styles: list[dict[str, Any]], pane: str, canvas: bool) -> None:
        super().__init__()
        self._name = "ZoneLayer"
        self.data, self.styles, self.pane, self.canvas = _script_json(data), _script_json(styles), _script_json(pane), canvas


def _script_json(value: Any) -> str:
    """``value`` as JSON to write inside a ``<script>``: UTF-8 text as it is (no ``\\u`` escapes),
    ``</`` written ``<\\/`` so that no string can close the script (JSON allows ``\\/``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def _zone_features(zones: gpd.GeoDataFrame, styles: list[dict[str, Any]], counties: Mapping[str, str],
                   categories: Mapping[str, str]) -> tuple[dict[str, Any], bool, bool]:
    """The zones' GeoJSON FeatureCollection for :class:`_ZoneLayer` (display geometry simplified
    by :data:`SIMPLIFY_DEG`, coordinates to :data:`ZONE_DECIMALS` decimals), filling ``styles``;
    with whether any zone is uncategorised and any not observed."""
    simple = zones.geometry.simplify(SIMPLIFY_DEG, preserve_topology=True)
    simple = simple.where(~simple.is_empty, zones.geometry)
    simple = shapely.transform(simple.values, lambda xy: np.round(xy, ZONE_DECIMALS))
    index: dict[str, int] = {}
    features = []
    has_uncategorised = has_not_observed = False
    for z, geom in zip(zones.drop(columns="geometry").to_dict("records"), simple):
        cat = None if is_missing(z.get("category")) else str(z["category"])
        colour = categories.get(cat, UNCATEGORISED[0]) if cat else UNCATEGORISED[0]
        has_uncategorised |= cat is None or cat not in categories
        style: dict[str, Any] = {"color": colour, "weight": 2, "opacity": 0.9, "fillColor": colour, "fillOpacity": 0.1}
        if str(z.get("status")) == "not_observed":  # could not be seen: grey, hatched, dotted (no alert ≠ no change)
            style.update(dashArray=NOT_OBSERVED_DASH, fillColor=NOT_OBSERVED_FILL, className=NOT_OBSERVED_CLASS)  # the class's CSS hatches the fill
            has_not_observed = True
        key = json.dumps(style, sort_keys=True)
        if key not in index:
            index[key] = len(styles)
            styles.append(style)
        features.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(geom)), "properties": {"s": index[key], "t": _zone_tooltip(z, counties)}})
    return {"type": "FeatureCollection", "features": features}, has_uncategorised, has_not_observed


def _fit_bounds(*frames: gpd.GeoDataFrame | None, fallback: list[list[float]] | None) -> list[list[float]]:
    """[[south, west], [north, east]] of the first non-empty frame, else ``fallback``, else China."""
    for df in frames:
        if df is not None and not df.empty:
            w, s, e, n = (float(v) for v in df.total_bounds)
            if all(math.isfinite(v) for v in (w, s, e, n)):
                return [[s, w], [n, e]]
    return fallback or [[18.0, 73.0], [54.0, 135.0]]


def _finish_page(page: str, hook: str) -> str:
    """``<meta charset="utf-8">`` first in ``<head>`` (replacing folium's http-equiv variant) and
    the test hook in a ``<script>`` at the very end of the page."""
    page = page.replace('<meta http-equiv="content-type" content="text/html; charset=UTF-8" />', "")
    page = page.replace("<head>", '<head>\n<meta charset="utf-8">\n<title>redline map 生态保护红线监管</title>', 1)
    cut = page.rfind("</html>")
    return page[:cut] + f"<script>\n{hook}\n</script>\n" + page[cut:]


def _online_layers(m: folium.Map, *, osm: bool, tianditu_key: str | None) -> list[folium.TileLayer]:
    """Online tile layers, hidden when the page opens (so nothing is requested until a reviewer
    ticks one), below the composite."""
    layers = []
    if osm:
        layers.append(folium.TileLayer(OSM_URL, name=OSM_NAME, attr=OSM_ATTR, overlay=True, show=False, max_zoom=19))
    if tianditu_key:
        if not tianditu_key.isalnum():
            raise ValueError(f"tianditu key {tianditu_key!r}: expected letters and digits only (the tk of a Tianditu key)")
        for name, (svc, layer) in ((TIANDITU_NAME, ("img", "img")), (TIANDITU_LABEL_NAME, ("cia", "cia"))):
            layers.append(folium.TileLayer(TIANDITU_URL % (svc, layer, tianditu_key), name=name, attr=TIANDITU_ATTR, overlay=True,
                                           show=False, subdomains="01234567", max_zoom=18))
    for layer in layers:
        layer.add_to(m)
    return layers


#: an online layer that cannot load (offline) removes nothing and raises nothing: one quiet note
_QUIET_TILES_JS = """
(function (layers) {
  var note = document.getElementById('redline-offline-note');
  layers.forEach(function (layer) {
    layer.on('tileerror', function () {
      if (note && note.style.display !== 'block') { note.style.display = 'block'; }
    });
  });
})(window.redlineMap.onlineLayers);
"""


#: the map's ready state: every layer added (the scripts above ran) and the next frame drawn
_READY_JS = """
requestAnimationFrame(function () { requestAnimationFrame(function () { window.redlineMapReady = true; }); });
"""


def render_map(out_dir: Path, *, register: Path | None = None, online_basemaps: bool = True, tianditu_key: str | None = None) -> Path:
    """Write ``out_dir/map.html``, an interactive map of a finished scan that works offline.

    Reads from ``out_dir``:

    * ``zones.geojson`` (required) — zone polygons, EPSG:4326, ``zone_id, zone_name, category,
      admin_id`` (plus optional zone statistics ``area_km2, alerts_total, valid_obs_fraction,
      status``, and ``tier, clear_obs_monitor, clear_obs_baseline, last_clear_date,
      last_clear_age_days``, shown in the tooltip); zones whose ``status`` is ``not_observed``
      are drawn grey, hatched and dotted (SVG class ``redline-not-observed``) with a legend entry;
    * ``alerts.geojson`` — alert polygons, EPSG:4326, ``alert_id, zone_id, zone_name, admin_id,
      area_m2`` (m²), ``centroid_lon, centroid_lat`` (degrees), ``first_detected, last_observed``
      (ISO dates), ``confidence, disturbance_type, magnitude, n_observations, status``; ignored
      when ``register`` is given: then the register's ``alerts`` layer (same fields, statuses
      authoritative) is used, limited to alerts in this map's zones, and its ``review_history``
      gives each popup the latest review;
    * ``admin_units.geojson`` (optional) — county polygons, EPSG:4326, ``admin_id, admin_name``
      (the names also name each alert's and zone's county in popups and tooltips);
    * ``rasters/true_colour_monitor.tif`` (optional) — RGB composite (uint8, nodata 0, any CRS),
      warped to EPSG:3857 and written next to the page as ``map_composite.png``, the offline base;
    * ``chips/<alert_id>_before.png``, ``chips/<alert_id>_after.png``,
      ``figures/<alert_id>.png`` (optional) — shown in the alert's popup.

    ``online_basemaps`` adds OpenStreetMap, and ``tianditu_key`` Tianditu imagery and labels, as
    optional layers that are off when the page opens; codes (type, status, confidence, change
    type, activity classes, tier, zone status) are shown by their bilingual vocabulary labels; offline they fail quietly (a note in the
    legend, no dialog, the rest of the map unaffected).

    Leaflet, jQuery, Bootstrap and Font Awesome are copied to ``out_dir/lib`` and linked
    relatively; the page fetches nothing from the network. Every string from the inputs is
    HTML-escaped. The zones are one GeoJSON layer (one feature each), on a canvas from
    :data:`CANVAS_ZONES` zones on. The page defines ``window.redlineMap = {map, alertLayer,
    zoneLayer, adminLayer, compositeLayer, onlineLayers}`` (Leaflet objects) for tests, and
    ``window.redlineMapReady = true`` once its layers are drawn. Returns the page's path.
    """
    out_dir = Path(out_dir)
    zones_path = out_dir / "zones.geojson"
    if not zones_path.exists():
        raise FileNotFoundError(f"{zones_path} not found; render_map needs a finished scan's output folder")
    zones = read_layer(zones_path)
    admin_path = out_dir / "admin_units.geojson"
    admin = read_layer(admin_path) if admin_path.exists() else None
    zone_ids = {str(z) for z in zones["zone_id"]} if "zone_id" in zones else set()
    alerts = read_alerts(out_dir, register, zone_ids)
    reviews = latest_reviews(register) if register is not None else {}
    counties = county_names(admin)
    assets = copy_assets(out_dir)

    m = folium.Map(tiles=None, control_scale=True)
    m.default_js, m.default_css = list(assets.js), list(assets.css)  # per instance: the class keeps folium's CDN links
    for key, z_index in _PANES.items():
        CustomPane(_pane(key), z_index=z_index).add_to(m)

    composite_layer = None
    tif = out_dir / COMPOSITE_TIF
    composite = write_composite_png(tif, out_dir / COMPOSITE_PNG) if tif.exists() else None
    if composite is not None:
        composite_layer = folium.raster_layers.ImageOverlay(
            image="data:,", bounds=composite.bounds, name=COMPOSITE_NAME, opacity=1.0, interactive=False, pane=_pane("composite"),
        )
        composite_layer.url = quote(composite.png.name)  # relative link; folium would embed a file path it is given
        composite_layer.add_to(m)
    elif not tif.exists():
        log.info("%s not found; the map has no base image (no network basemap is used)", tif)

    online = _online_layers(m, osm=online_basemaps, tianditu_key=tianditu_key)

    categories = category_colours(zones["category"] if "category" in zones else [])
    fg_zones = folium.FeatureGroup(name=ZONES_NAME, show=True).add_to(m)
    zone_styles: list[dict[str, Any]] = []
    zone_data, has_uncategorised, has_not_observed = _zone_features(zones, zone_styles, counties, categories)
    zone_layer = _ZoneLayer(zone_data, zone_styles, _pane("zones"), canvas=len(zones) >= CANVAS_ZONES)
    zone_layer.add_to(fg_zones)

    fg_admin = None
    if admin is not None:
        fg_admin = folium.FeatureGroup(name=ADMIN_NAME, show=True).add_to(m)
        for a in admin.to_dict("records"):
            gj = folium.GeoJson(_display_geometry(a["geometry"], True), style_function=lambda _f: dict(ADMIN_STYLE), pane=_pane("admin"))
            folium.Tooltip(f"{esc(display_text(a.get('admin_name')))} ({esc(display_text(a.get('admin_id')))})", sticky=True).add_to(gj)
            gj.add_to(fg_admin)

    fg_alerts = folium.FeatureGroup(name=ALERTS_NAME, show=True).add_to(m)
    type_counts: Counter[str] = Counter()
    status_counts: Counter[str] = Counter()
    for a in alerts.to_dict("records"):
        dtype = str(a.get("disturbance_type"))
        type_counts[dtype if dtype in TYPE_STYLE else "other"] += 1
        status_counts[str(a.get("status"))] += 1
        if str(a.get("status")) not in STATUS_STYLE:
            log.warning("alert %s: unknown status %r drawn with a plain outline", a.get("alert_id"), a.get("status"))
        gj = folium.GeoJson(_display_geometry(a["geometry"], False), style_function=lambda _f, s=_alert_style(a): s, pane=_pane("alerts"))
        review = reviews.get(str(a.get("alert_id")))
        folium.Popup(_popup_html(a, out_dir, review, counties), max_width=460).add_to(gj)
        folium.Tooltip(alert_tooltip(a)).add_to(gj)
        gj.add_to(fg_alerts)

    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds(_fit_bounds(zones, alerts, fallback=composite.bounds if composite else None))
    root = m.get_root()
    if has_not_observed:
        root.html.add_child(folium.Element(NOT_OBSERVED_HATCH))
    root.html.add_child(folium.Element(legend_html(
        categories, type_counts=type_counts, status_counts=status_counts, has_admin=fg_admin is not None,
        has_uncategorised=has_uncategorised, has_not_observed=has_not_observed,
    )))
    hook = "window.redlineMap = {map: %s, alertLayer: %s, zoneLayer: %s, adminLayer: %s, compositeLayer: %s, onlineLayers: [%s]};" % (
        m.get_name(), fg_alerts.get_name(), zone_layer.get_name(),
        fg_admin.get_name() if fg_admin is not None else "null",
        composite_layer.get_name() if composite_layer is not None else "null",
        ", ".join(layer.get_name() for layer in online),
    ) + _QUIET_TILES_JS + _READY_JS
    page = _finish_page(root.render(), hook)
    path = out_dir / MAP_HTML
    path.write_text(page, encoding="utf-8")
    log.info("map: %s (%d alerts, %d zones)", path, len(alerts), len(zones))
    return path
