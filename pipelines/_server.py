from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from redline.errors import StacError

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rustac_executable() -> str:
    here = Path(sys.executable).parent / "rustac"
    if here.exists():
        return str(here)
    found = shutil.which("rustac")
    if found is None:
        raise StacError("the 'rustac' command is not installed; run `pip install rustac` (it ships the embedded STAC API)")
    return found


def _stac_files(folder: Path) -> list[Path]:
    """The STAC documents to load: collection(s) first, then item collections and items."""
    if not folder.is_dir():
        raise StacError(f"{folder}: not a folder of STAC Items; give the folder that holds items.json or *.json Items")
    files = sorted(p for p in folder.glob("*.json") if p.name != "BUILD.json")
    if not files:
        raise StacError(f"{folder}: no STAC JSON files (collection.json, items.json or one file per Item) in it")
    return sorted(files, key=lambda p: (p.name != "collection.json", p.name))


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the server if redline dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise StacError(f"the embedded STAC API exited with code {proc.returncode}: {err.splitlines()[-1] if err else 'no message'}")
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise StacError(f"the embedded STAC API did not answer on {url} within {timeout:.0f} s")


@contextlib.contextmanager
def serve_stac(folder: Path | str, *, port: int | None = None, ready_timeout: float = 60.0) -> Iterator[str]:
    """Serve a folder of STAC Items on 127.0.0.1 with ``rustac serve`` (in-memory backend).

    Parameters
    ----------
    folder
        Holds ``collection.json`` and ``items.json`` (a FeatureCollection), or one JSON file
        per Item. Asset hrefs should be ``file:///abs/path.tif`` URIs.
    port
        TCP port; a free one is picked when omitted.

    Yields
    ------
    str
        The API root URL, e.g. ``http://127.0.0.1:43127``. The server process is stopped when
        the block exits, also on error and on Ctrl-C (KeyboardInterrupt).

    Notes
    -----
    rustac's memory backend answers searches by bbox, datetime, collections, ids and limit
    with paging; it does not implement the query or filter extensions (it returns 0 items
    for them), which :func:`search_items` detects from the conformance classes.
    """
    folder = Path(folder).resolve()
    files = _stac_files(folder)
    port = port or _free_port()
    addr = f"127.0.0.1:{port}"
    cmd = [_rustac_executable(), "serve", "--addr", addr, "--create-collections", *map(str, files)]
    log.info("starting embedded STAC API: %s", " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_set_parent_death_signal if os.name == "posix" else None,
    )
    url = f"http://{addr}"
    try:
        _wait_ready(url, proc, ready_timeout)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        log.info("embedded STAC API on %s stopped", url)
