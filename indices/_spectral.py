from __future__ import annotations

from collections.abc import Iterable

import spyndex
import xarray as xr

#: redline's common band names → Awesome Spectral Indices band symbols
#: (https://github.com/awesome-spectral-indices/awesome-spectral-indices#expressions).
BAND_SYMBOLS = {
    "blue": "B",
    "green": "G",
    "red": "R",
    "nir": "N",
    "swir16": "S1",
    "swir22": "S2",
}

#: Where each index used by redline comes from (as listed by the ASI catalogue).
INDEX_REFERENCES = {
    "NDVI": "Rouse et al. 1974, NASA SP-351 (ASI: NDVI)",
    "MNDWI": "Xu 2006, doi:10.1080/01431160600589179 (ASI: MNDWI)",
    "NBR": "Key & Benson 2006, USGS RMRS-GTR-164-CD / doi:10.3133/ofr0211 (ASI: NBR)",
    "NDBI": "Zha et al. 2003, doi:10.1080/01431160304987 (ASI: NDBI)",
    "BI": "Bare Soil Index, Rikimaru et al. 2002 (ASI: BI)",
    "NDMI": "Gao 1996 / Wilson & Sader 2002, doi:10.1016/S0034-4257(01)00318-2 (ASI: NDMI)",
}


def index_bands(name: str) -> tuple[str, ...]:
    """The common band names (``blue … swir22``) index ``name`` is computed from, as the Awesome
    Spectral Indices catalogue gives its formula (e.g. ``NDVI`` → ``("red", "nir")``; order as in
    :data:`BAND_SYMBOLS`). Raises KeyError for an index outside the catalogue or one needing
    another band."""
    if name not in spyndex.indices:
        raise KeyError(f"index '{name}' is not in the Awesome Spectral Indices catalogue")
    symbols = set(spyndex.indices[name].bands)
    unknown = symbols - set(BAND_SYMBOLS.values())
    if unknown:
        raise KeyError(f"index '{name}' needs band(s) {', '.join(sorted(unknown))}, which redline does not load")
    return tuple(b for b, sym in BAND_SYMBOLS.items() if sym in symbols)


def compute_indices(ds: xr.Dataset, names: Iterable[str]) -> xr.Dataset:
    """Compute spectral indices lazily from surface reflectance.

    Parameters
    ----------
    ds
        Dataset with reflectance bands (0–1, float) named ``blue, green, red, nir, swir16,
        swir22`` (any subset the indices need); dask-backed arrays stay lazy.
    names
        Awesome Spectral Indices short names, e.g. ``["NDVI", "MNDWI", "NBR"]``.

    Returns
    -------
    xarray.Dataset
        One float32 variable per index, same dimensions and coordinates as ``ds``.
    """
    out = {}
    for name in names:
        if name not in spyndex.indices:
            raise KeyError(f"index '{name}' is not in the Awesome Spectral Indices catalogue")
        idx = spyndex.indices[name]
        params = {}
        for sym in idx.bands:
            band = next((b for b, s in BAND_SYMBOLS.items() if s == sym), None)
            if band is None or band not in ds:
                raise KeyError(f"index '{name}' needs band '{band or sym}', which the scan does not load")
            params[sym] = ds[band]
        da = spyndex.computeIndex(index=name, params=params)
        out[name] = da.astype("float32").rename(name)
    return xr.Dataset(out, attrs=ds.attrs)
