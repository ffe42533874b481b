"""The county report ``OUT/report.html`` (and, optionally, ``report.pdf`` printed by a headless
Chromium on A4 paper): on its first page the scan's id, periods, scenes, parameters and the
register's chain head; then per administrative unit and per zone the summary tables, figures,
the map, the alert list with chips and any grades. One self-contained page with no JavaScript;
every text from the inputs is escaped by Jinja2's autoescaping.

Layout rules (both the screen and the printed page): every table fits its column (a 1366-px
laptop screen, an A4 page with 12 mm margins: 186 mm, about 700 CSS px) — wide tables are
split (zone facts, observation, indices in groups of :data:`STEMS_PER_TABLE`), long text wraps,
and an alert's chips and time series sit in a row of their own under its fields; on paper,
headers repeat on each page (``thead``), rows, figures and an alert's block are never cut in two
(``break-inside: avoid``), and each county starts a page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
import pandas as pd

from maps._figure_worker import COMMAND as FIGURE_WORKER
from maps._figure_worker import draw_jobs
from maps._fonts import CSS_FONT_STACK
from redline.register import Register
from maps._map import COMPOSITE_PNG, MAP_HTML, county_names, display_text, is_missing, latest_reviews, read_alerts, read_layer, relative_file
from maps._style import STATUS_STYLE, TYPE_STYLE, category_label, code_label
from maps._summary import (
    FIGURE_DIR,
    ZONE_FIGURES,
    index_label,
    index_pairs,
    render_county_figure,
    render_overview,
    safe_name,
    zone_figure_name,
    zones_changed,
)

log = logging.getLogger(__name__)

__all__ = ["render_report", "print_pdf", "scan_facts", "ScanFacts", "REPORT_HTML", "REPORT_PDF", "REPORT_GRADE_COLOURS", "REPORT_PAGE_MARGINS_MM",
           "STEMS_PER_TABLE"]

REPORT_HTML = "report.html"
REPORT_PDF = "report.pdf"
#: HJ 192-2015 (生态环境状况评价技术规范) grades, best first, with a colour each (the report's
#: badges; the assessment figures' English RSEI grades are maps.GRADE_COLOURS)
REPORT_GRADE_COLOURS = {"优": "#1a9850", "良": "#91cf60", "一般": "#fee08b", "较差": "#fc8d59", "差": "#d73027"}
#: margins of the printed A4 page (CSS ``@page``), mm: top, right, bottom (the page number line),
#: left; 186 mm of width remain, about 700 CSS px
REPORT_PAGE_MARGINS_MM = {"top": 14, "right": 12, "bottom": 16, "left": 12}
#: index pairs per indices table (three columns each: baseline, monitor, change); three pairs
#: plus the zone's name and code fit an A4 page's 186 mm at the print font size
STEMS_PER_TABLE = 3
#: Chromium flags for printing: no network at all (every host name resolves to nothing)
_OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
_NO_ADMIN = "(none)"


def _num(value: object, fmt: str, scale: float = 1.0) -> str:
    return "–" if is_missing(value) else format(float(value) * scale, fmt)


def _src(rel: str | None) -> str | None:
    return quote(rel) if rel else None


def _grade_columns(columns) -> list[str]:
    """Grade columns of a statistics table (``grade``, ``<x>_grade``, ``<x>_grade_<period>``),
    but ``ei_grade``, which the EI column shows beside its value."""
    cols = set(columns)
    return [c for c in columns if (c == "grade" or c.endswith("_grade") or "_grade_" in c) and not (c == "ei_grade" and "ei_habitat_quality" in cols)]


def _grade_label(column: str) -> str:
    """A grade column's header: ``rsei_grade_baseline`` → ``RSEI grade 等级 baseline 基准``."""
    stem, _, period = column.partition("_grade")
    when = {"": "", "_baseline": " baseline 基准", "_monitor": " monitor 监测"}.get(period, f" {period.strip('_')}")
    return f"{index_label(stem) + ' ' if stem and stem != 'grade' else ''}grade 等级{when}"


def _read_manifest(out_dir: Path) -> Mapping[str, Any]:
    path = out_dir / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s is not valid JSON (%s); the report leaves out the scan's periods and provenance", path, exc)
        return {}
    return manifest if isinstance(manifest, dict) else {}


# --------------------------------------------------------------------------- the first page


@dataclass(frozen=True)
class ScanFacts:
    """What the report's first page says about the scan, read from its manifest record
    (``manifest.json``, or the record the scan is about to write): windows as ISO dates,
    scenes used per collection and platform, the main parameters and provenance as
    (label, value) rows, and the register's chain head at the scan (and now, when the register
    given has moved on since)."""

    scan_id: str | None
    baseline: tuple[str, str] | None
    monitor: tuple[str, str] | None
    scenes: list[dict[str, Any]] = field(default_factory=list)
    n_scenes: int | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)
    head: Mapping[str, Any] | None = None
    head_now: Mapping[str, Any] | None = None
    failures: list[tuple[str, int]] = field(default_factory=list)


def _window(w: object) -> tuple[str, str] | None:
    if not isinstance(w, Mapping) or not w.get("start") or not w.get("end"):
        return None
    return str(w["start"])[:10], str(w["end"])[:10]


def _scene_rows(items: list[Mapping[str, Any]], baseline: tuple[str, str] | None, monitor: tuple[str, str] | None) -> list[dict[str, Any]]:
    """One row per (collection, platform) of the scenes used: counts in all, in the baseline and
    in the monitor window (by acquisition date, UTC), first and last date."""
    groups: dict[tuple[str, str], list[str]] = {}
    for it in items:
        day = str(it.get("datetime") or "")[:10]
        groups.setdefault((str(it.get("collection") or "–"), str(it.get("platform") or "–")), []).append(day)
    rows = []
    for (collection, platform), days in sorted(groups.items()):
        dated = sorted(d for d in days if d)
        rows.append({
            "collection": collection, "platform": platform, "n": len(days),
            "baseline": sum(1 for d in dated if baseline and baseline[0] <= d <= baseline[1]) if baseline else "–",
            "monitor": sum(1 for d in dated if monitor and monitor[0] <= d <= monitor[1]) if monitor else "–",
            "first": dated[0] if dated else "–", "last": dated[-1] if dated else "–",
        })
    return rows


