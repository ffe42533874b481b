"""Runtime the assessment adds to a scan (issue #7), measured in one run on one LocalCluster.

For a generated scene set (``--preset small|demo``), times in the same process:

1. the scan's eager step without the assessment inputs: ``dask.compute(det, composite)``;
2. the same step with them: ``dask.compute(det, composite, assess.lazy_inputs(...))``;
3. the assessment writer (RSEI PCA, COGs, exactextract statistics, GeoPackage, figures).

and prints the ratio (2 + 3) / 1. Usage::

    python benchmarks/assess_runtime.py --preset demo [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    import dask
    import pystac

    import aoi
    import pipelines
    from pipelines import serve_stac
    from redline import assess
    from redline.config import load_config
    from redline.demo import generate_demo
    from redline.run import analysis_grid, tile_graph

    root = Path(tempfile.gettempdir()) / "redline-bench-scenes" / args.preset
    scenes = generate_demo(root, preset=args.preset)
    with serve_stac(scenes.root) as url:
        cfg = load_config(scenes.config, overrides={"stac": {"url": url}})
        items = [pystac.Item.from_dict(f) for f in json.loads(scenes.items.read_text())["features"]]
        zones = aoi.read_zones(cfg.zones.path, id_field=cfg.zones.id_field, layer=cfg.zones.layer, name_field=cfg.zones.name_field,
                               category_field=cfg.zones.category_field, admin_field=cfg.zones.admin_field)
        admin = aoi.read_admin_units(cfg.admin_units.path, id_field=cfg.admin_units.id_field, layer=cfg.admin_units.layer, name_field=cfg.admin_units.name_field)
        utm = aoi.utm_crs_for(zones)
        geobox = analysis_grid(zones.to_crs(utm), cfg.resolution)
        with pipelines.dask_client(None, workers=cfg.dask.workers, threads_per_worker=cfg.dask.threads_per_worker, processes=cfg.dask.processes):
            rows = []
            for _ in range(args.repeat):
                g = tile_graph(cfg, items, geobox)
                det, composite, refl = g.detection, g.composite, g.reflectance
                t0 = time.perf_counter()
                dask.compute(det, composite)
                base = time.perf_counter() - t0
                g = tile_graph(cfg, items, geobox)
                det, composite, refl = g.detection, g.composite, g.reflectance
                t0 = time.perf_counter()
                _, _, extra = dask.compute(det, composite, assess.lazy_inputs(cfg, refl))
                both = time.perf_counter() - t0
                import geopandas as gpd

                from redline.tiles import Mosaic, Tile

                alerts = gpd.GeoDataFrame({"zone_id": [], "area_m2": [], "disturbance_type": [], "status": []}, geometry=[], crs=4326)
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    h, w = geobox.shape
                    inputs = Mosaic(Path(tmp) / ".tiles", geobox, zones.to_crs(utm))  # the whole grid as one tile
                    years = assess.write_inputs(inputs, Tile("t000", tuple(zones["zone_id"]), (0, h, 0, w), (0, h, 0, w)), extra)
                    zs, _ = assess.write_assessment(Path(tmp), cfg=cfg, zones=zones, admin=admin, utm=utm, geobox=geobox, inputs=inputs,
                                                    years=years, alerts=alerts, attrs=dict(extra.attrs))
                    writer = time.perf_counter() - t0
                rows.append((base, both, writer))
    print(f"preset {args.preset}: {len(items)} scenes, grid {geobox.shape[0]}×{geobox.shape[1]} px, {len(zones)} zones")
    for base, both, writer in rows:
        print(f"  eager step without assessment {base:6.1f} s | with its inputs {both:6.1f} s | assessment writer {writer:5.1f} s"
              f" | ratio (with + writer) / without = {(both + writer) / base:.2f}")


if __name__ == "__main__":
    main()
