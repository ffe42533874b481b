"""Reads at internet latency: remote scenes read with many requests in flight, apart from compute.

A Dask read task of odc-stac reads its scenes one after the other, so a scan has as many range
requests in flight as compute threads (2 on a laptop): at 80 ms a request, latency, not work,
sets the speed (issue 25). Here each remote band of a tile is read by one task that leaves the
worker's thread pool while it waits (``distributed.secede``/``rejoin``: the compute threads keep
computing) and reads all its scenes through odc-stac's non-Dask path on a thread pool shared by
every task of the process, ``io.concurrency`` threads — one GDAL read (and so one request chain)
each. The number of requests in flight per worker process is then ``io.concurrency`` whatever
the compute threads; local files keep odc-stac's Dask reads (the page cache has no latency).

Counting (per process, summed over the cluster by :func:`cluster_io_stats`): requests made and
bytes fetched come from GDAL's own network statistics (``CPL_VSIL_NETWORK_STATS_ENABLED``,
``VSINetworkStatsGetAsSerializedJSON``, GDAL ≥ 3.2: the HTTP/S3 requests of the /vsicurl/
family, with the bytes they received), read through ``ctypes`` from the GDAL library rasterio
loaded. GDAL counts a read of several non-adjacent ranges, which it sends as parallel requests
(``GDAL_HTTP_MULTIRANGE=PARALLEL``, its default and the fastest at latency), as one request:
the count is exact for bytes and a lower bound for requests (1,287 against the server's 1,716
in benchmarks/README.md, "Latency"); ``SERIAL`` would make it exact at one round trip per range. bytes decoded are the bytes of the DN arrays our read tasks return (pixels × bytes per
value on the tile's grid, after the warp), counted where they are made; retries are GDAL's
"HTTP error code: 429 … Retrying again in 1.0 secs" warnings, which rasterio logs on its
``rasterio._env`` logger, counted by a handler that prints nothing (:func:`count_retries`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONCURRENCY", "IoStats", "is_remote", "io_pool", "io_stats", "reset_io_stats", "cluster_io_stats", "reset_cluster_io_stats"]

#: Requests in flight per worker process by default (``io.concurrency``, redline.config.IoConfig).
DEFAULT_CONCURRENCY = 32


def is_remote(href: str) -> bool:
    """True for an href GDAL reads over the network (http(s), s3, gs, az, /vsicurl/ …)."""
    h = href.lower()
    return h.startswith(("http://", "https://", "s3://", "gs://", "az://", "abfs://", "/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls"))


class _SharedPool:
    """A process-wide ThreadPoolExecutor that odc-stac's ``pool=`` may enter and leave without
    shutting it down (``odc.loader._utils.pmap`` uses it as a context manager)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"redline-io{workers}")

    def map(self, fn, *iterables):
        return self.executor.map(fn, *iterables)

    def __enter__(self) -> _SharedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_POOLS: dict[int, _SharedPool] = {}
_POOLS_LOCK = threading.Lock()


def io_pool(concurrency: int) -> _SharedPool:
    """This process's I/O thread pool of ``concurrency`` threads (made once per process and size:
    every read task of a worker shares it, so a worker has at most ``concurrency`` reads in flight)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(concurrency)
        if pool is None:
            pool = _POOLS[concurrency] = _SharedPool(concurrency)
        return pool


@contextlib.contextmanager
def seceded() -> Iterator[None]:
    """Leave the Dask worker's thread pool while waiting on I/O, and join it again after
    (``distributed.secede``/``rejoin``): the worker runs another (compute) task meanwhile.
    Outside a distributed worker (``dask.compute`` on threads) nothing is done."""
    try:
        from distributed import get_worker, rejoin, secede

        get_worker()
    except (ImportError, ValueError):
        yield
        return
    secede()
    try:
        yield
    finally:
        rejoin()


# --- counting -------------------------------------------------------------------------------

@dataclass(frozen=True)
class IoStats:
    """I/O of a process or a scan: HTTP/S3 requests made, bytes they fetched (received bodies)
    and bytes of DN decoded onto the analysis grid by the remote read tasks."""

    requests: int = 0
    bytes_fetched: int = 0
    bytes_decoded: int = 0
    retries: int = 0

    def __add__(self, other: IoStats) -> IoStats:
        return IoStats(self.requests + other.requests, self.bytes_fetched + other.bytes_fetched, self.bytes_decoded + other.bytes_decoded,
                       self.retries + other.retries)

    def record(self) -> dict[str, int]:
        """The manifest's ``io`` numbers (requests include the retried ones)."""
        return {"requests": self.requests, "bytes_fetched": self.bytes_fetched, "bytes_decoded": self.bytes_decoded, "retries": self.retries}


