"""The scan's malloc handling with the Dask workers as threads of its process (pipelines/_cluster.py):
the freed memory of each written tile is given back (glibc ``malloc_trim``) before the next
one arrives; a no-op where malloc is not glibc's."""

from __future__ import annotations

import sys

import dask.array as da
import pytest

import pipelines._cluster as cluster
import pipelines._progress as progress
from pipelines import compute_tiles, dask_client


def test_trim_acts_on_glibc():
    if not (sys.platform.startswith("linux") and cluster._glibc() is not None):
        pytest.skip("malloc is not glibc's here")
    assert cluster.trim_memory() is True


@pytest.mark.parametrize("how", ["not linux", "no libc.so.6", "no malloc_trim (musl)"])
def test_trim_is_a_no_op_without_glibc(monkeypatch, how):
    if how == "not linux":
        monkeypatch.setattr(cluster.sys, "platform", "darwin")
    elif how == "no libc.so.6":
        def missing(name, *a, **k):
            raise OSError(f"{name}: cannot open shared object file")
        monkeypatch.setattr(cluster.ctypes, "CDLL", missing)
    else:
        monkeypatch.setattr(cluster.sys, "platform", "linux")
        monkeypatch.setattr(cluster.ctypes, "CDLL", lambda name, *a, **k: object())  # a C library without it
    assert cluster._glibc() is None
    assert cluster.trim_memory() is False


def _trims_seen(monkeypatch, run) -> tuple[list[int], int, list]:
    """Run ``run()`` (iterating compute_tiles) while counting trims; per tile received, the
    trims done before it; the trims done in all; the computed values."""
    calls = []
    real = progress.trim_memory
    monkeypatch.setattr(progress, "trim_memory", lambda: calls.append(1) or real())
    seen, values = [], []
    for tile, (total,) in run():
        seen.append(len(calls))
        values.append((tile, int(total)))
    return seen, len(calls), values


def test_each_tile_is_trimmed_after_the_caller_wrote_it(monkeypatch):
    tiles = [1, 2, 3, 4]
    graph = lambda t: [da.full((200, 200), t, chunks=100).sum()]  # noqa: E731
    expected = [(t, 40_000 * t) for t in tiles]
    # no distributed client: one by one with dask.compute
    assert _trims_seen(monkeypatch, lambda: compute_tiles(tiles, graph, scenes=[1] * 4, show=False)) == ([0, 1, 2, 3], 4, expected)
    # a LocalCluster of threads in this process, the next tile computing while one is written
    with dask_client(None, workers=2, threads_per_worker=1, processes=False):
        assert _trims_seen(monkeypatch, lambda: compute_tiles(tiles, graph, scenes=[1] * 4, show=False)) == ([0, 1, 2, 3], 4, expected)
