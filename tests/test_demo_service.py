"""`redline demo` ends with the review service: it prints the one command that serves its output
and, the first time, a demo admin account whose password it prints once. The test runs the real
command line on the session's small scene build (the embedded STAC API, a real scan), then the
printed account logs in to a real `redline serve` and sees the demo's alerts."""

from __future__ import annotations

import re

import pytest

from redline.register import Register
from tests.serve_site import Site, cli, http_login, serving

pytestmark = pytest.mark.slow


def test_the_demo_prints_how_to_serve_it_and_an_admin_password_that_logs_in(small_scenes, tmp_path):
    out = tmp_path / "demo-out"
    res = cli("demo", "--preset", "small", "--out", out, "--scenes", small_scenes.root.parent)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r"review service: (\S+) serve (\S+) +→ http://127\.0\.0\.1:8000\n +log in as admin, password (\S+) +\(shown this once", res.stdout)
    assert m, res.stdout[-1500:]
    assert m.group(2) == str(out)
    password = m.group(3)
    reg = Register(out / "register.gpkg")
    assert [(u.name, u.role) for u in reg.users()] == [("admin", "admin")] and len(password) >= 16
    assert password not in (out / "register.gpkg").read_bytes().decode("latin-1")  # only its argon2id hash is stored
    assert reg.verify().problems == []
    n_alerts = len(reg.alerts())
    with serving(out, "--lang", "en") as url:
        site = Site(url=url, out=out, register=reg.path)
        c, login = http_login(site, "admin", password)
        assert login.status_code == 303
        page = c.get("/")
        assert page.status_code == 200 and f"{n_alerts} alert(s)" in page.text and n_alerts > 0
