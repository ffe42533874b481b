"""Assessment building blocks on real Sentinel-2 pixels and real polygons (eo-box Brandenburg,
tests/data/brandenburg): exactextract against a supersampled brute force, tasselled-cap wetness,
and the sign of RSEI."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.enums import Resampling

import indices
from redline import assess
from redline.assess.rsei import GRADES, grade, rsei, rsei_periods
from tests._reference import coverage_fractions, weighted_mean

DATA = Path(__file__).parent / "data" / "brandenburg"
NAMES = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2", "B07": "rededge3",
         "B08": "nir", "B8A": "nir08", "B09": "nir09", "B10": "cirrus", "B11": "swir16", "B12": "swir22"}


@pytest.fixture(scope="module")
def scene() -> xr.Dataset:
    """All 13 bands as TOA reflectance on the 10 m grid (20/60 m bands nearest-resampled)."""
    with rasterio.open(DATA / "s2l1c_10m.tif") as ref:
        shape, transform, crs = ref.shape, ref.transform, ref.crs
    out = {}
    for res in ("10m", "20m", "60m"):
        with rasterio.open(DATA / f"s2l1c_{res}.tif") as src:
            # resample through a VRT-like read onto the 10 m grid
            from rasterio.vrt import WarpedVRT

            with WarpedVRT(src, crs=crs, transform=transform, width=shape[1], height=shape[0], resampling=Resampling.nearest) as vrt:
                data = vrt.read().astype("float32") / 10000.0
            for i, b in enumerate(src.descriptions):
                out[NAMES[b]] = (("y", "x"), data[i])
    return xr.Dataset(out, attrs={"transform": transform, "crs": str(crs)})


@pytest.fixture(scope="module")
def ndvi_tif(scene, tmp_path_factory) -> Path:
    ndvi = indices.compute_indices(scene, ["NDVI"])["NDVI"].values
    path = tmp_path_factory.mktemp("bb") / "ndvi.tif"
    with rasterio.open(path, "w", driver="GTiff", width=ndvi.shape[1], height=ndvi.shape[0], count=1, dtype="float32",
                       crs=scene.attrs["crs"], transform=scene.attrs["transform"], nodata=np.nan) as dst:
        dst.write(ndvi[None])
    return path


@pytest.fixture(scope="module")
def polygons() -> gpd.GeoDataFrame:
    ref = gpd.read_file(DATA / "polygons.gpkg", layer="s2l1c_ref")
    osm = gpd.read_file(DATA / "polygons.gpkg", layer="osm_landuse")
    out = gpd.GeoDataFrame({"key": [f"ref{p}" for p in ref["pid"]] + [f"osm{n}-{i}" for n, i in enumerate(osm["osm_id"])],
                            "fclass": [None] * len(ref) + list(osm["fclass"])}, geometry=list(ref.geometry) + list(osm.geometry), crs=ref.crs)
    return out


def test_exactextract_means_match_a_supersampled_brute_force(ndvi_tif, polygons):
    got = assess.zonal_means({"ndvi": ndvi_tif}, polygons, "key").set_index("key")["ndvi"]
    with rasterio.open(ndvi_tif) as src:
        values, transform = src.read(1), src.transform
    rel = []
    for r in polygons.itertuples():
        cover = coverage_fractions(r.geometry, transform, values.shape, k=50)
        ref = weighted_mean(values, cover)
        rel.append(abs(got[r.key] - ref) / abs(ref))
    print(f"exactextract vs brute force (k=50) over {len(rel)} real polygons: max relative difference {max(rel):.2e}")
    assert len(rel) == 76
    assert max(rel) < 0.005


def test_exactextract_coverage_differs_from_centre_point_rasterising_on_small_polygons(ndvi_tif, polygons):
    """The reason for exact coverage: centre-point rasterising misses part of a small zone."""
    from rasterio import features

    with rasterio.open(ndvi_tif) as src:
        transform, shape = src.transform, src.shape
    small = polygons[polygons.geometry.area < 2000]
    assert len(small) >= 3
    for geom in small.geometry:
        exact = coverage_fractions(geom, transform, shape, k=25).sum() * 100.0
        centre = features.rasterize([(geom, 1)], out_shape=shape, transform=transform, dtype="uint8").sum() * 100.0
        assert exact == pytest.approx(geom.area, rel=0.01)
    errors = [abs(features.rasterize([(g, 1)], out_shape=shape, transform=transform, dtype="uint8").sum() * 100.0 - g.area) / g.area for g in small.geometry]
    assert max(errors) > 0.05


def test_grade_shares_match_the_brute_force(scene, polygons, tmp_path):
    ndvi = indices.compute_indices(scene, ["NDVI"])["NDVI"].values
    codes = grade(np.clip((ndvi + 0.1) / 0.6, 0, 1))  # a real, spatially varied 0–1 field
    path = tmp_path / "grade.tif"
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0], count=1, dtype="uint8",
                       crs=scene.attrs["crs"], transform=scene.attrs["transform"], nodata=0) as dst:
        dst.write(codes[None])
    got = assess.grade_shares(path, polygons, "key", "g").set_index("key")
    worst = 0.0
    for r in polygons.itertuples():
        cover = coverage_fractions(r.geometry, scene.attrs["transform"], codes.shape, k=25)
        valid = cover * (codes > 0)
        for code, (k, _) in GRADES.items():
            ref = float((valid * (codes == code)).sum() / valid.sum())
            worst = max(worst, abs(got.loc[r.key, f"g_share_{k}"] - ref))
    assert worst < 0.005
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-3)


def test_six_band_wetness_tracks_the_thirteen_band_sentinel2_coefficients(scene):
    """Shi & Xu 2019 (13 bands) vs Baig et al. 2014 on the six OLI-equivalent bands the scan loads."""
    full = indices.tasselled_cap_wetness(scene)
    six = indices.tasselled_cap_wetness(scene[["blue", "green", "red", "nir", "swir16", "swir22"]])
    assert full.attrs["coefficients"] == "sentinel-2" and six.attrs["coefficients"] == "landsat-oli"
    r = np.corrcoef(full.values.ravel(), six.values.ravel())[0, 1]
    print(f"wetness 13-band Shi & Xu vs 6-band Baig: r = {r:.3f}")
    assert r > 0.95
    with pytest.raises(KeyError, match="swir22"):
        indices.tasselled_cap_wetness(scene[["blue", "green", "red", "nir", "swir16"]])


def _components(scene):
    optical = scene[["blue", "green", "red", "nir", "swir16", "swir22"]]
    comps = {"NDVI": indices.compute_indices(optical, ["NDVI"])["NDVI"].values,
             "WET": indices.tasselled_cap_wetness(optical).values,
             "NDBSI": indices.ndbsi(optical).values}
    return comps, indices.compute_indices(optical, ["MNDWI"])["MNDWI"].values


def test_rsei_is_higher_where_ecology_is_better(scene, polygons):
    comps, mndwi = _components(scene)
    res = rsei(comps, mndwi)
    value = res.rsei["period"]
    assert res.loadings["NDVI"] > 0 and res.loadings["NDBSI"] < 0
    ok = np.isfinite(value)
    assert np.nanmin(value) == 0.0 and np.nanmax(value) == 1.0
    # a February scene: greenness varies little, so it loads less than wetness and dryness
    assert np.corrcoef(value[ok], comps["NDVI"][ok])[0, 1] > 0.3
    assert np.corrcoef(value[ok], comps["NDBSI"][ok])[0, 1] < -0.5
    assert not np.isfinite(value[mndwi > 0]).any()  # water is left out
    transform = scene.attrs["transform"]
    means = {}
    for cls in ("forest", "residential"):
        geoms = polygons[polygons["fclass"] == cls].geometry
        cover = sum(coverage_fractions(g, transform, value.shape, k=5) for g in geoms)
        means[cls] = weighted_mean(value, cover)
    print(f"RSEI over OSM forest {means['forest']:.3f}, residential {means['residential']:.3f}")
    assert means["forest"] > means["residential"] + 0.1


def test_rsei_sign_does_not_depend_on_the_order_or_polarity_of_the_decomposition(scene):
    comps, mndwi = _components(scene)
    a = rsei(comps, mndwi).rsei["period"]
    b = rsei(dict(reversed(list(comps.items()))), mndwi).rsei["period"]
    np.testing.assert_allclose(a, b, atol=1e-5, equal_nan=True)
    # the decomposition of the negated indicators has the opposite eigenvector; the index does not change
    flipped = {k: -v for k, v in comps.items()}
    c = rsei_periods({"p": flipped}, {"p": mndwi}).rsei["p"]
    assert np.corrcoef(a[np.isfinite(a)], c[np.isfinite(c)])[0, 1] < -0.99  # negated inputs mean a worse place: sign follows the meaning


def test_pooled_rsei_keeps_unchanged_pixels_unchanged(scene):
    comps, mndwi = _components(scene)
    res = rsei_periods({"before": comps, "after": comps}, {"before": mndwi, "after": mndwi}, pooled=True)
    np.testing.assert_array_equal(res.rsei["before"], res.rsei["after"])
    assert "pooled" in res.variant and "no thermal band" in res.variant


def test_grades_follow_the_0_2_steps():
    codes = grade(np.array([0.0, 0.19, 0.2, 0.45, 0.6, 0.79, 0.8, 1.0, np.nan]))
    assert codes.tolist() == [1, 1, 2, 3, 4, 4, 5, 5, 0]
    assert [GRADES[c][1] for c in (1, 2, 3, 4, 5)] == ["差", "较差", "一般", "良", "优"]


L8 = Path(__file__).parent / "data" / "landsat8_016037"


def test_four_component_rsei_with_the_thermal_band_of_a_real_landsat8_scene():
    """Landsat 8 OLI/TIRS (900 m, Collection 1 L1): TOA reflectance and B10 at-sensor brightness
    temperature from the real MTL constants (USGS Landsat 8 Data Users Handbook, sections 5.1–5.2),
    clouds and fill masked with the BQA bits; heat enters RSEI and loads negatively."""
    import re

    mtl = next(L8.glob("*_MTL.txt")).read_text()

    def v(key: str) -> float:
        return float(re.search(rf"{key} = ([-\d.E+]+)", mtl).group(1))

    with rasterio.open(next(L8.glob("*.tif"))) as src:
        dn = src.read()
        assert src.descriptions == ("B2", "B3", "B4", "B5", "B6", "B7", "B10", "BQA")
    qa = dn[7]
    clear = ((qa & 1) == 0) & (((qa >> 4) & 1) == 0)  # not fill, not cloud (Collection 1 BQA bits 0, 4)
    sin_sun = np.sin(np.radians(v("SUN_ELEVATION")))
    names = ["blue", "green", "red", "nir", "swir16", "swir22"]
    ds = xr.Dataset({n: (("y", "x"), np.where(clear, (dn[i] * v(f"REFLECTANCE_MULT_BAND_{i + 2}") + v(f"REFLECTANCE_ADD_BAND_{i + 2}")) / sin_sun, np.nan).astype("float32"))
                     for i, n in enumerate(names)})
    radiance = dn[6] * v("RADIANCE_MULT_BAND_10") + v("RADIANCE_ADD_BAND_10")
    bt = np.where(clear, v("K2_CONSTANT_BAND_10") / np.log(v("K1_CONSTANT_BAND_10") / radiance + 1.0), np.nan)
    comps = {"NDVI": indices.compute_indices(ds, ["NDVI"])["NDVI"].values, "WET": indices.tasselled_cap_wetness(ds, sensor="landsat-oli").values,
             "NDBSI": indices.ndbsi(ds).values, "LST": bt}
    res = rsei(comps, indices.compute_indices(ds, ["MNDWI"])["MNDWI"].values)
    assert res.variant.startswith("RSEI 4-component")
    assert res.loadings["LST"] < 0 and res.loadings["NDBSI"] < 0 and res.loadings["NDVI"] > 0 and res.loadings["WET"] > 0
    value = res.rsei["period"]
    ok = np.isfinite(value)
    assert 285 < np.nanmedian(bt) < 305  # a plausible August land surface in South Carolina, Kelvin
    assert np.corrcoef(value[ok], bt[ok])[0, 1] < 0
    assert np.corrcoef(value[ok], comps["NDVI"][ok])[0, 1] > 0.5
