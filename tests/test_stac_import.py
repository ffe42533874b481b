"""``redline stac import``: real scene files → COGs + STAC Items, through the real command line,
served by the embedded STAC API, searched with pystac-client, parsed with
:func:`pipelines.parse_item` and loaded with :func:`pipelines.load_series`.

Real files as they are: the Pucallpa composites (with a band-mapping file), the Landsat 8
Collection 1 L1TP subset with its MTL and BQA, the Sentinel-2 L1C band files of Brandenburg, the
Colorado LEDAPS SR + Fmask scenes (mapping file with per-band suffixes and a class mask).

Folders built here because no such real product is in the repository (names follow the real
naming; **pixels are real pixels of the repository's subsets, not of the product named**):

- Landsat Collection 2 Level-2: the rio-tiler Landsat 8 C1 DN renamed ``LC08_L2SP_…_SR_B*.TIF``
  (and the C1 BQA as ``QA_PIXEL``, B6 as ``ST_B10``), and the Colorado Landsat 5 TM bands renamed
  ``LT05_L2SP_…_SR_B3/B4.TIF``: the names, band numbers and metadata are under test, not values.
- Sentinel-2 SAFE: the Brandenburg bands written as lossless JPEG2000 into an L2A SAFE (baseline
  05.09, with an MTD_MSIL2A.xml holding BOA_ADD_OFFSET −1000) and an L1C SAFE (baseline 02.04,
  no MTD); the SCL layer is made up (class 4 vegetation, a block of class 9 cloud).
- Gaofen: a GF-1 WFV file of the Brandenburg B02/B03/B04/B08 bands (10 m) with its XML, and a
  GF-2 PMS pair whose MSS is the same four bands decimated by 4 (every 4th pixel, 40 m; values
  unchanged) and whose PAN is B04 (10 m).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.transform
import rasterio.warp
from odc.geo.geobox import GeoBox
from pystac_client import Client

from pipelines import load_series, parse_item, serve_stac

DATA = Path(__file__).parent / "data"
PUCALLPA = DATA / "pucallpa"
S2 = DATA / "real_scenes" / "s2l1c_brandenburg"
L8 = DATA / "real_scenes" / "l8c1_riotiler"
COLORADO = DATA / "real_scenes" / "landsat_colorado"
L8_STEM = "LC08_L1TP_016037_20170813_20170814_01_RT"
CLI = [sys.executable, "-m", "redline.cli"]

PUCALLPA_MAPPING = r"""# Pucallpa Landsat annual composites: 4 bands SWIR1, NIR, red, green; 0 = no data; no mask
match: '(?P<date>\d{4})\.tif$'
date_format: '%Y'
collection: pucallpa-composites
platform: landsat
scale: 0.00392156862745098
nodata: 0
bands:
  swir16: {band: 1}
  nir: {band: 2}
  red: {band: 3}
  green: {band: 4}
notes: 8-bit display-stretched composites, not reflectance
"""

COLORADO_MAPPING = r"""# LEDAPS SR (int16 x 10000, nodata -9999) + Fmask, pre-collection scene ids LXSPPPRRRYYYYDDDGSIVV
match: '(?P<id>L[ET][57]\d{6}(?P<date>\d{7})[A-Z]{3}\d\d)_'
date_format: '%Y%j'
collection: landsat-ledaps-sr
scale: 0.0001
nodata: -9999
bands:
  red: {file: _b3.tif}
  nir08: {file: _b4.tif}
  swir16: {file: _b5.tif}
mask: {file: _fmask.tif, nodata: 255, classes: {0: clear_land, 1: water, 2: cloud_shadow, 3: snow, 4: cloud, 255: fill}}
"""


def run_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def _write(path: Path, data: np.ndarray, like: Path | None = None, **profile) -> Path:
    """Write ``data`` (bands, y, x) as GTiff (or lossless JP2 by suffix) on ``like``'s grid unless given."""
    if like is not None:
        with rasterio.open(like) as r:
            profile = {"crs": r.crs, "transform": r.transform, **profile}
    data = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    prof = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2], "dtype": data.dtype.name, **profile}
    if path.suffix == ".jp2":
        from rasterio.io import MemoryFile

        with MemoryFile() as mem:
            with mem.open(**prof) as tmp:
                tmp.write(data)
            with mem.open() as tmp:
                rasterio.shutil.copy(tmp, path, driver="JP2OpenJPEG", REVERSIBLE="YES", QUALITY="100")
        return path
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return path


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as r:
        return r.read(band)


