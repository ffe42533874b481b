"""Reviewer figures (matplotlib, Agg): before/after true-colour chips with the alert outline, and
an alert's index time series with its seasonal baseline and detection date. Data in (numpy
arrays, reflectance 0–1), files out; nothing here reads the pipeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: One fixed stretch for every chip (0–0.3 reflectance, gamma 1/1.6), the same as the scan's
#: true-colour composite, so that before and after compare by eye.
STRETCH_MAX = 0.3
GAMMA = 1.6


def true_colour(rgb: np.ndarray) -> np.ndarray:
    """(3, y, x) reflectance → (y, x, 3) float 0–1 image; no data shown black."""
    img = np.clip(np.nan_to_num(rgb, nan=0.0) / STRETCH_MAX, 0, 1) ** (1 / GAMMA)
    return np.moveaxis(img, 0, -1)


def render_chip(path: Path, rgb: np.ndarray, outline_xy: list[np.ndarray], title: str) -> Path:
    """Write a true-colour chip PNG with the alert outline (pixel coordinates, x/y arrays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rgb.shape[1:]
    fig = plt.figure(figsize=(2.4, 2.4 * h / max(w, 1)), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.9))
    ax.imshow(true_colour(rgb), interpolation="nearest")
    for ring in outline_xy:
        ax.plot(ring[:, 0], ring[:, 1], color="#ff2a2a", lw=1.2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    fig.suptitle(title, fontsize=7, y=0.99)
    fig.savefig(path)
    plt.close(fig)
    return path


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
    """Write ``path`` (PNG) and its SVG twin: clear observations of ``index`` at the alert centre,
    the baseline model ŷ(t) with its ±z·σ band, the monitor window and the detection date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = pd.to_datetime(times)
    fig, ax = plt.subplots(figsize=(6.0, 2.6), dpi=100)
    ax.axvspan(pd.Timestamp(monitor_start), t.max(), color="#f0f0f0", label="monitor window")
    mt = pd.to_datetime(model_times)
    ax.plot(mt, model, color="#2b8cbe", lw=1.2, label="seasonal baseline ŷ")
    ax.fill_between(mt, model - z_threshold * sigma, model + z_threshold * sigma, color="#2b8cbe", alpha=0.15, label=f"±{z_threshold:g}σ")
    ok = np.isfinite(values)
    ax.plot(t[ok], values[ok], "o", ms=3, color="#333333", label=f"{index} (clear)")
    ax.axvline(pd.Timestamp(first_detected), color="#de2d26", lw=1.5, label=f"detected {first_detected}")
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel(index)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower left", ncol=3)
    fig.tight_layout()
    out = [path, path.with_suffix(".svg")]
    for p in out:
        fig.savefig(p)
    plt.close(fig)
    return out