_COUNTS = {"decoded": 0, "retries": 0}
_COUNTS_LOCK = threading.Lock()


def add_decoded(nbytes: int) -> None:
    """Count ``nbytes`` of DN decoded by a read task of this process."""
    with _COUNTS_LOCK:
        _COUNTS["decoded"] += int(nbytes)


class _RetryCounter(logging.Handler):
    """Counts GDAL's HTTP retry warnings as rasterio logs them, then hands each record on to the
    ``rasterio`` logger's handlers only when that logger's level lets it through (the CLI sets
    ``rasterio`` to ERROR: the warnings are counted, not printed)."""

    def emit(self, record: logging.LogRecord) -> None:
        if "Retrying again" in record.getMessage():
            with _COUNTS_LOCK:
                _COUNTS["retries"] += 1
        parent = logging.getLogger("rasterio")
        if record.levelno >= parent.getEffectiveLevel():
            parent.handle(record)


def count_retries() -> None:
    """Count this process's HTTP retries (once per process; :func:`pipelines.set_gdal_env` calls it).

    ``rasterio._env`` gets its own level (WARNING) and stops propagating: a quieter level set
    on ``rasterio`` (the CLI's logging set-up) would otherwise drop the retry warnings before any
    handler saw them; :class:`_RetryCounter` forwards what the parent's level admits."""
    logger = logging.getLogger("rasterio._env")
    if not any(isinstance(h, _RetryCounter) for h in logger.handlers):
        logger.addHandler(_RetryCounter(logging.WARNING))
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def _gdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio loaded (its wheel's copy, else the system's), with the two
    network-statistics functions; None when they cannot be found."""
    import rasterio

    libs = os.path.join(os.path.dirname(os.path.dirname(rasterio.__file__)), "rasterio.libs")
    candidates = sorted(glob.glob(os.path.join(libs, "libgdal*.so*")))
    if not candidates:
        found = ctypes.util.find_library("gdal")
        candidates = [found] if found else []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
            lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
            lib.VSINetworkStatsReset.restype = None
            lib.VSIFree.argtypes = [ctypes.c_void_p]
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIB: list[Any] = []


def _lib() -> ctypes.CDLL | None:
    if not _LIB:
        _LIB.append(_gdal())
    return _LIB[0]


def _sum_methods(node: Any) -> tuple[int, int]:
    """Requests and downloaded bytes over every ``methods`` entry of GDAL's statistics tree
    (filesystems → files → methods; only leaves are summed)."""
    if not isinstance(node, dict):
        return 0, 0
    if "methods" in node:
        req = sum(int(m.get("count", 0)) for m in node["methods"].values())
        got = sum(int(m.get("downloaded_bytes", 0)) for m in node["methods"].values())
        return req, got
    req = got = 0
    for key in ("handlers", "files"):
        for child in (node.get(key) or {}).values():
            r, g = _sum_methods(child)
            req, got = req + r, got + g
    return req, got


def io_stats() -> IoStats:
    """This process's I/O since the last :func:`reset_io_stats`."""
    lib = _lib()
    req = got = 0
    if lib is not None:
        ptr = lib.VSINetworkStatsGetAsSerializedJSON(None)
        if ptr:
            try:
                text = ctypes.string_at(ptr).decode("utf-8")
            finally:
                lib.VSIFree(ptr)
            req, got = _sum_methods(json.loads(text) if text.strip() else {})
    return IoStats(req, got, _COUNTS["decoded"], _COUNTS["retries"])


def reset_io_stats() -> int:
    """Zero this process's counters; returns the process id (to count each process once)."""
    lib = _lib()
    if lib is not None:
        lib.VSINetworkStatsReset()
    with _COUNTS_LOCK:
        _COUNTS.update(decoded=0, retries=0)
    return os.getpid()


def _stats_with_pid() -> tuple[int, IoStats]:
    return os.getpid(), io_stats()


def _client() -> Any | None:
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _reset_unless(pid: int) -> None:
    if os.getpid() != pid:
        reset_io_stats()


def reset_cluster_io_stats() -> None:
    """Zero the counters of every worker process of the current Dask client but this process
    (whose counters already hold this scan's probe; :func:`reset_io_stats` zeroes them)."""
    client = _client()
    if client is not None:
        client.run(_reset_unless, os.getpid())


def cluster_io_stats() -> IoStats:
    """I/O of this process plus every worker process of the current Dask client (each process
    once: LocalCluster workers that are threads of this process share its counters)."""
    seen = {os.getpid(): io_stats()}
    client = _client()
    if client is not None:
        for pid, st in client.run(_stats_with_pid).values():
            seen.setdefault(pid, st)
    total = IoStats()
    for st in seen.values():
        total = total + st
    return total
