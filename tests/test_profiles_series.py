"""Sentinel-2 and Landsat in one series, and failing scenes in a real scan.

The Landsat scenes here are written from the generated demo scenes (tests/conftest.py
``small_scenes``) in Landsat Collection 2 Level-2 conventions: 30 m pixels that are the mean
reflectance of 3 × 3 Sentinel-2 pixels, stored as DN with scale 2.75e-5 / offset −0.2, and a
QA_PIXEL band whose bits follow the SCL of the same pixels; the item's
``classification:bitfields`` are copied from a recorded Planetary Computer landsat-c2-l2 item.
So the Landsat steps of the merged series must hold the same reflectance as the Sentinel-2
scenes they were made from, to the DN quantisation (2.75e-5 / 2).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
import yaml
from odc.geo.geobox import GeoBox

from pipelines import load_series, serve_stac

RECORDED = Path(__file__).parent / "data" / "stac" / "recorded"
L_SCALE, L_OFFSET = 2.75e-5, -0.2  # USGS LSDS-1619, surface reflectance scale factors
BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def _pc_qa_bitfields() -> list[dict]:
    with gzip.open(RECORDED / "pystac-client-cassettes" / "pc_landsat-c2-l2_items_10.json.gz", "rt") as f:
        return json.load(f)["features"][0]["assets"]["qa_pixel"]["classification:bitfields"]


def _read_s2(item: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reflectance (10 m, NaN no data) of the six bands and the SCL on the 10 m grid."""
    out = {}
    for b in BANDS:
        with rasterio.open(item["assets"][b]["href"].removeprefix("file://")) as r:
            dn = r.read(1).astype("float64")
        rb = item["assets"][b]["raster:bands"][0]
        refl = np.where(dn == rb["nodata"], np.nan, dn * rb["scale"] + rb["offset"])
        out[b] = refl if refl.shape[0] == 160 else np.kron(refl, np.ones((2, 2)))
    with rasterio.open(item["assets"]["scl"]["href"].removeprefix("file://")) as r:
        scl = np.kron(r.read(1), np.ones((2, 2), "uint8"))
    return out, scl


def _blocks(a: np.ndarray) -> np.ndarray:
    """Mean of 3 × 3 blocks of the upper-left 159 × 159 pixels (NaN if any pixel is NaN)."""
    return a[:159, :159].reshape(53, 3, 53, 3).mean(axis=(1, 3))


def _qa_from_scl(scl: np.ndarray) -> np.ndarray:
    """QA_PIXEL bits (LSDS-1619) from the SCL class at each 30 m pixel's centre."""
    c = scl[1:159:3, 1:159:3]
    qa = np.zeros(c.shape, "uint16")
    qa |= np.where(c == 0, 1 << 0, 0).astype("uint16")
    qa |= np.where(c == 10, 1 << 2, 0).astype("uint16")
    qa |= np.where(np.isin(c, (8, 9)), 1 << 3, 0).astype("uint16")
    qa |= np.where(c == 3, 1 << 4, 0).astype("uint16")
    qa |= np.where(c == 11, 1 << 5, 0).astype("uint16")
    qa |= np.where(qa == 0, 1 << 6, 0).astype("uint16")
    return qa


#: Landsat Collection 2 Level-2 surface temperature scaling (USGS LSDS-1619): K = DN × 0.00341802 + 149.
ST_SCALE, ST_OFFSET = 0.00341802, 149.0


def synthetic_lst(refl: dict[str, np.ndarray]) -> np.ndarray:
    """A land-surface temperature (K) that rises with bareness and falls with greenness (the
    sign RSEI expects): 288 K + 25 K × (SWIR1 − NIR) — a made-up but monotone field for tests."""
    return 288.0 + 25.0 * (refl["swir16"] - refl["nir"])


