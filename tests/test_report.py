"""report.html and the zone/county figures from a small real output folder (real rasters, zone
statistics computed by redline.assess with exactextract, a real GeoPackage register), and the
`redline map` re-render of a real scan after a review."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import geopandas as gpd
import markupsafe
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from rasterio.transform import Affine

from maps import REPORT_GRADE_COLOURS, REPORT_PAGE_MARGINS_MM, STEMS_PER_TABLE, index_label, index_pairs, print_pdf, render_outputs, render_report, safe_name
from redline import assess
from tests.test_maps import ALERTS, SCRIPT_NAME, X0, Y0, alert_id_of, make_out_dir, write_register

RES = 10.0


def _write_raster(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float32",
                       crs="EPSG:32648", transform=Affine(RES, 0, X0 - 100, 0, -RES, Y0 + 100), nodata=np.nan) as dst:
        dst.write(data.astype("float32"), 1)


def _rc(x: float, y: float) -> tuple[int, int]:
    return int((Y0 + 100 - y) / RES), int((x - (X0 - 100)) / RES)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """The map tests' output folder (tests.test_maps.make_out_dir)."""
    return make_out_dir(tmp_path / "out")


@pytest.fixture
def report_dir(out_dir: Path) -> Path:
    """The map fixture plus NDVI rasters (a drop under the first alert), an `observed` raster (zone
    Z3 never seen clear) and zone/admin statistics computed from them by redline.assess."""
    return _add_statistics(out_dir)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """``report_dir`` rendered once, for the tests that only read the page and figures."""
    out = _add_statistics(make_out_dir(tmp_path_factory.mktemp("report") / "out"))
    render_report(out, zone_figures="all")
    return out


def _add_statistics(out_dir: Path) -> Path:
    rng = np.random.default_rng(1)
    shape = (230, 240)  # 2.3 km × 2.4 km of 10 m pixels around the zones
    base = 0.70 + 0.02 * rng.standard_normal(shape)
    mon = base - 0.01
    r, c = _rc(X0 + 100, Y0 - 300)  # north-west corner of alert 0 (80 m × 100 m)
    mon[r:r + 10, c:c + 8] = 0.20
    observed = np.ones(shape)
    r0, c0 = _rc(X0, Y0 - 1200)
    observed[r0:r0 + 70, c0:c0 + 180] = 0.0  # zone Z3
    for stem, data in (("ndvi_baseline", base), ("ndvi_monitor", mon), ("fvc_monitor", np.clip(mon, 0, 1)), ("observed", observed)):
        _write_raster(out_dir / "rasters" / f"{stem}.tif", data)
    zones = gpd.read_file(out_dir / "zones.geojson").to_crs(32648)
    alerts = gpd.read_file(out_dir / "alerts.geojson")
    rasters = {k: out_dir / "rasters" / f"{k}.tif" for k in ("ndvi_baseline", "ndvi_monitor", "fvc_monitor", "observed")}
    zone_stats = assess.zone_statistics(zones, rasters, alerts)
    admin = gpd.read_file(out_dir / "admin_units.geojson").to_crs(32648)
    zone_stats.to_csv(out_dir / "zone_stats.csv", index=False)
    assess.admin_statistics(zone_stats, admin, zones=zones, rasters=rasters, alerts=alerts).to_csv(out_dir / "admin_stats.csv", index=False)
    (out_dir / "manifest.json").write_text(json.dumps({"scan_id": "test-20231231", "config": {"resolved": {
        "baseline": {"start": "2021-01-01", "end": "2022-12-31"}, "monitor": {"start": "2023-01-01", "end": "2023-12-31"}}}}), encoding="utf-8")
    return out_dir


def _section(page: str, start: str, end: str = "</section>") -> str:
    i = page.index(start)
    return page[i:page.index(end, i)]


def _zone_row(page: str, zone_id: str, table: str = "zone-table") -> str:
    """The row of ``zone_id`` in the first table of class ``table`` that lists it."""
    for t in re.findall(rf'<table class="{table}">.*?</table>', page, flags=re.S):
        found = re.search(rf'<tr[^>]*>(?:(?!</tr>).)*<td class="code">{re.escape(zone_id)}</td>.*?</tr>', t, flags=re.S)
        if found:
            return found.group(0)
    raise AssertionError(f"zone {zone_id} not in a {table} table")


