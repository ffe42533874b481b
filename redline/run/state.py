"""The state of scheduled scans (issue 26): per tile, what a rescan needs to judge new scenes
without reading and fitting the baseline again.

A scan writes, beside its outputs, ``state/`` (:data:`STATE_DIR`): two NetCDF-4 files per
processing tile in a folder of its own (``<token>/tile-<id>-base.nc`` and ``-looks-<token>.nc``, read with
xarray's h5netcdf engine, zlib level 1 with shuffle, one HDF5 chunk per variable) and the index
``state.json`` (:data:`INDEX`), written last with an atomic rename, which is what makes a state:
a scan killed half-way leaves the previous state whole. On the tile's computed window of the
scan grid (its UTM CRS, metres), the baseline file holds what does not change until the
baseline does (a rescan keeps it as it is, by a hard link):

* ``model`` (channel, y, x) float64 — the baseline model of :func:`redline.detect.fit_baseline`
  (harmonic β per stack variable and term, the floored robust σ, baseline water, the clear
  baseline looks and their growing-season NDVI mean), its attributes as ``model_attrs`` (JSON);
* ``base_clear`` (base_time, y, x) uint8 — the clear baseline looks (the monitor's seasonal
  support test needs them);
* ``pre_<name>`` (y, x) float32 and ``pre_ndvi_annual`` (pre_year, y, x) — the assessment inputs
  that only looks before :func:`stock_start` feed (the baseline period's RSEI inputs, the annual
  NDVI of the earlier years), ``pre_last_clear``, the day of the last clear look before it, and
  ``pre_clear_px`` (pre_time), the tile's clear pixels per earlier look;

and the looks files ``refl_<band>`` (time, y, x) float32 — the masked reflectance (NaN where not
clear; ``lst`` in Kelvin) of every look from :func:`stock_start` on, with its solar ``day``: the
monitor looks and the rest of the calendar year the monitor begins in, which the monitor
period's assessment inputs and the annual growing-season NDVI of those years are computed from.
Each scan writes only the looks it read: a rescan's new file (``tile-<id>-looks-<token>.nc``,
named by the scan that wrote it) holds the looks of its new days, and the earlier files are
hard-linked as they are, unless a day in one changed (a late or reprocessed scene: that file's
other looks go into the new one) or the tile would have more than :data:`MAX_LOOKS_FILES`
(all are merged into one). HDF5 chunks hold all looks of :data:`LOOKS_CHUNK` px squares, so
that the chips of a rescan read their windows only.

The alerts' chips (:mod:`redline.run.chips`): per alert drawn, the index's record (its tile, the
chip window and centre pixel on the grid, ``first_detected``, the figure's index, the before
chip and its dates) and, in ``alerts.nc``, the figure index at its centre pixel on every look
before :func:`stock_start` (``series``, ``seen`` on (alert, pre_time)). A rescan redraws an
alert whose record still holds from these and the looks file, reading no scene; the before
chip, made of looks a new scene does not change, is kept.

The index names what produced the state: the format and its version (:data:`FORMAT`,
:data:`FORMAT_VERSION`), redline's version, :func:`config_digest` (the config that changes the
answer: windows but the monitor end, resolution, masks, detection, assessment, the zones' and
counties' files), the grid, the scene of every solar day seen with its :func:`item_fingerprint`
(``updated``, processing baseline or version, checksums, hrefs without their query), and each
tile file's sha256 and size. :func:`read_state` refuses a state — one line saying why — that is
missing, truncated, of another format version or config, or whose baseline scenes changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

import pipelines
from redline.config import ScanConfig
from redline.provenance import sha256_file
from redline.tiles import Tile

__all__ = ["FORMAT", "FORMAT_VERSION", "INDEX", "STATE_DIR", "State", "StateWriter", "StoredTile", "config_digest", "day_of", "item_fingerprint", "read_state",
           "stock_start"]

log = logging.getLogger(__name__)

#: The state's folder under a scan's output folder, and its index file.
STATE_DIR = "state"
INDEX = "state.json"
#: What the index calls itself, and the version of its layout: a state of another version is
#: refused (a full scan rewrites it), never read as if it were this one.
FORMAT = "redline-scan-state"
FORMAT_VERSION = 2  # 2: looks files per scan in spatial HDF5 chunks; the alerts' chip records and series

#: Most looks files a tile keeps: a rescan that would leave more merges them into one (its
#: write is then all the tile's looks; every rescan before it wrote only its new ones). Each
#: file costs the rescan's graph ~40 ms of xarray's open (h5py alone: ~1 ms) on the main
#: thread: 4 bounds it at ~0.2 s per tile, and the merge comes every 4th rescan.
MAX_LOOKS_FILES = 4

#: HDF5 chunk edge (px) of the looks file: a chip window (an alert with its margin, ~40-80 px)
#: reads and inflates a few chunks of every look, not the tile's whole band.
LOOKS_CHUNK = 128

#: HDF5 compression of the state's files: h5py's LZF with the byte shuffle. Measured on a demo
#: state (tile-t000, 16.5 MB model + 35.3 MB looks): zlib level 1 wrote in 0.44 + 0.41 s to
#: 10.2 + 13.6 MB, LZF in 0.19 + 0.25 s to 11.1 + 15.3 MB (~10 % more bytes for ~2x less
#: CPU on the tile loop's main thread, where the write competes with the next tile's compute).
#: LZF is built into h5py (what h5netcdf and redline read it with); netCDF-C tools (ncdump)
#: need the LZF filter plugin to read these files.
COMPRESSION = {"compression": "lzf", "shuffle": True}

#: Property keys whose value says which processing made a scene's pixels: a reprocessed baseline
#: scene (another ESA processing baseline, another Landsat collection processing) invalidates
#: the state even under the same id.
_PROCESSING_KEYS = ("updated", "s2:processing_baseline", "processing:version", "processing:software", "landsat:collection_number",
                    "landsat:collection_category", "earthsearch:boa_offset_applied")


def stock_start(cfg: ScanConfig) -> np.datetime64:
    """The first day (``datetime64[D]``) of the looks a state keeps: 1 January of the year of the
    day after the baseline ends. The monitor looks are all after it; so are the looks of every
    calendar year a monitor look falls in, whose annual growing-season NDVI a new look changes."""
    first = cfg.baseline.end + dt.timedelta(days=1)
    return np.datetime64(f"{first.year:04d}-01-01", "D")


def config_digest(cfg: ScanConfig) -> str:
    """sha256 of what in ``cfg`` changes a scan's answer for the dates it has seen: the baseline
    window, the monitor start, resolution, masks, detection and assessment settings, the STAC
    collections and profile, and the zones', counties' and assessment layers' files (by
    content). Not the monitor end (a scheduled scan moves it), the name, the STAC URL, the
    register, the cluster, the memory budget or the outputs."""
    d = cfg.model_dump(mode="json", include={"baseline", "resolution", "masks", "detection", "assess", "zones", "admin_units"})
    d["monitor_start"] = str(cfg.monitor.start)
    d["stac"] = {"collections": sorted(cfg.stac.collections), "profile": cfg.stac.profile}
    files = {"zones": cfg.zones.path, "admin_units": cfg.admin_units.path if cfg.admin_units else None,
             **{k: getattr(cfg.assess, k) for k in ("land_cover", "rivers", "county_table")}}
    d["files"] = {k: sha256_file(Path(p)) if p else None for k, p in files.items()}
    for part in ("zones", "admin_units"):
        if d.get(part):
            d[part].pop("path", None)
    for k in ("land_cover", "rivers", "county_table"):
        d["assess"].pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def item_fingerprint(item: pystac.Item) -> str:
    """A scene's identity beyond its id (sha256, 16 hex digits): the processing properties
    (:data:`_PROCESSING_KEYS`) and, per asset, its href without the query (signed URLs change
    every time) and its ``file:checksum``. The same id with another fingerprint is a reprocessed
    or replaced scene."""
    props = {k: item.properties.get(k) for k in _PROCESSING_KEYS if k in item.properties}
    assets = {k: [a.href.split("?", 1)[0], a.extra_fields.get("file:checksum")] for k, a in sorted(item.assets.items())}
    return hashlib.sha256(json.dumps([props, assets], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _days(items: list[pystac.Item]) -> dict[str, dict[str, str]]:
    """Solar day (ISO) → {item id: fingerprint} of ``items``."""
    out: dict[str, dict[str, str]] = {}
    for it in items:
        out.setdefault(day_of(it), {})[it.id] = item_fingerprint(it)
    return {d: dict(sorted(v.items())) for d, v in sorted(out.items())}


def day_of(item: pystac.Item) -> str:
    """The solar day (ISO date) a scene's look belongs to (:func:`pipelines.solar_day`)."""
    return str(pipelines.solar_day(item))[:10]


