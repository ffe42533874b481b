"""Turn a folder of scene files into Cloud-Optimized GeoTIFFs and STAC Items (``redline stac import``).

:func:`import_folder` reads a folder of GeoTIFF (and JPEG2000, for Sentinel-2 SAFE) band files,
recognises the scenes in it, and writes ``OUT/<item id>/<asset>.tif`` COGs with ``OUT/items.json``
(a GeoJSON FeatureCollection of STAC Items, sorted by datetime) and ``OUT/collection.json`` — the
layout of the demo's scene folder, so ``redline stac serve OUT`` and ``redline scan`` use it as is.

Layouts recognised from the file names (the naming spec is cited next to each pattern below):

- **Landsat Collection 2 Level-2** (``LC08_L2SP_…_SR_B4.TIF``, ``…_QA_PIXEL.TIF``, ``…_ST_B10.TIF``,
  optional ``…_MTL.txt``/``.xml``): scale 2.75e-5, offset −0.2, nodata 0 (ST: 0.00341802, 149 K),
  QA_PIXEL with its Collection 2 ``classification:bitfields``.
- **Landsat Collection 1/2 Level-1** (``LC08_L1TP_…_B4.TIF``, ``…_BQA.TIF`` / ``…_QA_PIXEL.TIF``
  and the ``…_MTL.txt`` it needs): top-of-atmosphere reflectance scale/offset per band from the
  MTL (REFLECTANCE_MULT/ADD_BAND_n).
- **Sentinel-2 band files and SAFE products** (``T33UUU_20170216T102101_B04.tif``,
  ``…_B04_10m.jp2``, ``…_SCL_20m.jp2``, ``S2?_MSIL2A_*.SAFE/GRANULE/*/IMG_DATA/R10m/…``): scale
  1/QUANTIFICATION_VALUE (0.0001), offset BOA_ADD_OFFSET/RADIO_ADD_OFFSET from the SAFE's
  ``MTD_MSIL*.xml`` or −0.1 for processing baseline ≥ 04.00, SCL as the ``scl`` mask; each band
  at its native resolution (10/20/60 m), one asset each.
- **Gaofen** GF-1/GF-6 WFV and GF-1/GF-2/GF-6 PMS (``GF1_WFV1_E103.5_N30.7_20230512_L1A….tiff``,
  ``GF2_PMS1_…-MSS1.tiff`` + ``-PAN1.tiff``, ``.xml``): digital numbers kept (scale 1, offset 0),
  multi-band files split into one COG per band, PAN as the ``pan`` asset.

Anything else is described by a **band-mapping file** (``--mapping FILE``, YAML)::

    # Pucallpa (Peru) Landsat annual composites: tests/data/pucallpa/<year>.tif,
    # 4 bands SWIR1, NIR, red, green; 8-bit display-stretched; 0 = no data; no cloud mask.
    match: '(?P<date>\\d{4})\\.tif$'   # regex on the path relative to FOLDER; named groups
                                      # date (required) and id (optional: the scene key)
    date_format: '%Y'                 # strptime format of the date group (default: tried
                                      # %Y%m%dT%H%M%S, %Y%m%d, %Y-%m-%d, %Y%j, %Y)
    collection: pucallpa-composites   # STAC collection id (default: the folder's name)
    platform: landsat                 # optional; instruments: [tm, oli] optional too
    scale: 0.00392156862745098        # defaults of every band: refl = DN * scale + offset
    offset: 0
    nodata: 0
    bands:                            # common name → band of the scene's file(s)
      swir16: {band: 1}               # band: 1-based index in a multi-band file
      nir: {band: 2}
      red: {band: 3}
      green: {band: 4}
    # one file per band instead: match the scene's files with an id group and give a suffix,
    #   red: {file: _b3.tif}  (optional band:, scale:, offset:, nodata:, unit: per band)
    # a quality mask (optional), class-coded or bit-packed:
    #   mask: {file: _fmask.tif, nodata: 255, classes: {0: clear_land, 1: water, 2: cloud_shadow, 3: snow, 4: cloud}}
    #   mask: {file: _qa.tif, bitfields: [{name: cloud, offset: 3, length: 1}]}
    notes: 8-bit display-stretched composites, not reflectance; indices are qualitative

A scene without a quality mask loads with every pixel that has data counted clear; the console
says the scan needs ``masks: assume-clear``.

Bad input — a folder without a known layout, a mapping naming a missing file or band, mixed CRSs
in one scene, pixel sizes that are not whole multiples of each other or grids off one pixel
lattice, a scene without red or nir — raises :class:`~redline.errors.SceneFilesError` (one line
naming the file or key, exit 2) before anything is written: the output is built in a hidden
temporary folder next to OUT and renamed into place at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rasterio.io import MemoryFile
from rasterio.warp import transform as warp_transform

from pipelines._files import replaced_folder
from redline.errors import SceneFilesError

__all__ = ["ImportResult", "import_folder", "load_mapping", "Mapping", "LAYOUTS"]

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")

#: Layouts recognised without a mapping file: layout → what it is (for messages and the collection).
LAYOUTS = {
    "landsat-c2-l2": "Landsat 4-9 Collection 2 Level-2 surface reflectance (SR_B*, ST_B*, QA_PIXEL)",
    "landsat-c2-l1": "Landsat 4-9 Collection 2 Level-1 (B*, QA_PIXEL, MTL)",
    "landsat-c1-l1": "Landsat 4-8 Collection 1 Level-1 (B*, BQA, MTL)",
    "sentinel-2-l2a": "Sentinel-2 L2A band files or SAFE (B*_10m/20m/60m, SCL)",
    "sentinel-2-l1c": "Sentinel-2 L1C band files or SAFE (B*)",
    "gaofen-wfv": "Gaofen GF-1/GF-6 WFV (multi-band DN)",
    "gaofen-pms": "Gaofen GF-1/GF-2/GF-6 PMS (MSS multi-band + PAN DN)",
}
_KNOWN = "Landsat C2 L2 (…_SR_B4.TIF, …_QA_PIXEL.TIF), Landsat C1/C2 L1 (…_B4.TIF + MTL), Sentinel-2 band files or SAFE (T33UUU_…_B04[_10m].jp2/.tif), Gaofen WFV/PMS (GF1_WFV1_….tiff)"

#: Common band names of the STAC eo extension ("common band names") a mapping file may use.
COMMON_NAMES = (
    "coastal", "blue", "green", "red", "yellow", "pan", "rededge", "nir", "nir08", "nir09", "cirrus",
    "swir16", "swir22", "lwir", "lwir11", "lwir12",
)

# --- Landsat ------------------------------------------------------------------------------
# Landsat product identifier LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX (USGS, Landsat 8-9 Collection 2
# Level 2 Science Product Guide LSDS-1619, "Product identifier"; the same scheme names Collection 1
# Level-1 products): sensor C OLI/TIRS, O OLI, T TM, E ETM+; satellite 04-09; processing level;
# WRS-2 path and row; acquisition and processing dates; collection 01/02; category T1/T2/RT; then
# "_<band file>.TIF" (SR_B4, ST_B10, QA_PIXEL for Level-2; B4, BQA or QA_PIXEL for Level-1).
_LANDSAT = re.compile(
    r"^(?P<id>L(?P<sensor>[COTE])(?P<sat>0[4-9])_(?P<level>L1TP|L1GT|L1GS|L2SP|L2SR)_(?P<path>\d{3})(?P<row>\d{3})_"
    r"(?P<date>\d{8})_(?P<processed>\d{8})_(?P<coll>0[12])_(?P<tier>T1|T2|RT))_(?P<band>[A-Z0-9_]+)\.TIFF?$",
    re.IGNORECASE,
)
#: Band numbers → common names. OLI/TIRS (Landsat 8-9): USGS Landsat 8 Data Users Handbook
#: (LSDS-1574), and the names USGS landsatlook STAC gives its assets (coastal … swir22, lwir11).
_OLI = {1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir08", 6: "swir16", 7: "swir22", 8: "pan", 9: "cirrus", 10: "lwir11", 11: "lwir12"}
#: TM (Landsat 4-5) and ETM+ (Landsat 7): B1 blue, B2 green, B3 red, B4 NIR, B5 SWIR 1.6 µm,
#: B6 thermal, B7 SWIR 2.2 µm, B8 pan (ETM+) (USGS Landsat 4-5 TM and Landsat 7 Data Users Handbooks).
_TM = {1: "blue", 2: "green", 3: "red", 4: "nir08", 5: "swir16", 6: "lwir", 7: "swir22", 8: "pan"}
_L1_NOTE = ("Level-1 top-of-atmosphere reflectance (DN × REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n from the MTL), "
            "not corrected for the sun elevation nor the atmosphere")
_INSTRUMENTS = {"C": ["oli", "tirs"], "O": ["oli"], "T": ["tm"], "E": ["etm+"]}
#: Landsat Collection 2 Level-2 surface reflectance and surface temperature scale factors
#: (USGS LSDS-1619, "Scale factors": SR 0.0000275 and −0.2; ST 0.00341802 and 149.0 K; fill 0).
C2L2_SR = (2.75e-5, -0.2)
C2L2_ST = (0.00341802, 149.0)
#: Collection 2 QA_PIXEL bits (USGS LSDS-1619, "Pixel Quality Assessment Band"), named as the
#: Planetary Computer ``landsat-c2-l2`` items name them: 0 fill, 1 dilated cloud, 2 cirrus,
#: 3 cloud, 4 cloud shadow, 5 snow, 6 clear, 7 water, 8-9 cloud, 10-11 cloud shadow, 12-13
#: snow/ice, 14-15 cirrus confidence (0 not set, 1 low, 2 medium / reserved, 3 high).
_CONF4 = [{"value": 0, "name": "not_set"}, {"value": 1, "name": "low"}, {"value": 2, "name": "medium"}, {"value": 3, "name": "high"}]
_CONF3 = [{"value": 0, "name": "not_set"}, {"value": 1, "name": "low"}, {"value": 2, "name": "reserved"}, {"value": 3, "name": "high"}]


def _flag(name: str, offset: int, no: str, yes: str) -> dict:
    return {"name": name, "offset": offset, "length": 1, "classes": [{"value": 0, "name": no}, {"value": 1, "name": yes}]}


C2_QA_PIXEL_BITFIELDS = [
    _flag("fill", 0, "not_fill", "fill"), _flag("dilated_cloud", 1, "not_dilated", "dilated"),
    _flag("cirrus", 2, "not_cirrus", "cirrus"), _flag("cloud", 3, "not_cloud", "cloud"),
    _flag("cloud_shadow", 4, "not_shadow", "shadow"), _flag("snow", 5, "not_snow", "snow"),
    _flag("clear", 6, "not_clear", "clear"), _flag("water", 7, "not_water", "water"),
    {"name": "cloud_confidence", "offset": 8, "length": 2, "classes": _CONF4},
    {"name": "cloud_shadow_confidence", "offset": 10, "length": 2, "classes": _CONF3},
    {"name": "snow_confidence", "offset": 12, "length": 2, "classes": _CONF3},
    {"name": "cirrus_confidence", "offset": 14, "length": 2, "classes": _CONF3},
]
#: Collection 1 Level-1 BQA bits (USGS, "Landsat Collection 1 Level-1 Quality Assessment Band",
#: Landsat 8 OLI/TIRS table): 0 designated fill, 1 terrain occlusion, 2-3 radiometric saturation,
#: 4 cloud, 5-6 cloud, 7-8 cloud shadow, 9-10 snow/ice, 11-12 cirrus confidence.
_CONF_C1 = [{"value": 0, "name": "not_determined"}, {"value": 1, "name": "low"}, {"value": 2, "name": "medium"}, {"value": 3, "name": "high"}]
C1_BQA_BITFIELDS = [
    _flag("designated_fill", 0, "not_fill", "fill"), _flag("terrain_occlusion", 1, "no", "yes"),
    {"name": "radiometric_saturation", "offset": 2, "length": 2, "classes": [
        {"value": 0, "name": "none"}, {"value": 1, "name": "1-2 bands"}, {"value": 2, "name": "3-4 bands"}, {"value": 3, "name": "5+ bands"}]},
    _flag("cloud", 4, "not_cloud", "cloud"),
    {"name": "cloud_confidence", "offset": 5, "length": 2, "classes": _CONF_C1},
    {"name": "cloud_shadow_confidence", "offset": 7, "length": 2, "classes": _CONF_C1},
    {"name": "snow_ice_confidence", "offset": 9, "length": 2, "classes": _CONF_C1},
    {"name": "cirrus_confidence", "offset": 11, "length": 2, "classes": _CONF_C1},
]

# --- Sentinel-2 ---------------------------------------------------------------------------
# Tile image files T<tile>_<datatake sensing start>_<band>[_<res>m].jp2 in a granule's IMG_DATA
# (ESA, Sentinel-2 Products Specification Document S2-PDGS-TAS-DI-PSD, "Level-1C / Level-2A
# tile image file" naming; Level-2A adds the resolution suffix and the SCL, AOT, WVP, TCI
# layers); also accepted as GeoTIFF (.tif) band files cut from them.
_S2_FILE = re.compile(
    r"^T(?P<tile>\d{2}[A-Z]{3})_(?P<time>\d{8}T\d{6})_(?P<band>B0[1-9]|B1[0-2]|B8A|SCL)(?:_(?P<res>10|20|60)m)?\.(?:JP2|TIFF?)$", re.IGNORECASE
)
# Product (SAFE folder) name MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_<discriminator>.SAFE
# (ESA, Sentinel-2 "Naming convention" of the Compact SAFE products, S2 PSD): Nxxyy = processing baseline.
_SAFE = re.compile(
    r"^(?P<sat>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<time>\d{8}T\d{6})_N(?P<pb>\d{4})_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})_\d{8}T\d{6}\.SAFE$",
    re.IGNORECASE,
)
#: Band id → (asset key, common name) as Earth Search v1 keys Sentinel-2 assets (ESA MSI band designations).
_S2_BANDS = {
    "B01": ("coastal", "coastal"), "B02": ("blue", "blue"), "B03": ("green", "green"), "B04": ("red", "red"),
    "B05": ("rededge1", "rededge"), "B06": ("rededge2", "rededge"), "B07": ("rededge3", "rededge"), "B08": ("nir", "nir"),
    "B8A": ("nir08", "nir08"), "B09": ("nir09", "nir09"), "B10": ("cirrus", "cirrus"), "B11": ("swir16", "swir16"), "B12": ("swir22", "swir22"),
}
#: ``band_id`` 0-12 of the MTD's BOA_ADD_OFFSET / RADIO_ADD_OFFSET lists, in the order of its
#: Spectral_Information list (S2 PSD): B1 … B8, B8A, B9 … B12.
_S2_BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: QUANTIFICATION_VALUE 10000 and, from processing baseline 04.00 (25 January 2022), an offset
#: of −1000 DN (BOA_ADD_OFFSET / RADIO_ADD_OFFSET) (ESA, "Copernicus Sentinel-2: Major Products
#: Upgrade", and the S2 PSD).
S2_QUANTIFICATION, S2_ADD_OFFSET_PB04 = 10000.0, -1000.0
_S2_PB04_DATE = dt.date(2022, 1, 25)

# --- Gaofen -------------------------------------------------------------------------------
# CRESDA (China Centre for Resources Satellite Data and Application) product file naming
# <satellite>_<sensor>_<centre lon>_<centre lat>_<date>_<level><serial>[-<part>].tiff, as CRESDA
# distributes GF-1/2/6 scenes: GF1_WFV1_E103.5_N30.7_20230512_L1A0007290001.tiff,
# GF2_PMS1_E113.6_N40.1_20160118_L1A0001363808-MSS1.tiff / -PAN1.tiff, each with a .xml.
_GAOFEN = re.compile(
    r"^(?P<id>(?P<sat>GF[1-7][BCD]?)_(?P<sensor>WFV\d?|PMS\d?)_(?P<lon>[EW]\d+(?:\.\d+)?)_(?P<lat>[NS]\d+(?:\.\d+)?)_"
    r"(?P<date>\d{8})_(?P<level>L\d[A-Z]?)(?P<serial>\d+))(?:-(?P<part>MSS\d?|PAN\d?))?\.TIFF?$",
    re.IGNORECASE,
)
#: Multispectral bands of GF-1 WFV, GF-1/GF-2 PMS MSS (4 bands: 0.45-0.52, 0.52-0.59, 0.63-0.69,
#: 0.77-0.89 µm) and GF-6 WFV (8 bands: the same four, then 0.69-0.73 and 0.73-0.77 µm red edge,
#: 0.40-0.45 µm "purple", 0.59-0.63 µm yellow) (CRESDA satellite pages for GF-1, GF-2, GF-6).
_GF_BANDS = {
    4: (("blue", "blue"), ("green", "green"), ("red", "red"), ("nir", "nir")),
    8: (("blue", "blue"), ("green", "green"), ("red", "red"), ("nir", "nir"), ("rededge1", "rededge"), ("rededge2", "rededge"),
        ("coastal", "coastal"), ("yellow", "yellow")),
}
_GF_NOTE = (
    "Gaofen digital numbers kept (scale 1, offset 0): they are not calibrated to reflectance (CRESDA publishes the absolute "
    "calibration gains separately, per sensor and year); only relative indices such as NDVI are meaningful, within one sensor"
)
#: DN 0 is the fill around the imaged swath of Gaofen scenes: taken as no data when a file declares none.
_GF_FILL = 0
#: Fields of the CRESDA ProductMetaData XML read here (all other fields are left alone):
#: SatelliteID, SensorID, StartTime (kept as given, no time zone is stated) and CloudPercent.
_GF_XML_FIELDS = ("SatelliteID", "SensorID", "StartTime", "CloudPercent")


# --- records ------------------------------------------------------------------------------
@dataclass
class _Band:
    """One asset to write: band ``index`` (1-based) of ``path``."""

    key: str
    path: Path
    index: int
    name: str
    common_name: str | None
    role: str  # reflectance | thermal | pan | mask
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    unit: str | None = None
    title: str = ""
    classification: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Scene:
    id: str
    layout: str
    source: Path  # the file or folder messages name
    day: dt.date
    when: dt.datetime | None  # None: only the date is known (local solar noon is used)
    properties: dict[str, Any]
    bands: list[_Band]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Grid:
    crs: Any
    epsg: int | None
    transform: Any
    shape: tuple[int, int]
    count: int
    dtype: str
    nodata: float | None


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_folder` wrote.

    ``layouts``: layout → number of scenes; ``bands``: common names found (union over scenes);
    ``unmasked``: ids of items without a quality mask (a scan needs ``masks: assume-clear``);
    ``ignored``: raster files under FOLDER that no layout used.
    """

    out: Path
    items: Path
    collection: Path
    collection_id: str
    item_ids: tuple[str, ...]
    layouts: dict[str, int]
    bands: tuple[str, ...]
    unmasked: tuple[str, ...]
    ignored: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


