"""Helpers for the review service's tests: the real command line in a subprocess, a real
``redline serve`` (uvicorn) on a free 127.0.0.1 port, alert rows for a register built by the real
API, and an HTTP login. Used by tests/test_serve_field.py; the same names and signatures as the
site builder of the API branch (tests/serve_site.py), so one module can replace the other."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import shapely

from redline.alerts import SCHEMA2_DEFAULTS

PASSWORD = "l0ng enough passphrase"  # noqa: S105 - test accounts
CLI = [sys.executable, "-m", "redline.cli"]


@dataclass
class Site:
    url: str
    out: Path
    register: Path


def alert_row(zone: str, admin: str, x: float, first: str, dtype: str = "clearing", confidence: str = "nominal", **extra) -> dict:
    """One alert as a scan finds it (status new), a 0.001° square at longitude ``x``, latitude 30.7."""
    return {
        "alert_id": None, "zone_id": zone, "zone_name": "龙门山", "admin_id": admin, "area_m2": 10000.0 + 1000 * x % 7,
        "centroid_lon": x + 0.0005, "centroid_lat": 30.7005, "first_detected": first, "last_observed": "2023-10-01", "confidence": confidence,
        "disturbance_type": dtype, "magnitude": 0.4, "n_observations": 3, "status": "new", "scan_ids": "s1",
        "chip_before": None, "chip_after": None, "recheck": 0, **SCHEMA2_DEFAULTS, **extra,
        "geometry": shapely.box(x, 30.7, x + 0.001, 30.701),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``redline ARGS`` in a subprocess (text output captured; the session's key through ``$REDLINE_KEY``)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, input=stdin, timeout=120,
                          env={**os.environ, **(env or {})})


@contextlib.contextmanager
def serving(out: Path, *args: str) -> Iterator[str]:
    """``redline serve OUT ARGS`` on a free port until the block ends (SIGINT); yields its URL
    once ``/login`` answers. Its log is ``OUT/../server.log``."""
    port = free_port()
    log_path = out.parent / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen([*CLI, "serve", str(out), "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redline serve exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"redline serve did not answer in 90 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of a page's form."""
    return _CSRF.search(html).group(1)


def http_login(site: Site, name: str, password: str = PASSWORD, *, headers: dict | None = None) -> tuple[httpx.Client, httpx.Response]:
    """A client with a session: the login form read (its CSRF token), then posted."""
    c = httpx.Client(base_url=site.url, headers=headers or {}, timeout=30)
    form = c.get("/login")
    res = c.post("/login", data={"username": name, "password": password, "csrf": csrf_of(form.text), "next": "/"})
    return c, res
