"""redline's detector side by side with JRC ``nrt`` (EWMA and CCDC monitors) on one generated cube.

Run with ``make bench-nrt`` (or ``python benchmarks/detector_vs_nrt.py [--preset hard] [--seed N]``).

The cube is a demo build (default: preset ``hard``, seed 7, never used for tuning) loaded
through redline's own path (odc-stac → SCL mask → indices) once and held in memory, so that both
detectors see exactly the same clear observations. Then, single-threaded for both:

* **redline**: :func:`redline.detect.detect` on the (var, time, y, x) stack (NDVI, MNDWI, NBR;
  harmonic baseline, z = 4, k = 2), run with Dask's synchronous scheduler;
* **nrt EWMA** (Brooks et al. 2014) and **nrt CCDC** (Zhu & Woodcock 2014, nrt's "CCDC-like"
  monitor), both on NDVI with ``harmonic_order=2`` and nrt's default sensitivities, fitted on
  the baseline window (``fit``; CCDC with its trend term, which its stable fit requires), then
  ``monitor`` called for each monitor date in turn.

Scored on the same terms for all three, at the pixel level and after the same patch step as the
scan (8-connected flagged pixels inside the zones, ≥ the 5 000 m² unit):

* pixel recall and precision inside the zones against the rasterised ground-truth events;
* events found (an in-zone event ≥ the unit with a patch on it) and false patches (patches
  touching no event, including excluded events below the unit or outside zones);
* median date error in days (first detection in the event's pixels − event start);
* pixel-observations per second: pixels × dates of the cube over the wall time of fit + monitor.

Each detector first runs once on a 130 × 130 px corner of the cube, untimed (its ``warm_up_s``
is printed): redline's kernel and nrt's monitors are both numba-compiled, and the first call in a
process pays numba's one-off start (its numpy registries, loading or compiling the cached machine
code, ≈ 0.3 s) — whichever detector ran first would otherwise carry it for all. The corner spans
two of redline's 128 px chunks so that its blocks have the memory layout of the timed run's
(numba keeps one machine-code version per layout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import warnings
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pystac
import rasterio.features
import xarray as xr
from scipy import ndimage

from redline.config import load_config
from redline.demo import generate_demo
from redline.detect import detect
from redline.run import analysis_grid, tile_graph

import aoi

EPOCH = np.datetime64("1970-01-01", "D")


def load_cube(preset: str, seed: int, cache: Path):
    build = generate_demo(cache / f"{preset}-{seed}", preset=preset, seed=seed)
    cfg = load_config(build.config, overrides={"stac": {"url": "http://unused.invalid"}})
    items = list(pystac.ItemCollection.from_file(str(build.items)))
    zones = aoi.read_zones(cfg.zones.path, id_field=cfg.zones.id_field, layer=cfg.zones.layer)
    zones_utm = zones.to_crs(aoi.utm_crs_for(zones))
    geobox = analysis_grid(zones_utm, cfg.resolution)
    g = tile_graph(cfg, items, geobox)
    refl, stack = g.reflectance, g.stack
    t0 = time.monotonic()
    with dask.config.set(scheduler="threads", num_workers=2):
        stack_np, green, swir = dask.compute(stack, refl["green"], refl["swir16"])
    print(f"cube: {stack_np.sizes['time']} dates × {stack_np.sizes['y']}×{stack_np.sizes['x']} px, loaded in {time.monotonic() - t0:.1f} s")
    return build, cfg, zones_utm, geobox, stack_np, green, swir


def truth_rasters(build, zones_utm, geobox):
    truth = gpd.read_file(build.truth, layer="events").to_crs(zones_utm.crs)
    shape, tr = geobox.shape, geobox.transform
    zone_px = rasterio.features.rasterize(((g, 1) for g in zones_utm.geometry), out_shape=shape, transform=tr).astype(bool)
    event_id = rasterio.features.rasterize(((g, i + 1) for i, g in enumerate(truth.geometry)), out_shape=shape, transform=tr, dtype="int32")
    return truth, zone_px, event_id


def score(flag: np.ndarray, date: np.ndarray, truth, zone_px, event_id, mmu_px: int) -> dict:
    expected = truth["in_zone"].astype(bool) & truth["above_mmu"].astype(bool)
    inside = flag & zone_px
    ev_px = (event_id > 0) & zone_px
    tp = int((inside & ev_px).sum())
    recall_px = tp / max(int(ev_px.sum()), 1)
    precision_px = tp / max(int(inside.sum()), 1)
    labels, n = ndimage.label(inside, structure=np.ones((3, 3)))
    sizes = ndimage.sum(inside, labels, index=np.arange(1, n + 1))
    found, false_patches, errors = set(), 0, []
    for lab in np.flatnonzero(sizes >= mmu_px) + 1:
        hit = np.unique(event_id[labels == lab])
        hit = hit[hit > 0]
        if hit.size == 0:
            false_patches += 1
            continue
        for h in hit:
            if expected.iloc[h - 1]:
                found.add(int(h))
            else:
                false_patches += 1
    for h in found:
        start = np.datetime64(str(truth.iloc[h - 1]["start_date"])[:10], "D")
        d = date[(event_id == h) & inside]
        d = d[np.isfinite(d)]
        if d.size:
            errors.append(float(np.median(d) - (start - EPOCH).astype("float64")))
    return {
        "pixel_recall": round(recall_px, 3), "pixel_precision": round(precision_px, 3),
        "events_found": f"{len(found)}/{int(expected.sum())}", "false_patches": false_patches,
        "date_error_days_median": round(float(np.median(errors)), 1) if errors else None,
    }


def run_redline(stack_np: xr.DataArray, cfg) -> tuple[np.ndarray, np.ndarray, float]:
    lazy = detect(
        stack_np.chunk({"y": 128, "x": 128}), baseline=(cfg.baseline.start, cfg.baseline.end), monitor=(cfg.monitor.start, cfg.monitor.end),
        indices=tuple(cfg.detection.indices), z_threshold=cfg.detection.z_threshold, consecutive=cfg.detection.consecutive,
        harmonics=cfg.detection.harmonics, trend=cfg.detection.trend, min_baseline_obs=cfg.detection.min_baseline_obs,
    )
    t0 = time.monotonic()
    with dask.config.set(scheduler="synchronous"):
        res = lazy.compute()
    seconds = time.monotonic() - t0
    flag = (res["disturbed"].values > 0) & np.isfinite(res["first_date"].values)
    return flag, res["first_date"].values, seconds


def run_nrt(kind: str, stack_np: xr.DataArray, green, swir, cfg) -> tuple[np.ndarray, np.ndarray, float]:
    from nrt.monitor.ccdc import CCDC
    from nrt.monitor.ewma import EWMA

    ndvi = stack_np.sel(var="NDVI").drop_vars("var")
    hist = ndvi.sel(time=slice(str(cfg.baseline.start), str(cfg.baseline.end)))
    mon = ndvi.sel(time=slice(str(cfg.monitor.start), str(cfg.monitor.end)))
    mask = (np.isfinite(hist.values).sum(0) >= cfg.detection.min_baseline_obs).astype("uint8")
    t0 = time.monotonic()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if kind == "EWMA":
            m = EWMA(trend=False, harmonic_order=2, mask=mask)
            m.fit(hist)
        else:
            m = CCDC(trend=True, harmonic_order=2, mask=mask)  # "CCDC-stable" needs the trend term
            hsel = dict(time=slice(str(cfg.baseline.start), str(cfg.baseline.end)))
            m.fit(hist, green=green.sel(**hsel), swir=swir.sel(**hsel))
        for t in mon["time"].values:
            m.monitor(mon.sel(time=t).values, dt.datetime.fromisoformat(str(t)[:19]))
    seconds = time.monotonic() - t0
    flag = m.mask == 3
    date = np.where(flag, m.detection_date.astype("float64"), np.nan)
    return flag, date, seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="hard")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cache", type=Path, default=Path(".cache/bench"))
    args = p.parse_args(argv)
    build, cfg, zones_utm, geobox, stack_np, green, swir = load_cube(args.preset, args.seed, args.cache)
    truth, zone_px, event_id = truth_rasters(build, zones_utm, geobox)
    mmu_px = int(np.ceil(cfg.detection.min_area_m2 / cfg.resolution**2))
    n_obs = stack_np.sizes["time"] * stack_np.sizes["y"] * stack_np.sizes["x"]
    rows = {}
    corner = dict(y=slice(0, 130), x=slice(0, 130))  # the untimed warm-up's crop
    for name, fn in (("redline", lambda s, g, w: run_redline(s, cfg)),
                     ("nrt EWMA", lambda s, g, w: run_nrt("EWMA", s, g, w, cfg)),
                     ("nrt CCDC", lambda s, g, w: run_nrt("CCDC", s, g, w, cfg))):
        *_, warm = fn(stack_np.isel(**corner), green.isel(**corner), swir.isel(**corner))
        flag, date, seconds = fn(stack_np, green, swir)
        rows[name] = {**score(flag, date, truth, zone_px, event_id, mmu_px), "seconds": round(seconds, 2),
                      "pixel_obs_per_s": round(n_obs / seconds), "warm_up_s": round(warm, 2)}
    base = rows["nrt EWMA"]["pixel_obs_per_s"]
    print(f"preset {args.preset} seed {args.seed}: {n_obs:,} pixel-observations; one thread each")
    for name, r in rows.items():
        print(f"  {name:9s} {json.dumps(r, ensure_ascii=False)}  speed vs nrt EWMA ×{r['pixel_obs_per_s'] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