def _grid_record(grid: GeoBox) -> dict[str, Any]:
    return {"crs": str(grid.crs), "shape": list(grid.shape), "transform": list(grid.transform)[:6]}


@dataclass(frozen=True)
class State:
    """A state read back (:func:`read_state`): its folder, index and tiles."""

    root: Path
    index: dict[str, Any]

    @property
    def scan_id(self) -> str:
        return str(self.index["scan_id"])

    @property
    def days(self) -> dict[str, dict[str, str]]:
        """Solar day → {item id: fingerprint} of every scene the state has seen."""
        return self.index["days"]

    def changed_days(self, items: list[pystac.Item]) -> set[str]:
        """The solar days (ISO) after the baseline whose scenes in ``items`` are not those the
        state saw (new, gone, replaced or reprocessed): a rescan reads these days again and
        keeps the state's looks of the others. A day inside the baseline never is
        (:func:`read_state` refuses such a state)."""
        now = _days(items)
        end = self.index["baseline"][1]
        return {d for d in set(self.days) | set(now) if d > end and self.days.get(d) != now.get(d)}

    def scalings(self) -> list[pipelines.ItemScaling]:
        """How the state's scenes' DN became reflectance (for the manifest's item records)."""
        return [pipelines.ItemScaling(**r) for r in self.index.get("scalings", [])]

    def tiles(self) -> list[Tile]:
        """The tiles the state was written on (a rescan computes on the same windows)."""
        return [Tile(id=t["id"], zone_ids=tuple(t["zone_ids"]), core=tuple(t["core"]), window=tuple(t["window"]),
                     split_ids=tuple(t["split_ids"]), cell=tuple(t["cell"])) for t in self.index["tiles"]]

    def stored(self, tile_id: str, drop_days: set[str], chunk: int | None = None) -> StoredTile:
        """What one tile's rescan starts from, the looks of ``drop_days`` (solar days whose
        scenes changed: they are read again) left out. Lazy: read from the tile's files when
        computed (in the workers; nothing embedded in the graph): the baseline file one task per
        variable, the looks in blocks of all looks × ``chunk`` px (the compute chunk, default
        512, down to a multiple of :data:`LOOKS_CHUNK`: whole HDF5 chunks, one read each)."""
        edge = max(LOOKS_CHUNK, (chunk or 512) // LOOKS_CHUNK * LOOKS_CHUNK)
        rec = next(t for t in self.index["tiles"] if t["id"] == tile_id)
        base_path = self.root / rec["files"]["base"]["file"]
        base = xr.open_dataset(base_path, engine="h5netcdf", chunks={})
        model = xr.Dataset({"model": base["model"], "clear": base["base_clear"].astype(bool).rename(base_time="time")},
                           attrs=json.loads(base.attrs["model_attrs"]))
        parts, clean, clean_times = [], [], []
        files = rec["files"]["looks"]
        for f in files:
            looks = xr.open_dataset(self.root / f["file"], engine="h5netcdf", chunks={"time": -1, "y": edge, "x": edge})
            days = looks["day"].values.astype(str)
            keep = np.flatnonzero(~np.isin(days, sorted(drop_days)))
            parts.append(xr.Dataset({k[len("refl_"):]: looks[k].isel(time=keep) for k in looks.data_vars if k.startswith("refl_")}).drop_vars("day"))
            if len(keep) == len(days) and len(files) < MAX_LOOKS_FILES:  # kept as it is by the next state
                clean.append((self.root / f["file"], f))
                clean_times.append(looks["time"].values)
        kept = xr.concat(parts, dim="time").sortby("time") if len(parts) > 1 else parts[0]
        pre = xr.Dataset({k[len("pre_"):]: (base[k].rename(pre_year="year") if "pre_year" in base[k].dims else base[k])
                          for k in base.data_vars if k.startswith("pre_") and k != "pre_clear_px"})
        pre_clear = pd.Series(base["pre_clear_px"].values.astype(int), index=pd.DatetimeIndex(base["pre_time"].values))
        return StoredTile(model=model, kept=kept, pre=pre, pre_clear=pre_clear, base=(base_path, rec["files"]["base"]), looks=clean,
                          looks_times=np.concatenate(clean_times) if clean_times else np.array([], dtype="datetime64[ns]"))

    def alerts(self) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The alerts' chip records (alert id → record, :mod:`redline.run.chips`) and their
        series before :func:`stock_start` (alert id → (times datetime64[ns], float32 values))."""
        part = self.index.get("alerts") or {}
        records = {r["alert_id"]: {k: v for k, v in r.items() if k != "alert_id"} for r in part.get("records", [])}
        if not part.get("series"):
            return records, {}
        with xr.open_dataset(self.root / part["series"]["file"], engine="h5netcdf") as ds:
            ids, times = [str(a) for a in ds["alert"].values], ds["pre_time"].values
            series, seen = ds["series"].values, ds["seen"].values.astype(bool)
        return records, {a: (times[seen[k]], series[k, seen[k]]) for k, a in enumerate(ids)}


@dataclass(frozen=True)
class StoredTile:
    """One tile of a state, as a rescan uses it: the baseline ``model`` (as
    :func:`redline.detect.fit_baseline` returns it), the ``kept`` masked reflectance (time, y, x),
    the assessment inputs of the looks before :func:`stock_start` (``pre``) and their clear-pixel
    counts per look (``pre_clear``), where its baseline file is (``base``), and the looks files
    the next state keeps as they are (``looks``: path and index record; ``looks_times``, the
    times of their looks: the rescan writes the others)."""

    model: xr.Dataset
    kept: xr.Dataset
    pre: xr.Dataset
    pre_clear: pd.Series
    base: tuple[Path, dict[str, Any]]  # the baseline file and its index record (kept by the next state as it is)
    looks: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    looks_times: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[ns]"))


@dataclass
class StateWriter:
    """Writes a scan's state tile by tile, then commits it (:meth:`commit`); until then the
    previous state stays as it was. ``out``: the scan's output folder."""

    out: Path
    cfg: ScanConfig
    scan_id: str
    grid: GeoBox
    items: list[pystac.Item]
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    tiles: list[dict[str, Any]] = field(default_factory=list)
    bands: dict[str, Any] = field(default_factory=dict)  # the scenes' band plan record (a rescan with other bands is a full scan)
    scalings: list[pipelines.ItemScaling] = field(default_factory=list)
    #: alert id → its chips' record (:mod:`redline.run.chips`: tile, window, centre, first_detected, var, before chip)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: alert id → (times before :func:`stock_start`, datetime64[ns]; the figure index at its centre on them)
    alert_series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.out / STATE_DIR

    @property
    def folder(self) -> Path:
        return self.root / self.token

    def _day_of(self, times: np.ndarray) -> list[str]:
        """The solar day (ISO) of each time step of a tile's series: that of the scene taken at
        that time (a step keeps the time of its first scene), else the UTC date."""
        if not hasattr(self, "_days_by_time"):
            self._days_by_time = {np.datetime64(pd.Timestamp(it.datetime).tz_localize(None) if pd.Timestamp(it.datetime).tzinfo is None
                                                else pd.Timestamp(it.datetime).tz_convert(None), "ns"): str(pipelines.solar_day(it))[:10]
                                  for it in self.items if it.datetime is not None}
        return [self._days_by_time.get(np.datetime64(t, "ns"), str(t)[:10]) for t in times]

    def looks_files(self, tile_id: str) -> tuple[list[Path], tuple[int, int, int, int]]:
        """The looks files of this writer's state for tile ``tile_id`` (before :meth:`commit`
        too), together every look from :func:`stock_start` on once, and the tile's window (r0,
        r1, c0, c1, px of the grid)."""
        rec = next(t for t in self.tiles if t["id"] == tile_id)
        return [self.root / f["file"] for f in rec["files"]["looks"]], tuple(rec["window"])

    def _write(self, name: str, ds: xr.Dataset, chunk: int | None = None) -> dict[str, Any]:
        """Write ``ds`` as ``name`` in this state's folder (temporary name, renamed); its record.
        ``chunk``: HDF5 chunks of that edge on the last two dimensions (else one per variable)."""
        def chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
            return shape if chunk is None or len(shape) < 2 else (*shape[:-2], *(min(chunk, n) for n in shape[-2:]))

        enc = {v: {**COMPRESSION, "chunksizes": chunks(ds[v].shape)} for v in ds.data_vars if ds[v].size}
        tmp = self.folder / f".{name}.partial"
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=enc)
        os.replace(tmp, self.folder / name)
        path = self.folder / name
        return {"file": f"{self.token}/{name}", "sha256": sha256_file(path), "size": path.stat().st_size}

    def _keep(self, name: str, src: Path, record: dict[str, Any]) -> dict[str, Any]:
        """The previous state's file ``src`` (record ``record``) as ``name`` of this one: a hard
        link (a copy where the file system has none); its content is checked by :func:`read_state`."""
        dst = self.folder / name
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return {**record, "file": f"{self.token}/{name}"}

    def put(self, tile: Tile, *, model: xr.Dataset | None, stock: xr.Dataset, pre: xr.Dataset | None = None,
            pre_clear: pd.Series | None = None, base: tuple[Path, dict[str, Any]] | None = None,
            kept_looks: list[tuple[Path, dict[str, Any]]] = ()) -> None:
        """Write one tile's two files. The baseline file (``tile-<id>-base.nc``): ``model``
        (:func:`redline.detect.fit_baseline`'s result, computed), ``pre`` (the assessment
        inputs of the looks before :func:`stock_start`: ``<name>_baseline`` and ``last_clear``
        on (y, x), ``ndvi_annual`` on (year, y, x)) and ``pre_clear`` (clear pixels of the tile
        per look before it, indexed by time) — or, for a rescan, ``base``: the previous state's
        baseline file and its record, kept as it is (nothing in it changes until the baseline
        does). The looks: the previous state's files ``kept_looks`` (path and record, kept as they
        are) and a new file (``tile-<id>-looks-<token>.nc``) of ``stock``, the masked
        reflectance of the other looks from :func:`stock_start` on (computed), with each look's
        solar day; none when ``stock`` has no look. Each written to a temporary name and renamed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if base is not None:
            base_rec = self._keep(f"tile-{tile.id}-base.nc", *base)
        else:
            if model is None or pre is None or pre_clear is None:
                raise ValueError("a tile's first state needs its model, pre and pre_clear")
            ds = xr.Dataset(
                {"model": model["model"].astype("float64"),
                 "base_clear": model["clear"].rename(time="base_time").astype("uint8"),
                 **{f"pre_{k}": (v.rename(year="pre_year") if "year" in v.dims else v) for k, v in pre.data_vars.items()},
                 "pre_clear_px": xr.DataArray(pre_clear.to_numpy(dtype="int64"), dims="pre_time", coords={"pre_time": pre_clear.index.values})},
                attrs={"format": FORMAT, "format_version": FORMAT_VERSION, "tile": tile.id, "model_attrs": json.dumps(model.attrs, default=str),
                       "stock_start": str(stock_start(self.cfg))},
            )
            ds = ds.drop_vars([c for c in ds.coords if c not in ("y", "x", "base_time", "pre_year", "pre_time", "channel")])
            base_rec = self._write(f"tile-{tile.id}-base.nc", ds)
        looks = xr.Dataset({f"refl_{b}": stock[b].astype("float32") for b in stock.data_vars},
                           attrs={"format": FORMAT, "format_version": FORMAT_VERSION, "tile": tile.id, "stock_start": str(stock_start(self.cfg))})
        looks = looks.drop_vars([c for c in looks.coords if c not in ("y", "x", "time")])
        days = self._day_of(looks["time"].values)
        looks = looks.assign_coords(day=("time", days))
        looks_recs = [self._keep(Path(rec["file"]).name, src, rec) for src, rec in kept_looks]
        if len(days) or not looks_recs:
            looks_recs.append({**self._write(f"tile-{tile.id}-looks-{self.token}.nc", looks, chunk=LOOKS_CHUNK), "days": sorted(set(days))})
        self.tiles.append({"id": tile.id, "files": {"base": base_rec, "looks": looks_recs},
                           "zone_ids": list(tile.zone_ids), "core": list(tile.core), "window": list(tile.window),
                           "split_ids": list(tile.split_ids), "cell": list(tile.cell)})

    def commit(self) -> dict[str, Any]:
        """Write the index (atomically: a temporary file renamed over the old one) and remove the
        previous state's files. Returns the manifest's ``state`` record."""
        from importlib import metadata

        index = {"format": FORMAT, "format_version": FORMAT_VERSION, "redline_version": metadata.version("redline"), "scan_id": self.scan_id,
                 "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config_digest": config_digest(self.cfg),
                 "baseline": [str(self.cfg.baseline.start), str(self.cfg.baseline.end)], "stock_start": str(stock_start(self.cfg)),
                 "grid": _grid_record(self.grid), "bands": self.bands, "days": _days(self.items),
                 "scalings": [asdict(sc) for sc in sorted(self.scalings, key=lambda sc: (sc.item_id, sc.band))],
                 "tiles": sorted(self.tiles, key=lambda t: t["id"]), "alerts": self._alerts_record()}
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{INDEX}.partial"
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / INDEX)
        for old in self.root.iterdir():  # the previous state's tile folders, and partial ones of killed scans
            if old.is_dir() and old.name != self.token:
                shutil.rmtree(old, ignore_errors=True)
        return {"path": f"{STATE_DIR}/{INDEX}", "sha256": sha256_file(self.root / INDEX), "format_version": FORMAT_VERSION,
                "tiles": len(self.tiles), "bytes": sum(r["size"] for t in self.tiles for r in [t["files"]["base"], *t["files"]["looks"]]),
                "baseline_bytes": sum(t["files"]["base"]["size"] for t in self.tiles), "days": len(index["days"])}

    def _alerts_record(self) -> dict[str, Any]:
        """Write ``alerts.nc`` (the figure index at each alert's centre before :func:`stock_start`:
        ``series`` float32 and ``seen`` uint8 on (alert, pre_time), NaN/0 where the alert's chip
        window had no scene); the index's ``alerts``: the records and that file's record."""
        ids = sorted(a for a in self.alerts if a in self.alert_series)
        if not ids:
            return {"records": [], "series": None}
        times = np.unique(np.concatenate([self.alert_series[a][0].astype("datetime64[ns]") for a in ids] + [np.array([], "datetime64[ns]")]))
        series = np.full((len(ids), len(times)), np.nan, dtype="float32")
        seen = np.zeros((len(ids), len(times)), dtype="uint8")
        for k, a in enumerate(ids):
            t, v = self.alert_series[a]
            at = np.searchsorted(times, t.astype("datetime64[ns]"))
            series[k, at], seen[k, at] = v, 1
        ds = xr.Dataset({"series": (("alert", "pre_time"), series), "seen": (("alert", "pre_time"), seen)},
                        coords={"alert": np.array(ids, dtype=object), "pre_time": times},
                        attrs={"format": FORMAT, "format_version": FORMAT_VERSION, "stock_start": str(stock_start(self.cfg))})
        self.folder.mkdir(parents=True, exist_ok=True)
        return {"records": [{"alert_id": a, **self.alerts[a]} for a in ids], "series": self._write("alerts.nc", ds)}

    def abandon(self) -> None:
        """Remove what this writer wrote (the scan, or this attempt at its tile loop, failed
        before :meth:`commit`); the writer can start again."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.tiles.clear()


