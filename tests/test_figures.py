"""Reviewer figures (maps/_figures.py) read back from their files: the chip's outline lies on the
alert polygon's edge and nowhere else, its pixels are the true-colour stretch; the time series
is a PNG and an SVG twin."""

from __future__ import annotations

import numpy as np
from PIL import Image

from maps import CHIP_PX, render_chip, render_timeseries, true_colour


def _red(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 200) & (img[..., 1] < 110) & (img[..., 2] < 110)


def _distance_to_ring(x: np.ndarray, y: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Distance (px) of points to a closed polyline."""
    d = np.full(x.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(ring[:-1], ring[1:]):
        t = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        d = np.minimum(d, np.hypot(x - (x0 + t * (x1 - x0)), y - (y0 + t * (y1 - y0))))
    return d


def test_chip_outline_is_drawn_on_the_polygon_edges_and_nowhere_else(tmp_path):
    h, w = 30, 40
    rng = np.random.default_rng(3)
    rgb = np.stack([rng.uniform(0.03, 0.08, (h, w)), rng.uniform(0.08, 0.14, (h, w)), rng.uniform(0.02, 0.06, (h, w))]).astype("float32")
    rgb[:, 25:, :4] = np.nan  # no data: black
    # the scan's rings: pixel coordinates with pixel centres at integers (edges at ±0.5);
    # a square over columns 10–19 and rows 8–17, and a triangle elsewhere (a multipolygon alert)
    square = np.array([[9.5, 7.5], [19.5, 7.5], [19.5, 17.5], [9.5, 17.5], [9.5, 7.5]])
    triangle = np.array([[27.5, 19.5], [35.5, 19.5], [27.5, 26.5], [27.5, 19.5]])
    path = render_chip(tmp_path / "chips" / "a_before.png", rgb, [square, triangle], "Z1-20230501-1 before")

    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    k = CHIP_PX // max(h, w)
    assert img.shape[0] > h * k and img.shape[1] >= w * k  # the image, enlarged, below its title
    top, left = img.shape[0] - h * k, (img.shape[1] - w * k) // 2
    chip = img[top:, left:left + w * k]
    # chip pixel coordinates of every enlarged pixel's centre
    yy, xx = np.mgrid[0:h * k, 0:w * k]
    cx, cy = (xx + 0.5) / k - 0.5, (yy + 0.5) / k - 0.5
    dist = np.minimum(_distance_to_ring(cx, cy, square), _distance_to_ring(cx, cy, triangle))

    red = _red(chip)
    assert red.sum() > 0
    assert dist[red].max() <= 2.0 / k  # every red pixel lies on an outline (a 2-px line)
    for ring in (square, triangle):  # and each outline is drawn all round
        along = np.concatenate([np.linspace(a, b, 40, endpoint=False) for a, b in zip(ring[:-1], ring[1:])])
        rows, cols = np.round((along[:, 1] + 0.5) * k - 0.5).astype(int), np.round((along[:, 0] + 0.5) * k - 0.5).astype(int)
        near = [red[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].any() for r, c in zip(rows, cols)]
        assert np.mean(near) > 0.95
    # away from the outlines, each pixel is a k × k block of the true-colour stretch
    expected = np.round(np.repeat(np.repeat(true_colour(rgb), k, 0), k, 1) * 255)
    away = dist > 2.5 / k
    assert np.abs(chip[away] - expected[away]).max() <= 1
    assert (chip[25 * k:, :4 * k] == 0).all()  # no data is black
    assert not _red(img[:top]).any()  # the title band has no outline
    assert (img[:top] < 100).all(axis=-1).any()  # and holds dark title text on white


def test_before_and_after_chips_are_the_same_size_whatever_their_titles(tmp_path):
    rgb = np.full((3, 37, 41), 0.1, "float32")
    ring = [np.array([[3.5, 3.5], [9.5, 3.5], [9.5, 9.5], [3.5, 3.5]])]
    sizes = {Image.open(render_chip(tmp_path / f"{t}.png", rgb, ring, f"Z-20230601-1 {t}")).size for t in ("before", "after")}
    long = Image.open(render_chip(tmp_path / "long.png", rgb, ring, "一个很长的保护区名称-20230601-123456 before" * 3)).size
    assert len(sizes) == 1 and sizes == {long}


def test_chip_of_a_one_pixel_window_is_still_a_valid_image(tmp_path):
    rgb = np.full((3, 1, 1), 0.1, "float32")
    path = render_chip(tmp_path / "c.png", rgb, [np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, -0.5]])], "tiny")
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= CHIP_PX and _red(np.asarray(im.convert("RGB"))).any()


def test_time_series_is_written_as_png_and_svg(tmp_path):
    times = np.arange(np.datetime64("2022-01-03"), np.datetime64("2023-12-31"), np.timedelta64(10, "D")).astype("datetime64[ns]")
    values = np.where(times < np.datetime64("2023-05-01"), 0.6, -0.2) + 0.05 * np.sin(np.arange(times.size))
    values[::4] = np.nan
    grid = times[::2]
    files = render_timeseries(tmp_path / "figures" / "x.png", times, values, grid, np.full(grid.size, 0.6), 0.04, index="MNDWI",
                              z_threshold=3.0, first_detected="2023-05-04", monitor_start="2023-01-01", title="x · water_loss · MNDWI")
    assert [f.name for f in files] == ["x.png", "x.svg"]
    with Image.open(files[0]) as im:
        assert im.format == "PNG" and im.size == (600, 260)
        img = np.asarray(im.convert("RGB")).astype(int)
    # the detection line (#de2d26) is drawn
    assert ((np.abs(img - [0xDE, 0x2D, 0x26]).sum(axis=-1)) < 30).sum() > 50
    svg = files[1].read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg and "MNDWI" in svg


def _series(level: float, drop: float, first: str, nan: bool = False) -> tuple:
    times = np.arange(np.datetime64("2022-01-03"), np.datetime64("2023-12-31"), np.timedelta64(7, "D")).astype("datetime64[ns]")
    values = level + 0.1 * np.sin(np.arange(times.size) / 8) - np.where(times >= np.datetime64(first), drop, 0.0)
    model = level + 0.1 * np.sin(np.arange(times.size) / 8)
    if nan:
        values[:], model[:] = np.nan, np.nan
    return times, values, times, model


def test_one_series_figure_for_many_alerts_draws_each_as_a_new_figure_would(tmp_path):
    """The scan draws every alert's time series with one figure: each PNG is the one a new
    figure draws for that alert, whatever was drawn before (view, labels, dates, band)."""
    from maps import SeriesFigure

    alerts = [  # (series, sigma, index, first detection, title)
        (_series(0.7, 0.5, "2023-04-10"), 0.03, "NDVI", "2023-04-10", "a · clearing · NDVI"),
        (_series(-0.4, 0.0, "2023-09-01", nan=True), float("nan"), "NBR", "2023-09-01", "b · fire · NBR"),  # nothing to show
        (_series(0.2, 0.9, "2022-11-20"), 0.12, "MNDWI", "2022-11-20", "c · water_loss · MNDWI"),
    ]
    figure = SeriesFigure()
    for k, ((t, v, mt, m), sigma, index, first, title) in enumerate(alerts):
        kw = {"index": index, "z_threshold": 2.5 + k, "first_detected": first, "monitor_start": "2023-01-01", "title": title}
        reused = figure.render(tmp_path / "reused" / f"{k}.png", t, v, mt, m, sigma, **kw)
        alone = render_timeseries(tmp_path / "alone" / f"{k}.png", t, v, mt, m, sigma, **kw)
        a, b = (np.asarray(Image.open(p[0]).convert("RGB")) for p in (reused, alone))
        assert a.shape == b.shape and (a == b).all(), title
        svg = reused[1].read_text(encoding="utf-8")  # text kept as text (svg.fonttype none), as in every figure
        assert all(f">{label}</text>" in svg for label in (title, f"detected {first}", f"{index} (clear)", f"±{2.5 + k:g}σ")), title
    assert not (np.asarray(Image.open(tmp_path / "reused/0.png")) == np.asarray(Image.open(tmp_path / "reused/2.png"))).all()