def _alert_block(page: str, alert_id: str) -> str:
    return re.search(rf'<tbody class="alert-block" id="alert-{re.escape(alert_id)}">.*?</tbody>', page, flags=re.S).group(0)


def test_report_has_a_section_per_county_with_its_zones_and_alerts(rendered):
    report_dir = rendered
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    stats = pd.read_csv(report_dir / "zone_stats.csv", dtype={"admin_id": str})
    assert re.findall(r'<section class="county" id="county-(\d+)">', page) == ["510181", "510182"]
    for admin_id, zones in stats.groupby("admin_id"):
        section = _section(page, f'id="county-{admin_id}"')
        assert set(re.findall(r'<article class="zone" id="zone-([^"]+)">', section)) == {safe_name(z) for z in zones["zone_id"]}
        alert_ids = set(re.findall(r'<tbody class="alert-block" id="alert-([^"]+)">', section))
        assert alert_ids == {alert_id_of(i) for i, (_, _, zone) in enumerate(ALERTS) if zone in set(zones["zone_id"])}
    z1 = stats.set_index("zone_id").loc["Z1"]
    row, index_row = _zone_row(page, "Z1"), _zone_row(page, "Z1", "zone-index")
    assert f'<td class="num">{z1.area_km2:,.3f}</td>' in row
    for value in (f"{z1.ndvi_baseline:.3f}", f"{z1.ndvi_monitor:.3f}", f"{z1.ndvi_change:+.3f}"):
        assert f'<td class="num">{value}</td>' in index_row
    # the 0.49 drop on alert 0's 8 000 m² shows in the 1 km² zone's mean, on top of the −0.01 everywhere
    assert z1.ndvi_change == pytest.approx(-0.01 - 0.49 * 8000 / 1e6, abs=3e-4)
    assert "龙门山水源涵养生态保护红线" in row and "都江堰市" in page and "彭州市" in page
    assert "demo" not in page and "test-20231231" in page and "2023-01-01 – 2023-12-31" in page


def test_unobserved_zone_is_marked(rendered):
    report_dir = rendered
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    stats = pd.read_csv(report_dir / "zone_stats.csv").set_index("zone_id")
    assert stats.at["Z3", "status"] == "not_observed" and stats.at["Z1", "status"] != "not_observed"
    assert _zone_row(page, "Z3").startswith('<tr class="not-observed">') and "未有效观测" in _zone_row(page, "Z3")
    assert 'class="not-observed"' not in _zone_row(page, "Z1")
    assert "<b>1</b> zone(s) not observed" in page


def test_input_text_is_escaped_and_the_page_has_no_script(report_dir):
    reg = write_register(report_dir, "field_check")
    page = render_report(report_dir, register=reg)[0].read_text(encoding="utf-8")
    assert "<script" not in page.lower()  # the report runs no JavaScript at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>custom</b>" not in page and "&lt;b&gt;custom&lt;/b&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt; 已派员核查" in page
    assert str(markupsafe.escape(SCRIPT_NAME)) in page  # the whole name, as typed


def test_every_link_is_a_local_file(report_dir):
    render_outputs(report_dir)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    links = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert "map.html" in links and "manifest.json" in links
    for rel in links:
        assert not rel.startswith(("/", "file:")) and (report_dir / rel).is_file(), rel


def test_alert_rows_show_the_chips_and_figure_that_exist(rendered):
    page = (rendered / "report.html").read_text(encoding="utf-8")
    first = _alert_block(page, alert_id_of(0))
    for rel in (f"chips/{alert_id_of(0)}_before.png", f"chips/{alert_id_of(0)}_after.png", f"figures/{alert_id_of(0)}.png"):
        assert f'src="{rel}"' in first
    second = _alert_block(page, alert_id_of(1))
    assert "<img" not in second  # no chips were written for it
    assert "clearing 植被清除" in first and "0.80" in first and "high 高" in first  # type and confidence labels, area in ha


