"""Field-check exports of alerts for UAV and ground teams (卫星普查 → 无人机详查 → 地面核查).

- ``geojson``: alert polygons with their fields (EPSG:4326), RFC 7946 (:mod:`redline.geojson`:
  feature id = alert id, right-hand rings, 7 decimals).
- ``gpx`` (GPX 1.1): a waypoint at each alert centroid (name = alert id, description = zone,
  type, area, date) and the alert outline as a track (one segment per ring).
- ``kml`` (KML 2.2): folder ``waypoints`` with one Placemark holding a Point at each alert
  centroid (name = alert id: GPS receivers and gpsbabel read these as waypoints, which they do
  not for a Point inside a MultiGeometry), and folder ``outlines`` with one Placemark per alert
  holding its polygon(s), holes as inner boundaries.
- ``csv``: one row per alert in the column order of a problem ledger (问题台账), with English or
  Chinese (``lang="zh"``) headers, UTF-8 with BOM so spreadsheet programs show Chinese text.

Coordinates are WGS 84 longitude/latitude with 7 decimals (about 1 cm) in every format.
"""

from __future__ import annotations

from pathlib import Path

import xml.etree.ElementTree as ET

import geopandas as gpd
import pandas as pd
import shapely

from redline.geojson import rfc7946_geometries, write_geojson
from redline.vocabulary import DISTURBANCE_LABELS, STATUS_LABELS

__all__ = ["FORMATS", "LEDGER_COLUMNS", "LEDGER_FORMATS", "MU_M2", "MEDIA_TYPES", "export_alerts", "ledger_table", "write_ledger", "ledger_context"]

