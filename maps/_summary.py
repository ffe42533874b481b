"""Zone and county figures (matplotlib, PNG + SVG) and the report's static overview map, read from
a finished scan's output folder: ``zone_stats.csv`` / ``admin_stats.csv`` columns and the
single-band rasters under ``rasters/``.

Index pairs are found by name: every ``<x>_baseline`` column with a ``<x>_monitor`` twin (NDVI
today; RSEI or others when the assessment adds them) is drawn, and when
``rasters/<x>_baseline.tif`` and ``rasters/<x>_monitor.tif`` exist their per-pixel distribution
inside the zone is drawn too.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rasterio  # noqa: E402
import rasterio.mask  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from maps._fonts import figure_fonts, plain, save_figure  # noqa: E402
from maps._style import TYPE_STYLE, category_colours  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["index_pairs", "index_label", "safe_name", "render_zone_figure", "render_county_figure", "render_overview", "FIGURE_DIR",
           "ZONE_FIGURES", "COUNTY_FIGURE_ZONES", "zones_changed", "zone_figure_name",
           "RSEI_NO_OBVIOUS_CHANGE"]

FIGURE_DIR = "figures"
#: ``outputs.zone_figures``: which zones get their figure drawn with the outputs (the others are
#: drawn on demand: the review service, ``redline map OUT --zone-figures all``)
ZONE_FIGURES = ("changed", "all", "none")
#: zones drawn in a county's figure (one bar row each): the county's zones with the most alerts,
#: then the most disturbed area; the title says how many of how many
COUNTY_FIGURE_ZONES = 40
#: stacked-bar order of alert types (the register's ``disturbance_type`` values)
_TYPES = tuple(TYPE_STYLE)
_INDEX_LABEL = {"ndvi": "NDVI", "rsei": "RSEI", "fvc": "FVC", "nbr": "NBR", "mndwi": "MNDWI"}


def safe_name(text: object) -> str:
    """A file-name stem for an id from an input file: ``[A-Za-z0-9._-]`` kept, anything else
    replaced, plus a short hash when something was replaced (so two ids never share a file)."""
    raw = str(text)
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._") or "x"
    return slug if slug == raw else f"{slug[:60]}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"


def index_pairs(columns: Iterable[str]) -> list[str]:
    """Stems ``x`` with both ``x_baseline`` and ``x_monitor`` columns, NDVI first, then sorted;
    grade columns (``*_grade_baseline``, text such as 良) and the clear-observation counts
    (``clear_obs_*``) are not index pairs."""
    cols = set(columns)
    stems = sorted({c[: -len("_baseline")] for c in cols if c.endswith("_baseline") and c[: -len("_baseline")] + "_monitor" in cols
                    and not c[: -len("_baseline")].endswith(("grade", "clear_obs"))})
    return sorted(stems, key=lambda s: (s != "ndvi", s))


def index_label(stem: str) -> str:
    """The display name of an index stem (``ndvi`` → NDVI; others upper-cased)."""
    return _INDEX_LABEL.get(stem, stem.upper())


#: A zone's RSEI (0–1) counts as changed only when its zonal mean moved by at least this much:
#: HJ 192-2015 《生态环境状况评价技术规范》 grades the change of its 0–100 ecological index as
#: 无明显变化 (no obvious change) below |ΔEI| = 1, 略微 1–3, 明显 3–8, 显著 ≥ 8 (the classes of the
#: national 生态环境状况公报); RSEI is graded on 0–1 in the same five 20-point steps (Xu 2013), so
#: 1 point is 0.01. A grade boundary crossed by less (0.800 → 0.799) is noise, not a change.
RSEI_NO_OBVIOUS_CHANGE = 0.01


def zones_changed(zone_stats: pd.DataFrame) -> pd.Series:
    """True for the zones of ``zone_stats`` (``zone_stats.csv`` rows) that have alerts
    (``alerts_total`` > 0) or whose RSEI grade differs between the periods
    (``rsei_grade_baseline`` ≠ ``rsei_grade_monitor``, both known) by a change of at least
    :data:`RSEI_NO_OBVIOUS_CHANGE` in the zonal mean RSEI (``rsei_change``, else monitor −
    baseline): the ``changed`` choice of ``outputs.zone_figures``, and the zones the report lists
    one by one."""
    changed = pd.to_numeric(zone_stats["alerts_total"], errors="coerce").fillna(0) > 0 if "alerts_total" in zone_stats \
        else pd.Series(False, index=zone_stats.index)
    if {"rsei_grade_baseline", "rsei_grade_monitor"} <= set(zone_stats.columns):
        b, m = zone_stats["rsei_grade_baseline"], zone_stats["rsei_grade_monitor"]
        graded = b.notna() & m.notna() & (b.astype(str) != m.astype(str))
        if "rsei_change" in zone_stats:
            delta = pd.to_numeric(zone_stats["rsei_change"], errors="coerce")
        elif {"rsei_baseline", "rsei_monitor"} <= set(zone_stats.columns):
            delta = pd.to_numeric(zone_stats["rsei_monitor"], errors="coerce") - pd.to_numeric(zone_stats["rsei_baseline"], errors="coerce")
        else:
            delta = pd.Series(np.inf, index=zone_stats.index)  # grades without their means: the grades decide
        # compared in whole hundredths of the 0–1 scale: 0.80 − 0.79 is 0.0100000002 in float
        changed |= graded & ((delta.abs() * 100).round(6) >= RSEI_NO_OBVIOUS_CHANGE * 100)
    return changed


def zone_figure_name(zone_id: object) -> str:
    """A zone figure's PNG file name (``zone_<safe id>.png``; the SVG twin beside it)."""
    return f"zone_{safe_name(zone_id)}.png"


