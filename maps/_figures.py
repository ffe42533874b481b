"""Reviewer figures: before/after true-colour chips with the alert outline (Pillow), and an
alert's index time series with its seasonal baseline and detection date (matplotlib, Agg).
Data in (numpy arrays, reflectance 0–1), files out; nothing here reads the pipeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from maps._fonts import figure_fonts, save_figure  # noqa: E402

#: One fixed stretch for every chip (0–0.3 reflectance, gamma 1/1.6), the same as the scan's
#: true-colour composite, so that before and after compare by eye.
STRETCH_MAX = 0.3
GAMMA = 1.6
#: Chip image size, px across (before: a 2.4 in matplotlib figure at 100 dpi, the image 216 px).
CHIP_PX = 216
#: Chip width at least, px (the matplotlib figure's 2.4 in at 100 dpi), and its title band's height.
CHIP_MIN_WIDTH = 240
CHIP_TITLE_PX = 16
#: Alert outline colour of the chips (RGB).
OUTLINE = (255, 42, 42)
#: Axes position of the time-series figures (fractions of the 6.0 × 2.6 in figure).
_SERIES_MARGINS = {"left": 0.145, "right": 0.975, "bottom": 0.15, "top": 0.87}


def true_colour(rgb: np.ndarray) -> np.ndarray:
    """(3, y, x) reflectance → (y, x, 3) float 0–1 image; no data shown black."""
    img = np.clip(np.nan_to_num(rgb, nan=0.0) / STRETCH_MAX, 0, 1) ** (1 / GAMMA)
    return np.moveaxis(img, 0, -1)


def render_chip(path: Path, rgb: np.ndarray, outline_xy: list[np.ndarray], title: str) -> Path:
    """Write a true-colour chip PNG (:func:`true_colour` stretch) with the alert outline in red
    and a title band above it. ``rgb``: (3, y, x) reflectance 0–1; ``outline_xy``: rings in
    pixel coordinates of ``rgb`` (x = column, y = row, pixel centres at integers).

    Drawn with Pillow, not a matplotlib figure (a sixth of the time per chip,
    benchmarks/figures.py): the image is enlarged by a whole factor with nearest neighbour
    (every pixel a square block, as ``imshow(interpolation="nearest")`` drew it) to about
    :data:`CHIP_PX` across."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rgb.shape[1:]
    k = max(1, CHIP_PX // max(h, w, 1))
    img = Image.fromarray(np.round(true_colour(rgb) * 255).astype("uint8"), "RGB").resize((w * k, h * k), Image.NEAREST)
    # the size depends on the window only, not on the title: an alert's before and after chips
    # are the same size (a title too long for the width is drawn smaller)
    width, band = max(w * k, CHIP_MIN_WIDTH), CHIP_TITLE_PX
    canvas = Image.new("RGB", (width, h * k + band), "white")
    x0 = (width - w * k) // 2
    canvas.paste(img, (x0, band))
    draw = ImageDraw.Draw(canvas)
    for size in range(10, 5, -1):
        font = _chip_font(size)
        if draw.textlength(title, font=font) <= width - 8:
            break
    draw.text((width / 2, 3), title, fill="black", font=font, anchor="mt")
    for ring in outline_xy:
        # pixel centre i lies at (i + 0.5)·k in the enlarged image
        pts = [(x0 + (x + 0.5) * k, band + (y + 0.5) * k) for x, y in np.asarray(ring, dtype="float64")[:, :2]]
        draw.line(pts, fill=OUTLINE, width=2, joint="curve")
    canvas.save(path, optimize=False)
    return path


def _chip_font(size: int = 10) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, so every install has it) at ``size`` px (10 px: 7 pt
    at 100 dpi, the size the chips' titles had as matplotlib figures); Pillow's own font
    without FreeType."""
    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (OSError, ImportError):
        return ImageFont.load_default()


class SeriesFigure:
    """The alert time-series figure, made once and drawn again for each alert: its artists
    (monitor window, baseline ŷ with its ±z·σ band, clear observations, detection date,
    ticks, legend) get each alert's data and labels, so that only the drawing is paid per
    alert, not building the figure (benchmarks/figures.py). A plain matplotlib ``Figure``,
    outside pyplot's figure list: nothing to close, garbage-collected with this object."""

    def __init__(self) -> None:
        with figure_fonts():  # the labels' fonts are fixed when they are made
            self.fig = Figure(figsize=(6.0, 2.6), dpi=100)
            self.ax = ax = self.fig.add_subplot()
            # fixed margins, not fig.tight_layout(): that measures the figure by drawing it once more
            # (a third of the time per figure, benchmarks/figures.py); these are what it chose for
            # the widest y labels (negative MNDWI/NBR values, "−0.25")
            self.fig.subplots_adjust(**_SERIES_MARGINS)
            self._span = ax.axvspan(0.0, 1.0, color="#f0f0f0", label="monitor window")
            (self._model,) = ax.plot([], [], color="#2b8cbe", lw=1.2, label="seasonal baseline ŷ")
            self._band = ax.fill_between([0.0, 1.0], [0.0, 0.0], [0.0, 0.0], color="#2b8cbe", alpha=0.15, label="±σ")
            (self._obs,) = ax.plot([], [], "o", ms=3, color="#333333", label="(clear)")
            self._detected = ax.axvline(0.0, color="#de2d26", lw=1.5, label="detected")
            locator = mdates.AutoDateLocator(maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            self._title = ax.set_title("", fontsize=9)
            self._legend = ax.legend(fontsize=6, loc="lower left", ncol=3)

    def render(
        self,
        path: Path,
        times: np.ndarray,
        values: np.ndarray,
        model_times: np.ndarray,
        model: np.ndarray,
        sigma: float,
        *,
        index: str,
        z_threshold: float,
        first_detected: str,
        monitor_start: str,
        title: str,
    ) -> list[Path]:
        """Write ``path`` (PNG) and its SVG twin: clear observations of ``index`` at the alert
        centre (``times``: datetime64, ``values``: index values, NaN = not clear), the baseline
        model ŷ(t) on ``model_times`` with its ±``z_threshold``·σ band, the monitor window (from
        ``monitor_start`` to the last time) and the detection date (ISO dates)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ax = self.ax
        t = mdates.date2num(pd.to_datetime(times))
        mt = mdates.date2num(pd.to_datetime(model_times))
        start, detected = mdates.date2num(pd.Timestamp(monitor_start)), mdates.date2num(pd.Timestamp(first_detected))
        lower, upper = model - z_threshold * sigma, model + z_threshold * sigma
        ok = np.isfinite(values)
        self._span.set_x(start)
        self._span.set_width(t.max() - start)
        self._model.set_data(mt, model)
        self._band.set_data(mt, lower, upper)
        self._obs.set_data(t[ok], values[ok])
        self._detected.set_xdata([detected, detected])
        for text, label in zip(self._legend.get_texts(), ("monitor window", "seasonal baseline ŷ", f"±{z_threshold:g}σ",
                                                          f"{index} (clear)", f"detected {first_detected}")):
            text.set_text(label)
        ax.set_ylabel(index)
        self._title.set_text(title)
        # the view of the data, as plotting afresh would set it: lines, the span and the
        # detection line (relim), and the band (a collection: relim counts those only in
        # recent matplotlib)
        ax.relim()
        ax.update_datalim(np.column_stack([np.concatenate([mt, mt]), np.concatenate([lower, upper])]))
        ax.autoscale_view()
        if not np.isfinite(ax.dataLim.intervaly).all():  # no value at all: the empty view of a new figure, not the last alert's
            lo, hi = ax.yaxis.get_major_locator().nonsingular(-np.inf, np.inf)
            pad = ax.margins()[1] * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad, auto=None)
        return save_figure(self.fig, [path, path.with_suffix(".svg")])


def render_timeseries(
    path: Path,
    times: np.ndarray,
    values: np.ndarray,
    model_times: np.ndarray,
    model: np.ndarray,
    sigma: float,
    *,
    index: str,
    z_threshold: float,
    first_detected: str,
    monitor_start: str,
    title: str,
) -> list[Path]:
    """One alert's time-series figure, ``path`` (PNG) and its SVG twin (:meth:`SeriesFigure.render`;
    for many alerts, draw them with one :class:`SeriesFigure`)."""
    return SeriesFigure().render(path, times, values, model_times, model, sigma, index=index, z_threshold=z_threshold,
                                 first_detected=first_detected, monitor_start=monitor_start, title=title)
