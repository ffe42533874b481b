"""Shared pieces of the speed and memory benchmarks: builds, the machine line, process-tree RSS.

Every benchmark times its baseline in the same run as redline, on the same generated COG stack
(``redline.demo.generate_demo``), so that a ratio holds however loaded the machine is.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import psutil
import pystac

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"


def _signing_key() -> None:
    """Scans sign their register and manifest: the benchmarks sign with a key of their own, in a
    temporary folder (``$REDLINE_KEY``, inherited by the processes they start), never the user's.
    A benchmark's child process keeps its parent's (``$REDLINE_BENCH_KEY``): a register scanned
    by several of them is signed by one key."""
    import tempfile

    from redline.register.keys import KEY_ENV, throwaway_key

    if os.environ.get("REDLINE_BENCH_KEY") and os.environ.get(KEY_ENV) == os.environ["REDLINE_BENCH_KEY"]:
        return
    os.environ["REDLINE_BENCH_KEY"] = str(throwaway_key(tempfile.mkdtemp(prefix="redline-bench-key-")).path)


_signing_key()


def build(preset: str = "small", seed: int = 20230101, size: int | None = None, cache: Path = CACHE, revisit_days: int | None = None):
    """A demo build (reused when it exists) under ``cache``: preset, seed, grid edge in px and
    days between scenes (default the preset's 10)."""
    from redline.demo import generate_demo

    name = f"{preset}-{seed}" + (f"-{size}px" if size else "") + (f"-{revisit_days}d" if revisit_days else "")
    return generate_demo(cache / name, preset=preset, seed=seed, size=size, revisit_days=revisit_days)


def items_of(build) -> list[pystac.Item]:
    """The build's STAC Items (as the scan would get them from the STAC API)."""
    return [pystac.Item.from_dict(f) for f in json.loads(Path(build.items).read_text(encoding="utf-8"))["features"]]


def setup(argv: list[str] | None, description: str):
    """Parse ``--preset/--seed/--size`` and return ``(args, build, items, cfg, zones, geobox)``:
    the build, its Items, its scan config (no STAC URL yet), its zones and the scan's analysis
    grid — what every scan benchmark starts from."""
    import argparse

    import aoi
    from redline.config import load_config
    from redline.run import analysis_grid

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=20230101)
    ap.add_argument("--size", type=int, default=None, help="grid edge in px instead of the preset's")
    args = ap.parse_args(argv)
    bld = build(args.preset, args.seed, args.size)
    cfg = load_config(bld.config, overrides={"stac": {"url": "http://unused.invalid"}})
    zones = aoi.read_zones(cfg.zones.path, id_field=cfg.zones.id_field, layer=cfg.zones.layer)
    geobox = analysis_grid(zones.to_crs(aoi.utm_crs_for(zones)), cfg.resolution)
    return args, bld, items_of(bld), cfg, zones, geobox


def machine() -> str:
    """One line describing the machine and its load, for the printed results."""
    import dask
    import odc.stac
    import rasterio

    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({model}), {psutil.virtual_memory().total / 2**30:.0f} GB RAM, Python {platform.python_version()}, "
            f"GDAL {rasterio.__gdal_version__}, dask {dask.__version__}, odc-stac {odc.stac.__version__}; load average {load}")


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory (bytes) of ``proc`` plus all its descendants (Dask workers, nannies)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total