def _s2(band: str) -> Path:
    return S2 / f"T33UUU_20170216T102101_{band}.tif"


# --- folders built from real pixels --------------------------------------------------------
def _landsat_c2l2(root: Path) -> None:
    pid = "LC08_L2SP_016037_20170813_20200903_02_T1"
    for n in range(2, 8):
        shutil.copy(L8 / f"{L8_STEM}_B{n}.TIF", root / f"{pid}_SR_B{n}.TIF")
    shutil.copy(L8 / f"{L8_STEM}_BQA.TIF", root / f"{pid}_QA_PIXEL.TIF")
    shutil.copy(L8 / f"{L8_STEM}_B6.TIF", root / f"{pid}_ST_B10.TIF")
    shutil.copy(L8 / f"{L8_STEM}_B6.TIF", root / f"{pid}_QA_RADSAT.TIF")  # not used by redline
    tm = "LT05_L2SP_035032_20110802_20200820_02_T1"
    scene = COLORADO / "LT50350322011214PAC01"
    shutil.copy(scene / "LT50350322011214PAC01_b3.tif", root / f"{tm}_SR_B3.TIF")
    shutil.copy(scene / "LT50350322011214PAC01_b4.tif", root / f"{tm}_SR_B4.TIF")


_L2A_SAFE = "S2B_MSIL2A_20230105T102319_N0509_R065_T33UUU_20230105T121432.SAFE"
_L1C_SAFE = "S2A_MSIL1C_20170216T102101_N0204_R065_T33UUU_20170216T102204.SAFE"

_MTD_L2A = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>
  <Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake>
  <Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
  <BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
  <Spectral_Information_List>{spectral}</Spectral_Information_List></Product_Image_Characteristics>
 </Product_Info></n1:General_Info>
 <n1:Quality_Indicators_Info><Cloud_Coverage_Assessment>12.5</Cloud_Coverage_Assessment></n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def _sentinel2_safe(root: Path) -> None:
    granule = root / _L2A_SAFE / "GRANULE" / "L2A_T33UUU_A030500_20230105T102318" / "IMG_DATA"
    stem = "T33UUU_20230105T102319"
    for band in ("B02", "B03", "B04", "B08"):
        _write(granule / "R10m" / f"{stem}_{band}_10m.jp2", _read(_s2(band)), like=_s2(band))
    for band in ("B8A", "B11", "B12"):
        _write(granule / "R20m" / f"{stem}_{band}_20m.jp2", _read(_s2(band)), like=_s2(band))
    _write(granule / "R20m" / f"{stem}_B02_20m.jp2", _read(_s2("B8A")), like=_s2("B8A"))  # a resampled copy: the 10 m file wins
    scl = np.full((60, 60), 4, np.uint8)
    scl[:20, :20] = 9
    _write(granule / "R20m" / f"{stem}_SCL_20m.jp2", scl, like=_s2("B11"))
    ids = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    spectral = "".join(f'<Spectral_Information bandId="{i}" physicalBand="{b}"/>' for i, b in enumerate(ids))
    (root / _L2A_SAFE / "MTD_MSIL2A.xml").write_text(_MTD_L2A.format(offsets=offsets, spectral=spectral), encoding="utf-8")
    img = root / _L1C_SAFE / "GRANULE" / "L1C_T33UUU_A008640_20170216T102204" / "IMG_DATA"
    for band in ("B04", "B08", "B11"):
        _write(img / f"T33UUU_20170216T102101_{band}.jp2", _read(_s2(band)), like=_s2(band))


