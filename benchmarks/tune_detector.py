"""Tune the detector's confirmation rule on landscapes kept for tuning, never on scoring ones.

The scoring landscapes of :mod:`benchmarks.accuracy` (``demo`` 20230101/7/11, ``hard`` 7/11/13)
are never loaded here. This loads the ``hard`` preset with the tuning seeds (:data:`TUNE_SEEDS`),
computes each landscape's index stack once (cached as .npy in the work folder), then runs only
the detector and the patch step for every setting of a small grid and scores each against the
landscape's truth, so a setting costs seconds, not a scan.

    python benchmarks/tune_detector.py [--work DIR] [--preset hard|demo] [--seed N …]

Other seeds (``hard`` 108–116, ``demo`` 101–108 for the mining rule of redline.alerts) are
tuning landscapes too; a (preset, seed) of accuracy.RUNS is refused. Each run prints the
per-type accuracy (``types: …``) under its row.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import xarray as xr

import aoi
import pipelines
from pipelines import serve_stac
from redline.alerts import alerts_from_fields
from redline.config import load_config
from redline.demo import generate_demo
from redline.detect import FIELDS, detect
from redline.evaluate import per_type_line, score_alerts
from redline.run import analysis_grid, tile_graph

from accuracy import RUNS  # benchmarks/ is the script's folder

#: Seeds of the ``hard`` preset used for tuning (disjoint from accuracy.RUNS).
TUNE_SEEDS = (101, 102, 103, 104, 105, 106, 107)
#: The grid: start threshold z × consecutive looks (the config's values first).
GRID = {"z_threshold": (4.0,), "consecutive": (2,)}


def _cube(preset: str, seed: int, work: Path):
    build = generate_demo(work / f"{preset}-{seed}", preset=preset, seed=seed)
    with serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}})
        zones = aoi.read_zones(cfg.zones.path, id_field=cfg.zones.id_field, name_field=cfg.zones.name_field,
                               category_field=cfg.zones.category_field, admin_field=cfg.zones.admin_field)
        utm = aoi.utm_crs_for(zones)
        zones_utm = zones.to_crs(utm)
        geobox = analysis_grid(zones_utm, cfg.resolution)
        cache = work / f"{preset}-{seed}-stack.npy"
        search = pipelines.search_items(url, collections=cfg.stac.collections, bbox=aoi.zones_bbox_4326(zones),
                                        datetime=f"{cfg.baseline.start}/{cfg.monitor.end}", max_cloud_cover=cfg.stac.max_cloud_cover)
        stack = tile_graph(cfg, search.items, geobox).stack
        if cache.exists():
            values = np.load(cache)
        else:
            with dask.config.set(scheduler="threads", num_workers=2):
                values = stack.values
            np.save(cache, values)
    stack = xr.DataArray(values, coords=stack.coords, dims=stack.dims)
    truth = gpd.read_file(build.truth, layer="events")
    return cfg, stack, geobox, utm, zones_utm, truth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "redline-tune")
    p.add_argument("--seed", type=int, action="append")
    p.add_argument("--preset", default="hard", help="preset of the tuning landscapes (hard; demo with seeds outside accuracy.RUNS)")
    args = p.parse_args(argv)
    scoring = {(pr, s) for pr, s in RUNS}
    if any((args.preset, s) in scoring for s in args.seed or TUNE_SEEDS):
        p.error(f"a scoring landscape of benchmarks/accuracy.py RUNS was asked for: {sorted(scoring)}")
    args.work.mkdir(parents=True, exist_ok=True)
    cubes = {s: _cube(args.preset, s, args.work) for s in (args.seed or TUNE_SEEDS)}
    print("seed  z          k  recall  precision  false  date_err_d  date_err_rev  iou  type")
    for zt, k in itertools.product(GRID["z_threshold"], GRID["consecutive"]):
        for seed, (cfg, stack, geobox, utm, zones_utm, truth) in cubes.items():
            d = cfg.detection
            det = detect(stack.chunk({"y": 160, "x": 160}), baseline=(cfg.baseline.start, cfg.baseline.end),
                         monitor=(cfg.monitor.start, cfg.monitor.end), indices=tuple(d.indices), z_threshold=zt,
                         consecutive=k, harmonics=d.harmonics, trend=d.trend, min_baseline_obs=d.min_baseline_obs)
            with dask.config.set(scheduler="threads", num_workers=2):
                det = det.compute()
            fields = {f: det[f].values for f in FIELDS}
            alerts = alerts_from_fields(fields, geobox.transform, utm, zones_utm, min_area_m2=d.min_area_m2,
                                        consecutive=k, z_threshold=zt, scan_id="tune")
            s = score_alerts(alerts, truth, metric_crs="EPSG:32648").as_dict()
            print(f"{seed:4d}  {zt:<9}  {k}  {s['recall']:.2f}    {s['precision']:.2f}       {s['false_alerts']:3d}   "
                  f"{s['date_error_days_median']:6.1f}      {s['date_error_revisits_median']:5.2f}         {s['iou_median']:.2f}  {s['type_accuracy']:.2f}"
                  f"  missed {','.join(s['missed_events']) or '-'}", flush=True)
            print(f"      {per_type_line(s['type_accuracy_per_type'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
