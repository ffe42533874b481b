"""Write a demo build: COGs, STAC Items and Collection, zones, counties, truth, scan config.

The build is written to a hidden temporary folder next to ``out_dir`` and renamed into place
at the end, so a half-finished build is never taken for a whole one. Everything is drawn from
``numpy.random.Generator`` streams keyed by ``(seed, purpose[, index])``, so the pixels do not
depend on wall-clock time, hash order or the order in which scenes are rendered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from scipy import ndimage

from pipelines import replaced_folder
from redline.demo import events as E
from redline.demo import landscape as L
from redline.demo import scenes as SC
from redline.demo import spectra as S
from redline.demo import stac as ST

#: Bump when the generated pixels, vectors or metadata change (invalidates cached builds).
GENERATOR_VERSION = "4.2"
MMU_M2 = 5000.0  # minimum mapping unit of the scan config, m²
ZONES_CRS, TRUTH_CRS = "EPSG:4490", "EPSG:4326"  # CGCS2000 for the official layers

# Random streams (second element of the seed-sequence key).
LANDSCAPE, EVENTS, CROPS, SCENE = 0, 1, 2, 3


@dataclass(frozen=True)
class Preset:
    """A demo size. ``size`` is the grid edge in 10 m pixels; scenes every ``revisit_days``
    from ``first`` to ``last``; baseline/monitor windows are ISO dates for the scan config."""

    name: str
    size: int
    first: dt.date
    last: dt.date
    revisit_days: int
    baseline: tuple[str, str]
    monitor: tuple[str, str]
    zones: tuple[str, ...]
    events: tuple[E.EventRequest, ...]
    conditions: SC.Conditions = SC.Conditions()


_ALL_ZONES = tuple(z.code for z in L.ZONES if z.code != "510181-HX-0006")  # the five mountain zones
_R = E.EventRequest

# A 10-day step between scenes: each Sentinel-2 satellite repeats its ground track every
# 10 days (the 5-day revisit needs both S2A and S2B). Keeping one pass per 10 days halves the
# build and is the cadence a tile gets when one of the pair is unavailable. (The December 2021
# failure sometimes quoted for this was Sentinel-1B's, not Sentinel-2B's: ESA, "Mission ends
# for Copernicus Sentinel-1B satellite", 3 Aug 2022.)
PRESETS: dict[str, Preset] = {
    "demo": Preset(
        "demo", 320, dt.date(2021, 1, 5), dt.date(2023, 12, 31), 10, ("2021-01-01", "2022-12-31"), ("2023-01-01", "2023-12-31"), _ALL_ZONES,
        (
            _R("clearing", 2, True, (8000, 60000)),
            _R("construction", 2, True, (8000, 40000)),
            _R("mining", 2, True, (10000, 45000), (3, 6)),
            _R("fire", 2, True, (15000, 60000), (3, 9)),
            _R("water_loss", 2, True, (8000, 30000), (4, 10)),
            _R("clearing", 2, False, (8000, 40000)),  # outside every zone: must not alert
            _R("clearing", 2, True, (2000, 3000)),  # in a zone but below the 5 000 m² unit
        ),
    ),
    "small": Preset(
        "small", 160, dt.date(2022, 1, 5), dt.date(2023, 12, 31), 10, ("2022-01-01", "2022-12-31"), ("2023-01-01", "2023-12-31"),
        ("510181-HX-0001", "510182-HX-0003", "510182-HX-0004"),
        (
            _R("clearing", 1, True, (8000, 25000)),
            _R("construction", 1, True, (8000, 20000)),
            _R("mining", 1, True, (10000, 25000), (3, 6)),
            _R("fire", 1, True, (10000, 25000), (3, 9)),
            _R("water_loss", 1, True, (8000, 15000), (4, 10)),
            _R("clearing", 1, False, (8000, 20000)),
            _R("clearing", 1, True, (2000, 3000)),
        ),
    ),
    # Harder than the demo, for scoring only (never for tuning): ~30 % of the nearly-clear
    # dates turned cloudy, a zone of cropland on the plain, burns that green up again within
    # weeks (ceiling 0.75 green cover, e-folding 60 days), quarries that grow slowly (90–150
    # days between stages), and a swath edge shifted west so ~22 % of every second scene is no data.
    "hard": Preset(
        "hard", 320, dt.date(2021, 1, 5), dt.date(2023, 12, 31), 10, ("2021-01-01", "2022-12-31"), ("2023-01-01", "2023-12-31"),
        (*_ALL_ZONES, "510181-HX-0006"),
        (
            _R("clearing", 2, True, (8000, 60000)),
            _R("construction", 3, True, (8000, 40000)),
            _R("mining", 2, True, (10000, 45000), (3, 6)),
            _R("fire", 2, True, (15000, 60000), (3, 9)),
            _R("water_loss", 2, True, (8000, 30000), (4, 10)),
            _R("clearing", 2, False, (8000, 40000)),
            _R("clearing", 2, True, (2000, 3000)),
        ),
        SC.Conditions(cloud_boost=0.3, corner_line=((1.0, 0.10), (0.60, 1.0)), fire_regrowth=(0.75, 60.0), quarry_gap_days=(90.0, 150.0)),
    ),
}


@dataclass(frozen=True)
class DemoScenes:
    """Paths of a finished demo build (all absolute) and its number of scenes."""

    root: Path
    items: Path  # items.json, a GeoJSON FeatureCollection of STAC Items
    collection: Path  # collection.json
    zones: Path  # zones.gpkg, layer hongxian, EPSG:4490
    counties: Path  # counties.gpkg, layer xzq, EPSG:4490
    truth: Path  # truth.gpkg, layer events, EPSG:4326
    config: Path  # scan.yml
    n_scenes: int
    land_cover: Path  # landcover.tif, the landscape's classes (L.CLASS_NAMES codes, nodata 255), EPSG:32648
    rivers: Path  # rivers.gpkg, layer rivers: river centre lines, EPSG:4490


def _paths(root: Path, n_scenes: int) -> DemoScenes:
    return DemoScenes(root, root / "items.json", root / "collection.json", root / "zones.gpkg", root / "counties.gpkg",
                      root / "truth.gpkg", root / "scan.yml", n_scenes, root / "landcover.tif", root / "rivers.gpkg")


#: The demo's land-cover classes (L.CLASS_NAMES) as HJ 192-2015 land types (redline.assess.ei.LAND_TYPES):
#: forest → 有林地, shrub/grass → 高覆盖度草地, the irrigated plain's cropland → 水田, the
#: reservoir → 湖泊(库), villages → 农村居民点, roads → 其他建设用地, rock → 裸岩石砾.
LAND_COVER_CLASSES = {
    L.EVERGREEN: "forest", L.DECIDUOUS: "forest", L.SHRUB: "grassland_high", L.CROP: "paddy", L.LAKE: "lake_reservoir",
    L.RIVER: "river", L.ROCK: "bare_rock", L.BUILT: "rural_settlement", L.ROAD: "other_built",
}


def _write_land_cover(tmp: Path, land: L.Landscape) -> None:
    """landcover.tif (uint8 class codes of L.CLASS_NAMES, nodata 255) and rivers.gpkg (centre lines)."""
    with rasterio.open(
        tmp / "landcover.tif", "w", driver="COG", width=land.n, height=land.n, count=1, dtype="uint8", crs=f"EPSG:{L.EPSG}",
        transform=L.grid_transform(land.n), nodata=255, compress="deflate", blocksize=256, overviews="NONE",
    ) as dst:
        dst.write(land.lc, 1)
        dst.update_tags(1, **{f"class_{i}": name for i, name in enumerate(L.CLASS_NAMES)})
    lines = [shapely.LineString([L.to_utm(u, v, land.size_m) for u, v in path]) for path in (L.RIVER_IN, L.RIVER_OUT)]
    grid = shapely.box(L.X0, L.Y0 - land.size_m, L.X0 + land.size_m, L.Y0)
    rivers = gpd.GeoDataFrame({"name": ["湔江 in", "湔江 out"]}, geometry=[ln.intersection(grid).difference(land.lake) for ln in lines], crs=L.EPSG)
    rivers.to_crs(ZONES_CRS).to_file(tmp / "rivers.gpkg", layer="rivers", driver="GPKG")


def rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of ``(seed, purpose[, index])``: ``purpose`` is one of LANDSCAPE,
    EVENTS, CROPS, SCENE (the tests rebuild the generator's parts from these streams)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def acquisitions(p: Preset) -> list[SC.Acquisition]:
    """The scenes of a preset: every ``revisit_days``, alternating S2A on relative orbit 104
    (full tile) and S2B on relative orbit 61 (tile clipped by the swath edge)."""
    out = []
    day, i = p.first, 0
    while day <= p.last:
        odd = i % 2 == 1
        out.append(SC.Acquisition(i, day, "sentinel-2b" if odd else "sentinel-2a", 61 if odd else 104, clipped=odd))
        day += dt.timedelta(days=p.revisit_days)
        i += 1
    return out


# --- writers -----------------------------------------------------------------------------
def write_cog(path: Path, data: np.ndarray, res: float) -> None:
    """Write a single-band Cloud-Optimized GeoTIFF (EPSG:32648, nodata 0, deflate + predictor 2,
    256 px tiles; no overviews: the images are at most 320 px across)."""
    with rasterio.open(
        path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
        crs=f"EPSG:{L.EPSG}", transform=L.grid_transform(data.shape[0], res), nodata=0,
        compress="deflate", predictor=2, blocksize=256, overviews="NONE",
    ) as dst:
        dst.write(data, 1)


def _footprint(n: int, clipped: bool, line: tuple[tuple[float, float], tuple[float, float]] = SC.CORNER_LINE) -> tuple[dict, list[float]]:
    """Valid-data footprint (GeoJSON, EPSG:4326) and its bbox; clipped scenes lose the corner
    beyond ``line`` (east edge → south edge)."""
    size = n * L.RES
    (u0, v0), (u1, v1) = line
    uv = [(0, 0), (1, 0), (u0, v0), (u1, v1), (0, 1)] if clipped else [(0, 0), (1, 0), (1, 1), (0, 1)]
    to_ll = Transformer.from_crs(L.EPSG, 4326, always_xy=True)
    ring = [[round(c, 7) for c in to_ll.transform(*L.to_utm(u, v, size))] for u, v in uv]
    lons, lats = [c[0] for c in ring], [c[1] for c in ring]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, [min(lons), min(lats), max(lons), max(lats)]


def _write_vectors(tmp: Path, land: L.Landscape, events: list[E.Event]) -> None:
    """zones.gpkg, counties.gpkg (EPSG:4490) and truth.gpkg (EPSG:4326; areas in UTM m²)."""
    specs = {z.code: z for z in L.ZONES}
    codes = list(land.zones)
    zones = gpd.GeoDataFrame(
        {
            "HXBH": codes,
            "HXMC": [specs[c].name for c in codes],
            "STGN": [specs[c].function for c in codes],
            "XZQDM": [specs[c].county for c in codes],
        },
        geometry=list(land.zones.values()), crs=L.EPSG,
    )
    zones.to_crs(ZONES_CRS).to_file(tmp / "zones.gpkg", layer="hongxian", driver="GPKG")
    counties = gpd.GeoDataFrame(
        {"XZQDM": [c for c, _, _ in L.COUNTIES], "XZQMC": [name for _, name, _ in L.COUNTIES]},
        geometry=[land.counties[c] for c, _, _ in L.COUNTIES], crs=L.EPSG,
    )
    counties.to_crs(ZONES_CRS).to_file(tmp / "counties.gpkg", layer="xzq", driver="GPKG")
    union = shapely.union_all(list(land.zones.values()))
    rows = []
    for e in events:
        g = e.geometry
        inside = g.intersection(union).area
        overlap = {c: g.intersection(z).area for c, z in land.zones.items()}
        best = max(overlap, key=overlap.get)
        rows.append({
            "event_id": e.event_id, "type": e.type, "start_date": e.start.isoformat(), "area_m2": round(g.area, 1),
            "zone_id": best if overlap[best] > 0 else "", "in_zone": bool(inside >= 0.5 * g.area), "above_mmu": bool(inside >= MMU_M2),
            "stage_dates": ";".join(d.isoformat() for d, _ in e.stages), "geometry": g,
        })
    truth = gpd.GeoDataFrame(rows, geometry="geometry", crs=L.EPSG)
    truth.to_crs(TRUTH_CRS).to_file(tmp / "truth.gpkg", layer="events", driver="GPKG")


def _write_config(tmp: Path, p: Preset, root: Path) -> None:
    text = f"""# Scan configuration of the generated demo build (preset {p.name}); paths are relative to