# --- the band-mapping file ----------------------------------------------------------------
class _BitField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    offset: int = Field(ge=0, le=63)
    length: int = Field(1, ge=1, le=32)
    classes: dict[int, str] = {}


class _MaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str | None = None
    band: int = Field(1, ge=1)
    nodata: float | None = None
    classes: dict[int, str] | None = None
    bitfields: list[_BitField] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _MaskSpec:
        if (self.classes is None) == (self.bitfields is None):
            raise ValueError("give exactly one of classes: {value: name} or bitfields: [{name, offset, length}]")
        return self


class _BandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str | None = None
    band: int = Field(1, ge=1)
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    unit: str | None = None
    name: str | None = None


class Mapping(BaseModel):
    """A band-mapping file (``--mapping``; see the module docstring for an example)."""

    model_config = ConfigDict(extra="forbid")
    match: str
    date_format: str | None = None
    collection: str | None = None
    platform: str | None = None
    instruments: list[str] = []
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    bands: dict[str, _BandSpec]
    mask: _MaskSpec | None = None
    notes: str | None = None

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        if "date" not in rx.groupindex:
            raise ValueError("needs a named group (?P<date>…) for the scene's date")
        return v

    @field_validator("bands")
    @classmethod
    def _names(cls, v: dict[str, _BandSpec]) -> dict[str, _BandSpec]:
        bad = [k for k in v if k not in COMMON_NAMES]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a common band name; use one of {', '.join(COMMON_NAMES)}")
        return v


