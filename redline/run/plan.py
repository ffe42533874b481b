"""The plan of a run: what a scan or an assessment works on, checked once and passed by name.

:func:`read_areas` reads the red-line zones and the counties of a config (the one place that
does), :func:`find_scenes` searches the STAC API for the scenes over them (the one search,
with the config's timeout), and :class:`ScanPlan` holds the result — zones, scenes, the
analysis grid (UTM, metres) and its processing tiles — for :func:`redline.run.tileloop.run_tiles`,
the scan, the assessment and the benchmarks. :func:`checked_plan` is the scan's plan after the
checks that need no output (both windows have scenes, the bands and masks, zones outside every
scene, scenes that cannot be read: :func:`probe_scenes`). This room may import ``aoi``,
``pipelines``, :mod:`redline.bands`, :mod:`redline.tiles`, :mod:`redline.run.graph` and the
config and errors; it reads nothing but the zones and the STAC API's answers.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import pystac
import shapely
from odc.geo.geobox import GeoBox

import aoi
import pipelines
from redline import bands as bandplan
from redline.budget import MIN_TILE_PX, Sizing, estimate_peak, machine_memory_limit, size_tiles
from redline.config import ScanConfig
from redline.errors import RasterError, SmallZoneWarning, StacError
from redline.run.graph import analysis_grid
from redline.tiles import Tile, plan_tiles

__all__ = ["ScanPlan", "check_windows", "checked_plan", "find_scenes", "margin_px", "plan_budget", "probe_scenes", "read_areas", "scan_grid"]

log = logging.getLogger(__name__)


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
        w, s, e, n = aoi.zones_bbox_4326(zones)
        raise StacError(
            f"stac: the search on {cfg.stac.url} found no scenes for collections {cfg.stac.collections} between "
            f"{cfg.baseline.start} and {cfg.monitor.end} over the zones ({zones.crs.to_string()}; lon {w:.4f} to {e:.4f}, lat {s:.4f} to {n:.4f}); "
            f"{_nearest_scene(cfg, zones)}; check the window, the zones and their CRS, and max_cloud_cover"
        )
    return search


#: Scenes a failed search looks at, anywhere, to say how far the zones are from the nearest one
#: (ten pages of 100: a few seconds even on a large API).
_NEAREST_PROBE = 1000


def _nearest_scene(cfg: ScanConfig, zones: gpd.GeoDataFrame) -> str:
    """How far the zones lie from the nearest scene of the same collections and window found
    anywhere (the first :data:`_NEAREST_PROBE`), as a phrase for the no-scenes error: zones far
    away or in a wrong CRS show as hundreds of kilometres. Distances in km on an azimuthal
    equidistant projection centred on the zones (exact from the centre)."""
    try:
        anywhere = pipelines.search_items(
            cfg.stac.url, collections=cfg.stac.collections, bbox=(-180.0, -90.0, 180.0, 90.0), datetime=f"{cfg.baseline.start}/{cfg.monitor.end}",
            max_cloud_cover=cfg.stac.max_cloud_cover, timeout=cfg.stac.timeout_s, max_items=_NEAREST_PROBE,
        )
    except StacError:
        return "the API could not be searched beyond the zones"
    if not anywhere.items:
        return "the API has no scene of these collections in that window anywhere"
    centre = zones.to_crs(4326).union_all().centroid
    local = f"+proj=aeqd +lat_0={centre.y:.6f} +lon_0={centre.x:.6f} +datum=WGS84 +units=m"
    footprints = gpd.GeoSeries([shapely.geometry.shape(it.geometry) for it in anywhere.items], crs=4326).to_crs(local)
    distance = footprints.distance(zones.to_crs(local).union_all())
    near = int(distance.values.argmin())
    of = f"the first {len(anywhere.items)}" if len(anywhere.items) >= _NEAREST_PROBE else f"the {len(anywhere.items)}"
    return f"the nearest of {of} scenes in that window ({anywhere.items[near].id}) lies {distance.iloc[near] / 1000:,.0f} km from the zones"


def margin_px(cfg: ScanConfig) -> int:
    """Pixels computed around a tile's core: the cloud-mask dilation reaches this far."""
    return math.ceil(cfg.detection.mask_dilation_m / cfg.resolution) + 2


def _bytes_per_value(items: list[pystac.Item]) -> int:
    """Bytes of one raw value of the scenes' reflectance bands (the largest declared
    ``data_type`` of the first scene; 2, uint16, when none is declared)."""
    import numpy as np

    parsed = pipelines.parse_item(items[0]) if items else None
    sizes = [np.dtype(b.data_type).itemsize for b in (parsed.bands.values() if parsed else ()) if b.data_type]
    return max(sizes, default=2)