_GF_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ProductMetaData><SatelliteID>{sat}</SatelliteID><SensorID>{sensor}</SensorID>
<StartTime>2017-02-16 10:21:01</StartTime><CloudPercent>3</CloudPercent></ProductMetaData>
"""


def _gaofen(root: Path) -> None:
    stack = np.stack([_read(_s2(b)) for b in ("B02", "B03", "B04", "B08")])
    wfv = "GF1_WFV1_E12.6_N52.5_20170216_L1A0000000001"
    _write(root / f"{wfv}.tiff", stack, like=_s2("B04"))
    (root / f"{wfv}.xml").write_text(_GF_XML.format(sat="GF1", sensor="WFV1"), encoding="utf-8")
    pms = "GF2_PMS1_E12.6_N52.5_20170216_L1A0000000002"
    with rasterio.open(_s2("B04")) as r:
        coarse = r.transform * rasterio.Affine.scale(4)
        crs = r.crs
    _write(root / f"{pms}-MSS1.tiff", stack[:, ::4, ::4].copy(), crs=crs, transform=coarse)
    _write(root / f"{pms}-PAN1.tiff", _read(_s2("B04")), like=_s2("B04"))
    (root / f"{pms}-MSS1.xml").write_text(_GF_XML.format(sat="GF2", sensor="PMS1"), encoding="utf-8")


@pytest.fixture(scope="module")
def imports(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every good import through ``redline stac import``, two at a time."""
    tmp = tmp_path_factory.mktemp("imports")
    (tmp / "pucallpa.yml").write_text(PUCALLPA_MAPPING, encoding="utf-8")
    (tmp / "colorado.yml").write_text(COLORADO_MAPPING, encoding="utf-8")
    mixed = tmp / "mixed"
    for build in (_landsat_c2l2, _sentinel2_safe, _gaofen):
        (mixed / build.__name__).mkdir(parents=True)
        build(mixed / build.__name__)
    jobs = {
        "pucallpa": (PUCALLPA, "--mapping", tmp / "pucallpa.yml"),
        "l8c1": (L8,),
        "s2files": (S2,),
        "colorado": (COLORADO, "--mapping", tmp / "colorado.yml"),
        "mixed": (mixed,),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(run_cli, "stac", "import", args[0], "--out", tmp / "out" / k, *args[1:]) for k, args in jobs.items()}
        out = {k: (f.result(), tmp / "out" / k) for k, f in futures.items()}
    for k, (res, _) in out.items():
        assert res.returncode == 0, (k, res.stderr[-3000:])
    return out


def _search(out: Path, collection: str) -> list[pystac.Item]:
    with serve_stac(out) as url:
        return list(Client.open(url).search(collections=[collection], datetime="1980-01-01/2030-12-31", limit=50).items())


def _geobox(path: Path) -> GeoBox:
    with rasterio.open(path) as r:
        return GeoBox((r.height, r.width), r.transform, r.crs)


def _load(items, gb, **kw):
    with dask.config.set(scheduler="synchronous"):
        return load_series(items, gb, resampling="nearest", **kw).data.compute()


