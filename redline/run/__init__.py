"""The run of a scan or an assessment, after the config is read.

- :mod:`redline.run.plan`: the zones and counties read once, the one STAC search, and the
  :class:`ScanPlan` (scenes, UTM grid, tiles, band plan, failures) passed by name;
- :mod:`redline.run.graph`: the lazy graph of one tile (load, mask, indices, detection,
  composite) and the analysis grid;
- :mod:`redline.run.tileloop`: the eager tile loop, the one place that computes the scenes;
- :mod:`redline.run.rasters`: the rasters each tile writes and the COGs made from them;
- :mod:`redline.run.assessment`: ``redline assess`` (the assessment without detection).

The scan's orchestrator is :func:`redline.scan.run_scan`. This package may import redline's
science modules (detect, alerts, assess statistics, tiles, bands, register), ``pipelines``,
``indices`` and ``aoi``; none of those import it.
"""

from redline.run.assessment import run_assessment
from redline.run.graph import TileGraph, analysis_grid, items_over, tile_graph
from redline.run.plan import ScanPlan, find_scenes, margin_px, read_areas
from redline.run.tileloop import Tiled, run_tiles

__all__ = ["ScanPlan", "TileGraph", "Tiled", "analysis_grid", "find_scenes", "items_over", "margin_px", "read_areas", "run_assessment", "run_tiles",
           "tile_graph"]
