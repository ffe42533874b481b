"""A review site for the service's tests: OUT with a register of five alerts in two counties
(built by the real API), users made by the real command line, and a real ``redline serve``
(uvicorn) in a subprocess on a free 127.0.0.1 port. Shared by tests/test_serve.py (the pages)
and tests/test_serve_api.py (the JSON API)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
import shapely
from PIL import Image

from redline.alerts import ALERT_COLUMNS, SCHEMA2_DEFAULTS
from redline.register import Register, merge_alerts

PASSWORD = "l0ng enough passphrase"  # noqa: S105 - test accounts
EVIL = "<script>window.pwned=1</script>红线"
CLI = [sys.executable, "-m", "redline.cli"]
#: the five alerts: three in county 510182 (zones Z1, Z2), two in 510183 (zone Z3)
A1, A2, A3, B1, B2 = "Z1-20230501-1", "Z1-20230601-1", "Z2-20230701-1", "Z3-20230801-1", "Z3-20230901-1"


@dataclass
class Site:
    url: str
    out: Path
    register: Path


def alert_row(zone: str, admin: str, x: float, first: str, dtype: str = "clearing", confidence: str = "nominal", **extra) -> dict:
    """One alert as a scan finds it (status new), a 0.001° square at longitude ``x``."""
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
    """``redline ARGS`` in a subprocess (text output captured)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, input=stdin, timeout=120,
                          env={**os.environ, **(env or {})})


def build_out(out: Path) -> Path:
    """OUT with a register of five alerts (three in county 510182, two in 510183), chips for
    A1, a zone name with a <script> tag on A3, a chip path that leaves OUT on B2, and zones.geojson."""
    (out / "chips").mkdir(parents=True)
    for tag, colour in (("before", (40, 120, 40)), ("after", (170, 140, 90))):
        Image.new("RGB", (64, 64), colour).save(out / "chips" / f"{A1}_{tag}.png")
    (out.parent / "secret.png").write_bytes((out / "chips" / f"{A1}_before.png").read_bytes())
    rows = [
        alert_row("Z1", "510182", 103.90, "2023-05-01", chip_before=f"chips/{A1}_before.png", chip_after=f"chips/{A1}_after.png"),
        alert_row("Z1", "510182", 103.92, "2023-06-01", "construction", "high"),
        alert_row("Z2", "510182", 104.00, "2023-07-01", "mining", "low", zone_name=EVIL),
        alert_row("Z3", "510183", 104.10, "2023-08-01"),
        alert_row("Z3", "510183", 104.12, "2023-09-01", chip_before="../secret.png"),
    ]
    reg = Register(out / "register.gpkg")
    found = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)[[*ALERT_COLUMNS, "geometry"]]
    merged, _ = merge_alerts(reg.alerts(), found, "s1")
    reg.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 5, "new": 5, "updated": 0, "unchanged": 0})
    zones = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"zone_id": z}, "geometry": shapely.geometry.mapping(shapely.box(x - 0.01, 30.69, x + 0.03, 30.71))}
        for z, x in (("Z1", 103.90), ("Z2", 104.00), ("Z3", 104.10))]}
    (out / "zones.geojson").write_text(json.dumps(zones), encoding="utf-8")
    return reg.path


def add_users(out: Path, users: Mapping[str, tuple[str, str, str]]) -> None:
    """``redline users add`` for each name → (role, counties, zones), password :data:`PASSWORD`."""
    for name, (role, counties, zones) in users.items():
        res = cli("users", "add", name, "--role", role, "--counties", counties, "--zones", zones, "--password-stdin", "--out", out, stdin=PASSWORD + "\n")
        assert res.returncode == 0, res.stderr


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