def _mapping_error(path: Path, err: ValidationError) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"{path}: unknown key '{key}'; remove it or check its spelling (README: Scenes from files)"
    if e["type"] == "missing":
        return f"{path}: missing required key '{key}'; add it (README: Scenes from files)"
    return f"{path}: {key} = {e.get('input')!r}: {e['msg'].removeprefix('Value error, ')}"


def load_mapping(path: Path | str) -> Mapping:
    """Read and validate a band-mapping file; errors are one line naming the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SceneFilesError(f"{path}: mapping file not found; check the --mapping path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneFilesError(f"{path}: cannot read the mapping file ({exc.__class__.__name__}); check permissions and encoding (UTF-8)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SceneFilesError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}; fix the syntax") from None
    if not isinstance(raw, dict):
        raise SceneFilesError(f"{path}: expected a mapping with match: and bands: (README: Scenes from files), got {type(raw).__name__}")
    try:
        return Mapping.model_validate(raw)
    except ValidationError as err:
        raise SceneFilesError(_mapping_error(path, err)) from None


# --- small helpers ------------------------------------------------------------------------
def _raster_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _RASTER_SUFFIXES and not p.name.startswith("."))


def _read_grid(path: Path) -> _Grid:
    try:
        with rasterio.open(path) as r:
            crs = r.crs
            epsg = crs.to_epsg() if crs else None
            return _Grid(crs, epsg, r.transform, (r.height, r.width), r.count, r.dtypes[0], r.nodata)
    except rasterio.errors.RasterioError as exc:
        raise SceneFilesError(f"{path}: cannot be read as a raster ({str(exc).splitlines()[0]}); replace or remove the file") from None


def _text_metadata(path: Path) -> dict[str, str]:
    """``KEY = value`` lines of a Landsat MTL.txt, or the leaf elements of an MTL.xml / XML
    (tag without namespace → text; the last of repeated tags wins)."""
    out: dict[str, str] = {}
    if path.suffix.lower() == ".xml":
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise SceneFilesError(f"{path}: not well-formed XML ({exc}); replace the file or remove it") from None
        for el in root.iter():
            if len(el) == 0 and el.text and el.text.strip():
                out[el.tag.rsplit("}", 1)[-1]] = el.text.strip()
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"\s*([A-Z0-9_]+)\s*=\s*\"?([^\"]*)\"?\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _multihash(path: Path) -> str:
    """``file:checksum``: multihash of the SHA2-256 (prefix 0x12 0x20)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "1220" + h.hexdigest()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