FORMATS = ("geojson", "gpx", "kml", "csv")
#: media type of each written format (IANA: application/geo+json is RFC 7946's, GPX and KML
#: their registered types; the ledger's XLSX is Office Open XML)
MEDIA_TYPES = {
    "geojson": "application/geo+json", "gpx": "application/gpx+xml", "kml": "application/vnd.google-earth.kml+xml",
    "csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

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

_TYPE_ZH = {k: zh for k, (zh, _) in DISTURBANCE_LABELS.items()}
_STATUS_ZH = {k: zh for k, (zh, _) in STATUS_LABELS.items()}


def _description(a: pd.Series) -> str:
    return f"zone {a['zone_id']} {a['zone_name'] or ''}; {a['disturbance_type']}; {float(a['area_m2']):.0f} m2; first {a['first_detected']}"


def _polygons(geom: shapely.Geometry | None) -> list[shapely.Polygon]:
    """The polygons of an outline (none for a missing geometry)."""
    if geom is None or geom.is_empty:
        return []
    return [p for p in getattr(geom, "geoms", [geom]) if isinstance(p, shapely.Polygon)]


def _coords(ring: shapely.LinearRing) -> list[tuple[float, float]]:
    return [(x, y) for x, y, *_ in ring.coords]


def _write_gpx(a: gpd.GeoDataFrame, points: gpd.GeoDataFrame, path: Path) -> None:
    """GPX 1.1 (topografix.com/GPX/1/1): every ``wpt`` before every ``trk``, as the schema's
    sequence requires."""
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
        for poly in _polygons(row.geometry):
            for ring in (poly.exterior, *poly.interiors):
                seg = ET.SubElement(trk, "trkseg")
                for x, y in _coords(ring):
                    ET.SubElement(seg, "trkpt", {"lat": f"{y:.7f}", "lon": f"{x:.7f}"})
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _kml_ring(parent: ET.Element, boundary: str, ring: shapely.LinearRing) -> None:
    lr = ET.SubElement(ET.SubElement(parent, boundary), "LinearRing")
    ET.SubElement(lr, "coordinates").text = " ".join(f"{x:.7f},{y:.7f}" for x, y in _coords(ring))


def _write_kml(a: gpd.GeoDataFrame, points: gpd.GeoDataFrame, path: Path) -> None:
    """KML 2.2 (OGC 07-147r2): a folder of one Point Placemark per alert (the waypoints), then a
    folder of one Placemark per alert with its polygons (outer boundary counter-clockwise, holes
    as inner boundaries, as KML's LinearRing asks, §10.8 / Google's KML reference)."""
    ns = "http://www.opengis.net/kml/2.2"
    root = ET.Element("kml", {"xmlns": ns})
    doc = ET.SubElement(root, "Document")
    ET.SubElement(doc, "name").text = "redline alerts"
    waypoints = ET.SubElement(doc, "Folder")
    ET.SubElement(waypoints, "name").text = "waypoints"
    outlines = ET.SubElement(doc, "Folder")
    ET.SubElement(outlines, "name").text = "outlines"
    for (_, row), p in zip(a.iterrows(), points.itertuples()):
        pm = ET.SubElement(waypoints, "Placemark")
        ET.SubElement(pm, "name").text = row["alert_id"]
        ET.SubElement(pm, "description").text = p.desc
        ext = ET.SubElement(pm, "ExtendedData")
        for field in ("zone_id", "zone_name", "disturbance_type", "area_m2", "first_detected", "status"):
            data = ET.SubElement(ext, "Data", {"name": field})
            ET.SubElement(data, "value").text = "" if row[field] is None else str(row[field])
        ET.SubElement(ET.SubElement(pm, "Point"), "coordinates").text = f"{p.geometry.x:.7f},{p.geometry.y:.7f}"
        polygons = _polygons(row.geometry)
        if not polygons:
            continue
        outline = ET.SubElement(outlines, "Placemark")
        ET.SubElement(outline, "name").text = row["alert_id"]
        holder = ET.SubElement(outline, "MultiGeometry") if len(polygons) > 1 else outline
        for poly in polygons:
            kp = ET.SubElement(holder, "Polygon")
            _kml_ring(kp, "outerBoundaryIs", poly.exterior)
            for hole in poly.interiors:
                _kml_ring(kp, "innerBoundaryIs", hole)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def export_alerts(alerts: gpd.GeoDataFrame, path: Path, fmt: str, *, lang: str = "en") -> Path:
    """Write ``alerts`` (EPSG:4326) to ``path`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    path = Path(path)
    path.unlink(missing_ok=True)
    a = alerts.sort_values("alert_id").reset_index(drop=True)
    a = a.set_geometry(rfc7946_geometries(a.geometry))
    points = gpd.GeoDataFrame(
        {"name": a["alert_id"], "desc": a.apply(_description, axis=1) if len(a) else []},
        geometry=gpd.points_from_xy(a["centroid_lon"], a["centroid_lat"]), crs=4326,
    )
    if fmt == "geojson":
        write_geojson(a, path, id_column="alert_id")
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


# --------------------------------------------------------------------------- ledger (台账)

LEDGER_FORMATS = ("csv", "xlsx")

#: Square metres in one 亩 (市亩): 1 亩 = 60 平方丈 = 10 000/15 m² ≈ 666.67 m², i.e. 15 亩 = 1 公顷
#: (国务院《关于统一我国计量制度的命令》, 1959, 市制; kept as the land-area unit of Chinese land
#: statistics).
MU_M2 = 10000.0 / 15.0

_RESULT_ZH = {"pass": "通过", "fail": "不通过"}

#: (field, English header, Chinese header) of the ledger, in order; the per-step review columns
#: follow the pattern ``{step}_by / _time / _result`` for each of the three review steps.
_LEDGER_HEAD = (
    ("no", "no", "序号"),
    ("alert_id", "alert_id", "图斑编号"),
    ("lon_cgcs2000", "longitude (CGCS2000)", "中心点经度(CGCS2000)"),
    ("lat_cgcs2000", "latitude (CGCS2000)", "中心点纬度(CGCS2000)"),
    ("area_m2", "area (m²)", "面积(平方米)"),
    ("area_mu", "area (mu)", "面积(亩)"),
    ("activity_class", "activity class", "人类活动类型"),
    ("activity_candidates", "activity candidates", "候选活动类型"),
    ("change_type", "change type", "变化类型"),
    ("disturbance_type", "spectral change", "光谱变化类别"),
    ("zone_id", "zone code", "红线区编码"),
    ("zone_name", "zone name", "红线区名称"),
    ("zone_tier", "zone tier", "管控分区"),
    ("admin_id", "county code", "县级行政区代码"),
    ("admin_name", "county", "县级行政区名称"),
    ("first_detected", "first detected", "首次发现日期"),
    ("before_dates", "before image dates", "前时相影像日期"),
    ("after_dates", "after image dates", "后时相影像日期"),
    ("chip_before", "before chip", "前时相影像截图"),
    ("chip_after", "after chip", "后时相影像截图"),
)
_LEDGER_TAIL = (
    ("status", "review status", "核查状态"),
    ("cause", "cause", "问题成因"),
    ("legality", "legality note", "合法性说明"),
    ("rectification", "rectification status", "整改销号状态"),
    ("recheck", "recheck flag", "复核标记"),
)


def _step_columns() -> tuple[tuple[str, str, str], ...]:
    from redline.vocabulary import REVIEW_STEPS

    out = []
    for step, (zh, en) in REVIEW_STEPS.items():
        out += [(f"{step}_by", f"{en} by", f"{zh}人"), (f"{step}_time", f"{en} time", f"{zh}时间"), (f"{step}_result", f"{en} result", f"{zh}结果")]
    return tuple(out)


def ledger_columns() -> tuple[tuple[str, str, str], ...]:
    """(field, English header, Chinese header) of every ledger column, in order."""
    return (*_LEDGER_HEAD, *_step_columns(), *_LEDGER_TAIL)


def ledger_table(
    alerts: gpd.GeoDataFrame,
    history: pd.DataFrame,
    *,
    lang: str = "en",
    zones: pd.DataFrame | None = None,
    admin: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The 台账: one row per alert, headers and labels in ``lang`` (``en`` | ``zh``).

    Parameters
    ----------
    alerts
        Register alerts (EPSG:4326).
    history
        The register's review history (for the per-step who / when / result).
    zones, admin
        Optional tables with ``zone_id`` [+ ``tier``] and ``admin_id, admin_name`` (e.g. a scan's
        ``zones.geojson`` / ``admin_units.geojson``); their columns are empty when not given.

    Coordinates are the alert centroids in CGCS2000 geographic (EPSG:4490, degrees); areas in
    m² (measured in UTM by the scan) and 亩 (:data:`MU_M2`).
    """
    from redline.alerts.activity import activity_label, split_codes
    from redline.register import steps_state
    from redline.vocabulary import CHANGE_TYPES, RECTIFICATION_STATUSES

    a = alerts.sort_values("alert_id").reset_index(drop=True)
    pts = gpd.GeoSeries(gpd.points_from_xy(a["centroid_lon"].astype(float), a["centroid_lat"].astype(float)), crs=4326).to_crs(4490)
    zh = lang == "zh"
    sep = "、" if zh else "; "
    t = pd.DataFrame({"no": range(1, len(a) + 1), "alert_id": a["alert_id"].values})
    t["lon_cgcs2000"], t["lat_cgcs2000"] = pts.x.round(7).values, pts.y.round(7).values
    t["area_m2"] = a["area_m2"].astype(float).round(1).values
    t["area_mu"] = (a["area_m2"].astype(float) / MU_M2).round(2).values
    t["activity_class"] = [activity_label(c if isinstance(c, str) else None, lang) for c in a["activity_class"]]
    t["activity_candidates"] = [sep.join(activity_label(c, lang) for c in split_codes(v)) for v in a["activity_candidates"]]
    t["change_type"] = [CHANGE_TYPES[c][0 if zh else 1] if c in CHANGE_TYPES else "" for c in a["change_type"]]
    t["disturbance_type"] = [(_TYPE_ZH.get(d, d) if zh else d) for d in a["disturbance_type"]]
    for col in ("zone_id", "zone_name", "admin_id", "first_detected", "before_dates", "after_dates", "chip_before", "chip_after"):
        t[col] = a[col].values
    tiers = dict(zip(zones["zone_id"], zones["tier"])) if zones is not None and "tier" in zones else {}
    t["zone_tier"] = [tiers.get(z) for z in a["zone_id"]]
    names = dict(zip(admin["admin_id"].astype(str), admin["admin_name"])) if admin is not None and "admin_name" in admin else {}
    t["admin_name"] = [names.get(str(x)) for x in a["admin_id"]]
    for step, _, _ in _step_columns()[::3]:
        key = step.removesuffix("_by")
        states = [steps_state(history, aid).get(key) for aid in a["alert_id"]]
        t[f"{key}_by"] = [s["by"] if s else None for s in states]
        t[f"{key}_time"] = [s["time"] if s else None for s in states]
        t[f"{key}_result"] = [(_RESULT_ZH.get(s["result"], s["result"]) if zh else s["result"]) if s else None for s in states]
    t["status"] = [(_STATUS_ZH.get(x, x) if zh else x) for x in a["status"]]
    t["cause"], t["legality"] = a["cause"].values, a["legality"].values
    t["rectification"] = [((_STATUS_ZH.get(x, x) if zh else x) if x in RECTIFICATION_STATUSES else None) for x in a["status"]]
    t["recheck"] = a["recheck"].fillna(0).astype(int).values
    cols = ledger_columns()
    t = t[[f for f, _, _ in cols]]
    t.columns = [(z if zh else e) for _, e, z in cols]
    return t


def ledger_context(folder: Path | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The zone and county tables a ledger takes (``zones``, ``admin`` of :func:`ledger_table`)
    from a scan's output folder: its ``zones.geojson`` and ``admin_units.geojson`` without
    geometry (None for a file that is not there)."""
    from redline.outputs import ADMIN_GEOJSON, ZONES_GEOJSON

    tables: list[pd.DataFrame | None] = []
    for name in (ZONES_GEOJSON, ADMIN_GEOJSON):
        f = Path(folder) / name if folder is not None else None
        t = pd.DataFrame(gpd.read_file(f).drop(columns="geometry")) if f is not None and f.is_file() else None
        if t is not None and "admin_id" in t:
            t["admin_id"] = t["admin_id"].astype(str)
        tables.append(t)
    return tables[0], tables[1]


def write_ledger(table: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write a :func:`ledger_table` as CSV (UTF-8 with BOM, so Excel reads the Chinese) or XLSX
    (openpyxl; one sheet ``ledger``, header row frozen)."""
    if fmt not in LEDGER_FORMATS:
        raise ValueError(f"--format {fmt!r} is not a ledger format; use csv or xlsx")
    path = Path(path)
    path.unlink(missing_ok=True)
    if fmt == "csv":
        table.to_csv(path, index=False, encoding="utf-8-sig")
    else:
        with pd.ExcelWriter(path, engine="openpyxl") as xw:
            table.to_excel(xw, index=False, sheet_name="ledger", freeze_panes=(1, 0))
    return path
