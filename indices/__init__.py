"""Spectral indices and quality masks.

Index formulas come from the Awesome Spectral Indices catalogue through ``spyndex``
(Montero et al. 2023, https://doi.org/10.1038/s41597-023-02096-0); each index's original
reference is kept in :data:`INDEX_REFERENCES`. Masks follow the ESA Sentinel-2 L2A Scene
Classification (SCL) legend, the USGS Landsat Collection 2 QA_PIXEL bits, or the class and
bit legends an item declares (``classification`` extension). The RSEI indicators missing from
that catalogue (tasselled-cap wetness, IBI, NDBSI) are in ``indices._ecology`` with their sources.
"""

from indices._ecology import TC_WETNESS, ibi, ndbsi, tasselled_cap_wetness, wetness_set_for
from indices._mask import (
    DEFAULT_MASKED_CLASS_NAMES,
    DEFAULT_QA_FLAGS,
    DEFAULT_SCL_MASK,
    QA_PIXEL_BITS,
    SCL_CLASSES,
    classes_clear,
    clear_mask,
    dilate_mask,
    qa_bits_clear,
)
from indices._spectral import BAND_SYMBOLS, INDEX_REFERENCES, compute_indices, index_bands

__all__ = [
    "BAND_SYMBOLS",
    "INDEX_REFERENCES",
    "compute_indices",
    "index_bands",
    "SCL_CLASSES",
    "DEFAULT_SCL_MASK",
    "clear_mask",
    "dilate_mask",
    "QA_PIXEL_BITS",
    "DEFAULT_QA_FLAGS",
    "DEFAULT_MASKED_CLASS_NAMES",
    "qa_bits_clear",
    "classes_clear",
    "TC_WETNESS",
    "tasselled_cap_wetness",
    "wetness_set_for",
    "ibi",
    "ndbsi",
]
