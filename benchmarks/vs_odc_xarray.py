"""redline's scan against the pipeline a user would write with odc-stac + xarray, same build.

Run with ``make bench`` (or ``python benchmarks/vs_odc_xarray.py [--preset small] [--size PX]``).

The obvious pipeline (written the way the odc-stac and xarray documentation suggest, on a
LocalCluster of as many workers and threads as the scan's, as worker *processes* — what
``distributed.Client()`` starts by default, and the faster layout for its per-pixel Python fits,
which hold the GIL: 53.8 s against 98.2 s on threads at the ×16 area, 2026-11-27):

1. ``odc.stac.load`` of the six reflectance bands and the SCL onto the scan's analysis grid
   (``groupby="solar_day"``, 256 px chunks, bilinear for the reflectance, nearest for the SCL);
2. ``.where`` the SCL is not one of the scan's masked classes and DN ≠ 0 (nodata), DN × 0.0001
   − 0.1 to reflectance (the build's ``raster:bands`` scale and offset);
3. NDVI, MNDWI and NBR with xarray arithmetic (the detection indices of the scan's config);
4. per pixel and index, the harmonic baseline of the scan's config (mean + ``harmonics`` annual
   sine/cosine pairs) fitted by ``numpy.linalg.lstsq`` on the baseline window's clear
   observations, through ``xr.apply_ufunc(..., vectorize=True, dask="parallelized")`` on the
   series rechunked to one chunk in time; monitor-window z-scores against the residual standard
   deviation; first date of ``consecutive`` clear observations below −``z_threshold``;
5. ``.compute()``.

Step 4 is the textbook per-pixel fit (as in xarray's ``polyfit`` with ``skipna=True``, which
loops over pixels with NaN in the same way); it yields the first date and the z-score, not
redline's typing, recovery and seasonal-support fields. redline is timed twice in the same run:
its whole :func:`redline.scan.run_scan` (everything, outputs and map included), and the eager
step of its graph alone (``dask.compute`` of the detection fields and the composite, the part
that does what the obvious pipeline does). Prints both speed ratios (obvious / redline).
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import dask
import numpy as np
import odc.stac
import xarray as xr

import _bench
import pipelines
from redline.config import load_config
from redline.run import tile_graph
from redline.scan import run_scan

BANDS = list(pipelines.REFLECTANCE_BANDS)


def _fit_detect(y: np.ndarray, t_years: np.ndarray, base: np.ndarray, harmonics: int, z_thr: float, k: int, min_obs: int) -> tuple[float, float]:
    """One pixel's series: harmonic least squares on the baseline, first confirmed monitor date."""
    cols = [np.ones_like(t_years)]
    for h in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * h * t_years), np.sin(2 * np.pi * h * t_years)]
    X = np.stack(cols, axis=1)
    ok = base & np.isfinite(y)
    if ok.sum() < max(min_obs, X.shape[1] + 1):
        return np.nan, np.nan
    beta, *_ = np.linalg.lstsq(X[ok], y[ok], rcond=None)
    sd = np.std(y[ok] - X[ok] @ beta, ddof=X.shape[1])
    mon = ~base & np.isfinite(y)
    z = (y[mon] - X[mon] @ beta) / sd
    below = z < -z_thr
    run = np.convolve(below.astype(int), np.ones(k, int), mode="valid") == k
    if not run.any():
        return np.nan, np.nan
    i = int(np.argmax(run))
    return float(t_years[mon][i]), float(z[i])


def obvious_pipeline(items, geobox, cfg):
    """The lazy graph of the obvious odc-stac + xarray pipeline (first date, z) per index."""
    ds = odc.stac.load(items, bands=[*BANDS, "scl"], geobox=geobox, chunks={"x": 256, "y": 256}, groupby="solar_day",
                       resampling={"scl": "nearest", "*": "bilinear"}, patch_url=pipelines.local_href_patch)
    clear = ~ds["scl"].isin(list(cfg.detection.scl_mask_classes))
    refl = {b: (ds[b].where(clear & (ds[b] != 0)) * 0.0001 - 0.1) for b in BANDS}
    idx = {
        "NDVI": (refl["nir"] - refl["red"]) / (refl["nir"] + refl["red"]),
        "MNDWI": (refl["green"] - refl["swir16"]) / (refl["green"] + refl["swir16"]),
        "NBR": (refl["nir"] - refl["swir22"]) / (refl["nir"] + refl["swir22"]),
    }
    stack = xr.concat([idx[n] for n in cfg.detection.indices], dim="index").assign_coords(index=list(cfg.detection.indices))
    stack = stack.chunk({"time": -1})
    t = ds["time"].values
    t_years = ((t - np.datetime64("1970-01-01")) / np.timedelta64(1, "D") / 365.25).astype("float64")
    base = (t >= np.datetime64(str(cfg.baseline.start))) & (t <= np.datetime64(f"{cfg.baseline.end}T23:59:59"))
    d = cfg.detection
    first, z = xr.apply_ufunc(
        _fit_detect, stack, input_core_dims=[["time"]], output_core_dims=[[], []], vectorize=True, dask="parallelized",
        output_dtypes=[np.float64, np.float64],
        kwargs={"t_years": t_years, "base": base, "harmonics": d.harmonics, "z_thr": d.z_threshold, "k": d.consecutive, "min_obs": d.min_baseline_obs},
    )
    return xr.Dataset({"first": first, "z": z})


def main(argv: list[str] | None = None) -> int:
    args, build, items, cfg, zones, geobox = _bench.setup(argv, __doc__.splitlines()[0])
    print(_bench.machine())
    print(f"build {args.preset} seed {args.seed}: {len(items)} scenes, grid {geobox.shape[1]}×{geobox.shape[0]} px; "
          f"LocalCluster {cfg.dask.workers} × {cfg.dask.threads_per_worker} thread (obvious: worker processes; redline: "
          f"{'processes' if cfg.dask.processes else 'threads'})")

    with pipelines.dask_client(None, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=True):
        t0 = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            got = obvious_pipeline(items, geobox, cfg).compute()
        obvious_s = time.perf_counter() - t0
    with pipelines.dask_client(None, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=cfg.dask.processes):
        g = tile_graph(cfg, items, geobox)
        det, composite = g.detection, g.composite
        t0 = time.perf_counter()
        dask.compute(det, composite)
        eager_s = time.perf_counter() - t0
    n_flag = int(np.isfinite(got["first"]).any("index").sum())
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp, pipelines.serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}})
        t0 = time.perf_counter()
        result = run_scan(cfg, Path(tmp) / "out")
        scan_s = time.perf_counter() - t0
    print(f"obvious odc-stac + xarray pipeline: {obvious_s:.1f} s ({n_flag} pixels flagged)")
    print(f"redline eager step (detection fields + composite): {eager_s:.1f} s")
    print(f"redline full scan (all outputs): {scan_s:.1f} s ({len(result.alerts)} alerts)")
    print(f"RATIO obvious / redline eager step = {obvious_s / eager_s:.2f}")
    print(f"RATIO obvious / redline full scan = {obvious_s / scan_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
