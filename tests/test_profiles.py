"""STAC profiles on recorded real responses: every file in tests/data/stac/recorded parses into
the right bands, scale, offset, nodata, mask and grid; searches run through the embedded STAC
API serving recorded ItemCollections; config defaults per profile; Planetary Computer signing
without the network."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pystac
import pytest

from pipelines import PROFILES, REFLECTANCE_BANDS, get_profile, parse_item, search_items, serve_stac
from redline.config import load_config
from redline.errors import ConfigError, StacError

RECORDED = Path(__file__).parent / "data" / "stac" / "recorded"

S2_IDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}
COMMON = {b: b for b in REFLECTANCE_BANDS}
LANDSAT = {**COMMON, "nir": "nir08"}
DEA = {"blue": "nbart_blue", "green": "nbart_green", "red": "nbart_red", "nir": "nbart_nir", "swir16": "nbart_swir_1", "swir22": "nbart_swir_2"}

# What each recorded response must parse into, per collection: asset key of each common band,
# scale, offset, nodata, mask (asset, kind), pixel size of the red band (m). Sources: the
# items' own raster:bands where declared, otherwise the rules in pipelines/_bands.py (PC S2:
# no scale/offset declared; Earth Search sentinel-s2-l2a-cogs COGs: offset already removed).
S2_PC_OLD = dict(keys=S2_IDS, scale=1e-4, offset=0.0, nodata=0, mask=("SCL", "scl"), res=10, source="rule")
EXPECT: dict[str, dict[str | None, dict | None]] = {
    "odc-stac/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json": {
        "landsat-c2l2-sr": dict(keys=LANDSAT, scale=2.75e-5, offset=-0.2, nodata=0, mask=("qa_pixel", "bits"), res=30, source="rule")},
    "odc-stac/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json": {
        "landsat-c2l2-sr": dict(keys=LANDSAT, scale=2.75e-5, offset=-0.2, nodata=0, mask=("qa_pixel", "bits"), res=30, source="rule")},
    "odc-stac/S2A_28QCH_20200714_0_L2A.json": {
        "sentinel-s2-l2a-cogs": dict(keys=S2_IDS, scale=1e-4, offset=0.0, nodata=0, mask=("SCL", "scl"), res=10, source="rule")},
    "odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json": {"sentinel-2-l2a": S2_PC_OLD},
    "odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json": {"sentinel-2-l2a": S2_PC_OLD},
    "odc-stac/ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json": {
        None: dict(keys=DEA, scale=1e-4, offset=0.0, nodata=-999, mask=("oa_fmask", "classes"), res=30, source="rule")},
    "odc-stac/sentinel-2-l2a.collection.json": {},
    "odc-stac/site1-20200606-tall-strip-africa.geojson": {"sentinel-2-l2a": S2_PC_OLD},
    "odc-stac/site2-2020_jun_jul-35MNM.geojson": {"sentinel-2-l2a": S2_PC_OLD},
    "pystac-client-cassettes/earthsearch_v0_sentinel-s2-l2a-cogs.json": {
        "sentinel-s2-l2a-cogs": dict(keys=S2_IDS, scale=1e-4, offset=0.0, nodata=0, mask=("SCL", "scl"), res=10, source="rule")},
    "pystac-client-cassettes/earthsearch_v1_filter_mixed_page1.json": {
        "sentinel-1-grd": None,
        "sentinel-2-c1-l2a": dict(keys=COMMON, scale=1e-4, offset=-0.1, nodata=0, mask=("scl", "scl"), res=10, source="raster:bands"),
        "sentinel-2-l2a": dict(keys=COMMON, scale=1e-4, offset=0.0, nodata=0, mask=("scl", "scl"), res=10, source="rule"),
        "sentinel-2-l1c": dict(keys=COMMON, scale=1e-4, offset=-0.1, nodata=0, mask=None, res=10, source="raster:bands")},
    "pystac-client-cassettes/earthsearch_v1_filter_mixed_page2.json": {
        "sentinel-2-c1-l2a": dict(keys=COMMON, scale=1e-4, offset=-0.1, nodata=0, mask=("scl", "scl"), res=10, source="raster:bands"),
        "sentinel-2-l2a": dict(keys=COMMON, scale=1e-4, offset=0.0, nodata=0, mask=("scl", "scl"), res=10, source="rule"),
        "sentinel-2-l1c": dict(keys=COMMON, scale=1e-4, offset=-0.1, nodata=0, mask=None, res=10, source="raster:bands")},
    "pystac-client-cassettes/earthsearch_v1_s2c1l2a_fields.json": {"sentinel-2-c1-l2a": None},
    "pystac-client-cassettes/earthsearch_v1_s2l2a_landsat_c2l2.json": {
        "sentinel-2-l2a": dict(keys=COMMON, scale=1e-4, offset=0.0, nodata=0, mask=("scl", "scl"), res=10, source="rule"),
        "landsat-c2-l2": dict(keys=LANDSAT, scale=2.75e-5, offset=-0.2, nodata=0, mask=("qa_pixel", "bits"), res=30, source="raster:bands")},
    "pystac-client-cassettes/pc_landsat-c2-l2_items_10.json": {
        "landsat-c2-l2": dict(keys=LANDSAT, scale=2.75e-5, offset=-0.2, nodata=0, mask=("qa_pixel", "bits"), res=30, source="raster:bands")},
    "pystac-client-cassettes/pc_sentinel-2-l2a_search_33items.json": {"sentinel-2-l2a": S2_PC_OLD},
    "stac-geoparquet/landsat-c2-l2-pc.json": {
        "landsat-c2-l2": dict(keys=LANDSAT, scale=2.75e-5, offset=-0.2, nodata=0, mask=("qa_pixel", "bits"), res=30, source="raster:bands")},
    "stac-geoparquet/sentinel-2-l2a-pc.json": {
        "sentinel-2-l2a": dict(keys=S2_IDS, scale=1e-4, offset=-0.1, nodata=0, mask=("SCL", "scl"), res=10, source="rule")},
}


def _read(rel: str):
    with gzip.open(RECORDED / f"{rel}.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def _features(doc) -> list[dict]:
    if isinstance(doc, list):
        return doc
    if doc.get("type") == "FeatureCollection":
        return doc["features"]
    return [doc] if doc.get("type") == "Feature" else []


def _items(rel: str) -> list[pystac.Item]:
    return [pystac.Item.from_dict(f) for f in _features(_read(rel))]


def test_every_recorded_file_has_expectations():
    files = {p.relative_to(RECORDED).as_posix().removesuffix(".gz") for p in RECORDED.rglob("*.gz")}
    assert files == set(EXPECT)
    assert len(files) == 18  # 9 odc-stac, 7 pystac-client cassettes, 2 stac-geoparquet


@pytest.mark.filterwarnings("ignore::UserWarning")  # pystac's storage-extension migration notes on s3 hrefs
@pytest.mark.parametrize("rel", sorted(k for k, v in EXPECT.items() if v))
def test_recorded_items_parse_into_bands_scale_offset_nodata_mask_grid(rel):
    raws = _features(_read(rel))
    assert raws
    seen = set()
    for raw in raws:
        item = pystac.Item.from_dict(raw)
        exp = EXPECT[rel][item.collection_id]
        seen.add(item.collection_id)
        p = parse_item(item)
        if exp is None:  # radar, or a `fields` response without assets: no optical bands to load
            assert not set(REFLECTANCE_BANDS) & set(p.bands)
            continue
        assert {b: p.bands[b].asset for b in REFLECTANCE_BANDS} == exp["keys"], item.id
        for b in REFLECTANCE_BANDS:
            info = p.bands[b]
            assert info.scale == pytest.approx(exp["scale"], rel=1e-12), (item.id, b)
            assert info.offset == pytest.approx(exp["offset"], abs=1e-12), (item.id, b)
            assert info.nodata == exp["nodata"], (item.id, b)
            assert info.source == exp["source"], (item.id, b)
            assert item.assets[info.asset].href == info.href
        assert (p.mask.asset, p.mask.kind) == exp["mask"] if exp["mask"] else p.mask is None
        red = raw["assets"][p.bands["red"].asset]  # the recorded JSON, before pystac migrates proj:epsg → proj:code
        assert p.epsg == int(red.get("proj:epsg", raw["properties"].get("proj:epsg")))
        assert list(p.shape) == list(red.get("proj:shape", raw["properties"].get("proj:shape")))
        assert p.transform[0] == exp["res"] and p.transform[4] == -exp["res"]
    assert seen == set(EXPECT[rel])


def test_planetary_computer_offset_follows_the_processing_baseline():
    """PC sentinel-2-l2a declares no scale/offset: 02.12 (2019–2020) → offset 0, 05.10 (2024) → −0.1."""
    old = parse_item(_items("pystac-client-cassettes/pc_sentinel-2-l2a_search_33items.json")[0])
    new = parse_item(_items("stac-geoparquet/sentinel-2-l2a-pc.json")[0])
    assert (old.processing_baseline, old.bands["nir"].offset) == ("02.12", 0.0)
    assert (new.processing_baseline, new.bands["nir"].offset) == ("05.10", -0.1)
    assert "05.10 ≥ 04.00" in new.bands["nir"].reason


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_earth_search_l2a_flag_and_declared_offset_are_not_trusted():
    """Earth Search sentinel-2-l2a items declare offset −0.1 and boa_offset_applied=True;
    the COGs are harmonised, so redline applies offset 0 and says why (c1-l2a keeps −0.1)."""
    items = _items("pystac-client-cassettes/earthsearch_v1_filter_mixed_page2.json")
    l2a = next(i for i in items if i.collection_id == "sentinel-2-l2a" and i.properties.get("earthsearch:boa_offset_applied") is True)
    c1 = next(i for i in items if i.collection_id == "sentinel-2-c1-l2a")
    assert l2a.assets["red"].extra_fields["raster:bands"][0]["offset"] == -0.1
    p = parse_item(l2a)
    assert p.bands["red"].offset == 0.0 and "declared offset -0.1" in p.bands["red"].reason
    assert parse_item(c1).bands["red"].offset == -0.1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_earth_search_prefers_the_cog_over_the_jp2_asset():
    items = _items("pystac-client-cassettes/earthsearch_v1_filter_mixed_page1.json") + _items("pystac-client-cassettes/earthsearch_v1_filter_mixed_page2.json")
    item = next(i for i in items if {"red", "red-jp2", "scl", "scl-jp2"} <= set(i.assets))
    p = parse_item(item)
    assert p.bands["red"].asset == "red" and p.mask.asset == "scl"


def test_landsat_qa_pixel_bitfields_come_from_the_item():
    p = parse_item(_items("pystac-client-cassettes/pc_landsat-c2-l2_items_10.json")[0])
    fields = {name: (off, ln) for name, off, ln, _ in p.mask.bitfields}
    # USGS LSDS-1619 QA_PIXEL: fill 0, dilated cloud 1, cirrus 2, cloud 3, shadow 4, snow 5
    assert {k: fields[k] for k in ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")} == {
        "fill": (0, 1), "dilated_cloud": (1, 1), "cirrus": (2, 1), "cloud": (3, 1), "cloud_shadow": (4, 1), "snow": (5, 1)}


def test_recorded_collection_document_maps_band_ids_to_common_names():
    coll = pystac.Collection.from_dict(_read("odc-stac/sentinel-2-l2a.collection.json"))
    ia = coll.extra_fields.get("item_assets") or {k: v.to_dict() for k, v in coll.ext.item_assets.items()}
    assert {k: ia[k]["eo:bands"][0]["common_name"] for k in ("B02", "B04", "B08", "B11", "B12")} == {
        "B02": "blue", "B04": "red", "B08": "nir", "B11": "swir16", "B12": "swir22"}


# --- searches through the embedded STAC API serving recorded ItemCollections --------------


@pytest.fixture(scope="module")
def recorded_api(tmp_path_factory):
    """The embedded API over the recorded ItemCollections of PC and Earth Search (one item
    per id; the recorded hrefs are remote and never read)."""
    folder = tmp_path_factory.mktemp("recorded_api")
    features: dict[str, dict] = {}
    for rel in ("pystac-client-cassettes/pc_sentinel-2-l2a_search_33items.json", "pystac-client-cassettes/pc_landsat-c2-l2_items_10.json",
                "pystac-client-cassettes/earthsearch_v1_s2l2a_landsat_c2l2.json", "stac-geoparquet/sentinel-2-l2a-pc.json"):
        for f in _features(_read(rel)):
            features.setdefault(f"{f['collection']}/{f['id']}", f)
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": list(features.values())}), encoding="utf-8")
    with serve_stac(folder) as url:
        yield url


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_search_recorded_earth_search_s2_and_landsat_through_the_api(recorded_api):
    """The recorded request (collections sentinel-2-l2a + landsat-c2-l2, a point near Boulder,
    2023-10-08) replayed against the served responses: both sensors, each with its scaling."""
    lon, lat = -105.1019, 40.1672
    res = search_items(recorded_api, collections=["sentinel-2-l2a", "landsat-c2-l2"], bbox=(lon - 1e-4, lat - 1e-4, lon + 1e-4, lat + 1e-4),
                       datetime="2023-10-08/2023-10-08", max_cloud_cover=100)
    assert sorted(i.id for i in res.items) == ["LC08_L2SP_033032_20231008_02_T1", "S2A_13TDE_20231008_0_L2A"]
    parsed = {p.sensor: p for p in map(parse_item, res.items)}
    assert (parsed["sentinel-2"].bands["red"].scale, parsed["sentinel-2"].bands["red"].offset) == (1e-4, 0.0)
    assert (parsed["landsat"].bands["nir"].asset, parsed["landsat"].bands["nir"].scale, parsed["landsat"].bands["nir"].offset) == ("nir08", 2.75e-5, -0.2)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_search_recorded_planetary_computer_items_through_the_api(recorded_api):
    """PC sentinel-2-l2a served back: the 2019 items (02.12) and the 2024 items (05.10) come
    back with their offsets; the client-side cloud filter keeps only items ≤ the limit."""
    all_pc = _items("pystac-client-cassettes/pc_sentinel-2-l2a_search_33items.json")
    bbox = (-180.0, -90.0, 180.0, 90.0)
    res = search_items(recorded_api, collections=["sentinel-2-l2a"], bbox=bbox, datetime="2019-01-01T00:00:00Z/2019-01-01T00:00:11Z", max_cloud_cover=50)
    expected = sorted(i.id for i in all_pc if i.properties["eo:cloud_cover"] <= 50)
    assert sorted(i.id for i in res.items) == expected and 0 < len(expected) < len(all_pc)
    assert res.client_side_cloud_filter and res.n_before_cloud_filter == len(all_pc)
    assert {parse_item(i).bands["red"].offset for i in res.items} == {0.0}
    new = search_items(recorded_api, collections=["sentinel-2-l2a"], bbox=bbox, datetime="2024-04-01/2024-04-30", max_cloud_cover=100)
    assert len(new.items) == 4 and {parse_item(i).bands["red"].offset for i in new.items} == {-0.1}


# --- profiles in the config -----------------------------------------------------------------


def _cfg(tmp_path: Path, stac: dict) -> Path:
    import yaml

    (tmp_path / "zones.gpkg").write_bytes(b"")
    p = tmp_path / "scan.yml"
    p.write_text(yaml.safe_dump({"name": "t", "stac": stac, "zones": {"path": "zones.gpkg", "id_field": "id"},
                                 "baseline": {"start": "2021-01-01", "end": "2021-12-31"}, "monitor": {"start": "2022-01-01", "end": "2022-12-31"}}))
    return p


@pytest.mark.parametrize("name", ["earth-search", "planetary-computer", "landsat"])
def test_profile_fills_url_and_collections(tmp_path, name):
    cfg = load_config(_cfg(tmp_path, {"profile": name}))
    assert cfg.stac.url == PROFILES[name].url and cfg.stac.url.startswith("https://")
    assert cfg.stac.collections == list(PROFILES[name].collections)


def test_profile_keeps_explicit_url_and_collections(tmp_path):
    cfg = load_config(_cfg(tmp_path, {"profile": "planetary-computer", "url": "http://127.0.0.1:9", "collections": ["landsat-c2-l2"]}))
    assert (cfg.stac.url, cfg.stac.collections) == ("http://127.0.0.1:9", ["landsat-c2-l2"])


def test_unknown_profile_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tmp_path, {"profile": "sentinel-hub"}))
    assert "stac.profile" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(StacError, match="use one of"):
        get_profile("sentinel-hub")


def test_pc_signer_leaves_non_pc_hrefs_alone_without_network():
    pc_signer = PROFILES["planetary-computer"].signer
    assert pc_signer is not None and pc_signer.__name__ == "pc_signer"
    assert pc_signer("file:///tmp/B04.tif") == "file:///tmp/B04.tif"
    signed = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/x/B04.tif?st=2020-01-01&se=2030-01-01&sp=rl&sig=abc"
    assert pc_signer(signed) == signed  # already signed: no token request


def test_qa_pixel_default_layout_matches_the_recorded_bitfields():
    """USGS landsatlook items carry no classification:bitfields: the built-in QA_PIXEL layout
    must mask exactly what the bitfields of a recorded PC item mask, for every 16-bit value."""
    import numpy as np
    import xarray as xr

    from indices import qa_bits_clear

    qa = xr.DataArray(np.arange(2**16, dtype="uint16").reshape(256, 256), dims=("y", "x"))
    p = parse_item(_items("pystac-client-cassettes/pc_landsat-c2-l2_items_10.json")[0])
    from_item = qa_bits_clear(qa, p.mask.bitfields).values
    default = qa_bits_clear(qa).values
    np.testing.assert_array_equal(from_item, default)
    np.testing.assert_array_equal(default, (qa.values & 0b111111) == 0)  # bits 0-5 (LSDS-1619)
