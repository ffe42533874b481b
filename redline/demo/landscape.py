"""The demo landscape: grid, land cover, red-line zones and counties.

Grid: UTM zone 48N (EPSG:32648), square pixels of :data:`RES` metres, upper-left corner at
x = 400 000 m, y = 3 400 000 m (~103.96° E, 30.73° N: the Longmenshan front between Dujiangyan
and Pengzhou, Sichuan). Row 0 is the northern edge.

The *skeleton* (where the mountains, the plain, the lake, the river, the village and the zones
lie) is given in fractions of the grid edge (u = east, v = south, both 0–1) so that both presets
share one geography at different sizes; it does not depend on the seed. Everything stochastic
(forest-type mosaic, field parcels, textures) is drawn from the seeded generator. Zone and
county geometries are in UTM metres until they are written.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from rasterio.transform import Affine
from scipy import ndimage

from redline.demo import spectra as S

# --- grid --------------------------------------------------------------------------------
EPSG = 32648
X0, Y0 = 400000.0, 3400000.0
RES = 10.0  # metres per 10 m pixel

# --- land-cover classes --------------------------------------------------------------------
EVERGREEN, DECIDUOUS, SHRUB, CROP, LAKE, RIVER, ROCK, BUILT, ROAD = range(9)
CLASS_NAMES = ("evergreen_forest", "deciduous_forest", "shrub_grass", "cropland", "lake", "river", "rock", "built_up", "road")
FOREST = (EVERGREEN, DECIDUOUS)
WATER = (LAKE, RIVER)

#: (green end-member, background end-member) per class.
END_MEMBERS = {
    EVERGREEN: (S.EVERGREEN_CANOPY, S.LITTER),
    DECIDUOUS: (S.GREEN_LEAF, S.LITTER),
    SHRUB: (S.GREEN_GRASS, S.DRY_GRASS),
    CROP: (S.GREEN_LEAF, S.SOIL),
    LAKE: (S.GREEN_LEAF, S.WATER_CLEAR),
    RIVER: (S.GREEN_LEAF, S.WATER_TURBID),
    ROCK: (S.GREEN_GRASS, S.ROCK),
    BUILT: (S.GREEN_LEAF, S.CONCRETE),
    ROAD: (S.GREEN_GRASS, S.ASPHALT),
}


# --- skeleton (fractions of the grid edge; u east, v south) -------------------------------
def county_boundary_u(v: np.ndarray) -> np.ndarray:
    """County boundary u(v): a ridge line running roughly north–south."""
    return 0.47 + 0.05 * v + 0.02 * np.sin(2 * np.pi * 1.3 * v + 0.5)


def plain_edge_v(u: np.ndarray) -> np.ndarray:
    """Northern edge of the plain v(u); south of it lies cropland."""
    return 0.74 + 0.04 * np.sin(2 * np.pi * 1.1 * u + 1.0)


#: Counties: code, name, side of the boundary (west: Dujiangyan, east: Pengzhou).
COUNTIES = (("510181", "都江堰市", "west"), ("510182", "彭州市", "east"))

LAKE_CENTRE, LAKE_AXES, LAKE_ROTATION = (0.70, 0.38), (0.15, 0.06), -25.0  # degrees, counter-clockwise on the map
RIVER_IN = ((0.60, -0.02), (0.63, 0.12), (0.58, 0.24), (0.585, 0.35))
RIVER_OUT = ((0.82, 0.44), (0.80, 0.60), (0.74, 0.78), (0.70, 1.02))
ROADS = (
    ((-0.02, 0.80), (0.15, 0.82), (0.30, 0.855), (0.50, 0.83), (0.70, 0.82), (1.02, 0.84)),
    ((0.74, 0.82), (0.80, 0.72), (0.86, 0.60), (0.855, 0.47)),
)
VILLAGES = ((0.28, 0.87, 0.06, 0.035), (0.22, 0.24, 0.018, 0.014))  # (u, v, semi-axis u, semi-axis v)
HILLS = ((0.60, 0.62, 0.09, 0.06), (0.63, 0.875, 0.08, 0.065))  # grass-covered hills (zone 4)
ENCLAVE = (0.22, 0.24, 0.05, 0.04)  # farmland and hamlet carved out of zone 1


@dataclass(frozen=True)
class ZoneSpec:
    """One red-line zone of the skeleton (fractions of the grid edge)."""

    code: str  # HXBH
    name: str  # HXMC
    function: str  # STGN (生态功能)
    county: str  # XZQDM
    outline: tuple[tuple[float, float], ...] = ()  # polygon vertices (u, v), or
    ellipses: tuple[tuple[float, float, float, float], ...] = ()  # parts (u, v, au, av), or
    lake_shore_m: float = 0.0  # the lake plus a shore belt this wide (metres at the demo size)
    holes: tuple[tuple[float, float, float, float], ...] = ()  # ellipses cut out


ZONES = (
    ZoneSpec("510181-HX-0001", "龙门山水源涵养生态保护红线", "水源涵养", "510181",
             outline=((0.03, 0.03), (0.44, 0.02), (0.455, 0.28), (0.41, 0.48), (0.20, 0.51), (0.03, 0.47)), holes=(ENCLAVE,)),
    ZoneSpec("510181-HX-0002", "青城山生物多样性维护生态保护红线", "生物多样性维护", "510181",
             outline=((0.03, 0.55), (0.38, 0.545), (0.47, 0.63), (0.38, 0.76), (0.04, 0.74))),
    ZoneSpec("510182-HX-0003", "湔江湖滨湿地水源涵养生态保护红线", "水源涵养", "510182", lake_shore_m=170.0),
    ZoneSpec("510182-HX-0004", "白鹿山水土保持生态保护红线", "水土保持", "510182", ellipses=HILLS),
    ZoneSpec("510182-HX-0005", "银厂沟生物多样性维护生态保护红线", "生物多样性维护", "510182",
             outline=((0.74, 0.02), (0.98, 0.02), (0.98, 0.24), (0.86, 0.27), (0.75, 0.17))),
    # Only in the ``hard`` preset: a zone on the irrigated plain, mostly double-crop cropland, so
    # that crop cycles (and their jittered dates) lie inside a zone.
    ZoneSpec("510181-HX-0006", "都江堰灌区水土保持生态保护红线", "水土保持", "510181",
             outline=((0.05, 0.88), (0.20, 0.875), (0.25, 0.97), (0.05, 0.975))),
)


# --- geometry helpers --------------------------------------------------------------------
def grid_transform(n: int, res: float = RES) -> Affine:
    """Affine transform of an ``n``-pixel-square grid at ``res`` metres (EPSG:32648)."""
    return Affine(res, 0.0, X0, 0.0, -res, Y0)


def to_utm(u: float, v: float, size_m: float) -> tuple[float, float]:
    """Fraction coordinates → UTM metres."""
    return X0 + u * size_m, Y0 - v * size_m


def ellipse(u: float, v: float, au: float, av: float, size_m: float, rotation: float = 0.0) -> shapely.Polygon:
    """Ellipse with semi-axes ``au``, ``av`` (fractions) rotated by ``rotation`` degrees."""
    cx, cy = to_utm(u, v, size_m)
    circle = shapely.Point(cx, cy).buffer(1.0, quad_segs=24)
    e = shapely.affinity.scale(circle, au * size_m, av * size_m)
    return shapely.affinity.rotate(e, rotation, origin=(cx, cy))


def naturalize(geom: shapely.Geometry, amp_m: float, key: str, spacing_m: float = 15.0) -> shapely.Geometry:
    """Give straight or elliptic outlines a natural wiggle: every ring is densified and its
    vertices are pushed along the normal by a smooth periodic noise of amplitude ``amp_m``
    metres. The noise depends only on ``key`` (CRC-32), not on the seed."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))

    def ring(coords: np.ndarray) -> np.ndarray:
        pts = coords[:-1]
        seg = np.linalg.norm(np.diff(coords, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
        k = np.arange(2, 12)
        amp = rng.normal(0, 1, k.size) / k**0.9
        phase = rng.uniform(0, 2 * np.pi, k.size)
        d = (amp[None] * np.sin(2 * np.pi * k[None] * s[:, None] + phase[None])).sum(1)
        d *= amp_m / (np.abs(d).max() + 1e-9)
        nxt, prv = np.roll(pts, -1, 0), np.roll(pts, 1, 0)
        tangent = nxt - prv
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1) / (np.linalg.norm(tangent, axis=1)[:, None] + 1e-9)
        out = pts + normal * d[:, None]
        return np.vstack([out, out[:1]])

    def poly(p: shapely.Polygon) -> shapely.Geometry:
        p = shapely.segmentize(p, spacing_m)
        shell = ring(np.asarray(p.exterior.coords))
        holes = [ring(np.asarray(h.coords)) for h in p.interiors]
        return shapely.make_valid(shapely.Polygon(shell, holes)).buffer(0)

    parts = [poly(p) for p in getattr(geom, "geoms", [geom])]
    return shapely.union_all(parts).simplify(2.0)


def county_geometries(size_m: float) -> dict[str, shapely.Polygon]:
    """The two counties (UTM) split by :func:`county_boundary_u`, keyed by XZQDM."""
    v = np.linspace(-0.05, 1.05, 60)
    line = [to_utm(float(u), float(vv), size_m) for u, vv in zip(county_boundary_u(v), v, strict=True)]
    x_w, x_e = X0 - 0.1 * size_m, X0 + 1.1 * size_m
    y_n, y_s = line[0][1], line[-1][1]
    sides = {
        "west": shapely.Polygon([(x_w, y_n), *line, (x_w, y_s)]),
        "east": shapely.Polygon([(x_e, y_n), *line, (x_e, y_s)]),
    }
    grid = shapely.box(X0, Y0 - size_m, X0 + size_m, Y0)
    return {code: shapely.make_valid(sides[side]).intersection(grid) for code, _, side in COUNTIES}


def lake_geometry(size_m: float) -> shapely.Polygon:
    """The reservoir (UTM), an elongated ellipse with a wiggly shore."""
    e = ellipse(*LAKE_CENTRE, *LAKE_AXES, size_m, rotation=LAKE_ROTATION)
    return naturalize(e, 0.012 * size_m, "lake")


def river_geometry(size_m: float) -> shapely.Geometry:
    """The river entering and leaving the lake (UTM polygon, 24 m wide)."""
    lines = [shapely.LineString([to_utm(u, v, size_m) for u, v in path]) for path in (RIVER_IN, RIVER_OUT)]
    return shapely.union_all([shapely.segmentize(line, 20.0).buffer(12.0) for line in lines])


def road_geometry(size_m: float) -> shapely.Geometry:
    """Roads (UTM polygon, 10 m wide)."""
    lines = [shapely.LineString([to_utm(u, v, size_m) for u, v in path]) for path in ROADS]
    return shapely.union_all([line.buffer(5.0) for line in lines])


def zone_geometries(codes: tuple[str, ...], size_m: float) -> dict[str, shapely.Geometry]:
    """Red-line zones (UTM) of the preset: natural outlines, clipped to their county, not
    overlapping (a later zone yields 20 m to an earlier one)."""
    counties = county_geometries(size_m)
    lake = lake_geometry(size_m)
    scale = size_m / 3200.0  # shore belts are given at the demo size
    out: dict[str, shapely.Geometry] = {}
    taken = shapely.Polygon()
    for z in (z for z in ZONES if z.code in codes):
        if z.outline:
            g = naturalize(shapely.Polygon([to_utm(u, v, size_m) for u, v in z.outline]), 0.025 * size_m, z.code)
        elif z.ellipses:
            g = shapely.MultiPolygon([naturalize(ellipse(*e, size_m), 0.01 * size_m, f"{z.code}-{i}") for i, e in enumerate(z.ellipses)])
        else:
            g = naturalize(lake.buffer(z.lake_shore_m * scale), 0.01 * size_m, z.code)
        for i, h in enumerate(z.holes):
            g = g.difference(naturalize(ellipse(*h, size_m), 0.006 * size_m, f"{z.code}-hole-{i}"))
        g = g.intersection(counties[z.county].buffer(-10.0)).difference(taken.buffer(20.0))
        g = shapely.make_valid(g)
        polys = [p for p in getattr(g, "geoms", [g]) if isinstance(p, shapely.Polygon) and p.area > 500.0]
        g = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
        out[z.code] = g
        taken = taken.union(g)
    return out


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with features ~``scale_px`` pixels across.

    White noise on a coarse grid, lightly smoothed and cubic-upsampled (much faster than a wide
    Gaussian filter on the full grid)."""
    h, w = shape
    f = max(scale_px / 2.0, 1.0)
    ch, cw = int(np.ceil(h / f)) + 4, int(np.ceil(w / f)) + 4
    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 1.0, mode="wrap")
    fine = ndimage.zoom(coarse, f, order=3, mode="grid-wrap", grid_mode=True)[:h, :w]
    return ((fine - fine.mean()) / (fine.std() + 1e-9)).astype("float32")


def coverage(geom: shapely.Geometry, n: int, res: float = RES, factor: int = 4) -> np.ndarray:
    """Fraction (0–1, float32) of each pixel of the ``n``×``n`` grid covered by ``geom`` (UTM),
    estimated on a grid ``factor`` times finer."""
    if geom.is_empty:
        return np.zeros((n, n), dtype="float32")
    m = n * factor
    fine = rasterio.features.rasterize([geom], out_shape=(m, m), transform=grid_transform(m, res / factor), dtype="uint8")
    return fine.reshape(n, factor, n, factor).mean(axis=(1, 3), dtype="float32")


@dataclass(frozen=True)
class Landscape:
    """The static landscape on an ``n``×``n`` grid of 10 m pixels (EPSG:32648).

    Arrays are (rows, cols) with row 0 north; reflectances are surface reflectance 0–1."""

    n: int
    size_m: float
    lc: np.ndarray  # uint8 class (see CLASS_NAMES)
    field: np.ndarray  # int32 field index, −1 off cropland
    rotation: np.ndarray  # int8 crop rotation per field (index into S.ROTATIONS)
    green_em: np.ndarray  # (6, n, n) green end-member per pixel
    back_em: np.ndarray  # (6, n, n) background end-member per pixel
    brightness: np.ndarray  # (n, n) multiplicative texture and terrain shading (~0.85–1.15)
    green_offset: np.ndarray  # (n, n) canopy-density offset of the green fraction (±0.06)
    elevation: np.ndarray  # (n, n) relative elevation 0–1 (north and west high)
    lake: shapely.Geometry  # UTM
    zones: dict[str, shapely.Geometry]  # UTM, by HXBH
    counties: dict[str, shapely.Geometry]  # UTM, by XZQDM


def _field_parcels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, int]:
    """Partition the grid into rectangular parcels: rows 40–90 m high, each cut into fields
    60–180 m long (plot sizes of the Chengdu plain). Returns field index per pixel, count."""
    rows = np.cumsum(rng.uniform(40, 90, n))  # metres from the top
    row_of = np.searchsorted(rows, (np.arange(n) + 0.5) * RES)
    field = np.empty((n, n), dtype="int32")
    count = 0
    for r in range(row_of.max() + 1):
        cuts = np.cumsum(rng.uniform(60, 180, n))
        col_of = np.searchsorted(cuts, (np.arange(n) + 0.5) * RES)
        field[row_of == r] = count + col_of[None, :]
        count += int(col_of.max()) + 1
    return field, count


def _elevation(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Relative elevation 0–1: Longmenshan front rising to the north-west, flat plain."""
    plain = v > plain_edge_v(u)
    e = 0.65 * (1 - v) + 0.20 * (1 - u) + 0.10 * smooth_noise(rng, (n, n), 400 / RES) + 0.04 * smooth_noise(rng, (n, n), 100 / RES)
    e = np.where(plain, 0.05 + 0.01 * e, e)
    return ((e - e.min()) / (e.max() - e.min())).astype("float32")


def _cover(
    rng: np.random.Generator, n: int, size_m: float, elev: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, shapely.Geometry]:
    """Land-cover class map (uint8, n × n) and the lake polygon (UTM)."""
    lc = np.full((n, n), EVERGREEN, dtype="uint8")
    # deciduous stands are commoner on lower slopes
    decid = smooth_noise(rng, (n, n), 250 / RES) + 1.5 * (0.55 - elev)
    lc[decid > 0.55] = DECIDUOUS
    lc[smooth_noise(rng, (n, n), 150 / RES) > 1.5] = SHRUB  # meadows in the forest
    ridge = elev > np.quantile(elev, 0.93)
    lc[ridge] = SHRUB
    lc[ridge & (smooth_noise(rng, (n, n), 60 / RES) > 0.4)] = ROCK
    pe = plain_edge_v(u)
    belt = (v > pe - 0.07 + 0.02 * smooth_noise(rng, (n, n), 150 / RES)) & (v <= pe)
    lc[belt & (smooth_noise(rng, (n, n), 100 / RES) < 0.6)] = SHRUB
    lc[v > pe] = CROP
    enclave = coverage(ellipse(*ENCLAVE, size_m), n) > 0.5
    lc[enclave] = CROP
    for h in HILLS:
        hill = coverage(ellipse(h[0], h[1], h[2] * 1.15, h[3] * 1.15, size_m), n) > 0.5
        lc[hill] = np.where(smooth_noise(rng, (n, n), 80 / RES)[hill] > 1.2, DECIDUOUS, SHRUB)
    for vil in VILLAGES:
        g = naturalize(ellipse(*vil, size_m), 0.006 * size_m, f"village-{vil}")
        lc[coverage(g, n) > 0.5] = BUILT
    lc[coverage(road_geometry(size_m), n) > 0.45] = ROAD
    lake = lake_geometry(size_m)
    lc[coverage(lake.buffer(25.0), n) > 0.5] = SHRUB  # wet meadow on the shore
    lc[coverage(lake, n) > 0.5] = LAKE
    lc[coverage(river_geometry(size_m).difference(lake), n) > 0.45] = RIVER
    return lc, lake


def _end_members(lc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = lc.shape[0]
    green = np.empty((6, n, n), dtype="float32")
    back = np.empty((6, n, n), dtype="float32")
    for k, (g, b) in END_MEMBERS.items():
        m = lc == k
        green[:, m] = g[:, None]
        back[:, m] = b[:, None]
    return green, back


def _brightness(rng: np.random.Generator, elev: np.ndarray, n: int) -> np.ndarray:
    """Multiplicative texture: canopy/soil variation (±5 %) and terrain shading for a sun in
    the south-east (±8 % on the steepest slopes)."""
    gy, gx = np.gradient(elev * 60.0)  # exaggerated relief, unitless slopes
    shade = np.clip(0.5 * (gx - gy) / (np.hypot(gx, gy).max() + 1e-9), -1, 1)  # faces south-east brighter
    tex = 0.035 * smooth_noise(rng, (n, n), 200 / RES) + 0.02 * smooth_noise(rng, (n, n), 2.0)
    return (1.0 + tex + 0.08 * shade).astype("float32")


def build_landscape(rng: np.random.Generator, n: int, zone_codes: tuple[str, ...]) -> Landscape:
    """Draw the landscape of an ``n``-pixel grid (10 m) with the given zones."""
    size_m = n * RES
    v, u = (np.mgrid[0:n, 0:n].astype("float32") + 0.5) / n
    elev = _elevation(rng, u, v, n)
    lc, lake = _cover(rng, n, size_m, elev, u, v)
    parcels, n_fields = _field_parcels(rng, n)
    rotation = rng.choice(len(S.ROTATIONS), size=n_fields, p=S.ROTATION_SHARES).astype("int8")
    field = np.where(lc == CROP, parcels, -1).astype("int32")
    green_em, back_em = _end_members(lc)
    green_offset = np.where(np.isin(lc, (LAKE, RIVER, ROAD)), 0.0, 0.04 * smooth_noise(rng, (n, n), 3.0)).astype("float32")
    return Landscape(
        n=n, size_m=size_m, lc=lc, field=field, rotation=rotation, green_em=green_em, back_em=back_em,
        brightness=_brightness(rng, elev, n), green_offset=green_offset, elevation=elev, lake=lake,
        zones=zone_geometries(zone_codes, size_m), counties=county_geometries(size_m),
    )


def class_fractions(doy: float) -> np.ndarray:
    """Green-cover fraction (0–1) of each non-crop class on day-of-year ``doy`` (index = class)."""
    f = np.zeros(len(CLASS_NAMES), dtype="float32")
    f[EVERGREEN] = S.evergreen_fraction(doy)
    f[DECIDUOUS] = S.deciduous_fraction(doy)
    f[SHRUB] = S.shrub_fraction(doy)
    f[ROCK] = S.rock_fraction(doy)
    f[BUILT] = S.village_fraction(doy)
    f[ROAD] = 0.03
    return f
