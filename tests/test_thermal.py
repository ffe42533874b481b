"""Land-surface temperature from the Landsat thermal band, and the four-component RSEI.

The Landsat scenes are written from the generated demo scenes (see tests/test_profiles_series.py):
reflectance as 3 × 3 means of the Sentinel-2 pixels, QA_PIXEL from the SCL, and an ST_B10
surface-temperature band (Collection 2 Level-2 scaling, USGS LSDS-1619) holding a temperature
that rises with bareness. A scan of such a catalogue must load the thermal band as Kelvin and
compute the four-component RSEI, with heat loading against quality; a Sentinel-2 series with a
few Landsat dates must say why heat was left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pystac
import pytest
from odc.geo.geobox import GeoBox

import rasterio
from pipelines import load_series, parse_item
from redline.assess import rsei as rsei_index
from tests.test_profiles_series import ST_OFFSET, ST_SCALE, day_index, landsat_item, run_cli_on, up_30m


def _s2_features(small_scenes) -> list[dict]:
    return json.loads((Path(small_scenes.root) / "items.json").read_text())["features"]


@pytest.fixture(scope="module")
def thermal_pair(small_scenes, tmp_path_factory):
    """Two Landsat items with ST_B10 beside 12 Sentinel-2 scenes (one on a Sentinel-2 day)."""
    s2 = _s2_features(small_scenes)[:12]
    by_day = {f["properties"]["datetime"][:10]: f for f in s2}
    folder = tmp_path_factory.mktemp("thermal")
    l1, dn1, qa1 = landsat_item(by_day["2022-01-25"], "2022-01-28T03:20:00Z", folder, thermal=True)
    l2, dn2, qa2 = landsat_item(by_day["2022-01-25"], "2022-01-15T03:20:00Z", folder, thermal=True, declare_st=False)
    tr = s2[0]["assets"]["red"]["proj:transform"]
    gb = GeoBox((160, 160), rasterio.Affine(10, 0, tr[2], 0, -10, tr[5]), "EPSG:32648")
    items = [pystac.Item.from_dict(f) for f in [*s2, l1, l2]]
    with dask.config.set(scheduler="synchronous"):
        res = load_series(items, gb, resampling="nearest", thermal=True)
        plain = load_series(items, gb, resampling="nearest")
        ds = res.data.compute()
    return dict(ds=ds, res=res, plain=plain, items=items, dn1=dn1, qa1=qa1, dn2=dn2, qa2=qa2)


def test_thermal_band_parsed_as_kelvin_declared_or_by_rule(thermal_pair):
    declared, ruled = (parse_item(i) for i in thermal_pair["items"][-2:])
    assert (declared.thermal.asset, declared.thermal.scale, declared.thermal.offset) == ("lwir11", ST_SCALE, ST_OFFSET)
    assert declared.thermal.source == "raster:bands" and declared.thermal.unit == "kelvin"
    # no scale declared: the Collection 2 Level-2 surface-temperature rule, not the reflectance one
    assert (ruled.thermal.scale, ruled.thermal.offset, ruled.thermal.source) == (ST_SCALE, ST_OFFSET, "rule")
    assert "surface temperature" in ruled.thermal.reason
    assert ruled.bands["red"].scale == 2.75e-5  # reflectance still scaled as reflectance
    assert parse_item(thermal_pair["items"][0]).thermal is None  # Sentinel-2 has no thermal band


def test_lst_loaded_in_kelvin_on_landsat_days_nan_on_sentinel2_days(thermal_pair):
    ds = thermal_pair["ds"]
    assert "lst" not in thermal_pair["plain"].data  # only on request
    assert ds["lst"].attrs["units"] == "K"
    i = day_index(ds, "2022-01-28")  # Landsat alone
    want = up_30m(np.where(thermal_pair["dn1"]["lst"] == 0, np.nan, thermal_pair["dn1"]["lst"] * ST_SCALE + ST_OFFSET))
    got = ds["lst"].isel(time=i).values
    ok = np.isfinite(want)
    assert ok.sum() > 20000
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-3)
    assert 250 < np.nanmin(got) and np.nanmax(got) < 330
    s2_only = ~np.isin(ds.time.values.astype("datetime64[D]").astype(str), ("2022-01-28", "2022-01-15"))
    assert s2_only.sum() == 11 and np.isnan(ds["lst"].isel(time=np.flatnonzero(s2_only)).values).all()


def test_fused_day_takes_temperature_where_landsat_was_clear(thermal_pair):
    """On 2022-01-15 Sentinel-2 was mostly cloudy and Landsat clear: each pixel's temperature
    comes from Landsat wherever Landsat saw it clear, whichever sensor's reflectance won."""
    ds = thermal_pair["ds"]
    i = day_index(ds, "2022-01-15")
    qa_clear = up_30m(((thermal_pair["qa2"] >> 6) & 1).astype("float64")) == 1
    want = up_30m(thermal_pair["dn2"]["lst"] * ST_SCALE + ST_OFFSET)
    got = ds["lst"].isel(time=i).values
    np.testing.assert_allclose(got[qa_clear], want[qa_clear], atol=1e-3)
    assert np.isnan(got[~qa_clear & np.isfinite(want)]).all()
    sc = {(s.item_id, s.band): s for s in thermal_pair["res"].scalings}
    assert (sc[("LC08_L2SP_demo_20220115", "lst")].scale, sc[("LC08_L2SP_demo_20220115", "lst")].source) == (ST_SCALE, "rule")


