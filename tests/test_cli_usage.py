"""The command line a newcomer cannot trip over (issue 24, item 6), through the real CLI in
subprocesses (``python -m redline.cli``).

``CASES``: every usage error (unknown command or option, missing argument, a value an option
refuses) is one ``error:`` line naming the option and the value, then the usage line, exit 2;
every bad input of the issue's list (a zone without geometry, ``--out`` a file, a damaged
manifest or register in ``verify``, an SCL class outside 0-11, windows that overlap, zones far
from the scenes or with a wrong CRS label) is exactly one ``error:`` line naming it, exit 2.
Then what works by default: the register of the folder you are in, whole alert ids at 80
columns, dates that filter, no lock file left after a scan.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pytest
import yaml

from redline.errors import RegisterError
from redline.provenance import find_register, read_manifest, write_manifest
from redline.register import Register
from redline.register.keys import load_key

CLI = [sys.executable, "-m", "redline.cli"]


def run_cli(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@dataclass
class Ctx:
    """Where a case builds its input: its own folder, the small scene set and a copy of its scan."""

    tmp: Path
    scenes: object  # DemoScenes
    stac_url: str
    scan: Path  # the small scan's output folder (read only: copy it with .copy())

    def copy(self, name: str) -> Path:
        dest = self.tmp / name
        shutil.copytree(self.scan, dest)
        return dest

    def config(self, name: str = "scan", **changes: object) -> Path:
        """The small scene set's config (absolute paths, the embedded API), ``changes`` applied
        by dotted key (``detection.scl_mask_classes``)."""
        raw = yaml.safe_load(Path(self.scenes.config).read_text(encoding="utf-8"))
        raw["stac"]["url"] = self.stac_url
        raw["zones"]["path"] = str(self.scenes.zones)
        raw["admin_units"]["path"] = str(self.scenes.counties)
        raw["register"] = str(self.tmp / "register.gpkg")
        for key, value in changes.items():
            node = raw
            *parents, last = key.split(".")
            for k in parents:
                node = node[k]
            node[last] = value
        path = self.tmp / f"{name}.yml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        return path

    def with_zones(self, gdf: gpd.GeoDataFrame) -> Path:
        path = self.tmp / "zones.gpkg"
        gdf.to_file(path, layer="hongxian", driver="GPKG")
        return self.config(**{"zones.path": str(path)})

    def zones(self) -> gpd.GeoDataFrame:
        return gpd.read_file(self.scenes.zones, layer="hongxian")


def _alert(c: Ctx) -> str:
    return json.loads((c.scan / "alerts.geojson").read_text(encoding="utf-8"))["features"][0]["properties"]["alert_id"]


def _null_geometry(c: Ctx) -> list:
    z = c.zones()
    z.loc[1, "geometry"] = None
    return ["validate", c.with_zones(z)]


def _far_zones(c: Ctx) -> list:
    z = c.zones().to_crs(32648)  # 300 km east of the scenes
    return ["scan", c.with_zones(z.set_geometry(z.geometry.translate(300_000, 0)).to_crs(4490)), "--out", c.tmp / "out"]


def _wrong_crs_label(c: Ctx) -> list:
    z = c.zones().to_crs(32648)  # UTM metres labelled as degrees
    return ["scan", c.with_zones(z.set_crs(4490, allow_override=True)), "--out", c.tmp / "out"]


def _out_is_a_file(c: Ctx, command: str) -> list:
    (c.tmp / "afile").write_text("not a folder", encoding="utf-8")
    return [command, c.config(), "--out", c.tmp / "afile"]


def _manifest(c: Ctx, edit: Callable[[Path], None]) -> list:
    out = c.copy("out")
    edit(out / "manifest.json")
    return ["verify", out]


def _signed_without_register(path: Path) -> None:
    """A validly signed manifest that has lost its ``register`` record."""
    record = {k: v for k, v in read_manifest(path.parent).items() if k not in ("register", "outputs", "signature")}
    write_manifest(path.parent, record, key=load_key(), exclude=("register.gpkg",))


def _register(c: Ctx, content: bytes | None) -> list:
    out = c.copy("out")
    reg = out / "register.gpkg"
    data = reg.read_bytes()
    reg.write_bytes(data[: len(data) // 3] if content is None else content)
    return ["verify", out]


def _review_by(name: str) -> Callable[[Ctx], list]:
    return lambda c: ["alerts", "review", _alert(c), "--by", name, "--note", "seen", "--out", c.copy("out")]


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Ctx], list]
    needles: tuple[str, ...]  # what the error line must name
    usage: bool = False  # a usage error: the usage line follows


CASES = [
    # usage errors: the command line itself
    Case("unknown-command", lambda c: ["frobnicate"], ("No such command 'frobnicate'",), usage=True),
    Case("unknown-option", lambda c: ["scan", c.config(), "--frob"], ("No such option: --frob",), usage=True),
    Case("unknown-option-of-a-subcommand", lambda c: ["alerts", "list", "--wat"], ("--wat",), usage=True),
    Case("missing-argument", lambda c: ["scan"], ("Missing argument", "config"), usage=True),
    Case("missing-argument-of-a-subcommand", lambda c: ["alerts", "show"], ("Missing argument", "alert_id"), usage=True),
    Case("lock-timeout-not-a-number", lambda c: ["scan", c.config(), "--lock-timeout", "abc"], ("--lock-timeout", "'abc'"), usage=True),
    Case("lock-timeout-negative", lambda c: ["scan", c.config(), "--lock-timeout", "-5"], ("--lock-timeout", "'-5'", "greater than or equal to 0"),
         usage=True),
    Case("review-lock-timeout-negative", lambda c: ["alerts", "review", _alert(c), "--by", "wang", "--note", "x", "--lock-timeout", "-5",
                                                    "--out", c.scan], ("--lock-timeout", "'-5'"), usage=True),
    Case("format-not-a-choice", lambda c: ["alerts", "list", "--out", c.scan, "--format", "xml"], ("--format", "'xml'", "table, geojson, csv"),
         usage=True),
    Case("preset-not-a-choice", lambda c: ["demo", "--preset", "big", "--out", c.tmp / "demo"], ("--preset", "'big'", "demo, small"), usage=True),
    # option values of the alert filters: real dates, the vocabulary's codes
    Case("since-yesterday", lambda c: ["alerts", "list", "--out", c.scan, "--since", "yesterday"], ("--since", "'yesterday'", "YYYY-MM-DD"), usage=True),
    Case("since-day-first", lambda c: ["alerts", "list", "--out", c.scan, "--since", "31/12/2023"], ("--since", "'31/12/2023'", "YYYY-MM-DD"),
         usage=True),
    Case("since-month-13", lambda c: ["alerts", "list", "--out", c.scan, "--since", "2023-13-01"], ("--since", "'2023-13-01'", "month must be in 1..12"),
         usage=True),
    Case("until-slashes-in-export", lambda c: ["alerts", "export", "--to", c.tmp / "x.geojson", "--out", c.scan, "--until", "2023/12/31"],
         ("--until", "'2023/12/31'"), usage=True),
    Case("since-after-until", lambda c: ["alerts", "list", "--out", c.scan, "--since", "2023-12-01", "--until", "2023-01-01"],
         ("--since 2023-12-01 is after --until 2023-01-01", "swap them")),
    Case("status-unknown", lambda c: ["alerts", "list", "--out", c.scan, "--status", "closed"],
         ("--status", "'closed'", "new, under_review, field_check, confirmed, dismissed, rectifying, rectified, recovered"), usage=True),
    Case("type-unknown", lambda c: ["alerts", "list", "--out", c.scan, "--type", "flood"],
         ("--type", "'flood'", "clearing, construction, mining, fire, water_loss, other"), usage=True),
    Case("confidence-unknown", lambda c: ["alerts", "list", "--out", c.scan, "--confidence", "medium"], ("--confidence", "'medium'", "low, nominal, high"),
         usage=True),
    Case("review-status-unknown", lambda c: ["alerts", "review", _alert(c), "--by", "wang", "--status", "done", "--out", c.scan],
         ("--status", "'done'", "under_review"), usage=True),
    # --by: the one rule for names (redline.register.users.check_name)
    Case("by-with-a-newline", _review_by("wang\n2024-01-01T00:00:00+00:00  admin: new → dismissed"), ("--by", r"'wang\n2024", "printable"), usage=True),
    Case("by-with-an-escape-code", _review_by("\x1b[31mred\x1b[0m"), ("--by", r"\x1b[31mred", "printable"), usage=True),
    Case("by-of-100000-characters", _review_by("a" * 100_000), ("--by", "(100000 characters)", "at most 64"), usage=True),
    Case("by-of-the-system", _review_by("redline-scan"), ("--by", "'redline-scan'", "the system's"), usage=True),
    Case("assign-to-with-an-escape-code", lambda c: ["alerts", "assign", _alert(c), "--to", "\x1b[2Jli", "--by", "wang", "--out", c.copy("out")],
         ("--to", r"'\x1b[2Jli'", "printable"), usage=True),
    # bad input: one line, exit 2
    Case("zone-with-a-null-geometry", _null_geometry, ("zones.gpkg", "zone '510182-HX-0003' has no geometry (null)", "remove it")),
    Case("zones-with-a-wrong-crs-label", _wrong_crs_label, ("zones.gpkg", "says EPSG:4490", "coordinates reach x 4", "projected coordinates")),
    Case("zones-far-from-every-scene", _far_zones, ("found no scenes", "over the zones (EPSG:4490; lon 107.", "the nearest of the 73 scenes", "km from the zones")),
    Case("scan-out-is-a-file", lambda c: _out_is_a_file(c, "scan"), ("--out", "afile: is a file, not a folder",)),
    Case("assess-out-is-a-file", lambda c: _out_is_a_file(c, "assess"), ("--out", "afile: is a file, not a folder",)),
    Case("scl-class-99", lambda c: ["validate", c.config(**{"detection.scl_mask_classes": [0, 99]})],
         ("scan.yml", "detection.scl_mask_classes = [0, 99]", "99 is not a Sentinel-2 SCL class", "0-11")),
    Case("monitor-overlaps-baseline", lambda c: ["validate", c.config(**{"monitor.start": "2022-06-01"})],
         ("scan.yml", "monitor window 2022-06-01 to 2023-12-31 overlaps the baseline window 2022-01-01 to 2022-12-31")),
    Case("verify-manifest-not-json", lambda c: _manifest(c, lambda m: m.write_text(m.read_text(encoding="utf-8")[:200], encoding="utf-8")),
         ("manifest.json", "not a readable manifest")),
    Case("verify-manifest-a-list", lambda c: _manifest(c, lambda m: m.write_text("[]", encoding="utf-8")), ("manifest.json", "a JSON object was expected")),
    Case("verify-manifest-outputs-a-list", lambda c: _manifest(c, lambda m: m.write_text(json.dumps({**json.loads(m.read_text(encoding="utf-8")), "outputs": [1]}),
                                                                                          encoding="utf-8")),
         ("manifest.json", "'outputs' is a list")),
    Case("verify-manifest-register-a-string", lambda c: _manifest(c, lambda m: m.write_text(json.dumps({**json.loads(m.read_text(encoding="utf-8")),
                                                                                                           "register": "register.gpkg"}), encoding="utf-8")),
         ("manifest.json", "'register' is a str")),
    Case("verify-manifest-without-register", lambda c: _manifest(c, _signed_without_register), ("manifest.json", "no 'register' record", "--register")),
    Case("verify-truncated-register", lambda c: _register(c, None), ("register.gpkg", "malformed")),
    Case("verify-text-register", lambda c: _register(c, b"a text file, not a database\n"), ("register.gpkg", "not a database")),
    Case("verify-zero-byte-register", lambda c: _register(c, b""), ("register.gpkg", "an empty file (0 bytes)")),
]


@pytest.fixture(scope="module")
def runs(small_scenes, stac_url, small_scan, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every case through its own process, two at a time (2 cores)."""
    jobs = {}
    for case in CASES:
        ctx = Ctx(tmp_path_factory.mktemp(case.id), small_scenes, stac_url, small_scan.out_dir)
        jobs[case.id] = case.make(ctx)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {cid: pool.submit(run_cli, *argv) for cid, argv in jobs.items()}
        return {cid: f.result() for cid, f in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_mistake_is_one_line_exit_2(case, runs):
    res = runs[case.id]
    lines = res.stderr.splitlines()
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == (2 if case.usage else 1), res.stderr[-3000:]
    assert lines[0].startswith("error: ") and len(lines[0]) < 500, lines[0][:600]
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    if case.usage:
        assert lines[1].startswith("Usage: redline") and "--help" in lines[1], lines[1]
        assert "Traceback" not in res.stderr


def test_the_config_takes_the_scl_classes_of_the_legend():
    """The config's SCL rule (kept light to import) and the mask's legend name the same classes."""
    import indices
    from redline.config import SCL_CLASS_CODES

    assert set(SCL_CLASS_CODES) == set(indices.SCL_CLASSES)


def test_the_far_zones_error_gives_the_distance_to_the_nearest_scene(runs):
    """The zones were moved 300 km east of the scenes' area (1.6 km across): the nearest scene
    footprint is about 300 km away."""
    km = int(re.search(r"lies ([\d,]+) km from the zones", runs["zones-far-from-every-scene"].stderr).group(1).replace(",", ""))
    assert 290 <= km <= 300, km


def test_version_prints_redline_and_its_libraries():
    res = run_cli("--version")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    first, *libs = res.stdout.splitlines()
    assert re.fullmatch(r"redline \S+", first), first
    assert any(line.strip().startswith("geopandas: ") for line in libs), res.stdout


def test_a_command_group_without_a_command_shows_its_help():
    res = run_cli("alerts")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "list" in res.stdout and "review" in res.stdout, res.stdout


# --- what works by default -----------------------------------------------------------------
@pytest.fixture
def out(small_scan, tmp_path) -> Path:
    return Path(shutil.copytree(small_scan.out_dir, tmp_path / "out"))


def test_alert_commands_find_the_register_of_the_scan_folder_they_run_in(out, small_scan):
    alert = sorted(small_scan.alerts["alert_id"])[0]
    shown = run_cli("alerts", "show", alert, cwd=out)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split() == ["alert_id", alert]
    listed = run_cli("alerts", "list", "--format", "csv", cwd=out)
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split(",")[0] for line in listed.stdout.splitlines()[1:]) == sorted(small_scan.alerts["alert_id"])