def landsat_item(s2: dict, stamp: str, folder: Path, *, thermal: bool = False, declare_st: bool = True) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    refl, scl = _read_s2(s2)
    x0, y0 = s2["assets"]["red"]["proj:transform"][2], s2["assets"]["red"]["proj:transform"][5]
    lid = f"LC08_L2SP_demo_{stamp[:10].replace('-', '')}"
    d = folder / lid
    d.mkdir(parents=True)
    prof = dict(driver="GTiff", width=53, height=53, count=1, dtype="uint16", crs="EPSG:32648",
                transform=rasterio.Affine(30, 0, x0, 0, -30, y0), compress="deflate")
    assets, dns = {}, {}
    for b in BANDS:
        m = _blocks(refl[b])
        dn = np.where(np.isnan(m), 0, np.clip(np.round((m - L_OFFSET) / L_SCALE), 1, 65535)).astype("uint16")
        dns[b] = dn
        path = d / f"{lid}_SR_{b}.TIF"
        with rasterio.open(path, "w", nodata=0, **prof) as w:
            w.write(dn, 1)
        key = "nir08" if b == "nir" else b
        assets[key] = {"href": path.as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data", "reflectance"],
                       "eo:bands": [{"name": f"OLI_{b}", "common_name": key}],
                       "raster:bands": [{"scale": L_SCALE, "offset": L_OFFSET, "nodata": 0, "data_type": "uint16", "spatial_resolution": 30}]}
    if thermal:
        k = _blocks(synthetic_lst(refl))
        dn = np.where(np.isnan(k), 0, np.clip(np.round((k - ST_OFFSET) / ST_SCALE), 1, 65535)).astype("uint16")
        dns["lst"] = dn
        path = d / f"{lid}_ST_B10.TIF"
        with rasterio.open(path, "w", nodata=0, **prof) as w:
            w.write(dn, 1)
        rb = {"nodata": 0, "data_type": "uint16", "spatial_resolution": 30}
        if declare_st:  # as Planetary Computer and Earth Search declare it (recorded items)
            rb.update(unit="kelvin", scale=ST_SCALE, offset=ST_OFFSET)
        assets["lwir11"] = {"href": path.as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data", "temperature"],
                            "eo:bands": [{"name": "TIRS_B10", "common_name": "lwir11"}], "raster:bands": [rb]}
    qa = _qa_from_scl(scl)
    path = d / f"{lid}_QA_PIXEL.TIF"
    with rasterio.open(path, "w", nodata=1, **prof) as w:
        w.write(qa, 1)
    assets["qa_pixel"] = {"href": path.as_uri(), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["cloud", "cloud-shadow", "snow-ice"],
                          "classification:bitfields": _pc_qa_bitfields(), "raster:bands": [{"nodata": 1, "data_type": "uint16"}]}
    item = {"type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": lid, "collection": "landsat-c2-l2",
            "geometry": s2["geometry"], "bbox": s2["bbox"], "links": [], "assets": assets,
            "properties": {"datetime": stamp, "platform": "landsat-8", "instruments": ["oli", "tirs"], "eo:cloud_cover": 0.0,
                           "proj:epsg": 32648, "proj:shape": [53, 53], "proj:transform": [30, 0, x0, 0, -30, y0],
                           "landsat:collection_number": "02", "landsat:correction": "L2SP"}}
    return item, dns, qa


@pytest.fixture(scope="module")
def mixed(small_scenes, tmp_path_factory):
    s2 = json.loads((Path(small_scenes.root) / "items.json").read_text())["features"][:12]
    by_day = {f["properties"]["datetime"][:10]: f for f in s2}
    folder = tmp_path_factory.mktemp("mixed")
    # L1 on a day without Sentinel-2 (made from the clear 2022-01-25 scene); L2 on 2022-01-15,
    # a day Sentinel-2 saw 79 % cloudy (made from the same clear scene).
    l1, dn1, qa1 = landsat_item(by_day["2022-01-25"], "2022-01-28T03:20:00Z", folder)
    l2, dn2, qa2 = landsat_item(by_day["2022-01-25"], "2022-01-15T03:20:00Z", folder)
    tr = s2[0]["assets"]["red"]["proj:transform"]
    gb = GeoBox((160, 160), rasterio.Affine(10, 0, tr[2], 0, -10, tr[5]), "EPSG:32648")
    items = [pystac.Item.from_dict(f) for f in [*s2, l1, l2]]
    with dask.config.set(scheduler="synchronous"):
        res = load_series(items, gb, resampling="nearest")
        s2_only = load_series(items[:12], gb, resampling="nearest").data.compute()
        ds = res.data.compute()
    return dict(ds=ds, s2=s2_only, res=res, by_day=by_day, dn1=dn1, qa1=qa1, dn2=dn2, qa2=qa2)