@pytest.mark.slow
def test_landsat_assessment_computes_four_component_rsei(small_scenes, tmp_path):
    # every generated Sentinel-2 scene rewritten as a Landsat C2 L2 item with ST_B10
    feats = [landsat_item(f, f["properties"]["datetime"], tmp_path / "scenes", thermal=True)[0] for f in _s2_features(small_scenes)]
    rc = run_cli_on(small_scenes, feats, tmp_path, "assess", stac={"collections": ["landsat-c2-l2"]})
    assert rc == 0
    zs = pd.read_csv(tmp_path / "out" / "zone_stats.csv")
    assert zs["rsei_variant"].str.contains("4-component (NDVI, WET, NDBSI, LST)", regex=False).all()
    info = json.loads((tmp_path / "out" / "assessment.json").read_text())["rsei"]
    assert info["components"] == ["NDVI", "WET", "NDBSI", "LST"]
    loadings = info["loadings_pc1"]
    # sign fixed so higher = better: greenness and wetness load positively, heat and dryness negatively
    assert loadings["NDVI"] > 0 and loadings["LST"] < 0 and loadings["NDBSI"] < 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    scaling = manifest["items"][0]["scaling"]["lst"]
    assert (scaling["scale"], scaling["offset"]) == (ST_SCALE, ST_OFFSET)


def test_sparse_thermal_is_left_out_and_the_variant_says_why():
    rng = np.random.default_rng(3)
    comp = {n: rng.random((40, 40)).astype("float32") for n in ("NDVI", "WET", "NDBSI")}
    full = {**comp, "LST": (300 - 20 * comp["NDVI"]).astype("float32")}
    res = rsei_index.rsei_periods({"a": full, "b": full})
    assert "LST" in res.components and res.loadings["LST"] < 0 and not res.note
    sparse = dict(full, LST=np.where(rng.random((40, 40)) < 0.5, full["LST"], np.nan).astype("float32"))
    res = rsei_index.rsei_periods({"a": sparse, "b": full})
    assert res.components == ("NDVI", "WET", "NDBSI")
    assert "thermal band left out" in res.variant and "3-component" in res.variant
    assert np.isfinite(res.rsei["a"]).mean() == 1.0  # no pixel lost to the missing temperature
