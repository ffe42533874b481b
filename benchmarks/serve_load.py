"""The review service under load (issue 23): many reviewers deciding while a scan merges.

Run with ``python benchmarks/serve_load.py [--alerts 10000] [--users 20] [--decisions 50]
[--changed 2000] [--rounds 1] [--think 0 1]`` (one run per think time).

1. A register of ``--alerts`` alerts in 30 zones of 6 counties, built by the real API
   (:func:`redline.register.merge_alerts` + :meth:`Register.commit_scan`), signed with a
   throwaway key; ``--users`` users added with :meth:`Register.add_user` (county reviewers,
   zone reviewers, specialists, acceptors; argon2id, ~0.2 s each).
2. A real ``python -m redline.cli serve`` (uvicorn, one process) on a free 127.0.0.1 port.
3. An asyncio client (httpx), one session per user, all at once: log in (the CSRF token of the
   login form), then ``--decisions`` times: open the queue page (a filter, sort or page
   variant), open an alert page (with that queue's query string), POST a decision with the
   page's CSRF token: the status ``new → under_review`` on the alert's first decision, a cause
   (annotate) on its second; every decision carries a unique note. Each user decides on alerts
   of their own scope that no other user touches, so no decision may be refused.
4. Meanwhile another process merges a scan into the same register: ``--changed`` alerts, 3/4 of
   them updated (a later ``last_observed``, more observations) and 1/4 new ones.
5. Afterwards: every decision the server answered 303 is in the history exactly once, by its
   user (matched by its note); ``Register.verify`` is clean; no 5xx.

Prints the totals and p50/p95/max latency per kind (queue page, alert page, decision) as a table.
:func:`run_load` is what ``tests/test_serve_load.py`` runs on a small register. Nothing leaves
127.0.0.1; every request has a timeout, the whole run a bounded number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import geopandas as gpd
import httpx
import numpy as np
import shapely

#: the counties (``admin_id``) of the synthetic register; zone ``Z<k>`` lies in county ``k % 6``
COUNTIES = tuple(f"5101{i:02d}" for i in range(1, 7))
N_ZONES = 30
PASSWORD = "load test passphrase"  # noqa: S105 - throwaway accounts of a throwaway register
#: request kinds timed, in the order of the table
KINDS = ("login", "queue", "alert", "decision")
#: queue variants the users cycle through: filters, sorts and pages
QUEUE_VARIANTS: tuple[dict[str, str], ...] = (
    {},
    {"status": "new"},
    {"sort": "area_m2", "order": "asc"},
    {"type": "clearing", "sort": "confidence"},
    {"page": "3"},
    {"since": "2023-03-01", "until": "2023-09-30", "sort": "alert_id", "order": "asc"},
    {"confidence": "high", "sort": "zone_id"},
)
REQUEST_TIMEOUT_S = 120.0
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
_COUNT = re.compile(r'data-status="(\w+)"[^>]*>[^<]*\(<span class="count">(\d+)</span>\)')


def zone_county(zone: int) -> str:
    """The county (``admin_id``) of zone number ``zone``."""
    return COUNTIES[zone % len(COUNTIES)]


def synthetic_alerts(indices: Sequence[int], *, scan_id: str, last_observed: str = "2023-12-31", n_observations: int = 3) -> gpd.GeoDataFrame:
    """Alerts number ``indices``: 80 m boxes on a 0.002° grid near 102° E, 29° N (EPSG:4326; one
    cell per index, so no two overlap), alert ``i`` in zone ``Z<i % 30>`` of county
    :func:`zone_county`, types, confidences and dates spread over 2023."""
    from redline.alerts import ALERT_COLUMNS

    types = ("clearing", "construction", "mining", "clearing", "other")
    rows = []
    for i in indices:
        x, y = 102.0 + (i % 200) * 0.002, 29.0 + (i // 200) * 0.002
        z = i % N_ZONES
        rows.append({c: None for c in ALERT_COLUMNS} | {
            "alert_id": None, "zone_id": f"Z{z:02d}", "zone_name": f"红线区{z:02d}", "admin_id": zone_county(z),
            "area_m2": 6400.0 + (i * 37) % 5000, "centroid_lon": round(x + 0.0004, 6), "centroid_lat": round(y + 0.0004, 6),
            "first_detected": f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}", "last_observed": last_observed,
            "confidence": ("low", "nominal", "high")[(i // 7) % 3], "disturbance_type": types[i % len(types)], "magnitude": 0.3,
            "n_observations": n_observations, "status": "new", "scan_ids": scan_id, "recheck": 0,
            "geometry": shapely.box(x, y, x + 0.0008, y + 0.0008)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def build_register(location: Path, n_alerts: int):
    """A register of ``n_alerts`` alerts merged by one scan (``load-1``) at ``location``."""
    from redline.register import Register, merge_alerts

    reg = Register(location, lock_timeout=60)
    merged, stats = merge_alerts(reg.alerts(), synthetic_alerts(range(n_alerts), scan_id="load-1"), "load-1")
    reg.commit_scan(merged, scan={"scan_id": "load-1", "name": "load", "n_items": 1, "new": stats.new, "updated": 0, "unchanged": 0})
    return reg


@dataclass(frozen=True)
class LoadUser:
    """One account of the load: name, role and scope (county / zone codes; empty = all)."""

    name: str
    role: str
    counties: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()

    def sees(self, admin_id: str, zone_id: str) -> bool:
        return (not self.counties or admin_id in self.counties) and (not self.zones or zone_id in self.zones)


def load_users(n: int) -> list[LoadUser]:
    """``n`` users: 3 in 5 county reviewers (one county each, in turn), 1 in 10 zone reviewers
    (three zones each), the rest specialists and acceptors (every county)."""
    users = []
    for u in range(n):
        k = u % 10
        if k < 6:
            users.append(LoadUser(f"reviewer{u:02d}", "reviewer", counties=(COUNTIES[u % len(COUNTIES)],)))
        elif k == 6:
            users.append(LoadUser(f"zonereviewer{u:02d}", "reviewer", zones=tuple(f"Z{(10 + 3 * (u // 10) + j) % N_ZONES:02d}" for j in range(3))))
        elif k < 9:
            users.append(LoadUser(f"specialist{u:02d}", "specialist"))
        else:
            users.append(LoadUser(f"acceptor{u:02d}", "acceptor"))
    return users


def add_users(reg, users: Sequence[LoadUser]) -> None:
    """Add ``users`` to the register (each a signed ``user`` entry by the admin key)."""
    for u in users:
        reg.add_user(u.name, role=u.role, password=PASSWORD, counties=u.counties, zones=u.zones)


def assign_alerts(alerts: gpd.GeoDataFrame, users: Sequence[LoadUser], per_user: int) -> dict[str, list[str]]:
    """Per user, ``per_user`` alert ids in their scope that no other user gets (zone reviewers
    choose first, then county reviewers, then the rest). Refuses (ValueError) a register too
    small for it."""
    free = sorted(zip(alerts["alert_id"], alerts["admin_id"].astype(str), alerts["zone_id"].astype(str)))
    taken: set[str] = set()
    out: dict[str, list[str]] = {}
    for u in sorted(users, key=lambda u: (0 if u.zones else 1 if u.counties else 2, u.name)):
        mine = [a for a, c, z in free if a not in taken and u.sees(c, z)][::-1][:per_user]  # the newest ids first
        if len(mine) < per_user:
            raise ValueError(f"only {len(mine)} free alerts in the scope of {u.name}; give more alerts or fewer decisions")
        taken.update(mine)
        out[u.name] = mine
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, s) process ``pid`` has used so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serve(out: Path, log_file: Path, *, start_timeout_s: float = 90) -> Iterator[tuple[str, int]]:
    """A real ``redline serve OUT`` (uvicorn) on a free 127.0.0.1 port; yields its URL and
    process id, stops it (SIGINT, then SIGKILL after 20 s) on leaving. Its output goes to
    ``log_file``."""
    port = _free_port()
    with open(log_file, "w") as log:
        # run in OUT's folder: ``-m`` puts the working folder first on the path, and the redline
        # served must be the one installed (or on $PYTHONPATH), not a checkout the caller stands in
        proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "serve", str(out), "--port", str(port), "--lang", "en"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=out.parent)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"redline serve exited {proc.returncode}: {log_file.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redline serve did not answer in {start_timeout_s:.0f} s: {log_file.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url, proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the scan that merges meanwhile (its own process) ------------------------------------------------
def scan_merge(location: str, n_alerts: int, changed: int, queue) -> None:
    """Merge scan ``load-2`` into the register: the last ``changed * 3 // 4`` alerts of the first
    scan seen again later (``last_observed`` 2024-02-29, 4 observations) and ``changed // 4``
    new alerts. Puts ``("scan", {updated, new, start, end})`` (times: ``time.time()``) or
    ``("error", text)`` on ``queue``."""
    try:
        from redline.register import Register, merge_alerts

        start = time.time()
        reg = Register(location, lock_timeout=120)
        n_new = changed // 4
        again = range(max(0, n_alerts - (changed - n_new)), n_alerts)
        found = synthetic_alerts([*again, *range(n_alerts, n_alerts + n_new)], scan_id="load-2", last_observed="2024-02-29", n_observations=4)
        merged, stats = merge_alerts(reg.alerts(), found, "load-2")
        reg.commit_scan(merged, scan={"scan_id": "load-2", "name": "load", "n_items": 2, "new": stats.new, "updated": stats.updated,
                                      "unchanged": stats.unchanged})
        queue.put(("scan", {"updated": stats.updated, "new": stats.new, "start": start, "end": time.time()}))
    except Exception as exc:  # noqa: BLE001 - reported to the caller, which fails on it
        queue.put(("error", repr(exc)))


# -- the client ---------------------------------------------------------------------------------------
@dataclass
class Decision:
    """One decision the client sent: who, on what, its unique note and the server's answer
    (HTTP status; 0: no answer)."""

    user: str
    alert_id: str
    action: str
    note: str
    status: int = 0


@dataclass
class LoadReport:
    """What a load run measured: latencies (ms) and answers (HTTP status; 0: no answer) per
    request kind, the decisions sent, the wall time of the decision phase (s), the scan's
    merge, and what the register holds afterwards."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    answers: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in KINDS})
    decisions: list[Decision] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = float("nan")  # CPU time the server used during the load (logins included)
    load_start: float = 0.0  # time.time() when the decisions began
    load_end: float = 0.0
    scan: dict = field(default_factory=dict)
    recorded: int = 0  # decisions answered 303 found in the history exactly once, by their user
    lost: list[str] = field(default_factory=list)  # 303-answered decisions not so found
    extra_rows: int = 0  # load history rows the client has no 303 for
    problems: list[str] = field(default_factory=list)  # Register.verify
    queue_counts: dict[str, int] = field(default_factory=dict)  # alerts per status on the queue page after the load (every county)
    register_counts: dict[str, int] = field(default_factory=dict)  # and in the register

    @property
    def server_errors(self) -> int:
        """Answers 5xx, or none at all, over every kind."""
        return sum(n for c in self.answers.values() for s, n in c.items() if s >= 500 or s == 0)

    def stats(self, kind: str) -> tuple[float, float, float]:
        """p50, p95 and max latency of ``kind`` (ms)."""
        ms = self.latencies_ms[kind]
        return (float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), max(ms)) if ms else (float("nan"),) * 3

    def table(self) -> str:
        """The report as plain text: one row per kind, then the totals."""
        lines = [f"{'kind':<10}{'requests':>9}  {'answers':<22}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"]
        for k in KINDS:
            p50, p95, mx = self.stats(k)
            answers = ", ".join(f"{s}×{n}" for s, n in sorted(self.answers[k].items()))
            lines.append(f"{k:<10}{len(self.latencies_ms[k]):>9}  {answers:<22}{p50:>9.1f}{p95:>9.1f}{mx:>9.0f}")
        ok = sum(d.status == 303 for d in self.decisions)
        lines.append(f"decisions sent {len(self.decisions)}, answered 303 {ok}, recorded in the history {self.recorded} "
                     f"(lost {len(self.lost)}, unexpected {self.extra_rows}); 5xx or no answer: {self.server_errors}")
        if self.scan:
            overlap = self.scan["start"] < self.load_end and self.scan["end"] > self.load_start
            lines.append(f"scan merge: {self.scan['updated']} updated + {self.scan['new']} new alerts in {self.scan['end'] - self.scan['start']:.1f} s, "
                         f"from {self.scan['start'] - self.load_start:+.1f} s to {self.scan['end'] - self.load_start:+.1f} s of the load "
                         f"({'during' if overlap else 'NOT during'} the decisions)")
        lines.append(f"wall time of the decisions {self.wall_s:.1f} s, the server's CPU time {self.server_cpu_s:.1f} s "
                     f"({1000 * self.server_cpu_s / max(1, sum(map(len, self.latencies_ms.values()))):.1f} ms a request)")
        lines.append(f"Register.verify: {'clean' if not self.problems else self.problems[:3]}; "
                     f"queue page after the load {'matches' if self.queue_counts == self.register_counts else 'DIFFERS from'} the register "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(self.register_counts.items()))})")
        return "\n".join(lines)


