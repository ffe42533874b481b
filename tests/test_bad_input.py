"""Bad input and faults, through the real command line (issue 10, design.md §10).

Two tables:

- ``BAD_INPUT``: each bad config, zones layer, STAC API answer or register makes
  ``redline scan`` exit with code 2 and exactly one line on stderr naming the file, key, field
  or value and what to do, and write nothing to OUT.
- ``FAULTS``: one scan over a scene set with broken scenes, a malformed item, a flaky API and
  awkward zones exits with code 1, lists each failed scene or zone (item id + reason) on
  stderr and in the manifest's ``failures``, and still finds every injected disturbance from
  the other scenes without losing the alerts and reviews already in the register.

The STAC API is the embedded rustac server; faults in front of it (HTTP 500s, delays, a
malformed item, a 404 asset) come from :mod:`tests.faultserver`, a real HTTP server on loopback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import yaml

from pipelines import serve_stac
from redline.evaluate import score_alerts
from redline.register import Register
from tests.faultserver import FaultServer, Rule

_SCRIPT = Path(sys.executable).with_name("redline")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "redline.cli"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the context a case builds its bad input in ---------------------------------------------
@dataclass
class Ctx:
    tmp: Path
    scenes: object  # DemoScenes
    stac_url: str
    small_register: Path

    def raw(self) -> dict:
        """The small scene set's config with absolute paths, pointing at the embedded API."""
        raw = yaml.safe_load(Path(self.scenes.config).read_text(encoding="utf-8"))
        raw["stac"]["url"] = self.stac_url
        raw["zones"]["path"] = str(self.scenes.zones)
        raw["admin_units"]["path"] = str(self.scenes.counties)
        raw["register"] = str(self.tmp / "shared" / "register.gpkg")
        return raw

    def config(self, raw: dict | None = None, text: str | None = None) -> Path:
        path = self.tmp / "scan.yml"
        path.write_text(text if text is not None else yaml.safe_dump(raw or self.raw(), allow_unicode=True), encoding="utf-8")
        return path

    def zones(self, gdf: gpd.GeoDataFrame | None = None, **kw) -> gpd.GeoDataFrame:
        return gdf if gdf is not None else gpd.read_file(self.scenes.zones, layer="hongxian", **kw)

    def with_zones(self, gdf: gpd.GeoDataFrame) -> Path:
        path = self.tmp / "zones.gpkg"
        gdf.to_file(path, layer="hongxian", driver="GPKG")
        raw = self.raw()
        raw["zones"]["path"] = str(path)
        return self.config(raw)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def _cfg_text(c: Ctx, old: str, new: str) -> Path:
    return c.config(text=_replace(yaml.safe_dump(c.raw(), allow_unicode=True, sort_keys=False), old, new))


def _set(c: Ctx, *path_value) -> Path:
    raw = c.raw()
    *keys, value = path_value
    node = raw
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return c.config(raw)


_DELETE = object()


def _yaml_error(c: Ctx) -> Path:
    text = yaml.safe_dump(c.raw(), allow_unicode=True, sort_keys=False)
    return c.config(text=_replace(text, "resolution: 10", "resolution: [10"))


def _gbk_config(c: Ctx) -> Path:
    text = yaml.safe_dump(c.raw(), allow_unicode=True, sort_keys=False) + "# 红线监测配置\n"
    path = c.tmp / "scan.yml"
    path.write_bytes(text.encode("gbk"))
    return path


def _dir_config(c: Ctx) -> Path:
    (c.tmp / "scan.yml").mkdir()
    return c.tmp / "scan.yml"


def _no_crs(c: Ctx) -> Path:
    z = c.zones()
    z.to_file(c.tmp / "zones.shp", encoding="UTF-8")
    (c.tmp / "zones.prj").unlink()
    raw = c.raw()
    raw["zones"].update({"path": str(c.tmp / "zones.shp"), "layer": None})
    return c.config(raw)


def _gbk_without_cpg(c: Ctx) -> Path:
    z = c.zones()
    z.to_file(c.tmp / "zones.shp", encoding="GBK")
    (c.tmp / "zones.cpg").unlink()
    raw = c.raw()
    raw["zones"].update({"path": str(c.tmp / "zones.shp"), "layer": None})
    return c.config(raw)


def _points(c: Ctx) -> Path:
    z = c.zones()
    return c.with_zones(z.set_geometry(z.geometry.representative_point()))


def _lines(c: Ctx) -> Path:
    z = c.zones()
    return c.with_zones(z.set_geometry(z.geometry.boundary))


def _duplicate_ids(c: Ctx) -> Path:
    z = c.zones()
    z.loc[2, "HXBH"] = z.loc[0, "HXBH"]
    return c.with_zones(z)


def _empty_layer(c: Ctx) -> Path:
    z = c.zones().iloc[:0]
    return c.with_zones(z)


def _far_away(c: Ctx) -> Path:
    z = c.zones().to_crs(32648)
    return c.with_zones(z.set_geometry(z.geometry.translate(300_000, 0)).to_crs(4490))


