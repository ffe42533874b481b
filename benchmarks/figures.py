"""Time to draw an alert's reviewer figures: two chips and the index time series (PNG + SVG).

Run with ``python benchmarks/figures.py [--alerts 13] [--repeat 3]``.

The scan draws, per alert, a before and an after chip and a time-series figure
(``redline.run.chips.alert_products``; 13 alerts at the ×16 area of ``benchmarks/memory.py``). This
times :func:`maps.render_chip` and one :class:`maps.SeriesFigure` drawn for every alert (as the
scan does) against the matplotlib versions they replaced (kept below as the baseline: a
matplotlib figure per chip, and a new time-series figure per alert laid out by
``fig.tight_layout()``), on the same inputs in the same run: a 45 × 50 px
window (an alert with the scan's 150 m margin at 10 m) and a 73-date series (preset ``small``)
with its model on a 5-day grid. Prints the time per alert of each and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import _bench  # noqa: E402
import maps  # noqa: E402
from maps import true_colour  # noqa: E402


def chip_matplotlib(path: Path, rgb: np.ndarray, outline_xy: list[np.ndarray], title: str) -> Path:
    """The chip as a matplotlib figure (maps/_figures.py before Pillow)."""
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


def timeseries_tight(path: Path, times, values, model_times, model, sigma, *, index, z_threshold, first_detected, monitor_start, title) -> None:
    """The time series laid out by ``tight_layout`` (maps/_figures.py before fixed margins)."""
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
    for p in (path, path.with_suffix(".svg")):
        fig.savefig(p)
    plt.close(fig)


def _inputs(n: int, seed: int = 7) -> list[dict]:
    rng = np.random.default_rng(seed)
    times = np.sort(np.datetime64("2022-01-01") + rng.choice(730, 73, replace=False).astype("timedelta64[D]")).astype("datetime64[ns]")
    grid = np.arange(np.datetime64("2022-01-01"), np.datetime64("2024-01-01"), np.timedelta64(5, "D")).astype("datetime64[ns]")
    doy = lambda t: (t.astype("datetime64[D]").astype(int) % 365) / 365.25  # noqa: E731
    out = []
    for k in range(n):
        rgb = rng.uniform(0.02, 0.15, (3, 45, 50)).astype("float32")
        x0, y0 = rng.integers(12, 25, 2)
        ring = np.array([[x0, y0], [x0 + 10, y0], [x0 + 12, y0 + 9], [x0, y0 + 11], [x0, y0]], dtype="float64") - 0.5
        model = 0.55 + 0.2 * np.sin(2 * np.pi * doy(grid))
        values = 0.55 + 0.2 * np.sin(2 * np.pi * doy(times)) + rng.normal(0, 0.04, times.size)
        values[times >= np.datetime64("2023-05-01")] -= 0.4
        values[rng.random(times.size) < 0.3] = np.nan  # cloudy looks
        out.append({"rgb": rgb, "rings": [ring], "times": times, "values": values, "grid": grid, "model": model, "sigma": 0.05,
                    "kw": {"index": "NDVI", "z_threshold": 3.0, "first_detected": "2023-05-04", "monitor_start": "2023-01-01",
                           "title": f"RL-{k:04d} · clearing · NDVI at the alert centre"}})
    return out


def _draw(out: Path, jobs: list[dict], chip, series) -> float:
    """Seconds per alert; ``series``: a function, or ``maps.SeriesFigure`` (one for all alerts)."""
    t0 = time.perf_counter()
    figure = series() if series is maps.SeriesFigure else None
    for k, j in enumerate(jobs):
        for tag in ("before", "after"):
            chip(out / "chips" / f"{k}_{tag}.png", j["rgb"], j["rings"], f"RL-{k:04d} {tag}")
        (figure.render if figure else series)(out / "figures" / f"{k}.png", j["times"], j["values"], j["grid"], j["model"], j["sigma"], **j["kw"])
    return (time.perf_counter() - t0) / len(jobs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=13, help="alerts per round (13: the ×16 area's scan)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, alternating baseline and redline; the best of each is kept")
    args = ap.parse_args(argv)
    print(_bench.machine())
    jobs = _inputs(args.alerts)
    with tempfile.TemporaryDirectory(prefix="redline-figs-") as tmp:
        out = Path(tmp)
        _draw(out / "warm", jobs[:1], chip_matplotlib, timeseries_tight)  # fonts, caches
        _draw(out / "warm", jobs[:1], maps.render_chip, maps.SeriesFigure)
        best: dict[str, float] = {}
        parts = {
            "chips, matplotlib figure": (chip_matplotlib, lambda *a, **k: None),
            "chips, Pillow (redline)": (maps.render_chip, lambda *a, **k: None),
            "time series, tight_layout": (lambda *a: None, timeseries_tight),
            "time series, fixed margins, new figure": (lambda *a: None, maps.render_timeseries),
            "time series, one figure (redline)": (lambda *a: None, maps.SeriesFigure),
            "all, before": (chip_matplotlib, timeseries_tight),
            "all, redline": (maps.render_chip, maps.SeriesFigure),
        }
        for _ in range(args.repeat):
            for name, (chip, series) in parts.items():
                best[name] = min(best.get(name, np.inf), _draw(out / "run", jobs, chip, series))
    print(f"{args.alerts} alerts, best of {args.repeat} rounds, seconds per alert:")
    for name, s in best.items():
        print(f"  {name:38s} {s * 1000:7.1f} ms")
    pairs = (("chips", "chips, matplotlib figure", "chips, Pillow (redline)"),
             ("time series", "time series, tight_layout", "time series, one figure (redline)"), ("all", "all, before", "all, redline"))
    for label, before, after in pairs:
        print(f"  {label}: before / redline = {best[before] / best[after]:.2f}")
    print(f"  the ×16 scan's {args.alerts} alerts: {best['all, before'] * args.alerts:.2f} s → {best['all, redline'] * args.alerts:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