# --- Landsat ------------------------------------------------------------------------------
def _landsat(files: list[Path]) -> tuple[list[_Scene], set[Path]]:
    groups: dict[str, list[tuple[Path, re.Match]]] = defaultdict(list)
    for p in files:
        m = _LANDSAT.match(p.name)
        if m:
            groups[m.group("id").upper()].append((p, m))
    scenes, used = [], set()
    for pid, members in sorted(groups.items()):
        m0 = members[0][1]
        sensor, sat, level, coll = m0.group("sensor").upper(), int(m0.group("sat")), m0.group("level").upper(), m0.group("coll")
        l2 = level.startswith("L2")
        layout = "landsat-c2-l2" if l2 else ("landsat-c2-l1" if coll == "02" else "landsat-c1-l1")
        table = _OLI if sensor in "CO" else _TM
        folder = members[0][0].parent
        mtl_path = next((folder / f"{members[0][0].name[:len(pid)]}_MTL.{ext}" for ext in ("txt", "xml", "TXT", "XML")
                         if (folder / f"{members[0][0].name[:len(pid)]}_MTL.{ext}").is_file()), None)
        mtl = _text_metadata(mtl_path) if mtl_path else {}
        bands: list[_Band] = []
        for p, m in members:
            suffix = m.group("band").upper()
            b = _landsat_band(p, suffix, table, l2, coll, sensor, mtl, mtl_path, pid)
            if b is not None:
                bands.append(b)
                used.add(p)
        if not bands:
            continue
        day = dt.datetime.strptime(m0.group("date"), "%Y%m%d").date()
        when = None
        if mtl.get("DATE_ACQUIRED") and mtl.get("SCENE_CENTER_TIME"):
            when = dt.datetime.fromisoformat(f"{mtl['DATE_ACQUIRED']}T{mtl['SCENE_CENTER_TIME'].rstrip('Z')[:15]}").replace(tzinfo=dt.UTC)
        props: dict[str, Any] = {
            "platform": f"landsat-{sat}", "instruments": _INSTRUMENTS[sensor],
            "landsat:wrs_type": "2", "landsat:wrs_path": m0.group("path"), "landsat:wrs_row": m0.group("row"),
            "landsat:collection_number": coll, "landsat:collection_category": m0.group("tier").upper(), "landsat:correction": level,
        }
        if mtl.get("LANDSAT_SCENE_ID"):
            props["landsat:scene_id"] = mtl["LANDSAT_SCENE_ID"]
        if _float(mtl.get("CLOUD_COVER")) is not None and float(mtl["CLOUD_COVER"]) >= 0:
            props["eo:cloud_cover"] = float(mtl["CLOUD_COVER"])
        if _float(mtl.get("CLOUD_COVER_LAND")) is not None and float(mtl["CLOUD_COVER_LAND"]) >= 0:
            props["landsat:cloud_cover_land"] = float(mtl["CLOUD_COVER_LAND"])
        for key, prop in (("SUN_AZIMUTH", "view:sun_azimuth"), ("SUN_ELEVATION", "view:sun_elevation")):
            if _float(mtl.get(key)) is not None:
                props[prop] = float(mtl[key])
        notes = [] if l2 else [_L1_NOTE]
        scenes.append(_Scene(pid, layout, members[0][0], day, when, props, bands, notes))
    return scenes, used


def _landsat_band(p: Path, suffix: str, table: dict[int, str], l2: bool, coll: str, sensor: str,
                  mtl: dict[str, str], mtl_path: Path | None, pid: str) -> _Band | None:
    """The asset of one Landsat band file, or None for files redline does not use (QA_RADSAT, …)."""
    if suffix in ("QA_PIXEL", "BQA"):
        bitfields = C1_BQA_BITFIELDS if suffix == "BQA" else C2_QA_PIXEL_BITFIELDS
        return _Band(suffix.lower(), p, 1, suffix, None, "mask", nodata=1, title="Pixel quality assessment band",
                     classification={"classification:bitfields": bitfields})
    m = re.fullmatch(r"(SR_|ST_)?B(\d{1,2})", suffix)
    if m is None:
        return None
    kind, n = m.group(1), int(m.group(2))
    cn = table.get(n)
    if cn is None:
        return None
    if l2:
        if kind == "SR_":
            return _Band(cn, p, 1, f"SR_B{n}", cn, "reflectance", *C2L2_SR, nodata=0, title=f"Surface reflectance {cn} (SR_B{n})")
        if kind == "ST_" and cn.startswith("lwir"):
            return _Band(cn, p, 1, f"ST_B{n}", cn, "thermal", *C2L2_ST, nodata=0, unit="kelvin", title=f"Surface temperature (ST_B{n})")
        return None
    if kind or cn.startswith("lwir"):  # Level-1 thermal bands are radiance: not used
        return None
    if mtl_path is None:
        raise SceneFilesError(f"{p}: {pid}_MTL.txt (or .xml) not found next to it; Level-1 DN need its REFLECTANCE_MULT/ADD_BAND_n — copy the MTL into the folder")
    mult, add = _float(mtl.get(f"REFLECTANCE_MULT_BAND_{n}")), _float(mtl.get(f"REFLECTANCE_ADD_BAND_{n}"))
    if mult is None or add is None:
        raise SceneFilesError(f"{mtl_path}: no REFLECTANCE_MULT_BAND_{n} / REFLECTANCE_ADD_BAND_{n} for {p.name}; give the scene's own MTL file")
    return _Band(cn, p, 1, f"B{n}", cn, "pan" if cn == "pan" else "reflectance", mult, add, nodata=0, title=f"TOA reflectance {cn} (B{n})")