def _duplicate_admin_ids(c: Ctx) -> Path:
    a = gpd.read_file(c.scenes.counties, layer="xzq")
    a.loc[1, "XZQDM"] = a.loc[0, "XZQDM"]
    a.to_file(c.tmp / "counties.gpkg", layer="xzq", driver="GPKG")
    return _set(c, "admin_units", "path", str(c.tmp / "counties.gpkg"))


def _locked_register(c: Ctx) -> tuple[Path, list[str]]:
    reg = c.tmp / "shared" / "register.gpkg"
    reg.parent.mkdir()
    shutil.copy(c.small_register, reg)
    fh = open(reg.with_name("register.gpkg.lock"), "a+")  # another scan holds the register
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    c.stack.callback(fh.close)
    return c.config(), ["--lock-timeout", "2"]


def _read_only_register(c: Ctx) -> Path:
    reg = c.tmp / "shared" / "register.gpkg"
    reg.parent.mkdir()
    shutil.copy(c.small_register, reg)
    reg.chmod(0o444)
    return c.config()


def _newer_register(c: Ctx) -> Path:
    import pyogrio

    reg = c.tmp / "shared" / "register.gpkg"
    reg.parent.mkdir()
    shutil.copy(c.small_register, reg)
    pyogrio.write_dataframe(pd.DataFrame({"key": ["schema_version"], "value": ["99"]}), reg, layer="meta", driver="GPKG")
    return c.config()


def _not_a_register(c: Ctx) -> Path:
    reg = c.tmp / "shared" / "register.gpkg"
    reg.parent.mkdir()
    gpd.read_file(c.scenes.counties, layer="xzq").to_file(reg, layer="xzq", driver="GPKG")
    return c.config()


def _timeout(c: Ctx) -> Path:
    server = FaultServer(upstream=c.stac_url, rules=[Rule("/", delay=4.0)])
    c.stack.enter_context(server)
    raw = c.raw()
    raw["stac"].update({"url": server.url, "timeout_s": 1})
    return c.config(raw)


def _persistent_500_on_collections(c: Ctx) -> Path:
    server = FaultServer(upstream=c.stac_url, rules=[Rule("/collections", status=404)])
    c.stack.enter_context(server)
    return _set(c, "stac", "url", server.url)


@dataclass(frozen=True)
class BadInput:
    id: str
    make: Callable[[Ctx], Path | tuple[Path, list[str]]]
    needles: tuple[str, ...]  # what the one line must name: file/key/field/value and the remedy


