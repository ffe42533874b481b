"""Real pixels through the scan's loading path: STAC Items for real files (tests/stac_real.py)
served by the embedded STAC API, searched with pystac-client, loaded with
:func:`pipelines.load_series`, and compared with the same files read directly with rasterio.

- Sentinel-2 L1C, Brandenburg (eo-box): 10/20/60 m bands onto the 10 m grid, Planetary
  Computer conventions (no scale/offset declared; processing-baseline rule) and CDSE STAC 1.1
  conventions; PC href signing.
- Landsat 5/7 LEDAPS SR + Fmask, Colorado (eo-box): class mask from ``classification:classes``.
- Landsat 8 Collection 1 L1TP + BQA + MTL (rio-tiler): TOA scale/offset from the MTL, the BQA
  decoded from ``classification:bitfields``.
"""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject

from pipelines import REFLECTANCE_BANDS, MaskRules, get_profile, load_series, parse_item, search_items, serve_stac
from redline.errors import StacError
from tests import stac_real as S


def _geobox(path: Path) -> GeoBox:
    with rasterio.open(path) as r:
        return GeoBox((r.height, r.width), r.transform, r.crs)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as r:
        return r.read(1)


def _bbox(items: list[dict]) -> tuple[float, float, float, float]:
    return tuple(items[0]["bbox"])


def _load(*args, **kw):
    with dask.config.set(scheduler="synchronous"):
        res = load_series(*args, **kw)
        return res, res.data.compute()


@pytest.fixture(scope="module")
def real_api(tmp_path_factory):
    """The embedded STAC API over Items for all three real subsets."""
    folder = S.write_folder(tmp_path_factory.mktemp("real_api"), S.s2l1c_items() + S.landsat_colorado_items() + S.l8c1_items())
    with serve_stac(folder) as url:
        yield url


def _search(url: str, collection: str, items: list[dict]) -> list[pystac.Item]:
    res = search_items(url, collections=[collection], bbox=_bbox(items), datetime="2000-01-01/2030-01-01", max_cloud_cover=100)
    return res.items


S2_10M = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
S2_20M = {"swir16": "B11", "swir22": "B12"}


def _s2(band: str) -> np.ndarray:
    return _read(S.S2_DIR / f"T33UUU_20170216T102101_{band}.tif").astype("float64")


# --- Sentinel-2 L1C, Brandenburg --------------------------------------------------------------


def test_s2_bands_on_the_10m_grid_equal_the_files_times_scale(real_api):
    items = _search(real_api, "sentinel-2-l1c", S.s2l1c_items())
    assert [i.id for i in items] == ["S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_20170216T102204"]
    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")
    res, ds = _load(items, gb, mask=None, resampling="nearest")
    assert ds.sizes["time"] == 1 and ds.odc.geobox.crs.epsg == 32633
    for cn, b in S2_10M.items():  # 10 m: DN × 0.0001 (baseline 02.04: no offset)
        diff = np.abs(ds[cn].values[0] - _s2(b) * 1e-4)
        assert diff.max() < 1e-7, (cn, diff.max())
    for cn, b in S2_20M.items():  # 20 m: each 20 m pixel covers 2 × 2 pixels of the 10 m grid
        expected = np.kron(_s2(b), np.ones((2, 2))) * 1e-4
        assert np.abs(ds[cn].values[0] - expected).max() < 1e-7, cn
    assert bool(ds["clear"].all())  # no mask asset: clear where there is data (L1C has no zeros here)
    assert {s.band: (s.asset, s.offset, s.source) for s in res.scalings}["red"] == ("B04", 0.0, "rule")