# --- Sentinel-2 ---------------------------------------------------------------------------
def _safe_of(p: Path) -> Path | None:
    return next((a for a in p.parents if _SAFE.match(a.name)), None)


def _s2_mtd(root: Path) -> tuple[dict[str, str], dict[str, float], Path | None]:
    """The MTD_MSIL2A/L1C.xml fields used (PROCESSING_BASELINE, SPACECRAFT_NAME,
    (BOA_)QUANTIFICATION_VALUE, Cloud_Coverage_Assessment) and the per-band add offsets (band id → DN)."""
    path = next((root / n for n in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml") if (root / n).is_file()), None)
    if path is None:
        return {}, {}, None
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise SceneFilesError(f"{path}: not well-formed XML ({exc}); replace it with the product's own MTD file") from None
    fields: dict[str, str] = {}
    offsets: dict[str, float] = {}
    ids = list(_S2_BAND_IDS)
    for el in tree.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        text = (el.text or "").strip()
        if tag == "Spectral_Information" and el.get("bandId") is not None and el.get("physicalBand"):
            i, phys = int(el.get("bandId")), el.get("physicalBand").upper()
            band = phys if phys == "B8A" else f"B{int(phys[1:]):02d}"
            if 0 <= i < len(ids):
                ids[i] = band
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.get("band_id") is not None and _float(text) is not None:
            offsets[el.get("band_id")] = float(text)
        elif tag in ("PROCESSING_BASELINE", "SPACECRAFT_NAME", "QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE", "Cloud_Coverage_Assessment") and text:
            fields[tag] = text
    by_band = {ids[int(k)]: v for k, v in offsets.items() if k.isdigit() and int(k) < len(ids)}
    return fields, by_band, path


def _sentinel2(files: list[Path]) -> tuple[list[_Scene], set[Path]]:
    groups: dict[tuple, list[tuple[Path, re.Match]]] = defaultdict(list)
    for p in files:
        m = _S2_FILE.match(p.name)
        if m:
            safe = _safe_of(p)
            groups[(str(safe or p.parent), m.group("tile").upper(), m.group("time").upper())].append((p, m))
    scenes, used = [], set()
    for (_, tile, stamp), members in sorted(groups.items()):
        safe = _safe_of(members[0][0])
        sm = _SAFE.match(safe.name) if safe else None
        mtd, add_offsets, mtd_path = _s2_mtd(safe if safe else members[0][0].parent)
        l2a = any(m.group("res") or m.group("band").upper() == "SCL" for _, m in members) or (sm is not None and sm.group("level").upper() == "L2A")
        baseline = mtd.get("PROCESSING_BASELINE") or (f"{sm.group('pb')[:2]}.{sm.group('pb')[2:]}" if sm else None)
        quant = _float(mtd.get("BOA_QUANTIFICATION_VALUE") or mtd.get("QUANTIFICATION_VALUE")) or S2_QUANTIFICATION
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        if add_offsets:
            rule = f"offset BOA/RADIO_ADD_OFFSET of {mtd_path.name} ÷ {quant:g}"
            ge04 = None
        else:
            ge04 = float(baseline) >= 4.0 if baseline else when.date() >= _S2_PB04_DATE
            rule = (f"processing baseline {baseline} {'≥' if ge04 else '<'} 04.00" if baseline
                    else f"processing baseline unknown, sensing date {when:%Y-%m-%d} {'≥' if ge04 else '<'} {_S2_PB04_DATE}")
            rule += ": offset −1000 DN" if ge04 else ": offset 0"
        # the native resolution of each band: the finest file of it (L2A also ships resampled copies)
        best: dict[str, tuple[int, Path]] = {}
        for p, m in members:
            band = m.group("band").upper()
            res = int(m.group("res") or 0)
            if band not in best or (res or 1e9) < (best[band][0] or 1e9):
                best[band] = (res, p)
        bands = []
        for band, (_, p) in sorted(best.items()):
            used.update(q for q, m in members if m.group("band").upper() == band)
            if band == "SCL":
                bands.append(_Band("scl", p, 1, "SCL", None, "mask", nodata=0, title="Scene classification map (SCL)"))
                continue
            key, cn = _S2_BANDS[band]
            add = add_offsets.get(band, S2_ADD_OFFSET_PB04 if ge04 else 0.0) if add_offsets else (S2_ADD_OFFSET_PB04 if ge04 else 0.0)
            bands.append(_Band(key, p, 1, band, cn, "reflectance", 1.0 / quant, add / quant, nodata=0, title=f"{cn} ({band})"))
        level = "L2A" if l2a else "L1C"
        sat = sm.group("sat").upper() if sm else None
        platform = (mtd.get("SPACECRAFT_NAME") or (f"Sentinel-2{sat[-1]}" if sat else "")).lower() or None
        props: dict[str, Any] = {
            **({"platform": platform} if platform else {}), "constellation": "sentinel-2", "instruments": ["msi"],
            "s2:product_type": f"S2MSI{level[1:]}", "mgrs:utm_zone": int(tile[:2]), "mgrs:latitude_band": tile[2], "mgrs:grid_square": tile[3:],
            "grid:code": f"MGRS-{tile}",
        }
        if baseline:
            props["s2:processing_baseline"] = baseline
        if safe:
            props["s2:product_uri"] = safe.name
        if _float(mtd.get("Cloud_Coverage_Assessment")) is not None:
            props["eo:cloud_cover"] = float(mtd["Cloud_Coverage_Assessment"])
        iid = safe.name[: -len(".SAFE")] if safe else f"S2_T{tile}_{stamp}_{level}"
        note = f"Sentinel-2 {level}: reflectance = DN / {quant:g} + add offset; {rule}"
        scenes.append(_Scene(iid, f"sentinel-2-{level.lower()}", safe or members[0][0].parent, when.date(), when, props, bands, [note]))
    return scenes, used


# --- Gaofen -------------------------------------------------------------------------------
def _gaofen(files: list[Path]) -> tuple[list[_Scene], set[Path]]:
    groups: dict[str, list[tuple[Path, re.Match]]] = defaultdict(list)
    for p in files:
        m = _GAOFEN.match(p.name)
        if m:
            groups[m.group("id").upper()].append((p, m))
    scenes, used = [], set()
    for sid, members in sorted(groups.items()):
        m0 = members[0][1]
        sat, sensor = m0.group("sat").upper(), m0.group("sensor").upper()
        bands: list[_Band] = []
        xml: dict[str, str] = {}
        for p, m in members:
            used.add(p)
            part = (m.group("part") or "").upper()
            for cand in (p.with_suffix(".xml"), p.with_suffix(".XML")):
                if cand.is_file() and not xml:
                    xml = {k: v for k, v in _text_metadata(cand).items() if k in _GF_XML_FIELDS}
            grid = _read_grid(p)
            count = grid.count
            nodata = grid.nodata if grid.nodata is not None else _GF_FILL
            if part.startswith("PAN"):
                bands.append(_Band("pan", p, 1, "PAN", "pan", "pan", 1.0, 0.0, nodata, title=f"{sat} {sensor} panchromatic DN"))
                continue
            if count not in _GF_BANDS:
                raise SceneFilesError(f"{p}: {count} band(s); a {sat} {sensor} multispectral file has 4 (blue, green, red, nir) or 8 (GF-6 WFV); "
                                      "check the file or describe it with --mapping")
            for i, (key, cn) in enumerate(_GF_BANDS[count], start=1):
                bands.append(_Band(key, p, i, f"B{i}", cn, "reflectance", 1.0, 0.0, nodata, title=f"{sat} {sensor} band {i} ({cn}) DN"))
        day = dt.datetime.strptime(m0.group("date"), "%Y%m%d").date()
        lon, lat = m0.group("lon"), m0.group("lat")
        props: dict[str, Any] = {
            "platform": f"gf-{sat[2:].lower()}", "constellation": "gaofen", "instruments": [re.sub(r"\d", "", sensor).lower()],
            "gaofen:sensor_id": xml.get("SensorID", sensor), "gaofen:product_level": m0.group("level").upper(),
            "gaofen:scene_centre": [float(lon[1:]) * (-1 if lon[0] in "Ww" else 1), float(lat[1:]) * (-1 if lat[0] in "Ss" else 1)],
        }
        if xml.get("StartTime"):
            props["gaofen:start_time"] = xml["StartTime"]
        if _float(xml.get("CloudPercent")) is not None:
            props["eo:cloud_cover"] = float(xml["CloudPercent"])
        layout = "gaofen-wfv" if sensor.startswith("WFV") else "gaofen-pms"
        scenes.append(_Scene(sid, layout, members[0][0], day, None, props, bands, [_GF_NOTE]))
    return scenes, used


# --- mapping-file scenes ------------------------------------------------------------------
_DATE_FORMATS = ("%Y%m%dT%H%M%S", "%Y%m%d", "%Y-%m-%d", "%Y%j", "%Y")


def _parse_date(text: str, fmt: str | None, mapping_path: Path, file: Path) -> tuple[dt.date, dt.datetime | None]:
    for f in ([fmt] if fmt else _DATE_FORMATS):
        try:
            t = dt.datetime.strptime(text, f)
        except ValueError:
            continue
        timed = any(c in f for c in ("%H", "%M", "%S"))
        return t.date(), (t.replace(tzinfo=dt.UTC) if timed else None)
    hint = f"date_format {fmt!r}" if fmt else f"any of {', '.join(_DATE_FORMATS)}"
    raise SceneFilesError(f"{mapping_path}: match: date {text!r} of {file} does not parse with {hint}; set date_format")


def _pick(mapping_path: Path, key: str, paths: list[Path], spec_file: str | None, band: int, where: str) -> tuple[Path, int]:
    """The file and band a mapping entry ``where`` names in scene ``key`` (whose files are ``paths``)."""
    if spec_file is None:
        if len(paths) != 1:
            raise SceneFilesError(f"{mapping_path}: {where}: scene {key} has {len(paths)} files ({', '.join(p.name for p in paths[:4])}); "
                                  "give file: (the ending of this band's file name)")
        p = paths[0]
    else:
        hits = [p for p in paths if p.name.endswith(spec_file)]
        if len(hits) != 1:
            what = "no file" if not hits else f"{len(hits)} files"
            raise SceneFilesError(f"{mapping_path}: {where}.file = {spec_file!r}: {what} of scene {key} ends with it "
                                  f"(its files: {', '.join(p.name for p in paths[:6])}); fix the suffix or add the file")
        p = hits[0]
    count = _read_grid(p).count
    if band > count:
        raise SceneFilesError(f"{mapping_path}: {where}.band = {band}: {p} has only {count} band(s); give a band from 1 to {count}")
    return p, band


def _mapped(folder: Path, files: list[Path], mapping: Mapping, mapping_path: Path) -> tuple[list[_Scene], set[Path]]:
    rx = re.compile(mapping.match)
    groups: dict[str, list[tuple[Path, re.Match]]] = defaultdict(list)
    for p in files:
        m = rx.search(p.relative_to(folder).as_posix())
        if m and m.group("date"):
            key = m.groupdict().get("id") or m.group("date")
            groups[key].append((p, m))
    if not groups:
        raise SceneFilesError(f"{mapping_path}: match {mapping.match!r} matches none of the {len(files)} raster file(s) under {folder} "
                              f"(e.g. {', '.join(p.relative_to(folder).as_posix() for p in files[:3]) or 'none'}); fix the pattern")
    collection = mapping.collection or folder.name
    scenes, used = [], set()
    for key, members in sorted(groups.items()):
        paths = [p for p, _ in members]
        day, when = _parse_date(members[0][1].group("date"), mapping.date_format, mapping_path, paths[0])
        bands: list[_Band] = []
        for cn, spec in mapping.bands.items():
            p, i = _pick(mapping_path, key, paths, spec.file, spec.band, f"bands.{cn}")
            nodata = spec.nodata if spec.nodata is not None else mapping.nodata
            role = "thermal" if cn.startswith("lwir") else ("pan" if cn == "pan" else "reflectance")
            bands.append(_Band(cn, p, i, spec.name or f"band {i}", cn, role, spec.scale if spec.scale is not None else mapping.scale,
                               spec.offset if spec.offset is not None else mapping.offset, nodata, spec.unit, f"{cn} ({p.name} band {i})"))
        if mapping.mask is not None:
            mk = mapping.mask
            p, i = _pick(mapping_path, key, paths, mk.file, mk.band, "mask")
            if mk.classes is not None:
                cls = {"classification:classes": [{"value": int(v), "name": n} for v, n in sorted(mk.classes.items())]}
            else:
                cls = {"classification:bitfields": [
                    {"name": b.name, "offset": b.offset, "length": b.length, "classes": [{"value": int(v), "name": n} for v, n in sorted(b.classes.items())]}
                    for b in mk.bitfields or []]}
            bands.append(_Band("qa", p, i, f"band {i}", None, "mask", nodata=mk.nodata, title=f"quality mask ({p.name} band {i})",
                               classification=cls))
        used.update(paths)
        props: dict[str, Any] = {}
        if mapping.platform:
            props["platform"] = mapping.platform
        if mapping.instruments:
            props["instruments"] = list(mapping.instruments)
        iid = key if "id" in rx.groupindex else f"{collection}_{members[0][1].group('date')}"
        notes = [f"described by {mapping_path.name}"] + ([mapping.notes] if mapping.notes else [])
        scenes.append(_Scene(iid, "mapping", paths[0], day, when, props, bands, notes))
    return scenes, used


# --- checks -------------------------------------------------------------------------------
def _check_scene(scene: _Scene, grids: dict[Path, _Grid]) -> None:
    """Red and NIR present; one CRS; pixel sizes whole multiples of the finest, on its lattice."""
    names = {b.common_name for b in scene.bands}
    missing = [n for n, alts in (("red", ("red",)), ("nir", ("nir", "nir08"))) if not names & set(alts)]
    if missing:
        found = ", ".join(sorted(b.key for b in scene.bands)) or "none"
        raise SceneFilesError(f"{scene.source}: scene {scene.id} has no {' and no '.join(missing)} band (found: {found}); NDVI needs red and nir — "
                              "add the band's file, or map it in a --mapping file")
    files = list(dict.fromkeys(b.path for b in scene.bands))
    for p in files:
        g = grids[p]
        if g.crs is None:
            gf = " (Gaofen L1A scenes are not orthorectified: orthorectify with the scene's .rpb first, e.g. gdalwarp -rpc -t_srs EPSG:326NN)" if scene.layout.startswith("gaofen") else ""
            raise SceneFilesError(f"{p}: no coordinate reference system{gf}; give georeferenced GeoTIFFs")
        if g.transform.b or g.transform.d:
            raise SceneFilesError(f"{p}: rotated or sheared grid (transform {tuple(g.transform)[:6]}); warp it north-up first (gdalwarp)")
    crss = {grids[p].crs.to_string(): p for p in files}
    if len(crss) > 1:
        (c1, p1), (c2, p2) = list(crss.items())[:2]
        raise SceneFilesError(f"{p2}: CRS {c2} differs from {c1} of {p1.name} in the same scene {scene.id}; "
                              "reproject the files onto one CRS (gdalwarp -t_srs) before importing")
    fine_p = min(files, key=lambda p: abs(grids[p].transform.a))
    fine = grids[fine_p].transform
    for p in files:
        t = grids[p].transform
        for r, r0 in ((abs(t.a), abs(fine.a)), (abs(t.e), abs(fine.e))):
            k = r / r0
            if abs(k - round(k)) > 1e-6 * max(k, 1):
                raise SceneFilesError(f"{p}: pixel size {r:g} is not a whole multiple of {r0:g} of {fine_p.name} in scene {scene.id}; "
                                      "resample it to a multiple (gdalwarp -tr) or import it separately")
        dx, dy = (t.c - fine.c) / fine.a, (t.f - fine.f) / fine.e
        if abs(dx - round(dx)) > 1e-3 or abs(dy - round(dy)) > 1e-3:
            raise SceneFilesError(f"{p}: grid origin ({t.c:g}, {t.f:g}) is off the pixel lattice of {fine_p.name} ({fine.c:g}, {fine.f:g}; "
                                  f"{abs(fine.a):g} pixels) in scene {scene.id}; align it (gdalwarp -tap -tr) before importing")


def _footprint(g: _Grid) -> tuple[dict, list[float], tuple[float, float]]:
    """Outline of the grid (GeoJSON Polygon, EPSG:4326, 10 points per edge), its bbox and centre (lon, lat)."""
    h, w = g.shape
    t = g.transform
    s = np.linspace(0, 1, 11)[:-1]
    cols = np.concatenate([s * w, np.full_like(s, w), (1 - s) * w, np.zeros_like(s)])
    rows = np.concatenate([np.zeros_like(s), s * h, np.full_like(s, h), (1 - s) * h])
    xs, ys = t.c + cols * t.a, t.f + rows * t.e
    lon, lat = warp_transform(g.crs, "EPSG:4326", list(xs), list(ys))
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(lon, lat, strict=True)]
    bbox = [min(lon), min(lat), max(lon), max(lat)]
    centre = warp_transform(g.crs, "EPSG:4326", [t.c + t.a * w / 2], [t.f + t.e * h / 2])
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, [round(v, 7) for v in bbox], (centre[0][0], centre[1][0])


# --- writing ------------------------------------------------------------------------------
def _write_cog(b: _Band, dst: Path) -> None:
    """Band ``b.index`` of ``b.path`` as a COG: same dtype, ``b.nodata`` as its nodata, deflate with
    a predictor, overviews NEAREST for masks and AVERAGE for the rest (GDAL COG driver)."""
    with rasterio.open(b.path) as src:
        data = src.read(b.index)
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": data.dtype.name,
                   "crs": src.crs, "transform": src.transform}
        nodata = b.nodata if b.nodata is not None else src.nodatavals[b.index - 1]
    if nodata is not None:
        profile["nodata"] = nodata
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(data, 1)
        with mem.open() as tmp:
            rasterio.shutil.copy(tmp, dst, driver="COG", compress="DEFLATE", predictor="YES", blocksize=512,
                                 overview_resampling="NEAREST" if b.role == "mask" else "AVERAGE")