def test_zone_and_county_figures_in_png_and_svg(report_dir):
    files = render_report(report_dir, zone_figures="all")
    names = {p.name for p in files}
    for stem in ("overview", "zone_Z1", "zone_Z2", "zone_Z3", "county_510181", "county_510182"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
        assert (report_dir / "figures" / f"{stem}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with_change = matplotlib.image.imread(report_dir / "figures/zone_Z1.png")
    for stem in ("ndvi_baseline", "ndvi_monitor"):
        (report_dir / "rasters" / f"{stem}.tif").unlink()
    render_report(report_dir, zone_figures="all")
    trend_only = matplotlib.image.imread(report_dir / "figures/zone_Z1.png")
    assert with_change.shape[1] > 1.5 * trend_only.shape[1]  # the NDVI-change map panel needs the rasters


def test_rsei_columns_and_grades_plug_in(report_dir):
    stats = pd.read_csv(report_dir / "zone_stats.csv")
    stats["rsei_baseline"], stats["rsei_monitor"] = [0.61, 0.55, 0.40], [0.58, 0.56, 0.41]
    stats["rsei_grade"] = ["良", "一般", "<i>x</i>"]
    stats.to_csv(report_dir / "zone_stats.csv", index=False)
    assert index_pairs(stats.columns) == ["ndvi", "rsei"]
    page = render_report(report_dir)[0].read_text(encoding="utf-8")
    assert '<th colspan="3">RSEI</th>' in page and "<th>RSEI grade 等级</th>" in page
    row = _zone_row(page, "Z1")
    assert '<td class="num">0.610</td><td class="num">0.580</td><td class="num">-0.030</td>' in _zone_row(page, "Z1", "zone-index")
    assert f'<span class="badge" style="background:{REPORT_GRADE_COLOURS["良"]}">良</span>' in row
    assert "&lt;i&gt;x&lt;/i&gt;" in page and "<i>x</i>" not in page


def test_zones_without_a_county_are_grouped(report_dir):
    stats = pd.read_csv(report_dir / "zone_stats.csv", dtype={"admin_id": str})
    stats.loc[stats["zone_id"] == "Z2", "admin_id"] = np.nan
    stats.to_csv(report_dir / "zone_stats.csv", index=False)
    page = render_report(report_dir)[0].read_text(encoding="utf-8")
    section = _section(page, 'id="county-none-')
    assert 'id="zone-Z2' in section and (report_dir / "figures" / f"county_{safe_name('(none)')}.png").exists()


def test_register_review_shows_in_the_report(report_dir):
    reg = write_register(report_dir, "confirmed")
    page = render_report(report_dir, register=reg)[0].read_text(encoding="utf-8")
    first = _alert_block(page, alert_id_of(0))
    assert "confirmed 已确认" in first and "王工" in first
    assert "FAR-1" not in page  # the register's alerts of other areas stay out


def _pdf_unicode(data: bytes) -> set[int]:
    """Code points the PDF's ToUnicode maps give its glyphs (Flate streams with bfchar entries)."""
    out = set()
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            text = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
            out |= {int(h, 16) for h in re.findall(rb"<[0-9A-Fa-f]+>\s*<([0-9A-Fa-f]{4})>", block)}
    return out


@pytest.mark.browser
@pytest.mark.slow
def test_map_cli_rerenders_map_figures_report_and_pdf_after_a_review(small_scan, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    assert (out / "report.html").exists()  # the scan wrote the report too
    reg = out / "register.gpkg"
    aid = sorted(small_scan.alerts["alert_id"])[0]
    run = lambda *a: subprocess.run([sys.executable, "-m", "redline.cli", *a], capture_output=True, text=True)  # noqa: E731
    assert run("alerts", "review", aid, "--status", "dismissed", "--by", "李工", "--note", "<b>耕地</b> 非红线变化", "--register", str(reg)).returncode == 0
    res = run("map", str(out), "--register", str(reg), "--pdf", "--zone-figures", "all")
    assert res.returncode == 0, res.stderr
    assert f"report: {(out / 'report.html').resolve()}" in res.stdout.replace("\n", "")
    page = (out / "report.html").read_text(encoding="utf-8")
    row = _alert_block(page, aid)
    assert "dismissed 已排除" in row and "&lt;b&gt;耕地&lt;/b&gt; 非红线变化" in row
    rerender = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["rerenders"][-1]["files"]
    assert rerender[:3] == ["map.html", "map_composite.png", "report.html"] and "report.pdf" in rerender
    assert {f"figures/zone_{safe_name(z)}.png" for z in small_scan.zone_stats["zone_id"]} <= set(rerender)
    assert run("verify", str(out), "--register", str(reg)).returncode == 0
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 1 + len(small_scan.admin_stats)
    cjk = {cp for cp in _pdf_unicode(pdf) if 0x2E80 <= cp <= 0x9FFF}
    assert len(cjk) >= 20  # Chinese text was drawn with real CJK glyphs (each mapped back to its character)


def test_print_pdf_without_chromium_returns_none(tmp_path, monkeypatch):
    page = tmp_path / "report.html"
    page.write_text("<!DOCTYPE html><p>报告</p>", encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on this PATH
    assert print_pdf(page, tmp_path / "report.pdf") is None
    assert not (tmp_path / "report.pdf").exists()


def _svg_texts(path: Path) -> list[str]:
    """The text elements of a matplotlib SVG (text kept as text), XML-unescaped."""
    import html

    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text(encoding="utf-8"))]


def test_figures_carry_the_zone_and_county_statistics(rendered):
    report_dir = rendered
    stats = pd.read_csv(report_dir / "zone_stats.csv", dtype={"admin_id": str}).set_index("zone_id")
    z1 = stats.loc["Z1"]
    texts = _svg_texts(report_dir / "figures/zone_Z1.svg")
    assert f"NDVI {z1.ndvi_baseline:.3f} → {z1.ndvi_monitor:.3f} ({z1.ndvi_monitor - z1.ndvi_baseline:+.3f})" in texts
    assert f"FVC monitor {z1.fvc_monitor:.2f}" in texts
    assert any(t.startswith("龙门山水源涵养生态保护红线 (Z1)") for t in texts)
    assert "not observed 未有效观测" in _svg_texts(report_dir / "figures/zone_Z3.svg")  # drawn across the trend panel
    county = _svg_texts(report_dir / "figures/county_510181.svg")
    assert [t for t in county if t.startswith("都江堰市")] == ["都江堰市 (510181) · 2 zones 红线区 · 2 alerts 预警   * not observed 未有效观测"]
    assert {"Z2", "Z3 *"} <= set(county) and "Z1" not in county


def test_dollar_signs_in_names_are_text_not_mathtext(report_dir):
    stats = pd.read_csv(report_dir / "zone_stats.csv")
    stats.loc[stats["zone_id"] == "Z1", "zone_name"] = r"$\frac{$ 龙门山 $x$"
    stats.to_csv(report_dir / "zone_stats.csv", index=False)
    render_report(report_dir)  # an unbalanced TeX formula would raise here if parsed as mathtext
    assert any(t.startswith(r"$\frac{$ 龙门山 $x$ (Z1)") for t in _svg_texts(report_dir / "figures/zone_Z1.svg"))


def test_report_without_alerts_counties_or_composite(report_dir):
    (report_dir / "alerts.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}), encoding="utf-8")
    for name in ("admin_units.geojson", "admin_stats.csv", "rasters/true_colour_monitor.tif", "manifest.json"):
        (report_dir / name).unlink()
    page = render_report(report_dir)[0].read_text(encoding="utf-8")
    assert "<b>0</b> alerts" in page and page.count("No alert in this zone") == 3
    assert re.findall(r'<section class="county" id="county-(\d+)">', page) == ["510181", "510182"]  # from the zones' admin_id


def test_a_broken_raster_costs_only_that_figure(report_dir, caplog):
    (report_dir / "rasters/ndvi_monitor.tif").write_bytes(b"not a tiff")
    page = render_report(report_dir)[0].read_text(encoding="utf-8")
    assert "trend figure not drawn" in caplog.text
    assert page.count('<article class="zone"') == 3 and "zone_Z1.png" not in page


# --- the printed report (A4) and its width on a screen --------------------------------------
#: ISO 216 A4, 210 × 297 mm, in PDF points (1/72 in)
A4_PT = (210 / 25.4 * 72, 297 / 25.4 * 72)
#: resolution the pages are rendered at to look for ink, dots per inch
PAGE_DPI = 100


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: run `make test` (it installs Debian's poppler-utils, target poppler)"
    return path


def _media_boxes(pdf: bytes) -> list[tuple[float, float]]:
    """(width, height) in points of every ``/MediaBox`` of the PDF (one per page)."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
    return [(float(x1) - float(x0), float(y1) - float(y0)) for x0, y0, x1, y1 in boxes]


def _page_text(pdf: Path, *, layout: bool = True) -> list[str]:
    """The text of each page (pdftotext: the layout kept, or in reading order)."""
    res = subprocess.run([_tool("pdftotext"), *(["-layout"] if layout else []), str(pdf), "-"], capture_output=True, text=True, check=True)
    return res.stdout.split("\f")[:-1]


def _ink_past_the_margins(pdf: Path, folder: Path) -> dict[str, tuple[int, int, int]]:
    """Render every page (pdftoppm, :data:`PAGE_DPI`) and return, per page that has ink beyond its
    side margins less 1 mm (where Chromium cuts what does not fit), (leftmost, rightmost ink
    column, page width) in px. The footer line (page number, in the bottom margin, right-aligned
    to the margin) is left out; a page's own content stops 2 mm short of the right margin."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([_tool("pdftoppm"), "-r", str(PAGE_DPI), "-png", str(pdf), str(folder / "page")], check=True, capture_output=True)
    mm = PAGE_DPI / 25.4
    bad, pages = {}, sorted(folder.glob("page-*.png"))
    assert pages, "pdftoppm wrote no page"
    for png in pages:
        ink = np.asarray(Image.open(png).convert("L")) < 245
        body = ink[round(REPORT_PAGE_MARGINS_MM["top"] * mm): ink.shape[0] - round(REPORT_PAGE_MARGINS_MM["bottom"] * mm)]
        cols = np.flatnonzero(body.any(axis=0))
        assert cols.size, f"{png.name} is blank"
        right_cut = ink.shape[1] - REPORT_PAGE_MARGINS_MM["right"] * mm
        if cols.max() >= right_cut - 1 * mm or cols.min() < (REPORT_PAGE_MARGINS_MM["left"] - 1) * mm:
            bad[png.name] = (int(cols.min()), int(cols.max()), ink.shape[1])
    return bad


@pytest.fixture(scope="module")
def printed(small_scan, tmp_path_factory) -> Path:
    """A copy of the scan's output re-rendered with ``redline map OUT --pdf`` (nothing reviewed
    since the scan): report.html and report.pdf."""
    out = tmp_path_factory.mktemp("printed") / "out"
    shutil.copytree(small_scan.out_dir, out)
    res = subprocess.run([sys.executable, "-m", "redline.cli", "map", str(out), "--pdf"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and (out / "report.pdf").is_file(), res.stderr[-3000:]
    return out


@pytest.mark.browser
@pytest.mark.slow
def test_the_pdf_is_a4_and_no_page_is_cut_at_its_edges(printed, small_scan, tmp_path):
    pdf = (printed / "report.pdf").read_bytes()
    boxes = _media_boxes(pdf)
    n_pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert len(boxes) == n_pages >= 2 + len(small_scan.admin_stats)  # the first page, the summary, a page per county at least
    for w, h in boxes:
        assert abs(w - A4_PT[0]) < 1 and abs(h - A4_PT[1]) < 1, (w, h)  # 595 × 842 pt, not US Letter's 612 × 792
    assert _ink_past_the_margins(printed / "report.pdf", tmp_path / "pages") == {}
    print(f"report.pdf: {n_pages} A4 pages of {boxes[0][0]:.1f} × {boxes[0][1]:.1f} pt")


@pytest.mark.browser
@pytest.mark.slow
def test_the_margin_check_finds_a_table_too_wide_for_the_page(printed, tmp_path):
    """The check above fails on a page whose content is cut: a table wider than A4, printed with
    the report's own style."""
    page = (printed / "report.html").read_text(encoding="utf-8")
    wide = "<table><tr>" + "".join(f"<td class='num'>{i:,}.000</td>" for i in range(1000, 1040)) + "</tr></table>"
    (tmp_path / "wide.html").write_text(page.replace('<section id="map">', wide + '<section id="map">', 1), encoding="utf-8")
    assert print_pdf(tmp_path / "wide.html", tmp_path / "wide.pdf") is not None
    cut = _ink_past_the_margins(tmp_path / "wide.pdf", tmp_path / "pages")
    assert "page-01.png" in cut or "page-1.png" in cut, cut


@pytest.mark.browser
@pytest.mark.slow
def test_the_first_page_names_the_scan_its_periods_scenes_parameters_and_chain_head(printed, small_scan):
    first = _page_text(printed / "report.pdf")[0]
    flat, solid = " ".join(first.split()), "".join(first.split())
    manifest = json.loads((printed / "manifest.json").read_text(encoding="utf-8"))
    cfg = manifest["config"]["resolved"]
    assert f"scan 监测批次 {small_scan.scan_id}" in flat and small_scan.scan_id != printed.name  # the scan's id, not the folder's name
    assert f"baseline period 基准期 {cfg['baseline']['start']} – {cfg['baseline']['end']}" in flat
    assert f"monitor period 监测期 {cfg['monitor']['start']} – {cfg['monitor']['end']}" in flat
    head = manifest["register"]["head"]
    assert f"seq {head['seq']}" in flat and head["row_hash"] in solid and "now 当前" not in flat  # no review since the scan
    assert f"scenes used 使用影像 {small_scan.n_items}" in flat and len(manifest["items"]) == small_scan.n_items
    # scenes per collection and platform, in each window, counted here from the manifest's items
    for (collection, platform), days in pd.DataFrame(manifest["items"]).assign(day=lambda d: d["datetime"].str[:10]).groupby(
            ["collection", "platform"])["day"]:
        in_base = int(days.between(cfg["baseline"]["start"], cfg["baseline"]["end"]).sum())
        in_mon = int(days.between(cfg["monitor"]["start"], cfg["monitor"]["end"]).sum())
        assert re.search(rf"{re.escape(collection)}\s+{re.escape(platform)}\s+{len(days)}\s+{in_base}\s+{in_mon}\s+{days.min()}\s+{days.max()}", first), first
    assert set(Counter(i["platform"] for i in manifest["items"])) <= {"sentinel-2a", "sentinel-2b", "sentinel-2c"}
    det = cfg["detection"]
    assert f"resolution 分辨率 {cfg['resolution']} m" in flat and ", ".join(det["indices"]) in flat
    assert f"|z| ≥ {det['z_threshold']:g} σ on {det['consecutive']} consecutive" in flat and f"{det['min_area_m2']:,.0f} m²" in flat
    assert manifest["config"]["sha256"] in solid


def _images_per_page(pdf: Path) -> dict[int, Counter]:
    """Page number → Counter of the (width, height) in px of the images drawn on it (pdfimages)."""
    res = subprocess.run([_tool("pdfimages"), "-list", str(pdf)], capture_output=True, text=True, check=True)
    pages: dict[int, Counter] = {}
    for line in res.stdout.splitlines()[2:]:
        f = line.split()
        pages.setdefault(int(f[0]), Counter())[(int(f[3]), int(f[4]))] += 1
    return pages


@pytest.mark.browser
@pytest.mark.slow
def test_no_alert_is_cut_by_a_page_break(printed, small_scan):
    """Each alert's block (its fields, before/after chips and time series) is on one page: the
    page that names an alert also holds its three images, and every alert is on one page."""
    images = _images_per_page(printed / "report.pdf")
    on_pages = []
    for page, text in enumerate(_page_text(printed / "report.pdf", layout=False), start=1):
        # pdftotext drops the hyphen where an id wraps at one ("…-HX-0004-" / "20230420-1")
        solid = "".join(text.split()).replace("-", "")
        ids = [a for a in small_scan.alerts["alert_id"] if a.replace("-", "") in solid]
        wanted = Counter(Image.open(printed / rel).size for a in ids for rel in (f"chips/{a}_before.png", f"chips/{a}_after.png", f"figures/{a}.png"))
        assert not wanted - images.get(page, Counter()), (page, ids, images.get(page))
        on_pages += ids
    assert sorted(on_pages) == sorted(small_scan.alerts["alert_id"])


@pytest.mark.slow
def test_scan_and_map_write_the_same_report(printed, small_scan):
    """The report the scan wrote and the one `redline map` wrote again from its manifest differ
    by the time they were made only."""
    def content(path: Path) -> str:
        return re.sub(r"generated 生成于 [0-9T:+-]+", "", path.read_text(encoding="utf-8"))

    scanned, mapped = content(small_scan.out_dir / "report.html"), content(printed / "report.html")
    assert f'<b id="scan-id">{small_scan.scan_id}</b>' in scanned and 'id="baseline">2022-01-01 – 2022-12-31' in scanned
    assert scanned == mapped


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("long_name", [None, "W" * 160], ids=["as-scanned", "unbreakable-name"])
def test_report_fits_a_1366_px_laptop_screen(printed, tmp_path, long_name):
    from tests.browser import open_page

    out = printed
    if long_name:  # a zone name with no place to break, in every table, title and figure
        out = tmp_path / "out"
        shutil.copytree(printed, out)
        stats = pd.read_csv(out / "zone_stats.csv", dtype={"zone_id": str, "admin_id": str})
        stats.loc[0, "zone_name"] = long_name
        stats.to_csv(out / "zone_stats.csv", index=False)
        render_report(out)
    v = open_page(out / "report.html", window=(1366, 768))
    try:
        js = v.driver.execute_script
        inner, scroll = js("return window.innerWidth"), js("return document.documentElement.scrollWidth")
        assert inner == 1366 and scroll <= inner, (scroll, inner)
        past = js("return Array.from(document.body.querySelectorAll('*')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)"
                  ".map(e => e.tagName + '.' + e.className)")
        assert past == []
        cramped = js("return Array.from(document.querySelectorAll('table')).filter(t => t.scrollWidth > t.clientWidth + 1).map(t => t.id || t.className)")
        assert cramped == []
        n_tables = js("return document.querySelectorAll('table').length")
        print(f"report.html at 1366 px: scrollWidth {scroll} px, {n_tables} tables")
    finally:
        v.driver.quit()


def test_wide_index_tables_are_split(report_dir):
    stats = pd.read_csv(report_dir / "zone_stats.csv")
    for k, stem in enumerate(("rsei", "nbr", "mndwi", "evi", "savi", "ndwi")):
        stats[f"{stem}_baseline"], stats[f"{stem}_monitor"] = 0.1 * k, 0.1 * k + 0.01
    stats.to_csv(report_dir / "zone_stats.csv", index=False)
    page = render_report(report_dir)[0].read_text(encoding="utf-8")
    stems = index_pairs(stats.columns)
    assert len(stems) > 2 * STEMS_PER_TABLE
    tables = re.findall(r'<table class="zone-index">.*?</table>', _section(page, 'id="county-510181"'), flags=re.S)
    # every index in one of them, at most STEMS_PER_TABLE each, in order
    heads = [re.findall(r'<th colspan="3">([^<]+)</th>', t) for t in tables]
    assert [h for group in heads for h in group] == [index_label(s) for s in stems]
    assert len(tables) == -(-len(stems) // STEMS_PER_TABLE) and max(map(len, heads)) == STEMS_PER_TABLE


def test_many_zone_figures_drawn_in_processes_equal_those_drawn_here(report_dir):
    """From PARALLEL_ZONE_FIGURES zones on the figures are drawn in worker processes (spawned):
    the same files, pixel for pixel, as drawn one by one in this process."""
    from maps import PARALLEL_ZONE_FIGURES, draw_zone_figures

    stats = pd.read_csv(report_dir / "zone_stats.csv")
    zones = gpd.read_file(report_dir / "zones.geojson").set_index("zone_id")
    todo = []
    for k in range(-(-PARALLEL_ZONE_FIGURES // len(stats))):
        for _, z in stats.iterrows():
            z = z.copy()
            geom = zones.geometry[z["zone_id"]]
            z["zone_id"] = f"{z['zone_id']}-{k}"
            todo.append((z["zone_id"], z, geom, zones.iloc[:0]))
    assert len(todo) >= PARALLEL_ZONE_FIGURES
    parallel = draw_zone_figures(report_dir, todo, workers=2)
    assert sorted(parallel) == sorted(t[0] for t in todo) and all(len(p) == 2 for p in parallel.values())
    pixels = {zid: matplotlib.image.imread(paths[0]) for zid, paths in parallel.items()}
    serial = draw_zone_figures(report_dir, todo, workers=1)
    assert serial == parallel
    for zid, paths in serial.items():
        np.testing.assert_array_equal(matplotlib.image.imread(paths[0]), pixels[zid])
    assert all(np.ptp(p) > 0.5 for p in pixels.values())  # drawn, not blank
