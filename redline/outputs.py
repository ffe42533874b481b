"""The output folder's contract: the names of its files and folders and the default register.

Every module that writes or reads a scan's output folder (``OUT``) takes the names from here
(README "What `make demo` produces" describes each file; docs/architecture.md §4.3 says who
writes and who reads it). ``maps`` renders the same files and keeps its own names (it imports
nothing of ``redline``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ADMIN_GEOJSON", "ADMIN_STATS_CSV", "ALERTS_GEOJSON", "ASSESSMENT_GPKG", "ASSESSMENT_JSON", "CATALOG_JSON", "CHIPS_DIR", "FIGURES_DIR",
    "MANIFEST_JSON", "MAP_HTML", "NDVI_ANNUAL_CSV", "RASTERS_DIR", "REGISTER_GPKG", "REPORT_HTML", "TILES_DIR", "ZONES_GEOJSON",
    "ZONE_STATS_CSV", "PHOTOS_SUFFIX", "default_register", "is_register_url", "out_folder_problem", "register_location",
]

ALERTS_GEOJSON = "alerts.geojson"  # this scan's alerts, EPSG:4326
ZONES_GEOJSON = "zones.geojson"  # zones with their statistics
ADMIN_GEOJSON = "admin_units.geojson"  # counties with their statistics
ZONE_STATS_CSV = "zone_stats.csv"
ADMIN_STATS_CSV = "admin_stats.csv"
NDVI_ANNUAL_CSV = "ndvi_annual.csv"
ASSESSMENT_GPKG = "assessment.gpkg"
ASSESSMENT_JSON = "assessment.json"
MANIFEST_JSON = "manifest.json"
CATALOG_JSON = "catalog.json"
MAP_HTML = "map.html"
REPORT_HTML = "report.html"
REGISTER_GPKG = "register.gpkg"
RASTERS_DIR = "rasters"
FIGURES_DIR = "figures"
CHIPS_DIR = "chips"
TILES_DIR = ".tiles"  # the tile mosaics while a run computes; removed when it ends
#: a GeoPackage register's field photos lie in ``<stem>`` + this, next to it (``register-photos``
#: for ``register.gpkg``; redline.register.photos); never an output: the signed history checks them
PHOTOS_SUFFIX = "-photos"


def is_register_url(location: Path | str | None) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) register URL."""
    return location is not None and str(location).startswith(("postgresql://", "postgres://"))


def register_location(location: Path | str) -> Path | str:
    """A register location as redline keeps it: a URL stays a string, anything else is a path."""
    return str(location) if is_register_url(location) else Path(location)


def default_register(out: Path | str | None, configured: Path | str | None = None) -> Path | str:
    """The register a run or a command uses: the configured one (``register:`` in scan.yml, or
    ``--register``; a ``postgresql://`` URL stays a string), else ``OUT/register.gpkg``
    (``OUT`` default ``out``)."""
    if configured is not None:
        return register_location(configured)
    return Path(out if out is not None else "out") / REGISTER_GPKG


def out_folder_problem(out: Path | str, option: str = "--out") -> str | None:
    """Why ``out`` cannot be a run's output folder, as one line, or None: a path that is a file,
    or lies under one (the run makes the folder itself; callers raise the line as a
    :class:`~redline.errors.RedlineInputError`)."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists():
            if p.is_dir():
                return None
            where = "is a file" if p == out else f"lies under {p}, which is a file"
            return f"{option} {out}: {where}, not a folder; give a folder (it is made when missing)"
    return None