def test_s2_60m_band_on_the_10m_grid(real_api):
    items = _search(real_api, "sentinel-2-l1c", S.s2l1c_items())
    _, ds = _load(items, _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif"), bands=("coastal",), mask=None, resampling="nearest")
    expected = np.kron(_s2("B01"), np.ones((6, 6))) * 1e-4
    assert np.abs(ds["coastal"].values[0] - expected).max() < 1e-7


def test_s2_20m_bilinear_matches_gdal_warp_of_the_file(real_api):
    items = _search(real_api, "sentinel-2-l1c", S.s2l1c_items())
    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")
    _, ds = _load(items, gb, bands=("swir16",), mask=None, resampling="bilinear")
    src = S.S2_DIR / "T33UUU_20170216T102101_B11.tif"
    with rasterio.open(src) as r:
        dst = np.zeros(gb.shape, "float64")
        reproject(r.read(1).astype("float64"), dst, src_transform=r.transform, src_crs=r.crs, dst_transform=gb.transform,
                  dst_crs=gb.crs, resampling=Resampling.bilinear)
    inner = (slice(2, -2), slice(2, -2))  # the edge pixels have no neighbour outside the subset
    assert np.abs(ds["swir16"].values[0][inner] - dst[inner] * 1e-4).max() < 1e-6


def test_stac_1_1_bands_and_raster_scale_give_the_same_reflectance():
    pc = [pystac.Item.from_dict(d) for d in S.s2l1c_items(style="pc")]
    cdse = [pystac.Item.from_dict(d) for d in S.s2l1c_items(style="stac11")]
    p = parse_item(cdse[0])
    assert (p.bands["red"].asset, p.bands["red"].source, p.bands["swir16"].asset, p.epsg) == ("B04_10m", "raster:scale", "B11_20m", 32633)
    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")
    _, a = _load(pc, gb, mask=None)
    _, b = _load(cdse, gb, mask=None)
    for cn in REFLECTANCE_BANDS:
        np.testing.assert_array_equal(a[cn].values, b[cn].values)


def test_planetary_computer_signer_is_applied_to_every_href_before_reading(monkeypatch):
    """PC-convention hrefs in blob storage are unreadable until signed; the injected signer
    (standing in for planetary_computer.sign, which would fetch a token) maps them to the files."""
    # blob storage stood in for by a loopback port nothing listens on: an unsigned read fails at
    # once (no wait on an unreachable host), as an unsigned read of PC's blob storage fails (403)
    blob = "http://127.0.0.1:9/sentinel2l2a01.blob.core.windows.net/sentinel2-l1c/T33UUU"
    items = [pystac.Item.from_dict(d) for d in S.s2l1c_items(href=lambda p: f"{blob}/{p.name}")]
    calls: list[str] = []

    def signer(href: str) -> str:
        calls.append(href)
        return (S.S2_DIR / href.rsplit("/", 1)[1]).resolve().as_uri() if href.startswith(blob) else href

    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")
    res, ds = _load(items, gb, mask=None, profile=get_profile("planetary-computer"), signer=signer, resampling="nearest")
    wanted = {f"{blob}/T33UUU_20170216T102101_{b}.tif" for b in [*S2_10M.values(), *S2_20M.values()]}
    assert set(calls) == wanted  # every asset read went through the signer (header check and pixels)
    assert len(calls) >= 2 * len(wanted)
    assert res.skipped == []
    assert np.abs(ds["red"].values[0] - _s2("B04") * 1e-4).max() < 1e-7
    # without signing the same items cannot be read: the scene is reported and skipped (no retry
    # of the refused connection: a scan run earlier in this process set GDAL_ENV's back-off)
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with pytest.raises(StacError, match="cannot be read"):
        _load(items, gb, mask=None, signer=lambda h: h)


def test_processing_baseline_04_subtracts_1000_dn_on_real_pixels():
    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")
    old = [pystac.Item.from_dict(d) for d in S.s2l1c_items(baseline="02.04")]
    new = [pystac.Item.from_dict(d) for d in S.s2l1c_items(baseline="05.10")]
    _, a = _load(old, gb, mask=None)
    r, b = _load(new, gb, mask=None)
    for cn in ("red", "nir"):
        d = a[cn].values - b[cn].values
        assert np.abs(d - 0.1).max() < 1e-6, cn
    assert "BOA_ADD_OFFSET" in {s.band: s.reason for s in r.scalings}["red"]


# --- Landsat 5/7 LEDAPS + Fmask, Colorado ---------------------------------------------------------


def test_landsat_colorado_series_equals_files_and_fmask(real_api):
    dicts = S.landsat_colorado_items()
    items = _search(real_api, "landsat-ledaps-sr", dicts)
    assert len(items) == 8
    scenes = sorted(i.id for i in items)
    gb = _geobox(S.LS_DIR / scenes[0] / f"{scenes[0]}_b3.tif")
    res, ds = _load(items, gb, bands=("red", "nir", "swir16"))
    assert ds.sizes["time"] == 8 and set(ds["sensor"].values) == {"landsat"}
    order = sorted(scenes, key=lambda s: s[9:16])
    n_masked = 0
    for t, sid in enumerate(order):
        dn = {cn: _read(S.LS_DIR / sid / f"{sid}_{b}.tif") for cn, b in (("red", "b3"), ("nir", "b4"), ("swir16", "b5"))}
        for cn, arr in dn.items():
            expected = np.where(arr == -9999, np.nan, arr * 1e-4)
            got = ds[cn].values[t]
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
            assert np.nanmax(np.abs(got - expected)) < 1e-7, (sid, cn)
        fmask = _read(S.LS_DIR / sid / f"{sid}_fmask.tif")
        valid = np.all([a != -9999 for a in dn.values()], axis=0)
        expected_clear = np.isin(fmask, (0, 1)) & valid  # 0 clear land, 1 water; 2 shadow, 3 snow, 4 cloud, 255 fill masked
        np.testing.assert_array_equal(ds["clear"].values[t], expected_clear)
        n_masked += int((~expected_clear).sum())
    assert n_masked > 1000  # the subset holds clouds, snow and SLC-off gaps
    assert {s.nodata for s in res.scalings} == {-9999}


# --- Landsat 8 Collection 1 L1TP + BQA + MTL (rio-tiler) -------------------------------------------


def test_landsat8_toa_from_mtl_and_bqa_bits(real_api):
    dicts = S.l8c1_items()
    items = _search(real_api, "landsat-c1-l1", dicts)
    gb = _geobox(S.L8_DIR / f"{S.L8_STEM}_B4.TIF")
    res, ds = _load(items, gb, mask=MaskRules())
    mtl = S.read_mtl(S.L8_DIR / f"{S.L8_STEM}_MTL.txt")
    files = {"blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir16": "B6", "swir22": "B7"}
    valid = np.ones(gb.shape, bool)
    for cn, b in files.items():
        dn = _read(S.L8_DIR / f"{S.L8_STEM}_{b}.TIF").astype("float64")
        expected = np.where(dn == 0, np.nan, dn * float(mtl[f"REFLECTANCE_MULT_BAND_{b[1:]}"]) + float(mtl[f"REFLECTANCE_ADD_BAND_{b[1:]}"]))
        got = ds[cn].values[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert np.nanmax(np.abs(got - expected)) < 1e-6, cn
        valid &= dn != 0
    qa = _read(S.L8_DIR / f"{S.L8_STEM}_BQA.TIF").astype("int64")
    bad = ((qa >> 0) & 1 == 1) | ((qa >> 4) & 1 == 1) | ((qa >> 7) & 3 == 3) | ((qa >> 9) & 3 == 3) | ((qa >> 11) & 3 == 3)
    expected_clear = ~bad & valid
    np.testing.assert_array_equal(ds["clear"].values[0], expected_clear)
    assert 0.2 < expected_clear.mean() < 0.8  # fill, clouds and clear land all present in the window
    assert {s.band: s.asset for s in res.scalings}["nir"] == "B5"


# --- unreadable assets ------------------------------------------------------------------------


def test_unreadable_assets_skip_their_scene_and_are_reported(tmp_path):
    dicts = S.landsat_colorado_items()
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a GeoTIFF")
    dicts[0]["assets"]["red"]["href"] = (tmp_path / "missing.tif").as_uri()
    dicts[1]["assets"]["fmask"]["href"] = broken.as_uri()
    items = [pystac.Item.from_dict(d) for d in dicts]
    gb = _geobox(S.LS_DIR / dicts[2]["id"] / f"{dicts[2]['id']}_b3.tif")
    res, ds = _load(items, gb, bands=("red", "nir", "swir16"))
    assert ds.sizes["time"] == 6
    assert len(res.skipped) == 2
    assert res.skipped[0].startswith(f"{dicts[0]['id']}: asset 'red'") and "missing.tif" in res.skipped[0]
    assert res.skipped[1].startswith(f"{dicts[1]['id']}: asset 'fmask'") and "cannot be read" in res.skipped[1]
    assert {s.item_id for s in res.scalings} == {d["id"] for d in dicts[2:]}


def test_items_without_the_bands_are_skipped_and_reported():
    radar = pystac.Item.from_dict(json.loads(json.dumps(S.landsat_colorado_items()[0])))
    radar.id = "S1A_IW_GRDH_fake"
    radar.properties["platform"] = "sentinel-1a"
    radar.assets = {"vv": radar.assets["fmask"]}
    good = [pystac.Item.from_dict(d) for d in S.landsat_colorado_items()[:2]]
    gb = _geobox(S.LS_DIR / good[0].id / f"{good[0].id}_b3.tif")
    res, ds = _load([radar, *good], gb, bands=("red", "nir"))
    assert ds.sizes["time"] == 2
    assert res.skipped == [f"S1A_IW_GRDH_fake: no asset for band(s) red, nir (sensor sentinel-1, asset keys vv)"]


def test_loading_does_not_mutate_the_items():
    items = [pystac.Item.from_dict(d) for d in S.s2l1c_items()]
    before = {k: a.href for k, a in items[0].assets.items()}
    _load(items, _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif"), mask=None, signer=lambda h: h)
    assert {k: a.href for k, a in items[0].assets.items()} == before
