"""Assessment figures (matplotlib, Agg): the RSEI grade shares of each zone per period, and the
annual growing-season NDVI of each county with its Theil–Sen trend. Tables in, PNG out.
Labels are English (grade keys); zone and county ids from input files may be Chinese and are drawn
with the figures' CJK font (:mod:`maps._fonts`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.transforms import ScaledTranslation  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from maps._fonts import figure_fonts, plain, save_figure  # noqa: E402

#: RSEI grades from worst to best and their colours (a red–green ramp, ColorBrewer RdYlGn 5).
GRADE_COLOURS = {"poor": "#d7191c", "fair": "#fdae61", "moderate": "#ffffbf", "good": "#a6d96a", "excellent": "#1a9641"}
#: units drawn in one assessment figure (a bar pair or a line each): with more zones, those that
#: changed most (the title says how many of how many); zone_stats.csv and ndvi_annual.csv have all
FIGURE_UNITS = 40


def _most_changed(zone_stats: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` zones with the most alerts, then the largest RSEI change |monitor − baseline|."""
    alerts = pd.to_numeric(zone_stats.get("alerts_total", pd.Series(0, index=zone_stats.index)), errors="coerce").fillna(0)
    change = (pd.to_numeric(zone_stats.get("rsei_monitor", np.nan), errors="coerce")
              - pd.to_numeric(zone_stats.get("rsei_baseline", np.nan), errors="coerce")).abs().fillna(0)
    order = pd.DataFrame({"a": alerts, "c": change}).sort_values(["a", "c"], ascending=False).index[:n]
    return zone_stats.loc[sorted(order)]


def render_grade_shares(path: Path, zone_stats: pd.DataFrame, *, periods: tuple[str, ...] = ("baseline", "monitor"), title: str = "") -> Path:
    """Horizontal stacked bars: for each zone and period, the area share of each RSEI grade
    (columns ``rsei_{period}_share_{grade}`` of ``zone_stats``); of more than
    :data:`FIGURE_UNITS` zones, those with the most alerts, then the largest RSEI change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n_all = len(zone_stats)
    if n_all > FIGURE_UNITS:
        zone_stats = _most_changed(zone_stats, FIGURE_UNITS)
        title = f"{title or 'RSEI grades per zone'} · {FIGURE_UNITS} of {n_all} zones (most alerts, largest RSEI change)"
    zones = list(zone_stats["zone_id"])
    n = len(zones)
    with figure_fonts():  # labels' fonts are fixed when they are made
        fig, ax = plt.subplots(figsize=(7.0, 0.9 + 0.55 * n * len(periods)), dpi=100)
        labels, y = [], 0.0
        ticks = []
        for zid in zones[::-1]:
            row = zone_stats[zone_stats["zone_id"] == zid].iloc[0]
            for p in periods[::-1]:
                left = 0.0
                for grade, colour in GRADE_COLOURS.items():
                    share = float(np.nan_to_num(row.get(f"rsei_{p}_share_{grade}", 0.0)))
                    ax.barh(y, share, left=left, color=colour, edgecolor="#555555", linewidth=0.4, height=0.8,
                            label=grade if (y == 0.0) else None)
                    left += share
                mean = row.get(f"rsei_{p}", np.nan)
                ax.text(1.01, y, f"{mean:.2f}" if np.isfinite(mean) else "n/a", va="center", fontsize=7)
                labels.append(plain(f"{zid} {p}"))
                ticks.append(y)
                y += 1.0
            y += 0.5
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xlim(0, 1.1)
        ax.set_ylim(-0.6, y - 0.9)  # the bars (±0.4) and a little air: the default 5 % margin was 2 in with 40 zones
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_xlabel("area share of RSEI grade (right: zone mean RSEI)")
        # under the x label at a fixed distance in inches: an offset in axes fractions grew with the
        # zones (2.6 in below the axes of 40 zones, which tight_layout could not fit and left out)
        below = ax.transAxes + ScaledTranslation(0, -0.42, fig.dpi_scale_trans)
        ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, frameon=False)
        ax.set_title((title or "RSEI grades per zone").replace(", normalised", ",\nnormalised"), fontsize=8)
        try:
            save_figure(fig, [path], tight=True)
        finally:
            plt.close(fig)
    return path


def render_trends(path: Path, annual: pd.DataFrame, *, names: dict[str, str] | None = None, trends: pd.DataFrame | None = None,
                  title: str = "annual growing-season NDVI per county (zones within it)") -> Path:
    """Lines of annual growing-season NDVI per unit (``annual``: ``admin_id, year, ndvi_gs``; a
    county, or a zone under the same column name), with the Theil–Sen slope and Mann–Kendall p
    in the legend when ``trends`` (indexed by ``admin_id``, columns of
    :func:`redline.assess.trends.unit_trends`) is given. Of more than :data:`FIGURE_UNITS` units,
    those with the steepest slopes (the first ones without ``trends``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    units = list(dict.fromkeys(annual["admin_id"]))
    if len(units) > FIGURE_UNITS:
        if trends is not None and "ndvi_trend_slope" in trends:
            slope = pd.to_numeric(trends["ndvi_trend_slope"], errors="coerce").abs().reindex(units).fillna(-1.0)
            keep = list(slope.sort_values(ascending=False, kind="stable").index[:FIGURE_UNITS])
        else:
            keep = units[:FIGURE_UNITS]
        annual = annual[annual["admin_id"].isin(keep)]
        title = f"{title} · {FIGURE_UNITS} of {len(units)} (steepest trends)"
    with figure_fonts():  # labels' fonts are fixed when they are made
        fig, ax = plt.subplots(figsize=(6.0, 3.0), dpi=100)
        for aid, g in annual.sort_values("year").groupby("admin_id"):
            label = plain(aid)
            if trends is not None and aid in trends.index and np.isfinite(trends.loc[aid].get("ndvi_trend_slope", np.nan)):
                t = trends.loc[aid]
                label += f": {t['ndvi_trend_slope']:+.4f}/yr, MK p={t['ndvi_trend_p']:.2f}"
            elif trends is not None:
                label += ": < 3 years, no trend"
            ax.plot(g["year"], g["ndvi_gs"], "o-", ms=4, label=label)
        if annual.empty:
            ax.text(0.5, 0.5, "no growing-season observations", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("year")
        ax.set_ylabel("growing-season mean NDVI")
        years = sorted(annual["year"].unique()) if not annual.empty else []
        if years:
            ax.set_xticks(years)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
        try:
            save_figure(fig, [path], tight=True)
        finally:
            plt.close(fig)
    return path
