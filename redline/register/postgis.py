"""A register in PostgreSQL with PostGIS: one database shared by the counties of a province.

Same tables, columns, entries and signatures as the GeoPackage (:mod:`redline.register.store`);
the alerts' geometry is ``geometry(MultiPolygon, 4326)``. Writers serialise on a transaction-level
advisory lock (``pg_advisory_xact_lock``), waiting at most the lock timeout (``lock_timeout``);
readers use ``REPEATABLE READ`` snapshots and never wait. Two scans serialise on a session-level
advisory lock (:meth:`PostgisStore.scan_lock`). Credentials come from the URL, ``PGPASSWORD`` or
``~/.pgpass`` (libpq); the URL that redline prints or records never carries the password.

This module imports ``psycopg`` (3), ``shapely`` and :mod:`redline.register.store`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import shapely

from redline.errors import RegisterError
from redline.register.store import REGISTER_TABLES, Store, Tx, create_indexes, table_ddl

__all__ = ["PostgisStore", "public_url"]

#: Advisory lock keys (two int4): writers' transactions, and whole scans.
_WRITE_LOCK = (0x7265646C, 1)  # "redl"
_SCAN_LOCK = (0x7265646C, 2)
_TYPES = {"REAL": "double precision", "INTEGER": "bigint", "TEXT": "text"}


def public_url(url: str) -> str:
    """``url`` without its password (for messages, logs and the manifest)."""
    u = urlsplit(url)
    netloc = (f"{u.username}@" if u.username else "") + (u.hostname or "") + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, ""))


def _q(name: str) -> str:
    return f'"{name}"'


class PostgisStore(Store):
    """A register in the PostgreSQL database at ``url`` (``postgresql://user[:pw]@host[:port]/db``)."""

    geom_select = 'ST_AsBinary("geom")'
    geom_param = "ST_GeomFromWKB(?, 4326)"

    def __init__(self, url: str):
        self.url = url
        self.path = None

    def describe(self) -> str:
        return public_url(self.url)

    def exists(self) -> bool:
        return True  # the database must exist; an empty one is a new register

    def _connect(self):
        try:
            import psycopg
        except ImportError:
            raise RegisterError(f"{self.describe()}: a PostgreSQL register needs psycopg; install it with `pip install 'psycopg[binary]'`") from None
        try:
            return psycopg.connect(self.url, connect_timeout=10, application_name="redline")
        except psycopg.OperationalError as exc:
            first = " ".join(str(exc).split())[:240]
            hint = ("check the user and password (URL, PGPASSWORD or ~/.pgpass)" if "password" in first or "authentication" in first
                    else "check the host, port and database name, and that the server runs")
            raise RegisterError(f"{self.describe()}: cannot connect to the register database ({first}); {hint}") from None

    @contextlib.contextmanager
    def transaction(self, *, write: bool, timeout: float) -> Iterator[Tx]:
        """A ``REPEATABLE READ`` snapshot, or a write transaction that first takes the writers'
        advisory lock (waiting at most ``timeout`` s), committed on success."""
        import psycopg

        con = self._connect()
        try:
            if not write:
                con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                con.read_only = True
            with con.transaction():
                cur = con.cursor()
                cur.execute(f"SET LOCAL lock_timeout = {max(int(timeout * 1000), 1)}")
                if write:
                    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", _WRITE_LOCK)
                yield Tx(cur, "%s")
        except psycopg.errors.LockNotAvailable:
            raise RegisterError(f"{self.describe()}: the register is busy (another writer held it longer than {timeout:g} s); "
                                "try again or raise --lock-timeout") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RegisterError(f"{self.describe()}: not allowed ({' '.join(str(exc).split())[:200]}); grant the user rights on the database") from None
        except psycopg.OperationalError as exc:
            raise RegisterError(f"{self.describe()}: the connection failed ({' '.join(str(exc).split())[:200]}); nothing was written, try again") from None
        finally:
            con.close()

    @contextlib.contextmanager
    def scan_lock(self, timeout: float) -> Iterator[None]:
        """Two scans of one register run one after the other: a session advisory lock held on
        its own connection for the whole scan, waited for at most ``timeout`` s."""
        con = self._connect()
        con.autocommit = True
        try:
            deadline = time.monotonic() + timeout
            while not con.execute("SELECT pg_try_advisory_lock(%s, %s)", _SCAN_LOCK).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RegisterError(f"{self.describe()}: the register is locked by another scan (waited {timeout:.0f} s); "
                                        "wait for it to finish or use another register")
                time.sleep(0.2)
            yield
        finally:
            con.close()  # ends the session: the lock goes with it

    def _list_tables(self, tx: Tx) -> set[str]:
        return {r[0] for r in tx.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                                      "AND table_type = 'BASE TABLE'")}

    def _list_columns(self, tx: Tx, table: str) -> list[str]:
        return [r[0] for r in tx.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                                      "AND table_name = ? ORDER BY ordinal_position", (table,))]

    def create(self, tx: Tx, alert_columns: dict[str, str], history_columns: dict[str, str]) -> None:
        """Every register table, empty; refuses a database without PostGIS."""
        if tx.one("SELECT 1 FROM pg_extension WHERE extname = 'postgis'") is None:
            raise RegisterError(f"{self.describe()}: the database has no PostGIS; its owner runs `CREATE EXTENSION postgis;` "
                                "(Debian: package postgresql-postgis), then try again")
        have = self.tables(tx)
        if "alerts" not in have:
            cols = ", ".join(f"{_q(c)} {_TYPES[t]}" + (" NOT NULL" if c == "alert_id" else "") for c, t in alert_columns.items())
            tx.run(f'CREATE TABLE "alerts" ("fid" bigserial PRIMARY KEY, "geom" geometry(MultiPolygon, 4326), {cols})')
            tx.run('CREATE INDEX IF NOT EXISTS "alerts_geom" ON "alerts" USING gist ("geom")')
        self.create_tables(tx, history_columns)

    def create_tables(self, tx: Tx, history_columns: dict[str, str]) -> None:
        """The register's attribute tables that are missing, and their indexes."""
        have = self.tables(tx)
        for table in REGISTER_TABLES:
            if table not in have:
                tx.run(f'CREATE TABLE {_q(table)} ("fid" bigserial PRIMARY KEY, {table_ddl(table, history_columns, _TYPES)})')
        create_indexes(tx)

    def encode_geometry(self, geom: Any) -> bytes:
        return shapely.to_wkb(geom, byte_order=1, flavor="iso")

    def decode_geometry(self, values: Sequence[Any]) -> np.ndarray:
        return shapely.from_wkb(np.array([None if v is None else bytes(v) for v in values], dtype=object))
