"""The memory budget (issue 25 item 2): tile and chunk edges sized from the dates, bands and
bytes per value under ``resources.memory_limit`` / ``--memory-limit`` (:mod:`redline.budget`)."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pytest

from redline.budget import BASE_BYTES, MIN_TILE_PX, OUTPUT_BYTES, BudgetError, chunk_for, estimate_peak, parse_memory_limit, size_tiles
from redline.config import load_config
from redline.errors import ConfigError
from tests.configs import cli_config

CLI = [sys.executable, "-m", "redline.cli"]
GB = 10**9


@pytest.mark.parametrize("text, expected", [("1GB", 10**9), ("1.5GiB", 1.5 * 2**30), ("800MB", 8 * 10**8), ("2e9", 2 * 10**9),
                                            (3_000_000_000, 3 * 10**9)])
def test_memory_limits_parse(text, expected):
    assert parse_memory_limit(text) == int(expected)


@pytest.mark.parametrize("text", ["abc", "-1GB", "0", "1 parsec", ""])
def test_bad_memory_limits_are_one_line_naming_the_key(text):
    with pytest.raises(BudgetError) as err:
        parse_memory_limit(text, key="--memory-limit")
    assert str(err.value).startswith(f"--memory-limit = {text!r}") and "\n" not in str(err.value)


def test_tiles_shrink_with_the_dates_and_grow_with_the_budget():
    """Real numbers: a Sentinel-2 stack of six uint16 bands, two compute threads."""
    kw = dict(n_bands=6, bytes_per_value=2, slots=2, max_tile_px=1024)
    by_dates = [size_tiles(2 * GB, n_dates=d, **kw) for d in (37, 73, 146, 300, 600)]
    assert [s.tile_px for s in by_dates] == sorted((s.tile_px for s in by_dates), reverse=True)
    assert by_dates[0].tile_px > by_dates[-1].tile_px
    by_budget = [size_tiles(b, n_dates=146, **kw) for b in (1 * GB, 2 * GB, 4 * GB, 8 * GB, 64 * GB)]
    assert [s.tile_px for s in by_budget] == sorted(s.tile_px for s in by_budget)
    assert [s.chunk_px for s in by_budget] == sorted(s.chunk_px for s in by_budget)
    assert by_budget[0].tile_px < by_budget[-1].tile_px == 1024  # a large machine keeps the configured edge
    for s in by_dates + by_budget:
        assert s.estimate <= s.budget and s.chunk_px <= min(s.tile_px, 512) and s.tile_px % 32 == 0 and s.chunk_px % 16 == 0
        # the largest edge that fits: 32 px more would not
        if s.tile_px < 1024:
            assert estimate_peak(s.tile_px + 32, chunk_for(s.tile_px + 32), n_dates=s.n_dates, n_bands=6, bytes_per_value=2, slots=2) > s.budget
    # more bands or wider values: smaller tiles
    assert size_tiles(2 * GB, n_dates=146, n_bands=7, bytes_per_value=4, slots=2).tile_px < by_budget[1].tile_px


def test_the_configured_tile_edge_is_an_upper_bound():
    assert size_tiles(64 * GB, n_dates=73, n_bands=6, max_tile_px=256).tile_px == 256
    assert size_tiles(64 * GB, n_dates=73, n_bands=6, max_tile_px=96).tile_px == 96
    assert size_tiles(64 * GB, n_dates=73, n_bands=6, max_tile_px=96).chunk_px <= 96


def test_a_budget_below_one_minimal_tile_is_refused():
    """3,000 dates (a daily series over eight years): one 64-px tile needs more than the fixed part."""
    need = estimate_peak(MIN_TILE_PX, chunk_for(MIN_TILE_PX), n_dates=3000, n_bands=6, bytes_per_value=2, slots=2)
    assert need > OUTPUT_BYTES > BASE_BYTES
    with pytest.raises(BudgetError, match=r"cannot hold one 64-px tile of 3000 dates .* raise --memory-limit"):
        size_tiles(need - 1, n_dates=3000, n_bands=6, slots=2)
    assert size_tiles(need, n_dates=3000, n_bands=6, slots=2).tile_px == MIN_TILE_PX
    with pytest.raises(BudgetError, match=r"cannot hold one 64-px tile of 73 dates"):  # less than the scan's fixed part
        size_tiles(500 * 10**6, n_dates=73, n_bands=6, slots=2)


def test_assess_refuses_a_bad_memory_limit_too(small_scenes, stac_url, tmp_path):
    proc = subprocess.run([*CLI, "assess", str(cli_config(small_scenes, stac_url, tmp_path)), "--out", str(tmp_path / "out"), "--memory-limit", "1.5 parsecs"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --memory-limit = '1.5 parsecs' is not a memory size; give e.g. 1GB, 1.5GiB, 800MB or 2e9 (bytes)"


def test_config_key_bad_value_is_one_config_line(small_scenes, tmp_path):
    with pytest.raises(ConfigError, match=r"resources\.memory_limit = '12 parsecs': not a positive memory size"):
        load_config(small_scenes.config, overrides={"resources": {"memory_limit": "12 parsecs"}})
    cfg = load_config(small_scenes.config, overrides={"resources": {"memory_limit": "1.5GiB"}})
    assert cfg.resources.memory_limit_bytes == 1.5 * 2**30


@pytest.mark.parametrize("value, message", [("lots", "--memory-limit = 'lots' is not a memory size"),
                                            ("100MB", "cannot hold one 64-px tile of 73 dates")])
def test_cli_bad_memory_limit_exits_2_before_any_read(small_scenes, stac_url, tmp_path, value, message):
    cfg = cli_config(small_scenes, stac_url, tmp_path)
    proc = subprocess.run([*CLI, "scan", str(cfg), "--out", str(tmp_path / "out"), f"--memory-limit={value}"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.timeout(1500)  # three tiles of 64-px chunks: ~2 min on an idle machine, 10 on a loaded one
def test_a_small_budget_tiles_the_scan_and_finds_the_same_alerts(small_scenes, stac_url, small_scan, tmp_path):
    """A budget that fits four 128-px tiles of the small preset's 73 dates at once
    (``tiling.in_flight: 4``) cuts its 148 × 155 px grid into several tiles; the alerts are those
    of the default (one-tile) scan."""
    budget = estimate_peak(128, chunk_for(128), n_dates=73, n_bands=6, bytes_per_value=2, slots=2, in_flight=4) + 10**6
    cfg = cli_config(small_scenes, stac_url, tmp_path, tiling={"in_flight": 4})
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, "scan", str(cfg), "--out", str(out), f"--memory-limit={budget}", "--no-progress"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m, m_one = (json.loads((o / "manifest.json").read_text()) for o in (out, small_scan.out_dir))
    res = m["resources"]
    assert res["budget"] == budget and res["source"] == "config" and res["n_dates"] == 73 and res["n_bands"] == 6
    assert res["tile_px"] == 128 and res["chunk_px"] == 64 and res["in_flight"] == 4 and len(m["tiles"]) > 1 and len(m_one["tiles"]) == 1
    # the cells shrink until the largest tile's window (a zone whole in a cell reaches past it) fits the budget
    assert MIN_TILE_PX <= res["cell_px"] <= 128 and 0 < res["largest_tile_px"] and res["estimate"] <= budget
    assert res["estimate"] <= budget
    # the peak measured: the CLI's process tree, more than the libraries alone, less than the machine
    assert 200 * 2**20 < res["peak_rss_bytes"] < 24 * 2**30 and res["peak_rss_bytes"] >= res["peak_rss_sampled_bytes"] > 0
    one = m_one["resources"]
    assert one["source"] == "machine" and one["tile_px"] >= 160 and one["budget"] > res["budget"]  # the whole grid in one tile
    cols = ["zone_id", "first_detected", "disturbance_type", "confidence", "n_observations"]
    a, b = (gpd.read_file(o / "alerts.geojson").sort_values(["zone_id", "first_detected", "area_m2"]).reset_index(drop=True)
            for o in (small_scan.out_dir, out))
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (a["area_m2"] - b["area_m2"]).abs().max() < 1e-6 * a["area_m2"].max()


def test_manifest_of_the_default_scan_records_the_budget(small_scan):
    res = json.loads((small_scan.out_dir / "manifest.json").read_text())["resources"]
    assert res["source"] == "machine" and res["budget"] > BASE_BYTES and res["tile_px"] >= 160 and res["chunk_px"] == chunk_for(res["tile_px"])
    assert res["n_dates"] == 73 and res["bytes_per_value"] == 2 and res["slots"] >= 1
    assert res["estimate"] <= res["budget"] and res["peak_rss_bytes"] > 0

