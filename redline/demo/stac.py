"""STAC Items and Collection in Earth Search v1 ``sentinel-2-c1-l2a`` conventions.

Structure mirrors the real Earth Search responses (item id ``S2B_T48RVU_20230105T034119_L2A``,
properties ``mgrs:*``, ``s2:*``, ``view:*``, assets keyed by common name with ``eo:bands``,
``proj:*``, ``raster:bands`` scale 0.0001 / offset −0.1 and ``file:*``). Geometry and bbox are
EPSG:4326 (lon, lat); ``proj:*`` are EPSG:32648 metres. Values that describe a real satellite
pass (relative orbits, absolute orbit numbers, view angles) are plausible illustrations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np

from redline.demo import landscape as L
from redline.demo.scenes import OFFSET, SCALE

COLLECTION = "sentinel-2-c1-l2a"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
#: MGRS tile of the grid's upper-left corner (x 400 000 m → column V of set 6; y 3 399 990 m →
#: row U with the even-set offset; latitude band R = 24–32° N).
MGRS = {"utm_zone": 48, "latitude_band": "R", "grid_square": "VU"}
TILE = f"{MGRS['utm_zone']}{MGRS['latitude_band']}{MGRS['grid_square']}"
PROCESSING_BASELINE = "05.10"

#: ``raster:bands`` of the reflectance and SCL assets (Earth Search; bits_per_sample 15 as asked).
def _raster_bands(res: int, scl: bool = False) -> list[dict]:
    if scl:
        return [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}]
    return [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res, "scale": SCALE, "offset": OFFSET}]


#: key: (band, gsd m, title, centre wavelength µm, FWHM µm) as in Earth Search.
BAND_ASSETS = {
    "blue": ("B02", 10, "Blue - 10m", 0.49, 0.098),
    "green": ("B03", 10, "Green - 10m", 0.56, 0.045),
    "red": ("B04", 10, "Red - 10m", 0.665, 0.038),
    "nir": ("B08", 10, "NIR 1 - 10m", 0.842, 0.145),
    "swir16": ("B11", 20, "SWIR 1.6μm - 20m", 1.61, 0.143),
    "swir22": ("B12", 20, "SWIR 2.2μm - 20m", 2.19, 0.242),
}
ASSET_KEYS = (*BAND_ASSETS, "scl")

EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
]

#: Two relative orbits see the tile: (sensing time UTC, view azimuth °, incidence °).
ORBITS = {104: (dt.time(3, 41, 19, 24000), 104.8, 8.3), 61: (dt.time(3, 36, 29, 461000), 286.2, 9.6)}
_LAUNCH = {"sentinel-2a": dt.date(2015, 6, 23), "sentinel-2b": dt.date(2017, 3, 7)}


def sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar azimuth (° from north, clockwise) and elevation (°) at ``when`` (UTC), NOAA
    general solar position approximation (accurate to a few tenths of a degree)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * np.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g) + 0.000907 * np.sin(2 * g)
            - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    ha = np.radians((hour * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = np.radians(lat)
    elev = np.degrees(np.arcsin(np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(ha)))
    az = (np.degrees(np.arctan2(np.sin(ha), np.cos(ha) * np.sin(phi) - np.tan(decl) * np.cos(phi))) + 180) % 360
    return round(float(az), 4), round(float(elev), 4)


def earth_sun_factor(day: dt.date) -> float:
    """Reflectance conversion factor 1/d² (ESA S2 formula), for ``s2:reflectance_conversion_factor``."""
    doy = day.timetuple().tm_yday
    return float(1.0 / (1 - 0.01672 * np.cos(np.radians(0.9856 * (doy - 4)))) ** 2)


def multihash_sha256(path: Path) -> str:
    """``file:checksum`` of a file: multihash of its SHA2-256 (prefix 0x12 0x20)."""
    return "1220" + hashlib.sha256(path.read_bytes()).hexdigest()


def _asset(key: str, href: str, path: Path, n: int) -> dict:
    """One asset of an item; ``n`` is the 10 m grid edge in pixels."""
    if key == "scl":
        res = 20
        body = {"title": "Scene classification map (SCL)", "raster:bands": _raster_bands(res, scl=True), "roles": ["data"]}
    else:
        band, res, title, wl, fwhm = BAND_ASSETS[key]
        body = {
            "title": title,
            "eo:bands": [{"name": band, "common_name": key, "center_wavelength": wl, "full_width_half_max": fwhm}],
            "raster:bands": _raster_bands(res),
            "roles": ["data", "reflectance"],
        }
    m = int(n * L.RES / res)
    return {
        "href": href, "type": COG_TYPE, **body, "gsd": res, "proj:shape": [m, m], "proj:transform": [res, 0, L.X0, 0, -res, L.Y0],
        "file:size": path.stat().st_size, "file:checksum": multihash_sha256(path),
    }


def scl_percentages(scl: np.ndarray) -> dict[str, float]:
    """Sen2Cor-style class percentages of an SCL array: no data over all pixels, classes over
    valid pixels; ``eo:cloud_cover`` = medium + high cloud + thin cirrus (classes 8, 9, 10)."""
    valid = scl > 0
    nv = max(int(valid.sum()), 1)

    def pct(*classes: int) -> float:
        return round(100.0 * float(np.isin(scl[valid], classes).sum()) / nv, 6)

    return {
        "eo:cloud_cover": pct(8, 9, 10),
        "s2:nodata_pixel_percentage": round(100.0 * float((~valid).mean()), 6),
        "s2:cloud_shadow_percentage": pct(3),
        "s2:vegetation_percentage": pct(4),
        "s2:not_vegetated_percentage": pct(5),
        "s2:water_percentage": pct(6),
        "s2:medium_proba_clouds_percentage": pct(8),
        "s2:high_proba_clouds_percentage": pct(9),
        "s2:thin_cirrus_percentage": pct(10),
        "s2:snow_ice_percentage": pct(11),
    }


def item_id(platform: str, sensed: dt.datetime) -> str:
    """Earth Search v1 id, e.g. ``S2B_T48RVU_20230105T034119_L2A``."""
    return f"S2{platform[-1].upper()}_T{TILE}_{sensed:%Y%m%dT%H%M%S}_L2A"


def sensing_time(day: dt.date, relative_orbit: int) -> dt.datetime:
    """UTC sensing time of the tile on ``day`` from ``relative_orbit``."""
    return dt.datetime.combine(day, ORBITS[relative_orbit][0], tzinfo=dt.UTC)


def _iso(t: dt.datetime, millis: bool = False) -> str:
    s = f"{t:%Y-%m-%dT%H:%M:%S.%f}"
    return (s[:-3] if millis else s) + "Z"


def make_item(*, platform: str, relative_orbit: int, day: dt.date, scl: np.ndarray, files: dict[str, Path], n: int,
              footprint: dict, bbox: list[float], centroid: tuple[float, float], version: str) -> dict:
    """A STAC Item (dict) of one scene whose COGs are ``files`` (asset key → absolute path)."""
    sensed = sensing_time(day, relative_orbit)
    generated = sensed + dt.timedelta(hours=2, minutes=27, seconds=13)
    abs_orbit = int(round((day - _LAUNCH[platform]).days * 143 / 10))  # 143 orbits per 10-day cycle
    sat = f"S2{platform[-1].upper()}"
    sun_az, sun_el = sun_position(sensed, *centroid)
    _, view_az, incidence = ORBITS[relative_orbit]
    stamp = f"{sensed:%Y%m%dT%H%M%S}"
    gen = f"{generated:%Y%m%dT%H%M%S}"
    pb = PROCESSING_BASELINE.replace(".", "")
    catalogued = _iso(generated + dt.timedelta(minutes=20), millis=True)
    props = {
        "created": catalogued,
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        **scl_percentages(scl),
        "proj:epsg": L.EPSG,
        "proj:centroid": {"lat": round(centroid[1], 5), "lon": round(centroid[0], 5)},
        "mgrs:utm_zone": MGRS["utm_zone"],
        "mgrs:latitude_band": MGRS["latitude_band"],
        "mgrs:grid_square": MGRS["grid_square"],
        "grid:code": f"MGRS-{TILE}",
        "view:azimuth": view_az,
        "view:incidence_angle": incidence,
        "view:sun_azimuth": sun_az,
        "view:sun_elevation": sun_el,
        "s2:tile_id": f"{sat}_OPER_MSI_L2A_TL_2APS_{gen}_A{abs_orbit:06d}_T{TILE}_N{PROCESSING_BASELINE}",
        "s2:degraded_msi_data_percentage": 0,
        "s2:saturated_defective_pixel_percentage": 0,
        "s2:unclassified_percentage": 0,
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": PROCESSING_BASELINE,
        "s2:product_uri": f"{sat}_MSIL2A_{stamp}_N{pb}_R{relative_orbit:03d}_T{TILE}_{gen}.SAFE",
        "s2:generation_time": _iso(generated),
        "s2:datatake_id": f"G{sat}_{stamp}_{abs_orbit:06d}_N{PROCESSING_BASELINE}",
        "s2:datatake_type": "INS-NOBS",
        "s2:reflectance_conversion_factor": round(earth_sun_factor(day), 9),
        "datetime": _iso(sensed),
        "processing:software": {"redline.demo": version},
        "redline:generated": True,
        "updated": catalogued,
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": EXTENSIONS,
        "id": item_id(platform, sensed),
        "collection": COLLECTION,
        "geometry": footprint,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": {k: _asset(k, files[k].as_uri(), files[k], n) for k in ASSET_KEYS},
    }


def make_collection(bbox: list[float], start: str, end: str, preset: str, seed: int, version: str) -> dict:
    """The ``sentinel-2-c1-l2a`` Collection of a demo build (spatial extent EPSG:4326)."""
    item_assets = {}
    for key, (band, res, title, wl, fwhm) in BAND_ASSETS.items():
        item_assets[key] = {
            "type": COG_TYPE, "title": title, "gsd": res, "roles": ["data", "reflectance"],
            "eo:bands": [{"name": band, "common_name": key, "center_wavelength": wl, "full_width_half_max": fwhm}],
            "raster:bands": _raster_bands(res),
        }
    item_assets["scl"] = {"type": COG_TYPE, "title": "Scene classification map (SCL)", "gsd": 20, "roles": ["data"],
                          "raster:bands": _raster_bands(20, scl=True)}
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"],
        "id": COLLECTION,
        "title": "Sentinel-2 Level-2A Collection 1 (redline generated demo scenes)",
        "description": (
            "Generated demo scenes, NOT real Sentinel-2 data: a deterministic synthetic landscape in "
            f"Sichuan (UTM 48N) written by redline.demo {version} (preset {preset}, seed {seed}) as "
            "Sentinel-2 L2A-like Cloud-Optimized GeoTIFFs with STAC Items in the conventions of "
            "Earth Search v1 sentinel-2-c1-l2a (DN × 0.0001 − 0.1 = surface reflectance, SCL at 20 m)."
        ),
        "keywords": ["sentinel-2", "l2a", "demo", "synthetic", "redline"],
        "license": "proprietary",
        "providers": [{"name": "redline.demo (synthetic data generator)", "roles": ["producer", "processor"]}],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[start, end]]}},
        "summaries": {"platform": ["sentinel-2a", "sentinel-2b"], "constellation": ["sentinel-2"], "instruments": ["msi"], "gsd": [10, 20]},
        "item_assets": item_assets,
        "links": [],
    }
