"""One zone's figure drawn on demand from a finished scan's output folder.

A scan draws the figures of the zones that changed (``outputs.zone_figures``, default
``changed``); the review service draws any other zone's when a reviewer opens it, with this
function, into a cache folder of its own (OUT stays as its manifest signed it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyogrio

from maps._map import read_layer
from maps._summary import FIGURE_DIR, render_zone_figure, zone_figure_name

__all__ = ["zone_figure"]

log = logging.getLogger(__name__)


def _quoted(text: str) -> str:
    """``text`` as an OGR SQL string literal (a quote doubled)."""
    return "'" + text.replace("'", "''") + "'"


def zone_figure(out_dir: Path, zone_id: str, *, cache: Path | None = None) -> Path | None:
    """The PNG of zone ``zone_id``'s figure (:func:`maps.render_zone_figure`; its SVG twin beside
    it): ``out_dir/figures/zone_<id>.png`` when the scan or ``redline map`` drew it, else the one
    in ``cache``, drawn there now if it is not yet (from ``zone_stats.csv``, the zone's feature of
    ``zones.geojson``, its alerts of ``alerts.geojson`` and the rasters). ``cache`` None: drawn
    into ``out_dir/figures``. None when ``zone_stats.csv`` has no such zone."""
    out_dir = Path(out_dir)
    name = zone_figure_name(zone_id)
    for folder in (out_dir / FIGURE_DIR, cache):
        if folder is not None and (folder / name).is_file():
            return folder / name
    stats = pd.read_csv(out_dir / "zone_stats.csv", dtype={"zone_id": str, "admin_id": str})
    rows = stats[stats["zone_id"] == str(zone_id)]
    if rows.empty:
        return None
    where = f"zone_id = {_quoted(str(zone_id))}"  # one feature read, not the whole layer
    zone = pyogrio.read_dataframe(out_dir / "zones.geojson", where=where) if (out_dir / "zones.geojson").is_file() else None
    geom = None if zone is None or zone.empty else zone.set_crs(4326, allow_override=True).geometry.iloc[0]
    alerts_path = out_dir / "alerts.geojson"
    alerts = read_layer(alerts_path) if alerts_path.is_file() else None
    if alerts is None or alerts.empty or "zone_id" not in alerts:
        import geopandas as gpd

        alerts = gpd.GeoDataFrame({"disturbance_type": []}, geometry=[], crs=4326)
    else:
        alerts = alerts[alerts["zone_id"].astype(str) == str(zone_id)]
    png = render_zone_figure(out_dir, rows.iloc[0], geom, alerts, dest=cache)[0]
    log.info("zone %s: figure drawn on demand: %s", zone_id, png)
    return png
