"""The scan's per-stage timings (the manifest's ``timings``, the console's last lines) and its
outputs written side by side: a failing output writer is reported (exit 1) and never costs the
register (issue 25, item 3).

That the outputs written side by side are the outputs written one after the other is checked by
the suite's output tests on the ``small_scan`` fixture (rasters, chips, figures, tables, map,
report, catalogue, conformance), which run the scan as it is now."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import yaml

from redline import provenance
from redline.register import Register
from redline.run.timings import Timings

CLI = [sys.executable, "-m", "redline.cli"]

#: the scan's steps one after the other (their sum is at most the wall time)
STAGES = {"search", "state", "probe", "read+compute", "mosaics", "polygons", "alerts", "rechecks", "register", "outputs"}
#: the outputs by kind, some side by side
OUTPUT_KINDS = {"cogs", "assessment", "chips", "tables", "map", "report", "manifest", "catalogue"}


def test_manifest_records_timings(small_scan):
    manifest = json.loads((small_scan.out_dir / "manifest.json").read_text(encoding="utf-8"))
    t = manifest["timings"]
    assert set(t) == {"wall_s", "stages", "outputs"}
    assert set(t["stages"]) == STAGES
    assert set(t["outputs"]) == OUTPUT_KINDS
    values = [t["wall_s"], *t["stages"].values(), *t["outputs"].values()]
    assert all(isinstance(v, float) and v >= 0 for v in values), t
    # the stages never overlap: their sum is at most the wall time (3-decimal rounding of each)
    assert sum(t["stages"].values()) <= t["wall_s"] + 0.0005 * len(t["stages"])
    assert t["wall_s"] <= small_scan.seconds + 0.05
    assert t["stages"]["read+compute"] > 0 and t["outputs"]["cogs"] > 0 and t["outputs"]["report"] > 0
    # every output kind ran inside the outputs stage or beside it (on the worker thread)
    assert t["outputs"]["chips"] <= t["stages"]["outputs"] + 0.001
    assert small_scan.timings == t
    # recorded last and signed again: the folder still verifies
    problems, _ = provenance.verify_folder(small_scan.out_dir)
    assert problems == []


def test_console_line_names_every_stage(small_scan):
    line = Timings.line_of(small_scan.timings)
    assert line.startswith(f"timings (s): wall {small_scan.timings['wall_s']:.1f} = search ")
    for name in (*STAGES, *OUTPUT_KINDS):
        assert f"{name} " in line
    assert "\n" not in line


def test_failing_output_writer_is_reported_and_keeps_the_register(small_scenes, stac_url, small_scan, tmp_path):
    """A ``figures`` file where the figures folder goes: the chips' time series, the assessment's
    figures and the report cannot be written. The scan exits 1 naming them, and the register, tables, rasters, map,
    manifest and catalogue are written as ever."""
    raw = yaml.safe_load(Path(small_scenes.config).read_text(encoding="utf-8"))
    raw["stac"]["url"] = stac_url
    here = Path(small_scenes.config).parent  # the build's paths are relative to its config
    raw["zones"]["path"], raw["admin_units"]["path"] = str(here / raw["zones"]["path"]), str(here / raw["admin_units"]["path"])
    cfg = tmp_path / "scan.yml"
    cfg.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").write_text("not a folder\n", encoding="utf-8")
    res = subprocess.run([*CLI, "scan", str(cfg), "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert res.returncode == 1, res.stderr[-3000:]
    failed = [ln for ln in res.stderr.splitlines() if ln.startswith("failed: ")]
    assert [ln.split(":")[1].strip() for ln in failed] == ["output chips", "output assessment figures", "output report"], res.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [(f["kind"], f["id"]) for f in manifest["failures"]] == [("output", "chips"), ("output", "assessment figures"), ("output", "report")]
    # the register holds the scan: the same alerts as the fixture's scan of the same scenes
    reg = Register(out / "register.gpkg")
    alerts = reg.alerts()
    assert sorted(alerts["alert_id"]) == sorted(small_scan.alerts["alert_id"])
    assert len(small_scan.alerts) > 0
    assert (alerts["chip_before"].isna() | (alerts["chip_before"] == "")).all()  # the chips were not finished: no paths
    assert reg.verify_history() == []
    for rel in ("alerts.geojson", "zone_stats.csv", "admin_stats.csv", "assessment.json", "rasters/disturbance_date.tif", "map.html", "catalog.json"):
        assert (out / rel).is_file(), rel
    assert not (out / "report.html").exists()
    assert len(gpd.read_file(out / "alerts.geojson")) == len(small_scan.alerts)
    assert manifest["timings"]["outputs"]["report"] >= 0
    assert res.stdout.strip().splitlines()[-1].startswith("timings (s): wall ")  # the console summary's last line, one line


@pytest.mark.parametrize("parts", [{"mosaics": 0.5, "polygons": 0.25}, {"polygons": 9.0}])
def test_carve_keeps_the_sum(parts):
    t = Timings()
    with t.stage("read+compute"):
        pass
    t.stages["read+compute"] = 2.0
    t.carve("read+compute", parts)
    assert sum(t.stages.values()) == pytest.approx(2.0)
    assert all(v >= 0 for v in t.stages.values())
