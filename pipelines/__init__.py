"""STAC search, lazy loading and the Dask machinery of a scan.

- :func:`serve_stac` runs the embedded STAC API (``rustac serve``) on loopback over a folder
  of Items whose assets are local COGs — the same code path as a remote API.
- :func:`search_items` searches any STAC API with pystac-client, filtering cloud cover on the
  client when the server does not conform to the query/filter extensions.
- :func:`get_profile` / :data:`PROFILES`: catalogue conventions (default URL and collections,
  href signing for Planetary Computer, alternate hrefs for USGS).
- :func:`parse_item` parses one Item into bands by common name, per-item scale/offset/nodata
  (declared or by the collection's rule), its quality mask and grid.
- :func:`load_series` loads items of one or several sensors lazily onto one grid as a
  reflectance (0–1) series with a clear-sky mask; :func:`load_reflectance` is the older
  single-collection loader.
- :func:`probe_items` checks every scene's assets first; unreadable scenes are left out.
- :func:`import_folder` turns a folder of GeoTIFF / JPEG2000 scene files (Landsat, Sentinel-2,
  Gaofen, or any layout a band-mapping file describes) into COGs + STAC Items for :func:`serve_stac`.
- :func:`dask_client` gives a LocalCluster client, or one attached to an existing scheduler;
  :func:`set_gdal_env` applies the scan's GDAL settings in this process, :func:`trim_memory`
  gives freed heap memory back to the OS (glibc) as :func:`compute_tiles` does after each tile.
- :func:`io_stats` / :func:`cluster_io_stats` (:class:`IoStats`) count a scan's remote requests,
  bytes fetched and decoded and HTTP retries, per process and over the cluster
  (:func:`reset_io_stats`, :func:`reset_cluster_io_stats`); remote bands are read with
  ``io.concurrency`` reads in flight per worker (:mod:`pipelines._io`).
- :func:`local_href_patch` reads a bare local path a STAC API served as ``http://host/abs/path``
  as the file; :func:`solar_day` is an item's local solar date, as odc-stac groups dates;
  :func:`coarse_grid` is the band's own grid that :func:`load_series` reads a coarser band on
  (None: warped); :data:`LAYOUTS` names the scene-file layouts :func:`import_folder` knows.
"""

from pipelines._bands import REFLECTANCE_BANDS, BandInfo, MaskInfo, ParsedItem, parse_item
from pipelines._cluster import dask_client, glibc_library, set_gdal_env, trim_memory
from pipelines._files import replaced_folder
from pipelines._io import IoStats, cluster_io_stats, io_stats, reset_cluster_io_stats, reset_io_stats
from pipelines._import import LAYOUTS, ImportResult, import_folder
from pipelines._load import ItemScaling, MaskRules, SeriesLoad, load_reflectance, load_series, local_href_patch, solar_day
from pipelines._native import CoarseGrid, coarse_grid
from pipelines._profiles import PROFILES, Profile, get_profile
from pipelines._progress import compute_tiles
from pipelines._probe import SceneFailure, find_unreadable, probe_items
from pipelines._search import SearchResult, open_client, search_items
from pipelines._server import serve_stac

__all__ = [
    "IoStats",
    "cluster_io_stats",
    "io_stats",
    "reset_cluster_io_stats",
    "reset_io_stats",
    "serve_stac",
    "import_folder",
    "replaced_folder",
    "ImportResult",
    "LAYOUTS",
    "search_items",
    "open_client",
    "SearchResult",
    "load_reflectance",
    "load_series",
    "SeriesLoad",
    "local_href_patch",
    "solar_day",
    "coarse_grid",
    "CoarseGrid",
    "MaskRules",
    "ItemScaling",
    "parse_item",
    "ParsedItem",
    "BandInfo",
    "MaskInfo",
    "REFLECTANCE_BANDS",
    "Profile",
    "PROFILES",
    "get_profile",
    "dask_client",
    "set_gdal_env",
    "trim_memory",
    "glibc_library",
    "probe_items",
    "compute_tiles",
    "find_unreadable",
    "SceneFailure",
]