def _save(fig: plt.Figure, png: Path) -> list[Path]:
    """Lay out and write ``png`` and its SVG twin, labels fitted to the installed fonts; the
    legends placed ``best`` are placed once (:func:`maps._fonts.save_figure`)."""
    try:
        return save_figure(fig, [png, png.with_suffix(".svg")], tight=True, fix=[a.get_legend() for a in fig.axes if a.get_legend() is not None])
    finally:
        plt.close(fig)


def _draw(ax, geoms, *, edge: str, fill: str | None = None, lw: float = 1.0, ls: str = "-") -> None:
    """Outline (and fill) polygons on an axes with plain matplotlib (no geopandas ``plot``, whose
    per-call redraw dominates the render time): every outline in one line collection, so that
    thousands of zones are one artist, not one line each."""
    rings = []
    for geom in geoms:
        for poly in getattr(geom, "geoms", [geom]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            for ring in (poly.exterior, *poly.interiors):
                xy = np.asarray(ring.coords)[:, :2]
                if fill is not None and ring is poly.exterior:
                    ax.fill(xy[:, 0], xy[:, 1], color=fill, lw=0)
                rings.append(xy)
    if rings:
        ax.add_collection(LineCollection(rings, colors=edge, linewidths=lw, linestyles=ls))


def _zone_pixels(raster: Path, geom_4326) -> np.ndarray:
    """Finite pixel values of a single-band raster inside a polygon given in EPSG:4326."""
    with rasterio.open(raster) as src:
        geom = gpd.GeoSeries([geom_4326], crs=4326).to_crs(src.crs).iloc[0]
        try:
            data, _ = rasterio.mask.mask(src, [geom], crop=True, filled=False, indexes=1)
        except ValueError:  # polygon outside the raster
            return np.array([], dtype="float32")
    vals = np.ma.filled(data.astype("float64"), np.nan)
    return vals[np.isfinite(vals)]


def _change_window(out_dir: Path, stem: str, geom_4326, margin_m: float = 60.0):
    """(monitor − baseline) of ``stem`` around a zone: array, extent (l, r, b, t) in the raster
    CRS (metres), the raster CRS; None when the rasters are missing."""
    base, mon = out_dir / "rasters" / f"{stem}_baseline.tif", out_dir / "rasters" / f"{stem}_monitor.tif"
    if not (base.exists() and mon.exists()):
        return None
    with rasterio.open(base) as b, rasterio.open(mon) as m:
        geom = gpd.GeoSeries([geom_4326], crs=4326).to_crs(b.crs).iloc[0]
        w, s, e, n = geom.buffer(margin_m).bounds
        win = rasterio.windows.from_bounds(w, s, e, n, transform=b.transform).round_offsets().round_lengths()
        win = win.intersection(rasterio.windows.Window(0, 0, b.width, b.height))
        diff = m.read(1, window=win).astype("float64") - b.read(1, window=win).astype("float64")
        l, bt, r, t = rasterio.windows.bounds(win, b.transform)
        return diff, (l, r, bt, t), b.crs


def render_zone_figure(out_dir: Path, zone: pd.Series, geom_4326, alerts: gpd.GeoDataFrame, *, dest: Path | None = None) -> list[Path]:
    """``figures/zone_<id>.png`` and ``.svg``: the zone's index trend from the baseline to the
    monitor period (zonal means from ``zone_stats``, per-pixel spread from the rasters) and a map
    of the NDVI change (monitor − baseline growing-season mean) with the zone's alerts outlined.

    ``zone`` is a ``zone_stats.csv`` row; ``geom_4326`` its polygon (EPSG:4326); ``alerts`` the
    zone's alerts (EPSG:4326, ``disturbance_type``). ``dest``: the folder written to instead of
    ``out_dir/figures`` (the review service's cache of figures drawn on demand).
    """
    stems = index_pairs(zone.index)
    change = _change_window(out_dir, "ndvi", geom_4326) if geom_4326 is not None else None
    with figure_fonts():
        fig, axes = plt.subplots(1, 2 if change is not None else 1, figsize=(8.0 if change is not None else 4.6, 3.4), dpi=100, squeeze=False)
        ax = axes[0, 0]
        for k, stem in enumerate(stems):
            colour = f"C{k}"
            b, m = zone.get(f"{stem}_baseline"), zone.get(f"{stem}_monitor")
            rasters = [out_dir / "rasters" / f"{stem}_{p}.tif" for p in ("baseline", "monitor")]
            if geom_4326 is not None and all(r.exists() for r in rasters):
                pix = [_zone_pixels(r, geom_4326) for r in rasters]
                if all(p.size for p in pix):
                    bp = ax.boxplot(pix, positions=[k * 0.08, 1 + k * 0.08], widths=0.12, showfliers=False, patch_artist=True, manage_ticks=False)
                    for patch in bp["boxes"]:
                        patch.set(facecolor=colour, alpha=0.25, edgecolor=colour)
            if pd.notna(b) and pd.notna(m):
                ax.plot([k * 0.08, 1 + k * 0.08], [b, m], "o-", color=colour, lw=2, label=f"{index_label(stem)} {b:.3f} → {m:.3f} ({m - b:+.3f})")
        if pd.notna(zone.get("fvc_monitor")):
            ax.plot([1.2], [zone["fvc_monitor"]], "D", color="#555555", label=f"FVC monitor {zone['fvc_monitor']:.2f}")
        ax.set_xticks([0, 1], ["baseline 基准期", "monitor 监测期"])
        ax.set_xlim(-0.4, 1.5)
        ax.set_ylabel("zonal mean (growing season)")
        obs = zone.get("valid_obs_fraction")
        obs_txt = f" · observed 有效观测 {100 * float(obs):.0f} %" if pd.notna(obs) else ""
        ax.set_title(plain(f"{zone.get('zone_name', '')} ({zone['zone_id']})") + obs_txt, fontsize=8, y=1.0)  # y given: no search for ticks above the axes at each draw (there are none)
        if ax.get_legend_handles_labels()[0]:  # a zone never seen in the monitor window may have nothing to label
            ax.legend(fontsize=7, loc="best")
        if str(zone.get("status")) == "not_observed":
            ax.text(0.5, 0.5, "not observed 未有效观测", transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#b00", alpha=0.7)
        if change is not None:
            diff, extent, crs = change
            cax = axes[0, 1]
            lim = float(np.nanpercentile(np.abs(diff), 98)) if np.isfinite(diff).any() else 0.1
            im = cax.imshow(diff, extent=extent, cmap="RdYlGn", vmin=-max(lim, 0.05), vmax=max(lim, 0.05), interpolation="nearest")
            _draw(cax, gpd.GeoSeries([geom_4326], crs=4326).to_crs(crs), edge="#222222", lw=1)
            if not alerts.empty:
                kinds = alerts["disturbance_type"].where(alerts["disturbance_type"].isin(_TYPES), "other")
                for geom, kind in zip(alerts.to_crs(crs).geometry, kinds):
                    _draw(cax, [geom], edge=TYPE_STYLE[kind].colour, lw=1.6)
            cax.set_xlim(extent[0], extent[1])
            cax.set_ylim(extent[2], extent[3])
            cax.set_title("NDVI change 变化 (monitor − baseline)", fontsize=8, y=1.0)
            cax.tick_params(labelsize=6)
            cax.xaxis.set_major_locator(MaxNLocator(4))  # metre ticks of 7 digits: four fit without overlapping
            cax.ticklabel_format(useOffset=False, style="plain")
            cax.set_ylabel("")
            cax.set_xlabel(f"{crs.to_string()} (m)", fontsize=6)
            fig.colorbar(im, ax=cax, shrink=0.8)
        return _save(fig, (dest or out_dir / FIGURE_DIR) / zone_figure_name(zone["zone_id"]))


def render_county_figure(out_dir: Path, admin: pd.Series, zones: pd.DataFrame) -> list[Path]:
    """``figures/county_<admin_id>.png`` and ``.svg``: per zone of the county, alerts stacked by
    type, disturbed area (ha) and the index means of both periods (NDVI, plus any other index
    pair present), with zones not observed marked. ``admin`` is an ``admin_stats.csv`` row and
    ``zones`` its ``zone_stats.csv`` rows. A county of more than :data:`COUNTY_FIGURE_ZONES`
    zones shows that many: those with the most alerts, then the most disturbed area (the title
    says so); its table in ``zone_stats.csv`` has them all."""
    n_all = len(zones)
    if n_all > COUNTY_FIGURE_ZONES:
        rank = zones.assign(_a=pd.to_numeric(zones.get("alerts_total", 0), errors="coerce").fillna(0),
                            _d=pd.to_numeric(zones.get("disturbed_area_m2", 0), errors="coerce").fillna(0))
        zones = rank.sort_values(["_a", "_d", "zone_id"], ascending=[False, False, True]).head(COUNTY_FIGURE_ZONES).drop(columns=["_a", "_d"])
    zones = zones.sort_values("zone_id").reset_index(drop=True)
    labels = [plain(f"{z}{' *' if s == 'not_observed' else ''}") for z, s in zip(zones["zone_id"].astype(str), zones.get("status", pd.Series([""] * len(zones))))]
    y = np.arange(len(zones))
    stems = index_pairs(zones.columns)
    with figure_fonts():
        fig, axes = plt.subplots(1, 3, figsize=(10.0, 1.6 + 0.42 * max(len(zones), 1)), dpi=100, sharey=True)
        left = np.zeros(len(zones))
        for kind in _TYPES:
            col = f"alerts_{kind}"
            if col in zones and zones[col].sum() > 0:
                axes[0].barh(y, zones[col], left=left, color=TYPE_STYLE[kind].colour, label=TYPE_STYLE[kind].label, edgecolor="#333", lw=0.4)
                left += zones[col].to_numpy(dtype=float)
        axes[0].set_title("alerts 预警 (by type)", fontsize=9)
        axes[0].xaxis.get_major_locator().set_params(integer=True)
        if left.sum() > 0:
            axes[0].legend(fontsize=6, loc="lower right")
        axes[1].barh(y, zones.get("disturbed_area_m2", pd.Series(np.zeros(len(zones)))) / 1e4, color="#d95f02")
        axes[1].set_title("disturbed area 扰动面积 (ha)", fontsize=9)
        h = 0.8 / max(2 * len(stems), 1)
        for k, stem in enumerate(stems):
            for j, period in enumerate(("baseline", "monitor")):
                off = (2 * k + j - (2 * len(stems) - 1) / 2) * h
                axes[2].barh(y + off, zones[f"{stem}_{period}"], height=h, color=f"C{k}", alpha=0.45 if period == "baseline" else 0.95,
                             label=f"{index_label(stem)} {period}")
        axes[2].set_title("zonal means 区域均值", fontsize=9)
        if stems:
            axes[2].legend(fontsize=6, loc="lower right")
        axes[0].set_yticks(y, labels, fontsize=7)
        axes[0].invert_yaxis()
        total = int(admin.get("alerts_total", 0) or 0)
        name = admin.get("admin_name")
        name = "" if pd.isna(name) else str(name)
        shown = f"{n_all} zones 红线区" if n_all == len(zones) else f"{len(zones)} of {n_all} zones 红线区 (most alerts 预警最多)"
        fig.suptitle(plain(f"{name} ({admin['admin_id']})") + f" · {shown} · {total} alerts 预警"
                     + ("   * not observed 未有效观测" if any(l.endswith(" *") for l in labels) else ""), fontsize=10)
        return _save(fig, out_dir / FIGURE_DIR / f"county_{safe_name(admin['admin_id'])}.png")


def render_overview(out_dir: Path, zones: gpd.GeoDataFrame, alerts: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None,
                    composite_png: Path | None, composite_bounds: Sequence[Sequence[float]] | None) -> list[Path]:
    """``figures/overview.png`` and ``.svg``: a static map for the report and its print/PDF
    version — the base composite (the map's Web-Mercator PNG), zones by category, county borders
    dashed, alerts filled by type. Drawn in EPSG:3857 so the composite needs no warping."""
    z = zones.to_crs(3857)
    with figure_fonts():
        fig, ax = plt.subplots(figsize=(7.0, 5.2), dpi=110)
        if composite_png is not None and composite_bounds is not None and composite_png.exists():
            (s, w), (n, e) = composite_bounds
            corners = gpd.GeoSeries(gpd.points_from_xy([w, e], [s, n]), crs=4326).to_crs(3857)
            ax.imshow(plt.imread(composite_png), extent=(corners.x[0], corners.x[1], corners.y[0], corners.y[1]), interpolation="nearest")
        cats = category_colours(z["category"] if "category" in z else [])
        handles = []
        for cat, colour in cats.items():
            _draw(ax, z.geometry[z["category"].astype(str) == cat], edge=colour, lw=1.6)
            handles.append(Patch(facecolor="none", edgecolor=colour, label=plain(cat)))
        rest = z[~z["category"].astype(str).isin(cats)] if "category" in z else z
        _draw(ax, rest.geometry, edge="#31a354", lw=1.6)
        if admin is not None and not admin.empty:
            _draw(ax, admin.to_crs(3857).geometry, edge="#333333", lw=1, ls="--")
        if not alerts.empty:
            a = alerts.to_crs(3857)
            kinds = a["disturbance_type"].where(a["disturbance_type"].isin(_TYPES), "other")
            for kind in [k for k in _TYPES if k in set(kinds)]:
                _draw(ax, a.geometry[kinds == kind], edge="#ff0000", fill=TYPE_STYLE[kind].colour, lw=0.8)
                handles.append(Patch(facecolor=TYPE_STYLE[kind].colour, edgecolor="#ff0000", label=TYPE_STYLE[kind].label))
        w, s, e, n = z.total_bounds
        pad = 0.05 * max(e - w, n - s)
        ax.set_xlim(w - pad, e + pad)
        ax.set_ylim(s - pad, n + pad)
        ax.set_aspect("equal")
        ax.set_axis_off()
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.9)
        return _save(fig, out_dir / FIGURE_DIR / "overview.png")
