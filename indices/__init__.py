"""Spectral indices and quality masks.

Index formulas come from the Awesome Spectral Indices catalogue through ``spyndex``
(Montero et al. 2023, https://doi.org/10.1038/s41597-023-02096-0); each index's original
reference is kept in :data:`INDEX_REFERENCES`. Masks follow the ESA Sentinel-2 L2A Scene
Classification (SCL) legend. The RSEI indicators missing from that catalogue (tasselled-cap
wetness, IBI, NDBSI) are in ``indices._ecology`` with their sources.
"""

from indices._ecology import TC_WETNESS, ibi, ndbsi, tasselled_cap_wetness, wetness_set_for
from indices._mask import DEFAULT_SCL_MASK, SCL_CLASSES, clear_mask, dilate_mask
from indices._spectral import BAND_SYMBOLS, INDEX_REFERENCES, compute_indices

__all__ = [
    "BAND_SYMBOLS",
    "INDEX_REFERENCES",
    "compute_indices",
    "SCL_CLASSES",
    "DEFAULT_SCL_MASK",
    "clear_mask",
    "dilate_mask",
    "TC_WETNESS",
    "tasselled_cap_wetness",
    "wetness_set_for",
    "ibi",
    "ndbsi",
]