def _asset(b: _Band, dst: Path, href: str, g: _Grid) -> dict:
    res = abs(g.transform.a)
    rb: dict[str, Any] = {"data_type": g.dtype, "spatial_resolution": round(res, 9)}
    nodata = b.nodata if b.nodata is not None else g.nodata
    if nodata is not None:
        rb["nodata"] = int(nodata) if float(nodata).is_integer() else nodata
    if b.role != "mask":
        rb["scale"], rb["offset"] = b.scale, b.offset
    if b.unit:
        rb["unit"] = b.unit
    asset: dict[str, Any] = {"href": href, "type": COG_TYPE, "title": b.title}
    if b.common_name:
        asset["eo:bands"] = [{"name": b.name, "common_name": b.common_name}]
    asset["raster:bands"] = [rb]
    asset.update(b.classification)
    roles = {"reflectance": ["data", "reflectance"], "thermal": ["data", "temperature"], "pan": ["data"], "mask": ["data", "cloud", "cloud-shadow", "snow-ice"]}[b.role]
    if b.key == "scl":
        roles = ["data"]
    asset["roles"] = roles
    asset["gsd"] = round(res, 9)
    asset["proj:epsg"] = g.epsg
    if g.epsg is None:
        asset["proj:wkt2"] = g.crs.to_wkt()
    asset["proj:shape"] = list(g.shape)
    asset["proj:transform"] = [float(v) for v in tuple(g.transform)[:6]]
    asset["file:size"] = dst.stat().st_size
    asset["file:checksum"] = _multihash(dst)
    return asset


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
_CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"