def plan_budget(cfg: ScanConfig, items: list[pystac.Item], *, budget: int | None = None, source: str | None = None) -> Sizing:
    """The scan's memory budget and the tile and chunk edges it allows (:func:`redline.budget.size_tiles`)
    for ``items``' solar days, the six reflectance bands (+ the thermal band where a scene has one)
    and their bytes per value; ``tiling.max_tile_px`` is the upper bound. ``budget`` (bytes)
    overrides the config's ``resources.memory_limit`` (default: :func:`redline.budget.machine_memory_limit`
    for the cluster's ``workers × threads_per_worker`` compute slots).

    Raises
    ------
    BudgetError
        The budget cannot hold one minimal tile (exit 2, before any read).
    """
    if budget is None:
        budget = cfg.resources.memory_limit_bytes
        source = "config" if budget is not None else "machine"
        budget = budget if budget is not None else machine_memory_limit(cfg.dask.workers * cfg.dask.threads_per_worker)
    n_dates = len({pipelines.solar_day(it) for it in items})
    thermal = any(pipelines.parse_item(it).thermal is not None for it in items[:50])
    return size_tiles(budget, n_dates=n_dates, n_bands=len(pipelines.REFLECTANCE_BANDS) + int(thermal), bytes_per_value=_bytes_per_value(items),
                      max_tile_px=cfg.tiling.max_tile_px, slots=cfg.dask.workers * cfg.dask.threads_per_worker, in_flight=cfg.tiling.in_flight,
                      source=source or "config")