def read_state(out: Path, cfg: ScanConfig, items: list[pystac.Item], grid: GeoBox) -> tuple[State | None, str]:
    """The state in ``out`` if a rescan of ``cfg`` over ``items`` on ``grid`` may start from it,
    else ``None``; and one line saying which, and why not (no state; unreadable or truncated
    index or tile file; another format version; another config; another grid; a baseline scene
    missing, new or reprocessed)."""
    root = Path(out) / STATE_DIR
    path = root / INDEX
    if not path.is_file():
        return None, f"no state in {root}"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            return None, f"{path} is not a redline scan state"
        if index.get("format_version") != FORMAT_VERSION:
            return None, (f"{path} is of state format {index.get('format_version')} (redline {index.get('redline_version')}), "
                          f"this redline reads format {FORMAT_VERSION}")
        if index["config_digest"] != config_digest(cfg):
            return None, f"the config changed since the state of scan {index['scan_id']} (detection, windows, zones, masks or assessment)"
        if index["grid"] != _grid_record(grid):
            return None, f"the analysis grid changed since the state of scan {index['scan_id']}"
        seen = index["days"]
        now = _days(items)
        end = str(cfg.baseline.end)
        for day in sorted(set(seen) | set(now)):
            if day <= end and seen.get(day) != now.get(day):
                was, has = seen.get(day, {}), now.get(day, {})
                what = ("new" if not was else "gone" if not has else
                        "reprocessed" if set(was) == set(has) else "changed")
                ids = sorted(set(was) ^ set(has)) or sorted(k for k in has if has[k] != was.get(k))
                return None, f"baseline scene(s) of {day} {what} since the state of scan {index['scan_id']} ({', '.join(ids[:3])})"
        series = (index.get("alerts") or {}).get("series")
        for rec in [r for t in index["tiles"] for r in [t["files"]["base"], *t["files"]["looks"]]] + ([series] if series else []):
            f = root / rec["file"]
            if not f.is_file() or f.stat().st_size != rec["size"] or sha256_file(f) != rec["sha256"]:
                return None, f"state file {f} is missing, truncated or altered (sha256 differs from {path})"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{path} cannot be read ({type(exc).__name__}: {exc})"
    return State(root=root, index=index), f"state of scan {index['scan_id']} ({len(index['days'])} solar days, {len(index['tiles'])} tile(s))"
