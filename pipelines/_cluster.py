from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import warnings
from collections.abc import Iterator

from distributed import Client, LocalCluster
from rasterio.errors import NotGeoreferencedWarning

from pipelines._io import count_retries
from redline.errors import RedlineInputError

log = logging.getLogger(__name__)

#: GDAL settings for reading COGs (local files or HTTP): no directory listing on open,
#: merged range requests, a bounded block cache. Applied in the client and on every worker.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_CACHEMAX": "256",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.jp2,.JP2",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "VSI_CACHE": "TRUE",
    # issue 25, reads at internet latency (GDAL configuration options, gdal.org/user/configoptions.html):
    # a bounded /vsicurl/ region cache shared by the opens of one process (the probe's header
    # bytes serve the scan's reads), GDAL's network statistics on (requests and bytes in
    # the manifest, pipelines._io), and 429/5xx retried up to 5 times with GDAL's exponential
    # back-off from 1 s (1+2+4+8+16 s: a server throttling for half a minute) under the
    # 60 s per-request timeout above (RFC 6585 §4: 429 asks the client to slow down)
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 2**20),
    "CPL_VSIL_NETWORK_STATS_ENABLED": "YES",
}


def set_gdal_env(extra: dict[str, str] | None = None) -> None:
    """Set :data:`GDAL_ENV` (and ``extra``) in this process's environment, keeping values already
    set; :func:`dask_client` runs it here and on every worker."""
    for key, value in {**GDAL_ENV, **(extra or {})}.items():
        os.environ.setdefault(key, value)
    count_retries()
    # odc-loader warps each read into a numpy destination given by its transform; rasterio
    # can still warn that the destination "has no geotransform" (rasterio.warp.reproject; seen
    # on the faulty-scene test's reads): noise on the scan's stderr when the workers are threads
    # of the scan's own process
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.warp")


def glibc_library() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``malloc_trim``); None elsewhere (macOS, Windows,
    musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 (a GNU extension: musl has none)
    except (OSError, AttributeError):
        return None
    return libc


def trim_memory() -> bool:
    """Give this process's freed heap memory back to the OS (glibc ``malloc_trim(0)``, every
    arena). Called after each tile is written: with the workers as threads of the
    scan's process, a tile's freed numpy buffers otherwise stay resident in glibc's heaps and
    the next, larger tile grows the process around them (benchmarks/README.md, section 5).
    False (nothing done) where malloc is not glibc's."""
    libc = glibc_library()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextlib.contextmanager
def dask_client(address: str | None = None, *, workers: int = 2, threads_per_worker: int = 1, processes: bool = False,
                env: dict[str, str] | None = None) -> Iterator[Client]:
    """A Dask distributed client for the scan.

    Parameters
    ----------
    address
        ``tcp://host:8786`` of an existing scheduler, or ``None`` for a LocalCluster on this
        machine with ``workers`` workers of ``threads_per_worker`` threads each.
    processes
        LocalCluster workers as separate processes, or (default) as threads of this process.
        The scan's work releases the GIL (GDAL decoding and warping, the numba detector,
        numpy), so threads use the cores as fully as processes, without starting and stopping
        worker processes or pickling every chunk between them: the ``small`` preset's scan took
        15 s instead of 28 s, the ×16 area 39 s instead of 67 s (benchmarks/README.md).
    env
        Extra GDAL settings a STAC profile needs (e.g. ``AWS_REQUEST_PAYER``), set with
        :data:`GDAL_ENV` in this process and on every worker.
    """
    set_gdal_env(env)
    if address:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise RedlineInputError(f"dask.address {address}: cannot reach the Dask scheduler ({exc}); start it or fix the address") from None
        client.run(set_gdal_env, env)
        try:
            yield client
        finally:
            client.close()
        return
    with warnings.catch_warnings():
        # the scheduler's HTTP endpoint (health checks) takes another port when 8787 is taken:
        # harmless, and not worth a multi-line warning on the scan's stderr
        warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    with cluster, Client(cluster) as client:
        client.run(set_gdal_env, env)
        yield client
