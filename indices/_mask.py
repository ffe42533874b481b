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
