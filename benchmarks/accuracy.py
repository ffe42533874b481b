"""Accuracy harness: scan generated landscapes and score the alerts against their ground truth.

Run with ``make accuracy`` (or ``python benchmarks/accuracy.py [--preset demo] [--seed N …]``).
The detector's tuned numbers (NBR's NDVI support, the recovery rule, the type-rule ALB
thresholds) were set during development on an earlier, separate landscape generator (a
different layout, spectra and cloud model; seed 20230101). The landscapes scored here come from
``redline.demo``, whose code the detector was never tuned on; seed 20230101 is its default and
is labelled ``default``, the others ``score``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd

from pipelines import serve_stac
from redline.config import load_config
from redline.demo import generate_demo
from redline.evaluate import score_alerts
from redline.scan import run_scan

TUNE_SEEDS = (20230101,)
SCORE_SEEDS = (7, 11)


def run_one(preset: str, seed: int, work: Path) -> dict:
    build = generate_demo(work / f"{preset}-{seed}", preset=preset, seed=seed)
    out = work / f"out-{preset}-{seed}"
    t0 = time.monotonic()
    with serve_stac(build.root) as url:
        cfg = load_config(build.config, overrides={"stac": {"url": url}})
        result = run_scan(cfg, out)
    truth = gpd.read_file(build.truth, layer="events")
    score = score_alerts(result.alerts, truth, metric_crs="EPSG:32648")
    return {"preset": preset, "seed": seed, "seconds": round(time.monotonic() - t0, 1), **score.as_dict()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="demo")
    p.add_argument("--seed", type=int, action="append", help="seeds to run (default: tune + score sets)")
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args(argv)
    seeds = args.seed or [*TUNE_SEEDS, *SCORE_SEEDS]
    work = args.work or Path(tempfile.mkdtemp(prefix="redline-accuracy-"))
    rows = [run_one(args.preset, s, work) for s in seeds]
    for r in rows:
        role = "default" if r["seed"] in TUNE_SEEDS else "score"
        print(
            f"{role:7s} {r['preset']} seed {r['seed']}: recall {r['recall']:.2f} ({r['found_events']}/{r['expected_events']}), "
            f"precision {r['precision']:.2f} ({r['true_alerts']}/{r['alerts']}), false alerts {r['false_alerts']}, "
            f"alerts on excluded events {r['alerts_on_excluded_events']}, date error median {r['date_error_days_median']:.0f} d "
            f"(max {r['date_error_days_max']:.0f} d, {r['date_error_revisits_median']:.1f} revisits), IoU median {r['iou_median']:.2f}, "
            f"type accuracy {r['type_accuracy']:.2f}, {r['seconds']} s"
        )
        if r["missed_events"]:
            print(f"      missed: {', '.join(r['missed_events'])}")
        print(f"      type confusion (truth → alert): {json.dumps(r['type_confusion'])}")
    (work / "accuracy.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"details: {work / 'accuracy.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
