"""Bands the indices do not need are optional; scenes without a quality mask (issue #20).

- Real pixels (tests/stac_real.py): the Brandenburg Sentinel-2 L1C subset without its SWIR
  assets loads, with NDVI equal to the full load's and the SWIR bands NaN; the Colorado
  Landsat 5/7 series with SWIR stripped from half its scenes loads with NaN only in those.
- The band plan of a scan (:mod:`redline.bands`) and the type rule on NaN typing values.
- Real scans through the ``redline`` command (subprocess) of the generated small scene set:
  without SWIR (a 4-band set) the big clearing, construction, mining and fire events are still
  found, typed clearing, on NDVI alone; with the quality mask removed from its cloud-free scenes
  and ``masks: assume-clear`` it finds the same alerts as the scan with every mask.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import yaml
from odc.geo.geobox import GeoBox

from pipelines import load_series, serve_stac
from redline import bands as B
from redline.alerts import classify_type
from redline.detect import STACK_VARS
from redline.errors import StacError
from tests import stac_real as S
from tests.test_bad_input import run_cli

SWIR = ("swir16", "swir22")
OTHERS = ("blue", "green", "swir16", "swir22")


def _geobox(path: Path) -> GeoBox:
    with rasterio.open(path) as r:
        return GeoBox((r.height, r.width), r.transform, r.crs)


def _items(dicts: list[dict], drop: tuple[str, ...] = (), which: set[int] | None = None) -> list[pystac.Item]:
    """pystac Items of ``dicts`` with the assets whose common name is in ``drop`` removed (in the
    items numbered ``which``, default all)."""
    out = []
    for i, d in enumerate(json.loads(json.dumps(dicts))):
        if which is None or i in which:
            d["assets"] = {k: a for k, a in d["assets"].items()
                           if not any(b.get("common_name", b.get("eo:common_name")) in drop for b in a.get("eo:bands", a.get("bands", [])))}
        out.append(pystac.Item.from_dict(d))
    return out


def _ndvi(ds) -> np.ndarray:
    red, nir = ds["red"].values.astype("float64"), ds["nir"].values.astype("float64")
    return (nir - red) / (nir + red)


# --- real pixels ----------------------------------------------------------------------------


def test_sentinel2_without_swir_loads_with_the_same_ndvi_and_nan_swir():
    gb = _geobox(S.S2_DIR / "T33UUU_20170216T102101_B04.tif")  # 120 × 120 px at 10 m
    full_items, four = _items(S.s2l1c_items()), _items(S.s2l1c_items(), drop=SWIR)
    assert not {"swir16", "swir22"} & set(B.plan_bands(four).every)
    with dask.config.set(scheduler="synchronous"):
        full = load_series(full_items, gb, mask=None, check_assets=False).data.compute()
        lazy = load_series(four, gb, bands=("red", "nir"), optional_bands=OTHERS, mask=None, check_assets=False)
        assert all(lazy.data[b].chunks is not None for b in (*OTHERS, "red", "nir", "clear"))  # nothing read yet
        got = lazy.data.compute()
    assert list(got.data_vars) == ["red", "nir", *OTHERS, "clear"]
    for b in SWIR:
        assert np.isnan(got[b].values).all(), b
    for b in ("blue", "green", "red", "nir"):
        np.testing.assert_array_equal(got[b].values, full[b].values)
    a, b = _ndvi(got), _ndvi(full)
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 0.99 * a.size
    np.testing.assert_array_equal(a[both], b[both])
    # clear = has data in the bands the scene has: the SWIR no longer decides it
    assert got["clear"].values.sum() >= full["clear"].values.sum() > 0


def test_mixed_series_is_nan_only_in_the_scenes_without_swir():
    dicts = S.landsat_colorado_items()  # 8 Landsat 5/7 scenes: red, nir08, swir16, Fmask
    gb = _geobox(S.LS_DIR / dicts[0]["id"] / f"{dicts[0]['id']}_b3.tif")
    lacking = {1, 4, 6}
    mixed = _items(dicts, drop=("swir16",), which=lacking)
    plan = B.plan_bands(mixed)
    assert plan.every == ("red", "nir") and plan.some == {"swir16": 3} and plan.none == ("blue", "green", "swir22")
    with dask.config.set(scheduler="synchronous"):
        full = load_series(_items(dicts), gb, bands=("red", "nir", "swir16"), check_assets=False).data.compute()
        res = load_series(mixed, gb, bands=plan.every, optional_bands=plan.optional, check_assets=False)
        got = res.data.compute()
    assert not res.skipped and got.sizes["time"] == full.sizes["time"] == 8
    without = {np.datetime64(mixed[i].datetime.date(), "D") for i in lacking}  # 17:00 UTC: the same solar day at 105° W
    steps = got["time"].values.astype("datetime64[D]")
    for t, when in enumerate(steps):
        swir = got["swir16"].values[t]
        if when in without:
            assert np.isnan(swir).all()
        else:
            np.testing.assert_array_equal(swir, full["swir16"].values[t])
            assert np.isfinite(swir).mean() > 0.5
    for b in ("red", "nir"):
        np.testing.assert_array_equal(got[b].values, full[b].values)
    # the Fmask still masks every scene; in the scenes without SWIR, clear no longer needs it
    np.testing.assert_array_equal(got["clear"].values[~np.isin(steps, list(without))], full["clear"].values[~np.isin(steps, list(without))])
    assert (got["clear"].values >= full["clear"].values).all()
    for b in ("blue", "green", "swir22"):
        assert np.isnan(got[b].values).all()


# --- the band plan and the type rule ----------------------------------------------------------


def test_plan_of_four_band_scenes_detects_on_ndvi_and_types_clearing_or_other():
    plan = B.plan_bands(_items(S.s2l1c_items(), drop=SWIR))
    assert plan.every == ("blue", "green", "red", "nir") and plan.none == SWIR and plan.optional == SWIR
    assert plan.stack_vars == ("NDVI",) and plan.detection_indices(["NDVI", "MNDWI", "NBR"]) == ("NDVI",)
    assert plan.types == ("clearing", "other")
    assert plan.note(["NDVI", "MNDWI", "NBR"]) == (
        "scenes have no swir16, swir22: detection on NDVI only (MNDWI needs swir16; NBR needs swir22); disturbance types limited to clearing/other")
    full = B.plan_bands(_items(S.s2l1c_items()))
    assert full.complete and full.note(["NDVI", "MNDWI", "NBR"]) is None and full.stack_vars == STACK_VARS
    assert full.without_mask == (S.s2l1c_items()[0]["id"],)  # the L1C subset has no SCL


def test_no_red_or_nir_in_any_scene_and_scenes_without_masks_are_refused():
    no_nir = B.plan_bands(_items(S.l8c1_items(), drop=("nir08",)))
    with pytest.raises(StacError) as err:
        B.check_scenes(no_nir, masks="required", configured=["NDVI"])
    assert "landsat-c1-l1" in str(err.value) and "has a nir band" in str(err.value) and "\n" not in str(err.value)
    s2 = B.plan_bands(_items(S.s2l1c_items()))
    with pytest.raises(StacError, match=r"1 of 1 scenes found have no quality mask asset .*set `masks: assume-clear` in /x/scan.yml"):
        B.check_scenes(s2, masks="required", configured=["NDVI"], config="/x/scan.yml")
    B.check_scenes(s2, masks="assume-clear", configured=["NDVI"])
    with pytest.raises(StacError, match="detection.indices MNDWI: the scenes found lack their bands .*add NDVI"):
        B.check_scenes(B.plan_bands(_items(S.s2l1c_items(), drop=SWIR)), masks="assume-clear", configured=["MNDWI"])


@pytest.mark.parametrize("present", [("NDVI",), ("NDVI", "NDBI"), ("NDVI", "MNDWI"), ("NDVI", "MNDWI", "NBR", "BI", "NDBI"), STACK_VARS])
def test_type_rule_on_nan_typing_values_gives_only_the_types_the_bands_allow(present):
    """NaN compares False: with the variables of missing bands NaN, classify_type never fails and
    never gives a type whose variables are missing (TYPE_NEEDS)."""
    allowed = {t for t, need in B.TYPE_NEEDS.items() if set(need) <= set(present)}
    rng = np.random.default_rng(20)
    seen = set()
    for _ in range(3000):
        pre = {v: float(rng.uniform(-0.6, 0.9)) if v in present else np.nan for v in STACK_VARS}
        post = {v: float(rng.uniform(-0.6, 0.9)) if v in present else np.nan for v in STACK_VARS}
        pre["ALB"], post["ALB"] = (rng.uniform(0, 0.5) if "ALB" in present else np.nan for _ in range(2))
        seen.add(classify_type(pre, post))
    assert seen <= allowed, seen - allowed
    if present == ("NDVI",):
        assert seen == {"clearing", "other"}


def test_probe_bands_per_collection_keep_a_broken_item_broken():
    s2 = _items(S.s2l1c_items())[0]
    ls = _items(S.landsat_colorado_items())
    need = B.bands_by_collection([s2, *ls])
    assert need == {"sentinel-2-l1c": ("blue", "green", "red", "nir", "swir16", "swir22"), "landsat-ledaps-sr": ("red", "nir", "swir16")}


# --- real scans through the command line ----------------------------------------------------


def _scan_cli(small_scenes, tmp_path: Path, edit, **top) -> tuple:
    """``redline scan`` (subprocess) of the small scene set with each item edited by ``edit``,
    served by its own embedded API; ``top`` sets top-level config keys. Returns the process and
    the output folder."""
    root = Path(small_scenes.root)
    api = tmp_path / "api"
    api.mkdir()
    fc = json.loads(Path(small_scenes.items).read_text(encoding="utf-8"))
    for f in fc["features"]:
        edit(f)
    (api / "items.json").write_text(json.dumps(fc), encoding="utf-8")
    shutil.copy(small_scenes.collection, api / "collection.json")
    cfg = yaml.safe_load(Path(small_scenes.config).read_text(encoding="utf-8"))
    cfg["zones"]["path"] = str(root / cfg["zones"]["path"])
    cfg["admin_units"]["path"] = str(root / cfg["admin_units"]["path"])
    cfg.update(top)
    with serve_stac(api) as url:
        cfg["stac"]["url"] = url
        (tmp_path / "scan.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        res = run_cli("scan", tmp_path / "scan.yml", "--out", tmp_path / "out", "--no-progress")
    return res, tmp_path / "out"


@pytest.mark.slow
def test_four_band_scan_finds_the_big_events_on_ndvi_alone(small_scenes, truth, tmp_path):
    def four_bands(f: dict) -> None:
        for k in SWIR:
            del f["assets"][k]

    res, out = _scan_cli(small_scenes, tmp_path, four_bands)
    assert res.returncode == 0, res.stderr[-3000:]
    line = "scenes have no swir16, swir22: detection on NDVI only (MNDWI needs swir16; NBR needs swir22); disturbance types limited to clearing/other"
    assert line in res.stdout.splitlines(), res.stdout
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    bands = manifest["bands"]
    assert bands["no_scene"] == list(SWIR) and bands["every_scene"] == ["blue", "green", "red", "nir"]
    assert bands["detection_indices"] == ["NDVI"] and bands["dropped_indices"] == ["MNDWI", "NBR"] and bands["note"] == line
    assert bands["stack_variables_nan"] == ["MNDWI", "NBR", "BI", "NDBI", "ALB"]
    assert manifest["config"]["resolved"]["detection"]["indices"] == ["NDVI", "MNDWI", "NBR"]  # the config as given, unchanged
    assert manifest["items"][0]["scaling"].keys() == {"blue", "green", "red", "nir"}
    alerts = gpd.read_file(out / "alerts.geojson")
    assert len(alerts) == 4 and set(alerts["disturbance_type"]) == {"clearing"}
    hits = gpd.sjoin(alerts.to_crs(32648), truth.to_crs(32648)[["event_id", "type", "geometry"]], predicate="intersects")
    # the clearing, and the construction, mining and fire sites (vegetation lost), each by one
    # alert; the water loss needs MNDWI (SWIR) and is not found; no alert off the events
    assert sorted(hits["event_id"]) == ["E01", "E02", "E03", "E04"] and hits["alert_id"].is_unique
    assert set(hits["alert_id"]) == set(alerts["alert_id"])
    assert "E05" in set(truth["event_id"]) and truth.set_index("event_id").at["E05", "type"] == "water_loss"


@pytest.mark.slow
def test_assume_clear_scans_scenes_without_a_mask_and_says_how_many(small_scenes, small_scan, tmp_path):
    """The quality mask removed from the cloud-free scenes (as a cloud-free composite comes):
    refused by default (tests/test_bad_input.py), scanned with ``masks: assume-clear``, with the
    same alerts as the scan with every mask."""
    stripped = []

    def no_mask_when_cloud_free(f: dict) -> None:
        if f["properties"]["eo:cloud_cover"] == 0:
            del f["assets"]["scl"]
            stripped.append(f["id"])

    res, out = _scan_cli(small_scenes, tmp_path, no_mask_when_cloud_free, masks="assume-clear")
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(stripped) == 8
    line = (f"8 of 73 scenes have no quality mask (e.g. {stripped[0]}); masks: assume-clear counts every pixel with data in them as clear")
    assert line in res.stdout.splitlines(), res.stdout
    masks = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["masks"]
    assert masks == {"setting": "assume-clear", "scenes": 73, "scenes_without_mask": 8, "ids_without_mask": stripped, "note": line}
    alerts = gpd.read_file(out / "alerts.geojson")
    want = small_scan.alerts
    assert list(zip(alerts["alert_id"], alerts["disturbance_type"], alerts["area_m2"])) == list(zip(want["alert_id"], want["disturbance_type"], want["area_m2"]))
    assert len(alerts) == 6