async def _timed(report: LoadReport, kind: str, call) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        res = await call
    except httpx.HTTPError:
        res = None
    report.latencies_ms[kind].append((time.perf_counter() - t0) * 1000)
    report.answers[kind][res.status_code if res is not None else 0] += 1
    return res


async def _one_user(url: str, user: LoadUser, number: int, alerts: list[str], n_decisions: int, report: LoadReport, start: asyncio.Event,
                    think_s: float = 0.0) -> None:
    """Log in, wait for everyone, then ``n_decisions`` × (queue page, alert page, decision);
    ``number`` shifts the user's turn through :data:`QUEUE_VARIANTS`. ``think_s``: the mean
    time (s) a user reads before the next request (uniform between half and one and a half
    times it; 0: none, every user sends the next request as soon as the last is answered)."""
    rng = random.Random(number)

    async def think() -> None:
        if think_s > 0:
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))

    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, follow_redirects=False) as c:
        form = await c.get("/login")
        res = await _timed(report, "login", c.post("/login", data={"username": user.name, "password": PASSWORD,
                                                                   "csrf": _CSRF.search(form.text).group(1), "next": "/"}))
        if res is None or res.status_code != 303:
            raise RuntimeError(f"{user.name}: login answered {res.status_code if res is not None else 'nothing'}")
        await start.wait()
        for k in range(n_decisions):
            params = dict(QUEUE_VARIANTS[(k + number) % len(QUEUE_VARIANTS)])
            if user.counties and k % 3 == 0:
                params["county"] = user.counties[0]
            qs = urlencode(params)
            await think()
            await _timed(report, "queue", c.get(f"/?{qs}"))
            aid = alerts[k // 2]
            await think()
            page = await _timed(report, "alert", c.get(f"/alerts/{aid}?{qs}"))
            m = _CSRF.search(page.text) if page is not None else None
            note = f"load {user.name} #{k}"
            action = "status" if k % 2 == 0 else "annotate"
            d = Decision(user=user.name, alert_id=aid, action=action, note=note)
            report.decisions.append(d)
            if m is None:
                continue
            data = {"csrf": m.group(1), "q": qs, "action": action, "note": note}
            data.update({"to_status": "under_review"} if action == "status" else {"cause": f"cause seen by {user.name}"})
            await think()
            res = await _timed(report, "decision", c.post(f"/alerts/{aid}", data=data))
            d.status = res.status_code if res is not None else 0


async def drive(url: str, users: Sequence[LoadUser], assignment: dict[str, list[str]], n_decisions: int, report: LoadReport,
                on_start=None, think_s: float = 0.0) -> None:
    """Every user at once (:func:`_one_user`); ``on_start()`` is called when all have logged in
    and the decisions begin."""
    start = asyncio.Event()
    tasks = [asyncio.create_task(_one_user(url, u, i, assignment[u.name], n_decisions, report, start, think_s)) for i, u in enumerate(users)]
    while len(report.latencies_ms["login"]) < len(users):
        done = [t for t in tasks if t.done() and t.exception() is not None]
        if done:
            raise done[0].exception()
        await asyncio.sleep(0.05)
    report.load_start = time.time()
    if on_start is not None:
        on_start()
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    report.wall_s = time.perf_counter() - t0
    report.load_end = time.time()


def check_register(reg, report: LoadReport) -> None:
    """Fill in what the register holds: each 303-answered decision once, by its user; verify."""
    h = reg.history()
    mine = h[h["note"].astype(str).str.startswith("load ")]
    by_note = mine.groupby("note")
    counts = by_note.size().to_dict()
    who = by_note["by"].agg(lambda s: set(s)).to_dict()
    ok = [d for d in report.decisions if d.status == 303]
    report.recorded = sum(1 for d in ok if counts.get(d.note) == 1 and who.get(d.note) == {d.user})
    report.lost = [d.note for d in ok if not (counts.get(d.note) == 1 and who.get(d.note) == {d.user})]
    report.extra_rows = int(len(mine) - sum(1 for d in ok if d.note in counts))
    report.problems = reg.verify().problems
    report.register_counts = {str(s): int(n) for s, n in reg.alerts()["status"].value_counts().items()}


async def queue_counts(url: str, user: LoadUser) -> dict[str, int]:
    """Alerts per status as the queue page shows them to ``user`` (non-zero counts)."""
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as c:
        form = await c.get("/login")
        await c.post("/login", data={"username": user.name, "password": PASSWORD, "csrf": _CSRF.search(form.text).group(1), "next": "/"})
        page = await c.get("/")
    return {s: int(n) for s, n in _COUNT.findall(page.text) if int(n)}


def run_load(workdir: Path, *, n_alerts: int, n_users: int = 20, n_decisions: int = 50, changed: int = 2000,
             scan_delay_s: float = 0.5, think_s: float = 0.0, log=print) -> LoadReport:
    """The whole run in ``workdir`` (the process's signing key must be set, ``$REDLINE_KEY``):
    the register, the users, the server, the load and the scan; then the checks. ``think_s``:
    see :func:`_one_user`."""
    from redline.register import Register

    out = Path(workdir) / "out"
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    reg = build_register(out / "register.gpkg", n_alerts)
    users = load_users(n_users)
    add_users(reg, users)
    assignment = assign_alerts(reg.alerts(), users, (n_decisions + 1) // 2)
    log(f"register of {n_alerts} alerts and {n_users} users built in {time.perf_counter() - t0:.1f} s")
    report = LoadReport()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    scanner = ctx.Process(target=scan_merge, args=(str(reg.location), n_alerts, changed, q))
    timer: list[asyncio.TimerHandle] = []

    def start_scan() -> None:
        timer.append(asyncio.get_running_loop().call_later(scan_delay_s, scanner.start))

    with serve(out, Path(workdir) / "server.log") as (url, pid):
        try:
            cpu = cpu_seconds(pid)
            asyncio.run(drive(url, users, assignment, n_decisions, report, on_start=start_scan if changed else None, think_s=think_s))
            report.server_cpu_s = cpu_seconds(pid) - cpu
            if changed:
                if not scanner.is_alive() and scanner.exitcode is None:  # the decisions ended before the delay
                    scanner.start()
                kind, value = q.get(timeout=600)
                if kind == "error":
                    raise RuntimeError(f"the scan's merge failed: {value}")
                report.scan = value
            everywhere = next(u for u in users if not (u.counties or u.zones))
            report.queue_counts = asyncio.run(queue_counts(url, everywhere))
        finally:
            if changed and scanner.pid is not None:
                scanner.join(timeout=60)
    check_register(Register(out / "register.gpkg"), report)
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--decisions", type=int, default=50, help="per user")
    ap.add_argument("--changed", type=int, default=2000, help="alerts the concurrent scan updates or adds (0: no scan)")
    ap.add_argument("--rounds", type=int, default=1, help="runs, each on a new register and server")
    ap.add_argument("--think", type=float, nargs="+", default=[0.0, 1.0],
                    help="mean seconds a user reads before each request (0: none); one run per value")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _bench import machine  # also the benchmarks' throwaway signing key

    for r in range(args.rounds):
        for think in args.think:
            print(machine())
            with tempfile.TemporaryDirectory(prefix="redline-serve-load-") as d:
                report = run_load(Path(d), n_alerts=args.alerts, n_users=args.users, n_decisions=args.decisions, changed=args.changed,
                                  think_s=think)
            print(f"round {r + 1}: {args.users} users × {args.decisions} decisions on {args.alerts} alerts, a scan changing {args.changed} "
                  f"meanwhile, think time {think:g} s (server: redline serve, 1 uvicorn process)")
            print(report.table())
            print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
