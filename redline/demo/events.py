"""Disturbances of the monitor year: placement, growth and spectral change.

An event is a polygon in the UTM grid (EPSG:32648, metres), a type, a start date (the first
acquisition on which the change is visible) and, from that date on, a per-pixel change of
surface reflectance (0–1). Events are placed by rejection sampling with the seeded generator on
land cover that suits their type, inside or outside the zones as requested, never overlapping
each other (≥ 40 m apart) and never in the no-data corner of the second orbit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import shapely

from redline.demo import landscape as L
from redline.demo import spectra as S

TYPES = ("clearing", "construction", "mining", "fire", "water_loss")

#: Land-cover classes an event of each type may start from.
SOURCE_CLASSES = {
    "clearing": L.FOREST,
    "construction": (L.SHRUB, L.CROP),
    "mining": L.FOREST,
    "fire": (*L.FOREST, L.SHRUB),
    "water_loss": (L.LAKE,),
}

#: Cover a linear corridor (a road) may cut: any vegetated class.
LINE_SOURCES = (*L.FOREST, L.SHRUB, L.CROP)
LINE_WIDTH_M = (25.0, 35.0)  # road corridor incl. cut slopes and shoulders, metres

MIN_GAP_M = 40.0  # between events, so that their alert patches cannot merge
MAX_TRIES = 400


@dataclass(frozen=True)
class EventRequest:
    """``count`` events of ``type`` with an area in ``area_m2`` (m², in UTM), starting in the
    months ``months`` (inclusive) of the monitor year, inside a zone or outside every zone."""

    type: str
    count: int
    inside: bool
    area_m2: tuple[float, float]
    months: tuple[int, int] = (3, 10)
    #: "blob" (default) or "line": a straight corridor 25–35 m wide (a road or a track built
    #: through the landscape; any vegetated cover may be cut).
    shape: str = "blob"
    #: mining only: share of the final extent already quarried before the first scene (an
    #: existing pit that grows in the monitor year: a 规模扩大 case); 0 = a new pit.
    preexisting: float = 0.0


@dataclass(frozen=True)
class Event:
    """A placed event. ``stages`` are the growing extents (UTM) with their first dates; the
    last stage is the final extent. Only mining has more than one stage."""

    event_id: str
    type: str
    stages: tuple[tuple[dt.date, shapely.Geometry], ...]

    @property
    def start(self) -> dt.date:
        return self.stages[0][0]

    @property
    def geometry(self) -> shapely.Geometry:
        return self.stages[-1][1]


def _blob(rng: np.random.Generator, cx: float, cy: float, area: float, angular: bool) -> shapely.Polygon:
    """An irregular polygon of ``area`` m² centred near (cx, cy): a jittered rotated rectangle
    for man-made changes (``angular``), a lobed ellipse for natural ones."""
    aspect = rng.uniform(1.0, 2.2)
    angle = rng.uniform(0, 180)
    if angular:
        w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
        pts = np.array([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)])
        pts += rng.uniform(-0.08, 0.08, pts.shape) * np.array([w, h])
    else:
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        k = np.arange(2, 5)
        r = 1 + (rng.uniform(0, 0.12, k.size)[None] * np.cos(k[None] * t[:, None] + rng.uniform(0, 2 * np.pi, k.size)[None])).sum(1)
        pts = np.stack([r * np.cos(t) * np.sqrt(aspect), r * np.sin(t) / np.sqrt(aspect)], 1)
    poly = shapely.affinity.rotate(shapely.Polygon(pts), angle, origin=(0, 0))
    poly = shapely.affinity.scale(poly, np.sqrt(area / poly.area), np.sqrt(area / poly.area), origin=(0, 0))
    return shapely.affinity.translate(poly, cx, cy)


def _stage_geometries(rng: np.random.Generator, final: shapely.Polygon, n: int) -> list[shapely.Geometry]:
    """A pit that grows outward from one face: ``n`` nested extents of ~40 %, 70 %, 100 %."""
    c = np.asarray(final.centroid.coords[0])
    v = np.asarray(final.exterior.coords[int(rng.integers(len(final.exterior.coords) - 1))])
    anchor = c + 0.45 * (v - c)
    shares = (0.4, 0.7, 1.0) if n == 3 else (0.5, 1.0)
    return [shapely.affinity.scale(final, np.sqrt(s), np.sqrt(s), origin=tuple(anchor)).intersection(final) for s in shares[:-1]] + [final]


def _stratified_dates(rng: np.random.Generator, dates: list[dt.date], count: int) -> list[dt.date]:
    """``count`` dates spread over ``dates``: one from each of ``count`` consecutive chunks."""
    chunks = np.array_split(np.arange(len(dates)), count)
    return [dates[int(rng.choice(c))] for c in chunks]


class _Placer:
    """Rejection sampler for event polygons on a landscape.

    Events inside zones are spread over the zones: a zone is drawn with a weight of its suitable
    area divided by (1 + events it already holds)², then a centre pixel within it."""

    def __init__(self, land: L.Landscape, forbidden: np.ndarray) -> None:
        self.land = land
        self.zone_union = shapely.union_all(list(land.zones.values()))
        self.zone_px = {code: L.coverage(g, land.n) > 0.99 for code, g in land.zones.items()}
        self.outside_px = L.coverage(self.zone_union, land.n) == 0
        self.forbidden = forbidden
        self.placed: list[shapely.Geometry] = []
        self.per_zone = {code: 0 for code in land.zones}

    @staticmethod
    def _sources(req: EventRequest) -> tuple:
        return LINE_SOURCES if req.shape == "line" else SOURCE_CLASSES[req.type]

    def _pools(self, req: EventRequest) -> dict[str, np.ndarray]:
        """Candidate centre pixels (flat indices) per zone, or under key "" outside zones."""
        ok = np.isin(self.land.lc, self._sources(req)) & ~self.forbidden
        if not req.inside:
            return {"": np.flatnonzero(ok & self.outside_px)}
        pools = {code: np.flatnonzero(ok & m) for code, m in self.zone_px.items()}
        return {code: px for code, px in pools.items() if px.size >= 20}

    def _accept(self, poly: shapely.Geometry, req: EventRequest, zone: str) -> bool:
        if poly.is_empty or not (req.area_m2[0] <= poly.area <= req.area_m2[1]):
            return False
        if any(poly.distance(p) < MIN_GAP_M for p in self.placed):
            return False
        if req.inside and not poly.within(self.land.zones[zone].buffer(-10.0)):
            return False
        if not req.inside and poly.distance(self.zone_union) < 60.0:
            return False
        cov = L.coverage(poly, self.land.n)
        if (cov * self.forbidden).sum() > 0:
            return False
        suits = np.isin(self.land.lc, self._sources(req))
        return float((cov * suits).sum() / cov.sum()) >= 0.9

    def _shape(self, rng: np.random.Generator, req: EventRequest, x: float, y: float) -> shapely.Geometry | None:
        area = rng.uniform(*req.area_m2)
        if req.shape == "line":
            width = rng.uniform(*LINE_WIDTH_M)
            length = area / width
            line = shapely.box(-length / 2, -width / 2, length / 2, width / 2)
            return shapely.affinity.translate(shapely.affinity.rotate(line, rng.uniform(0, 180), origin=(0, 0)), x, y)
        if req.type != "water_loss":
            return _blob(rng, x, y, area, angular=req.type in ("clearing", "construction"))
        # a stretch of shore dries out: a blob centred near the shore, clipped to the lake
        if shapely.Point(x, y).distance(self.land.lake.exterior) > 0.6 * np.sqrt(area):
            return None
        poly = _blob(rng, x, y, area * 1.8, angular=False).intersection(self.land.lake.buffer(-5.0))
        return max(getattr(poly, "geoms", [poly]), key=lambda p: p.area) if not poly.is_empty else None

    def place(self, rng: np.random.Generator, req: EventRequest) -> tuple[shapely.Geometry, str]:
        """Place one event; returns its polygon (UTM) and zone code ("" outside zones)."""
        pools = self._pools(req)
        if not pools or all(px.size == 0 for px in pools.values()):
            raise RuntimeError(f"no room for a {req.type} event ({'inside' if req.inside else 'outside'} zones)")
        codes = sorted(pools)
        weights = np.array([pools[c].size / (1 + self.per_zone.get(c, 0)) ** 2 for c in codes], dtype="float64")
        for _ in range(MAX_TRIES):
            zone = codes[int(rng.choice(len(codes), p=weights / weights.sum()))]
            r, c = divmod(int(rng.choice(pools[zone])), self.land.n)
            x, y = L.X0 + (c + 0.5) * L.RES, L.Y0 - (r + 0.5) * L.RES
            poly = self._shape(rng, req, x, y)
            if poly is not None and self._accept(poly, req, zone):
                self.placed.append(poly)
                if zone:
                    self.per_zone[zone] += 1
                return poly, zone
        raise RuntimeError(f"could not place a {req.type} event of {req.area_m2} m² after {MAX_TRIES} tries; try another seed")


def place_events(
    rng: np.random.Generator,
    land: L.Landscape,
    requests: tuple[EventRequest, ...],
    monitor_dates: list[dt.date],
    forbidden: np.ndarray,
    *,
    quarry_gap_days: tuple[float, float] = (40.0, 75.0),
    series_start: dt.date | None = None,
) -> list[Event]:
    """Place the requested events; ids E01, E02, … in request order.

    ``monitor_dates`` are the acquisition dates of the monitor year; each event starts on one
    of them (so the truth date is the first date the change is visible). ``forbidden`` marks
    pixels where no event may fall (the no-data corner). A mining request with ``preexisting``
    > 0 gets a first stage of that share of its extent dated ``series_start`` (the first scene)."""
    placer = _Placer(land, forbidden)
    events: list[Event] = []
    for req in requests:
        window = [d for d in monitor_dates if req.months[0] <= d.month <= req.months[1]]
        for start in _stratified_dates(rng, window, req.count):
            final, _ = placer.place(rng, req)
            if req.type == "mining" and req.preexisting > 0:
                c = np.asarray(final.centroid.coords[0])
                v = np.asarray(final.exterior.coords[int(rng.integers(len(final.exterior.coords) - 1))])
                k = np.sqrt(req.preexisting)  # the pit grows outward from one face, as _stage_geometries
                pit = shapely.affinity.scale(final, k, k, origin=tuple(c + 0.45 * (v - c))).intersection(final)
                stages = ((series_start or monitor_dates[0], pit), (start, final))
            elif req.type == "mining":
                later = [d for d in monitor_dates if d > start]
                steps = [start]
                for gap in rng.uniform(*quarry_gap_days, 2):
                    nxt = [d for d in later if (d - steps[-1]).days >= gap]
                    if nxt:
                        steps.append(nxt[0])
                geoms = _stage_geometries(rng, final, len(steps))
                stages = tuple(zip(steps, geoms, strict=True))
            else:
                stages = ((start, final),)
            events.append(Event(f"E{len(events) + 1:02d}", req.type, stages))
    return events


# --- spectral change --------------------------------------------------------------------
def _growing(doy: float) -> float:
    """Share (0–1) of the growing season's regrowth rate on ``doy`` (slow in winter)."""
    return 0.2 + 0.8 * S.double_logistic(doy, 95, 12, 300, 12)


