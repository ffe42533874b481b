"""The scan's malloc handling with the Dask workers as threads of its process (pipelines/_cluster.py):
the freed memory of each written tile is given back (glibc ``malloc_trim``) before the next
one arrives; a no-op where malloc is not glibc's."""

from __future__ import annotations

import ctypes
import sys

import dask.array as da
import pytest

from pipelines import compute_tiles, dask_client, glibc_library, trim_memory

_CDLL = ctypes.CDLL  # the real one: the tests below replace it


def test_trim_acts_on_glibc():
    if glibc_library() is None:
        pytest.skip("malloc is not glibc's here")
    assert trim_memory() is True


@pytest.mark.parametrize("how", ["not linux", "no libc.so.6", "no malloc_trim (musl)"])
def test_trim_is_a_no_op_without_glibc(monkeypatch, how):
    if how == "not linux":
        monkeypatch.setattr(sys, "platform", "darwin")
    elif how == "no libc.so.6":
        def missing(name, *a, **k):
            raise OSError(f"{name}: cannot open shared object file")
        monkeypatch.setattr(ctypes, "CDLL", missing)
    else:
        monkeypatch.setattr(sys, "platform", "linux")
        monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: object())  # a C library without it
    assert glibc_library() is None
    assert trim_memory() is False


class _CountingLibc:
    """A glibc whose ``malloc_trim`` counts its calls (and trims, when the real one is there)."""

    def __init__(self, real) -> None:
        self.calls: list[int] = []
        self.real = real

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(pad)
        return self.real.malloc_trim(pad) if self.real is not None else 1


def _trims_seen(monkeypatch, run) -> tuple[list[int], int, list]:
    """Run ``run()`` (iterating compute_tiles) while counting trims; per tile received, the
    trims done before it; the trims done in all; the computed values."""
    libc = _CountingLibc(glibc_library())
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: libc if name == "libc.so.6" else _CDLL(name, *a, **k))
    seen, values = [], []
    for tile, (total,) in run():
        seen.append(len(libc.calls))
        values.append((tile, int(total)))
    return seen, len(libc.calls), values


def test_each_tile_is_trimmed_after_the_caller_wrote_it(monkeypatch):
    tiles = [1, 2, 3, 4]
    graph = lambda t: [da.full((200, 200), t, chunks=100).sum()]  # noqa: E731
    expected = [(t, 40_000 * t) for t in tiles]
    # no distributed client: one by one with dask.compute
    assert _trims_seen(monkeypatch, lambda: compute_tiles(tiles, graph, scenes=[1] * 4, show=False)) == ([0, 1, 2, 3], 4, expected)
    # a LocalCluster of threads in this process, the next tile computing while one is written
    with dask_client(None, workers=2, threads_per_worker=1, processes=False):
        assert _trims_seen(monkeypatch, lambda: compute_tiles(tiles, graph, scenes=[1] * 4, show=False)) == ([0, 1, 2, 3], 4, expected)