def _item(scene: _Scene, collection: str, tmp: Path, root: Path, grids: dict[Path, _Grid]) -> dict:
    folder = tmp / scene.id
    folder.mkdir(parents=True)
    assets = {}
    for b in scene.bands:
        dst = folder / f"{b.key}.tif"
        _write_cog(b, dst)
        assets[b.key] = _asset(b, dst, (root / scene.id / dst.name).as_uri(), grids[b.path])
    ref = next((b for b in scene.bands if b.common_name == "red"), scene.bands[0])
    g = grids[ref.path]
    geom, bbox, (lon, _) = _footprint(g)
    when = scene.when
    notes = list(scene.notes)
    if when is None:  # local solar noon of the date: the scene's solar day stays the date
        when = dt.datetime.combine(scene.day, dt.time(12), tzinfo=dt.UTC) - dt.timedelta(hours=lon / 15.0)
        notes.append("time of day unknown: datetime is local solar noon of the acquisition date")
    props = {"datetime": _iso(when), **scene.properties, "proj:epsg": g.epsg}
    if scene.layout == "mapping" or scene.layout.startswith("gaofen"):
        props.setdefault("gsd", round(abs(g.transform.a), 9))
    props["redline:import"] = {"layout": scene.layout, "source": str(scene.source), "notes": notes}
    ext = EXTENSIONS + ([_CLASSIFICATION] if any(b.classification for b in scene.bands) else [])
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": ext, "id": scene.id, "collection": collection,
        "geometry": geom, "bbox": bbox, "properties": props, "links": [], "assets": assets,
    }


