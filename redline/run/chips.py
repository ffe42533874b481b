"""The reviewer's pictures of each alert and the re-check of rectified sites: small windows.

After the tile loop, :func:`chips_and_rechecks` reads only the windows around the alerts (with
:data:`CHIP_MARGIN_M` around each), grouped by :func:`chip_groups` into as few windows as the
memory budget allows, whatever the processing tiles: rectified sites are re-checked
(:func:`redline.alerts.rectify.recheck_rectified`) and :func:`alert_products` draws each new
alert's before/after chips (PNG, the grid's UTM CRS) and its index time-series figure through
``maps``. This room may import ``maps`` (the renderer), redline's science modules (detect,
alerts, register helpers) and :mod:`redline.run.graph`; only the scan imports it.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from pathlib import Path

from redline import outputs
from redline.alerts.rectify import recheck_rectified
from redline.config import ScanConfig
from redline.detect import baseline_model
from redline.register import of_scan
from redline.run.graph import index_stack, items_over, monitor_median, tile_graph
from redline.run.plan import ScanPlan
from redline.tiles import Tile

__all__ = ["CHIP_CHUNK", "CHIP_MARGIN_M", "ChipBook", "alert_products", "chip_groups", "chip_window", "chips_and_rechecks", "drawn_before",
           "products_from_looks", "rechecks", "with_products"]


#: Margin around an alert in its chips, metres.
CHIP_MARGIN_M = 150.0


#: Compute chunk edge (px) of the chips' and re-checks' graph: the scenes are still read in
#: one piece, but only the small chunks the alerts' windows and centre pixels touch are scaled,
#: masked and turned into indices (x16 area, 13 alerts, one thread: 3.5 s -> 1.8 s; the read
#: alone is ~1.6 s)
CHIP_CHUNK = 128


_FIGURE_INDEX = {"water_loss": "MNDWI", "fire": "NBR"}  # others: NDVI


def _dates_seen(win: np.ndarray, sel: np.ndarray, days: np.ndarray) -> str | None:
    """``first/last`` ISO dates among ``days[sel]`` on which the chip window had a clear pixel."""
    seen = sel & np.isfinite(win).any(axis=(0, 2, 3))
    return f"{days[seen].min()}/{days[seen].max()}" if seen.any() else None


def _window(geom, inv, height: int, width: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """An alert's chip window (r0, r1, c0, c1: its bounds with :data:`CHIP_MARGIN_M` around,
    inside a ``height`` × ``width`` grid whose inverse transform is ``inv``) and its centre
    pixel (row, col: the representative point's)."""
    w, s, e, n = geom.bounds
    c0, r0 = inv * (w - CHIP_MARGIN_M, n + CHIP_MARGIN_M)
    c1, r1 = inv * (e + CHIP_MARGIN_M, s - CHIP_MARGIN_M)
    r0, c0 = max(int(r0), 0), max(int(c0), 0)
    r1, c1 = min(int(np.ceil(r1)), height), min(int(np.ceil(c1)), width)
    p = geom.representative_point()
    cc, rr = inv * (p.x, p.y)
    return (r0, r1, c0, c1), (min(int(rr), height - 1), min(int(cc), width - 1))


def _outline(geom) -> str:
    """A digest of an alert's outline (grid CRS, metres; the chips draw it): sha256 of its WKB
    on a 1 cm grid, normalised, 16 hex digits. The register's round trip (to its CRS and back)
    moves vertices by ~1e-7 m; a chip pixel is 10 m."""
    import hashlib

    import shapely

    return hashlib.sha256(shapely.to_wkb(shapely.normalize(shapely.set_precision(geom, 0.01)))).hexdigest()[:16]


def _rings(geom, inv, r0: int, c0: int) -> list[np.ndarray]:
    """The alert's outline rings in the pixel coordinates of its chip (window origin ``r0, c0``)."""
    rings = []
    for poly in getattr(geom, "geoms", [geom]):
        xy = np.array(poly.exterior.coords)
        cols, rows = inv * (xy[:, 0], xy[:, 1])
        rings.append(np.column_stack([np.asarray(cols) - c0 - 0.5, np.asarray(rows) - r0 - 0.5]))
    return rings


def _chip(out: Path, alert_id: str, tag: str, win: np.ndarray, sel: np.ndarray, rings: list[np.ndarray]) -> str:
    """Draw one chip: the median of the looks ``sel`` of ``win`` (band, time, y, x); its path."""
    import maps

    comp = monitor_median(np.moveaxis(win[:, sel], 1, -1)) if sel.any() else np.full(win.shape[:1] + win.shape[2:], np.nan, "float32")
    rel = f"{outputs.CHIPS_DIR}/{alert_id}_{tag}.png"
    maps.render_chip(out / rel, comp, rings, f"{alert_id} {tag}")  # ASCII: no CJK font needed
    return rel


def _figure(out: Path, figure, a, times: np.ndarray, values: np.ndarray, var: str, cfg: ScanConfig) -> None:
    """Draw alert ``a``'s time-series figure: the index ``var`` at its centre on ``times``."""
    days = times.astype("datetime64[D]")
    in_base = (days >= np.datetime64(cfg.baseline.start)) & (days <= np.datetime64(cfg.baseline.end))
    grid = np.arange(days.min(), days.max() + np.timedelta64(1, "D"), np.timedelta64(5, "D")).astype("datetime64[ns]")
    model, sigma = baseline_model(times, values, in_base, var=var, harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, at=grid)
    figure.render(
        out / outputs.FIGURES_DIR / f"{a.alert_id}.png", times, values, grid, model, sigma, index=var,
        z_threshold=cfg.detection.z_threshold, first_detected=str(a.first_detected), monitor_start=str(cfg.monitor.start),
        title=f"{a.alert_id} · {a.disturbance_type} · {var} at the alert centre",
    )


def _after(days: np.ndarray, first: np.datetime64, cfg: ScanConfig) -> np.ndarray:
    """The looks (by solar day) of an alert's after chip: from its first detection to the monitor's end."""
    return (days >= first) & (days >= np.datetime64(cfg.monitor.start)) & (days <= np.datetime64(cfg.monitor.end))


@dataclass
class ChipBook:
    """What the scan's state keeps of each alert's chips (:mod:`redline.run.state`), filled by
    :func:`alert_products` and :func:`products_from_looks`: per alert its record (the state
    tile whose window holds its chip window, the window and centre pixel on ``grid``,
    ``first_detected``, the figure's index, the before chip and its dates) and the figure index
    at its centre on the looks before ``first`` (the state's stock start)."""

    grid: GeoBox
    first: np.datetime64
    tiles: list[tuple[str, tuple[int, int, int, int]]]  # state tile id, window (r0, r1, c0, c1)
    records: dict[str, dict] = field(default_factory=dict)
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def tile_of(self, window: tuple[int, int, int, int]) -> str | None:
        """The first state tile whose window holds ``window`` (None: none; the alert is read again next time)."""
        r0, r1, c0, c1 = window
        return next((t for t, (a0, a1, b0, b1) in self.tiles if a0 <= r0 and r1 <= a1 and b0 <= c0 and c1 <= b1), None)

    def keep(self, a, window: tuple[int, int, int, int], centre: tuple[int, int], var: str, before: str, before_dates: str | None,
             times: np.ndarray, values: np.ndarray) -> None:
        """Record alert ``a`` (grid CRS) as drawn: its chip ``window`` and ``centre`` (grid px),
        figure index ``var``, before chip and dates, and its series ``values`` on ``times``
        (the part before the stock start is kept). Not recorded when no state tile holds the window."""
        tile = self.tile_of(window)
        if tile is None:
            return
        pre = times.astype("datetime64[D]") < self.first
        self.records[a.alert_id] = {"tile": tile, "window": list(window), "centre": list(centre), "first_detected": str(a.first_detected),
                                    "outline": _outline(a.geometry), "var": var, "chip_before": before, "before_dates": before_dates}
        self.series[a.alert_id] = (times[pre].astype("datetime64[ns]"), values[pre].astype("float32"))


def alert_products(out: Path, jobs: list[tuple[gpd.GeoDataFrame, xr.Dataset, xr.DataArray, GeoBox]], cfg: ScanConfig,
                   book: ChipBook | None = None) -> dict[str, tuple[str, str, str | None, str | None]]:
    """Before/after chips and the index time-series figure of each alert (the scan writer's
    second and last eager step: small windows around the alerts and their centre pixels, of
    every tile in one compute). ``jobs``: per tile, its alerts (grid CRS) with the tile's lazy
    reflectance and index stack on ``geobox``. ``book``: where the state's records of the
    alerts drawn go (:class:`ChipBook`).
    Returns alert_id → (before chip, after chip, before dates, after dates); the dates are the
    first/last clear dates that went into each chip's median composite."""
    import maps

    jobs = [j for j in jobs if not j[0].empty]
    lazy: list = []
    plan = []
    for alerts_utm, refl, stack, geobox in jobs:
        inv = ~geobox.transform
        height, width = geobox.shape
        rgb = refl[["red", "green", "blue"]].to_array("band")
        placed = [_window(a.geometry, inv, height, width) for a in alerts_utm.itertuples()]
        windows, centres = [w for w, _ in placed], [c for _, c in placed]
        start = len(lazy)
        lazy += [rgb.isel(y=slice(r0, r1), x=slice(c0, c1)) for r0, r1, c0, c1 in windows]
        lazy.append(stack.isel(y=xr.DataArray([r for r, _ in centres], dims="alert"), x=xr.DataArray([c for _, c in centres], dims="alert")))
        plan.append((alerts_utm, stack, geobox, windows, centres, start))
    computed_all = dask.compute(*lazy)
    products = {}
    figure = maps.SeriesFigure()  # one time-series figure drawn for every alert: built once (benchmarks/figures.py)
    for alerts_utm, stack, geobox, windows, centres, start in plan:
        inv = ~geobox.transform
        computed = computed_all[start:start + len(windows)]
        series_np = computed_all[start + len(windows)]
        times = stack["time"].values
        days = times.astype("datetime64[D]")
        if book is not None:  # the chip window's offset on the scan grid
            oc, orow = ~book.grid.transform * (geobox.transform.c, geobox.transform.f)
            off = (int(round(orow)), int(round(oc)))
        for k, a in enumerate(alerts_utm.itertuples()):
            r0, r1, c0, c1 = windows[k]
            win = computed[k].values  # (band, time, y, x)
            first = np.datetime64(a.first_detected)
            before_t = (days < first) & (days >= first - np.timedelta64(365, "D"))
            after_t = _after(days, first, cfg)
            rings = _rings(a.geometry, inv, r0, c0)
            paths = [_chip(out, a.alert_id, tag, win, sel, rings) for tag, sel in (("before", before_t), ("after", after_t))]
            var = _FIGURE_INDEX.get(a.disturbance_type, "NDVI")
            values = series_np.sel(var=var).isel(alert=k).values.astype("float64")
            _figure(out, figure, a, times, values, var, cfg)
            products[a.alert_id] = (paths[0], paths[1], _dates_seen(win, before_t, days), _dates_seen(win, after_t, days))
            if book is not None:
                (dr, dc), (cr, cc) = off, centres[k]
                book.keep(a, (r0 + dr, r1 + dr, c0 + dc, c1 + dc), (cr + dr, cc + dc), var, paths[0], products[a.alert_id][2], times, values)
    return products


def drawn_before(merged: gpd.GeoDataFrame, scan_id: str, grid: GeoBox, utm, records: dict[str, dict], changed_days: set[str],
                 out: Path) -> set[str]:
    """This scan's alerts whose chips a rescan draws from its state (:func:`products_from_looks`)
    instead of reading their windows again: those the state has a record of
    (:class:`ChipBook`) with the same outline (the chips draw it), chip window and centre pixel
    on ``grid``, the same ``first_detected`` and figure index, their before chip still in ``out``, and no changed
    solar day (``changed_days``, ISO) in the year before their first detection (the before
    chip's looks). ``utm``: the grid's CRS."""
    if not records:
        return set()
    mine = merged[of_scan(merged, scan_id) & merged["alert_id"].isin(list(records)).values]
    if mine.empty:
        return set()
    inv = ~grid.transform
    height, width = grid.shape
    changed = np.array(sorted(changed_days), dtype="datetime64[D]")
    kept = set()
    for a in mine.to_crs(utm).itertuples():
        rec = records[a.alert_id]
        window, centre = _window(a.geometry, inv, height, width)
        first = np.datetime64(str(a.first_detected)[:10], "D")
        late = ((changed < first) & (changed >= first - np.timedelta64(365, "D"))).any()
        if (list(window) == rec["window"] and list(centre) == rec["centre"] and str(a.first_detected) == rec["first_detected"]
                and _outline(a.geometry) == rec.get("outline")
                and _FIGURE_INDEX.get(a.disturbance_type, "NDVI") == rec["var"] and (out / rec["chip_before"]).is_file() and not late):
            kept.add(a.alert_id)
    return kept


def products_from_looks(out: Path, cfg: ScanConfig, plan: ScanPlan, alerts: gpd.GeoDataFrame, records: dict[str, dict],
                        series: dict[str, tuple[np.ndarray, np.ndarray]], looks: dict[str, tuple[list[Path], tuple[int, int, int, int]]],
                        book: ChipBook | None = None) -> dict[str, tuple[str, str, str | None, str | None]]:
    """The chips and figures of ``alerts`` (those of :func:`drawn_before`, any CRS) from the
    state, reading no scene: the before chip kept as it is, the after chip from the looks files of
    the new state (``looks``: tile id → its looks files and window, :meth:`redline.run.state.StateWriter.looks_files`),
    the figure from the stored ``series`` before the stock start and the looks after it.
    Each tile's alerts in groups of :func:`chip_groups`: one read of each group's window per band.
    Returns what :func:`alert_products` does; ``book`` gets their records again."""
    import maps

    if alerts.empty:
        return {}
    products = {}
    figure = maps.SeriesFigure()
    utm = alerts.to_crs(plan.utm)
    inv = ~plan.grid.transform
    max_px = plan.sizing.largest_tile_px if plan.sizing is not None and plan.sizing.largest_tile_px else plan.grid.shape[0] * plan.grid.shape[1]
    tile_of = np.array([records[a]["tile"] for a in utm["alert_id"]], dtype=object)
    for tile_id in sorted(set(tile_of)):
        paths, (t0, _, u0, _) = looks[tile_id]
        here = utm.iloc[np.flatnonzero(tile_of == tile_id)]
        with ExitStack() as opened:
            parts = [opened.enter_context(xr.open_dataset(p, engine="h5netcdf")) for p in paths]
            times = np.concatenate([ds["time"].values for ds in parts])
            order = np.argsort(times, kind="stable")
            times = times[order]
            days = times.astype("datetime64[D]")  # as alert_products' (UTC dates of the looks)
            names = [k[len("refl_"):] for k in parts[0].data_vars if k.startswith("refl_")]
            for group in chip_groups(here, plan.grid, cfg.resolution, max_px):
                members = here.iloc[group]
                recs = [records[a] for a in members["alert_id"]]
                g0, g1 = min(r["window"][0] for r in recs), max(r["window"][1] for r in recs)
                h0, h1 = min(r["window"][2] for r in recs), max(r["window"][3] for r in recs)
                box = {b: np.concatenate([ds[f"refl_{b}"].isel(y=slice(g0 - t0, g1 - t0), x=slice(h0 - u0, h1 - u0)).values
                                          for ds in parts])[order] for b in names}
                # the group's centre pixels as one (time, 1, alert) image: one index stack for all
                rows = [r["centre"][0] - g0 for r in recs]
                cols = [r["centre"][1] - h0 for r in recs]
                centres = xr.Dataset({b: (("time", "y", "x"), box[b][:, rows, cols][:, None, :]) for b in names}, coords={"time": times})
                at_centres = index_stack(centres, plan.bands)
                for k, (a, rec) in enumerate(zip(members.itertuples(), recs)):
                    r0, r1, c0, c1 = rec["window"]
                    win = np.stack([box[b][:, r0 - g0:r1 - g0, c0 - h0:c1 - h0] for b in ("red", "green", "blue")])
                    post = at_centres.sel(var=rec["var"]).values[:, 0, k].astype("float64")
                    pre_t, pre_v = series[a.alert_id]
                    all_t = np.concatenate([pre_t.astype("datetime64[ns]"), times.astype("datetime64[ns]")])
                    all_v = np.concatenate([pre_v.astype("float64"), post])
                    after_t = _after(days, np.datetime64(str(a.first_detected)[:10], "D"), cfg)
                    after = _chip(out, a.alert_id, "after", win, after_t, _rings(a.geometry, inv, r0, c0))
                    _figure(out, figure, a, all_t, all_v, rec["var"], cfg)
                    products[a.alert_id] = (rec["chip_before"], after, rec["before_dates"], _dates_seen(win, after_t, days))
                    if book is not None:
                        book.records[a.alert_id] = dict(rec)
                        book.series[a.alert_id] = (pre_t, pre_v)
    return products


def _tile_of(alerts: gpd.GeoDataFrame, tiles: list[Tile], grid: GeoBox) -> np.ndarray:
    """Per alert, the id of the tile of its zone, or for a split zone the tile whose cell holds
    the alert's representative point ('' when the zone is in no tile: an alert of the register
    outside this scan's zones, which is neither re-checked nor drawn)."""
    if alerts.empty:
        return np.array([], dtype=object)
    whole = {z: t.id for t in tiles for z in t.zone_ids}
    pts = alerts.to_crs(grid.crs).geometry.representative_point()
    inv = ~grid.transform
    out = []
    for zid, pt in zip(alerts["zone_id"], pts):
        if zid in whole:
            out.append(whole[zid])
            continue
        col, row = inv * (pt.x, pt.y)
        cells = [t for t in tiles if zid in t.split_ids]
        here = [t for t in cells if t.cell[0] <= row < t.cell[1] and t.cell[2] <= col < t.cell[3]]
        out.append((here or cells)[0].id if (here or cells) else "")
    return np.array(out, dtype=object)


def chip_window(alerts_utm: gpd.GeoDataFrame, grid: GeoBox, resolution: float) -> GeoBox:
    """The grid window around ``alerts_utm`` (in the grid's CRS) with the chip margin beyond
    each: the chips show the same context as on the whole grid, and only this window is read."""
    pad = int(np.ceil(CHIP_MARGIN_M / resolution)) + 1
    inv = ~grid.transform
    x0, y0, x1, y1 = alerts_utm.total_bounds
    c0, r0 = inv * (x0, y1)
    c1, r1 = inv * (x1, y0)
    h, w = grid.shape
    return grid[max(int(np.floor(r0)) - pad, 0):min(int(np.ceil(r1)) + pad, h), max(int(np.floor(c0)) - pad, 0):min(int(np.ceil(c1)) + pad, w)]


def chip_groups(alerts_utm: gpd.GeoDataFrame, grid: GeoBox, resolution: float, max_px: int) -> list[np.ndarray]:
    """The alerts (grid CRS, metres) in groups whose chip window (:func:`chip_window`) holds at
    most ``max_px`` pixels (the budget's largest tile, :attr:`redline.budget.Sizing.largest_tile_px`):
    one group, one read of its window's series, whatever the processing tiles. A group too large
    is cut in two at the median of its alerts' centres along its window's longer side, until
    each fits or holds one alert. Returns positional indices into ``alerts_utm``, in a stable
    order."""
    if alerts_utm.empty:
        return []
    centres = alerts_utm.geometry.bounds
    cx = ((centres["minx"] + centres["maxx"]) / 2).to_numpy()
    cy = ((centres["miny"] + centres["maxy"]) / 2).to_numpy()
    out: list[np.ndarray] = []
    todo = [np.arange(len(alerts_utm))]
    while todo:
        idx = todo.pop()
        h, w = chip_window(alerts_utm.iloc[idx], grid, resolution).shape
        if h * w <= max_px or len(idx) == 1:
            out.append(idx)
            continue
        key = cx[idx] if w >= h else cy[idx]
        order = idx[np.argsort(key, kind="stable")]
        half = len(order) // 2
        todo += [order[half:], order[:half]]
    return sorted(out, key=lambda a: int(a.min()))


def chips_and_rechecks(out: Path, plan: ScanPlan, merged: gpd.GeoDataFrame, history: pd.DataFrame,
                        scan_id: str) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Small windows around the alerts (:func:`chip_groups`): the rectified sites re-checked (整改销号: has
    vegetation come back? :func:`redline.alerts.rectify.recheck_rectified`), then the chips and
    figures of this scan's alerts, their paths and dates set on ``merged``. Returns ``merged``
    and the re-checks' decisions (``alert_id, from_status, to_status, note, by``) for
    :meth:`redline.register.Register.commit_scan` to record. The scan runs the two halves
    (:func:`rechecks`, then :func:`alert_products` and :func:`with_products`) apart, the chips
    alongside the COGs and the assessment."""
    merged, decisions, jobs = rechecks(plan, merged, history, scan_id)
    return with_products(merged, scan_id, alert_products(out, jobs, plan.cfg)), decisions


def rechecks(plan: ScanPlan, merged: gpd.GeoDataFrame, history: pd.DataFrame,
             scan_id: str, skip: set[str] = frozenset()) -> tuple[gpd.GeoDataFrame, list[dict], list[tuple[gpd.GeoDataFrame, xr.Dataset, xr.DataArray, GeoBox]]]:
    """Small windows around this scan's alerts and the register's rectified sites (in this scan's
    zones), grouped by :func:`chip_groups`: the rectified sites re-checked (整改销号: has
    vegetation come back? :func:`redline.alerts.rectify.recheck_rectified`). Returns ``merged``
    with their new statuses, the re-checks' decisions (``alert_id, from_status, to_status, note,
    by``) for :meth:`redline.register.Register.commit_scan` to record, and the jobs of
    :func:`alert_products` (per window, this scan's alerts in it with the window's lazy stack).
    ``skip``: this scan's alerts whose chips come from the state (:func:`drawn_before`): their
    windows are read only when they are rectified sites, and they are in no job."""
    cfg = plan.cfg
    n_before = len(history)
    mine_mask = of_scan(merged, scan_id) & ~merged["alert_id"].isin(list(skip)).values
    wanted = (mine_mask | (merged["status"] == "rectified").values) & (_tile_of(merged, plan.tiles, plan.grid) != "")
    todo = merged.loc[wanted]
    jobs = []
    if todo.empty:
        return merged, [], jobs
    todo_utm = todo.to_crs(plan.utm)
    # a window the size of the largest processing tile fits the memory budget (its chunks are smaller)
    max_px = plan.sizing.largest_tile_px if plan.sizing is not None and plan.sizing.largest_tile_px else plan.grid.shape[0] * plan.grid.shape[1]
    for group in chip_groups(todo_utm, plan.grid, cfg.resolution, max_px):
        members = todo.index[group]
        gb = chip_window(todo_utm.iloc[group], plan.grid, cfg.resolution)
        tile_items = items_over(plan.items, gb)
        if not tile_items:
            continue
        g = tile_graph(cfg, tile_items, gb, check_assets=False, chunk=CHIP_CHUNK, plan=plan.bands)
        mine = members[mine_mask[merged.index.get_indexer(members)]]
        jobs.append((merged.loc[mine].to_crs(plan.utm), g.reflectance, g.stack, gb))
        merged, history, _ = recheck_rectified(
            merged, history, g.stack, gb, baseline=(str(cfg.baseline.start), str(cfg.baseline.end)), scan_id=scan_id,
            harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, alert_ids=set(merged.loc[members, "alert_id"]),
        )
    return merged, history.iloc[n_before:].to_dict("records"), jobs


def with_products(merged: gpd.GeoDataFrame, scan_id: str, products: dict[str, tuple[str, str, str | None, str | None]]) -> gpd.GeoDataFrame:
    """``merged`` with the chips' paths and dates of :func:`alert_products` set on this scan's alerts."""
    for i in merged.index[of_scan(merged, scan_id)]:
        aid = merged.at[i, "alert_id"]
        if aid in products:
            merged.at[i, "chip_before"], merged.at[i, "chip_after"], merged.at[i, "before_dates"], merged.at[i, "after_dates"] = products[aid]
    return merged
