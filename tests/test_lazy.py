"""Library code stays lazy: building a scan's graph computes nothing (xarray's raise_if_dask_computes idea)."""

from __future__ import annotations

import json
import subprocess
import sys

import dask
import pystac
import pytest

from redline.run import analysis_grid, tile_graph


def _refuse(*args, **kwargs):
    raise AssertionError("a dask graph was computed while it was only being built")


def test_building_the_scan_graph_computes_nothing(small_scenes, small_config):
    import aoi

    items = [pystac.Item.from_dict(f) for f in json.loads(small_scenes.items.read_text())["features"]]
    zones = aoi.read_zones(small_config.zones.path, id_field="HXBH", layer="hongxian").to_crs(32648)
    with dask.config.set(scheduler=_refuse):
        g = tile_graph(small_config, items, analysis_grid(zones, 10))
        det, composite, scalings = g.detection, g.composite, g.scalings
    assert det["disturbed"].chunks is not None and composite["red"].chunks is not None
    assert {s.band for s in scalings} >= {"red", "nir", "swir16"}
    with pytest.raises(AssertionError, match="computed"):
        with dask.config.set(scheduler=_refuse):
            det["disturbed"].max().compute()


def test_validate_checks_config_zones_and_api(small_scenes, stac_url, tmp_path):
    import yaml

    raw = yaml.safe_load(small_scenes.config.read_text(encoding="utf-8"))
    raw["stac"]["url"] = stac_url
    raw["zones"]["path"] = str(small_scenes.zones)
    raw["admin_units"]["path"] = str(small_scenes.counties)
    cfg = tmp_path / "scan.yml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    ok = subprocess.run([sys.executable, "-m", "redline.cli", "validate", str(cfg)], capture_output=True, text=True)
    assert ok.returncode == 0 and "3 zones" in ok.stdout
    raw["zones"]["id_field"] = "NOPE"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "redline.cli", "validate", str(cfg)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "field 'NOPE'" in bad.stderr and "HXBH" in bad.stderr


def test_building_the_assessment_inputs_computes_nothing(small_scenes, small_config):
    import aoi
    from redline import assess
    from redline.run import analysis_grid, tile_graph

    items = [pystac.Item.from_dict(f) for f in json.loads(small_scenes.items.read_text())["features"]]
    zones = aoi.read_zones(small_config.zones.path, id_field="HXBH", layer="hongxian").to_crs(32648)
    with dask.config.set(scheduler=_refuse):
        refl = tile_graph(small_config, items, analysis_grid(zones, 10)).reflectance
        lazy = assess.lazy_inputs(small_config, refl)
    for name in ("NDVI_baseline", "WET_monitor", "NDBSI_monitor", "MNDWI_baseline", "nclear_monitor", "ndvi_annual"):
        assert lazy[name].chunks is not None, name
    assert lazy.attrs["wetness_coefficients"] == "landsat-oli"  # the six bands the scan loads
    assert [int(y) for y in lazy["year"].values] == [2022, 2023]