def _collection(cid: str, items: list[dict], layouts: dict[str, int], folder: Path) -> dict:
    bboxes = np.array([it["bbox"] for it in items])
    bbox = [float(bboxes[:, 0].min()), float(bboxes[:, 1].min()), float(bboxes[:, 2].max()), float(bboxes[:, 3].max())]
    what = "; ".join(f"{n} scene(s) {LAYOUTS.get(k, 'described by a band-mapping file')}" for k, n in layouts.items())
    platforms = sorted({it["properties"]["platform"] for it in items if it["properties"].get("platform")})
    summaries: dict[str, Any] = {"gsd": sorted({a["gsd"] for it in items for a in it["assets"].values()})}
    if platforms:
        summaries["platform"] = platforms
    return {
        "type": "Collection", "stac_version": "1.0.0", "stac_extensions": [], "id": cid,
        "title": f"Scenes imported from {folder.name}",
        "description": f"Imported by `redline stac import` from {folder}: {what}. Cloud-Optimized GeoTIFFs, one per band at its native resolution.",
        "license": "various", "providers": [{"name": "redline stac import", "roles": ["processor"]}],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[items[0]["properties"]["datetime"], items[-1]["properties"]["datetime"]]]}},
        "summaries": summaries, "links": [],
    }


def _prepare_out(out: Path, folder: Path, overwrite: bool) -> None:
    if out == folder or folder in out.parents:
        raise SceneFilesError(f"--out {out}: inside the folder being imported ({folder}); give a folder outside it")
    if out.exists() and not out.is_dir():
        raise SceneFilesError(f"--out {out}: exists and is not a folder; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SceneFilesError(f"--out {out}: folder exists and is not empty; give a new or empty folder, or --overwrite to replace it")


def import_folder(
    folder: Path | str, out: Path | str, *, mapping: Path | str | None = None, collection: str | None = None, overwrite: bool = False
) -> ImportResult:
    """Import the scenes of ``folder`` as COGs + STAC Items into ``out`` (see the module docstring).

    Parameters
    ----------
    folder
        Folder (searched recursively) of GeoTIFF / JPEG2000 band files.
    out
        Output folder: ``items.json`` (FeatureCollection, items sorted by datetime, absolute
        ``file://`` hrefs into ``out``), ``collection.json`` and ``<item id>/<asset>.tif``. Must be
        new or empty unless ``overwrite``; written to a temporary sibling and renamed into place.
    mapping
        A band-mapping YAML file; when given, only it describes the scenes (no layout detection).
    collection
        Collection id of every item; default: the layout's (``landsat-c2-l2`` …), the mapping's
        ``collection`` or FOLDER's name, ``redline-import`` for a mix of layouts.
    overwrite
        Replace a non-empty ``out``.

    Returns
    -------
    ImportResult
        Geometry and bbox of each item are the red band's grid outline in EPSG:4326 (lon, lat);
        ``proj:*`` per asset in the files' own CRS.

    Raises
    ------
    SceneFilesError
        One line naming the file or mapping key and what to do; nothing is written.
    """
    folder = Path(folder).expanduser().resolve()
    root = Path(out).expanduser().resolve()
    if not folder.is_dir():
        raise SceneFilesError(f"{folder}: not a folder; give the folder that holds the scene files")
    _prepare_out(root, folder, overwrite)
    files = _raster_files(folder)
    if mapping is not None:
        mapping_path = Path(mapping).expanduser()
        spec = load_mapping(mapping_path)
        scenes, used = _mapped(folder, files, spec, mapping_path)
        default_cid = spec.collection or folder.name
    else:
        scenes, used = [], set()
        for finder in (_landsat, _sentinel2, _gaofen):
            found, u = finder([p for p in files if p not in used])
            scenes += found
            used |= u
        if not scenes:
            examples = ", ".join(p.relative_to(folder).as_posix() for p in files[:3]) or "no .tif/.tiff/.jp2 files"
            raise SceneFilesError(f"{folder}: no known band layout among its {len(files)} raster file(s) ({examples}); known: {_KNOWN}; "
                                  "for other files give --mapping FILE (README: Scenes from files)")
        kinds = {s.layout for s in scenes}
        default_cid = scenes[0].layout if len(kinds) == 1 else "redline-import"
    ids = [s.id for s in scenes]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise SceneFilesError(f"{folder}: two scenes have the id {dup!r} (the same product in two places?); keep one copy")
    grids = {p: _read_grid(p) for s in scenes for p in dict.fromkeys(b.path for b in s.bands)}
    for s in scenes:
        _check_scene(s, grids)
    cid = collection or default_cid
    with replaced_folder(root, label="importing") as tmp:
        items = [_item(s, cid, tmp, root, grids) for s in scenes]
        items.sort(key=lambda it: (it["properties"]["datetime"], it["id"]))
        layouts: dict[str, int] = {}
        for s in sorted(scenes, key=lambda s: s.layout):
            layouts[s.layout] = layouts.get(s.layout, 0) + 1
        (tmp / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}, ensure_ascii=False, indent=1), encoding="utf-8")
        (tmp / "collection.json").write_text(json.dumps(_collection(cid, items, layouts, folder), ensure_ascii=False, indent=1), encoding="utf-8")
    bands = tuple(n for n in COMMON_NAMES if any(b.common_name == n for s in scenes for b in s.bands))
    masked = {s.id for s in scenes if any(b.role == "mask" for b in s.bands)}
    unmasked = tuple(it["id"] for it in items if it["id"] not in masked)
    notes = tuple(dict.fromkeys(n for s in scenes for n in s.notes))
    return ImportResult(root, root / "items.json", root / "collection.json", cid, tuple(it["id"] for it in items), layouts, bands,
                        unmasked, tuple(p for p in files if p not in used), notes)
