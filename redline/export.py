"""Field-check exports of alerts for UAV and ground teams (卫星普查 → 无人机详查 → 地面核查).

- ``geojson``: alert polygons with their fields (EPSG:4326).
- ``gpx`` (GPX 1.1): a waypoint at each alert centroid (name = alert id, description = zone,
  type, area, date) and the alert outline as a track.
- ``kml`` (KML 2.2): a Placemark per alert holding its centroid and its polygon.
- ``csv``: one row per alert in the column order of a problem ledger (问题台账), with English or
  Chinese (``lang="zh"``) headers, UTF-8 with BOM so spreadsheet programs show Chinese text.
"""

from __future__ import annotations

from pathlib import Path

import xml.etree.ElementTree as ET

import geopandas as gpd
import pandas as pd
import shapely

__all__ = ["FORMATS", "LEDGER_COLUMNS", "export_alerts"]

FORMATS = ("geojson", "gpx", "kml", "csv")

#: (field, English header, Chinese header) in ledger order
LEDGER_COLUMNS = (
    ("seq", "no", "序号"),
    ("alert_id", "alert_id", "预警编号"),
    ("admin_id", "admin_id", "行政区代码"),
    ("zone_id", "zone_id", "红线区编号"),
    ("zone_name", "zone_name", "红线区名称"),
    ("disturbance_type", "disturbance_type", "变化类型"),
    ("first_detected", "first_detected", "首次发现日期"),
    ("last_observed", "last_observed", "最近观测日期"),
    ("area_m2", "area_m2", "面积(平方米)"),
    ("centroid_lon", "centroid_lon", "中心经度"),
    ("centroid_lat", "centroid_lat", "中心纬度"),
    ("confidence", "confidence", "置信度"),
    ("status", "status", "核查状态"),
)

_TYPE_ZH = {"clearing": "植被清除", "construction": "建设占用", "mining": "采矿采石", "fire": "火烧", "water_loss": "水域减少", "other": "其他"}
_STATUS_ZH = {"new": "新发现", "under_review": "审核中", "field_check": "实地核查", "confirmed": "已确认", "dismissed": "已排除"}


def _description(a: pd.Series) -> str:
    return f"zone {a['zone_id']} {a['zone_name'] or ''}; {a['disturbance_type']}; {float(a['area_m2']):.0f} m2; first {a['first_detected']}"


def _rings(geom: shapely.Geometry) -> list[list[tuple[float, float]]]:
    return [list(p.exterior.coords) for p in getattr(geom, "geoms", [geom])]


def _write_gpx(a: gpd.GeoDataFrame, points: gpd.GeoDataFrame, path: Path) -> None:
    ns = "http://www.topografix.com/GPX/1/1"
    root = ET.Element("gpx", {"version": "1.1", "creator": "redline", "xmlns": ns})
    for p in points.itertuples():
        wpt = ET.SubElement(root, "wpt", {"lat": f"{p.geometry.y:.7f}", "lon": f"{p.geometry.x:.7f}"})
        ET.SubElement(wpt, "name").text = p.name
        ET.SubElement(wpt, "desc").text = p.desc
    for (_, row), p in zip(a.iterrows(), points.itertuples()):
        trk = ET.SubElement(root, "trk")
        ET.SubElement(trk, "name").text = row["alert_id"]
        ET.SubElement(trk, "desc").text = p.desc
        for ring in _rings(row.geometry):
            seg = ET.SubElement(trk, "trkseg")
            for x, y in ring:
                ET.SubElement(seg, "trkpt", {"lat": f"{y:.7f}", "lon": f"{x:.7f}"})
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _write_kml(a: gpd.GeoDataFrame, points: gpd.GeoDataFrame, path: Path) -> None:
    ns = "http://www.opengis.net/kml/2.2"
    root = ET.Element("kml", {"xmlns": ns})
    doc = ET.SubElement(root, "Document")
    ET.SubElement(doc, "name").text = "redline alerts"
    for (_, row), p in zip(a.iterrows(), points.itertuples()):
        pm = ET.SubElement(doc, "Placemark")
        ET.SubElement(pm, "name").text = row["alert_id"]
        ET.SubElement(pm, "description").text = p.desc
        ext = ET.SubElement(pm, "ExtendedData")
        for field in ("zone_id", "zone_name", "disturbance_type", "area_m2", "first_detected", "status"):
            data = ET.SubElement(ext, "Data", {"name": field})
            ET.SubElement(data, "value").text = "" if row[field] is None else str(row[field])
        multi = ET.SubElement(pm, "MultiGeometry")
        ET.SubElement(ET.SubElement(multi, "Point"), "coordinates").text = f"{p.geometry.x:.7f},{p.geometry.y:.7f}"
        for ring in _rings(row.geometry):
            poly = ET.SubElement(multi, "Polygon")
            lr = ET.SubElement(ET.SubElement(poly, "outerBoundaryIs"), "LinearRing")
            ET.SubElement(lr, "coordinates").text = " ".join(f"{x:.7f},{y:.7f}" for x, y in ring)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def export_alerts(alerts: gpd.GeoDataFrame, path: Path, fmt: str, *, lang: str = "en") -> Path:
    """Write ``alerts`` (EPSG:4326) to ``path`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    path = Path(path)
    path.unlink(missing_ok=True)
    a = alerts.to_crs(4326).sort_values("alert_id").reset_index(drop=True)
    points = gpd.GeoDataFrame(
        {"name": a["alert_id"], "desc": a.apply(_description, axis=1) if len(a) else []},
        geometry=gpd.points_from_xy(a["centroid_lon"], a["centroid_lat"]), crs=4326,
    )
    if fmt == "geojson":
        path.write_text(a.to_json(drop_id=True, ensure_ascii=False), encoding="utf-8")
    elif fmt == "gpx":
        _write_gpx(a, points, path)
    elif fmt == "kml":
        _write_kml(a, points, path)
    else:
        table = pd.DataFrame({"seq": range(1, len(a) + 1)})
        for field, _, _ in LEDGER_COLUMNS[1:]:
            table[field] = a[field].values
        table["area_m2"] = table["area_m2"].astype(float).round(0)
        if lang == "zh":
            table["disturbance_type"] = table["disturbance_type"].map(_TYPE_ZH).fillna(table["disturbance_type"])
            table["status"] = table["status"].map(_STATUS_ZH).fillna(table["status"])
        headers = [zh if lang == "zh" else en for _, en, zh in LEDGER_COLUMNS]
        table.columns = headers
        table.to_csv(path, index=False, encoding="utf-8-sig")
    return path
