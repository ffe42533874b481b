"""Where a register lives: a GeoPackage file (the embedded default) or a PostgreSQL/PostGIS database.

:func:`open_store` turns a register location (a path, or a ``postgresql://`` URL) into a store
that runs SQL in short transactions. :class:`redline.register.Register` writes its SQL once, in
SQLite's dialect with ``?`` placeholders; the stores translate the few differences (placeholders,
the geometry column's encoding, DDL types, how the write lock is taken and how long to wait).

**GeoPackage** (OGC 12-128r18, GeoPackage 1.3): ``sqlite3`` in WAL mode (readers never block and
are never blocked) with ``synchronous=FULL`` (a decision is on disk when it returns). A write is
``BEGIN IMMEDIATE``: it takes SQLite's write lock at once, waiting at most the lock timeout
(``busy_timeout``) for another writer's transaction, then one clear line. The writers of one
process (the review service's threads) first queue on a lock, already connected: each is woken
as soon as the one before commits (SQLite's busy handler polls with sleeps of up to 100 ms), and
the one finishing is never the last connection to close, which would checkpoint the WAL. The file stays a valid
GeoPackage (``application_id`` GPKG, ``gpkg_contents``, ``gpkg_geometry_columns``,
``gpkg_spatial_ref_sys``; the ``alerts`` geometry in GeoPackage binary with its envelope), which
QGIS and GDAL open as they are. No R-tree spatial index: its triggers call ``ST_*`` SQL
functions that plain SQLite lacks; a register of tens of thousands of alerts needs none.

This module imports ``shapely``, ``pyproj`` (the WKT of EPSG:4326) and :mod:`redline.errors`;
the PostgreSQL store is :mod:`redline.register.postgis`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from redline.errors import RegisterError

__all__ = ["Store", "GeoPackageStore", "TABLE_COLUMNS", "INDEXES", "table_ddl", "create_indexes", "encode_gpkg_geometry", "decode_gpkg_geometry", "REGISTER_TABLES"]

#: The register's tables besides ``alerts`` (each an attributes table of the GeoPackage). ``users``
#: and ``teams`` came after the first schema-3 registers: each is created when missing, by the
#: first write of a user or a team.
REGISTER_TABLES = ("review_history", "alert_seals", "signers", "scans", "meta", "users", "teams")
#: Their columns in portable types (TEXT, INTEGER, REAL; each store names them in its dialect);
#: ``review_history``'s come from the register (``history_columns``).
TABLE_COLUMNS = {
    "alert_seals": [("seq", "INTEGER NOT NULL"), ("alert_id", "TEXT NOT NULL"), ("seal", "TEXT NOT NULL"), ("fields", "TEXT NOT NULL")],
    "signers": [("key_id", "TEXT NOT NULL UNIQUE"), ("public_key", "TEXT NOT NULL"), ("role", "TEXT NOT NULL"), ("seq", "INTEGER NOT NULL")],
    "scans": [("scan_id", "TEXT NOT NULL UNIQUE"), *[(c, "TEXT") for c in ("name", "config_sha256", "started", "finished", "monitor_start", "monitor_end")],
              *[(c, "INTEGER") for c in ("n_items", "new", "updated", "unchanged")]],
    "meta": [("key", "TEXT NOT NULL UNIQUE"), ("value", "TEXT")],
    # the review service's accounts (redline.register.users); each change is also a signed ``user`` entry
    "users": [("name", "TEXT NOT NULL UNIQUE"), ("role", "TEXT NOT NULL"), ("counties", "TEXT NOT NULL"), ("zones", "TEXT NOT NULL"),
              ("password_hash", "TEXT NOT NULL"), ("disabled", "INTEGER NOT NULL"), ("created", "TEXT NOT NULL"), ("seq", "INTEGER NOT NULL")],
    # teams of users that alerts are assigned to (``members``: a comma list of user names); each change a signed ``team`` entry
    "teams": [("name", "TEXT NOT NULL UNIQUE"), ("members", "TEXT NOT NULL"), ("disabled", "INTEGER NOT NULL"), ("created", "TEXT NOT NULL"),
              ("seq", "INTEGER NOT NULL")],
}
#: Indexes of every store: (name, table, columns, unique).
INDEXES = [
    ("alerts_alert_id", "alerts", ("alert_id",), True),
    ("review_history_seq", "review_history", ("seq",), True),
    ("review_history_alert", "review_history", ("alert_id", "seq"), False),
    ("review_history_kind", "review_history", ("kind", "seq"), False),
    ("alert_seals_alert", "alert_seals", ("alert_id", "seq"), False),
    ("alert_seals_seq", "alert_seals", ("seq",), False),
    ("scans_scan_id", "scans", ("scan_id",), True),
    ("meta_key", "meta", ("key",), True),
    ("users_name", "users", ("name",), True),
    ("teams_name", "teams", ("name",), True),
]


def table_ddl(table: str, history_columns: dict[str, str], types: dict[str, str] | None = None) -> str:
    """The column list of a register table, with the portable type names mapped by ``types``."""
    cols = list(history_columns.items()) if table == "review_history" else TABLE_COLUMNS[table]
    out = []
    for c, t in cols:
        base, _, rest = t.partition(" ")
        out.append(f'"{c}" {(types or {}).get(base, base)}' + (f" {rest}" if rest else ""))
    return ", ".join(out)


def create_indexes(tx: "Tx") -> None:
    """Every index of :data:`INDEXES` that is missing (same SQL in SQLite and PostgreSQL)."""
    for name, table, cols, unique in INDEXES:
        tx.run(f'CREATE {"UNIQUE " if unique else ""}INDEX IF NOT EXISTS "{name}" ON "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)})')

#: statements that change the schema (their first six letters): they clear :attr:`Tx.schema`
_DDL = ("CREATE", "ALTER ", "DROP T", "DROP I", "DROP V")
_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG" (GeoPackage 1.2+, req. 2)
_GPKG_USER_VERSION = 10300  # GeoPackage 1.3.0
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def encode_gpkg_geometry(geom: Any, srs_id: int = 4326) -> bytes:
    """GeoPackage binary (header ``GP``, version 0, little-endian, xy envelope, SRS id) + ISO WKB."""
    minx, miny, maxx, maxy = geom.bounds
    return b"GP" + bytes((0, 0b0000_0011)) + struct.pack("<i4d", srs_id, minx, maxx, miny, maxy) + shapely.to_wkb(geom, byte_order=1, flavor="iso")


def decode_gpkg_geometry(blobs: Sequence[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackage binary blobs (None stays None): the header and its
    envelope (its size from the flags byte) are skipped, the WKB parsed."""
    wkb = [None if b is None else bytes(b[8 + _ENVELOPE_BYTES[(b[3] >> 1) & 0b111]:]) for b in blobs]
    return shapely.from_wkb(np.array(wkb, dtype=object))


