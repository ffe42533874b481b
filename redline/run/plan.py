"""The plan of a run: what a scan or an assessment works on, checked once and passed by name.

:func:`read_areas` reads the red-line zones and the counties of a config (the one place that
does), :func:`find_scenes` searches the STAC API for the scenes over them (the one search,
with the config's timeout), and :class:`ScanPlan` holds the result — zones, scenes, the
analysis grid (UTM, metres) and its processing tiles — for :func:`redline.run.tileloop.run_tiles`,
the scan, the assessment and the benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import pystac
from odc.geo.geobox import GeoBox

import aoi
import pipelines
from redline import bands as bandplan
from redline.config import ScanConfig
from redline.errors import StacError
from redline.run.graph import analysis_grid
from redline.tiles import Tile, plan_tiles

__all__ = ["ScanPlan", "find_scenes", "margin_px", "read_areas"]


def read_areas(cfg: ScanConfig) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    """The config's red-line zones and administrative units (``None`` without ``admin_units``),
    read, validated and repaired by :mod:`aoi` (standard columns, their own CRS)."""
    z = cfg.zones
    zones = aoi.read_zones(z.path, id_field=z.id_field, layer=z.layer, name_field=z.name_field, category_field=z.category_field,
                           admin_field=z.admin_field, tier_field=z.tier_field)
    admin = None
    if cfg.admin_units is not None:
        a = cfg.admin_units
        admin = aoi.read_admin_units(a.path, id_field=a.id_field, layer=a.layer, name_field=a.name_field)
    return zones, admin


def find_scenes(cfg: ScanConfig, zones: gpd.GeoDataFrame) -> pipelines.SearchResult:
    """The scenes of ``cfg.stac`` over ``zones`` from the baseline start to the monitor end
    (cloud cover filtered on the client where the API cannot; ``stac.timeout_s`` per request).

    Raises
    ------
    StacError
        ``stac.url`` is not set, or the search found no scene (one line: what to check).
    """
    if not cfg.stac.url:
        raise StacError("stac.url is not set; give the STAC API URL (or a profile) in the config")
    search = pipelines.search_items(
        cfg.stac.url, collections=cfg.stac.collections, bbox=aoi.zones_bbox_4326(zones),
        datetime=f"{cfg.baseline.start}/{cfg.monitor.end}", max_cloud_cover=cfg.stac.max_cloud_cover, timeout=cfg.stac.timeout_s,
    )
    if not search.items:
        raise StacError(
            f"stac: the search on {cfg.stac.url} found no scenes for collections {cfg.stac.collections} between "
            f"{cfg.baseline.start} and {cfg.monitor.end} over the zones; check the window, the zones and max_cloud_cover"
        )
    return search


def margin_px(cfg: ScanConfig) -> int:
    """Pixels computed around a tile's core: the cloud-mask dilation reaches this far."""
    return math.ceil(cfg.detection.mask_dilation_m / cfg.resolution) + 2


@dataclass(frozen=True)
class ScanPlan:
    """What a run works on, built once by :meth:`build`.

    ``zones``/``admin``: as read (their own CRS); ``search``: the STAC search (None: items given);
    ``items``: the scenes to read (the search's, less those left out); ``utm``: the analysis
    CRS (UTM zone of the zones, metres); ``zones_utm``: the zones in it; ``grid``: the analysis
    grid; ``tiles``: its processing tiles; ``bands``: which bands the scenes have
    (:func:`redline.bands.plan_bands`); ``failures``: scenes and zones left out so far, as
    ``{"kind", "id", "reason"}`` records (manifest ``failures``).
    """

    cfg: ScanConfig
    zones: gpd.GeoDataFrame
    admin: gpd.GeoDataFrame | None
    search: pipelines.SearchResult | None
    items: list[pystac.Item]
    utm: Any
    zones_utm: gpd.GeoDataFrame
    grid: GeoBox
    tiles: list[Tile]
    bands: bandplan.BandPlan
    failures: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: ScanConfig, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, search: pipelines.SearchResult | None, *,
              items: list[pystac.Item] | None = None, failures: list[dict[str, str]] | None = None) -> ScanPlan:
        """The plan of ``zones`` and ``items`` (default: every scene ``search`` found): the UTM
        grid at ``cfg.resolution`` over the zones and its tiles of at most ``tiling.max_tile_px``."""
        if items is None:
            if search is None:
                raise ValueError("give the search or the items")
            items = search.items
        items = list(items)
        utm = aoi.utm_crs_for(zones)
        zones_utm = zones.to_crs(utm)
        grid = analysis_grid(zones_utm, cfg.resolution)
        tiles = plan_tiles(zones_utm, grid, max_px=cfg.tiling.max_tile_px, margin_px=margin_px(cfg))
        return cls(cfg=cfg, zones=zones, admin=admin, search=search, items=items, utm=utm, zones_utm=zones_utm, grid=grid, tiles=tiles,
                   bands=bandplan.plan_bands(items), failures=list(failures or []))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The zones' bounding box, EPSG:4326 (lon, lat)."""
        return aoi.zones_bbox_4326(self.zones)

    def without(self, item_ids: set[str], failures: list[dict[str, str]]) -> ScanPlan:
        """The same plan without the scenes ``item_ids``, with ``failures`` added."""
        items = [it for it in self.items if it.id not in item_ids]
        return replace(self, items=items, bands=bandplan.plan_bands(items), failures=[*self.failures, *failures])