def _parameters(cfg: Mapping[str, Any], grid: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The scan's main parameters as (bilingual label, value) rows; keys absent from an older
    manifest are left out."""
    det = cfg.get("detection") or {}
    stac = cfg.get("stac") or {}
    zones = cfg.get("zones") or {}
    rows: list[tuple[str, str]] = []

    def add(label: str, value: object, unit: str = "") -> None:
        if value is not None and value != "" and value != []:
            rows.append((label, f"{value}{unit}"))

    add("resolution 分辨率", cfg.get("resolution"), " m")
    add("indices 指数", ", ".join(det.get("indices") or []))
    if det.get("z_threshold") is not None:
        add("detection 检测", f"|z| ≥ {det['z_threshold']:g} σ on {det.get('consecutive', '–')} consecutive clear looks 连续晴空观测; "
            f"{det.get('harmonics', '–')} annual harmonic(s) 谐波" + ("; trend 趋势项" if det.get("trend") else ""))
    add("min. alert area 最小图斑面积", None if det.get("min_area_m2") is None else f"{float(det['min_area_m2']):,.0f}", " m²")
    add("min. clear baseline looks 基准期最少晴空观测", det.get("min_baseline_obs"))
    masks = [str(cfg["masks"])] if cfg.get("masks") else []
    if det.get("scl_mask_classes"):
        masks.append("SCL " + ", ".join(str(c) for c in det["scl_mask_classes"]))
    if det.get("mask_dilation_m"):
        masks.append(f"dilated 外扩 {det['mask_dilation_m']:g} m")
    add("cloud mask 云掩膜", "; ".join(masks))
    add("max. scene cloud cover 最大云量", stac.get("max_cloud_cover"), " %")
    if stac.get("url"):
        add("STAC API", f"{stac['url']} ({', '.join(stac.get('collections') or [])}" + (f"; profile {stac['profile']})" if stac.get("profile") else ")"))
    if zones.get("path"):
        add("zones 红线区数据", Path(str(zones["path"])).name + (f" (layer {zones['layer']})" if zones.get("layer") else ""))
    if grid.get("crs"):
        shape = grid.get("shape") or []
        add("analysis grid 分析格网", f"{grid['crs']}" + (f", {shape[0]} × {shape[1]} px" if len(shape) == 2 else ""))
    return rows


def scan_facts(manifest: Mapping[str, Any], head_now: Mapping[str, Any] | None = None) -> ScanFacts:
    """The first page's :class:`ScanFacts` from a scan's manifest record (``manifest.json``, see
    :mod:`redline.provenance`); ``head_now``: the register's chain head at this rendering
    (shown when it differs from the one recorded at the scan). An empty record gives empty facts."""
    cfg = (manifest.get("config") or {}).get("resolved") or {}
    baseline, monitor = _window(cfg.get("baseline")), _window(cfg.get("monitor"))
    items = [i for i in manifest.get("items") or [] if isinstance(i, Mapping)]
    reg = manifest.get("register") if isinstance(manifest.get("register"), Mapping) else {}
    head = reg.get("head") if isinstance(reg.get("head"), Mapping) else None
    now = head_now if head_now and (head is None or head_now.get("row_hash") != head.get("row_hash")) else None
    prov: list[tuple[str, str]] = []
    if manifest.get("redline_version"):
        prov.append(("redline", f"{manifest['redline_version']}" + (f" (git {manifest['git_commit']})" if manifest.get("git_commit") else "")))
    if (manifest.get("config") or {}).get("sha256"):
        prov.append(("config sha256 配置文件校验值", str(manifest["config"]["sha256"])))
    if manifest.get("started"):
        prov.append(("run 运行时间 (UTC)", f"{manifest['started']} – {manifest.get('finished') or '–'}"))
    font = (manifest.get("libraries") or {}).get("figure_font")
    if font:
        prov.append(("figure font 图件字体", str(font)))
    kinds = Counter(str(f.get("kind")) for f in manifest.get("failures") or [] if isinstance(f, Mapping))
    return ScanFacts(
        scan_id=str(manifest["scan_id"]) if manifest.get("scan_id") else None, baseline=baseline, monitor=monitor,
        scenes=_scene_rows(items, baseline, monitor), n_scenes=len(items) if "items" in manifest else None,
        parameters=_parameters(cfg, manifest.get("grid") or {}), provenance=prov, head=head, head_now=now,
        failures=sorted(kinds.items()),
    )


# --------------------------------------------------------------------------- tables


def _zone_row(z: Mapping[str, Any], stems: list[str], grades: list[str]) -> dict[str, Any]:
    return {
        "zone_id": display_text(z.get("zone_id")), "zone_name": display_text(z.get("zone_name")), "category": category_label(z.get("category")),
        "area_km2": _num(z.get("area_km2"), ",.3f"), "observed": _num(z.get("valid_obs_fraction"), ".0f", 100),
        "pairs": [(_num(z.get(f"{s}_baseline"), ".3f"), _num(z.get(f"{s}_monitor"), ".3f"),
                   _num(None if is_missing(z.get(f"{s}_baseline")) or is_missing(z.get(f"{s}_monitor")) else float(z[f"{s}_monitor"]) - float(z[f"{s}_baseline"]), "+.3f"))
                  for s in stems],
        "fvc": _num(z.get("fvc_monitor"), ".2f"), "alerts": display_text(z.get("alerts_total")),
        "disturbed_ha": _num(z.get("disturbed_area_m2"), ",.2f", 1e-4), "status": code_label("zone_status", z.get("status")),
        "not_observed": str(z.get("status")) == "not_observed",
        "tier": code_label("tier", z.get("tier")),
        "clear_views": f"{_num(z.get('clear_obs_monitor'), '.0f')} / {_num(z.get('clear_obs_baseline'), '.0f')}",
        "last_clear": display_text(z.get("last_clear_date")) + ("" if is_missing(z.get("last_clear_age_days")) else f" ({int(z['last_clear_age_days'])} d)"),
        "judged": ("" if is_missing(z.get("unsupported_fraction")) else _num(1 - float(z["unsupported_fraction"]), ".0f", 100))
                  + ("" if is_missing(z.get("unsupported_months")) or not str(z.get("unsupported_months")) else f" ({display_text(z.get('unsupported_months'))} 月)"),
        "grades": [(display_text(z.get(g)), REPORT_GRADE_COLOURS.get(str(z.get(g)), "#eeeeee")) for g in grades],
    }


def _alert_row(a: Mapping[str, Any], out_dir: Path, review: Mapping[str, Any] | None) -> dict[str, Any]:
    aid = display_text(a.get("alert_id"))
    status = str(a.get("status"))
    kind = TYPE_STYLE.get(str(a.get("disturbance_type")), TYPE_STYLE["other"])
    figure = relative_file(out_dir, f"figures/{aid}.png")
    return {
        "alert_id": aid, "type": code_label("type", a.get("disturbance_type")), "type_colour": kind.colour,
        "first_detected": display_text(a.get("first_detected")), "last_observed": display_text(a.get("last_observed")),
        "area_ha": _num(a.get("area_m2"), ",.2f", 1e-4), "confidence": code_label("confidence", a.get("confidence")),
        "status": code_label("status", a.get("status")),
        "status_colour": STATUS_STYLE[status].colour if status in STATUS_STYLE else "#333333",
        "magnitude": _num(a.get("magnitude"), ".3f"),
        "before": _src(relative_file(out_dir, a.get("chip_before")) or relative_file(out_dir, f"chips/{aid}_before.png")),
        "after": _src(relative_file(out_dir, a.get("chip_after")) or relative_file(out_dir, f"chips/{aid}_after.png")),
        "figure": _src(figure), "figure_svg": _src(relative_file(out_dir, f"figures/{aid}.svg")),
        "review": None if not review else {"time": display_text(review.get("time")), "by": display_text(review.get("by")),
                                           "note": "" if is_missing(review.get("note")) else str(review.get("note"))},
    }


def _relative(out_dir: Path, paths: list[Path]) -> str | None:
    return quote(paths[0].relative_to(out_dir).as_posix()) if paths else None


def _stem_groups(stems: list[str]) -> list[tuple[list[str], int, int]]:
    """The indices tables: (labels, first, end) slices of ``stems``, :data:`STEMS_PER_TABLE` each."""
    return [([index_label(s) for s in stems[i:i + STEMS_PER_TABLE]], i, min(i + STEMS_PER_TABLE, len(stems)))
            for i in range(0, len(stems), STEMS_PER_TABLE)]


#: a county with more zones than this lists in the report only its zones with alerts, a changed
#: RSEI grade or not observed (:func:`maps.zones_changed`) and counts the others (all of them
#: are in zone_stats.csv): the PDF stays a report, not thousands of pages
REPORT_ZONES_ALL = 50


#: Zone figures are drawn in worker processes from this many on: each process first imports
#: matplotlib, the fonts and the readers (~2 s of CPU), a figure then takes ~0.35 s (PNG + SVG;
#: benchmarks/README.md §10), so below this one process is as fast.
PARALLEL_ZONE_FIGURES = 12


def draw_zone_figures(out_dir: Path, todo: list[tuple[str, pd.Series, Any, Any]], *, workers: int | None = None) -> dict[str, list[Path]]:
    """Draw the figures of ``todo`` (``zone_id, zone_stats row, polygon (EPSG:4326) or None,
    its alerts``) into ``out_dir/figures``; from :data:`PARALLEL_ZONE_FIGURES` zones on, split
    among ``workers`` child processes (default: the cores this process may use;
    :mod:`maps._figure_worker`). matplotlib draws in one thread per process, so
    processes are what puts a second core to work. A child that fails leaves its zones to this
    process. Returns zone_id → the files written (none where the figure failed, with a warning)."""
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = [(Path(out_dir), z, g, za) for _, z, g, za in todo]
    if workers > 1 and len(jobs) >= PARALLEL_ZONE_FIGURES:
        results = _draw_in_processes(jobs, min(workers, len(jobs)))
    else:
        results = draw_jobs(jobs)
    out = {}
    for (zid, *_), (paths, why) in zip(todo, results):
        if why is not None:
            log.warning("zone %s: trend figure not drawn (%s)", zid, why)
        out[zid] = paths
    return out


def _draw_in_processes(jobs: list[tuple[Path, pd.Series, Any, Any]], workers: int) -> list[tuple[list[Path], str | None]]:
    """:func:`maps._figure_worker.draw_jobs` of every ``workers``-th job in each of ``workers``
    child processes at once (this interpreter, this ``sys.path``), in job order."""
    import pickle
    import sys

    results: list[tuple[list[Path], str | None]] = [([], None)] * len(jobs)  # every slot is set below
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory(prefix="redline-figures-") as tmp:
        procs = []
        for k in range(workers):
            src, dst = Path(tmp) / f"jobs{k}.pkl", Path(tmp) / f"done{k}.pkl"
            src.write_bytes(pickle.dumps(jobs[k::workers]))
            procs.append((k, dst, subprocess.Popen([sys.executable, *FIGURE_WORKER, str(src), str(dst)], env=env,
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)))
        for k, dst, proc in procs:
            share = jobs[k::workers]
            if proc.wait() == 0 and dst.is_file():
                got = pickle.loads(dst.read_bytes())
            else:
                log.warning("zone figures: a drawing process exited with %s; its %d zone(s) are drawn here", proc.returncode, len(share))
                got = draw_jobs(share)
            for i, r in zip(range(k, len(jobs), workers), got):
                results[i] = r
    return results


def render_report(out_dir: Path, *, register: Path | str | None = None, pdf: bool = False,
                  manifest: Mapping[str, Any] | None = None, zone_figures: str = "changed", workers: int | None = None) -> list[Path]:
    """Write ``out_dir/report.html`` and the figures it shows; with ``pdf``, also ``report.pdf``
    (A4, :func:`print_pdf`).

    Reads ``zones.geojson`` (required), ``zone_stats.csv`` (required), ``admin_stats.csv`` and
    ``admin_units.geojson`` (optional), the scan's manifest record — ``manifest`` when given
    (the scan passes the record it is about to write), else ``manifest.json`` (optional) — for
    the first page (scan id, baseline and monitor windows, scenes per collection and platform,
    parameters, provenance, the register's chain head at the scan), the rasters
    ``rasters/<x>_{baseline,monitor}.tif`` and the alerts (the register's, statuses
    authoritative, when ``register`` is given; else ``alerts.geojson``) with their chips and
    figures. Writes ``figures/overview.{png,svg}``, ``figures/county_<id>.{png,svg}`` per admin
    unit and ``figures/zone_<id>.{png,svg}`` per zone as ``zone_figures`` says
    (:data:`maps.ZONE_FIGURES`: ``changed`` the zones with alerts or a changed RSEI grade (:func:`maps.zones_changed`),
    ``all``, ``none``); a zone figure already in ``figures/`` is shown too (areas in km² and ha,
    indices unitless). A county of more than :data:`REPORT_ZONES_ALL` zones lists only its
    changed or not observed zones and counts the others.
    ``map.html`` is embedded (iframe, screen only) and linked when it exists. ``workers``:
    processes drawing the zone figures (:func:`draw_zone_figures`; default: the cores this
    process may use). Returns the written files, the page first.
    """
    out_dir = Path(out_dir)
    if zone_figures not in ZONE_FIGURES:
        raise ValueError(f"zone figures {zone_figures!r}: use one of {', '.join(ZONE_FIGURES)}")
    for req in ("zones.geojson", "zone_stats.csv"):
        if not (out_dir / req).exists():
            raise FileNotFoundError(f"{out_dir / req} not found; render_report needs a finished scan's output folder")
    zones = read_layer(out_dir / "zones.geojson")
    zone_stats = pd.read_csv(out_dir / "zone_stats.csv", dtype={"zone_id": str, "admin_id": str})
    admin_stats = pd.read_csv(out_dir / "admin_stats.csv", dtype={"admin_id": str}) if (out_dir / "admin_stats.csv").exists() else pd.DataFrame()
    admin = read_layer(out_dir / "admin_units.geojson") if (out_dir / "admin_units.geojson").exists() else None
    alerts = read_alerts(out_dir, register, set(zone_stats["zone_id"].astype(str)))
    reviews = latest_reviews(register) if register is not None else {}
    # the record as manifest.json holds it (JSON types), whether passed or read
    record = json.loads(json.dumps(manifest, default=str)) if manifest is not None else _read_manifest(out_dir)
    facts = scan_facts(record, Register(register).head() if register is not None else None)
    names = county_names(admin)
    written: list[Path] = []

    geoms = dict(zip(zones["zone_id"].astype(str), zones.geometry)) if "zone_id" in zones else {}
    composite_bounds = None
    if (out_dir / COMPOSITE_PNG).exists() and (out_dir / "rasters/true_colour_monitor.tif").exists():
        import rasterio
        import rasterio.warp

        with rasterio.open(out_dir / "rasters/true_colour_monitor.tif") as src:  # the PNG is this raster warped, same footprint
            w, s, e, n = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        composite_bounds = [[s, w], [n, e]]
    overview = render_overview(out_dir, zones, alerts, admin, out_dir / COMPOSITE_PNG if composite_bounds else None, composite_bounds)
    written += overview

    stems = index_pairs(zone_stats.columns)
    zgrades = _grade_columns(zone_stats.columns)
    agrades = _grade_columns(admin_stats.columns)
    alert_key = alerts["zone_id"].astype(str) if "zone_id" in alerts else pd.Series([], dtype=str)
    zone_stats["admin_id"] = zone_stats["admin_id"].fillna(_NO_ADMIN)
    changed = zones_changed(zone_stats)
    notable = changed | (zone_stats["status"] == "not_observed" if "status" in zone_stats else False)
    counties = []
    admin_rows = {str(r["admin_id"]): r for _, r in admin_stats.iterrows()} if not admin_stats.empty else {}
    by_county = list(zone_stats.groupby("admin_id", sort=True))
    # the zones whose figure is drawn, all first: in worker processes when there are many
    # (draw_zone_figures), then the county sections that show them
    zone_alerts: dict[str, pd.DataFrame] = {}

    def alerts_of(zid: str) -> pd.DataFrame:
        if zid not in zone_alerts:
            zone_alerts[zid] = alerts[alert_key.values == zid].sort_values("alert_id") if not alerts.empty else alerts
        return zone_alerts[zid]

    todo = [(str(z["zone_id"]), z, geoms.get(str(z["zone_id"])), alerts_of(str(z["zone_id"])))
            for _, zrows in by_county for _, z in zrows.iterrows()
            if zone_figures == "all" or (zone_figures == "changed" and bool(changed.loc[z.name]))]
    drawn = draw_zone_figures(out_dir, todo, workers=workers)
    n_figures = sum(1 for paths in drawn.values() if paths)
    for admin_id, zrows in by_county:
        arow = admin_rows.get(str(admin_id), pd.Series({"admin_id": admin_id, "admin_name": names.get(str(admin_id)),
                                                        "alerts_total": int(zrows["alerts_total"].sum())}))
        chart = render_county_figure(out_dir, arow, zrows)
        written += chart
        zone_blocks = []
        listed = zrows if len(zrows) <= REPORT_ZONES_ALL else zrows[notable.loc[zrows.index]]
        for _, z in zrows.sort_values("zone_id").iterrows():
            zid = str(z["zone_id"])
            if zid in drawn:
                fig = drawn[zid]
                written += fig
            elif (out_dir / FIGURE_DIR / zone_figure_name(zid)).is_file():  # drawn before (e.g. --zone-figures all)
                fig = [out_dir / FIGURE_DIR / zone_figure_name(zid)]
            else:
                fig = []
            if z.name not in listed.index:
                continue
            za = alerts_of(zid)
            zone_blocks.append({
                "anchor": f"zone-{safe_name(zid)}", "row": _zone_row(z, stems, zgrades), "figure": _relative(out_dir, fig),
                "alerts": [_alert_row(a, out_dir, reviews.get(str(a.get("alert_id")))) for a in za.to_dict("records")],
            })
        pairs = []
        for st in stems:
            b, m = arow.get(f"{st}_baseline"), arow.get(f"{st}_monitor")
            pairs.append((_num(b, ".3f"), _num(m, ".3f"), "–" if is_missing(b) or is_missing(m) else _num(float(m) - float(b), "+.3f")))
        counties.append({
            "anchor": f"county-{safe_name(admin_id)}", "admin_id": display_text(admin_id),
            "admin_name": "" if is_missing(arow.get("admin_name")) else str(arow.get("admin_name")),
            "summary": {
                "zones": display_text(arow.get("zones_total", len(zrows))), "zones_area_km2": _num(arow.get("zones_area_km2"), ",.3f"),
                "observed": _num(arow.get("valid_obs_fraction"), ".0f", 100), "alerts": display_text(arow.get("alerts_total")),
                "disturbed_ha": _num(arow.get("disturbed_area_m2"), ",.2f", 1e-4),
                "zones_with_alerts": display_text(arow.get("zones_with_alerts")), "zones_not_observed": display_text(arow.get("zones_not_observed")),
                "pairs": pairs,
                "grades": [(g, display_text(arow.get(g)), REPORT_GRADE_COLOURS.get(str(arow.get(g)), "#eeeeee")) for g in agrades],
                "ei": None if "ei_habitat_quality" not in arow else (
                    f"{_num(arow.get('ei'), '.1f')} {display_text(arow.get('ei_grade'))}" if not is_missing(arow.get("ei"))
                    else f"– (missing 缺: {display_text(arow.get('ei_missing'))})"),
            },
            "chart": _relative(out_dir, chart), "zones": zone_blocks, "n_unlisted": len(zrows) - len(listed),
        })

    ctx = {
        "font_stack": CSS_FONT_STACK, "facts": facts, "margins": REPORT_PAGE_MARGINS_MM,
        "scan_id": facts.scan_id or "–", "has_manifest": bool(record),
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "n_zones": len(zone_stats), "n_alerts": len(alerts), "n_counties": len(counties),
        "n_not_observed": int((zone_stats.get("status") == "not_observed").sum()) if "status" in zone_stats else 0,
        "status_counts": [(STATUS_STYLE[k].label, int((alerts["status"] == k).sum()) if "status" in alerts else 0) for k in STATUS_STYLE],
        "stem_groups": _stem_groups(stems), "show_fvc": "fvc" not in stems and "fvc_monitor" in zone_stats,
        "zone_grades": [_grade_label(g) for g in zgrades], "admin_grades": [_grade_label(g) for g in agrades],
        "map": MAP_HTML if (out_dir / MAP_HTML).exists() else None,
        "overview": _relative(out_dir, overview), "counties": counties,
        "has_ei": any(c["summary"]["ei"] is not None for c in counties),
        "zone_figures": zone_figures,
    }
    page = _ENV.get_template("report").render(**ctx)
    path = out_dir / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    written.insert(0, path)
    log.info("report: %s (%d counties, %d zones, %d alerts, %d zone figures drawn: %s)", path, len(counties), len(zone_stats), len(alerts),
             n_figures, zone_figures)
    if pdf:
        printed = print_pdf(path, out_dir / REPORT_PDF)
        if printed is not None:
            written.insert(1, printed)
    return written


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path, *, timeout_s: float = 180.0) -> Path | None:
    """Print a local page to PDF with a headless Chromium found on ``PATH`` (Debian's
    ``chromium``), with every host name unresolvable so nothing is fetched. Returns None (and
    logs why) when no Chromium is installed or printing fails: the HTML report stands alone."""
    exe = _chromium()
    if exe is None:
        log.warning("no chromium on PATH; %s not written (install Debian's chromium to print the report)", pdf.name)
        return None
    pdf.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="redline-pdf-") as profile:
        cmd = [exe, *_OFFLINE_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", Path(html).resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            log.warning("chromium did not print %s within %.0f s; report.pdf not written", html.name, timeout_s)
            return None
    if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
        log.warning("chromium failed to print %s (exit %d): %s", html.name, proc.returncode, proc.stderr.strip().splitlines()[-1:] or "")
        return None
    return pdf


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>生态保护红线遥感监管报告 · Red-line supervision report · {{ scan_id }}</title>
<style>
  /* A4 (ISO 216: 210 × 297 mm), the paper of Chinese official documents (GB/T 9704-2012 §5.2.1) */
  @page { size: A4; margin: {{ margins.top }}mm {{ margins.right }}mm {{ margins.bottom }}mm {{ margins.left }}mm;
          @bottom-left { content: {{ ("redline · " ~ scan_id) | css_string }}; font-size: 8pt; color: #666; }
          @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #666; } }
  * { box-sizing: border-box; }
  body { font-family: {{ font_stack | safe }}; margin: 24px auto; max-width: 1150px; color: #222; line-height: 1.45; padding: 0 16px;
         overflow-wrap: break-word; }
  h1 { font-size: 24px; margin: 0 0 4px; } h2 { border-bottom: 2px solid #444; padding-bottom: 3px; margin-top: 32px; }
  h3 { margin-top: 24px; } .muted { color: #666; font-size: 13px; } p.caption { margin: 14px 0 2px; font-weight: 600; font-size: 14px; }
  table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; max-width: 100%; }
  th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
  td { overflow-wrap: anywhere; } th { background: #f0f0f0; font-weight: 600; } thead th { vertical-align: bottom; }
  th.num { text-align: right; } td.num { text-align: right; white-space: nowrap; overflow-wrap: normal; font-variant-numeric: tabular-nums; }
  table.kv { width: 100%; } table.kv th { width: 26%; } code.hash { word-break: break-all; font-size: 12px; }
  tr.not-observed td { background: #fff3f3; } .badge { display: inline-block; padding: 0 6px; border-radius: 3px; color: #000; }
  .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border: 1px solid #333; }
  td.alert-id { font-family: monospace; font-size: 12px; }
  .figs { display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: flex-start; }
  .figs figure { margin: 0; } .figs img { display: block; max-width: 100%; height: auto; border: 1px solid #999; }
  .figs img.chip { width: 140px; } .figs img.ts { width: 360px; } td.code { overflow-wrap: break-word; }
  figure { margin: 6px 0; } figcaption { font-size: 12px; color: #555; }
  img.fig { max-width: 100%; height: auto; } iframe.map { width: 100%; height: 520px; border: 1px solid #999; }
  @media print {
    body { margin: 0; max-width: none; padding: 0 2mm 0 0; font-size: 10pt; }
    h1 { font-size: 18pt; } h2 { font-size: 14pt; margin-top: 14pt; } h3 { font-size: 11pt; }
    table { font-size: 8pt; } code.hash { font-size: 8pt; } .muted { font-size: 8pt; }
    .screen-only { display: none; } section.county { break-before: page; } img#overview { max-height: 150mm; width: auto; }
    thead { display: table-header-group; }
    tr, figure, .figs, tbody.alert-block, table.kv, header > table { break-inside: avoid; }
    h2, h3, p.caption { break-after: avoid; }
    a { color: inherit; text-decoration: none; }
  }
</style>
</head>
<body>
<header id="first-page">
<h1>生态保护红线遥感监管报告<br><span style="font-size:0.75em">Red-line zone remote-sensing supervision report</span></h1>
<p class="muted">generated 生成于 {{ generated }}{% if has_manifest %} · provenance 溯源 <a href="manifest.json">manifest.json</a>{% endif %}</p>
<table class="kv" id="scan-facts">
<tr><th>scan 监测批次</th><td><b id="scan-id">{{ scan_id }}</b>{% if not has_manifest %} <span class="muted">(no manifest.json: periods and provenance unknown 无溯源清单)</span>{% endif %}</td></tr>
<tr><th>baseline period 基准期</th><td id="baseline">{% if facts.baseline %}{{ facts.baseline[0] }} – {{ facts.baseline[1] }}{% else %}–{% endif %}</td></tr>
<tr><th>monitor period 监测期</th><td id="monitor">{% if facts.monitor %}{{ facts.monitor[0] }} – {{ facts.monitor[1] }}{% else %}–{% endif %}</td></tr>
<tr><th>scenes used 使用影像</th><td id="n-scenes">{{ facts.n_scenes if facts.n_scenes is not none else "–" }}{% for kind, n in facts.failures %} · {{ n }} {{ kind }}(s) left out 未处理 (manifest.json <code>failures</code>){% endfor %}</td></tr>
<tr><th>register chain head 台账链头</th><td id="register-head">{% if facts.head %}at the scan 扫描时: seq {{ facts.head.seq }} · <code class="hash">{{ facts.head.row_hash }}</code>{% else %}–{% endif %}
{% if facts.head_now %}<br>now 当前: seq {{ facts.head_now.seq }} · <code class="hash">{{ facts.head_now.row_hash }}</code>{% endif %}
{% if facts.head %}<br><span class="muted">keep it: <code>redline verify OUT --head {{ (facts.head_now or facts.head).row_hash }}</code> proves no later decision was deleted 可用于核验此后记录未被删除</span>{% endif %}</td></tr>
<tr><th>summary 概况</th><td>{{ n_counties }} counties 县级行政区 · {{ n_zones }} zones 红线区 · <b>{{ n_alerts }}</b> alerts 预警图斑
({% for label, n in status_counts %}{{ label }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %})
{% if n_not_observed %} · <b>{{ n_not_observed }}</b> zone(s) not observed 未有效观测 (no alert there does not mean no change){% endif %}</td></tr>
</table>
{% if facts.scenes %}
<p class="caption">Scenes used 使用影像</p>
<table id="scenes">
<thead><tr><th>collection 数据集</th><th>platform 卫星</th><th class="num">scenes 景数</th><th class="num">in baseline 基准期</th><th class="num">in monitor 监测期</th><th>first 最早</th><th>last 最晚</th></tr></thead>
<tbody>{% for r in facts.scenes %}<tr><td>{{ r.collection }}</td><td>{{ r.platform }}</td><td class="num">{{ r.n }}</td><td class="num">{{ r.baseline }}</td><td class="num">{{ r.monitor }}</td><td>{{ r.first }}</td><td>{{ r.last }}</td></tr>
{% endfor %}</tbody>
</table>
{% endif %}
{% if facts.parameters %}
<p class="caption">Parameters 主要参数</p>
<table class="kv" id="parameters">
{% for label, value in facts.parameters %}<tr><th>{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% if facts.provenance %}
<p class="caption">Provenance 溯源</p>
<table class="kv" id="provenance">
{% for label, value in facts.provenance %}<tr><th>{{ label }}</th><td>{% if "sha256" in label %}<code class="hash">{{ value }}</code>{% else %}{{ value }}{% endif %}</td></tr>
{% endfor %}
</table>
{% endif %}
</header>

<section id="map">
<h2>Map 监管图</h2>
{% if overview %}<figure><img class="fig" id="overview" src="{{ overview }}" alt="overview map 总览图"><figcaption>Monitor-period true-colour composite, zones by category, county borders dashed, alerts filled by type. 监测期真彩色合成影像、红线区、县界与预警图斑。</figcaption></figure>{% endif %}
{% if map %}<p class="screen-only"><a href="{{ map }}">Open the interactive map 打开交互地图</a></p>
<iframe class="map screen-only" src="{{ map }}" title="interactive map 交互地图"></iframe>{% endif %}
</section>

<section id="summary">
<h2>Summary by county 县级汇总</h2>
<table id="county-table">
<thead><tr><th>county 行政区</th><th>code 代码</th><th class="num">zones 红线区</th><th class="num">zone area 面积 km²</th><th class="num">observed 有效观测 %</th>
<th class="num">alerts 预警</th><th class="num">disturbed 扰动 ha</th><th class="num">zones with alerts 有预警</th><th class="num">not observed 未观测</th></tr></thead>
<tbody>
{% for c in counties %}<tr><td><a href="#{{ c.anchor }}">{{ c.admin_name or "–" }}</a></td><td class="code">{{ c.admin_id }}</td><td class="num">{{ c.summary.zones }}</td>
<td class="num">{{ c.summary.zones_area_km2 }}</td><td class="num">{{ c.summary.observed }}</td>
<td class="num">{{ c.summary.alerts }}</td><td class="num">{{ c.summary.disturbed_ha }}</td><td class="num">{{ c.summary.zones_with_alerts }}</td>
<td class="num">{{ c.summary.zones_not_observed }}</td></tr>
{% endfor %}
</tbody>
</table>
{% if admin_grades or has_ei %}
<table id="county-grades">
<thead><tr><th>county 行政区</th><th>code 代码</th>{% for g in admin_grades %}<th>{{ g }}</th>{% endfor %}{% if has_ei %}<th>EI 生态环境状况指数 (HJ 192-2015)</th>{% endif %}</tr></thead>
<tbody>
{% for c in counties %}<tr><td>{{ c.admin_name or "–" }}</td><td class="code">{{ c.admin_id }}</td>{% for g, v, col in c.summary.grades %}<td><span class="badge" style="background:{{ col }}">{{ v }}</span></td>{% endfor %}{% if has_ei %}<td class="ei">{{ c.summary.ei or "–" }}</td>{% endif %}</tr>
{% endfor %}
</tbody>
</table>
{% endif %}
{% for labels, lo, hi in stem_groups %}
<table class="county-index">
<thead><tr><th rowspan="2">county 行政区</th><th rowspan="2">code 代码</th>{% for s in labels %}<th colspan="3">{{ s }}</th>{% endfor %}</tr>
<tr>{% for s in labels %}<th class="num">baseline 基准</th><th class="num">monitor 监测</th><th class="num">change 变化</th>{% endfor %}</tr></thead>
<tbody>
{% for c in counties %}<tr><td>{{ c.admin_name or "–" }}</td><td class="code">{{ c.admin_id }}</td>{% for b, m, d in c.summary.pairs[lo:hi] %}<td class="num">{{ b }}</td><td class="num">{{ m }}</td><td class="num">{{ d }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
{% endfor %}
</section>

{% for c in counties %}
<section class="county" id="{{ c.anchor }}">
<h2>{{ c.admin_name }} <span class="muted">{{ c.admin_id }}</span></h2>
{% if c.chart %}<figure><img class="fig" src="{{ c.chart }}" alt="county summary chart 县级汇总图"><figcaption><a href="{{ c.chart | replace('.png', '.svg') }}">SVG</a></figcaption></figure>{% endif %}
<p class="caption">Zones 红线区{% if c.n_unlisted %} ({{ c.zones | length }} listed: alerts, a changed RSEI grade or not observed 有预警、RSEI 等级变化或未有效观测)
</p><p class="unlisted muted">{{ c.n_unlisted }} other zone(s) without alerts, grade change (RSEI ≥ 0.01) or observation gap are not listed 其余 {{ c.n_unlisted }} 个红线区无预警、无等级变化，未逐一列出: see <code>zone_stats.csv</code> and <code>zones.geojson</code>.{% endif %}</p>
<table class="zone-table">
<thead><tr><th>zone 红线区</th><th>code 编号</th><th>category 类型</th><th>tier 管控分区</th><th class="num">area 面积 km²</th><th class="num">alerts 预警</th><th class="num">disturbed 扰动 ha</th>{% if show_fvc %}<th class="num">FVC</th>{% endif %}<th>status 状态</th>{% for g in zone_grades %}<th>{{ g }}</th>{% endfor %}</tr></thead>
<tbody>
{% for z in c.zones %}<tr class="{{ 'not-observed' if z.row.not_observed else '' }}"><td><a href="#{{ z.anchor }}" class="zone-name">{{ z.row.zone_name }}</a></td><td class="code">{{ z.row.zone_id }}</td>
<td>{{ z.row.category }}</td><td>{{ z.row.tier }}</td><td class="num">{{ z.row.area_km2 }}</td><td class="num">{{ z.row.alerts }}</td><td class="num">{{ z.row.disturbed_ha }}</td>{% if show_fvc %}<td class="num">{{ z.row.fvc }}</td>{% endif %}
<td>{% if z.row.not_observed %}⚠ {% endif %}{{ z.row.status }}</td>{% for v, col in z.row.grades %}<td><span class="badge" style="background:{{ col }}">{{ v }}</span></td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
<p class="caption">Observation 观测情况</p>
<table class="zone-obs">
<thead><tr><th>zone 红线区</th><th>code 编号</th><th class="num">observed 有效观测 %</th><th>clear views 晴空观测 (monitor / baseline, median)</th><th>last clear view 最近晴空观测 (age)</th><th>judged 可判读 % (months the baseline cannot judge 基准期无法判读月份)</th></tr></thead>
<tbody>
{% for z in c.zones %}<tr class="{{ 'not-observed' if z.row.not_observed else '' }}"><td>{{ z.row.zone_name }}</td><td class="code">{{ z.row.zone_id }}</td><td class="num">{{ z.row.observed }}</td>
<td class="num clear-views">{{ z.row.clear_views }}</td><td class="last-clear">{{ z.row.last_clear }}</td><td class="judged">{{ z.row.judged }}</td></tr>
{% endfor %}
</tbody>
</table>
{% for labels, lo, hi in stem_groups %}
<p class="caption">Indices 指数{% if stem_groups | length > 1 %} ({{ loop.index }}/{{ stem_groups | length }}){% endif %}</p>
<table class="zone-index">
<thead><tr><th rowspan="2">zone 红线区</th><th rowspan="2">code 编号</th>{% for s in labels %}<th colspan="3">{{ s }}</th>{% endfor %}</tr>
<tr>{% for s in labels %}<th class="num">baseline 基准</th><th class="num">monitor 监测</th><th class="num">change 变化</th>{% endfor %}</tr></thead>
<tbody>
{% for z in c.zones %}<tr class="index-row" data-zone="{{ z.row.zone_id }}"><td>{{ z.row.zone_name }}</td><td class="code">{{ z.row.zone_id }}</td>{% for b, m, d in z.row.pairs[lo:hi] %}<td class="num">{{ b }}</td><td class="num">{{ m }}</td><td class="num">{{ d }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
{% endfor %}

{% for z in c.zones %}
<article class="zone" id="{{ z.anchor }}">
<h3 class="zone-title"><span class="zone-name">{{ z.row.zone_name }}</span> <span class="muted">{{ z.row.zone_id }} · {{ z.row.category }}</span></h3>
{% if z.figure %}<figure><img class="fig" src="{{ z.figure }}" alt="zone trend 指数变化"><figcaption>Index means of both periods and per-pixel spread; NDVI change with alerts outlined. <a href="{{ z.figure | replace('.png', '.svg') }}">SVG</a></figcaption></figure>
{% else %}<p class="muted no-zone-figure">Zone figure not drawn (outputs.zone_figures: {{ zone_figures }}) 未绘制红线区图: <code>redline map OUT --zone-figures all</code> draws every zone's, the review service draws it when the zone is opened.</p>{% endif %}
{% if z.alerts %}
<table class="alert-table">
<thead><tr><th>alert 预警编号</th><th>type 变化类型</th><th>first detected 首次发现 / last observed 最近观测</th><th class="num">area 面积 ha</th><th>confidence 置信度</th><th>status 核查状态</th></tr></thead>
{% for a in z.alerts %}<tbody class="alert-block" id="alert-{{ a.alert_id }}">
<tr class="alert"><td class="alert-id">{{ a.alert_id }}</td>
<td><span class="swatch" style="background:{{ a.type_colour }}"></span>{{ a.type }}</td><td>{{ a.first_detected }}<br><span class="muted">last 最近 {{ a.last_observed }}</span></td>
<td class="num">{{ a.area_ha }}</td><td>{{ a.confidence }}</td>
<td><span class="swatch" style="background:#fff;border:2px solid {{ a.status_colour }}"></span>{{ a.status }}
{% if a.review %}<br><span class="muted">{{ a.review.time }} · {{ a.review.by }}</span>{% if a.review.note %}<br><span class="note">{{ a.review.note }}</span>{% endif %}{% endif %}</td></tr>
<tr class="alert-figures"><td colspan="6"><div class="figs">
{% if a.before %}<figure><img class="chip" src="{{ a.before }}" alt="before 变化前"><figcaption>before 变化前</figcaption></figure>{% endif %}
{% if a.after %}<figure><img class="chip" src="{{ a.after }}" alt="after 变化后"><figcaption>after 变化后</figcaption></figure>{% endif %}
{% if a.figure %}<figure><a href="{{ a.figure_svg or a.figure }}"><img class="ts" src="{{ a.figure }}" alt="index time series 指数时序"></a><figcaption>time series 时序</figcaption></figure>{% endif %}
{% if not a.before and not a.after and not a.figure %}<span class="muted">no chip or time series 无影像切片或时序图</span>{% endif %}
</div></td></tr>
</tbody>
{% endfor %}
</table>
{% else %}<p class="muted">No alert in this zone 本红线区无预警{% if z.row.not_observed %} — but the zone was not observed 未有效观测{% endif %}.</p>{% endif %}
</article>
{% endfor %}
</section>
{% endfor %}
<footer class="muted"><p>redline · figures in <code>figures/</code> (PNG + SVG) · data: alerts.geojson, zone_stats.csv, admin_stats.csv</p></footer>
</body>
</html>
"""

def _css_string(text: object) -> markupsafe.Markup:
    """``text`` as a quoted CSS string: letters, digits (any script), space and ``._-·`` kept,
    every other character as a CSS escape (CSS Syntax Level 3 §4.3.7: ``\\`` + hex + space), so
    that nothing in it can end the string or the ``<style>`` element."""
    kept = "".join(c if c.isalnum() or c in " ._-·" else f"\\{ord(c):x} " for c in str(text))
    return markupsafe.Markup(f'"{kept}"')


_ENV = jinja2.Environment(loader=jinja2.DictLoader({"report": _TEMPLATE}), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_ENV.filters["css_string"] = _css_string