def day_index(ds, day: str) -> int:
    days = ds.time.values.astype("datetime64[D]").astype(str)
    (i,) = np.flatnonzero(days == day)
    return int(i)


def up_30m(a: np.ndarray) -> np.ndarray:
    """30 m (53 × 53) onto the 10 m grid (160 × 160): 3 × 3 copies, NaN in the last row/column."""
    out = np.full((160, 160), np.nan)
    out[:159, :159] = np.kron(a, np.ones((3, 3)))
    return out


def test_one_time_step_per_solar_day_with_its_sensor(mixed):
    ds = mixed["ds"]
    assert ds.sizes["time"] == 12 + 1  # the 12 S2 days and the Landsat-only day
    sensors = dict(zip(ds.time.values.astype("datetime64[D]").astype(str), ds["sensor"].values))
    assert sensors["2022-01-28"] == "landsat"
    assert sensors["2022-01-15"] == "sentinel-2+landsat"
    assert sum(v == "sentinel-2" for v in sensors.values()) == 11
    assert np.all(np.diff(ds.time.values) > np.timedelta64(0))


def test_landsat_step_is_the_same_reflectance_as_the_sentinel2_it_was_made_from(mixed):
    ds, s2 = mixed["ds"], mixed["s2"]
    t = day_index(ds, "2022-01-28")
    t_s2 = day_index(s2, "2022-01-25")
    for b in BANDS:
        got = ds[b].values[t]
        decoded = up_30m(np.where(mixed["dn1"][b] == 0, np.nan, mixed["dn1"][b] * L_SCALE + L_OFFSET))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(decoded))
        assert np.nanmax(np.abs(got - decoded)) < 1e-6, b
        s2_mean = up_30m(_blocks(s2[b].values[t_s2].astype("float64")))
        assert np.nanmax(np.abs(got - s2_mean)) < L_SCALE / 2 + 1e-6, b


def test_landsat_clear_mask_follows_qa_pixel_bits(mixed):
    ds = mixed["ds"]
    t = day_index(ds, "2022-01-28")
    qa = mixed["qa1"].astype(int)
    clear30 = (qa & 0b111111) == 0  # fill, dilated cloud, cirrus, cloud, shadow, snow (LSDS-1619)
    expected = np.zeros((160, 160), bool)
    expected[:159, :159] = np.kron(clear30, np.ones((3, 3), bool))
    np.testing.assert_array_equal(ds["clear"].values[t], expected & np.isfinite(ds["red"].values[t]))


def test_same_day_pixels_take_clear_sentinel2_first_then_landsat(mixed):
    ds, s2 = mixed["ds"], mixed["s2"]
    t, t_s2 = day_index(ds, "2022-01-15"), day_index(s2, "2022-01-15")
    s2_clear = s2["clear"].values[t_s2]
    l_red = up_30m(np.where(mixed["dn2"]["red"] == 0, np.nan, mixed["dn2"]["red"] * L_SCALE + L_OFFSET))
    l_clear = np.zeros((160, 160), bool)
    l_clear[:159, :159] = np.kron((mixed["qa2"].astype(int) & 0b111111) == 0, np.ones((3, 3), bool))
    got = ds["red"].values[t]
    assert s2_clear.sum() > 200 and s2_clear.mean() < 0.5 and l_clear.mean() > 0.9
    np.testing.assert_array_equal(got[s2_clear], s2["red"].values[t_s2][s2_clear])
    take_l = ~s2_clear & l_clear
    assert take_l.sum() > 1000
    assert np.abs(got[take_l] - l_red[take_l]).max() < 1e-6
    np.testing.assert_array_equal(ds["clear"].values[t], s2_clear | take_l)


def test_scalings_recorded_per_item_and_sensor(mixed):
    sc = {(s.item_id, s.band): s for s in mixed["res"].scalings}
    l = sc[("LC08_L2SP_demo_20220128", "nir")]
    assert (l.asset, l.scale, l.offset, l.source) == ("nir08", L_SCALE, L_OFFSET, "raster:bands")
    s = sc[(mixed["by_day"]["2022-01-25"]["id"], "nir")]
    assert (s.asset, s.scale, s.offset) == ("nir", 1e-4, -0.1)


