"""The register on a real PostgreSQL + PostGIS server (a throw-away cluster on 127.0.0.1, tests/pg.py):
the same schema, transactions, signatures and verify as the GeoPackage; copies both ways keep every
hash; 8 reviewers and a scan at once; bad URLs, credentials and databases as one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import geopandas as gpd
import psycopg
import pytest
import shapely

from redline.errors import RegisterError
from redline.register import Register, merge_alerts
from tests.pg import free_port
from tests.test_register_concurrency import PER_PROCESS, PROCESSES, run_concurrently
from tests.test_register_tamper import alert_row


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def _found(n: int = 3) -> gpd.GeoDataFrame:
    rows = [alert_row(f"Z{i}", 103.9 + 0.1 * i, f"2023-0{5 + i}-01") for i in range(n)]
    rows[1]["geometry"] = shapely.MultiPolygon([shapely.box(104.0, 30.7, 104.001, 30.701), shapely.box(104.002, 30.7, 104.003, 30.701)])
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


@pytest.fixture
def pg_reg(pg_cluster) -> Register:
    reg = Register(pg_cluster.new_database())
    merged, stats = merge_alerts(reg.alerts(), _found(), "s1")
    reg.commit_scan(merged, scan={"scan_id": "s1", "name": "t", "n_items": 4, "new": stats.new, "updated": 0, "unchanged": 0})
    return reg


def test_the_register_on_postgis_decides_and_verifies_like_the_geopackage(pg_reg, tmp_path):
    reg = pg_reg
    a = reg.alerts()
    assert sorted(a["alert_id"]) == ["Z0-20230501-1", "Z1-20230601-1", "Z2-20230701-1"]
    assert shapely.equals(a.set_index("alert_id").loc["Z1-20230601-1", "geometry"], _found().geometry.iloc[1])
    reg.review("Z0-20230501-1", to_status="under_review", by="王工")
    for step in ("self_check", "specialist_check", "acceptance"):
        reg.review("Z0-20230501-1", step=step, by="李工")
    row = reg.review("Z0-20230501-1", to_status="confirmed", by="赵处长", note="已确认")
    assert row["to_status"] == "confirmed" and reg.alert("Z0-20230501-1")["status"] == "confirmed"
    v = reg.verify()
    assert v.problems == [] and v.signed == v.rows == len(reg.chain()) and v.sealed == 3
    with psycopg.connect(reg.location) as con:  # the same tampering as on the GeoPackage, in SQL
        con.execute("UPDATE alerts SET area_m2 = 1 WHERE alert_id = 'Z2-20230701-1'")
        con.execute("UPDATE alerts SET status = 'dismissed' WHERE alert_id = 'Z1-20230601-1'")
    problems = reg.verify().problems
    assert any(p.startswith("alerts: alert Z2-20230701-1: area_m2 differ") for p in problems)
    assert any("alert Z1-20230601-1 has status 'dismissed' but its review history ends at 'new'" in p for p in problems)


def test_copies_between_geopackage_and_postgis_keep_every_hash(pg_reg, pg_cluster, tmp_path):
    pg_reg.review("Z0-20230501-1", to_status="under_review", by="王工")
    gpkg = Register(tmp_path / "copy.gpkg")
    res = _cli("register", "copy", pg_reg.location, str(gpkg.path))
    assert res.returncode == 0, res.stderr
    back = Register(pg_cluster.new_database())
    assert _cli("register", "copy", str(gpkg.path), back.location).returncode == 0
    for r in (gpkg, back):
        assert r.verify().problems == []
        assert r.head() == pg_reg.head()
        assert list(r.chain()["row_hash"]) == list(pg_reg.chain()["row_hash"])
        assert r.alerts().drop(columns="geometry").equals(pg_reg.alerts().drop(columns="geometry"))
    gpkg.review("Z1-20230601-1", to_status="dismissed", by="王工", note="cloud")  # the copy is a working register
    assert gpkg.verify().problems == []
    res = _cli("register", "copy", str(gpkg.path), back.location)
    assert res.returncode == 2 and "already holds a register" in res.stderr


def test_eight_reviewers_and_a_scan_on_one_postgis_register(pg_cluster):
    reg, lat, updated = run_concurrently(pg_cluster.new_database())
    h = reg.history()
    assert len(h) == PROCESSES * PER_PROCESS and h["seq"].is_unique
    v = reg.verify()
    assert v.problems == [] and v.signed == v.rows


def test_a_scan_writes_its_register_into_postgis_and_verify_checks_it(pg_cluster, small_config, small_scenes, tmp_path):
    """`register: postgresql://…` in scan.yml: the scan merges into the database; the manifest
    names the URL without its password; verify reads it with PGPASSWORD (libpq)."""
    from redline.scan import run_scan

    url = pg_cluster.new_database()
    res = run_scan(small_config.model_copy(update={"register_path": url}), tmp_path / "out",
                   config_text=small_scenes.config.read_text(encoding="utf-8"))
    assert res.register == url and not (tmp_path / "out" / "register.gpkg").exists()
    manifest = (tmp_path / "out" / "manifest.json").read_text(encoding="utf-8")
    password = urlsplit(url).password
    assert password not in manifest
    assert len(Register(url).alerts()) == len(res.alerts) > 0
    ok = _cli("verify", str(tmp_path / "out"), env={"PGPASSWORD": password})
    assert ok.returncode == 0, ok.stderr
    assert "signatures valid" in ok.stdout


def test_bad_register_urls_are_one_line_exit_2_and_write_nothing(pg_cluster, tmp_path):
    u = urlsplit(pg_cluster.url)
    closed = f"postgresql://{u.username}:{u.password}@127.0.0.1:{free_port()}/redline"
    wrong_pw = f"postgresql://{u.username}:wrong@127.0.0.1:{u.port}{u.path}"
    no_db = f"postgresql://{u.username}:{u.password}@127.0.0.1:{u.port}/nosuchdb"
    no_postgis = pg_cluster.new_database(postgis=False)
    cases = {closed: "cannot connect to the register database", wrong_pw: "check the user and password",
             no_db: "cannot connect to the register database", no_postgis: "the database has no PostGIS"}
    for url, message in cases.items():
        res = _cli("keys", "trust", "ab" * 32, "--register", url)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], res.stderr
        assert (u.password or "@@") not in lines[0] and "wrong" not in lines[0]  # never the password
    with psycopg.connect(no_postgis) as con:  # nothing written
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()[0] == 0
    with pytest.raises(RegisterError, match="not a redline register"):
        with psycopg.connect(no_postgis) as con:
            con.execute("CREATE TABLE parcels (id int)")
        Register(no_postgis).alerts()
