from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

from distributed import Client, LocalCluster

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
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "VSI_CACHE": "TRUE",
}


def _set_gdal_env(extra: dict[str, str] | None = None) -> None:
    for key, value in {**GDAL_ENV, **(extra or {})}.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def dask_client(address: str | None = None, *, workers: int = 2, threads_per_worker: int = 1, env: dict[str, str] | None = None) -> Iterator[Client]:
    """A Dask distributed client for the scan.

    Parameters
    ----------
    address
        ``tcp://host:8786`` of an existing scheduler, or ``None`` for a LocalCluster on this
        machine with ``workers`` processes of ``threads_per_worker`` threads each.
    env
        Extra GDAL settings a STAC profile needs (e.g. ``AWS_REQUEST_PAYER``), set with
        :data:`GDAL_ENV` in this process and on every worker.
    """
    _set_gdal_env(env)
    if address:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise RedlineInputError(f"dask.address {address}: cannot reach the Dask scheduler ({exc}); start it or fix the address") from None
        client.run(_set_gdal_env, env)
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
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    with cluster, Client(cluster) as client:
        client.run(_set_gdal_env, env)
        yield client
