"""Helpers for tests of the review service: the real command line in a subprocess, a real
``redline serve`` (uvicorn) on a free 127.0.0.1 port, alert rows for a register, and an HTTP
login. Shared by the review-service test modules (tests/test_serve_field.py)."""

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
from pathlib import Path

import httpx
import pytest
import shapely

from redline.alerts import SCHEMA2_DEFAULTS

PASSWORD = "l0ng enough passphrase"  # noqa: S105 - test accounts
CLI = [sys.executable, "-m", "redline.cli"]
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def cli(*args: object, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``redline ARGS`` in a subprocess (the session's signing key through ``$REDLINE_KEY``)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, input=stdin, timeout=120, env={**os.environ, **(env or {})})


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_row(zone: str, admin: str, lon: float, lat: float, first: str, dtype: str = "clearing", **extra) -> dict:
    """One alert as a scan finds it: a 0.001° square with its south-west corner at ``lon, lat``."""
    return {
        "alert_id": None, "zone_id": zone, "zone_name": "龙门山", "admin_id": admin, "area_m2": 10000.0, "centroid_lon": lon + 0.0005,
        "centroid_lat": lat + 0.0005, "first_detected": first, "last_observed": "2023-10-01", "confidence": "nominal",
        "disturbance_type": dtype, "magnitude": 0.4, "n_observations": 3, "status": "new", "scan_ids": "s1", "chip_before": None,
        "chip_after": None, "recheck": 0, **SCHEMA2_DEFAULTS, **extra, "geometry": shapely.box(lon, lat, lon + 0.001, lat + 0.001),
    }


@contextlib.contextmanager
def running_server(*args: object, log: Path) -> Iterator[str]:
    """``redline serve ARGS --port P`` in a subprocess until the block ends (SIGINT); yields its
    URL once ``/login`` answers; fails the test (with the log's tail) when it exits or hangs."""
    port = free_port()
    with log.open("w") as fh:
        proc = subprocess.Popen([*CLI, "serve", *map(str, args), "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"redline serve exited {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"redline serve did not answer in 90 s: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    return _CSRF.search(html).group(1)


def http_login(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client logged in as ``name`` (the login form's CSRF token read, then posted)."""
    c = httpx.Client(base_url=url, timeout=60)
    form = c.get("/login")
    res = c.post("/login", data={"username": name, "password": password, "csrf": csrf_of(form.text), "next": "/"})
    assert res.status_code == 303, res.text[-500:]
    return c
