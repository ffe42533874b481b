"""The county report ``OUT/report.html`` (and, optionally, ``report.pdf`` printed by a headless
Chromium): per administrative unit and per zone, the summary tables, figures, the map, the alert
list with chips and any grades. One self-contained page with no JavaScript; every text from the
inputs is escaped by Jinja2's autoescaping."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import pandas as pd
from rasterio.errors import RasterioError

from maps._fonts import CSS_FONT_STACK
from redline.register import Register
from maps._map import COMPOSITE_PNG, MAP_HTML, display_text, is_missing, latest_reviews, read_alerts, read_layer, relative_file
from maps._style import STATUS_STYLE, TYPE_STYLE
from maps._summary import index_label, index_pairs, render_county_figure, render_overview, render_zone_figure, safe_name

log = logging.getLogger(__name__)

__all__ = ["render_report", "print_pdf", "REPORT_HTML", "REPORT_PDF", "REPORT_GRADE_COLOURS"]

REPORT_HTML = "report.html"
REPORT_PDF = "report.pdf"
#: HJ 192-2015 (生态环境状况评价技术规范) grades, best first, with a colour each (the report's
#: badges; the assessment figures' English RSEI grades are maps.GRADE_COLOURS)
REPORT_GRADE_COLOURS = {"优": "#1a9850", "良": "#91cf60", "一般": "#fee08b", "较差": "#fc8d59", "差": "#d73027"}
#: Chromium flags for printing: no network at all (every host name resolves to nothing)
_OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
_NO_ADMIN = "(none)"


def _num(value: object, fmt: str, scale: float = 1.0) -> str:
    return "–" if is_missing(value) else format(float(value) * scale, fmt)


def _src(rel: str | None) -> str | None:
    return quote(rel) if rel else None


def _grade_columns(columns) -> list[str]:
    return [c for c in columns if c == "grade" or c.endswith("_grade") or "_grade_" in c]


def _manifest(out_dir: Path) -> Mapping[str, Any]:
    path = out_dir / "manifest.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        log.warning("%s is not valid JSON (%s); the report leaves out the scan's windows", path, exc)
        return {}


def _zone_row(z: Mapping[str, Any], stems: list[str], grades: list[str]) -> dict[str, Any]:
    return {
        "zone_id": display_text(z.get("zone_id")), "zone_name": display_text(z.get("zone_name")), "category": display_text(z.get("category")),
        "area_km2": _num(z.get("area_km2"), ",.3f"), "observed": _num(z.get("valid_obs_fraction"), ".0f", 100),
        "pairs": [(_num(z.get(f"{s}_baseline"), ".3f"), _num(z.get(f"{s}_monitor"), ".3f"),
                   _num(None if is_missing(z.get(f"{s}_baseline")) or is_missing(z.get(f"{s}_monitor")) else float(z[f"{s}_monitor"]) - float(z[f"{s}_baseline"]), "+.3f"))
                  for s in stems],
        "fvc": _num(z.get("fvc_monitor"), ".2f"), "alerts": display_text(z.get("alerts_total")),
        "disturbed_ha": _num(z.get("disturbed_area_m2"), ",.2f", 1e-4), "status": display_text(z.get("status")),
        "not_observed": str(z.get("status")) == "not_observed",
        "tier": display_text(z.get("tier")),
        "clear_views": f"{_num(z.get('clear_obs_monitor'), '.0f')} / {_num(z.get('clear_obs_baseline'), '.0f')}",
        "last_clear": display_text(z.get("last_clear_date")) + ("" if is_missing(z.get("last_clear_age_days")) else f" ({int(z['last_clear_age_days'])} d)"),
        "judged": ("" if is_missing(z.get("unsupported_fraction")) else _num(1 - float(z["unsupported_fraction"]), ".0f", 100))
                  + ("" if is_missing(z.get("unsupported_months")) or not str(z.get("unsupported_months")) else f" ({display_text(z.get('unsupported_months'))} 月)"),
        "grades": [(display_text(z.get(g)), REPORT_GRADE_COLOURS.get(str(z.get(g)), "#eeeeee")) for g in grades],
    }


def _alert_row(a: Mapping[str, Any], out_dir: Path, review: Mapping[str, Any] | None) -> dict[str, Any]:
    aid = display_text(a.get("alert_id"))
    status = str(a.get("status"))
    figure = relative_file(out_dir, f"figures/{aid}.png")
    return {
        "alert_id": aid, "type": TYPE_STYLE.get(str(a.get("disturbance_type")), TYPE_STYLE["other"]).label,
        "type_colour": TYPE_STYLE.get(str(a.get("disturbance_type")), TYPE_STYLE["other"]).colour,
        "first_detected": display_text(a.get("first_detected")), "last_observed": display_text(a.get("last_observed")),
        "area_ha": _num(a.get("area_m2"), ",.2f", 1e-4), "confidence": display_text(a.get("confidence")),
        "status": STATUS_STYLE[status].label if status in STATUS_STYLE else display_text(a.get("status")),
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


def render_report(out_dir: Path, *, register: Path | None = None, pdf: bool = False) -> list[Path]:
    """Write ``out_dir/report.html`` and the figures it shows; with ``pdf``, also ``report.pdf``.

    Reads ``zones.geojson`` (required), ``zone_stats.csv`` (required), ``admin_stats.csv`` and
    ``admin_units.geojson`` (optional), ``manifest.json`` (optional: scan id and windows), the
    rasters ``rasters/<x>_{baseline,monitor}.tif`` and the alerts (the register's, statuses
    authoritative, when ``register`` is given; else ``alerts.geojson``) with their chips and
    figures. Writes ``figures/overview.{png,svg}``, ``figures/zone_<id>.{png,svg}`` per zone and
    ``figures/county_<id>.{png,svg}`` per admin unit (areas in km² and ha, indices unitless).
    ``map.html`` is embedded (iframe, screen only) and linked when it exists. Returns the
    written files, the page first.
    """
    out_dir = Path(out_dir)
    for req in ("zones.geojson", "zone_stats.csv"):
        if not (out_dir / req).exists():
            raise FileNotFoundError(f"{out_dir / req} not found; render_report needs a finished scan's output folder")
    zones = read_layer(out_dir / "zones.geojson")
    zone_stats = pd.read_csv(out_dir / "zone_stats.csv", dtype={"zone_id": str, "admin_id": str})
    admin_stats = pd.read_csv(out_dir / "admin_stats.csv", dtype={"admin_id": str}) if (out_dir / "admin_stats.csv").exists() else pd.DataFrame()
    admin = read_layer(out_dir / "admin_units.geojson") if (out_dir / "admin_units.geojson").exists() else None
    alerts = read_alerts(out_dir, register, set(zone_stats["zone_id"].astype(str)))
    reviews = latest_reviews(register) if register is not None else {}
    manifest = _manifest(out_dir)
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
    counties = []
    admin_rows = {str(r["admin_id"]): r for _, r in admin_stats.iterrows()} if not admin_stats.empty else {}
    for admin_id, zrows in zone_stats.groupby("admin_id", sort=True):
        arow = admin_rows.get(str(admin_id), pd.Series({"admin_id": admin_id, "admin_name": None, "alerts_total": int(zrows["alerts_total"].sum())}))
        chart = render_county_figure(out_dir, arow, zrows)
        written += chart
        zone_blocks = []
        for _, z in zrows.sort_values("zone_id").iterrows():
            zid = str(z["zone_id"])
            za = alerts[alert_key.values == zid].sort_values("alert_id") if not alerts.empty else alerts
            try:
                fig = render_zone_figure(out_dir, z, geoms.get(zid), za)
            except (ValueError, OSError, RasterioError) as exc:  # one zone's figure must not cost the report
                log.warning("zone %s: trend figure not drawn (%s)", zid, exc)
                fig = []
            written += fig
            zone_blocks.append({
                "anchor": f"zone-{safe_name(zid)}", "row": _zone_row(z, stems, zgrades), "figure": _relative(out_dir, fig),
                "alerts": [_alert_row(a, out_dir, reviews.get(str(a.get("alert_id")))) for a in za.to_dict("records")],
            })
        counties.append({
            "anchor": f"county-{safe_name(admin_id)}", "admin_id": display_text(admin_id),
            "admin_name": "" if is_missing(arow.get("admin_name")) else str(arow.get("admin_name")),
            "summary": {
                "zones": display_text(arow.get("zones_total", len(zrows))), "zones_area_km2": _num(arow.get("zones_area_km2"), ",.3f"),
                "observed": _num(arow.get("valid_obs_fraction"), ".0f", 100), "alerts": display_text(arow.get("alerts_total")),
                "disturbed_ha": _num(arow.get("disturbed_area_m2"), ",.2f", 1e-4),
                "zones_with_alerts": display_text(arow.get("zones_with_alerts")), "zones_not_observed": display_text(arow.get("zones_not_observed")),
                "pairs": [(index_label(s), _num(arow.get(f"{s}_baseline"), ".3f"), _num(arow.get(f"{s}_monitor"), ".3f")) for s in stems],
                "grades": [(g, display_text(arow.get(g)), REPORT_GRADE_COLOURS.get(str(arow.get(g)), "#eeeeee")) for g in agrades],
                "ei": None if "ei_habitat_quality" not in arow else (
                    f"{_num(arow.get('ei'), '.1f')} {display_text(arow.get('ei_grade'))}" if not is_missing(arow.get("ei"))
                    else f"– (missing 缺: {display_text(arow.get('ei_missing'))})"),
            },
            "chart": _relative(out_dir, chart), "zones": zone_blocks,
        })

    cfg = (manifest.get("config") or {}).get("resolved") or {}
    ctx = {
        "font_stack": CSS_FONT_STACK,
        "scan_id": manifest.get("scan_id") or out_dir.name,
        "baseline": cfg.get("baseline") or {}, "monitor": cfg.get("monitor") or {},
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "n_zones": len(zone_stats), "n_alerts": len(alerts), "n_counties": len(counties),
        "n_not_observed": int((zone_stats.get("status") == "not_observed").sum()) if "status" in zone_stats else 0,
        "status_counts": [(STATUS_STYLE[k].label, int((alerts["status"] == k).sum()) if "status" in alerts else 0) for k in STATUS_STYLE],
        "stems": [index_label(s) for s in stems], "zone_grades": zgrades, "admin_grades": agrades,
        "map": MAP_HTML if (out_dir / MAP_HTML).exists() else None,
        "overview": _relative(out_dir, overview), "counties": counties,
        "has_manifest": bool(manifest),
        "register_head": Register(register).head() if register is not None else None,
        "has_ei": any(c["summary"]["ei"] is not None for c in counties),
    }
    page = _ENV.get_template("report").render(**ctx)
    path = out_dir / REPORT_HTML
    path.write_text(page, encoding="utf-8")
    written.insert(0, path)
    log.info("report: %s (%d counties, %d zones, %d alerts)", path, len(counties), len(zone_stats), len(alerts))
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
  body { font-family: {{ font_stack | safe }}; margin: 24px auto; max-width: 1150px; color: #222; line-height: 1.45; padding: 0 16px; }
  h1 { font-size: 24px; margin-bottom: 4px; } h2 { border-bottom: 2px solid #444; padding-bottom: 3px; margin-top: 36px; }
  h3 { margin-top: 26px; } .muted { color: #666; font-size: 13px; }
  table { border-collapse: collapse; font-size: 13px; margin: 8px 0; } th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
  th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.not-observed td { background: #fff3f3; } .badge { display: inline-block; padding: 0 6px; border-radius: 3px; color: #000; }
  td.chips { white-space: nowrap; } .chips img { width: 150px; margin-right: 4px; border: 1px solid #999; } .ts img { width: 360px; }
  tr.alert td:first-child { white-space: nowrap; }
  figure { margin: 6px 0; } figcaption { font-size: 12px; color: #555; }
  img.fig { max-width: 100%; } iframe.map { width: 100%; height: 520px; border: 1px solid #999; }
  .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border: 1px solid #333; }
  @media print { .screen-only { display: none; } section.county { break-before: page; } .alert { break-inside: avoid; } body { margin: 0; } }
</style>
</head>
<body>
<header>
<h1>生态保护红线遥感监管报告<br><span style="font-size:18px">Red-line zone remote-sensing supervision report</span></h1>
<p class="muted">scan 监测批次 <b id="scan-id">{{ scan_id }}</b>
{% if baseline %} · baseline 基准期 {{ baseline.start }} – {{ baseline.end }}{% endif %}
{% if monitor %} · monitor 监测期 {{ monitor.start }} – {{ monitor.end }}{% endif %}
· generated 生成于 {{ generated }}{% if has_manifest %} · provenance 溯源 <a href="manifest.json">manifest.json</a>{% endif %}</p>
{% if register_head %}<p class="muted" id="register-head">register chain head 台账链头: seq {{ register_head.seq }} · <code>{{ register_head.row_hash }}</code>
(keep it: <code>redline verify OUT --head {{ register_head.row_hash }}</code> proves no later decision was deleted 可用于核验此后记录未被删除)</p>{% endif %}
<p>{{ n_counties }} counties 县级行政区 · {{ n_zones }} zones 红线区 · <b>{{ n_alerts }}</b> alerts 预警图斑
({% for label, n in status_counts %}{{ label }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %})
{% if n_not_observed %} · <b>{{ n_not_observed }}</b> zone(s) not observed 未有效观测 (no alert there does not mean no change){% endif %}</p>
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
<tr><th>county 行政区</th><th>code 代码</th><th>zones 红线区</th><th>zone area 面积 km²</th><th>observed 有效观测 %</th>
{% for s in stems %}<th>{{ s }} baseline 基准</th><th>{{ s }} monitor 监测</th>{% endfor %}
<th>alerts 预警</th><th>disturbed 扰动 ha</th><th>zones with alerts 有预警</th><th>not observed 未观测</th>{% for g in admin_grades %}<th>{{ g }} 等级</th>{% endfor %}{% if has_ei %}<th>EI 生态环境状况指数 (HJ 192-2015)</th>{% endif %}</tr>
{% for c in counties %}<tr><td><a href="#{{ c.anchor }}">{{ c.admin_name or "–" }}</a></td><td>{{ c.admin_id }}</td><td class="num">{{ c.summary.zones }}</td>
<td class="num">{{ c.summary.zones_area_km2 }}</td><td class="num">{{ c.summary.observed }}</td>
{% for label, b, m in c.summary.pairs %}<td class="num">{{ b }}</td><td class="num">{{ m }}</td>{% endfor %}
<td class="num">{{ c.summary.alerts }}</td><td class="num">{{ c.summary.disturbed_ha }}</td><td class="num">{{ c.summary.zones_with_alerts }}</td>
<td class="num">{{ c.summary.zones_not_observed }}</td>{% for g, v, col in c.summary.grades %}<td><span class="badge" style="background:{{ col }}">{{ v }}</span></td>{% endfor %}{% if has_ei %}<td class="ei">{{ c.summary.ei or "–" }}</td>{% endif %}</tr>
{% endfor %}
</table>
</section>

{% for c in counties %}
<section class="county" id="{{ c.anchor }}">
<h2>{{ c.admin_name }} <span class="muted">{{ c.admin_id }}</span></h2>
{% if c.chart %}<figure><img class="fig" src="{{ c.chart }}" alt="county summary chart 县级汇总图"><figcaption><a href="{{ c.chart | replace('.png', '.svg') }}">SVG</a></figcaption></figure>{% endif %}
<table class="zone-table">
<tr><th>zone 红线区</th><th>code 编号</th><th>category 类型</th><th>tier 管控分区</th><th>area km²</th><th>observed %</th><th>clear views 晴空观测 (monitor / baseline, median)</th><th>last clear view 最近晴空观测 (age)</th><th>judged 可判读 % (months the baseline cannot judge 基准期无法判读月份)</th>
{% for s in stems %}<th>{{ s }} baseline</th><th>{{ s }} monitor</th><th>{{ s }} change 变化</th>{% endfor %}
<th>FVC</th><th>alerts 预警</th><th>disturbed ha</th><th>status 状态</th>{% for g in zone_grades %}<th>{{ g }} 等级</th>{% endfor %}</tr>
{% for z in c.zones %}<tr class="{{ 'not-observed' if z.row.not_observed else '' }}"><td><a href="#{{ z.anchor }}" class="zone-name">{{ z.row.zone_name }}</a></td><td>{{ z.row.zone_id }}</td>
<td>{{ z.row.category }}</td><td>{{ z.row.tier }}</td><td class="num">{{ z.row.area_km2 }}</td><td class="num">{{ z.row.observed }}</td>
<td class="num clear-views">{{ z.row.clear_views }}</td><td class="last-clear">{{ z.row.last_clear }}</td><td class="judged">{{ z.row.judged }}</td>
{% for b, m, d in z.row.pairs %}<td class="num">{{ b }}</td><td class="num">{{ m }}</td><td class="num">{{ d }}</td>{% endfor %}
<td class="num">{{ z.row.fvc }}</td><td class="num">{{ z.row.alerts }}</td><td class="num">{{ z.row.disturbed_ha }}</td>
<td>{{ z.row.status }}{% if z.row.not_observed %} ⚠ 未有效观测{% endif %}</td>{% for v, col in z.row.grades %}<td><span class="badge" style="background:{{ col }}">{{ v }}</span></td>{% endfor %}</tr>
{% endfor %}
</table>

{% for z in c.zones %}
<article class="zone" id="{{ z.anchor }}">
<h3 class="zone-title"><span class="zone-name">{{ z.row.zone_name }}</span> <span class="muted">{{ z.row.zone_id }} · {{ z.row.category }}</span></h3>
{% if z.figure %}<figure><img class="fig" src="{{ z.figure }}" alt="zone trend 指数变化"><figcaption>Index means of both periods and per-pixel spread; NDVI change with alerts outlined. <a href="{{ z.figure | replace('.png', '.svg') }}">SVG</a></figcaption></figure>{% endif %}
{% if z.alerts %}
<table class="alert-table">
<tr><th>alert 预警</th><th>type 类型</th><th>detected 发现</th><th>area ha</th><th>confidence 置信度</th><th>status 状态</th><th>before 变化前 / after 变化后</th><th>time series 时序</th></tr>
{% for a in z.alerts %}<tr class="alert" id="alert-{{ a.alert_id }}"><td>{{ a.alert_id }}</td>
<td><span class="swatch" style="background:{{ a.type_colour }}"></span>{{ a.type }}</td><td>{{ a.first_detected }}<br><span class="muted">last 最近 {{ a.last_observed }}</span></td>
<td class="num">{{ a.area_ha }}</td><td>{{ a.confidence }}</td>
<td><span class="swatch" style="background:#fff;border:2px solid {{ a.status_colour }}"></span>{{ a.status }}
{% if a.review %}<br><span class="muted">{{ a.review.time }} · {{ a.review.by }}</span>{% if a.review.note %}<br><span class="note">{{ a.review.note }}</span>{% endif %}{% endif %}</td>
<td class="chips">{% if a.before %}<img src="{{ a.before }}" alt="before 变化前">{% endif %}{% if a.after %}<img src="{{ a.after }}" alt="after 变化后">{% endif %}{% if not a.before and not a.after %}–{% endif %}</td>
<td class="ts">{% if a.figure %}<a href="{{ a.figure_svg or a.figure }}"><img src="{{ a.figure }}" alt="index time series 指数时序"></a>{% else %}–{% endif %}</td></tr>
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

_ENV = jinja2.Environment(loader=jinja2.DictLoader({"report": _TEMPLATE}), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