# --- good imports ---------------------------------------------------------------------------
def test_pucallpa_mapping_import_serves_and_loads_the_source_ndvi(imports):
    res, out = imports["pucallpa"]
    assert "8 scenes (mapping), bands green, red, nir, swir16, masks: no" in res.stdout
    assert "masks: assume-clear" in res.stdout
    items = _search(out, "pucallpa-composites")
    assert sorted(it.id for it in items) == [f"pucallpa-composites_{y}" for y in range(1985, 2021, 5)]
    feats = json.loads((out / "items.json").read_text())["features"]
    assert [f["properties"]["datetime"][:4] for f in feats] == [str(y) for y in range(1985, 2021, 5)]  # sorted by datetime
    p = parse_item(items[0])
    assert set(p.bands) == {"swir16", "nir", "red", "green"} and p.mask is None and p.epsg == 4326
    assert p.bands["nir"].scale == pytest.approx(1 / 255) and p.bands["nir"].nodata == 0
    with rasterio.open(Path(p.bands["red"].href.removeprefix("file://"))) as r:
        assert r.driver == "GTiff" and r.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and r.count == 1 and r.nodata == 0
    # load_series needs a projected grid: UTM 18S at 90 m over the composites, nearest neighbour
    gb = GeoBox.from_bbox(rasterio.warp.transform_bounds("EPSG:4326", "EPSG:32718", *items[0].bbox), "EPSG:32718", resolution=90)
    ds = _load(items, gb, bands=("red", "nir"))
    src = rasterio.open(PUCALLPA / "1985.tif")
    bands = src.read().astype("float64")
    t0 = int(np.argmax(ds.time.dt.year.values == 1985))
    ndvi = ((ds["nir"] - ds["red"]) / (ds["nir"] + ds["red"]))[t0].values
    # the source pixel under each grid pixel's centre, where the centre is well inside it (GDAL's
    # nearest neighbour may pick the next pixel within its approximate transformer's error)
    xs, ys = np.meshgrid(ds.x.values, ds.y.values)
    lon, lat = rasterio.warp.transform("EPSG:32718", "EPSG:4326", xs.ravel(), ys.ravel())
    fc, fr = ~src.transform * (np.asarray(lon), np.asarray(lat))
    rows, cols = np.floor(fr).astype(int).reshape(xs.shape), np.floor(fc).astype(int).reshape(xs.shape)
    central = ((np.abs(fr % 1 - 0.5) < 0.3) & (np.abs(fc % 1 - 0.5) < 0.3)).reshape(xs.shape)
    inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
    nir, red = np.zeros(xs.shape), np.zeros(xs.shape)
    nir[inside], red[inside] = bands[1][rows[inside], cols[inside]], bands[2][rows[inside], cols[inside]]
    has = inside & central & (nir > 0) & (red > 0)
    assert has.sum() > 5000
    np.testing.assert_allclose(ndvi[has], (nir[has] - red[has]) / (nir[has] + red[has]), atol=1e-6)
    assert ds["clear"][t0].values[has].all() and not ds["clear"][t0].values[~inside & ~np.roll(inside, 1, 0) & ~np.roll(inside, 1, 1)].any()  # no mask: clear = has data


def test_landsat_c1_import_keeps_mtl_scaling_and_the_bqa_as_bits(imports):
    res, out = imports["l8c1"]
    assert "1 scenes (landsat-c1-l1), bands blue, green, red, nir08, swir16, swir22, masks: yes" in res.stdout
    (item,) = _search(out, "landsat-c1-l1")
    assert item.id == L8_STEM and item.properties["landsat:wrs_path"] == "016" and item.properties["platform"] == "landsat-8"
    assert item.datetime.isoformat().startswith("2017-08-13T15:54:15")  # MTL DATE_ACQUIRED + SCENE_CENTER_TIME
    p = parse_item(item)
    assert p.mask is not None and p.mask.kind == "bits" and p.mask.nodata == 1
    assert ("designated_fill", 0, 1) in {f[:3] for f in p.mask.bitfields}
    assert p.bands["nir"].asset == "nir08" and p.bands["red"].scale == 2e-5 and p.bands["red"].offset == -0.1  # MTL REFLECTANCE_MULT/ADD_BAND_4
    ds = _load([item], _geobox(L8 / f"{L8_STEM}_B4.TIF"), bands=("red", "nir"))
    dn, qa = _read(L8 / f"{L8_STEM}_B4.TIF").astype("float64"), _read(L8 / f"{L8_STEM}_BQA.TIF")
    ok = dn > 0
    np.testing.assert_allclose(ds["red"][0].values[ok], dn[ok] * 2e-5 - 0.1, rtol=1e-6)
    assert np.isnan(ds["red"][0].values[~ok]).all()
    clear = ds["clear"][0].values
    assert not clear[(qa & 1) == 1].any() and not clear[(qa >> 4) & 1 == 1].any()  # fill and cloud bits masked
    assert clear.mean() > 0.2