def test_outside_a_scan_folder_the_error_says_where_to_look(tmp_path):
    res = run_cli("alerts", "show", "X-1", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines() == ["error: out/register.gpkg: no register there; give --register, or --out of a finished scan, "
                                       "or run the command in a scan's output folder"]


def test_the_register_a_scan_kept_elsewhere_is_found_through_its_manifest(out, tmp_path, small_scan):
    """A config with ``register:`` outside OUT: the manifest names it, and ``--out`` finds it."""
    shared = tmp_path / "shared" / "register.gpkg"
    shared.parent.mkdir()
    shutil.move(out / "register.gpkg", shared)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["register"].update(path=str(shared), inside_out=False)
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert find_register(out) == shared
    assert find_register(None, cwd=out) == shared
    res = run_cli("alerts", "list", "--out", out, "--format", "csv")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1 + len(small_scan.alerts)


def test_since_and_until_filter_by_the_date_first_detected(small_scan):
    dates = sorted(small_scan.alerts["first_detected"])
    since, until = dates[1], dates[-2]
    res = run_cli("alerts", "list", "--out", small_scan.out_dir, "--since", since, "--until", until, "--format", "csv")
    assert res.returncode == 0, res.stderr
    expected = sorted(small_scan.alerts.loc[small_scan.alerts["first_detected"].between(since, until), "alert_id"])
    assert sorted(line.split(",")[0] for line in res.stdout.splitlines()[1:]) == expected and expected


def _in_a_terminal(argv: list[str], columns: int) -> str:
    """What ``argv`` prints on a pseudo-terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "dumb"}
    proc = subprocess.Popen(argv, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return b"".join(chunks).decode("utf-8")


def test_alerts_list_shows_whole_ids_on_an_80_column_terminal(small_scan):
    text = _in_a_terminal([*CLI, "alerts", "list", "--out", str(small_scan.out_dir)], 80)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, text
    for alert_id in small_scan.alerts["alert_id"]:
        assert any(alert_id in line for line in lines), (alert_id, text)
    assert f"{len(small_scan.alerts)} alert(s)" in text


def test_alerts_list_wide_is_one_line_per_alert(small_scan):
    res = run_cli("alerts", "list", "--out", small_scan.out_dir, "--wide")
    assert res.returncode == 0, res.stderr
    for row in small_scan.alerts.itertuples():
        line = [ln for ln in res.stdout.splitlines() if ln.startswith(row.alert_id)]
        assert len(line) == 1 and line[0].split()[:5] == [row.alert_id, row.zone_id, str(row.admin_id), row.disturbance_type, row.first_detected], line


def test_the_register_refuses_a_name_with_a_line_break_from_any_caller(out, small_scan):
    """The library holds the rule too (the review service's API calls it directly)."""
    reg = Register(out / "register.gpkg")
    alert = sorted(small_scan.alerts["alert_id"])[0]
    with pytest.raises(RegisterError, match=r"^--by 'wang\\nadmin': use at most 64 printable characters"):
        reg.review(alert, by="wang\nadmin", note="seen")
    with pytest.raises(RegisterError, match=r"^--to '\\x1b\[31mli'"):
        reg.assign([alert], to="\x1b[31mli", by="wang")
    assert len(reg.history(alert)) == 0


# --- the scans' lock file ------------------------------------------------------------------
def test_no_lock_file_is_left_after_a_scan(small_scan):
    assert (small_scan.out_dir / "register.gpkg").exists()
    assert not (small_scan.out_dir / "register.gpkg.lock").exists(), sorted(p.name for p in small_scan.out_dir.iterdir())


def test_the_scans_lock_waits_for_its_holder_and_leaves_no_file(tmp_path):
    """B waits while A holds the lock, gets it when A lets go (A removes the file as it does,
    B locks the new one); no file is left after B."""
    path = tmp_path / "register.gpkg"
    lock_file = tmp_path / "register.gpkg.lock"
    order = []
    a_holds = threading.Event()

    def second() -> None:
        a_holds.wait()
        with Register(path).lock(timeout=10):
            order.append(("B in", lock_file.exists()))
        order.append(("B out", lock_file.exists()))

    t = threading.Thread(target=second)
    t.start()
    with Register(path).lock(timeout=10):
        a_holds.set()
        time.sleep(1.0)  # B is waiting now
        order.append(("A out", lock_file.exists()))
    t.join(timeout=20)
    assert order == [("A out", True), ("B in", True), ("B out", False)]
    assert not lock_file.exists()
