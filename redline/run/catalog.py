"""The STAC catalogue of a scan's output folder (``catalog.json`` and one Item with an asset
per output file). May import :mod:`redline.outputs` only; the scan writes it last but one.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pystac

from redline import outputs

__all__ = ["write_catalog"]


def write_catalog(out: Path, scan_id: str, bbox: tuple[float, ...], zones: gpd.GeoDataFrame, when: dt.datetime) -> Path:
    """A STAC catalogue of the outputs: one Item for the scan with an asset per output file
    (COGs, GeoJSON, CSV, HTML and the assessment GeoPackage)."""
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and (p.suffix in (".tif", ".geojson", ".csv", ".html") or p.name == outputs.ASSESSMENT_GPKG)]
    cat = pystac.Catalog(id=scan_id, description=f"redline scan {scan_id}: alerts, statistics and rasters")
    item = pystac.Item(id=scan_id, geometry=_envelope(zones), bbox=list(bbox), datetime=when, properties={"redline:scan_id": scan_id})
    media = {".tif": pystac.MediaType.COG, ".geojson": pystac.MediaType.GEOJSON, ".csv": "text/csv", ".html": pystac.MediaType.HTML, ".gpkg": pystac.MediaType.GEOPACKAGE}
    for f in files:
        rel = f.relative_to(out).as_posix()
        item.add_asset(rel.replace("/", "_").rsplit(".", 1)[0], pystac.Asset(href=rel, media_type=media.get(f.suffix), roles=["data"]))
    cat.add_item(item)
    cat.normalize_hrefs(str(out))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out / outputs.CATALOG_JSON


def _envelope(zones: gpd.GeoDataFrame) -> dict:
    """The zones' bounding rectangle as a GeoJSON geometry, EPSG:4326."""
    return json.loads(gpd.GeoSeries([zones.to_crs(4326).union_all().envelope], crs=4326).to_json())["features"][0]["geometry"]
