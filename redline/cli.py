"""The ``redline`` command line (docs/architecture.md §4.1). The only place that configures
logging and prints; every :class:`~redline.errors.RedlineInputError` becomes one line on
stderr, exit 2, and every usage error (an unknown command or option, a missing argument, a
value an option does not take) one line and the usage line, exit 2."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from redline import outputs
from redline.errors import RedlineError, RedlineInputError, ScanFault
from redline.vocabulary import ACTIVITY_CODES, CONFIDENCE_LEVELS, DISTURBANCE_TYPES, REVIEW_STEPS, STATUSES, USER_ROLES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Remote-sensing supervision of ecological protection red-line zones.")
alerts_app = typer.Typer(no_args_is_help=True, help="List and review alerts in the register.")
stac_app = typer.Typer(no_args_is_help=True, help="The embedded STAC API, and scene files turned into STAC Items for it.")
keys_app = typer.Typer(no_args_is_help=True, help="This installation's signing key, and the keys that may sign a register.")
register_app = typer.Typer(no_args_is_help=True, help="The alert register as a whole: copy it between a GeoPackage and PostGIS.")
users_app = typer.Typer(no_args_is_help=True, help="The register's users (review service accounts): add, list, change, disable; their teams; the review policy's roles.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(stac_app, name="stac")
app.add_typer(keys_app, name="keys")
app.add_typer(register_app, name="register")
app.add_typer(users_app, name="users")

out_console = Console(soft_wrap=True)  # no hard wraps in piped output (cron logs, scripts)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
#: The environment variable `redline alerts review` reads a user's password from (after --password-stdin).
PASSWORD_ENV = "REDLINE_PASSWORD"
#: click's exceptions as typer raises them: typer ≥ 0.24 ships its own copy of click
#: (``typer._click``), older typer raises click's own; the module of typer's BadParameter is the one.
_click_errors = sys.modules[typer.BadParameter.__module__]


# --- option values, checked as they are parsed (a bad one is a usage error: one line + usage) --
def _choice(values: Iterable[str], what: str) -> Callable[[Optional[str]], Optional[str]]:
    """A callback that takes one of ``values`` (the vocabulary's codes) and refuses any other,
    naming them all."""
    allowed = tuple(values)

    def check(value: Optional[str]) -> Optional[str]:
        if value is None or value in allowed:
            return value
        raise typer.BadParameter(f"{value!r} is not {what}; use one of {', '.join(allowed)}")

    return check


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(value: Optional[str]) -> Optional[str]:
    """A calendar date written YYYY-MM-DD (ISO 8601 extended format), as that text; anything
    else (``yesterday``, ``31/12/2023``, ``2023-13-01``) is refused instead of being compared as text."""
    if value is None:
        return None
    if _ISO_DATE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r} is not a date ({exc}); write YYYY-MM-DD, e.g. 2023-12-31") from None
    raise typer.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2023-12-31")


def _name(value: Optional[str]) -> Optional[str]:
    """A name the register records (``--by``): the one rule of :func:`redline.register.users.check_name`."""
    if value is None:
        return None
    from redline.errors import RegisterError
    from redline.register.users import check_name

    try:
        return check_name(value, "name")
    except RegisterError as exc:
        raise typer.BadParameter(str(exc)) from None


def _dates_in_order(since: Optional[str], until: Optional[str]) -> None:
    if since is not None and until is not None and since > until:
        raise RedlineInputError(f"--since {since} is after --until {until}: no alert can match; swap them")


def _setup_logging(verbose: bool) -> None:
    """Log records as one ``LEVEL logger: message`` line each on stderr (WARNING and up; INFO with
    ``verbose``): set up for every command, the level raised by those with ``--verbose``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")  # once: a no-op when set up
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
    for noisy in ("distributed", "rasterio", "urllib3", "fiona", "pyogrio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _version(value: bool) -> None:
    """``redline --version``: redline, the libraries that shape results, GDAL, Python and the
    figures' fonts (the same record as ``manifest.json`` ``libraries``)."""
    if not value:
        return
    from redline.provenance import library_versions

    logging.getLogger("maps._fonts").setLevel(logging.ERROR)  # the missing font is a line of the listing, not a warning
    versions = library_versions()
    out_console.print(f"redline {versions.pop('redline')}", markup=False)
    for name, version in versions.items():
        out_console.print(f"  {name}: {version}", markup=False)
    raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the versions of redline, its libraries and the figures' fonts, then exit")) -> None:
    """Remote-sensing supervision of ecological protection red-line zones."""
    _setup_logging(False)  # every command's warnings as one line each (the figures' font: one line, not one per glyph)


def _summary(result) -> None:
    a = result.alerts
    if result.up_to_date:
        out_console.print(f"{result.out_dir}: up to date, no new scenes since its last scan ({result.n_items} scenes, {len(a)} alert(s)); nothing redone")
    short = {"construction": "constr.", "water_loss": "water"}  # column heads that fit a terminal
    types = [(t, short.get(t, t)) for t in DISTURBANCE_TYPES]
    table = Table(title=f"alerts of scan {result.scan_id} per zone and type")
    table.add_column("zone", no_wrap=True)
    for _, head in types:
        table.add_column(head, justify="right")
    table.add_column("total", justify="right")
    table.add_column("seen", justify="right")
    table.add_column("judged", justify="right")
    zs = result.zone_stats
    for row in zs.itertuples():
        unsup = float(getattr(row, "unsupported_fraction", float("nan")))
        judged = f"{1 - unsup:.0%}" if math.isfinite(unsup) else "–"
        table.add_row(row.zone_id, *[str(getattr(row, f"alerts_{t}")) for t, _ in types], str(row.alerts_total), f"{row.valid_obs_fraction:.0%}", judged)
    out_console.print(table)
    out_console.print(f"{len(a)} alert(s) from {result.n_items} scenes in {result.seconds:.0f} s; 'seen' = share of the zone observed clear in the monitor window; "
                      "'judged' = share of its clear monitor looks the baseline could judge (seasonal support)")
    if "unsupported_months" in zs:
        from redline.detect import SEASON_SUPPORT_DAYS

        months = zs["unsupported_months"].fillna("").astype(str)
        for months_text, group in zs[months != ""].groupby(months[months != ""]):
            names = ", ".join(group["zone_id"].astype(str).head(5)) + (f" and {len(group) - 5} more" if len(group) > 5 else "")
            out_console.print(f"baseline cannot judge months {months_text} in {len(group)} zone(s) ({names}): no clear baseline look on both sides "
                              f"of those days of year within {SEASON_SUPPORT_DAYS:.0f} days; only strong looks can raise alerts there (README: Baseline support)", markup=False)
    for note in getattr(result, "notes", []):  # bands the scenes lack, scenes scanned without a mask (redline.bands)
        out_console.print(note, markup=False)
    out_console.print(f"register: {result.register}")
    if result.map_html is not None:
        out_console.print(f"map: {result.map_html.resolve()}")
    if getattr(result, "timings", None):  # the manifest's per-stage wall times (redline.run.timings)
        from redline.run.timings import Timings

        out_console.print(Timings.line_of(result.timings), markup=False, soft_wrap=True)  # one line, greppable


_MEMORY_LIMIT_HELP = ("peak memory to size the tiles for, e.g. 1GB, 1.5GiB, 800MB, 2e9 (overrides resources.memory_limit; "
                      "default half the available memory)")


def _memory_override(memory_limit: str | None) -> dict:
    """The config override of ``--memory-limit`` (checked here, so that the error names the option)."""
    if memory_limit is None:
        return {}
    from redline.budget import parse_memory_limit

    parse_memory_limit(memory_limit, key="--memory-limit")
    return {"resources": {"memory_limit": memory_limit}}


@app.command()
def scan(
    config: Path = typer.Argument(..., help="scan.yml"),
    out: Path = typer.Option(Path("out"), "--out", help="output folder"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://host:8786 of an existing Dask scheduler"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    lock_timeout: float = typer.Option(30.0, "--lock-timeout", min=0, help="seconds (0 or more) to wait for another scan holding the register"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="progress bar on stderr (default: when it is a terminal)"),
    io_concurrency: Optional[int] = typer.Option(None, "--io-concurrency", help="remote range requests in flight per worker (overrides io.concurrency; 1-256)"),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help=_MEMORY_LIMIT_HELP),
    full: bool = typer.Option(False, "--full", help="read and fit every scene, even when the state of the last scan in --out would let this one read only the new ones"),
) -> None:
    """Run a scan: search, load, detect, register, assess, map."""
    from redline.config import load_config

    _setup_logging(verbose)
    cfg = load_config(config, overrides={**({"io": {"concurrency": io_concurrency}} if io_concurrency is not None else {}), **_memory_override(memory_limit)} or None)
    text = config.read_text(encoding="utf-8")
    from redline.scan import run_scan  # after the config is checked: a bad one is one line in ~0.3 s, not after 2.4 s of imports

    _setup_logging(verbose)  # again: importing distributed set its loggers' levels
    result = run_scan(cfg, out, scheduler=scheduler, config_text=text, lock_timeout=lock_timeout, progress=progress, full=full)
    _summary(result)
    if result.failures:
        raise ScanFault(result.failures)


@app.command()
def assess(
    config: Path = typer.Argument(..., help="scan.yml"),
    out: Path = typer.Option(Path("out"), "--out", help="output folder"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://host:8786 of an existing Dask scheduler"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help=_MEMORY_LIMIT_HELP),
) -> None:
    """Assess every zone and county (NDVI, FVC, RSEI, trends) without running detection."""
    from redline.config import load_config

    _setup_logging(verbose)
    cfg = load_config(config, overrides=_memory_override(memory_limit))
    from redline.run import run_assessment  # after the config is checked, as in scan

    _setup_logging(verbose)  # again: importing distributed set its loggers' levels
    zs, adm = run_assessment(cfg, out, scheduler=scheduler, config_text=config.read_text(encoding="utf-8"))
    table = Table(title=f"ecological status of {cfg.name}: RSEI baseline → monitor")
    for c in ("zone", "RSEI base", "RSEI mon", "change", "grade", "NDVI trend"):
        table.add_column(c, no_wrap=True)
    for r in zs.itertuples():
        table.add_row(r.zone_id, f"{r.rsei_baseline:.3f}", f"{r.rsei_monitor:.3f}", f"{r.rsei_change:+.3f}", f"{r.rsei_grade_monitor}", str(r.ndvi_trend))
    out_console.print(table)
    out_console.print(f"{zs['rsei_variant'].iloc[0] if len(zs) else ''}")
    out_console.print(f"{len(zs)} zone(s), {len(adm)} admin unit(s) → {(out / 'zone_stats.csv').resolve()}, {(out / 'assessment.gpkg').resolve()}")


def _demo_scenes_dir(scenes: Optional[Path]) -> Path:
    if scenes is not None:
        return scenes
    root = Path(os.environ.get("REDLINE_CACHE_DIR", Path.home() / ".cache" / "redline"))
    return root / "demo-scenes"


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="output folder"),
    scenes: Optional[Path] = typer.Option(None, "--scenes", help="where the bundled demo scenes are built and cached (default ~/.cache/redline/demo-scenes)"),
    preset: str = typer.Option("demo", "--preset", help="demo | small", callback=_choice(("demo", "small"), "a demo preset")),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve the bundled demo scenes on an embedded STAC API and scan them."""
    from pipelines import serve_stac
    from redline.config import load_config
    from redline.demo import generate_demo
    from redline.scan import run_scan

    from redline.register.keys import create_key, default_key_path

    _setup_logging(verbose)
    if problem := outputs.out_folder_problem(out):  # before the scenes are built
        raise RedlineInputError(problem)
    if not default_key_path().exists():  # the demo signs its register like any scan: a first run makes the key
        k = create_key()
        out_console.print(f"created signing key {k.key_id} at {k.path} (mode 600; `redline keys show`)", markup=False)
    build = generate_demo(_demo_scenes_dir(scenes) / preset, preset=preset)
    with serve_stac(build.root) as url:
        out_console.print(f"embedded STAC API on {url} serving {build.n_scenes} scenes")
        cfg = load_config(build.config, overrides={"stac": {"url": url}, "register": str((out / outputs.REGISTER_GPKG).resolve())})
        result = run_scan(cfg, out, config_text=build.config.read_text(encoding="utf-8"))
        _summary(result)
        _demo_service(out)
        if result.failures:
            raise ScanFault(result.failures)


#: the demo register's first account (an admin: it adds the others with `redline users add`)
DEMO_ADMIN = "admin"


def _program() -> str:
    """How this command was called, for a command line to print: ``.venv/bin/redline`` when the
    executable lies under the working folder (``make demo``), else ``redline``."""
    prog = Path(sys.argv[0])
    if prog.name != "redline":
        return "redline"
    try:
        return str(prog.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return "redline"


def _demo_service(out: Path) -> None:
    """Print the one command that serves the demo's output. The first time, make the demo
    register's admin account with a random password (``secrets``, 16 characters) and print it
    once: it is stored only as its argon2id hash."""
    import secrets

    from redline.register import Register

    reg = Register(out / outputs.REGISTER_GPKG)
    command = f"{_program()} serve {out}"
    if reg.has_users():
        out_console.print(f"review service: {command}   → http://127.0.0.1:8000 (log in as a user of `{_program()} users list --out {out}`)",
                          markup=False)
        return
    password = secrets.token_urlsafe(12)
    reg.add_user(DEMO_ADMIN, role="admin", password=password)
    out_console.print(f"review service: {command}   → http://127.0.0.1:8000\n"
                      f"  log in as {DEMO_ADMIN}, password {password}  (shown this once; "
                      f"change it with `{_program()} users set {DEMO_ADMIN} --password --out {out}`)", markup=False)


@app.command()
def validate(config: Path = typer.Argument(..., help="scan.yml")) -> None:
    """Check the config, the zones and the STAC API; scan nothing."""
    from pipelines import open_client
    from redline.assess import ei
    from redline.config import load_config
    from redline.run import read_areas

    cfg = load_config(config)
    zones, _ = read_areas(cfg)
    ei.check_inputs(cfg.assess)
    if cfg.stac.url:
        open_client(cfg.stac.url, timeout=cfg.stac.timeout_s)
    out_console.print(f"{config}: ok ({len(zones)} zones, STAC {'reachable' if cfg.stac.url else 'not set'})")


def _open_register(register: Optional[str], out: Optional[Path], lock_timeout: float = 30.0):
    """The register of ``--register``, else of the scan folder ``--out``, else of the working
    folder when it is a scan's output folder, else of ``out`` (:func:`redline.outputs.find_register`)."""
    from redline.register import Register

    from redline.provenance import find_register

    location = find_register(out, register)
    if not outputs.is_register_url(location) and not Path(location).exists():
        raise RedlineInputError(f"{location}: no register there; give --register, or --out of a finished scan, or run the command in a scan's output folder")
    return Register(location, lock_timeout=lock_timeout)


_STATUS_CHOICE = _choice(STATUSES, "a status")
_LOCK_TIMEOUT_HELP = "seconds (0 or more) to wait for another writer's transaction (never a whole scan)"
_BY_HELP = "reviewer's name: at most 64 printable characters without spaces or commas (a user's name on a register with users)"
_FILTERS = dict(
    status=typer.Option(None, "--status", help=" | ".join(STATUSES), callback=_STATUS_CHOICE),
    zone=typer.Option(None, "--zone", help="zone id"),
    admin=typer.Option(None, "--admin", help="admin unit (county) code"),
    dtype=typer.Option(None, "--type", help=" | ".join(DISTURBANCE_TYPES), callback=_choice(DISTURBANCE_TYPES, "a disturbance type")),
    confidence=typer.Option(None, "--confidence", help=" | ".join(CONFIDENCE_LEVELS), callback=_choice(CONFIDENCE_LEVELS, "a confidence level")),
    since=typer.Option(None, "--since", help="first detected on or after YYYY-MM-DD", callback=_date),
    until=typer.Option(None, "--until", help="first detected on or before YYYY-MM-DD", callback=_date),
)


@alerts_app.command("list")
def alerts_list(
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL (default OUT/register.gpkg)"),
    out: Optional[Path] = typer.Option(None, "--out", help="scan output folder holding register.gpkg"),
    status: Optional[str] = _FILTERS["status"],
    zone: Optional[str] = _FILTERS["zone"],
    admin: Optional[str] = _FILTERS["admin"],
    dtype: Optional[str] = _FILTERS["dtype"],
    confidence: Optional[str] = _FILTERS["confidence"],
    since: Optional[str] = _FILTERS["since"],
    until: Optional[str] = _FILTERS["until"],
    assigned: Optional[str] = typer.Option(None, "--assigned", help="only alerts assigned to this user (or to an enabled team of theirs, in their "
                                                                     "scope: their 'assigned to me'), or to this team"),
    fmt: str = typer.Option("table", "--format", help="table | geojson | csv", callback=_choice(("table", "geojson", "csv"), "a list format")),
    wide: bool = typer.Option(False, "--wide", help="one line per alert, however wide (default: the table fits the terminal, long values wrap)"),
) -> None:
    """List alerts in the register, filtered (default: the register of the scan folder you are in)."""
    from redline.register import filter_alerts

    _dates_in_order(since, until)
    reg = _open_register(register, out)
    a = filter_alerts(reg.alerts(), status=status, zone=zone, admin=admin, disturbance_type=dtype,
                      confidence=confidence, since=since, until=until)
    held = reg.assignments() if assigned is None else reg.assigned_to(assigned)
    a = a.assign(assigned_to=a["alert_id"].map(held))
    if assigned is not None:
        a = a[a["alert_id"].isin(list(held))]
    teams = {t.name for t in reg.teams()}
    if fmt == "geojson":
        from redline.geojson import to_geojson

        sys.stdout.write(to_geojson(a, id_column="alert_id") + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(a.drop(columns="geometry").to_csv(index=False))
        return
    wide = wide or not out_console.is_terminal  # piped (grep, less, a log): one line per alert
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    # an alert id is never cut: its column is as wide as the longest id; on a narrow terminal the
    # other values wrap inside their cells, whole (--wide: one line per alert, however wide)
    table.add_column("alert_id", no_wrap=True, min_width=max([len("alert_id"), *map(len, a["alert_id"])]))
    for c in ("zone_id", "admin_id", "disturbance_type", "first_detected", "area_m2", "confidence", "status", "assigned_to"):
        table.add_column(c, overflow="fold", no_wrap=wide, justify="right" if c == "area_m2" else "left")
    for r in a.itertuples():
        flag = " (recheck)" if getattr(r, "recheck", 0) else ""
        table.add_row(r.alert_id, r.zone_id, str(r.admin_id), r.disturbance_type, r.first_detected, f"{r.area_m2:.0f}", r.confidence, r.status + flag,
                      (r.assigned_to + (" (team)" if r.assigned_to in teams else "")) if isinstance(r.assigned_to, str) else "", style=None)
    (Console(soft_wrap=True, width=100_000) if wide else out_console).print(table)
    out_console.print(f"{len(a)} alert(s)")


@alerts_app.command("show")
def alerts_show(
    alert_id: str = typer.Argument(...),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL"),
    out: Optional[Path] = typer.Option(None, "--out"),
) -> None:
    """Show one alert and its review history."""
    reg = _open_register(register, out)
    a = reg.alerts()
    hit = a[a["alert_id"] == alert_id]
    if hit.empty:
        raise RedlineInputError(f"{reg.store.describe()}: no alert '{alert_id}'; list them with `redline alerts list`")
    row = hit.iloc[0]
    for col in a.columns:
        if col != "geometry":
            out_console.print(f"{col:18s} {row[col]}", markup=False)
    holder = reg.assignments().get(alert_id, "")
    out_console.print(f"{'assigned_to':18s} {holder}{' (team)' if holder and reg.team(holder) is not None else ''}", markup=False)
    hist = reg.history(alert_id)
    out_console.print(f"history ({len(hist)} step(s)):")
    for h in hist.itertuples():
        out_console.print(f"  {h.time}  {h.by}: {h.from_status} → {h.to_status}  {h.note or ''}", markup=False)


@alerts_app.command("export")
def alerts_export(
    dest: Path = typer.Option(..., "--to", help="file to write"),
    fmt: str = typer.Option("geojson", "--format", help="gpx | kml | geojson | csv; with --ledger: csv | xlsx"),
    lang: str = typer.Option("en", "--lang", help="en | zh (CSV/XLSX headers and values)", callback=_choice(("en", "zh"), "a language")),
    ledger: bool = typer.Option(False, "--ledger", help="the full 台账: one row per alert with classes, review steps, rectification"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL"),
    out: Optional[Path] = typer.Option(None, "--out"),
    status: Optional[str] = _FILTERS["status"],
    zone: Optional[str] = _FILTERS["zone"],
    admin: Optional[str] = _FILTERS["admin"],
    dtype: Optional[str] = _FILTERS["dtype"],
    confidence: Optional[str] = _FILTERS["confidence"],
    since: Optional[str] = _FILTERS["since"],
    until: Optional[str] = _FILTERS["until"],
) -> None:
    """Export alerts for field teams (GPX/KML waypoints and outlines, GeoJSON, ledger CSV/XLSX)."""
    from redline.register.export import FORMATS, LEDGER_FORMATS, export_alerts
    from redline.register import filter_alerts

    formats = LEDGER_FORMATS if ledger else FORMATS
    if fmt not in formats:
        raise RedlineInputError(f"--format {fmt!r} is not supported{' with --ledger' if ledger else ''}; use one of {', '.join(formats)}")
    _dates_in_order(since, until)
    reg = _open_register(register, out)
    a = filter_alerts(reg.alerts(), status=status, zone=zone, admin=admin, disturbance_type=dtype,
                      confidence=confidence, since=since, until=until)
    if ledger:
        _export_ledger(reg, a, dest, fmt, lang, out)
    else:
        export_alerts(a, dest, fmt, lang=lang)
    out_console.print(f"{len(a)} alert(s) → {dest}")


def _export_ledger(reg, alerts, dest: Path, fmt: str, lang: str, out: Optional[Path]) -> None:
    """The ledger, with zone tiers and county names from the scan folder's zones.geojson /
    admin_units.geojson (``--out``, else the register's folder) when they are there."""
    from redline.register.export import ledger_context, ledger_table, write_ledger

    zones, admin = ledger_context(out or (reg.path.parent if reg.path is not None else Path(".")))
    write_ledger(ledger_table(alerts, reg.history(), lang=lang, zones=zones, admin=admin), dest, fmt)


@alerts_app.command("review")
def alerts_review(
    alert_id: str = typer.Argument(...),
    by: str = typer.Option(..., "--by", help=_BY_HELP, callback=_name),
    status: Optional[str] = typer.Option(None, "--status", help=f"new status: {' | '.join(STATUSES)}", callback=_STATUS_CHOICE),
    step: Optional[str] = typer.Option(None, "--step", help="review step done: " + " | ".join(f"{k} ({zh})" for k, (zh, _) in REVIEW_STEPS.items())),
    result: Optional[str] = typer.Option(None, "--result", help="result of --step: pass (default) | fail"),
    activity_class: Optional[str] = typer.Option(None, "--class", help=f"human-activity class: {' | '.join(ACTIVITY_CODES)}"),
    cause: Optional[str] = typer.Option(None, "--cause", help="cause found (free text)"),
    legality: Optional[str] = typer.Option(None, "--legality", help="legality note, e.g. a permit number (free text)"),
    note: Optional[str] = typer.Option(None, "--note"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL"),
    out: Optional[Path] = typer.Option(None, "--out"),
    lock_timeout: float = typer.Option(30.0, "--lock-timeout", min=0, help=_LOCK_TIMEOUT_HELP),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=f"read the password of --by from one line of stdin (else ${PASSWORD_ENV}, else a prompt)"),
) -> None:
    """Record a review decision, step, activity class or finding (one signed, hash-chained history entry).

    On a register with users, --by names a user who authenticates with their password
    (--password-stdin, the environment variable REDLINE_PASSWORD, or a prompt) and whose role
    and scope allow the decision; a register without users records any name (single-user mode)."""
    reg = _open_register(register, out, lock_timeout)
    if reg.has_users():
        by = reg.authenticate(by, _read_password(password_stdin, confirm=False, env=True, prompt=f"password of {by}: ")).name
    row = reg.review(alert_id, to_status=status, by=by, note=note, step=step, result=result,
                     activity_class=activity_class, cause=cause, legality=legality)
    what = [f"{row['from_status']} → {row['to_status']}"]
    what += [f"{k} {row[k]}" for k in ("step", "result", "activity_class") if row.get(k)]
    out_console.print(f"{alert_id}: {', '.join(what)} by {row['by']} ({row['time']})", markup=False)


@alerts_app.command("assign")
def alerts_assign(
    alert_ids: list[str] = typer.Argument(None, help="alert ids (none: every alert the filters select)"),
    to: Optional[str] = typer.Option(None, "--to", help="the user or team the alerts go to", callback=_name),
    unassign: bool = typer.Option(False, "--unassign", help="take the assignment back instead"),
    by: str = typer.Option(..., "--by", help="the assigning user (a specialist or admin by default)", callback=_name),
    status: Optional[str] = _FILTERS["status"],
    zone: Optional[str] = _FILTERS["zone"],
    admin: Optional[str] = _FILTERS["admin"],
    note: Optional[str] = typer.Option(None, "--note"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL"),
    out: Optional[Path] = typer.Option(None, "--out"),
    lock_timeout: float = typer.Option(30.0, "--lock-timeout", min=0, help=_LOCK_TIMEOUT_HELP),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=f"read the password of --by from one line of stdin (else ${PASSWORD_ENV}, else a prompt)"),
) -> None:
    """Assign alerts to a user or a team (one, several, or all a zone/county/status filter
    selects): one signed `assign` entry per alert, in one transaction. --by authenticates as in
    `alerts review`."""
    from redline.register import filter_alerts

    if (to is None) == (not unassign):
        raise RedlineInputError("give --to NAME (assign) or --unassign (take back), one of them")
    if alert_ids and any(v is not None for v in (status, zone, admin)):
        raise RedlineInputError("give alert ids or filters (--status/--zone/--admin), not both")
    reg = _open_register(register, out, lock_timeout)
    if not alert_ids:
        if all(v is None for v in (status, zone, admin)):
            raise RedlineInputError("give alert ids, or a filter (--zone, --admin, --status) selecting the alerts to assign")
        alert_ids = list(filter_alerts(reg.alerts(), status=status, zone=zone, admin=admin)["alert_id"])
        if not alert_ids:
            raise RedlineInputError(f"{reg.store.describe()}: no alert matches the filters; nothing assigned")
    if reg.has_users():
        by = reg.authenticate(by, _read_password(password_stdin, confirm=False, env=True, prompt=f"password of {by}: ")).name
    rows = reg.assign(alert_ids, to=None if unassign else to, by=by, note=note)
    what = ("assigned to team " if _payload(rows[0]).get("team") else "assigned to ") + str(to) if not unassign else "unassigned"
    out_console.print(f"{len(rows)} alert(s) {what} by {by} (entries seq {rows[0]['seq']}–{rows[-1]['seq']})", markup=False)


@app.command()
def diff(
    out_a: Path = typer.Argument(..., help="output folder of the earlier scan"),
    out_b: Path = typer.Argument(..., help="output folder of the later scan (same config)"),
    fmt: str = typer.Option("table", "--format", help="table | json", callback=_choice(("table", "json"), "a diff format")),
) -> None:
    """Alerts added, withdrawn and changed between two scans, with the items, processing
    baselines and parameters each used."""
    import json

    from redline.register.diff import diff_scans

    d = diff_scans(out_a, out_b)
    if fmt == "json":
        sys.stdout.write(json.dumps(d.as_dict(), ensure_ascii=False, indent=1, default=str) + "\n")
        return
    out_console.print(f"alerts: {d.scan_ids[0]} ({out_a}) → {d.scan_ids[1]} ({out_b})", markup=False)
    for x in d.added:  # plain lines, one per alert: easy to grep and to paste into a report
        out_console.print(f"added     {x['alert_id']}  zone {x['zone_id']}  {x['first_detected']} {x['disturbance_type']} {x['area_m2']:.0f} m²", markup=False)
    for x in d.withdrawn:
        out_console.print(f"withdrawn {x['alert_id']}  zone {x['zone_id']}  {x['first_detected']} {x['disturbance_type']} {x['area_m2']:.0f} m²", markup=False)
    for x in d.changed:
        what = "; ".join(f"{k}: {v[0]} → {v[1]}" for k, v in x["changes"].items())
        ids = x["alert_id_a"] if x["alert_id_a"] == x["alert_id_b"] else f"{x['alert_id_a']} → {x['alert_id_b']}"
        out_console.print(f"changed {ids}  zone {x['zone_id']}  {what}", markup=False)
    out_console.print(f"{len(d.added)} added, {len(d.withdrawn)} withdrawn, {len(d.changed)} changed, {d.unchanged} unchanged")
    out_console.print(f"items: {d.n_items[0]} → {d.n_items[1]}; only in A: {', '.join(d.items_only_a) or 'none'}; only in B: {', '.join(d.items_only_b) or 'none'}", markup=False)
    out_console.print(f"processing baselines: A {d.baselines['a']}, B {d.baselines['b']}" + (f"; reprocessed: {len(d.baseline_changed)} item(s)" if d.baseline_changed else ""), markup=False)
    for p in d.parameters:
        out_console.print(f"parameter {p['key']}: {p['a']} → {p['b']}", markup=False)


@app.command("map")
def map_cmd(
    out: Path = typer.Argument(..., help="a finished scan's output folder"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL (default OUT/register.gpkg)"),
    pdf: bool = typer.Option(False, "--pdf", help="also print report.pdf with the installed chromium"),
    online: bool = typer.Option(True, "--online-basemaps/--no-online-basemaps", help="OpenStreetMap as an optional layer (off when the page opens)"),
    tianditu_key: Optional[str] = typer.Option(None, "--tianditu-key", envvar="TIANDITU_KEY", help="adds Tianditu imagery + labels as optional layers"),
    zone_figures: str = typer.Option("changed", "--zone-figures", callback=_choice(("changed", "all", "none"), "a zone-figures choice"),
                                     help="zone figures drawn: changed (alerts or a changed RSEI grade), all, none"),
) -> None:
    """Re-render the map, figures and report from a finished scan and the register (and its STAC catalogue)."""
    import maps

    from redline.provenance import MANIFEST, find_register, read_manifest, record_rerender
    from redline.run.catalog import write_catalog

    if not (out / outputs.ZONES_GEOJSON).exists():
        raise RedlineInputError(f"{out}: no zones.geojson; give the output folder of a finished scan")
    if tianditu_key is not None and not tianditu_key.isalnum():
        raise RedlineInputError(f"--tianditu-key {tianditu_key!r}: expected letters and digits only (the tk of a Tianditu key)")
    reg = find_register(out, register)
    have_register = isinstance(reg, str) or reg.exists()  # a URL, or a file that is there
    key = None
    if (out / MANIFEST).exists():  # the manifest is signed again: no key, nothing rendered
        from redline.register.keys import load_key

        key = load_key()
    files = maps.render_outputs(out, register=reg if have_register else None, pdf=pdf, online_basemaps=online, tianditu_key=tianditu_key,
                                zone_figures=zone_figures)
    if key is not None:
        from redline.register import Register

        r = Register(reg) if have_register else None
        record_rerender(out, files, f"redline map (register {r.store.describe() if r else reg})", key=key, head=r.head() if r else None)
        if read_manifest(out).get("scan_id"):  # a scan's folder: its catalogue lists the new files and checksums
            write_catalog(out, key=key)
    out_console.print(f"map: {files[0].resolve()}")
    report = out / outputs.REPORT_HTML
    if report in files:
        out_console.print(f"report: {report.resolve()}")


@app.command()
def verify(
    out: Path = typer.Argument(..., help="a finished scan's output folder"),
    register: Optional[str] = typer.Option(None, "--register", help="check this register (file or postgresql:// URL) instead of the one the manifest names"),
    head: list[str] = typer.Option([], "--head", help="a chain head (row hash) published earlier: it must still be in the register's history"),
    photos: Optional[Path] = typer.Option(None, "--photos", help="the field photos' folder (default: REGISTER-photos next to a GeoPackage register)"),
) -> None:
    """Check the signed manifest, every output's checksum, the register's signed history (OUT's own register) and its field photos."""
    from redline.provenance import verify_folder

    problems, checked = verify_folder(out, register=register, heads=tuple(head), photos=photos)
    for line in checked:
        out_console.print(line, markup=False)
    for p in problems:
        err_console.print(p, markup=False)
    if problems:
        raise typer.Exit(1)
    out_console.print(f"{out}: all outputs match the signed manifest; review history intact")


@keys_app.command("show")
def keys_show(key: Optional[Path] = typer.Option(None, "--key", help="key file (default: $REDLINE_KEY or ~/.config/redline/signing_key.pem)")) -> None:
    """Print this installation's key id, public key and key file."""
    from redline.register.keys import load_key

    k = load_key(key)
    out_console.print(f"key id: {k.key_id}\npublic key: {k.public_hex}\nfile: {k.path}", markup=False)


@keys_app.command("create")
def keys_create(
    key: Optional[Path] = typer.Option(None, "--key", help="key file (default: $REDLINE_KEY or ~/.config/redline/signing_key.pem)"),
    if_missing: bool = typer.Option(False, "--if-missing", help="keep an existing key instead of refusing"),
) -> None:
    """Create this installation's ed25519 signing key (file mode 0600; never overwritten)."""
    from redline.register.keys import create_key, default_key_path, load_key

    path = key or default_key_path()
    if if_missing and path.exists():
        k = load_key(path)
        out_console.print(f"signing key {k.key_id} already at {k.path}", markup=False)
        return
    k = create_key(path)
    out_console.print(f"created signing key {k.key_id} at {k.path} (mode 600; back it up: it signs your decisions)\npublic key: {k.public_hex}", markup=False)


@keys_app.command("trust")
def keys_trust(
    public_key: str = typer.Argument(..., help="the other installation's public key (64 hex digits, from its `redline keys show`)"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL"),
    out: Optional[Path] = typer.Option(None, "--out"),
    role: str = typer.Option("signer", "--role", help="signer | admin (admins add keys and change the review policy)",
                             callback=_choice(("signer", "admin"), "a key role")),
) -> None:
    """Let another installation's key sign this register (an admin's key signs the entry)."""
    reg = _open_register(register, out)
    row = reg.trust(public_key.strip(), role=role)
    out_console.print(f"{reg.location}: key {_payload(row)['key_id']} may sign as {role} (entry seq {row['seq']})", markup=False)


@register_app.command("copy")
def register_copy(
    source: str = typer.Argument(..., help="register file or postgresql:// URL"),
    destination: str = typer.Argument(..., help="a new GeoPackage file, or an empty postgresql:// database"),
) -> None:
    """Copy a register row for row (GeoPackage ↔ PostGIS): every hash and signature stays valid."""
    from redline.register import Register
    if not outputs.is_register_url(source) and not Path(source).exists():
        raise RedlineInputError(f"{source}: no register there; give a register file or a postgresql:// URL")
    src, dst = Register(source), Register(destination)
    n = src.copy_to(dst)
    head = dst.head() or {}
    out_console.print(f"{src.store.describe()} → {dst.store.describe()}: {len(dst.alerts())} alerts, {n} history entries; "
                      f"chain head seq {head.get('seq', 0)} {head.get('row_hash', '')}", markup=False)


def _read_password(from_stdin: bool, *, confirm: bool, env: bool = False, prompt: str = "password: ") -> str:
    """A password: one line of stdin (``--password-stdin``), else ``$REDLINE_PASSWORD`` (``env``),
    else asked with getpass (twice when ``confirm``); never echoed, never an argument (it would
    show in the process list and the shell's history)."""
    import getpass

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise RedlineInputError("--password-stdin: nothing on stdin; pipe one line holding the password")
        return line.rstrip("\r\n")
    if env and os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        raise RedlineInputError(f"no password: give --password-stdin{f' or set {PASSWORD_ENV}' if env else ''}, or run in a terminal to be asked")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise RedlineInputError("the two passwords differ; nothing was changed")
    return first


_ROLE_HELP = " | ".join(USER_ROLES)
_REGISTER_OPTION = typer.Option(None, "--register", help="register file or postgresql:// URL (default OUT/register.gpkg)")
_OUT_OPTION = typer.Option(None, "--out", help="scan output folder holding register.gpkg")


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="user name (unique; not redline-…)"),
    role: str = typer.Option(..., "--role", help=_ROLE_HELP),
    counties: str = typer.Option("", "--counties", help="comma list of county (admin_id) codes the user acts on; empty: all"),
    zones: str = typer.Option("", "--zones", help="comma list of zone codes the user acts on; empty: all"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from one line of stdin (else asked twice)"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Add a user (an admin key signs the entry; the password is stored as an argon2id hash)."""
    reg = _open_register(register, out)
    row = reg.add_user(name, role=role, counties=counties, zones=zones, password=_read_password(password_stdin, confirm=True))
    out_console.print(f"{reg.store.describe()}: {row['note']} as {role} (entry seq {row['seq']})", markup=False)


@users_app.command("list")
def users_list(
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """List the users: name, role, counties, zones, enabled, created (never a password hash)."""
    reg = _open_register(register, out)
    users = reg.users()
    table = Table()
    for c in ("name", "role", "counties", "zones", "state", "created"):
        table.add_column(c)
    for u in users:
        table.add_row(u.name, u.role, ",".join(u.counties) or "all", ",".join(u.zones) or "all", "disabled" if u.disabled else "enabled", u.created)
    out_console.print(table)
    out_console.print(f"{len(users)} user(s)" if users else "no users: the register is in single-user mode (any --by name is recorded)")


def _change_user(register: Optional[str], out: Optional[Path], name: str, **changes) -> None:
    reg = _open_register(register, out)
    row = reg.update_user(name, **changes)
    out_console.print(f"{reg.store.describe()}: {row['note']} (entry seq {row['seq']})", markup=False)


@users_app.command("disable")
def users_disable(name: str = typer.Argument(...), register: Optional[str] = _REGISTER_OPTION, out: Optional[Path] = _OUT_OPTION) -> None:
    """Disable a user: no more logins or decisions (their decisions stay in the history)."""
    _change_user(register, out, name, disabled=True)


@users_app.command("enable")
def users_enable(name: str = typer.Argument(...), register: Optional[str] = _REGISTER_OPTION, out: Optional[Path] = _OUT_OPTION) -> None:
    """Enable a disabled user again."""
    _change_user(register, out, name, disabled=False)


@users_app.command("set")
def users_set(
    name: str = typer.Argument(...),
    role: Optional[str] = typer.Option(None, "--role", help=_ROLE_HELP),
    counties: Optional[str] = typer.Option(None, "--counties", help="new comma list of county codes ('' for all)"),
    zones: Optional[str] = typer.Option(None, "--zones", help="new comma list of zone codes ('' for all)"),
    password: bool = typer.Option(False, "--password", help="set a new password (asked twice, or --password-stdin)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="with --password: read it from one line of stdin"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Change a user's role, counties, zones or password (a signed entry)."""
    if role is None and counties is None and zones is None and not password:
        raise RedlineInputError("nothing to change; give --role, --counties, --zones or --password")
    pw = _read_password(password_stdin, confirm=True) if password else None
    _change_user(register, out, name, role=role, counties=counties, zones=zones, password=pw)


@users_app.command("team-add")
def users_team_add(
    name: str = typer.Argument(..., help="team name (unique among users and teams; not redline-…), e.g. 巡护一队"),
    members: str = typer.Option(..., "--members", help="comma list of the team's users, e.g. wang,zhou"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Add a team of users that alerts can be assigned to (an admin key signs the entry)."""
    reg = _open_register(register, out)
    row = reg.add_team(name, members=members)
    out_console.print(f"{reg.store.describe()}: {row['note']} (entry seq {row['seq']})", markup=False)


@users_app.command("team-set")
def users_team_set(
    name: str = typer.Argument(...),
    members: Optional[str] = typer.Option(None, "--members", help="the new comma list of the team's users (replaces the old one)"),
    disabled: Optional[bool] = typer.Option(None, "--disable/--enable", help="disable the team (its alerts are nobody's 'assigned to me'), or enable it"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Change a team's members, or disable / enable it (a signed entry)."""
    if members is None and disabled is None:
        raise RedlineInputError("nothing to change; give --members, --disable or --enable")
    reg = _open_register(register, out)
    row = reg.update_team(name, members=members, disabled=disabled)
    out_console.print(f"{reg.store.describe()}: {row['note']} (entry seq {row['seq']})", markup=False)


@users_app.command("teams")
def users_teams(
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """List the teams: name, members, enabled, created."""
    reg = _open_register(register, out)
    teams = reg.teams()
    table = Table()
    for c in ("name", "members", "state", "created"):
        table.add_column(c)
    for t in teams:
        table.add_row(t.name, ",".join(t.members), "disabled" if t.disabled else "enabled", t.created)
    out_console.print(table)
    out_console.print(f"{len(teams)} team(s)" if teams else "no teams: add one with `redline users team-add NAME --members a,b`")


@users_app.command("token")
def users_token(
    name: str = typer.Argument(..., help="the user whose scripts use the token"),
    days: int = typer.Option(30, "--days", min=1, max=365, help="days until the token expires (1–365)"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Print a bearer token for NAME's scripts (the review service's API: `Authorization: Bearer …`),
    once: it is stored nowhere. Run it on the server, as the installation that serves (an admin
    key; the token is signed with the service's secret). It carries NAME's rights, no more, and
    stops working when it expires, when NAME is disabled or their account changes (password,
    role, scope), or when the service's secret is replaced."""
    from redline.serve import user_token

    reg = _open_register(register, out)
    token, expires = user_token(reg, name, days=days)
    out_console.print(token, markup=False, highlight=False)  # stdout: the token alone (TOKEN=$(redline users token …))
    err_console.print(f"token for {name} of {reg.store.describe()}, valid until {expires:%Y-%m-%d %H:%M} UTC; keep it secret", markup=False)


@users_app.command("policy")
def users_policy(
    step_role: list[str] = typer.Option([], "--step-role", help="STEP=ROLE, e.g. specialist_check=admin (repeatable)"),
    separation: Optional[bool] = typer.Option(None, "--separation-of-duties/--no-separation-of-duties",
                                              help="may one user record two review steps of one alert (default: no)"),
    assign_roles: Optional[str] = typer.Option(None, "--assign-roles", help="comma list of the roles that assign alerts (default specialist,admin)"),
    register: Optional[str] = _REGISTER_OPTION,
    out: Optional[Path] = _OUT_OPTION,
) -> None:
    """Show the review policy (steps, the role of each, separation of duties); change it (an admin key)."""
    reg = _open_register(register, out)
    roles = {}
    for item in step_role:
        step, sep, role = item.partition("=")
        if not sep:
            raise RedlineInputError(f"--step-role {item!r}: write STEP=ROLE, e.g. specialist_check=specialist")
        roles[step.strip()] = role.strip()
    assigners = [r.strip() for r in assign_roles.split(",") if r.strip()] if assign_roles is not None else None
    if roles or separation is not None or assigners is not None:
        row = reg.set_policy(step_roles=roles or None, separation_of_duties=separation, assign_roles=assigners)
        if row is not None:
            out_console.print(f"new policy entry seq {row['seq']}", markup=False)
    out_console.print(f"policy: {reg.policy().describe()}", markup=False)


@app.command()
def serve(
    out: Optional[Path] = typer.Argument(None, help="a scan's output folder: its register.gpkg, and the chips the pages show"),
    register: Optional[str] = typer.Option(None, "--register", help="register file or postgresql:// URL (default OUT/register.gpkg)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; keep 127.0.0.1 behind a TLS reverse proxy"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    lang: str = typer.Option("zh", "--lang", help="zh | en: the language of the pages", callback=_choice(("zh", "en"), "a language")),
    secure_cookies: bool = typer.Option(False, "--secure-cookies", help="mark the session cookie Secure (when the proxy serves HTTPS)"),
    idle_minutes: float = typer.Option(30.0, "--idle-timeout", help="minutes of inactivity after which a session ends"),
    dismiss_reasons: Optional[Path] = typer.Option(None, "--dismiss-reasons", help="UTF-8 file, one dismissal reason a line (default: the built-in list)"),
    forwarded_allow_ips: str = typer.Option("127.0.0.1", "--forwarded-allow-ips", help="proxies whose X-Forwarded-For/-Proto are trusted"),
    photos: Optional[Path] = typer.Option(None, "--photos", help="folder of the field photos (default: REGISTER-photos next to a GeoPackage "
                                          "register; required for a postgresql:// register)"),
) -> None:
    """The review service: reviewers, specialists and acceptance officers decide on alerts in a browser."""
    import maps
    from redline.serve import create_app, run

    if out is None and register is None:
        raise RedlineInputError("give a scan's output folder (OUT) or --register")
    if out is not None and not out.is_dir():
        raise RedlineInputError(f"{out}: not a folder; give a scan's output folder or --register")
    reasons = None
    if dismiss_reasons is not None:
        try:
            reasons = [r.strip() for r in dismiss_reasons.read_text(encoding="utf-8").splitlines() if r.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise RedlineInputError(f"--dismiss-reasons {dismiss_reasons}: cannot be read ({exc}); give a UTF-8 text file") from None
        if not reasons:
            raise RedlineInputError(f"--dismiss-reasons {dismiss_reasons}: no reason in it; write one reason a line")
    reg = _open_register(register, out)
    application = create_app(reg.location, out, lang=lang, secure_cookies=secure_cookies, idle_timeout_s=idle_minutes * 60,
                             dismiss_reasons=reasons, photos_dir=photos, draw_zone_figure=maps.zone_figure)
    out_console.print(f"review service for {reg.store.describe()} on http://{host}:{port}/ (Ctrl-C to stop)", markup=False)
    run(application, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips)


def _payload(row: dict) -> dict:
    """The decoded ``payload`` of a history entry."""
    import json

    return json.loads(row["payload"])


@stac_app.command("serve")
def stac_serve(folder: Path = typer.Argument(..., help="folder of STAC Items (items.json, collection.json), or a scan's output folder"),
               port: Optional[int] = typer.Option(None, "--port")) -> None:
    """Serve a folder of STAC Items as a STAC API on 127.0.0.1 until Ctrl-C (or ``kill``); a scan's
    output folder (catalog.json) is served as it is, a static catalogue for a STAC browser."""
    import signal
    import time

    if (folder / outputs.CATALOG_JSON).is_file():
        from redline.run.catalog import serve_catalog as serve

        what = "STAC catalogue (static; open it in a STAC browser) on"
    elif (folder / outputs.MANIFEST_JSON).is_file():
        raise RedlineInputError(f"{folder}: a scan's output folder without {outputs.CATALOG_JSON}; run `redline map {folder}` to write its STAC catalogue")
    else:
        from pipelines import serve_stac as serve

        what = "STAC API on"

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and kill both stop the API and exit 0, also when started from a background job, whose
    # SIGINT the shell ignores (and Python then leaves ignored)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:  # at any moment, even before the first line is out
        with serve(folder, port=port) as url:
            out_console.print(f"{what} {url} (Ctrl-C to stop)", markup=False)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass


@stac_app.command("import")
def stac_import(
    folder: Path = typer.Argument(..., help="folder of GeoTIFF / JPEG2000 scene files (searched recursively)"),
    out: Path = typer.Option(..., "--out", help="output folder: COGs, items.json, collection.json (new or empty)"),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="band-mapping YAML for layouts not recognised by name (README: Scenes from files)"),
    collection: Optional[str] = typer.Option(None, "--collection", help="collection id of the items (default: the layout's)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty --out"),
) -> None:
    """Turn scene files (Landsat, Sentinel-2, Gaofen, or a --mapping) into COGs + STAC Items for `redline stac serve`."""
    from pipelines import LAYOUTS, import_folder

    res = import_folder(folder, out, mapping=mapping, collection=collection, overwrite=overwrite)
    for layout, n in res.layouts.items():
        out_console.print(f"{layout}: {n} scene(s) — {LAYOUTS.get(layout, f'described by {mapping}')}", markup=False)
    layouts = ", ".join(res.layouts)
    masks = "yes" if not res.unmasked else ("no" if len(res.unmasked) == res.n_items else f"{res.n_items - len(res.unmasked)} of {res.n_items}")
    out_console.print(f"{res.n_items} scenes ({layouts}), bands {', '.join(res.bands)}, masks: {masks}", markup=False)
    for note in res.notes:
        out_console.print(f"note: {note}", markup=False)
    if res.unmasked:
        out_console.print(f"{len(res.unmasked)} scene(s) have no quality mask: a scan of them needs `masks: assume-clear` in scan.yml "
                          "(every pixel with data counted clear)", markup=False)
    if res.ignored:
        shown = ", ".join(p.name for p in res.ignored[:3]) + (" …" if len(res.ignored) > 3 else "")
        out_console.print(f"{len(res.ignored)} raster file(s) not used: {shown}", markup=False)
    out_console.print(f"wrote {res.items} and {res.collection} (collection {res.collection_id}); serve them with `redline stac serve {res.out}`", markup=False)


def _one_line(text: object) -> str:
    """Collapse a message onto one line (library messages may quote multi-line GDAL errors)."""
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings API
    """redline's warnings (degraded but running) as one line each on stderr; others as usual."""
    from redline.errors import RedlineWarning

    if issubclass(category, RedlineWarning):
        err_console.print(f"warning: {_one_line(message)}", markup=False)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _given(args: list[str], param: object) -> Optional[str]:
    """The value given on the command line for option ``param`` (``--opt VALUE`` or
    ``--opt=VALUE``, the last one), or None."""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
    value = None
    for i, arg in enumerate(args):
        for opt in opts:
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
    return value


def _usage_error(exc: Exception, args: list[str]) -> int:
    """A usage error as one line naming the option and the value, then the usage line (exit 2).
    A group called without a command (``redline alerts``) shows its help instead."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, getattr(_click_errors, "NoArgsIsHelpError", ())):  # click ≥ 8.2 (and typer's copy)
        text = exc.format_message()  # typer's rich help has printed itself already; plain click's has not
        if text.strip():
            out_console.print(text, markup=False, highlight=False)
        return exc.exit_code
    message = _one_line(exc.format_message())
    param = getattr(exc, "param", None)
    if isinstance(exc, _click_errors.BadParameter) and not isinstance(exc, _click_errors.MissingParameter) and param is not None:
        value = _given(args, param)
        if value is not None and repr(value) not in message:
            message += f" (got {_one_line(repr(value))[:80]})"
    err_console.print(f"error: {message}", markup=False)
    if ctx is not None:
        err_console.print(f"{_one_line(ctx.get_usage())}; see '{ctx.command_path} --help'", markup=False)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning redline's errors into one line and an exit code."""
    warnings.showwarning = _show_warning
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rc = app(args=args, prog_name="redline", standalone_mode=False)  # click returns typer.Exit codes here
    except RedlineInputError as exc:
        err_console.print(f"error: {_one_line(exc)}", markup=False)
        return 2
    except ScanFault as exc:
        for failure in exc.failures:  # one line per failed scene, zone or output, then the summary
            err_console.print(f"failed: {_one_line(failure)}", markup=False)
        err_console.print(f"scan finished with failures: {len(exc.failures)} scene(s)/zone(s) left out, the rest was scanned (see manifest.json 'failures')", markup=False)
        return 1
    except RedlineError as exc:
        err_console.print(f"error: {_one_line(exc)}", markup=False)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except _click_errors.UsageError as exc:  # unknown command or option, missing argument, a value an option refuses
        return _usage_error(exc, args)
    except _click_errors.ClickException as exc:  # e.g. a file option that cannot be opened
        err_console.print(f"error: {_one_line(exc.format_message())}", markup=False)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C, also at a prompt
        err_console.print("interrupted")
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