# this file. stac.url is filled in by the caller when it starts the embedded STAC API.
name: demo-{p.name}
stac: {{url: null, profile: embedded, collections: [{ST.COLLECTION}], max_cloud_cover: 100}}
zones: {{path: zones.gpkg, layer: hongxian, id_field: HXBH, name_field: HXMC, category_field: STGN, admin_field: XZQDM}}
admin_units: {{path: counties.gpkg, layer: xzq, id_field: XZQDM, name_field: XZQMC}}
baseline: {{start: "{p.baseline[0]}", end: "{p.baseline[1]}"}}
monitor: {{start: "{p.monitor[0]}", end: "{p.monitor[1]}"}}
resolution: 10
detection: {{min_area_m2: {int(MMU_M2)}}}
assess:  # HJ 192-2015 EI per county (absolute paths, like the scenes' hrefs); no county table: EI itself is reported missing
  land_cover: {json.dumps(str(root / "landcover.tif"), ensure_ascii=False)}
  land_cover_classes: {{{", ".join(f"{k}: {v}" for k, v in LAND_COVER_CLASSES.items())}}}
  rivers: {json.dumps(str(root / "rivers.gpkg"), ensure_ascii=False)}
"""
    (tmp / "scan.yml").write_text(text, encoding="utf-8")


def _write_scene(tmp: Path, root: Path, r: SC.Rendered, acq: SC.Acquisition, n: int, centroid: tuple[float, float], line: tuple = SC.CORNER_LINE) -> dict:
    """Write one scene's COGs under ``tmp`` and return its Item (hrefs point into ``root``)."""
    iid = ST.item_id(acq.platform, ST.sensing_time(acq.date, acq.relative_orbit))
    folder = tmp / "cogs" / iid
    folder.mkdir(parents=True)
    data = {**{k: r.dn10[i] for i, k in enumerate(("blue", "green", "red", "nir"))}, "swir16": r.dn20[0], "swir22": r.dn20[1], "scl": r.scl}
    for key, arr in data.items():
        write_cog(folder / f"{key}.tif", arr, L.RES * n / arr.shape[0])
    footprint, bbox = _footprint(n, acq.clipped, line)
    item = ST.make_item(platform=acq.platform, relative_orbit=acq.relative_orbit, day=acq.date, scl=r.scl,
                        files={k: folder / f"{k}.tif" for k in data}, n=n, footprint=footprint, bbox=bbox,
                        centroid=centroid, version=GENERATOR_VERSION)
    for key, asset in item["assets"].items():  # the build is renamed into place: point there
        asset["href"] = (root / "cogs" / iid / f"{key}.tif").as_uri()
    return item


