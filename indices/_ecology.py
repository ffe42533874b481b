"""Indicators of the remote-sensing ecological index (RSEI, Xu 2013) that the Awesome Spectral
Indices catalogue does not hold: tasselled-cap wetness and the dryness index NDBSI.

References
----------
- 徐涵秋 (Xu Hanqiu) 2013. 区域生态环境变化的遥感评价指数 (A remote sensing index for assessment
  of regional ecological changes). 中国环境科学 33(5): 889–897.
- Xu H. 2008. A new index for delineating built-up land features in satellite imagery. Int. J.
  Remote Sens. 29(14): 4269–4276, doi:10.1080/01431160802039957 (IBI, ratio form).
- Rikimaru A., Roy P.S., Miyatake S. 2002. Tropical forest cover density mapping. Tropical
  Ecology 43(1): 39–47 (bare-soil index SI; Awesome Spectral Indices entry ``BI``).
- Shi T., Xu H. 2019. Derivation of tasseled cap transformation coefficients for Sentinel-2 MSI
  at-sensor reflectance data. IEEE JSTARS 12(10): 4038–4048, doi:10.1109/JSTARS.2019.2938388.
- Baig M.H.A., Zhang L., Shuai T., Tong Q. 2014. Derivation of a tasselled cap transformation
  based on Landsat 8 at-satellite reflectance. Remote Sens. Lett. 5(5): 423–431,
  doi:10.1080/2150704X.2014.915434.
"""

from __future__ import annotations

import xarray as xr

from indices._spectral import compute_indices

__all__ = ["TC_WETNESS", "tasselled_cap_wetness", "wetness_set_for", "ibi", "ndbsi"]

#: Tasselled-cap wetness coefficients per coefficient set, keyed by common band name.
#: ``sentinel-2``: Shi & Xu 2019, table of wetness coefficients for the 13 MSI bands (at-sensor
#: reflectance). ``landsat-oli``: Baig et al. 2014, wetness for OLI bands 2–7 (at-satellite
#: reflectance).
TC_WETNESS: dict[str, dict[str, float]] = {
    "sentinel-2": {
        "coastal": 0.1825, "blue": 0.1763, "green": 0.1615, "red": 0.0486, "rededge1": 0.0170,
        "rededge2": 0.0223, "rededge3": 0.0219, "nir": -0.0755, "nir08": -0.0910, "nir09": -0.1369,
        "cirrus": 0.0003, "swir16": -0.7701, "swir22": -0.5293,
    },
    "landsat-oli": {"blue": 0.1511, "green": 0.1973, "red": 0.3283, "nir": 0.3407, "swir16": -0.7117, "swir22": -0.4559},
}

#: Bands of the Shi & Xu set that may be absent without changing the result materially: the
#: cirrus band B10 (coefficient 0.0003) is not delivered in Sentinel-2 L2A products.
_NEGLIGIBLE = {"sentinel-2": {"cirrus"}}


def wetness_set_for(bands: set[str] | list[str], sensor: str = "sentinel-2") -> str:
    """The coefficient set :func:`tasselled_cap_wetness` uses for ``bands`` of ``sensor``.

    Sentinel-2 with all Shi & Xu bands (cirrus may be missing) → ``sentinel-2``. Otherwise, and
    for Landsat 8/9 OLI, the six OLI-equivalent bands with Baig et al. 2014 → ``landsat-oli``:
    the Sentinel-2 bands B2, B3, B4, B8, B11, B12 match OLI bands 2–7 closely enough that the
    Harmonized Landsat Sentinel-2 product treats them as one record after a small linear
    adjustment (Claverie et al. 2018, doi:10.1016/j.rse.2018.09.002).
    """
    have = set(bands)
    if sensor == "sentinel-2" and set(TC_WETNESS["sentinel-2"]) - _NEGLIGIBLE["sentinel-2"] <= have:
        return "sentinel-2"
    if set(TC_WETNESS["landsat-oli"]) <= have:
        return "landsat-oli"
    missing = sorted(set(TC_WETNESS["landsat-oli"]) - have)
    raise KeyError(f"tasselled-cap wetness needs bands {', '.join(missing)}, which the scan does not load")


def tasselled_cap_wetness(ds: xr.Dataset, *, sensor: str = "sentinel-2") -> xr.DataArray:
    """Tasselled-cap wetness (reflectance units, float32), lazily.

    Parameters
    ----------
    ds
        Reflectance (0–1) named by common band names; dask arrays stay lazy.
    sensor
        ``sentinel-2`` or ``landsat-oli``; which coefficient set is used follows
        :func:`wetness_set_for` and is stored in the ``coefficients`` attribute.
    """
    which = wetness_set_for(list(ds.data_vars), sensor)
    coef = TC_WETNESS[which]
    out = sum(c * ds[b] for b, c in coef.items() if b in ds)
    ref = "Shi & Xu 2019, doi:10.1109/JSTARS.2019.2938388" if which == "sentinel-2" else "Baig et al. 2014, doi:10.1080/2150704X.2014.915434"
    return out.astype("float32").rename("WET").assign_attrs(coefficients=which, reference=ref)


def ibi(ds: xr.Dataset) -> xr.DataArray:
    """Index-based built-up index, the ratio form used in RSEI (Xu 2008; Xu 2013):

    IBI = [2·S1/(S1+N) − (N/(N+R) + G/(G+S1))] / [2·S1/(S1+N) + (N/(N+R) + G/(G+S1))]
    """
    s1, n, r, g = ds["swir16"], ds["nir"], ds["red"], ds["green"]
    a = 2 * s1 / (s1 + n)
    b = n / (n + r) + g / (g + s1)
    return ((a - b) / (a + b)).astype("float32").rename("IBI")


def ndbsi(ds: xr.Dataset) -> xr.DataArray:
    """Dryness of RSEI: NDBSI = (SI + IBI) / 2 (Xu 2013), with SI the bare-soil index of
    Rikimaru et al. 2002 (Awesome Spectral Indices ``BI``: ((S1+R)−(N+B))/((S1+R)+(N+B)))."""
    si = compute_indices(ds, ["BI"])["BI"]
    return ((si + ibi(ds)) / 2).astype("float32").rename("NDBSI")
