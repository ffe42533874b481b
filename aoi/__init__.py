"""Red-line zones and administrative units: read, validate, repair, reproject, tile.

Zones come in any vector format pyogrio reads (GeoPackage, Shapefile, GeoJSON, GeoParquet)
and any CRS (CGCS2000, EPSG:4490, is common in China). They leave this package as a
validated GeoDataFrame with the standard columns ``zone_id, zone_name, category, admin_id,
tier`` and valid (Multi)Polygon geometries.
"""

from aoi._read import ADMIN_COLUMNS, ZONE_COLUMNS, ZONE_TIERS, read_admin_units, read_zones
from aoi._grid import utm_crs_for, zones_bbox_4326

__all__ = [
    "ZONE_COLUMNS",
    "ZONE_TIERS",
    "ADMIN_COLUMNS",
    "read_zones",
    "read_admin_units",
    "utm_crs_for",
    "zones_bbox_4326",
]
