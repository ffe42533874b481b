"""The reviewers' map (folium): offline base composite, zones, counties, alerts, legend."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from maps._offline import copy_assets

log = logging.getLogger(__name__)

#: alert fill colour by disturbance type, with bilingual legend labels
TYPE_STYLE = {
    "clearing": ("#e6550d", "clearing 林地砍伐/植被清除"),
    "construction": ("#756bb1", "construction 建设占用"),
    "mining": ("#8c6d31", "mining 采矿采石"),
    "fire": ("#de2d26", "fire 火烧迹地"),
    "water_loss": ("#3182bd", "water loss 水域/湿地减少"),
    "other": ("#636363", "other 其他"),
}
#: alert outline by review status: (colour, weight, dash)
STATUS_STYLE = {
    "new": ("#ff0000", 3, None, "new 新发现"),
    "under_review": ("#ff9900", 3, None, "under review 审核中"),
    "field_check": ("#9900cc", 3, "6 3", "field check 实地核查"),
    "confirmed": ("#000000", 3, None, "confirmed 已确认"),
    "dismissed": ("#999999", 2, "2 4", "dismissed 已排除"),
}
ZONE_PALETTE = ("#31a354", "#74c476", "#006d2c", "#a1d99b", "#238b45", "#41ab5d", "#00441b")


def esc(value: object) -> str:
    """Escape text from input files for HTML *and* for the JS template literals folium emits
    (backtick and ``${`` would otherwise break out of them)."""
    return html.escape("" if value is None else str(value), quote=True).replace("`", "&#96;").replace("$", "&#36;")


def _read_alerts(out_dir: Path, register: Path | None) -> gpd.GeoDataFrame:
    if register is not None and Path(register).exists() and "alerts" in {n for n, _ in pyogrio.list_layers(register)}:
        return gpd.read_file(register, layer="alerts", engine="pyogrio").to_crs(4326)
    path = out_dir / "alerts.geojson"
    if path.exists():
        return gpd.read_file(path).to_crs(4326) if json.loads(path.read_text(encoding="utf-8")).get("features") else gpd.GeoDataFrame(geometry=[], crs=4326)
    return gpd.GeoDataFrame(geometry=[], crs=4326)


def _composite_overlay(tif: Path) -> folium.raster_layers.ImageOverlay | None:
    """Warp the uint8 RGB composite to Web Mercator (Leaflet's pixel space) and embed it as PNG."""
    import matplotlib.image

    with rasterio.open(tif) as src:
        dst_crs = "EPSG:3857"
        transform, width, height = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        data = np.zeros((src.count, height, width), dtype="uint8")
        for b in range(src.count):
            reproject(rasterio.band(src, b + 1), data[b], src_transform=src.transform, src_crs=src.crs,
                      dst_transform=transform, dst_crs=dst_crs, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        west, south, east, north = transform_bounds(dst_crs, "EPSG:4326", transform.c, transform.f + transform.e * height, transform.c + transform.a * width, transform.f)
    rgba = np.dstack([data[0], data[1], data[2], np.where(data.any(0), 255, 0).astype("uint8")])
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgba, format="png")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return folium.raster_layers.ImageOverlay(image=url, bounds=[[south, west], [north, east]], name="Composite 合成影像 (monitor period)", opacity=1.0, interactive=False)


def _img(out_dir: Path, rel: str, label: str) -> str:
    return f'<figure style="display:inline-block;margin:2px"><img src="{esc(rel)}" width="150"><figcaption>{esc(label)}</figcaption></figure>' if (out_dir / rel).exists() else ""


def _popup(a: dict, out_dir: Path) -> str:
    area = float(a.get("area_m2") or 0)
    rows = [
        ("alert 预警编号", a.get("alert_id")),
        ("zone 红线区", f"{a.get('zone_name') or ''} ({a.get('zone_id')})"),
        ("type 类型", a.get("disturbance_type")),
        ("first detected 首次发现", a.get("first_detected")),
        ("last observed 最近观测", a.get("last_observed")),
        ("area 面积", f"{area:,.0f} m² ({area / 1e4:.2f} ha)"),
        ("confidence 置信度", a.get("confidence")),
        ("status 状态", a.get("status")),
    ]
    table = "".join(f"<tr><th style='text-align:left;padding-right:6px'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    aid = str(a.get("alert_id"))
    imgs = _img(out_dir, f"chips/{aid}_before.png", "before 变化前") + _img(out_dir, f"chips/{aid}_after.png", "after 变化后")
    fig = _img(out_dir, f"figures/{aid}.png", "index time series 指数时序")
    return f"<div class='redline-popup'><table>{table}</table>{imgs}{fig}</div>"


def _legend(categories: dict[str, str]) -> str:
    items = "".join(f"<div><span style='display:inline-block;width:12px;height:12px;background:{c};margin-right:4px'></span>{esc(lbl)}</div>" for c, lbl in TYPE_STYLE.values())
    status = "".join(
        f"<div><span style='display:inline-block;width:12px;height:12px;border:{w}px {'dashed' if d else 'solid'} {c};margin-right:4px'></span>{esc(lbl)}</div>"
        for c, w, d, lbl in STATUS_STYLE.values()
    )
    zones = "".join(f"<div><span style='display:inline-block;width:12px;height:12px;border:2px solid {col};margin-right:4px'></span>{esc(cat)}</div>" for cat, col in categories.items())
    return (
        "<div id='redline-legend' style='position:fixed;bottom:24px;left:12px;z-index:9999;background:white;padding:8px;"
        "font:12px sans-serif;border:1px solid #999;border-radius:4px;max-height:60%;overflow:auto'>"
        f"<b>Alert type 预警类型</b>{items}<b>Review status 核查状态</b>{status}<b>Red-line zones 生态保护红线</b>{zones}</div>"
    )


def render_map(out_dir: Path, *, register: Path | None = None) -> Path:
    """Write ``out_dir/map.html``: an offline interactive map of a finished scan.

    Reads ``zones.geojson``, ``admin_units.geojson`` (optional), ``alerts.geojson`` — or the
    register's ``alerts`` layer when ``register`` is given, so reviews show without rescanning —
    and ``rasters/true_colour_monitor.tif`` (optional, uint8 RGB, any CRS) as the offline base.
    Leaflet and jQuery are copied to ``out_dir/lib``; nothing is fetched from the network.
    Every string from the inputs is escaped. Returns the page's path.
    """
    out_dir = Path(out_dir)
    js, css = copy_assets(out_dir)
    zones = gpd.read_file(out_dir / "zones.geojson").to_crs(4326)
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    m.default_js, m.default_css = js, css
    tif = out_dir / "rasters" / "true_colour_monitor.tif"
    if tif.exists():
        overlay = _composite_overlay(tif)
        if overlay is not None:
            overlay.add_to(m)

    admin_path = out_dir / "admin_units.geojson"
    if admin_path.exists():
        admin = gpd.read_file(admin_path).to_crs(4326)
        fg_admin = folium.FeatureGroup(name="Counties 行政区", show=True).add_to(m)
        for a in admin.itertuples():
            gj = folium.GeoJson(a.geometry.__geo_interface__, style_function=lambda _f: {"color": "#444444", "weight": 2, "dashArray": "8 6", "fill": False})
            folium.Tooltip(f"{esc(getattr(a, 'admin_name', ''))} ({esc(a.admin_id)})").add_to(gj)
            gj.add_to(fg_admin)

    categories = {}
    for cat in sorted({str(c) for c in zones.get("category", []) if c is not None}):
        categories[cat] = ZONE_PALETTE[len(categories) % len(ZONE_PALETTE)]
    fg_zones = folium.FeatureGroup(name="Red-line zones 生态保护红线", show=True).add_to(m)
    for z in zones.itertuples():
        col = categories.get(str(getattr(z, "category", None)), ZONE_PALETTE[0])
        gj = folium.GeoJson(z.geometry.__geo_interface__, style_function=lambda _f, c=col: {"color": c, "weight": 2, "fillColor": c, "fillOpacity": 0.08})
        extra = f"<br>status: {esc(z.status)}" if hasattr(z, "status") else ""
        folium.Tooltip(f"<b>{esc(z.zone_name)}</b><br>{esc(z.zone_id)} · {esc(getattr(z, 'category', ''))}{extra}").add_to(gj)
        gj.add_to(fg_zones)

    alerts = _read_alerts(out_dir, register)
    fg_alerts = folium.FeatureGroup(name="Alerts 预警图斑", show=True).add_to(m)
    for a in alerts.to_dict("records"):
        fill = TYPE_STYLE.get(a.get("disturbance_type"), TYPE_STYLE["other"])[0]
        line, weight, dash, _ = STATUS_STYLE.get(a.get("status"), STATUS_STYLE["new"])
        style = {"color": line, "weight": weight, "dashArray": dash, "fillColor": fill, "fillOpacity": 0.6}
        gj = folium.GeoJson(a["geometry"].__geo_interface__, style_function=lambda _f, s=style: s)
        folium.Popup(_popup(a, out_dir), max_width=420).add_to(gj)
        folium.Tooltip(f"{esc(a.get('alert_id'))} · {esc(a.get('disturbance_type'))} · {esc(a.get('status'))}").add_to(gj)
        gj.add_to(fg_alerts)

    folium.LayerControl(collapsed=False).add_to(m)
    w, s, e, n = zones.total_bounds
    m.fit_bounds([[s, w], [n, e]])
    root = m.get_root()
    root.header.add_child(folium.Element('<meta charset="utf-8"><title>redline map</title>'))
    root.html.add_child(folium.Element(_legend(categories)))
    hook = (
        "window.addEventListener('load', function () { window.redlineMap = {map: %s, alertLayer: %s, zoneLayer: %s}; });"
        % (m.get_name(), fg_alerts.get_name(), fg_zones.get_name())
    )
    root.script.add_child(folium.Element(hook))
    path = out_dir / "map.html"
    m.save(str(path))
    return path