BAD_INPUT = [
    # config
    BadInput("config-unknown-key", lambda c: _set(c, "resolutoin", 10), ("scan.yml", "unknown key 'resolutoin'", "remove it")),
    BadInput("config-unknown-nested-key", lambda c: _set(c, "detection", "min_area", 5000), ("scan.yml", "detection.min_area", "remove it")),
    BadInput("config-wrong-type", lambda c: _set(c, "resolution", "ten"), ("scan.yml", "resolution", "'ten'", "valid number")),
    BadInput("config-wrong-type-section", lambda c: _set(c, "zones", "zones.gpkg"), ("scan.yml", "zones", "zones.gpkg", "dictionary")),
    BadInput("config-missing-required-key", lambda c: _set(c, "zones", "id_field", _DELETE), ("scan.yml", "missing required key 'zones.id_field'", "add it")),
    BadInput("config-end-before-start", lambda c: _set(c, "monitor", {"start": "2023-06-01", "end": "2023-01-01"}), ("scan.yml", "monitor", "2023-01-01 is before start 2023-06-01", "swap them")),
    BadInput("config-empty-window", lambda c: _set(c, "monitor", {}), ("scan.yml", "monitor = {}", "empty date window", "give monitor: {start")),
    BadInput("config-null-window", lambda c: _set(c, "baseline", None), ("scan.yml", "baseline = None", "empty date window")),
    BadInput("config-monitor-overlaps-baseline", lambda c: _set(c, "monitor", {"start": "2022-06-01", "end": "2023-12-31"}), ("scan.yml", "monitor.start 2022-06-01", "baseline.end 2022-12-31")),
    BadInput("config-negative-resolution", lambda c: _set(c, "resolution", -5), ("scan.yml", "resolution = -5", "greater than 0")),
    BadInput("config-huge-resolution", lambda c: _set(c, "resolution", 5000), ("scan.yml", "resolution = 5000", "less than or equal to 1000")),
    BadInput("config-unknown-profile", lambda c: _set(c, "stac", "profile", "google-earth"), ("scan.yml", "stac.profile = 'google-earth'", "earth-search")),
    BadInput("config-bad-timeout", lambda c: _set(c, "stac", "timeout_s", 0), ("scan.yml", "stac.timeout_s = 0", "greater than 0")),
    BadInput("config-not-found", lambda c: c.tmp / "nope.yml", ("nope.yml", "config file not found", "check the path")),
    BadInput("config-unreadable-directory", _dir_config, ("scan.yml", "cannot read config file", "IsADirectoryError", "check permissions")),
    BadInput("config-not-utf8", _gbk_config, ("scan.yml", "cannot read config file", "UnicodeDecodeError", "encoding (UTF-8)")),
    BadInput("config-invalid-yaml", _yaml_error, ("scan.yml", "invalid YAML at line", "fix the syntax")),
    BadInput("config-not-a-mapping", lambda c: c.config(text="- a\n- b\n"), ("scan.yml", "expected a mapping")),
    # zones and admin units
    BadInput("zones-missing-file", lambda c: _set(c, "zones", "path", str(c.tmp / "hongxian.gpkg")), ("hongxian.gpkg", "zones file not found", "zones.path")),
    BadInput("zones-wrong-layer", lambda c: _set(c, "zones", "layer", "honxian"), ("zones.gpkg", "layer 'honxian' not found", "available layers: hongxian")),
    BadInput("zones-missing-id-field", lambda c: _set(c, "zones", "id_field", "HXBM"), ("zones.gpkg", "field 'HXBM' (zones.id_field)", "fields are: HXBH")),
    BadInput("zones-missing-name-field", lambda c: _set(c, "zones", "name_field", "NAME"), ("zones.gpkg", "field 'NAME' (zones.name_field)", "fields are")),
    BadInput("zones-missing-admin-field", lambda c: _set(c, "zones", "admin_field", "XZQHDM"), ("zones.gpkg", "field 'XZQHDM' (zones.admin_field)", "XZQDM")),
    BadInput("zones-duplicate-ids", _duplicate_ids, ("zones.gpkg", "duplicate zone id '510181-HX-0001'", "HXBH", "must be unique")),
    BadInput("zones-no-crs", _no_crs, ("zones.shp", "no CRS", "EPSG:4490")),
    BadInput("zones-points", _points, ("zones.gpkg", "is a Point, not a polygon", "Polygon or MultiPolygon")),
    BadInput("zones-lines", _lines, ("zones.gpkg", "LineString, not a polygon",)),
    BadInput("zones-empty-layer", _empty_layer, ("zones.gpkg", "has no features", "zones.layer")),
    BadInput("zones-gbk-without-cpg", _gbk_without_cpg, ("zones.shp", "not UTF-8", "add zones.cpg", "GBK")),
    BadInput("zones-outside-every-scene", _far_away, ("found no scenes", "over the zones", "check the window, the zones")),
    BadInput("admin-missing-id-field", lambda c: _set(c, "admin_units", "id_field", "CODE"), ("counties.gpkg", "field 'CODE' (admin_units.id_field)", "XZQDM")),
    BadInput("admin-duplicate-ids", _duplicate_admin_ids, ("counties.gpkg", "duplicate admin id '510181'", "must be unique")),
    # STAC
    BadInput("stac-unreachable", lambda c: _set(c, "stac", "url", f"http://127.0.0.1:{_free_port()}"), ("stac.url http://127.0.0.1:", "cannot open the STAC API", "check the URL")),
    BadInput("stac-timeout", _timeout, ("stac.url http://127.0.0.1:", "did not answer in time", "stac.timeout_s")),
    BadInput("stac-collection-does-not-exist", lambda c: _set(c, "stac", "collections", ["landsat-c2-l2"]), ("stac.collections", "'landsat-c2-l2' does not exist", "available: sentinel-2-c1-l2a")),
    BadInput("stac-collections-endpoint-404", _persistent_500_on_collections, ("cannot list the collections", "check the API")),
    BadInput("stac-empty-search", lambda c: c.config({**c.raw(), "baseline": {"start": "2019-01-01", "end": "2019-12-31"},
                                                       "monitor": {"start": "2020-01-01", "end": "2020-12-31"}}),
             ("found no scenes", "between 2019-01-01 and 2020-12-31", "check the window")),
    BadInput("stac-monitor-window-without-scenes", lambda c: _set(c, "monitor", {"start": "2024-01-01", "end": "2024-12-31"}), ("monitor window 2024-01-01 to 2024-12-31 has no found scenes", "2023-12-", "move monitor.start/monitor.end")),
    # register
    BadInput("register-locked-by-another-scan", _locked_register, ("register.gpkg", "locked by another scan (waited 2 s)", "wait for it to finish")),
    BadInput("register-read-only", _read_only_register, ("register.gpkg", "read-only", "chmod u+w")),
    BadInput("register-newer-schema", _newer_register, ("register.gpkg", "schema version 99 is newer", "upgrade redline")),
    BadInput("register-not-a-register", _not_a_register, ("register.gpkg", "not a redline register", "xzq")),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c.id for c in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, small_scenes, stac_url, small_scan, tmp_path):
    ctx = Ctx(tmp_path, small_scenes, stac_url, small_scan.register)
    with contextlib.ExitStack() as stack:
        ctx.stack = stack
        made = case.make(ctx)
        config, extra = made if isinstance(made, tuple) else (made, [])
        out = tmp_path / "out"
        res = run_cli("scan", config, "--out", out, *extra)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    if case.id.startswith("register-") and case.id != "register-not-a-register":
        reg = tmp_path / "shared" / "register.gpkg"
        assert len(Register(reg).history()) == len(Register(small_scan.register).history())  # untouched
