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
from pathlib import Path

import geopandas as gpd
import markupsafe
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import Affine

from maps import REPORT_GRADE_COLOURS, index_pairs, print_pdf, render_outputs, render_report, safe_name
from redline import assess
from tests.test_maps import ALERTS, SCRIPT_NAME, X0, Y0, alert_id_of, make_out_dir, out_dir, write_register  # noqa: F401 (fixture)

RES = 10.0


def _write_raster(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float32",
                       crs="EPSG:32648", transform=Affine(RES, 0, X0 - 100, 0, -RES, Y0 + 100), nodata=np.nan) as dst:
        dst.write(data.astype("float32"), 1)


def _rc(x: float, y: float) -> tuple[int, int]:
    return int((Y0 + 100 - y) / RES), int((x - (X0 - 100)) / RES)


@pytest.fixture
def report_dir(out_dir: Path) -> Path:  # noqa: F811
    """The map fixture plus NDVI rasters (a drop under the first alert), an `observed` raster (zone
    Z3 never seen clear) and zone/admin statistics computed from them by redline.assess."""
    return _add_statistics(out_dir)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """``report_dir`` rendered once, for the tests that only read the page and figures."""
    out = _add_statistics(make_out_dir(tmp_path_factory.mktemp("report") / "out"))
    render_report(out)
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
    files = render_report(report_dir)
    names = {p.name for p in files}
    for stem in ("overview", "zone_Z1", "zone_Z2", "zone_Z3", "county_510181", "county_510182"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
        assert (report_dir / "figures" / f"{stem}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with_change = matplotlib.image.imread(report_dir / "figures/zone_Z1.png")
    for stem in ("ndvi_baseline", "ndvi_monitor"):
        (report_dir / "rasters" / f"{stem}.tif").unlink()
    render_report(report_dir)
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
    res = run("map", str(out), "--register", str(reg), "--pdf")
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
