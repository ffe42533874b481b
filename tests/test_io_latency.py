"""Reads at internet latency (issue 25, item 1): the scenes served by a real range-request HTTP
server on loopback that waits before each answer (benchmarks/rangeserver.py), read with many
requests in flight whatever the compute threads, retried when the server throttles (429), and
counted in the manifest."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pystac
import pytest

import pipelines
from benchmarks.rangeserver import RangeServer, items_over_http
from redline.config import load_config
from redline.scan import run_scan
from tests import test_cluster

cluster = test_cluster.cluster  # a real `dask scheduler` and two `dask worker` processes (fixture)

_SCRIPT = Path(sys.executable).with_name("redline")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "redline.cli"]

#: Seconds the server waits before each answer: small (fast tests), but far more than a loopback read.
DELAY = 0.02
#: The first requests the throttled server answers 429 (RFC 6585 §4).
THROTTLED = 12
#: The scene (index in date order) whose red band the server always answers 429: 100 % cloud in
#: the small set (tests/test_bad_input.py, BROKEN), so leaving it out changes no alert.
REFUSED = 4


def _http_items(small_scenes, folder: Path, url: str) -> list[pystac.Item]:
    root = items_over_http(small_scenes.root, folder, url)
    return [pystac.Item.from_dict(f) for f in json.loads((root / "items.json").read_text(encoding="utf-8"))["features"]]


@pytest.fixture(scope="module")
def throttled_scan(small_scenes, small_config, small_scan, tmp_path_factory):
    """The small scan with its scenes behind the delaying server, which throttles the first
    requests and always refuses one asset; GDAL retries twice (1 s, then 2 s back-off)."""
    import os

    tmp = tmp_path_factory.mktemp("http-scan")
    features = sorted(json.loads(Path(small_scenes.items).read_text(encoding="utf-8"))["features"], key=lambda f: f["properties"]["datetime"])
    refused_id = features[REFUSED]["id"]
    old = os.environ.get("GDAL_HTTP_MAX_RETRY")
    os.environ["GDAL_HTTP_MAX_RETRY"] = "2"  # the refused asset fails after 1 + 2 s, not 31 s
    # as `redline scan` sets up logging (redline.cli): rasterio's warnings silenced, the retries still counted
    rio_level = logging.getLogger("rasterio").level
    logging.getLogger("rasterio").setLevel(logging.ERROR)
    try:
        with RangeServer(small_scenes.root, delay=DELAY, fail_first=THROTTLED, refuse=f"/{refused_id}/red.tif") as srv:
            folder = items_over_http(small_scenes.root, tmp / "stac", srv.url)
            with pipelines.serve_stac(folder) as url:
                cfg = small_config.model_copy(update={"stac": small_config.stac.model_copy(update={"url": url}), "register_path": tmp / "reg.gpkg"})
                with contextlib.redirect_stderr(io.StringIO()) as err:  # the progress bar (rich, on stderr)
                    res = run_scan(cfg, tmp / "out", progress=True)
    finally:
        logging.getLogger("rasterio").setLevel(rio_level)
        if old is None:
            os.environ.pop("GDAL_HTTP_MAX_RETRY", None)
        else:
            os.environ["GDAL_HTTP_MAX_RETRY"] = old
    manifest = json.loads((tmp / "out" / "manifest.json").read_text(encoding="utf-8"))
    return res, srv, manifest, refused_id, err.getvalue()


def _alert_rows(alerts) -> pd.DataFrame:
    cols = ["alert_id", "zone_id", "disturbance_type", "first_detected", "last_observed", "area_m2", "magnitude", "confidence"]
    return alerts[cols].sort_values("alert_id").reset_index(drop=True)


def test_a_scan_over_http_finds_the_same_alerts_as_from_local_files(throttled_scan, small_scan):
    res = throttled_scan[0]
    assert not res.alerts.empty
    pd.testing.assert_frame_equal(_alert_rows(res.alerts), _alert_rows(small_scan.alerts))


def test_a_throttling_server_is_retried_and_the_retries_reported(throttled_scan):
    res, srv, manifest, refused_id, _ = throttled_scan
    rec = manifest["io"]
    # the first requests, then the refused asset's three attempts (GDAL_HTTP_MAX_RETRY 2)
    assert srv.statuses[429] == THROTTLED + 3
    # every 429 but the refused asset's last was retried by GDAL, and the manifest says so
    assert rec["retries"] == THROTTLED + 2
    # the requests the scan counted are those the server answered, retried ones included (GDAL
    # counts a read of several ranges sent in parallel once: at most the server's count)
    assert 0.5 * srv.requests <= rec["requests"] <= srv.requests
    assert rec["concurrency"] == 32
    assert 0 < rec["bytes_fetched"] <= srv.bytes_sent
    assert rec["bytes_decoded"] > 0


def test_an_asset_refused_past_the_retries_is_a_reported_failure_not_a_dropped_scene(throttled_scan, small_scenes):
    res, srv, manifest, refused_id, _ = throttled_scan
    failed = [f for f in manifest["failures"] if f["id"] == refused_id]
    assert len(failed) == 1 and failed[0]["kind"] == "scene", manifest["failures"]
    assert "429" in failed[0]["reason"], failed[0]
    assert any(line.startswith(f"scene {refused_id}:") for line in res.failures), res.failures
    # every other scene was read
    assert res.n_items == small_scenes.n_scenes - 1


def test_the_progress_bar_shows_the_io_rate(throttled_scan):
    manifest, bar = throttled_scan[2], throttled_scan[4]
    rates = re.findall(r"I/O (\d+\.\d) MB/s, requests\W+(\d+)", bar)
    assert rates, bar[-2000:]
    # the tile loop's requests (the small set's one-block COGs were all fetched by the probe and
    # are served from GDAL's cache: none may be left to fetch), at most the scan's
    assert 0 <= int(rates[-1][1]) <= manifest["io"]["requests"]


def test_remote_reads_have_more_requests_in_flight_than_the_compute_threads(small_scenes, small_config, tmp_path, cluster):
    """On a real scheduler with two single-threaded worker processes: one band's scenes are read
    with up to ``io_concurrency`` requests in flight per worker, and the workers' counts of
    requests add up to what the server answered."""
    import aoi
    from distributed import Client

    from redline.run import analysis_grid

    zones = aoi.read_zones(small_config.zones.path, id_field=small_config.zones.id_field, layer=small_config.zones.layer)
    geobox = analysis_grid(zones.to_crs(aoi.utm_crs_for(zones)), small_config.resolution)
    with RangeServer(small_scenes.root, delay=DELAY) as srv, Client(cluster) as client:
        client.run(pipelines.set_gdal_env)
        items = _http_items(small_scenes, tmp_path / "stac", srv.url)
        seen = {}
        for conc in (None, 16):
            pipelines.reset_io_stats()
            client.run(pipelines.reset_io_stats)
            srv.reset_counts()
            load = pipelines.load_series(items, geobox, check_assets=False, io_concurrency=conc)
            red = load.data["red"].compute()
            seen[conc] = (srv.max_in_flight, srv.requests, pipelines.cluster_io_stats(), float(red.mean()))
    compute_threads = 2  # two workers of one thread
    assert seen[None][0] <= compute_threads * 2  # odc-stac's Dask reads: about one request per compute thread
    assert seen[16][0] > compute_threads * 4, seen  # many more in flight than compute threads
    assert seen[16][0] <= 2 * 16 + 2  # bounded by io_concurrency per worker process
    assert 0.5 * seen[16][1] <= seen[16][2].requests <= seen[16][1]  # counted on the worker processes (see above)
    assert seen[16][2].bytes_decoded > 0
    assert seen[16][3] == pytest.approx(seen[None][3], rel=1e-6)  # the same pixels either way


@pytest.mark.parametrize("value", [0, 100000])
def test_io_concurrency_out_of_range_is_one_line_exit_2(value, small_scenes, tmp_path):
    config = tmp_path / "scan.yml"
    config.write_text(Path(small_scenes.config).read_text(encoding="utf-8") + f"io: {{concurrency: {value}}}\n", encoding="utf-8")
    for argv in (["scan", str(config)], ["scan", str(small_scenes.config), "--io-concurrency", str(value)]):
        res = subprocess.run([*CLI, *argv, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2, res.stderr[-2000:]
        assert lines == [f"error: {config if argv[1] == str(config) else small_scenes.config}: io.concurrency = {value}: must be 1-256 range requests "
                         "in flight per worker; use 32 for object storage (the default), fewer for a small server"]
        assert not (tmp_path / "out").exists()


def test_io_concurrency_default_and_config(small_scenes):
    assert load_config(small_scenes.config).io.concurrency == 32
    assert load_config(small_scenes.config, overrides={"io": {"concurrency": 4}}).io.concurrency == 4


def test_a_host_that_cannot_be_reached_fails_its_scenes_at_once_and_names_it(small_scenes, tmp_path, monkeypatch):
    """Nothing answers where the scenes' object store was (a blocked or dead host): the probe
    tries as many of its assets as it has threads (each with GDAL's retries, at the same time),
    then leaves out every other scene on that host at once with one reason naming it, instead of
    each asset waiting out the same retries; the scenes of another host (here local files) are
    checked as usual."""
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "1")  # each try: one retry after 1 s of back-off, not 5 over 31 s
    with RangeServer(small_scenes.root, delay=0) as srv:
        url = srv.url.rstrip("/")
    dead = _http_items(small_scenes, tmp_path / "stac", url)[:6]  # the server is gone: its port refuses
    local = [pystac.Item.from_dict(f) for f in json.loads(Path(small_scenes.items).read_text(encoding="utf-8"))["features"][6:8]]
    pipelines.set_gdal_env()  # the retries counted (as a scan sets it up)
    pipelines.reset_io_stats()
    good, failures = pipelines.probe_items([*dead, *local], ("red", "nir", "mask"), threads=2)
    assert [it.id for it in good] == [it.id for it in local]
    assert sorted(f.item_id for f in failures) == sorted(it.id for it in dead)
    # at most the 2 threads' assets tried (one GDAL retry each), not the dead host's 18
    assert 1 <= pipelines.io_stats().retries <= 2
    for f in failures:
        assert url in f.reason and ("Could not connect" in f.reason or "Failed to connect" in f.reason), f.reason
        assert "\n" not in f.reason
