"""Maps for reviewers: an offline interactive map of a finished scan (folium, with Leaflet and
its companions copied from installed packages, never fetched from a CDN), zone and county
figures, and the county report.

``maps`` reads a finished scan's output folder and, optionally, the alert register; never the
pipeline's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maps._assessment import GRADE_COLOURS, render_grade_shares, render_trends
from maps._composite import write_composite_png
from maps._fonts import CJK_FILES, figure_font_name, find_cjk_font_file
from maps._figures import CHIP_PX, CHIP_TITLE_PX, SeriesFigure, render_chip, render_timeseries, true_colour
from maps._map import COMPOSITE_PNG, OSM_URL, TIANDITU_NAME, TIANDITU_URL, render_map
from maps._report import PARALLEL_ZONE_FIGURES, REPORT_GRADE_COLOURS, REPORT_PAGE_MARGINS_MM, STEMS_PER_TABLE, ScanFacts, draw_zone_figures, print_pdf, render_report, scan_facts
from maps._style import CATEGORY_STYLE, STATUS_STYLE, TYPE_STYLE, esc
from maps._summary import (
    COUNTY_FIGURE_ZONES,
    ZONE_FIGURES,
    index_label,
    index_pairs,
    render_county_figure,
    render_overview,
    render_zone_figure,
    safe_name,
    zone_figure_name,
    zones_changed,
    RSEI_NO_OBVIOUS_CHANGE,
)
from maps._ondemand import zone_figure

__all__ = [
    "render_outputs", "figure_font_name", "find_cjk_font_file", "CJK_FILES", "render_map", "render_report", "print_pdf", "render_chip", "render_timeseries", "SeriesFigure", "true_colour",
    "render_zone_figure", "render_county_figure", "render_overview", "render_grade_shares", "render_trends", "GRADE_COLOURS", "TYPE_STYLE", "STATUS_STYLE", "CATEGORY_STYLE", "esc",
    "PARALLEL_ZONE_FIGURES", "draw_zone_figures", "REPORT_GRADE_COLOURS", "REPORT_PAGE_MARGINS_MM", "STEMS_PER_TABLE", "ScanFacts", "scan_facts", "CHIP_PX", "CHIP_TITLE_PX", "write_composite_png", "index_label", "index_pairs", "safe_name", "OSM_URL", "TIANDITU_URL", "TIANDITU_NAME",
    "ZONE_FIGURES", "COUNTY_FIGURE_ZONES", "zone_figure_name", "zones_changed", "RSEI_NO_OBVIOUS_CHANGE", "zone_figure",
]


def render_outputs(out_dir: Path, *, register: Path | str | None = None, pdf: bool = False, online_basemaps: bool = True,
                   tianditu_key: str | None = None, manifest: Mapping[str, Any] | None = None, zone_figures: str = "changed") -> list[Path]:
    """Render everything a reviewer reads from a finished scan and the register: ``map.html``
    (with its base composite), the zone/county figures and ``report.html`` (``report.pdf`` with
    ``pdf``). Per-alert chips and time series are the scan's (they need the scenes) and are only
    linked. ``manifest``: the scan's manifest record when ``manifest.json`` is not written yet
    (the scan's own rendering), else that file is read. ``zone_figures``: which zones' figures
    are drawn (:data:`ZONE_FIGURES`; the others on demand, :func:`zone_figure`). Returns the
    written files, ``map.html`` first."""
    out_dir = Path(out_dir)
    page = render_map(out_dir, register=register, online_basemaps=online_basemaps, tianditu_key=tianditu_key)
    files = [page]
    if (out_dir / COMPOSITE_PNG).exists():
        files.append(out_dir / COMPOSITE_PNG)
    if (out_dir / "zone_stats.csv").exists():
        files += render_report(out_dir, register=register, pdf=pdf, manifest=manifest, zone_figures=zone_figures)
    return files