def _tiles_within(zones_utm: gpd.GeoDataFrame, grid: GeoBox, sizing: Sizing, margin: int) -> tuple[list[Tile], Sizing]:
    """Tiles whose largest computed window fits the budget (:func:`redline.budget.estimate_peak`
    of a square of its pixels). :func:`redline.tiles.plan_tiles` gives a zone that fits a cell
    whole to the cell of its centre, so a tile's window can reach twice the cell's edge: when the
    largest one does not fit, the cells are made smaller until it does (or the cell is
    :data:`redline.budget.MIN_TILE_PX`). Returns the tiles and ``sizing`` with the cell edge used
    and the largest window's pixels."""
    edge = sizing.tile_px
    while True:
        tiles = plan_tiles(zones_utm, grid, max_px=edge, margin_px=margin)
        largest = max((t.shape[0] * t.shape[1] for t in tiles), default=0)
        side = math.isqrt(largest) + 1
        cost = estimate_peak(side, min(sizing.chunk_px, side), n_dates=sizing.n_dates, n_bands=sizing.n_bands,
                             bytes_per_value=sizing.bytes_per_value, slots=sizing.slots, in_flight=sizing.in_flight)
        if cost <= sizing.budget or edge <= MIN_TILE_PX:
            return tiles, replace(sizing, cell_px=edge, largest_tile_px=largest)
        edge = max(MIN_TILE_PX, min(edge - 16, int(edge * sizing.tile_px / side) // 16 * 16))


@dataclass(frozen=True)
class ScanPlan:
    """What a run works on, built once by :meth:`build`.

    ``zones``/``admin``: as read (their own CRS); ``search``: the STAC search (None: items given);
    ``items``: the scenes to read (the search's, less those left out); ``utm``: the analysis
    CRS (UTM zone of the zones, metres); ``zones_utm``: the zones in it; ``grid``: the analysis
    grid; ``tiles``: its processing tiles; ``bands``: which bands the scenes have
    (:func:`redline.bands.plan_bands`); ``failures``: scenes and zones left out so far, as
    ``{"kind", "id", "reason"}`` records (manifest ``failures``); ``sizing``: the memory budget
    and the tile and compute chunk edges it allows (:func:`plan_budget`; manifest ``resources``).
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
    sizing: Sizing | None = None

    @property
    def chunk_px(self) -> int | None:
        """Compute chunk edge in pixels the budget allows (None: the load's default)."""
        return self.sizing.chunk_px if self.sizing is not None else None

    @classmethod
    def build(cls, cfg: ScanConfig, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, search: pipelines.SearchResult | None, *,
              items: list[pystac.Item] | None = None, failures: list[dict[str, str]] | None = None, sizing: Sizing | None = None) -> ScanPlan:
        """The plan of ``zones`` and ``items`` (default: every scene ``search`` found): the UTM
        grid at ``cfg.resolution`` over the zones and its tiles of the edge the memory budget
        allows (``sizing``, default :func:`plan_budget`; at most ``tiling.max_tile_px``)."""
        if items is None:
            if search is None:
                raise ValueError("give the search or the items")
            items = search.items
        items = list(items)
        utm = aoi.utm_crs_for(zones)
        zones_utm = zones.to_crs(utm)
        grid = analysis_grid(zones_utm, cfg.resolution)
        sizing = sizing if sizing is not None else plan_budget(cfg, items)
        tiles, sizing = _tiles_within(zones_utm, grid, sizing, margin_px(cfg))
        return cls(cfg=cfg, zones=zones, admin=admin, search=search, items=items, utm=utm, zones_utm=zones_utm, grid=grid, tiles=tiles,
                   bands=bandplan.plan_bands(items), failures=list(failures or []), sizing=sizing)

    def with_budget(self, budget: int, source: str) -> ScanPlan:
        """The same plan with its tiles sized for ``budget`` bytes (e.g. a Dask cluster's workers'
        memory, known once the client is connected)."""
        sizing = plan_budget(self.cfg, self.items, budget=budget, source=source)
        tiles, sizing = _tiles_within(self.zones_utm, self.grid, sizing, margin_px(self.cfg))
        return replace(self, sizing=sizing, tiles=tiles)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The zones' bounding box, EPSG:4326 (lon, lat)."""
        return aoi.zones_bbox_4326(self.zones)

    def without(self, item_ids: set[str], failures: list[dict[str, str]]) -> ScanPlan:
        """The same plan without the scenes ``item_ids``, with ``failures`` added."""
        items = [it for it in self.items if it.id not in item_ids]
        return replace(self, items=items, bands=bandplan.plan_bands(items), failures=[*self.failures, *failures])


def check_windows(cfg: ScanConfig, items: list[pystac.Item], what: str, failures: list[dict] | None = None) -> None:
    """Both windows need scenes: a monitor window without scenes would report 'no alert'."""
    if not items and failures:
        raise RasterError(f"none of the {len(failures)} scene(s) found can be read (first: {failures[-1]['id']}: {failures[-1]['reason']}); check the assets' hrefs and access")
    for key, win in (("baseline", cfg.baseline), ("monitor", cfg.monitor)):
        dates = sorted((it.datetime or it.common_metadata.start_datetime).date() for it in items)
        if not any(win.start <= d <= win.end for d in dates):
            span = f"{what} scenes span {dates[0]} to {dates[-1]}" if dates else f"no {what} scenes"
            msg = f"{key} window {win.start} to {win.end} has no {what} scenes ({span}); move {key}.start/{key}.end or check stac.collections"
            if failures:
                raise RasterError(msg)
            raise StacError(msg)
    # the detector monitors a pixel only with min_baseline_obs clear baseline looks: fewer scene
    # dates than that in the whole baseline window and no pixel can be, which the scan would
    # report as "no alert"
    days = {(it.datetime or it.common_metadata.start_datetime).date() for it in items}
    n_base = sum(1 for d in days if cfg.baseline.start <= d <= cfg.baseline.end)
    need = cfg.detection.min_baseline_obs
    if n_base < need:
        terms = cfg.detection.model_terms
        msg = (f"baseline window {cfg.baseline.start} to {cfg.baseline.end} has {n_base} {what} scene date(s), fewer than "
               f"detection.min_baseline_obs {need} clear looks a pixel needs: no pixel could be monitored; lengthen the baseline, "
               + (f"or lower detection.min_baseline_obs to {n_base} (more than the model's {terms} terms with harmonics: {cfg.detection.harmonics})"
                  if n_base > terms else f"or set detection.harmonics: 1 and detection.min_baseline_obs: {max(n_base, 4)} (the model needs 4 looks at least)"))
        if failures:
            raise RasterError(msg)
        raise StacError(msg)


def _zones_in_scenes(zones: gpd.GeoDataFrame, items: list[pystac.Item]) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Drop zones that no scene footprint touches (reported as failed zones, not scanned)."""
    footprints = shapely.union_all([shapely.geometry.shape(it.geometry) for it in items if it.geometry])
    z4326 = zones.to_crs(4326)
    seen = z4326.geometry.intersects(footprints).values
    failures = [
        {"kind": "zone", "id": zid, "reason": f"outside every scene found ({len(items)} scenes); not assessed, check the zone's geometry and CRS"}
        for zid in zones.loc[~seen, "zone_id"]
    ]
    for f in failures:
        log.warning("zone %s: %s", f["id"], f["reason"])
    if not seen.any():
        raise StacError(f"no zone lies inside any of the {len(items)} scenes found; check the zones' CRS and stac.collections")
    return zones.loc[seen].reset_index(drop=True), failures


def _warn_small_zones(zones_utm: gpd.GeoDataFrame, resolution: float) -> None:
    """Zones smaller than one analysis pixel are assessed from partial pixels (exactextract
    coverage fractions) and can hold no alert; say so rather than let it pass unnoticed."""
    small = zones_utm.geometry.area < resolution**2
    for zid, area in zip(zones_utm.loc[small, "zone_id"], zones_utm.loc[small].geometry.area):
        warnings.warn(
            f"zone {zid}: {area:.0f} m² is smaller than one {resolution:g} m pixel ({resolution**2:.0f} m²); "
            "statistics come from partial pixels and no alert can reach detection.min_area_m2",
            SmallZoneWarning,
            stacklevel=3,
        )


def probe_scenes(cfg: ScanConfig, items: list[pystac.Item], profile: pipelines.Profile,
           bbox: tuple[float, float, float, float] | None = None) -> tuple[list[pystac.Item], list[pipelines.SceneFailure]]:
    """:func:`pipelines.probe_items` (or with ``bbox``, :func:`pipelines.find_unreadable` over
    that area) of each collection's scenes with the bands that collection has
    (:func:`redline.bands.bands_by_collection`), the quality mask (only where a scene has one
    with ``masks: assume-clear``) and the thermal band where there is one. Items and failures
    in input order."""
    optional = ("mask", "lst") if cfg.masks == "assume-clear" else ("lst",)
    failed: dict[str, pipelines.SceneFailure] = {}
    for coll, need in bandplan.bands_by_collection(items).items():
        members = [it for it in items if (it.collection_id or "") == coll]
        kw = dict(profile=profile, signer=profile.signer, optional=optional, threads=cfg.io.concurrency)  # HTTP latency, not CPU
        bad = (pipelines.probe_items(members, (*need, "mask", "lst"), **kw)[1] if bbox is None
               else pipelines.find_unreadable(members, (*need, "mask", "lst"), bbox, **kw))
        failed.update({f.item_id: f for f in bad})
    return [it for it in items if it.id not in failed], [failed[it.id] for it in items if it.id in failed]


def scan_grid(cfg: ScanConfig, zones: gpd.GeoDataFrame) -> GeoBox:
    """The analysis grid of ``zones`` (as :meth:`ScanPlan.build` makes it: their UTM zone, at
    ``cfg.resolution``), before any scene is probed."""
    return analysis_grid(zones.to_crs(aoi.utm_crs_for(zones)), cfg.resolution)


def checked_plan(cfg: ScanConfig, zones: gpd.GeoDataFrame, admin: gpd.GeoDataFrame | None, search: pipelines.SearchResult, *,
                 probe: set[str] | None = None) -> ScanPlan:
    """The scan's plan after the checks that need no output: the scenes of both windows, the
    bands and masks (exit 2), the zones outside every scene and the unreadable scenes (left out
    as failures), then the grid and tiles. ``probe``: the ids of the scenes whose assets are
    checked (default all; a rescan from a state checks only the scenes it reads)."""
    failures = [{"kind": "item", "id": i, "reason": r} for i, r in search.failures]
    check_windows(cfg, search.items, "found")
    # no red/nir anywhere, no detection index left, scenes without a mask (masks: required): exit 2
    bandplan.check_scenes(bandplan.plan_bands(search.items), masks=cfg.masks, configured=cfg.detection.indices, config=cfg.source)
    sizing = plan_budget(cfg, search.items)  # a budget too small for one tile: exit 2 before any read
    zones, outside = _zones_in_scenes(zones, search.items)
    failures += outside
    _, unreadable = probe_scenes(cfg, [it for it in search.items if probe is None or it.id in probe], pipelines.get_profile(cfg.stac.profile))
    bad = {f.item_id for f in unreadable}
    items = [it for it in search.items if it.id not in bad]
    failures += [{"kind": "scene", "id": f.item_id, "reason": f.reason} for f in unreadable]
    check_windows(cfg, items, "readable", [f for f in failures if f["kind"] == "scene"])
    plan = ScanPlan.build(cfg, zones, admin, search, items=items, failures=failures, sizing=sizing)
    _warn_small_zones(plan.zones_utm, cfg.resolution)
    log.info("%d zone(s) in %d tile(s) of ≤ %d px, chunks of ≤ %d px (memory budget %d MB, %s)", len(plan.zones_utm), len(plan.tiles),
             plan.sizing.tile_px, plan.sizing.chunk_px, plan.sizing.budget // 10**6, plan.sizing.source)
    return plan
