"""The throw-away PostgreSQL + PostGIS server the register's PostGIS tests use (tests/pg.py):
the real Debian server and extension, reached with psycopg over TCP on 127.0.0.1."""

from __future__ import annotations

import os
import re

import psycopg
import pyproj
import pytest
import shapely
from shapely.geometry import Polygon

from tests.pg import HINT, PgUnavailable, find_server, port_is_open, server_pids, throwaway_cluster

pytestmark = pytest.mark.postgres

#: a 0.01° × 0.01° square in Beijing with a 0.001° hole: 0.9495 km² − 0.0095 km² (outer ring
#: anticlockwise, hole clockwise: pyproj's geometry_area_perimeter adds rings' signed areas)
SQUARE = Polygon(
    [(116.30, 39.90), (116.31, 39.90), (116.31, 39.91), (116.30, 39.91)],
    holes=[[(116.304, 39.904), (116.304, 39.905), (116.305, 39.905), (116.305, 39.904)]],
)


def _user_tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return {r[0] for r in rows}


def _extensions(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def test_the_cluster_answers_postgis_full_version_as_its_own_role(pg_cluster, postgres_url):
    m = re.fullmatch(r"postgresql://(\w+):([\w-]+)@127\.0\.0\.1:(\d+)/(\w+)", postgres_url)
    assert m, postgres_url
    user, password, port, dbname = m.groups()
    assert (user, int(port), dbname) == (pg_cluster.user, pg_cluster.port, pg_cluster.dbname)
    assert len(password) >= 24  # made for this run (secrets), never a fixed secret
    with psycopg.connect(postgres_url) as conn:
        version, me, superuser = conn.execute(
            "SELECT postgis_full_version(), current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").fetchone()[0]
    assert version.startswith("POSTGIS=") and "GEOS=" in version and "PROJ=" in version, version
    assert (me, superuser, owner) == (user, False, user)  # the register's role owns its database, no superuser
    print(f"{version}; cluster started in {pg_cluster.start_seconds:.2f} s")


def test_a_polygon_round_trips_and_its_geodesic_area_is_right(pg_cluster):
    url = pg_cluster.new_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE zones (id serial PRIMARY KEY, name text, geom geometry(Polygon, 4326))")
        conn.execute("INSERT INTO zones (name, geom) VALUES (%s, ST_GeomFromText(%s, 4326))", ("生态保护红线", SQUARE.wkt))
        name, srid, wkb, area = conn.execute(
            "SELECT name, ST_SRID(geom), ST_AsBinary(geom), ST_Area(geom::geography) FROM zones"
        ).fetchone()
    back = shapely.from_wkb(bytes(wkb))
    assert (name, srid) == ("生态保护红线", 4326)
    assert back.equals_exact(SQUARE, 0) and len(back.interiors) == 1
    # the same area on the WGS84 ellipsoid by another implementation (GeographicLib through pyproj)
    expected = abs(pyproj.Geod(ellps="WGS84").geometry_area_perimeter(SQUARE)[0])
    assert 0.93e6 < expected < 0.95e6  # the hole is taken out
    assert area == pytest.approx(expected, rel=0.01)  # agrees to ~1e-12: both use the WGS84 ellipsoid
    assert area == pytest.approx(expected, rel=1e-6)


def test_each_new_database_is_empty_and_independent(pg_cluster):
    first, second = pg_cluster.new_database(), pg_cluster.new_database()
    assert first != second and first != pg_cluster.url
    with psycopg.connect(first) as a, psycopg.connect(second) as b:
        for conn in (a, b):
            assert _user_tables(conn) == {"public.spatial_ref_sys"}  # PostGIS's own table only
            assert "postgis" in _extensions(conn)
            assert conn.execute("SELECT count(*) FROM spatial_ref_sys WHERE srid IN (4326, 4490, 32650)").fetchone()[0] == 3
        a.execute("CREATE TABLE alerts (id integer PRIMARY KEY, geom geometry(Polygon, 4326))")
        a.execute("INSERT INTO alerts VALUES (1, ST_GeomFromText(%s, 4326))", (SQUARE.wkt,))
        a.commit()
        assert _user_tables(a) == {"public.spatial_ref_sys", "public.alerts"}
        assert _user_tables(b) == {"public.spatial_ref_sys"}
    with psycopg.connect(pg_cluster.url) as conn:
        assert "public.alerts" not in _user_tables(conn)


def test_a_database_without_postgis_has_no_postgis_extension(pg_cluster):
    url = pg_cluster.new_database(postgis=False)
    with psycopg.connect(url) as conn:
        assert _extensions(conn) == {"plpgsql"}
        assert _user_tables(conn) == set()
        # installed on the server, not in this database: a register must say so, not crash later
        assert conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.UndefinedFunction):
            conn.execute("SELECT postgis_full_version()")


