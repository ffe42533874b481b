"""redline: remote-sensing supervision of ecological protection red-line zones (生态保护红线).

The public API, imported on first use (``redline --help`` does not load the science):

- :func:`load_config` → :class:`ScanConfig` (``scan.yml``);
- :func:`run_scan` → :class:`ScanResult`; :func:`run_assessment` (``redline assess``);
- :class:`ScanPlan` (:func:`read_areas`, :func:`find_scenes`), :func:`tile_graph` →
  :class:`TileGraph`, :func:`run_tiles`: the pieces of a run, for benchmarks and notebooks;
- :class:`Register` (the alert register and its review history).

The detector itself is :func:`redline.detect.detect` (the module of the same name shadows it here).

The house and its rules: docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Register", "ScanConfig", "ScanPlan", "ScanResult", "TileGraph", "find_scenes", "load_config", "read_areas", "run_assessment",
    "run_scan", "run_tiles", "tile_graph",
]

_HOME = {
    "Register": "redline.register", "ScanConfig": "redline.config", "load_config": "redline.config", "ScanResult": "redline.scan",
    "run_scan": "redline.scan", "run_assessment": "redline.run", "ScanPlan": "redline.run", "TileGraph": "redline.run",
    "find_scenes": "redline.run", "read_areas": "redline.run", "run_tiles": "redline.run", "tile_graph": "redline.run",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'redline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
