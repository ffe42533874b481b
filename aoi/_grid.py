from __future__ import annotations

import geopandas as gpd
from pyproj import CRS


def zones_bbox_4326(zones: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    """Bounding box (west, south, east, north) of the zones in EPSG:4326 degrees."""
    return tuple(float(v) for v in zones.to_crs(4326).total_bounds)  # type: ignore[return-value]


def utm_crs_for(zones: gpd.GeoDataFrame) -> CRS:
    """The WGS 84 / UTM CRS of the zones' centroid (EPSG:326xx north, 327xx south)."""
    w, s, e, n = zones_bbox_4326(zones)
    lon, lat = (w + e) / 2, (s + n) / 2
    zone = int((lon + 180) // 6) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