def test_landsat_c2l2_names_give_usgs_scaling_qa_pixel_bits_and_band_numbers_per_sensor(imports):
    _, out = imports["mixed"]
    feats = {f["id"]: f for f in json.loads((out / "items.json").read_text())["features"]}
    oli = pystac.Item.from_dict(feats["LC08_L2SP_016037_20170813_20200903_02_T1"])
    p = parse_item(oli)
    assert p.sensor == "landsat" and oli.collection_id == "redline-import"  # a mix of layouts
    assert oli.properties["landsat:correction"] == "L2SP" and oli.properties["landsat:collection_number"] == "02"
    assert (oli.properties["landsat:wrs_path"], oli.properties["landsat:wrs_row"]) == ("016", "037")
    assert {b: (i.scale, i.offset, i.nodata) for b, i in p.bands.items() if b != "lwir11"} == {
        b: (2.75e-5, -0.2, 0) for b in ("blue", "green", "red", "nir08", "swir16", "swir22", "nir")}
    assert oli.assets["red"].extra_fields["eo:bands"][0]["name"] == "SR_B4" and oli.assets["nir08"].extra_fields["eo:bands"][0]["name"] == "SR_B5"
    assert p.mask.kind == "bits" and p.mask.asset == "qa_pixel"
    assert {f[0]: f[1] for f in p.mask.bitfields if f[2] == 1} == {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4,
                                                                     "snow": 5, "clear": 6, "water": 7}
    assert p.thermal is not None and (p.thermal.scale, p.thermal.offset, p.thermal.unit) == (0.00341802, 149.0, "kelvin")
    assert "qa_radsat" not in oli.assets
    tm = pystac.Item.from_dict(feats["LT05_L2SP_035032_20110802_20200820_02_T1"])
    assert tm.properties["instruments"] == ["tm"] and tm.assets["nir08"].extra_fields["eo:bands"][0]["name"] == "SR_B4"
    assert tm.assets["red"].extra_fields["eo:bands"][0]["name"] == "SR_B3" and parse_item(tm).mask is None


def test_sentinel2_band_files_keep_native_resolutions_and_the_baseline_rule(imports):
    res, out = imports["s2files"]
    assert "1 scenes (sentinel-2-l1c)" in res.stdout and "masks: no" in res.stdout and "masks: assume-clear" in res.stdout
    (item,) = _search(out, "sentinel-2-l1c")
    p = parse_item(item)
    assert p.sensor == "sentinel-2" and item.datetime.isoformat() == "2017-02-16T10:21:01+00:00"
    assert {b: (i.scale, i.offset) for b, i in p.bands.items()} == {b: (1e-4, 0.0) for b in p.bands}  # 2017: before baseline 04.00
    assert {b: p.bands[b].resolution for b in ("red", "nir", "nir08", "swir16", "coastal")} == {"red": 10, "nir": 10, "nir08": 20, "swir16": 20, "coastal": 60}
    assert item.assets["swir16"].extra_fields["proj:shape"] == [60, 60]
    np.testing.assert_array_equal(_read(Path(p.bands["swir22"].href.removeprefix("file://"))), _read(_s2("B12")))
    with rasterio.open(_s2("B04")) as r:  # the EPSG:4326 outline of the 10 m grid
        np.testing.assert_allclose(item.bbox, rasterio.warp.transform_bounds(r.crs, "EPSG:4326", *r.bounds), atol=1e-6)


def test_sentinel2_safe_reads_offsets_from_the_mtd_or_the_baseline_and_the_scl(imports):
    _, out = imports["mixed"]
    feats = {f["id"]: pystac.Item.from_dict(f) for f in json.loads((out / "items.json").read_text())["features"]}
    l2a = feats[_L2A_SAFE.removesuffix(".SAFE")]
    p = parse_item(l2a)
    assert p.processing_baseline == "05.09" and p.platform == "sentinel-2b" and l2a.properties["eo:cloud_cover"] == 12.5
    assert {b: (i.scale, i.offset) for b, i in p.bands.items()} == {b: (1e-4, -0.1) for b in p.bands}
    assert p.mask is not None and p.mask.kind == "scl" and l2a.assets["scl"].extra_fields["proj:transform"][0] == 20
    assert p.bands["blue"].resolution == 10  # B02_10m, not the 20 m copy
    np.testing.assert_array_equal(_read(Path(p.bands["red"].href.removeprefix("file://"))), _read(_s2("B04")))  # lossless JP2 → COG
    l1c = parse_item(feats[_L1C_SAFE.removesuffix(".SAFE")])
    assert l1c.processing_baseline == "02.04" and l1c.bands["red"].offset == 0.0 and l1c.mask is None