def disturbed_spectrum(kind: str, days: int, doy: float, *, fire_regrowth: tuple[float, float] = (0.30, 200.0)) -> np.ndarray:
    """Surface reflectance (6,) of a disturbed pixel ``days`` days after the event started.

    clearing     forest → bare soil with a little weed regrowth (NDVI ≈ 0.2–0.3, BSI high)
    construction bare earthworks for ~6 weeks, then concrete/roofs take over (NDBI > 0)
    mining       fresh limestone, bright in all bands (0.26–0.40)
    fire         char (NBR < 0), then partial regrowth (green cover → ``fire_regrowth[0]`` with an
                 e-folding time of ``fire_regrowth[1]`` days; by default ≤ ~0.3 after a year)
    water_loss   wet mud drying out, weeds later (MNDWI < 0 from the first date)
    """
    g = _growing(doy)
    if kind == "clearing":
        f = 0.03 + 0.12 * (1 - np.exp(-days / 180.0)) * g
        return f * S.GREEN_GRASS + (1 - f) * S.SOIL
    if kind == "construction":
        built = float(np.clip((days - 42) / 60.0, 0, 0.85))
        return built * S.CONCRETE + (1 - built) * S.SOIL
    if kind == "mining":
        return S.BRIGHT_ROCK.copy()
    if kind == "fire":
        ceiling, tau = fire_regrowth
        f = ceiling * (1 - np.exp(-days / tau)) * g
        ash = 0.4 * (1 - np.exp(-days / 150.0))  # char weathers to litter-grey
        back = (1 - ash) * S.CHAR + ash * S.LITTER
        return f * S.GREEN_GRASS + (1 - f) * back
    if kind == "water_loss":
        wet = 0.35 * np.exp(-days / 20.0)
        weeds = 0.15 * (1 - np.exp(-days / 120.0)) * g
        return wet * S.WATER_CLEAR + weeds * S.GREEN_GRASS + (1 - wet - weeds) * S.MUD
    raise ValueError(f"unknown disturbance type {kind!r}")
