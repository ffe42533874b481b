from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from redline.errors import ZonesError, ZoneRepairedWarning

log = logging.getLogger(__name__)

ZONE_COLUMNS = ["zone_id", "zone_name", "category", "admin_id", "tier"]
ADMIN_COLUMNS = ["admin_id", "admin_name"]

#: Control tiers of a zone (管控分区), stored as the English code. Red-line zones are split into
#: 核心保护区 (core) and 一般控制区 (general control) (《关于在国土空间规划中统筹划定落实三条控制线
#: 的指导意见》, 2019); nature reserves into 核心区 (core), 缓冲区 (buffer) and 实验区
#: (experimental) (《中华人民共和国自然保护区条例》 Art. 18, 1994). Code → (Chinese label, accepted spellings).
ZONE_TIERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "core": ("核心保护区", ("core", "核心保护区", "核心区")),
    "general": ("一般控制区", ("general", "一般控制区", "一般管控区")),
    "buffer": ("缓冲区", ("buffer", "缓冲区")),
    "experimental": ("实验区", ("experimental", "实验区")),
}
_TIER_OF = {spelling.lower(): code for code, (_, spellings) in ZONE_TIERS.items() for spelling in spellings}


def _tiers(values: pd.Series, path: Path, field: str, ids: pd.Series) -> list[str | None]:
    """Canonical tier codes of a tier field; an unknown value is a one-line :class:`ZonesError`."""
    out: list[str | None] = []
    for zid, v in zip(ids, values):
        if v is None or (isinstance(v, float) and pd.isna(v)) or not str(v).strip():
            out.append(None)
            continue
        code = _TIER_OF.get(str(v).strip().lower())
        if code is None:
            allowed = ", ".join(f"{c} ({label})" for c, (label, _) in ZONE_TIERS.items())
            raise ZonesError(f"{path}: zone '{zid}' has tier {str(v)!r} in field '{field}' (zones.tier_field); use one of: {allowed}")
        out.append(code)
    return out


def _read_layer(path: Path, layer: str | None, what: str) -> gpd.GeoDataFrame:
    path = Path(path)
    if not path.exists():
        raise ZonesError(f"{path}: {what} file not found; check {what}.path in the config")
    try:
        layers = [name for name, _ in pyogrio.list_layers(path)]
    except (DataSourceError, OSError) as exc:
        raise ZonesError(f"{path}: cannot open {what} file ({exc}); is it a GeoPackage, Shapefile, GeoJSON or GeoParquet?") from None
    if layer is not None and layer not in layers:
        raise ZonesError(f"{path}: layer '{layer}' not found ({what}.layer); available layers: {', '.join(layers)}")
    try:
        gdf = _read_with_encoding(path, layer, what)
    except (DataSourceError, DataLayerError, UnicodeDecodeError) as exc:
        raise ZonesError(f"{path}: cannot read {what} layer ({exc}); if attributes are GBK-encoded, add a .cpg file") from None
    if gdf.empty:
        raise ZonesError(f"{path}: the {what} layer{' ' + repr(layer) if layer else ''} has no features; check {what}.layer")
    if gdf.crs is None:
        raise ZonesError(f"{path}: the {what} layer has no CRS; define it (e.g. EPSG:4490 for CGCS2000) in the file")
    _check_degrees(gdf, path, what)
    return gdf


def _check_degrees(gdf: gpd.GeoDataFrame, path: Path, what: str) -> None:
    """A layer labelled with a geographic CRS must hold longitudes and latitudes: -180 to 360
    (some data count longitudes 0-360) and -90 to 90 degrees (EPSG's axis bounds). Coordinates
    beyond them are projected metres under a wrong label (an export that dropped the .prj, a
    CRS set instead of transformed), and would send the search to no scene at all."""
    if not gdf.crs.is_geographic:
        return
    w, s, e, n = gdf.geometry.dropna().total_bounds
    if w < -180 or e > 360 or s < -90 or n > 90:
        raise ZonesError(f"{path}: the {what} layer says {gdf.crs.to_string()} (longitude/latitude, degrees) but its coordinates reach "
                         f"x {w:.0f} to {e:.0f}, y {s:.0f} to {n:.0f}: they are projected coordinates (metres?); set the CRS the layer "
                         "was drawn in (e.g. its UTM or CGCS2000 Gauss-Krüger zone) in the file")


def _read_with_encoding(path: Path, layer: str | None, what: str) -> gpd.GeoDataFrame:
    """Read a layer; a Shapefile whose .dbf declares no encoding (no .cpg, no code page byte) is
    read as UTF-8, and if its text is not UTF-8 (e.g. GBK from older Chinese GIS software) the
    user is told to add a .cpg, instead of GDAL's silent ISO-8859-1 reading (garbled names)."""
    if pyogrio.read_info(path, layer=layer).get("encoding") != "ISO-8859-1" or path.suffix.lower() not in (".shp", ".dbf"):
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio", encoding="UTF-8")
    except UnicodeDecodeError:
        raise ZonesError(
            f"{path}: the {what} attributes are not UTF-8 and no {path.with_suffix('.cpg').name} says their encoding; "
            f"add {path.with_suffix('.cpg').name} containing the encoding (e.g. GBK) next to the .shp"
        ) from None


