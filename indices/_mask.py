from __future__ import annotations

from collections.abc import Iterable

import dask.array as dsa
import numpy as np
import xarray as xr
from scipy import ndimage

#: ESA Sentinel-2 L2A Scene Classification legend (Sentinel-2 L2A Product Specification,
#: S2-PDGS-MPC-L2A-PDD, table "SCL").
SCL_CLASSES = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}

#: Classes masked by default: no data, saturated, cloud shadow, cloud medium/high, cirrus, snow.
DEFAULT_SCL_MASK = (0, 1, 3, 8, 9, 10, 11)


def clear_mask(scl: xr.DataArray, masked_classes: Iterable[int] = DEFAULT_SCL_MASK) -> xr.DataArray:
    """True where the SCL class is not in ``masked_classes`` (lazy, bool, same dims as ``scl``)."""
    bad = scl.isin(list(masked_classes))
    return (~bad).rename("clear")


def _dilate_block(block: np.ndarray, iterations: int) -> np.ndarray:
    structure = ndimage.generate_binary_structure(2, 1)
    out = np.empty_like(block)
    for i in range(block.shape[0]):
        out[i] = ndimage.binary_dilation(block[i], structure=structure, iterations=iterations)
    return out


def dilate_mask(clear: xr.DataArray, distance_m: float, resolution_m: float) -> xr.DataArray:
    """Grow the *unclear* area of a (time, y, x) clear mask by ``distance_m`` metres.

    The dilation runs per date with a 4-connected structuring element, lazily with
    ``dask.array.map_overlap`` so chunk edges are exact.
    """
    iterations = int(round(distance_m / resolution_m))
    if iterations <= 0:
        return clear
    data = clear.data
    if not isinstance(data, dsa.Array):
        data = dsa.from_array(data, chunks=(1, -1, -1))
    unclear = ~data
    grown = dsa.map_overlap(
        _dilate_block, unclear, depth={0: 0, 1: iterations, 2: iterations}, boundary=False,
        iterations=iterations, dtype=bool,
    )
    return clear.copy(data=~grown)


#: Landsat Collection 2 QA_PIXEL bit positions (USGS, Landsat 8-9 Collection 2 Level 2
#: Science Product Guide LSDS-1619, "Pixel Quality Assessment (QA_PIXEL)" bit table, and Landsat
#: 4-7 Collection 2 Level 2 Science Product Guide LSDS-1618: same layout, bit 2 cirrus unused
#: there): 0 fill, 1 dilated cloud, 2 cirrus (high confidence), 3 cloud, 4 cloud shadow,
#: 5 snow, 6 clear, 7 water. Used when an item's QA asset carries no ``classification:bitfields``.
QA_PIXEL_BITS = {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4, "snow": 5, "clear": 6, "water": 7}

#: QA flags masked by default: fill, dilated cloud, cirrus, cloud, cloud shadow, snow.
DEFAULT_QA_FLAGS = ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")

#: Class names (``classification:classes``, e.g. Fmask) masked by default.
DEFAULT_MASKED_CLASS_NAMES = ("nodata", "no_data", "fill", "cloud", "cloud_shadow", "shadow", "snow", "snow_ice", "cirrus")

#: Bitfield names that mean one of the flags above (Landsat Collection 1 BQA, USGS "Landsat Collection 1 Level-1 Quality Assessment Band":
#: ``designated_fill``, ``snow_ice_confidence`` …).
_FLAG_ALIASES = {"designated_fill": "fill", "snow_ice": "snow", "shadow": "cloud_shadow"}


def _flag_name(name: str) -> str:
    name = name.lower()
    return _FLAG_ALIASES.get(name, name)


def _field(qa: xr.DataArray, offset: int, length: int) -> xr.DataArray:
    """The unsigned integer in bits ``offset … offset+length-1`` of ``qa`` (lazy)."""
    return (qa.astype("int64") // (2**offset)) % (2**length)


def qa_bits_clear(
    qa: xr.DataArray,
    bitfields: Iterable[tuple[str, int, int, Iterable[tuple[int, str]]]] = (),
    flags: Iterable[str] = DEFAULT_QA_FLAGS,
) -> xr.DataArray:
    """True where none of ``flags`` is set in a bit-packed QA band (lazy, bool).

    Parameters
    ----------
    qa
        The QA band, e.g. Landsat QA_PIXEL (uint16).
    bitfields
        ``(name, offset, length, classes)`` from the asset's ``classification:bitfields``;
        empty: the Landsat Collection 2 QA_PIXEL layout (:data:`QA_PIXEL_BITS`).
    flags
        Flag names to mask. A one-bit field of that name is masked when set; without one, a
        two-bit ``<name>_confidence`` field is masked at its ``high`` class (value 3).
    """
    fields = list(bitfields) or [(n, b, 1, ()) for n, b in QA_PIXEL_BITS.items()]
    by_name = {_flag_name(n): (o, ln, dict(c)) for n, o, ln, c in fields}
    bad = xr.zeros_like(qa, dtype=bool)
    for flag in flags:
        flag = _flag_name(flag)
        if flag in by_name and by_name[flag][1] == 1:
            o, _, _ = by_name[flag]
            bad = bad | (_field(qa, o, 1) == 1)
        elif f"{flag}_confidence" in by_name:
            o, ln, classes = by_name[f"{flag}_confidence"]
            high = next((v for v, n in classes.items() if n == "high"), 2**ln - 1)
            bad = bad | (_field(qa, o, ln) == high)
    return (~bad).rename("clear")


def classes_clear(
    mask: xr.DataArray,
    classes: Iterable[tuple[int, str]],
    masked_names: Iterable[str] = DEFAULT_MASKED_CLASS_NAMES,
) -> xr.DataArray:
    """True where a class-coded mask (e.g. Fmask) holds none of the classes named in
    ``masked_names`` (lazy, bool); ``classes`` is ``(value, name)`` from
    ``classification:classes``."""
    names = {n.lower() for n in masked_names}
    values = [v for v, n in classes if n.lower() in names]
    return (~mask.isin(values)).rename("clear")
