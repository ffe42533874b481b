"""A throw-away PostgreSQL + PostGIS server (Debian's), for the alert register's PostGIS tests.

:func:`throwaway_cluster` runs ``initdb`` into a new temporary folder, starts ``postgres`` on a
free port of 127.0.0.1 (and nowhere else; its unix socket lies inside that folder), creates a
role with a password made for this run and a database it owns with the ``postgis`` extension,
and yields a :class:`PgCluster` whose ``url`` is ``postgresql://USER:PASS@127.0.0.1:PORT/DB``.
On exit it stops the server (``pg_ctl stop -m fast``) and removes the folder. Nothing is
mocked: it is the real server with the real extension, set up for speed (``fsync=off``).

The server binaries are Debian's, ``/usr/lib/postgresql/<major>/bin``, of a major version whose
``/usr/share/postgresql/<major>/extension/postgis.control`` exists (``pg_config``'s folders are
tried too), never an ``initdb`` found on ``PATH``. ``make test`` installs them (target
``postgres``). ``initdb`` and ``postgres`` refuse to run as root: as root they run as Debian's
unprivileged ``postgres`` system user, owner of the folder; otherwise as the current user.
``setpriv --pdeathsig`` asks the kernel to stop the server if the test process dies without
its clean-up (killed), so no server outlives the run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

DEBIAN_LIB = Path("/usr/lib/postgresql")
DEBIAN_SHARE = Path("/usr/share/postgresql")
#: the unprivileged system user the server runs as when the tests run as root (Debian's package makes it)
SYSTEM_USER = "postgres"
HINT = "run `make test`, which installs postgresql and postgis (Debian's postgresql, postgresql-postgis)"
#: the role and first database of every cluster (the password is made per run)
USER = "redline"
DBNAME = "redline"
SUPERUSER = "postgres"
#: a database with postgis that new databases are copied from (faster than CREATE EXTENSION each time)
POSTGIS_TEMPLATE = "redline_postgis_template"
#: server settings: loopback only, and speed over durability (the cluster is thrown away)
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "64MB",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
}


class PgUnavailable(RuntimeError):
    """No usable PostgreSQL server with PostGIS on this machine (the message says what to run)."""


@dataclass(frozen=True)
class PgServer:
    """One installed server major version: its binaries and the folder of its extensions."""

    major: int
    bindir: Path
    sharedir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def _major(bindir: Path) -> int:
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return 0
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else 0


def _candidates() -> list[tuple[Path, Path]]:
    """(bindir, sharedir) pairs: Debian's majors, newest first, then pg_config's folders."""
    out = []
    if DEBIAN_LIB.is_dir():
        for d in sorted(DEBIAN_LIB.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1, reverse=True):
            if d.name.isdigit():
                out.append((d / "bin", DEBIAN_SHARE / d.name))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            res = subprocess.run([pg_config, "--bindir", "--sharedir"], capture_output=True, text=True, timeout=30)
            bindir, sharedir = (Path(line.strip()) for line in res.stdout.splitlines()[:2])
            out.append((bindir, sharedir))
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return out


def find_server(candidates: list[tuple[Path, Path]] | None = None) -> PgServer:
    """The newest installed server whose binaries and ``postgis`` extension are both there.

    ``candidates`` (bindir, sharedir) pairs replace the places looked in (for tests). Raises
    :class:`PgUnavailable`, naming what was found and what to run, when there is none.
    """
    seen = []
    for bindir, sharedir in _candidates() if candidates is None else candidates:
        missing = [t for t in ("initdb", "pg_ctl", "postgres") if not os.access(bindir / t, os.X_OK)]
        if missing:
            seen.append(f"{bindir}: no {', '.join(missing)}")
            continue
        if not (sharedir / "extension" / "postgis.control").is_file():
            seen.append(f"{bindir}: no postgis extension ({sharedir / 'extension' / 'postgis.control'} missing)")
            continue
        return PgServer(major=_major(bindir), bindir=bindir, sharedir=sharedir)
    found = "; ".join(seen) or "no PostgreSQL server installed"
    raise PgUnavailable(f"no PostgreSQL server with the postgis extension found ({found}): {HINT}")


def _as_server_user(cmd: list[str], *, pdeathsig: bool = False) -> list[str]:
    """``cmd`` run as the user the server runs as (root → the ``postgres`` system user)."""
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups"]
    elif pdeathsig and shutil.which("setpriv"):
        prefix = ["setpriv"]
    if prefix and pdeathsig:
        # fast shutdown when the process that started it dies without stopping it
        prefix.append("--pdeathsig=SIGINT")
    return [*prefix, "--", *cmd] if prefix else cmd


def _server_user_ids() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` system user when running as root, else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PgUnavailable(
            f"running as root, the server must run as the unprivileged `{SYSTEM_USER}` system user, "
            f"which does not exist: {HINT}"
        ) from None
    if not shutil.which("setpriv"):
        raise PgUnavailable("running as root needs util-linux's setpriv to run the server as "
                            f"`{SYSTEM_USER}`: {HINT}")
    return pw.pw_uid, pw.pw_gid


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class PgCluster:
    """A running throw-away cluster. ``url`` is its first database, owned by the role ``user``
    (password ``password``, not a superuser) and with ``postgis``; :meth:`new_database` adds more."""

    server: PgServer
    root: Path
    port: int
    password: str
    user: str = USER
    dbname: str = DBNAME
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    start_seconds: float = float("nan")
    _count: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """``postgresql://`` URL of database ``dbname`` for the cluster's role, over TCP on 127.0.0.1."""
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def superuser_connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection (autocommit) through the cluster's own unix socket."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def new_database(self, postgis: bool = True, name: str | None = None) -> str:
        """Create an empty database owned by the cluster's role, with the ``postgis`` extension
        (``postgis=False``: without it, as a server a register must refuse); return its URL."""
        with self._lock:
            if name is None:
                self._count += 1
                name = f"{DBNAME}_{self._count}{'' if postgis else '_nopostgis'}"
            template = POSTGIS_TEMPLATE if postgis else "template1"
            with self.superuser_connect() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.user), sql.Identifier(template)))
        return self.url_for(name)

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (``-m immediate`` if that fails), then wait for the server."""
        if self.process is None:
            return
        for mode in ("fast", "immediate"):
            if self.process.poll() is not None:
                break
            subprocess.run(_as_server_user([self.server.tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode,
                                            "-w", "-t", "30"]),
                           cwd=self.root, capture_output=True, text=True, timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _run(cluster: PgCluster, cmd: list[str], what: str) -> None:
    res = subprocess.run(_as_server_user(cmd), cwd=cluster.root, capture_output=True, text=True, timeout=300)
    if res.returncode:
        raise RuntimeError(f"{what} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")


def _start_server(cluster: PgCluster, ready_timeout: float) -> None:
    """Start ``postgres`` on ``cluster.port`` and wait until it accepts connections."""
    cmd = [cluster.server.tool("postgres"), "-D", str(cluster.data_dir), "-p", str(cluster.port),
           "-k", str(cluster.socket_dir)]
    for key, value in SETTINGS.items():
        cmd += ["-c", f"{key}={value}"]
    with open(cluster.log_file, "ab") as log:
        cluster.process = subprocess.Popen(_as_server_user(cmd, pdeathsig=True), cwd=cluster.root,
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    end = time.monotonic() + ready_timeout
    while True:
        if cluster.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {cluster.process.returncode}:\n{_tail(cluster.log_file)}")
        try:
            with cluster.superuser_connect():
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > end:
                raise RuntimeError(f"postgres did not accept connections within {ready_timeout:.0f} s ({exc}):\n"
                                   f"{_tail(cluster.log_file)}") from None
            time.sleep(0.05)


@contextmanager
def throwaway_cluster(*, base_dir: Path | str | None = None, ready_timeout: float = 60.0) -> Iterator[PgCluster]:
    """Start a throw-away PostgreSQL + PostGIS cluster on a free 127.0.0.1 port; yield it.

    ``base_dir`` is where its temporary folder goes (default: the system's temporary folder; as
    root it must be reachable by the ``postgres`` user, so not pytest's ``tmp_path``, which is
    private to root). The server is stopped and the folder removed when the block exits, also on
    error and on Ctrl-C. Raises :class:`PgUnavailable` when the server or PostGIS is missing.
    """
    server = find_server()
    ids = _server_user_ids()
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="redline-pg-", dir=base_dir)).resolve()
    cluster = PgCluster(server=server, root=root, port=0, password=secrets.token_urlsafe(24))
    try:
        cluster.socket_dir.mkdir()
        if ids:
            for p in (root, cluster.socket_dir):
                os.chown(p, *ids)
        _run(cluster, [server.tool("initdb"), "-D", str(cluster.data_dir), "-U", SUPERUSER, "-E", "UTF8",
                       "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"], "initdb")
        for attempt in range(5):  # another process may take the free port before the server binds it
            cluster.port = free_port()
            try:
                _start_server(cluster, ready_timeout)
                break
            except RuntimeError:
                if attempt == 4 or "could not bind" not in _tail(cluster.log_file, 50).lower():
                    raise
        with cluster.superuser_connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(cluster.user), sql.Literal(cluster.password)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(POSTGIS_TEMPLATE)))
        with cluster.superuser_connect(POSTGIS_TEMPLATE) as conn:
            conn.execute("CREATE EXTENSION postgis")
        cluster.new_database(name=cluster.dbname)
        cluster.start_seconds = time.perf_counter() - t0
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def server_pids(data_dir: Path) -> list[int]:
    """Processes whose command line names ``data_dir`` (a server that outlived its cluster)."""
    out = []
    needle = str(data_dir).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    out.append(int(proc.name))
            except OSError:
                pass
    return out