def _existing(root: Path, info: dict) -> DemoScenes | None:
    """The build already in ``root`` if it was made with the same preset, seed and version."""
    try:
        build = json.loads((root / "BUILD.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(build.get(k) != v for k, v in info.items()) or build.get("overcast_zones") != info.get("overcast_zones") or not (root / "items.json").is_file():
        return None
    return _paths(root, int(build["n_scenes"]))


def _generate(tmp: Path, root: Path, p: Preset, seed: int) -> int:
    """Generate everything into ``tmp`` (hrefs point to ``root``); returns the number of scenes."""
    n = p.size
    land = L.build_landscape(rng(seed, LANDSCAPE), n, p.zones)
    acqs = acquisitions(p)
    monitor_year = int(p.monitor[0][:4])
    cond = p.conditions
    corner = SC.nodata_corner(n, cond.corner_line)
    forbidden = ndimage.binary_dilation(corner, iterations=4)  # no event within 40 m of the swath edge
    events = E.place_events(rng(seed, EVENTS), land, p.events, [a.date for a in acqs if a.date.year == monitor_year], forbidden,
                            quarry_gap_days=cond.quarry_gap_days, series_start=acqs[0].date)
    jitter = {y: S.crop_jitter(rng(seed, CROPS, y), land.rotation.size) for y in sorted({a.date.year for a in acqs})}
    surface = SC.Surface(land, jitter, events, cond)
    centroid = Transformer.from_crs(L.EPSG, 4326, always_xy=True).transform(*L.to_utm(0.5, 0.5, n * L.RES))
    items = []
    for acq in acqs:
        rendered = SC.render(rng(seed, SCENE, acq.index), acq, surface, corner)
        items.append(_write_scene(tmp, root, rendered, acq, n, centroid, cond.corner_line))
    text = json.dumps({"type": "FeatureCollection", "features": items}, ensure_ascii=False, indent=1)
    (tmp / "items.json").write_text(text, encoding="utf-8")
    _, grid_bbox = _footprint(n, False)
    first, last = items[0]["properties"]["datetime"], items[-1]["properties"]["datetime"]
    collection = ST.make_collection(grid_bbox, first, last, p.name, seed, GENERATOR_VERSION)
    (tmp / "collection.json").write_text(json.dumps(collection, ensure_ascii=False, indent=1), encoding="utf-8")
    _write_vectors(tmp, land, events)
    _write_land_cover(tmp, land)
    _write_config(tmp, p, root)
    return len(items)


def generate_demo(
    out_dir: Path | str, *, preset: str = "demo", seed: int = 20230101, size: int | None = None,
    extra_events: tuple[E.EventRequest, ...] = (), overcast_zones: tuple[str, ...] = (), revisit_days: int | None = None,
) -> DemoScenes:
    """Write (or reuse) a deterministic demo build in ``out_dir``.

    Sentinel-2 L2A-like scenes as COGs on a UTM 48N grid (EPSG:32648, 10 m pixels, upper-left
    x = 400 000 m, y = 3 400 000 m): uint16 DN with reflectance = DN × 0.0001 − 0.1 (0–1) and
    nodata 0 for blue/green/red/nir (10 m) and swir16/swir22 (20 m), plus the SCL (uint8, 20 m);
    one STAC Item per date in Earth Search ``sentinel-2-c1-l2a`` conventions with absolute
    ``file://`` hrefs (``items.json``, ``collection.json``); red-line zones and counties
    (EPSG:4490), ground-truth disturbances (EPSG:4326, areas in m² measured in UTM), a scan
    config and ``BUILD.json``. If ``out_dir`` already holds a build of the same preset, seed and
    generator version it is returned as is.

    Parameters
    ----------
    out_dir
        Folder of the build: created, or replaced if it holds an older build. A non-empty
        folder that is not a build is refused (FileExistsError).
    preset
        ``demo`` (320 px, 2021–2023, 110 scenes), ``small`` (160 px, 2022–2023, 73 scenes) or
        ``hard`` (the demo size under harder conditions, for scoring: see :data:`PRESETS`).
    seed
        Seed of every random draw; the same seed gives the same pixels.
    size
        Grid edge in 10 m pixels instead of the preset's (benchmarks/ scale the area with it;
        zones and landscape scale with the grid, events keep their areas in m²).
    extra_events
        Event requests placed after the preset's (e.g. a road corridor, ``shape="line"``, or
        a quarry that existed before the first scene, ``preexisting=0.5``); none by default.
    overcast_zones
        Zone codes (HXBH) kept under thick cloud on every date of the monitor window (a zone
        that cannot be observed); default none, the preset's own scenes.
    revisit_days
        Days between scenes instead of the preset's 10 (benchmarks/memory.py scales the dates
        with it: 20 days halves them, 5 doubles them over the same years).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset {preset!r}; use one of: {', '.join(PRESETS)}")
    p = PRESETS[preset] if size is None else replace(PRESETS[preset], size=int(size))
    if revisit_days is not None:
        p = replace(p, revisit_days=int(revisit_days))
    if extra_events:
        p = replace(p, events=(*p.events, *extra_events))
    if overcast_zones:
        p = replace(p, conditions=replace(p.conditions, overcast_zones=tuple(overcast_zones), overcast_from=dt.date.fromisoformat(p.monitor[0])))
    root = Path(out_dir).expanduser().resolve()
    info = {"preset": preset, "seed": int(seed), "generator_version": GENERATOR_VERSION}
    if size is not None:
        info["size_px"] = int(size)
    if revisit_days is not None:
        info["revisit_days"] = int(revisit_days)
    if extra_events:
        info["extra_events"] = [repr(e) for e in extra_events]
    if overcast_zones:
        info["overcast_zones"] = list(overcast_zones)
    found = _existing(root, info)
    if found is not None:
        return found
    if root.exists() and any(root.iterdir()) and not (root / "BUILD.json").exists():
        raise FileExistsError(f"{root}: folder exists and is not a demo build; give an empty or new folder")
    with replaced_folder(root, label="building") as tmp:
        n_scenes = _generate(tmp, root, p, int(seed))
        sha = hashlib.sha256((tmp / "items.json").read_bytes()).hexdigest()
        build = {**info, "n_scenes": n_scenes, "items_sha256": sha, "first": p.first.isoformat(), "last": p.last.isoformat(),
                 "grid": {"epsg": L.EPSG, "x0": L.X0, "y0": L.Y0, "res_m": L.RES, "size_px": p.size}}
        (tmp / "BUILD.json").write_text(json.dumps(build, indent=1), encoding="utf-8")
    return _paths(root, n_scenes)
