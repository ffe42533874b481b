"""Zone figures drawn in a worker process (:data:`COMMAND` JOBS RESULTS).

:func:`maps.draw_zone_figures` hands each worker a pickle of its share of the zones
(:func:`draw_jobs`' input) and reads back a pickle of what each drew. A plain child process
(not :mod:`multiprocessing`): it never imports the caller's main script, so a script that calls
:func:`maps.render_report` needs no ``if __name__ == "__main__"`` guard, and nothing of the
caller's threads (the scan's Dask workers) is copied into it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from rasterio.errors import RasterioError

from maps._summary import render_zone_figure

__all__ = ["COMMAND", "draw_jobs", "main"]

#: The child's command after the interpreter: :func:`main` called by name (``python -m`` would
#: run this module a second time beside the copy the ``maps`` package imports).
COMMAND = ("-c", "import sys; from maps._figure_worker import main; raise SystemExit(main(sys.argv[1:]))")


def draw_jobs(jobs: list[tuple[Path, pd.Series, Any, Any]]) -> list[tuple[list[Path], str | None]]:
    """Per job (``out_dir, zone_stats row, polygon (EPSG:4326) or None, the zone's alerts``),
    the files :func:`maps.render_zone_figure` wrote, or none and why: one zone's figure must not
    cost the report (unreadable rasters, a degenerate polygon)."""
    out = []
    for out_dir, zone, geom, alerts in jobs:
        try:
            out.append((render_zone_figure(out_dir, zone, geom, alerts), None))
        except (ValueError, OSError, RasterioError) as exc:
            out.append(([], str(exc)))
    return out


def main(argv: list[str]) -> int:
    """Read the jobs' pickle ``argv[0]``, draw them, write the results' pickle ``argv[1]``."""
    jobs = pickle.loads(Path(argv[0]).read_bytes())
    Path(argv[1]).write_bytes(pickle.dumps(draw_jobs(jobs)))
    return 0