def test_the_server_listens_on_loopback_only_and_wants_the_password(pg_cluster):
    with psycopg.connect(pg_cluster.url) as conn:
        listen, port, addr = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('port'), host(inet_server_addr())"
        ).fetchone()
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
    with pg_cluster.superuser_connect() as admin:  # only a superuser may read it; it is not reachable over TCP
        sockets = admin.execute("SHOW unix_socket_directories").fetchone()[0]
    assert (listen, int(port), addr) == ("127.0.0.1", pg_cluster.port, "127.0.0.1")
    assert sockets == str(pg_cluster.socket_dir) and pg_cluster.socket_dir.is_relative_to(pg_cluster.root)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_cluster.url.replace(pg_cluster.password, "not-the-password"), connect_timeout=10)
    with pytest.raises(psycopg.OperationalError):  # the superuser has no password: unix socket only
        psycopg.connect(host="127.0.0.1", port=pg_cluster.port, user="postgres", dbname="postgres", password="x",
                        connect_timeout=10)
    # as root, initdb and postgres refuse to run: the server runs as the unprivileged `postgres` user
    owner = pg_cluster.data_dir.stat().st_uid
    if os.geteuid() == 0:
        import pwd

        assert owner == pwd.getpwnam("postgres").pw_uid != 0
    else:
        assert owner == os.geteuid()
    assert server_pids(pg_cluster.data_dir)


def test_leaving_the_block_stops_the_server_and_removes_its_folder(pg_cluster):
    """A second cluster (the session's stays up): stopped and removed, here on an error in the block."""
    with pytest.raises(KeyError), throwaway_cluster() as cluster:
        root, data_dir, port = cluster.root, cluster.data_dir, cluster.port
        assert port != pg_cluster.port and root != pg_cluster.root
        with psycopg.connect(cluster.new_database(postgis=False)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert port_is_open(port) and data_dir.is_dir() and server_pids(data_dir)
        raise KeyError("leave the block")
    assert not root.exists()
    assert not port_is_open(port)
    assert server_pids(data_dir) == []
    with psycopg.connect(pg_cluster.url) as conn:  # the session's cluster is untouched
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_missing_server_or_postgis_fails_with_one_clear_message(tmp_path):
    found = find_server()
    assert (found.sharedir / "extension" / "postgis.control").is_file() and found.major >= 12
    bindir, sharedir = tmp_path / "bin", tmp_path / "share"
    bindir.mkdir()
    (sharedir / "extension").mkdir(parents=True)
    with pytest.raises(PgUnavailable) as none:
        find_server([])
    for tool in ("initdb", "pg_ctl", "postgres"):
        (bindir / tool).write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 15.0'\n")
        (bindir / tool).chmod(0o755)
    with pytest.raises(PgUnavailable) as no_postgis:
        find_server([(bindir, sharedir)])
    assert "no PostgreSQL server installed" in str(none.value)
    assert "postgis.control missing" in str(no_postgis.value)
    for exc in (none, no_postgis):
        assert str(exc.value).endswith(HINT) and "make test" in HINT
