"""Parse STAC Items once, at the boundary, into small immutable records.

A :class:`ParsedItem` says, for one item, which asset holds each common band (blue, green,
red, nir, swir16, swir22 …), how its digital numbers become surface reflectance
(``refl = DN * scale + offset``), which DN means no data, which asset is the quality mask and
how to read it, and the native grid. Everything after (loading, masking, the manifest) works
on these records, never on raw JSON.

Where the scale and offset come from, in order (the first that applies wins; the reason is
kept in :attr:`BandInfo.reason` and recorded per item in the scan's manifest):

1. **Earth Search harmonised Sentinel-2 L2A COGs** (hrefs in the ``sentinel-cogs`` bucket,
   ``sentinel-s2-l2a-cogs/``: Earth Search v0 ``sentinel-s2-l2a-cogs`` and v1
   ``sentinel-2-l2a``): Element 84 subtracted the processing-baseline-04.00 offset in the
   data, so ``refl = DN * 0.0001`` with offset 0, whatever ``raster:bands.offset`` (−0.1) and
   the ``earthsearch:boa_offset_applied`` / ``sentinel:boa_offset_applied`` flag say; both are
   known to be wrong on some items (Element84/earth-search#9, #66, #71;
   cirrus-geo/cirrus-earth-search#33).
2. **Declared** scale/offset: STAC 1.0 ``raster:bands[0].scale/offset`` or STAC 1.1
   ``raster:scale``/``raster:offset`` on the asset (or its ``bands[0]``). Earth Search v1
   ``sentinel-2-c1-l2a`` and ``sentinel-2-l1c`` (0.0001, −0.1), Landsat C2 L2 on Earth
   Search / Planetary Computer (2.75e-5, −0.2), CDSE STAC 1.1.
3. **Sentinel-2 without declared scaling** (Planetary Computer ``sentinel-2-l2a``, files
   described by hand): scale 0.0001 (QUANTIFICATION_VALUE 10000) and, for processing
   baseline ≥ 04.00, offset −0.1 (BOA_ADD_OFFSET / RADIO_ADD_OFFSET −1000 DN; ESA,
   "Copernicus Sentinel-2: Major Products Upgrade", 25 Jan 2022, and the Sentinel-2 Products
   Specification Document S2-PDGS-TAS-DI-PSD). The baseline is read from
   ``s2:processing_baseline`` / ``sentinel:processing_baseline``, else from ``_Nxxyy_`` in the
   product id.
4. **Landsat Collection 2 Level-2 without declared scaling** (USGS landsatlook
   ``landsat-c2l2-sr``): scale 2.75e-5, offset −0.2, nodata 0 (USGS, Landsat 8-9 Collection 2
   Level 2 Science Product Guide LSDS-1619, surface reflectance scale factors, and LSDS-1618 for
   Landsat 4-7).
5. **Digital Earth Australia ARD** (``nbart_*``): scale 0.0001, offset 0, nodata −999 (DEA
   "Landsat Surface Reflectance (NBART)" product documentation).
6. Otherwise scale 1 and offset 0 (the values are taken as reflectance), with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pystac

__all__ = ["BandInfo", "MaskInfo", "ParsedItem", "parse_item", "REFLECTANCE_BANDS", "THERMAL_BANDS", "sensor_of"]

#: Common band names redline loads as reflectance (STAC eo ``common_name``).
REFLECTANCE_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
#: Common names of the thermal band loaded as land-surface temperature, in order of preference:
#: Landsat 8/9 TIRS band 10 (``lwir11``; band 11 is not used for Collection 2 surface
#: temperature), Landsat 4–7 TM/ETM+ band 6 (``lwir``) (USGS LSDS-1619, Collection 2 Level-2 ST).
THERMAL_BANDS = ("lwir11", "lwir")

#: Every common name a reflectance asset may carry (STAC eo extension, "common band names").
_COMMON_NAMES = {
    "coastal", "blue", "green", "red", "yellow", "pan", "rededge", "nir", "nir08", "nir09", "cirrus",
    "swir16", "swir22", "lwir", "lwir11", "lwir12",
}
#: Band *names* (``eo:bands[].name``) that stand for a common name when ``common_name`` is
#: missing: Digital Earth Australia ``nbart_*`` names, and Sentinel-2 band ids (ESA MSI band
#: designations, S2 MSI User Guide) used by Earth Search v0 and Planetary Computer assets.
_NAME_ALIASES = {
    "swir_1": "swir16", "swir_2": "swir22", "swir1": "swir16", "swir2": "swir22", "coastal_aerosol": "coastal",
    "b01": "coastal", "b02": "blue", "b03": "green", "b04": "red", "b08": "nir", "b8a": "nir08",
    "b09": "nir09", "b10": "cirrus", "b11": "swir16", "b12": "swir22",
}
#: Scale of Sentinel-2 L1C/L2A DN (QUANTIFICATION_VALUE 10000, S2 PSD).
S2_SCALE = 1e-4
#: BOA_ADD_OFFSET (L2A) / RADIO_ADD_OFFSET (L1C) of −1000 DN in reflectance units, for
#: processing baseline ≥ 04.00 (ESA, 25 January 2022).
S2_OFFSET_PB04 = -0.1
#: Landsat Collection 2 Level-2 surface reflectance scale and offset (USGS LSDS-1619, scale factors).
LANDSAT_C2L2_SCALE, LANDSAT_C2L2_OFFSET = 2.75e-5, -0.2
#: Landsat Collection 2 Level-2 surface temperature: Kelvin = DN × 0.00341802 + 149.0
#: (USGS LSDS-1619, Landsat 8-9 Collection 2 Level 2 Science Product Guide, scale factors).
LANDSAT_C2L2_ST_SCALE, LANDSAT_C2L2_ST_OFFSET = 0.00341802, 149.0
#: Digital Earth Australia ARD NBART: reflectance × 10000, nodata −999.
DEA_SCALE, DEA_NODATA = 1e-4, -999

_IMAGE_TYPES = ("image/tiff", "image/vnd.stac.geotiff", "image/jp2", "application/x-hdf")
_SKIP_ROLES = {"thumbnail", "overview", "visual"}


@dataclass(frozen=True)
class BandInfo:
    """One reflectance band of one item.

    ``refl = DN * scale + offset`` (reflectance 0–1, unitless); ``nodata`` is the DN that
    marks no data (``None``: none declared). ``source`` is where scale and offset came from
    (``raster:bands``, ``raster:scale``, ``rule``); ``reason`` says why, in words.
    """

    common_name: str
    asset: str
    href: str
    scale: float
    offset: float
    nodata: float | None
    source: str
    reason: str
    resolution: float | None = None
    data_type: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class MaskInfo:
    """The quality mask of an item.

    ``kind`` is ``scl`` (Sentinel-2 Scene Classification), ``bits`` (a bit-packed QA band,
    e.g. Landsat QA_PIXEL; ``bitfields`` gives ``(name, offset, length, {value: class name})``)
    or ``classes`` (a class-coded band, e.g. Fmask; ``classes`` maps value → class name).
    """

    asset: str
    href: str
    kind: str
    nodata: float | None
    bitfields: tuple[tuple[str, int, int, tuple[tuple[int, str], ...]], ...] = ()
    classes: tuple[tuple[int, str], ...] = ()
    data_type: str | None = None


@dataclass(frozen=True)
class ParsedItem:
    """What redline needs from one STAC Item (see the module docstring for the rules)."""

    id: str
    collection: str | None
    sensor: str | None
    platform: str | None
    processing_baseline: str | None
    bands: dict[str, BandInfo]
    mask: MaskInfo | None
    epsg: int | None
    shape: tuple[int, int] | None = None
    transform: tuple[float, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def thermal(self) -> BandInfo | None:
        """The thermal band (land-surface temperature, Kelvin after scaling), if the item has one
        (:data:`THERMAL_BANDS`) scaled to Kelvin: its ``raster:bands`` unit says kelvin, or the
        Landsat Collection 2 Level-2 surface-temperature rule applies. A thermal band in other
        units (Level-1 radiance, brightness temperature without a unit) is not used."""
        band = next((self.bands[b] for b in THERMAL_BANDS if b in self.bands), None)
        return band if band is not None and (band.unit or "").lower() in ("kelvin", "k") else None

    def scaling_signature(self, bands: tuple[str, ...]) -> tuple:
        """Items with the same signature can be fused by one load (same sensor, mask kind,
        per-band scale/offset/nodata)."""
        return (
            self.sensor,
            self.mask.kind if self.mask else None,
            tuple((b, self.bands[b].scale, self.bands[b].offset, self.bands[b].nodata) for b in bands if b in self.bands),
        )


def sensor_of(item: pystac.Item) -> str | None:
    """``sentinel-2``, ``landsat``, ``sentinel-1`` or ``None``, from the first of platform,
    constellation, collection id and item id that names one."""
    p = item.properties
    for value in (p.get("platform"), p.get("constellation"), item.collection_id, item.id):
        text = str(value or "").lower().replace(" ", "-")
        if "sentinel-2" in text or "sentinel2" in text or re.match(r"s2[abc]_", text):
            return "sentinel-2"
        if "landsat" in text or re.match(r"l[ceot]0\d_", text):
            return "landsat"
        if "sentinel-1" in text or re.match(r"s1[abc]_", text):
            return "sentinel-1"
    return None


def _baseline(item: pystac.Item) -> str | None:
    p = item.properties
    for key in ("s2:processing_baseline", "sentinel:processing_baseline", "processing:version"):
        if p.get(key):
            return str(p[key])
    for key in ("s2:product_uri", "sentinel:product_id", "s2:product_id"):
        m = re.search(r"_N(\d{2})(\d{2})_", str(p.get(key, "")))
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    m = re.search(r"_N(\d{2})(\d{2})_", item.id)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _asset_bands(item: pystac.Item, asset: pystac.Asset) -> list[dict[str, Any]]:
    """The band objects of an asset: STAC 1.1 ``bands``, STAC 1.0 ``eo:bands`` (dicts, or
    indices into the item's ``eo:bands``)."""
    ef = asset.extra_fields
    if isinstance(ef.get("bands"), list):
        return [b for b in ef["bands"] if isinstance(b, dict)]
    raw = ef.get("eo:bands")
    if not isinstance(raw, list):
        return []
    item_bands = item.properties.get("eo:bands") or []
    out = []
    for b in raw:
        if isinstance(b, dict):
            out.append(b)
        elif isinstance(b, int) and 0 <= b < len(item_bands):
            out.append(item_bands[b])
    return out


def _common_name(band: dict[str, Any]) -> str | None:
    cn = band.get("common_name") or band.get("eo:common_name")
    if cn:
        return str(cn).lower()
    name = str(band.get("name") or "").lower()
    for prefix in ("nbart_", "nbar_", "oli_", "sr_"):
        name = name.removeprefix(prefix)
    name = _NAME_ALIASES.get(name, name)
    return name if name in _COMMON_NAMES else None


def _is_image(asset: pystac.Asset) -> bool:
    mt = (asset.media_type or "").lower()
    if mt and not mt.startswith(_IMAGE_TYPES):
        return False
    if _SKIP_ROLES & set(asset.roles or []):
        return False
    return bool(mt) or asset.href.lower().endswith((".tif", ".tiff", ".jp2"))


def _is_cog(asset: pystac.Asset) -> bool:
    mt = (asset.media_type or "").lower()
    return "tiff" in mt or "geotiff" in mt or asset.href.lower().endswith((".tif", ".tiff"))


def _resolution(asset: pystac.Asset) -> float | None:
    ef = asset.extra_fields
    rb = (ef.get("raster:bands") or [{}])[0] if isinstance(ef.get("raster:bands"), list) else {}
    for v in (ef.get("gsd"), rb.get("spatial_resolution"), ef.get("raster:spatial_resolution")):
        if isinstance(v, (int, float)):
            return float(v)
    tr = ef.get("proj:transform")
    if isinstance(tr, list) and tr:
        return float(abs(tr[0]))
    return None


def _declared(asset: pystac.Asset, bands: list[dict[str, Any]]) -> tuple[float | None, float | None, Any, str | None, str | None]:
    """(scale, offset, nodata, data_type, source) as the asset declares them."""
    ef = asset.extra_fields
    if isinstance(ef.get("raster:bands"), list) and ef["raster:bands"]:
        rb = ef["raster:bands"][0] or {}
        has = "scale" in rb or "offset" in rb
        return rb.get("scale"), rb.get("offset"), rb.get("nodata"), rb.get("data_type"), "raster:bands" if has else None
    b0 = bands[0] if len(bands) == 1 else {}
    scale = ef.get("raster:scale", b0.get("raster:scale"))
    offset = ef.get("raster:offset", b0.get("raster:offset"))
    nodata = ef.get("nodata", b0.get("nodata"))
    dtype = ef.get("data_type", b0.get("data_type"))
    return scale, offset, nodata, dtype, "raster:scale" if scale is not None or offset is not None else None


def _unit(asset: pystac.Asset) -> str | None:
    """The unit an asset's ``raster:bands`` declares (e.g. ``kelvin``), if any."""
    rbs = asset.extra_fields.get("raster:bands")
    if isinstance(rbs, list) and rbs and isinstance(rbs[0], dict) and rbs[0].get("unit"):
        return str(rbs[0]["unit"])
    return None


def _baseline_ge_04(baseline: str | None) -> bool | None:
    if baseline is None:
        return None
    try:
        return float(baseline) >= 4.0
    except ValueError:
        return None


def _scaling(
    item: pystac.Item, asset: pystac.Asset, bands: list[dict[str, Any]], sensor: str | None, baseline: str | None, *, thermal: bool = False
) -> tuple[float, float, Any, str | None, str, str]:
    scale, offset, nodata, dtype, source = _declared(asset, bands)
    href = asset.href
    if sensor == "sentinel-2" and "sentinel-cogs" in href and "/sentinel-s2-l2a-cogs/" in href:
        flag = item.properties.get("earthsearch:boa_offset_applied", item.properties.get("sentinel:boa_offset_applied"))
        why = (
            "Earth Search harmonised Sentinel-2 L2A COG (sentinel-cogs/sentinel-s2-l2a-cogs): the baseline-04.00 offset is "
            f"already removed in the data, so offset 0 (declared offset {offset!r} and boa_offset_applied={flag!r} not used; "
            "Element84/earth-search#66, #71)"
        )
        return float(scale or S2_SCALE), 0.0, 0 if nodata is None else nodata, dtype, "rule", why
    if source is not None:
        return float(1.0 if scale is None else scale), float(0.0 if offset is None else offset), nodata, dtype, source, f"declared in {source}"
    if sensor == "sentinel-2":
        ge04 = _baseline_ge_04(baseline)
        applied = item.properties.get("sentinel:boa_offset_applied")
        if ge04 is None:
            dt_ = item.datetime
            ge04 = bool(dt_ and (dt_.year, dt_.month, dt_.day) >= (2022, 1, 25))
            base = f"processing baseline unknown, sensing date {dt_:%Y-%m-%d} {'≥' if ge04 else '<'} 2022-01-25"
        else:
            base = f"processing baseline {baseline} {'≥' if ge04 else '<'} 04.00"
        off = S2_OFFSET_PB04 if ge04 and applied is not True else 0.0
        why = f"Sentinel-2 without declared scaling: scale 0.0001, {base}" + (
            ", offset −0.1 (BOA_ADD_OFFSET −1000 DN)" if off else ", offset 0"
        )
        return S2_SCALE, off, 0 if nodata is None else nodata, dtype, "rule", why
    p = item.properties
    c2l2 = (
        sensor == "landsat"
        and (str(p.get("landsat:collection_number", "")) in ("02", "2") or "c2" in (item.collection_id or "").lower())
        and str(p.get("landsat:correction", "L2")).upper().startswith("L2")
    )
    if c2l2 and thermal:
        return LANDSAT_C2L2_ST_SCALE, LANDSAT_C2L2_ST_OFFSET, 0 if nodata is None else nodata, dtype, "rule", (
            "Landsat Collection 2 Level-2 surface temperature without declared scaling: 0.00341802, 149.0 K (USGS LSDS-1619, scale factors)"
        )
    if c2l2:
        return LANDSAT_C2L2_SCALE, LANDSAT_C2L2_OFFSET, 0 if nodata is None else nodata, dtype, "rule", (
            "Landsat Collection 2 Level-2 surface reflectance without declared scaling: 2.75e-5, −0.2 (USGS LSDS-1619, scale factors)"
        )
    if p.get("odc:producer") == "ga.gov.au" or "nbart" in href:
        return DEA_SCALE, 0.0, DEA_NODATA if nodata is None else nodata, dtype, "rule", (
            "Digital Earth Australia NBART: reflectance × 10000, nodata −999"
        )
    return 1.0, 0.0, nodata, dtype, "rule", "no scale/offset declared and no rule for this collection: values taken as reflectance"


#: Default legends of class-coded masks without ``classification:classes`` metadata.
#: Digital Earth Australia ``oa_fmask``: 0 nodata, 1 valid (clear), 2 cloud, 3 shadow, 4 snow,
#: 5 water (DEA "Landsat Surface Reflectance" product documentation, Fmask band).
_DEA_FMASK = ((0, "nodata"), (1, "clear"), (2, "cloud"), (3, "cloud_shadow"), (4, "snow"), (5, "water"))


def _mask_of(item: pystac.Item, sensor: str | None) -> MaskInfo | None:
    cands: list[tuple[tuple, MaskInfo]] = []
    for key, asset in item.assets.items():
        k = key.lower().removesuffix("-jp2")
        ef = asset.extra_fields
        rb = (ef.get("raster:bands") or [{}])[0] if isinstance(ef.get("raster:bands"), list) else {}
        nodata = rb.get("nodata", ef.get("nodata"))
        dtype = rb.get("data_type", ef.get("data_type"))
        bitfields = ef.get("classification:bitfields") or rb.get("classification:bitfields")
        classes = ef.get("classification:classes") or rb.get("classification:classes")
        info = None
        if k == "scl" or "scene classification" in (asset.title or "").lower():
            info = MaskInfo(key, asset.href, "scl", 0 if nodata is None else nodata, data_type=dtype)
        elif isinstance(bitfields, list) and bitfields and (k in ("qa_pixel", "bqa") or {"cloud"} & set(asset.roles or [])):
            fields = tuple(
                (str(b["name"]).lower(), int(b["offset"]), int(b["length"]),
                 tuple((int(c["value"]), str(c["name"]).lower()) for c in b.get("classes", [])))
                for b in bitfields
            )
            info = MaskInfo(key, asset.href, "bits", nodata, bitfields=fields, data_type=dtype)
        elif k == "qa_pixel":
            info = MaskInfo(key, asset.href, "bits", 1 if nodata is None else nodata, bitfields=(), data_type=dtype)
        elif isinstance(classes, list) and classes and (k in ("fmask", "oa_fmask") or {"cloud"} & set(asset.roles or [])):
            info = MaskInfo(key, asset.href, "classes", nodata, classes=tuple((int(c["value"]), str(c["name"]).lower()) for c in classes), data_type=dtype)
        elif k in ("oa_fmask", "fmask"):
            info = MaskInfo(key, asset.href, "classes", 0 if nodata is None else nodata, classes=_DEA_FMASK, data_type=dtype)
        if info is not None:
            cands.append(((not _is_cog(asset), key != key.lower()), info))
    if not cands:
        return None
    return sorted(cands, key=lambda c: c[0])[0][1]


def item_grid(item: pystac.Item, asset: pystac.Asset | None) -> tuple[int | None, tuple[int, int] | None, tuple[float, ...] | None]:
    """EPSG code, (rows, cols) and affine transform of ``asset``'s pixels from its ``proj:``
    fields, else the item's; None for what neither declares."""
    src = [asset.extra_fields if asset is not None else {}, item.properties]
    epsg = shape = transform = None
    for d in src:
        if epsg is None:
            if d.get("proj:epsg") is not None:
                epsg = int(d["proj:epsg"])
            elif isinstance(d.get("proj:code"), str) and d["proj:code"].upper().startswith("EPSG:"):
                epsg = int(d["proj:code"].split(":")[1])
        if shape is None and d.get("proj:shape"):
            shape = (int(d["proj:shape"][0]), int(d["proj:shape"][1]))
        if transform is None and d.get("proj:transform"):
            transform = tuple(float(v) for v in d["proj:transform"][:6])
    return epsg, shape, transform


def parse_item(item: pystac.Item) -> ParsedItem:
    """Parse one STAC Item into a :class:`ParsedItem` (bands by common name, scaling, mask, grid).

    Band assets are found from their band metadata (``eo:bands`` / ``bands``: ``common_name``,
    else a known band ``name``), never from a fixed list of asset keys. When several assets
    carry one common name (Earth Search ``red`` and ``red-jp2``), the COG whose key is the
    common name wins, then the finest resolution. ``nir`` falls back on ``nir08`` when an item
    has no broad NIR band (Landsat OLI B5, TM/ETM+ B4).
    """
    sensor = sensor_of(item)
    baseline = _baseline(item) if sensor == "sentinel-2" else None
    cands: dict[str, list[tuple[tuple, str, pystac.Asset, list[dict[str, Any]]]]] = {}
    for key, asset in item.assets.items():
        if not _is_image(asset):
            continue
        bands = _asset_bands(item, asset)
        if len(bands) > 1:
            continue
        cn = _common_name(bands[0]) if bands else _NAME_ALIASES.get(key.lower(), key.lower() if key.lower() in _COMMON_NAMES else None)
        if cn is None:
            continue
        res = _resolution(asset)
        rank = (key.lower() != cn, not _is_cog(asset), res if res is not None else 1e9, key)
        cands.setdefault(cn, []).append((rank, key, asset, bands))
    if "nir" not in cands and "nir08" in cands:
        cands["nir"] = cands["nir08"]
    out: dict[str, BandInfo] = {}
    notes: list[str] = []
    for cn, lst in cands.items():
        _, key, asset, bands = sorted(lst, key=lambda c: c[0])[0]
        scale, offset, nodata, dtype, source, reason = _scaling(item, asset, bands, sensor, baseline, thermal=cn in THERMAL_BANDS)
        unit = _unit(asset) or ("kelvin" if cn in THERMAL_BANDS and "surface temperature" in reason else None)
        out[cn] = BandInfo(cn, key, asset.href, scale, offset, nodata, source, reason, _resolution(asset), dtype, unit)
        if source == "rule" and cn in REFLECTANCE_BANDS and reason not in notes:
            notes.append(reason)
    first = next((item.assets[b.asset] for b in out.values()), None)
    epsg, shape, transform = item_grid(item, item.assets.get(out["red"].asset) if "red" in out else first)
    return ParsedItem(
        id=item.id, collection=item.collection_id, sensor=sensor, platform=item.properties.get("platform"),
        processing_baseline=baseline, bands=out, mask=_mask_of(item, sensor), epsg=epsg, shape=shape,
        transform=transform, notes=tuple(notes),
    )
