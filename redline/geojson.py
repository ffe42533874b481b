"""GeoJSON as redline writes it: the one rule every ``.geojson`` and every GeoJSON response follows.

RFC 7946 (The GeoJSON Format, 2016):

- coordinates in WGS 84 longitude, latitude (§4) and no ``crs`` member (§4: it was removed from
  the 2008 format);
- polygon rings follow the right-hand rule: exterior rings counter-clockwise, holes clockwise
  (§3.1.6);
- a feature's identifier is its ``id`` member, a string or a number (§3.2): here the alert id of
  an alert, the zone id of a zone, the county code of a county;
- coordinates carry at most :data:`DECIMALS` decimals: 7 decimal places of a degree are about
  1 cm on the ground, finer than any pixel (§11.2 advises 6 for about 10 cm).

Writers: ``alerts.geojson``, ``zones.geojson`` and ``admin_units.geojson`` of a scan
(:mod:`redline.scan`), ``redline alerts export --format geojson`` and ``alerts list --format
geojson`` (:mod:`redline.register.export`, :mod:`redline.cli`), the review service's
``/map.geojson`` and ``/export/alerts.geojson`` (:mod:`redline.serve`).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["DECIMALS", "rfc7946_geometries", "to_geojson", "write_geojson"]

#: Decimal places of a degree kept in coordinates (RFC 7946 §11.2: 7 places ≈ 1.1 cm at the
#: equator; redline's pixels are 10–30 m).
DECIMALS = 7


def rfc7946_geometries(geometries: gpd.GeoSeries) -> gpd.GeoSeries:
    """``geometries`` in EPSG:4326, coordinates rounded to :data:`DECIMALS` places, polygon
    exteriors counter-clockwise and holes clockwise (RFC 7946 §3.1.6). Rings are oriented after
    rounding, so rounding cannot turn a ring back; other geometry types are only rounded."""
    g = geometries.to_crs(4326) if geometries.crs is not None else geometries
    rounded = shapely.transform(np.asarray(g.values, dtype=object), lambda xy: np.round(xy, DECIMALS))
    return gpd.GeoSeries(shapely.orient_polygons(rounded, exterior_cw=False), index=g.index, crs=4326)


def to_geojson(frame: gpd.GeoDataFrame, *, id_column: str) -> str:
    """``frame`` as an RFC 7946 FeatureCollection (text): geometries by
    :func:`rfc7946_geometries`, each feature's ``id`` the value of ``id_column`` (which stays in
    its properties too), no ``crs`` member, non-ASCII text kept as is (UTF-8, RFC 7946 §1).

    Raises
    ------
    KeyError
        ``id_column`` is not a column of ``frame``.
    """
    if id_column not in frame.columns:
        raise KeyError(f"GeoJSON feature id: no column {id_column!r} (columns: {', '.join(map(str, frame.columns))})")
    out = frame.set_geometry(rfc7946_geometries(frame.geometry))
    out.index = [v if isinstance(v, (int, np.integer)) else str(v) for v in out[id_column]]
    collection = out.to_geo_dict(na="null", drop_id=False)
    for feature in collection["features"]:  # numpy integers are not JSON numbers
        feature["id"] = int(feature["id"]) if isinstance(feature["id"], np.integer) else feature["id"]
    return json.dumps(collection, ensure_ascii=False)


def write_geojson(frame: gpd.GeoDataFrame, path: Path, *, id_column: str) -> Path:
    """Write :func:`to_geojson` of ``frame`` to ``path`` (UTF-8); returns ``path``."""
    path = Path(path)
    path.write_text(to_geojson(frame, id_column=id_column), encoding="utf-8")
    return path
