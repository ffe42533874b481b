"""Shared fixtures: a small generated scene set served by the real embedded STAC API, one real
scan of it (session-scoped: built and scanned once for the whole suite), and a throw-away
PostgreSQL + PostGIS server (started once, only when a test asks for it). The session signs
with its own ed25519 key, made in a temporary folder (``$REDLINE_KEY``, inherited by the CLI
processes the tests start): no key is in the repository, and the user's own key is never used."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import pytest

from pipelines import serve_stac
from redline.config import load_config
from redline.demo import generate_demo


_KEY_DIR: str | None = None


def pytest_configure(config):
    """This session's signing key (before collection, so every process the tests start has it)."""
    global _KEY_DIR
    from redline.register.keys import throwaway_key

    _KEY_DIR = tempfile.mkdtemp(prefix="redline-test-key-")
    throwaway_key(_KEY_DIR)


def pytest_unconfigure(config):
    if _KEY_DIR:
        shutil.rmtree(_KEY_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def small_scenes(tmp_path_factory):
    """The `small` preset of the demo generator (160×160 px, 2022–2023, 10-day revisit)."""
    return generate_demo(tmp_path_factory.mktemp("scenes") / "small", preset="small")


@pytest.fixture(scope="session")
def stac_url(small_scenes):
    with serve_stac(small_scenes.root) as url:
        yield url


@pytest.fixture(scope="session")
def small_config(small_scenes, stac_url):
    return load_config(small_scenes.config, overrides={"stac": {"url": stac_url}})


@pytest.fixture(scope="session")
def small_scan(small_config, small_scenes, tmp_path_factory):
    """One real scan of the small scene set through the embedded API on a LocalCluster."""
    from redline.scan import run_scan

    out = tmp_path_factory.mktemp("scan") / "out"
    return run_scan(small_config, out, config_text=Path(small_scenes.config).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def truth(small_scenes):
    return gpd.read_file(small_scenes.truth, layer="events")


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL + PostGIS cluster on a free 127.0.0.1 port (tests/pg.py), one per
    session, started only when a test asks for it: ``.url`` is its first database,
    ``.new_database(postgis=True)`` the URL of a new empty one. Fails (never skips) without the
    server: ``make test`` installs it."""
    from tests.pg import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(pg_cluster):
    """``postgresql://USER:PASS@127.0.0.1:PORT/DB`` of the session cluster's first database (with postgis)."""
    return pg_cluster.url


def pytest_collection_modifyitems(items):
    """Tests on the PostgreSQL server carry the ``postgres`` marker (``-m postgres`` picks them)."""
    for item in items:
        if {"pg_cluster", "postgres_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
