"""STAC search, lazy loading and the Dask machinery of a scan.

- :func:`serve_stac` runs the embedded STAC API (``rustac serve``) on loopback over a folder
  of Items whose assets are local COGs — the same code path as a remote API.
- :func:`search_items` searches any STAC API with pystac-client, filtering cloud cover on the
  client when the server does not conform to the query/filter extensions.
- :func:`load_reflectance` loads the items lazily with odc-stac into reflectance (0–1).
- :func:`probe_items` checks every scene's assets first; unreadable scenes are left out.
- :func:`dask_client` gives a LocalCluster client, or one attached to an existing scheduler.
"""

from pipelines._cluster import dask_client
from pipelines._load import ItemScaling, load_reflectance
from pipelines._probe import SceneFailure, probe_items
from pipelines._search import SearchResult, search_items
from pipelines._server import serve_stac

__all__ = [
    "serve_stac",
    "search_items",
    "SearchResult",
    "load_reflectance",
    "ItemScaling",
    "dask_client",
    "probe_items",
    "SceneFailure",
]