def _field(gdf: gpd.GeoDataFrame, path: Path, field: str | None, key: str) -> pd.Series | None:
    if field is None:
        return None
    if field not in gdf.columns:
        cols = ", ".join(c for c in gdf.columns if c != "geometry")
        raise ZonesError(f"{path}: field '{field}' ({key}) is not in the layer; fields are: {cols}")
    return gdf[field]


def _polygons_only(gdf: gpd.GeoDataFrame, path: Path, ids: pd.Series, what: str) -> gpd.GeoDataFrame:
    """Repair invalid geometries (make_valid, keep the polygonal part) and reject non-polygons."""
    geom = gdf.geometry
    null = geom.isna()
    if null.any():
        raise ZonesError(f"{path}: {what} '{ids[null.idxmax()]}' has no geometry (null); draw its outline or remove it")
    bad_type = ~geom.geom_type.isin(["Polygon", "MultiPolygon"])
    if bad_type.any():
        first = bad_type.idxmax()
        raise ZonesError(
            f"{path}: {what} '{ids[first]}' is a {geom[first].geom_type}, not a polygon; "
            f"{what}s must be Polygon or MultiPolygon layers"
        )
    invalid = ~geom.is_valid
    if invalid.any():
        repaired = shapely.make_valid(geom[invalid].values)
        repaired = [_polygonal_part(g) for g in repaired]
        gdf.loc[invalid, gdf.geometry.name] = repaired
        names = ", ".join(str(i) for i in ids[invalid])
        warnings.warn(
            f"{path}: repaired {int(invalid.sum())} invalid {what} geometr{'y' if invalid.sum() == 1 else 'ies'} "
            f"with make_valid ({names})",
            ZoneRepairedWarning,
            stacklevel=3,
        )
    empty = gdf.geometry.is_empty | gdf.geometry.isna()
    if empty.any():
        raise ZonesError(f"{path}: {what} '{ids[empty.idxmax()]}' has an empty geometry; fix or remove it")
    return gdf


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_zones(
    path: Path,
    *,
    id_field: str,
    layer: str | None = None,
    name_field: str | None = None,
    category_field: str | None = None,
    admin_field: str | None = None,
    tier_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Read red-line zones into the standard columns.

    Returns a GeoDataFrame in the file's CRS with columns ``zone_id`` (str), ``zone_name``,
    ``category``, ``admin_id``, ``tier`` (str or None; the tier is one of the codes of
    :data:`ZONE_TIERS`, spelled in English or Chinese in the file) and a valid (Multi)Polygon geometry.
    Invalid geometries (self-intersections, bow-ties) are repaired with ``make_valid`` and a
    :class:`ZoneRepairedWarning`; duplicate ids, missing fields, non-polygon layers, empty
    layers and layers without a CRS raise :class:`ZonesError`.
    """
    path = Path(path)
    gdf = _read_layer(path, layer, "zones")
    ids = _field(gdf, path, id_field, "zones.id_field").astype(str).str.strip()
    if (ids == "").any() or gdf[id_field].isna().any():
        raise ZonesError(f"{path}: zone id field '{id_field}' is empty for some zones; every zone needs a code")
    dup = ids[ids.duplicated()]
    if not dup.empty:
        raise ZonesError(f"{path}: duplicate zone id '{dup.iloc[0]}' in field '{id_field}'; zone ids must be unique")
    out = gpd.GeoDataFrame({"zone_id": ids}, geometry=gdf.geometry.values, crs=gdf.crs)
    for col, field, key in (
        ("zone_name", name_field, "zones.name_field"),
        ("category", category_field, "zones.category_field"),
        ("admin_id", admin_field, "zones.admin_field"),
        ("tier", tier_field, "zones.tier_field"),
    ):
        values = _field(gdf, path, field, key)
        if col == "tier" and values is not None:
            out[col] = _tiers(values, path, field, ids)
            continue
        out[col] = values.astype(str).where(values.notna(), None).values if values is not None else None
    out = _polygons_only(out, path, ids, "zone")
    return out[[*ZONE_COLUMNS, "geometry"]]


def read_admin_units(
    path: Path, *, id_field: str, layer: str | None = None, name_field: str | None = None
) -> gpd.GeoDataFrame:
    """Read administrative units (counties) into columns ``admin_id``, ``admin_name``, geometry."""
    path = Path(path)
    gdf = _read_layer(path, layer, "admin_units")
    ids = _field(gdf, path, id_field, "admin_units.id_field").astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if not dup.empty:
        raise ZonesError(f"{path}: duplicate admin id '{dup.iloc[0]}' in field '{id_field}'; ids must be unique")
    names = _field(gdf, path, name_field, "admin_units.name_field")
    out = gpd.GeoDataFrame(
        {"admin_id": ids, "admin_name": names.astype(str).values if names is not None else None},
        geometry=gdf.geometry.values,
        crs=gdf.crs,
    )
    return _polygons_only(out, path, ids, "admin unit")[[*ADMIN_COLUMNS, "geometry"]]