def test_gaofen_multiband_files_are_split_and_dn_kept_with_a_note(imports):
    res, out = imports["mixed"]
    assert "gaofen-wfv: 1 scene(s)" in res.stdout and "gaofen-pms: 1 scene(s)" in res.stdout and "not calibrated" in res.stdout
    feats = {f["id"]: pystac.Item.from_dict(f) for f in json.loads((out / "items.json").read_text())["features"]}
    wfv = feats["GF1_WFV1_E12.6_N52.5_20170216_L1A0000000001"]
    p = parse_item(wfv)
    assert set(p.bands) == {"blue", "green", "red", "nir"} and all((b.scale, b.offset, b.nodata) == (1.0, 0.0, 0) for b in p.bands.values())
    assert wfv.properties["platform"] == "gf-1" and wfv.properties["eo:cloud_cover"] == 3.0
    assert wfv.properties["gaofen:start_time"] == "2017-02-16 10:21:01"
    assert any("not calibrated" in n for n in wfv.properties["redline:import"]["notes"])
    assert wfv.datetime.date().isoformat() == "2017-02-16"
    np.testing.assert_array_equal(_read(Path(p.bands["nir"].href.removeprefix("file://"))), _read(_s2("B08")))
    pms = parse_item(feats["GF2_PMS1_E12.6_N52.5_20170216_L1A0000000002"])
    assert pms.bands["pan"].resolution == 10 and pms.bands["red"].resolution == 40
    np.testing.assert_array_equal(_read(Path(pms.bands["red"].href.removeprefix("file://"))), _read(_s2("B04"))[::4, ::4])


def test_mapping_with_file_suffixes_and_a_class_mask(imports):
    res, out = imports["colorado"]
    assert "8 scenes (mapping)" in res.stdout and "masks: yes" in res.stdout
    items = _search(out, "landsat-ledaps-sr")
    assert len(items) == 8
    p = parse_item(next(it for it in items if it.id == "LE70350322008182EDC00"))
    assert p.mask.kind == "classes" and dict(p.mask.classes)[4] == "cloud" and p.mask.nodata == 255
    assert p.bands["red"].nodata == -9999 and p.bands["nir"].asset == "nir08"
    assert items[0].datetime.date().isoformat()[:4] in {"2008", "2009", "2010", "2011", "2012"}
    src = COLORADO / "LE70350322008182EDC00"
    ds = _load([next(it for it in items if it.id == "LE70350322008182EDC00")], _geobox(src / "LE70350322008182EDC00_b3.tif"), bands=("red",))
    fm = _read(src / "LE70350322008182EDC00_fmask.tif")
    assert not ds["clear"][0].values[np.isin(fm, (2, 4, 255))].any()


