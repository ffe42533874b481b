"""A scan through an existing Dask cluster: a real `dask scheduler` and two `dask worker`
processes on loopback give the same alerts as the LocalCluster run."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

from redline.scan import run_scan

DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    # each in a session of its own: the teardown kills it with its children (a worker's nanny
    # starts the worker process); a graceful close of nannies and workers took 8-12 s
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    for i in range(2):
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--name", f"w{i}",
             "--local-directory", str(tmp_path / f"w{i}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ))
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=90)
    try:
        yield address
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait(timeout=20)


@pytest.mark.slow
def test_a_scan_on_a_real_scheduler_and_two_workers_equals_the_local_run(cluster, small_config, small_scan, tmp_path, capsys):
    from distributed import Client

    out = tmp_path / "out"
    tiling = small_config.tiling.model_copy(update={"max_tile_px": 96})  # 3 tiles, computed 2 at a time on the cluster
    res = run_scan(small_config.model_copy(update={"register_path": tmp_path / "reg.gpkg", "tiling": tiling}), out, scheduler=cluster, progress=True)
    # the progress bar counted the tiles, the cluster's real task completions and every scene read (each scene covers the 3 tiles)
    err = capsys.readouterr().err
    tiles = re.search(r"tiles\W+(\d+)/(\d+)", err)
    scenes = re.search(r"scene reads\W+(\d+)/(\d+)", err)
    tasks = re.search(r"tasks\W+(\d+)/(\d+)", err)
    assert tiles and scenes and tasks, err[-2000:]
    assert int(tiles.group(1)) == int(tiles.group(2)) == 3
    assert int(scenes.group(1)) == int(scenes.group(2)) == 3 * res.n_items
    assert int(tasks.group(1)) == int(tasks.group(2)) > 10 * res.n_items
    with Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
    cols = ["alert_id", "zone_id", "first_detected", "last_observed", "disturbance_type", "confidence", "area_m2", "n_observations"]
    local = small_scan.alerts[cols].sort_values("alert_id").reset_index(drop=True)
    remote = res.alerts[cols].sort_values("alert_id").reset_index(drop=True)
    assert len(local) > 0
    assert remote.equals(local)
    # the same disturbance dates and clear counts on every pixel the tiles computed (their cores cover the zones)
    def read(folder, stem):
        with rasterio.open(folder / "rasters" / f"{stem}.tif") as src:
            return src.read(1), src.transform

    (n_tiled, t1), (n_whole, t2) = read(out, "nclear_monitor"), read(small_scan.out_dir, "nclear_monitor")
    computed = n_tiled >= 0
    assert t1 == t2 and computed.mean() > 0.5 and (n_tiled[computed] == n_whole[computed]).all()
    assert (read(out, "disturbance_date")[0][computed] == read(small_scan.out_dir, "disturbance_date")[0][computed]).all()
    shutil.rmtree(out)


def test_local_cluster_threads_by_default_processes_on_request():
    """dask.processes: false (the default) runs the LocalCluster's workers as threads of this
    process; true starts one process per worker. Workers default to the machine's cores."""
    import os

    from pipelines import dask_client
    from redline.config import DaskConfig, machine_cores

    cfg = DaskConfig()
    assert cfg.processes is False and cfg.workers == machine_cores() >= 1
    with dask_client(None, workers=2, threads_per_worker=1, processes=cfg.processes) as client:
        pids = set(client.run(os.getpid).values())
        assert pids == {os.getpid()} and len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6
    with dask_client(None, workers=2, threads_per_worker=1, processes=True) as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