# --- a real scan with an unreadable scene -------------------------------------------------------


def run_cli_on(small_scenes, features: list[dict], tmp_path: Path, command: str = "scan", stac: dict | None = None) -> int:
    """Run ``redline COMMAND`` with the small scenes' config on a catalogue of ``features``
    served by the embedded API (output in ``tmp_path/out``); ``stac`` updates the config's
    ``stac`` block. Returns the exit code."""
    from redline.cli import main

    root = Path(small_scenes.root)
    api_dir = tmp_path / "api"
    api_dir.mkdir(exist_ok=True)
    (api_dir / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    cfg = yaml.safe_load((root / "scan.yml").read_text())
    cfg["zones"]["path"] = str(root / cfg["zones"]["path"])
    cfg["admin_units"]["path"] = str(root / cfg["admin_units"]["path"])
    cfg["stac"].update(stac or {})
    with serve_stac(api_dir) as url:
        cfg["stac"]["url"] = url
        (tmp_path / "scan.yml").write_text(yaml.safe_dump(cfg))
        return main([command, str(tmp_path / "scan.yml"), "--out", str(tmp_path / "out")])


@pytest.mark.slow
def test_scan_reports_and_skips_an_unreadable_scene(small_scenes, tmp_path):
    fc = json.loads((Path(small_scenes.root) / "items.json").read_text())
    victim = fc["features"][5]
    victim["assets"]["red"]["href"] = (tmp_path / "gone" / "red.tif").as_uri()
    rc = run_cli_on(small_scenes, fc["features"], tmp_path)
    assert rc == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["failures"]) == 1
    fail = manifest["failures"][0]
    assert (fail["kind"], fail["id"]) == ("scene", victim["id"]) and fail["reason"].startswith("asset 'red'")
    ids = [i["id"] for i in manifest["items"]]
    assert victim["id"] not in ids and len(ids) == len(fc["features"]) - 1
    rec = manifest["items"][0]["scaling"]["red"]
    assert (rec["asset"], rec["scale"], rec["offset"], rec["source"]) == ("red", 1e-4, -0.1, "raster:bands")
    assert rec["reason"] == "declared in raster:bands"


def _corrupt_first_block(src: Path, dst: Path) -> None:
    """A copy of ``src`` as a tiled GeoTIFF of 16 × 16 blocks whose first block's bytes are
    garbage: the header and the last stored block read fine (the scan's probe passes), the
    scan's full read fails — a file damaged in the middle, as a broken transfer leaves it."""
    with rasterio.open(src) as r:
        prof, data = r.profile, r.read()
    prof.update(tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(dst, "w", **prof) as w:
        w.write(data)
    with rasterio.open(dst) as r:
        off = int(r.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(r.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    with open(dst, "r+b") as f:
        f.seek(off)
        f.write(bytes(range(256)) * (size // 256) + bytes(size % 256))


@pytest.mark.slow
def test_scene_failing_during_the_scan_is_skipped_and_reported(small_scenes, tmp_path):
    """A scene whose data fail to decode only when the scan reads them (after the probe)
    is left out, the scan is finished without it (exit 1) and the manifest says why."""
    fc = json.loads((Path(small_scenes.root) / "items.json").read_text())
    victim = fc["features"][7]
    bad = tmp_path / "bad_red.tif"
    _corrupt_first_block(Path(victim["assets"]["red"]["href"].removeprefix("file://")), bad)
    victim["assets"]["red"]["href"] = bad.as_uri()
    rc = run_cli_on(small_scenes, fc["features"], tmp_path)
    assert rc == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(f["kind"], f["id"]) for f in manifest["failures"]] == [("scene", victim["id"])]
    assert "during the scan" in manifest["failures"][0]["reason"] and "bad_red.tif" in manifest["failures"][0]["reason"]
    ids = [i["id"] for i in manifest["items"]]
    assert victim["id"] not in ids and len(ids) == len(fc["features"]) - 1
    assert (tmp_path / "out" / "alerts.geojson").exists() and (tmp_path / "out" / "register.gpkg").exists()