# --- bad input: one line naming the file or key, exit 2, nothing written ---------------------
def _copy_s2(dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for f in S2.iterdir():
        if not any(s in f.name for s in skip):
            shutil.copy(f, dst / f.name)
    return dst


def _no_layout(tmp: Path) -> list:
    (tmp / "scenes").mkdir()
    shutil.copy(PUCALLPA / "1985.tif", tmp / "scenes" / "scene.tif")
    return [tmp / "scenes"]


def _mapping_band_missing(tmp: Path) -> list:
    (tmp / "mapping.yml").write_text(PUCALLPA_MAPPING.replace("nir: {band: 2}", "nir: {band: 5}"), encoding="utf-8")
    return [PUCALLPA, "--mapping", tmp / "mapping.yml"]


def _mapping_file_missing(tmp: Path) -> list:
    (tmp / "mapping.yml").write_text(COLORADO_MAPPING.replace("_b3.tif", "_b9.tif"), encoding="utf-8")
    return [COLORADO, "--mapping", tmp / "mapping.yml"]


def _mapping_unknown_key(tmp: Path) -> list:
    (tmp / "mapping.yml").write_text(PUCALLPA_MAPPING.replace("red: {band: 3}", "red: {bnd: 3}"), encoding="utf-8")
    return [PUCALLPA, "--mapping", tmp / "mapping.yml"]


def _mixed_crs(tmp: Path) -> list:
    d = _copy_s2(tmp / "s2")
    with rasterio.open(d / "T33UUU_20170216T102101_B08.tif", "r+") as r:
        r.crs = rasterio.crs.CRS.from_epsg(32634)
    return [d]


def _not_a_multiple(tmp: Path) -> list:
    d = _copy_s2(tmp / "s2")
    with rasterio.open(d / "T33UUU_20170216T102101_B11.tif", "r+") as r:
        r.transform = rasterio.Affine(15, 0, 336000, 0, -15, 5819640)
    return [d]


def _off_lattice(tmp: Path) -> list:
    d = _copy_s2(tmp / "s2")
    with rasterio.open(d / "T33UUU_20170216T102101_B11.tif", "r+") as r:
        r.transform = rasterio.Affine(20, 0, 336005, 0, -20, 5819640)
    return [d]


def _no_nir(tmp: Path) -> list:
    return [_copy_s2(tmp / "s2", skip=("B08", "B8A"))]


def _out_not_empty(tmp: Path) -> list:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("x")
    return [S2]


BAD = {
    "no-known-layout": (_no_layout, ("scenes", "no known band layout", "Landsat C2 L2", "--mapping FILE")),
    "mapping-band-index-missing": (_mapping_band_missing, ("mapping.yml", "bands.nir.band = 5", "1985.tif has only 4 band(s)")),
    "mapping-band-file-missing": (_mapping_file_missing, ("mapping.yml", "bands.red.file = '_b9.tif'", "no file of scene", "fix the suffix")),
    "mapping-unknown-key": (_mapping_unknown_key, ("mapping.yml", "unknown key 'bands.red.bnd'",)),
    "mixed-crs": (_mixed_crs, ("T33UUU_20170216T102101_B", "CRS EPSG:3263", "differs", "reproject")),
    "resolution-not-a-multiple": (_not_a_multiple, ("T33UUU_20170216T102101_B11.tif", "pixel size 15 is not a whole multiple of 10")),
    "grid-off-the-lattice": (_off_lattice, ("T33UUU_20170216T102101_B11.tif", "off the pixel lattice", "align it")),
    "no-nir": (_no_nir, ("s2", "has no nir band", "NDVI needs red and nir")),
    "out-not-empty": (_out_not_empty, ("--out", "not empty", "--overwrite")),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    jobs = {}
    for case, (make, _) in BAD.items():
        tmp = tmp_path_factory.mktemp(case)
        jobs[case] = (tmp, make(tmp))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c: pool.submit(run_cli, "stac", "import", args[0], "--out", tmp / "out", *args[1:]) for c, (tmp, args) in jobs.items()}
        return {c: (f.result(), jobs[c][0]) for c, f in futures.items()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, bad_runs):
    res, tmp = bad_runs[case]
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in BAD[case][1]:
        assert needle in lines[0], (needle, lines[0])
    if case == "out-not-empty":
        assert [p.name for p in (tmp / "out").iterdir()] == ["keep.txt"]
    else:
        assert not (tmp / "out").exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".out.")]  # no temporary folder left behind


def test_overwrite_replaces_an_import(tmp_path):
    t0 = time.monotonic()
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    res = run_cli("stac", "import", S2, "--out", out, "--overwrite", "--collection", "brandenburg")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["S2_T33UUU_20170216T102101_L1C", "collection.json", "items.json"]
    assert json.loads((out / "collection.json").read_text())["id"] == "brandenburg"
    assert time.monotonic() - t0 < 60