class Tx:
    """One open transaction: ``rows``/``one``/``run``/``many`` with ``?`` placeholders.

    ``schema`` holds what the store read of the schema in this transaction (its tables, a
    table's columns: :meth:`Store.tables`, :meth:`Store.columns`), so a decision asks the
    catalogue once, not at every step; a ``CREATE``, ``ALTER`` or ``DROP`` run through
    :meth:`run` clears it. A transaction sees one snapshot, so nothing else changes the schema
    under it."""

    def __init__(self, cursor: Any, placeholder: str):
        self._cur = cursor
        self._ph = placeholder
        self.schema: dict[Any, Any] = {}

    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._cur.execute(self._sql(sql), tuple(params))
        return list(self._cur.fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        self._cur.execute(self._sql(sql), tuple(params))
        return self._cur.fetchone()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        if sql.lstrip()[:6].upper() in _DDL:
            self.schema.clear()
        self._cur.execute(self._sql(sql), tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])


class Store:
    """A register's storage. Subclasses: :class:`GeoPackageStore`, ``PostgisStore``."""

    #: How SQL selects the alerts' geometry and how a parameter becomes one.
    geom_select = '"geom"'
    geom_param = "?"

    def describe(self) -> str:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def transaction(self, *, write: bool, timeout: float) -> contextlib.AbstractContextManager[Tx]:
        raise NotImplementedError

    def tables(self, tx: Tx) -> set[str]:
        """The tables of the register's database (read once per transaction)."""
        if "tables" not in tx.schema:
            tx.schema["tables"] = frozenset(self._list_tables(tx))
        return set(tx.schema["tables"])

    def columns(self, tx: Tx, table: str) -> list[str]:
        """The columns of ``table``, in order (read once per transaction)."""
        key = ("columns", table)
        if key not in tx.schema:
            tx.schema[key] = tuple(self._list_columns(tx, table))
        return list(tx.schema[key])

    def _list_tables(self, tx: Tx) -> set[str]:
        raise NotImplementedError

    def _list_columns(self, tx: Tx, table: str) -> list[str]:
        raise NotImplementedError

    def create(self, tx: Tx, alert_columns: dict[str, str], history_columns: dict[str, str]) -> None:
        raise NotImplementedError

    def create_tables(self, tx: Tx, history_columns: dict[str, str]) -> None:
        """The register's attribute tables (:data:`REGISTER_TABLES`) that are missing, and their indexes."""
        raise NotImplementedError

    def encode_geometry(self, geom: Any) -> Any:
        raise NotImplementedError

    def decode_geometry(self, values: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError

    def touched(self, tx: Tx, bounds: tuple[float, float, float, float] | None) -> None:
        """Record that the alerts changed (GeoPackage: ``gpkg_contents.last_change`` and extent)."""


def _q(name: str) -> str:
    return f'"{name}"'


class GeoPackageStore(Store):
    """A register in a GeoPackage file at ``path``."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        #: this process's writers queue here before ``BEGIN IMMEDIATE``: woken as soon as the one
        #: before them commits, where SQLite's busy handler would poll with sleeps of up to 100 ms
        self._writers = threading.Lock()

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self, write: bool, timeout: float) -> sqlite3.Connection:
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        else:
            try:  # a reader never creates the file, and reads a register it may not write
                con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
                con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            except sqlite3.OperationalError:  # read-only WAL file whose -shm cannot be created
                con = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        return con

    @contextlib.contextmanager
    def transaction(self, *, write: bool, timeout: float) -> Iterator[Tx]:
        """A read snapshot (``BEGIN``) or a write transaction (``BEGIN IMMEDIATE``, waiting at most
        ``timeout`` s for another writer: of this process in a queue, of another through
        SQLite's busy timeout), committed on success, rolled back on any error."""
        if not write:
            with self._transaction(False, timeout) as tx:
                yield tx
            return
        start = time.monotonic()
        held = []

        def take() -> float:
            """Queue behind this process's other writers; the seconds left to wait for SQLite's lock."""
            if not self._writers.acquire(timeout=max(timeout, 0.0)):
                raise RegisterError(self._busy(timeout))
            held.append(True)
            return max(timeout - (time.monotonic() - start), 0.001)

        def release() -> None:
            if held:
                held.clear()
                self._writers.release()

        try:
            with self._transaction(True, timeout, take=take, done=release) as tx:
                yield tx
        finally:
            release()

    def _busy(self, timeout: float) -> str:
        return f"{self.path}: the register is busy (another writer held it longer than {timeout:g} s); try again or raise --lock-timeout"

    @contextlib.contextmanager
    def _transaction(self, write: bool, timeout: float, *, take: Callable[[], float] | None = None,
                     done: Callable[[], None] | None = None) -> Iterator[Tx]:
        """:meth:`transaction`, waiting at most ``timeout`` s for SQLite's locks. A writer
        connects first, then ``take()`` (its turn; returns the seconds left to wait), and ``done()`` once its transaction is over, before its connection closes: the
        writers queued behind it are connected by then, so its close is never the last one, which
        would checkpoint the WAL (~15 ms of fsyncs at every decision)."""
        try:
            con = self._connect(write, timeout)
        except sqlite3.Error as exc:
            raise RegisterError(f"{self.path}: cannot open the register ({exc}); is it a redline register GeoPackage?") from None
        try:
            if write:
                if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    con.execute("PRAGMA journal_mode = WAL")  # persistent: set once, by the first writer
                con.execute("PRAGMA synchronous = FULL")
                if take is not None:
                    con.execute(f"PRAGMA busy_timeout = {int(take() * 1000)}")
                con.execute("BEGIN IMMEDIATE")
            else:
                con.execute("BEGIN")
            cur = con.cursor()
            try:
                yield Tx(cur, "?")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            try:
                con.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise RegisterError(f"{self.path}: the transaction could not be committed ({exc}); nothing was written, try again") from None
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RegisterError(self._busy(timeout)) from None
            if isinstance(exc, sqlite3.IntegrityError):  # a write that breaks a table's constraint, not a broken file
                raise RegisterError(f"{self.path}: the write breaks a constraint of the register ({exc}); nothing was written") from None
            raise RegisterError(f"{self.path}: not a readable register ({exc}); give a redline register GeoPackage") from None
        finally:
            if done is not None:
                done()
            con.close()

    def _list_tables(self, tx: Tx) -> set[str]:
        return {r[0] for r in tx.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _list_columns(self, tx: Tx, table: str) -> list[str]:
        return [r[1] for r in tx.rows(f"PRAGMA table_info({_q(table)})")]

    def create(self, tx: Tx, alert_columns: dict[str, str], history_columns: dict[str, str]) -> None:
        """The GeoPackage's metadata tables and every register table, empty."""
        from pyproj import CRS

        tx.run(f"PRAGMA application_id = {_GPKG_APPLICATION_ID}")
        tx.run(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
        have = self.tables(tx)
        if "gpkg_spatial_ref_sys" not in have:
            tx.run("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL, "
                   "organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)")
            tx.many("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", [
                ("WGS 84 geodetic", 4326, "EPSG", 4326, CRS.from_epsg(4326).to_wkt("WKT1_GDAL"), "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
            ])
        if "gpkg_contents" not in have:
            tx.run("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE, "
                   "description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
                   "min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, "
                   "CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))")
        if "gpkg_geometry_columns" not in have:
            tx.run("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, "
                   "srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), "
                   "CONSTRAINT uk_gc_table_name UNIQUE (table_name), CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), "
                   "CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))")
        if "alerts" not in have:
            cols = ", ".join(f"{_q(c)} {t}" + (" NOT NULL UNIQUE" if c == "alert_id" else "") for c, t in alert_columns.items())
            tx.run(f'CREATE TABLE "alerts" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "geom" MULTIPOLYGON, {cols})')
            tx.run("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) VALUES ('alerts', 'features', 'alerts', "
                   "'redline alert register: one row per alert', 4326)")
            tx.run("INSERT INTO gpkg_geometry_columns VALUES ('alerts', 'geom', 'MULTIPOLYGON', 4326, 0, 0)")
        self.create_tables(tx, history_columns)

    def create_tables(self, tx: Tx, history_columns: dict[str, str]) -> None:
        """The register's attribute tables that are missing, registered in ``gpkg_contents``."""
        have = self.tables(tx)
        for table in REGISTER_TABLES:
            if table not in have:
                tx.run(f'CREATE TABLE {_q(table)} ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, {table_ddl(table, history_columns)})')
                tx.run("INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier) VALUES (?, 'attributes', ?)", (table, table))
        create_indexes(tx)

    def encode_geometry(self, geom: Any) -> bytes:
        return encode_gpkg_geometry(geom)

    def decode_geometry(self, values: Sequence[Any]) -> np.ndarray:
        return decode_gpkg_geometry(values)

    def touched(self, tx: Tx, bounds: tuple[float, float, float, float] | None) -> None:
        if bounds is None:
            tx.run("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name = 'alerts'")
        else:
            tx.run("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), min_x = ?, min_y = ?, max_x = ?, max_y = ? "
                   "WHERE table_name = 'alerts'", bounds)

    def drop_spatial_index(self, tx: Tx) -> None:
        """Remove GDAL's R-tree index of the alerts (a register written before schema 3): its
        triggers call ``ST_*`` functions that only GDAL and SpatiaLite define."""
        for (name,) in tx.rows("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rtree_alerts_%'"):
            tx.run(f"DROP TRIGGER {_q(name)}")
        if "rtree_alerts_geom" in self.tables(tx):
            tx.run('DROP TABLE "rtree_alerts_geom"')
        if "gpkg_extensions" in self.tables(tx):
            tx.run("DELETE FROM gpkg_extensions WHERE table_name = 'alerts' AND extension_name = 'gpkg_rtree_index'")
