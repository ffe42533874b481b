"""One acquisition of the demo landscape: surface, disturbances, atmosphere, SCL and DN.

Reflectances are surface reflectance (0–1) on the 10 m grid (EPSG:32648, row 0 north); the
20 m bands and the SCL are 2×2 block aggregates of it (same extent, half the pixel count).
Encoding follows Earth Search ``sentinel-2-c1-l2a``: uint16 DN = round((ρ + 0.1) / 0.0001),
clipped to 1…65535, 0 = no data.

The atmosphere is what makes a detector's life hard:

* **cloud fraction** per date from a monthly climatology of the cloudy Sichuan basin edge
  (:data:`CLOUD_CLIMATE`): about a third of the dates nearly clear, 40–50 % 70–100 % cloudy,
  more in the June–October monsoon;
* **clouds** are thresholded multi-scale noise with soft edges, blended over the surface by
  their opacity with a bright, spectrally flat top (0.3–0.7);
* **shadows** are the opacity field shifted by a fixed sun–cloud offset
  (:data:`SHADOW_OFFSET_PX`, towards the north-west for a morning sun in the south-east) and
  darken the surface ×0.3–0.5 (with a little blue skylight);
* **thin cirrus** on some dates (SCL 10), **snow** on the high ridge on a few winter dates
  (SCL 11), a per-date residual haze and gain, and per-pixel noise of 0.003–0.005;
* the **SCL mask is imperfect** on purpose: soft cloud and shadow edges below the labelling
  thresholds stay "clear", and on most cloudy dates a 1–2 px ring around some clouds is
  brightened but labelled clear (a single-date anomaly that a two-in-a-row rule rejects);
* the second **relative orbit** leaves a no-data corner (~10.5 % of the tile; DN 0, SCL 0).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import shapely
from scipy import ndimage

from redline.demo import events as E
from redline.demo import landscape as L
from redline.demo import spectra as S

SCALE, OFFSET = 0.0001, -0.1  # Earth Search sentinel-2-c1-l2a raster:bands (processing baseline ≥ 04.00)

#: Monthly probabilities (nearly clear ≤ 5 %, partly cloudy 5–70 %, cloudy 70–100 %) of a
#: scene's cloud fraction. The Sichuan basin and the Longmenshan front are among the cloudiest
#: places in China (MODIS cloud-frequency climatologies, e.g. Wilson & Jetz 2016,
#: doi:10.1371/journal.pbio.1002415, show > 70 % annual cloud frequency). Days there tend to be
#: either overcast or fairly clear, hence few partly cloudy dates; the summer monsoon
#: (June–October, incl. the "West China autumn rain") and the winter stratus season are the
#: worst, spring the best. About 38 % of dates are nearly clear, 42 % 70–100 % cloudy, and a
#: pixel is seen clear on 40–50 % of the dates (~15–18 a year at a 10-day step).
CLOUD_CLIMATE = {
    1: (0.35, 0.20, 0.45), 2: (0.35, 0.20, 0.45), 3: (0.45, 0.20, 0.35), 4: (0.50, 0.20, 0.30),
    5: (0.45, 0.20, 0.35), 6: (0.35, 0.20, 0.45), 7: (0.30, 0.20, 0.50), 8: (0.35, 0.20, 0.45),
    9: (0.30, 0.20, 0.50), 10: (0.35, 0.20, 0.45), 11: (0.45, 0.20, 0.35), 12: (0.40, 0.20, 0.40),
}

#: Cloud-shadow displacement (rows, cols) in 10 m pixels: 400 m towards the north-west, i.e.
#: a ~1 km cloud base under a morning sun (~10:40 local solar time) in the south-east.
SHADOW_OFFSET_PX = (-24, -32)

#: SCL labelling thresholds on 20 m averages: cloud opacity (high / medium probability),
#: shadow darkening (share of light lost), cirrus opacity, snow cover fraction (all 0–1).
CLOUD_HIGH, CLOUD_MEDIUM, SHADOW_MIN, CIRRUS_MIN, SNOW_MIN = 0.55, 0.15, 0.25, 0.03, 0.5

#: Sensor and residual-correction noise (reflectance): σ = a + b·ρ, 0.003–0.005 for land.
NOISE_A, NOISE_B = 0.003, 0.005

#: The swath edge of the second orbit, from (u, v) to (u, v) in fractions of the grid edge.
CORNER_LINE = ((1.0, 0.25), (0.72, 1.0))


@dataclass(frozen=True)
class Conditions:
    """What makes a landscape harder than the demo's (defaults: the demo's own conditions).

    ``cloud_boost`` moves that share of the nearly-clear probability of every month to the
    cloudy class (0.3 → about 27 % instead of 38 % nearly-clear dates); ``corner_line`` is the
    swath edge of the second orbit, from a point on the east edge (u = 1) to one on the south
    edge (v = 1); ``fire_regrowth`` is (green-cover ceiling, e-folding days) of the regrowth
    after a burn; ``quarry_gap_days`` the range of days between a quarry's growth stages."""

    cloud_boost: float = 0.0
    corner_line: tuple[tuple[float, float], tuple[float, float]] = CORNER_LINE
    fire_regrowth: tuple[float, float] = (0.30, 200.0)
    quarry_gap_days: tuple[float, float] = (40.0, 75.0)
    #: zones (HXBH) under thick cloud on every date from ``overcast_from`` on (labelled cloud in
    #: the SCL): a zone that cannot be seen in the monitor window. Empty in every preset.
    overcast_zones: tuple[str, ...] = ()
    overcast_from: dt.date | None = None


@dataclass(frozen=True)
class Acquisition:
    """A scene's date and viewing: ``clipped`` scenes lose the no-data corner."""

    index: int
    date: dt.date
    platform: str  # sentinel-2a | sentinel-2b
    relative_orbit: int
    clipped: bool


@dataclass(frozen=True)
class Rendered:
    """A rendered scene: DN of the 10 m bands (4, n, n), 20 m bands (2, n/2, n/2), SCL (n/2, n/2)."""

    dn10: np.ndarray
    dn20: np.ndarray
    scl: np.ndarray
    cloud_fraction: float  # drawn target (0–1), before labelling


def nodata_corner(n: int, line: tuple[tuple[float, float], tuple[float, float]] = CORNER_LINE) -> np.ndarray:
    """Pixels beyond the swath edge of the second orbit (bool, n × n): the south-east corner
    cut by a line parallel to a descending ground track (~20° off north), ~10.5 % of the tile
    with the default ``line``."""
    v, u = (np.mgrid[0:n, 0:n] + 0.5) / n
    (u0, v0), (u1, v1) = line
    return u > u0 + (u1 - u0) * (v - v0) / (v1 - v0)


def block_mean(a: np.ndarray) -> np.ndarray:
    """2×2 block mean over the last two axes (10 m → 20 m)."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def upsample(a: np.ndarray) -> np.ndarray:
    """20 m → 10 m by pixel replication over the last two axes."""
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)


def to_dn(refl: np.ndarray) -> np.ndarray:
    """Surface reflectance → uint16 DN (Earth Search scale/offset), clipped to 1…65535."""
    return np.clip(np.round((refl - OFFSET) / SCALE), 1, 65535).astype("uint16")


# --- surface --------------------------------------------------------------------------
class Surface:
    """Renders the undisturbed and disturbed surface reflectance of a date."""

    def __init__(
        self, land: L.Landscape, jitter_by_year: dict[int, dict[str, np.ndarray]], events: list[E.Event],
        conditions: Conditions = Conditions(),
    ) -> None:
        self.land = land
        self.conditions = conditions
        self.jitter = jitter_by_year
        self.crop = np.flatnonzero(land.lc.ravel() == L.CROP)
        self.crop_field = land.field.ravel()[self.crop]
        self.lake = np.flatnonzero(land.lc.ravel() == L.LAKE)
        self.events = events
        self.cov = {(e.event_id, i): self._window(L.coverage(g, land.n)) for e in events for i, (_, g) in enumerate(e.stages)}

    @staticmethod
    def _window(cov: np.ndarray) -> tuple[slice, slice, np.ndarray]:
        rows, cols = np.nonzero(cov)
        win = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        return win[0], win[1], cov[win]

    def undisturbed(self, day: dt.date) -> np.ndarray:
        """Surface reflectance (6, n, n) of the landscape on ``day``."""
        land = self.land
        doy = day.timetuple().tm_yday
        fv = L.class_fractions(doy)[land.lc] + land.green_offset
        green, water, flower = S.crop_state(doy, land.rotation, self.jitter[day.year])
        fv_flat = fv.reshape(-1)
        fv_flat[self.crop] = green[self.crop_field] + land.green_offset.reshape(-1)[self.crop]
        np.clip(fv, 0.0, 0.97, out=fv)
        refl = fv[None] * land.green_em + (1 - fv)[None] * land.back_em
        flat = refl.reshape(6, -1)
        fw = water[self.crop_field]
        flat[:, self.crop] += fw[None] * (S.WATER_TURBID[:, None] - land.back_em.reshape(6, -1)[:, self.crop])
        flat[:, self.crop] += flower[self.crop_field][None] * (S.RAPESEED_FLOWER - S.GREEN_LEAF)[:, None]
        t = S.turbidity(doy)
        flat[:, self.lake] = ((1 - t) * S.WATER_CLEAR + t * S.WATER_TURBID)[:, None]
        return refl * land.brightness[None]

    def disturbed(self, day: dt.date) -> np.ndarray:
        """Surface reflectance (6, n, n) on ``day`` with the events that have started."""
        refl = self.undisturbed(day)
        doy = day.timetuple().tm_yday
        for e in self.events:
            if day < e.start:
                continue
            spec = E.disturbed_spectrum(e.type, (day - e.start).days, doy, fire_regrowth=self.conditions.fire_regrowth)
            active = [i for i, (d, _) in enumerate(e.stages) if d <= day]
            for i in active:  # nested growth stages: paint each started extent
                r, c, cov = self.cov[(e.event_id, i)]
                target = spec[:, None, None] * self.land.brightness[None, r, c]
                refl[:, r, c] = (1 - cov)[None] * refl[:, r, c] + cov[None] * target
        return refl


# --- atmosphere ------------------------------------------------------------------------
def cloud_fraction(rng: np.random.Generator, month: int, boost: float = 0.0) -> float:
    """Draw a scene cloud fraction (0–1) from :data:`CLOUD_CLIMATE`; ``boost`` moves that share
    of the nearly-clear probability to the cloudy class (same random draws)."""
    p_clear, p_partly, _ = CLOUD_CLIMATE[month]
    p_clear *= 1.0 - boost
    r = rng.random()
    if r < p_clear:
        return float(rng.uniform(0.0, 0.05)) if rng.random() < 0.6 else 0.0
    if r < p_clear + p_partly:
        return float(rng.uniform(0.05, 0.70))
    return 1.0 if rng.random() < 0.35 else float(rng.uniform(0.70, 1.0))


@dataclass(frozen=True)
class Atmosphere:
    """Per-pixel layers of one date on the 10 m grid (n × n, 0–1)."""

    opacity: np.ndarray  # cloud opacity (what the SCL labels)
    missed: np.ndarray  # opacity of haze rings the SCL misses (0 elsewhere)
    top: np.ndarray  # cloud-top brightness (0.3–0.7)
    shadow: np.ndarray  # shadow strength
    shadow_depth: float  # darkening at full strength (0.5–0.7 → ×0.5–0.3)
    cirrus: np.ndarray  # cirrus opacity (≤ 0.12)
    snow: np.ndarray  # snow cover fraction
    gain: float  # residual calibration / BRDF gain
    haze: float  # residual aerosol reflectance in the blue


def _clouds(rng: np.random.Generator, n: int, cf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity and top brightness (n × n) and shadow strength (n × n) for fraction ``cf``.

    The field is drawn on a grid padded by the shadow offset so that clouds just outside the
    tile still cast shadows into it."""
    dr, dc = (-o for o in SHADOW_OFFSET_PX)
    shape = (n + dr, n + dc)
    f = 0.55 * L.smooth_noise(rng, shape, 60) + 0.75 * L.smooth_noise(rng, shape, 15) + 0.30 * L.smooth_noise(rng, shape, 4)
    f /= f.std()
    inner = f[:n, :n]
    thr = float(inner.min() - 1.0) if cf >= 0.999 else float(np.quantile(inner, 1.0 - cf))
    opacity = np.clip((f - thr) / 0.5, 0.0, 1.0) ** 0.7
    top = 0.30 + 0.40 * np.clip((f - thr) / 1.5, 0.0, 1.0)
    shadow = opacity[dr : dr + n, dc : dc + n]
    return opacity[:n, :n].astype("float32"), top[:n, :n].astype("float32"), shadow.astype("float32")


def _missed_ring(rng: np.random.Generator, opacity: np.ndarray) -> np.ndarray:
    """Opacity of a 1–2 px ring brightened around ~half the labelled clouds but outside the
    20 m SCL mask (0 elsewhere)."""
    mask10 = upsample(block_mean(opacity) >= CLOUD_MEDIUM)
    labels, count = ndimage.label(mask10)
    if count == 0:
        return np.zeros_like(opacity)
    chosen = np.concatenate([[False], rng.random(count) < 0.5])[labels]
    ring = ndimage.binary_dilation(chosen, iterations=int(rng.integers(1, 3))) & ~mask10
    return np.where(ring, rng.uniform(0.10, 0.20), 0.0).astype("float32")


def atmosphere(rng: np.random.Generator, n: int, day: dt.date, elevation: np.ndarray, cloud_boost: float = 0.0) -> tuple[Atmosphere, float]:
    """Draw the atmosphere of ``day``; returns the layers and the drawn cloud fraction."""
    zeros = np.zeros((n, n), dtype="float32")
    cf = cloud_fraction(rng, day.month, cloud_boost)
    missed = zeros
    if cf > 0.0:
        opacity, top, shadow = _clouds(rng, n, cf)
        if rng.random() < 0.7:  # most cloudy dates: a contaminated ring the SCL misses
            missed = _missed_ring(rng, opacity)
    else:
        opacity, top, shadow = zeros, zeros + 0.5, zeros
    cirrus = zeros
    if rng.random() < (0.15 if day.month in (6, 7, 8, 9) else 0.08):
        g = 0.7 * L.smooth_noise(rng, (n, n), 100) + 0.3 * L.smooth_noise(rng, (n, n), 30)
        thr = np.quantile(g, 1.0 - rng.uniform(0.3, 0.9))
        cirrus = (0.12 * np.clip((g - thr) / 0.8, 0.0, 1.0)).astype("float32")
    snow = zeros
    if day.month in (12, 1, 2) and cf < 0.8 and rng.random() < 0.2:
        line = np.quantile(elevation, rng.uniform(0.82, 0.95))
        snow = np.clip((elevation - line) / 0.03, 0.0, 1.0).astype("float32")
    winter = day.month in (11, 12, 1, 2)
    atm = Atmosphere(
        opacity=opacity, missed=missed, top=top, shadow=shadow, shadow_depth=float(rng.uniform(0.5, 0.7)),
        cirrus=cirrus, snow=snow,
        gain=float(rng.normal(1.0, 0.012)), haze=float(rng.uniform(0.0, 0.015 if winter else 0.008)),
    )
    return atm, cf


#: Spectral shape of the residual haze (strongest in the blue).
_HAZE_SHAPE = np.array([1.0, 0.7, 0.45, 0.2, 0.05, 0.02], dtype="float32")


def observe(surface: np.ndarray, atm: Atmosphere) -> np.ndarray:
    """Reflectance (6, n, n) as the L2A product shows it: snow, cloud shadow, residual haze and
    gain, cirrus, then clouds on top."""
    s = atm.snow[None]
    refl = (1 - s) * surface + s * S.SNOW[:, None, None]
    sh = atm.shadow[None]
    refl = refl * (1 - atm.shadow_depth * sh) + sh * S.SKYLIGHT[:, None, None]
    refl = refl * atm.gain + atm.haze * _HAZE_SHAPE[:, None, None]
    c = atm.cirrus[None]
    refl = (1 - c) * refl + c * S.CIRRUS[:, None, None]
    a = np.maximum(atm.opacity, atm.missed)[None]
    return (1 - a) * refl + a * (atm.top[None] * S.CLOUD_SHAPE[:, None, None])


def scene_classification(refl20: np.ndarray, atm: Atmosphere, nodata20: np.ndarray) -> np.ndarray:
    """Sen2Cor-like SCL (uint8, 20 m) from the observed 20 m reflectance and the layers.

    Priority: no data 0 > cloud high 9 > cloud medium 8 > shadow 3 > snow 11 > cirrus 10 >
    water 6 / vegetation 4 / not vegetated 5 (NDVI > 0.4 vegetation; MNDWI > 0.1 with NIR
    < 0.10 water: thresholds in the spirit of Sen2Cor's, ESA S2 L2A ATBD)."""
    _, green, red, nir, sw16, _ = refl20
    ndvi = (nir - red) / (nir + red + 1e-6)
    mndwi = (green - sw16) / (green + sw16 + 1e-6)
    scl = np.full(ndvi.shape, 5, dtype="uint8")
    scl[ndvi > 0.40] = 4
    scl[(mndwi > 0.10) & (nir < 0.10)] = 6
    layers = [
        (block_mean(atm.cirrus) >= CIRRUS_MIN, 10),
        (block_mean(atm.snow) >= SNOW_MIN, 11),
        (block_mean(atm.shadow) * atm.shadow_depth >= SHADOW_MIN, 3),
        (block_mean(atm.opacity) >= CLOUD_MEDIUM, 8),
        (block_mean(atm.opacity) >= CLOUD_HIGH, 9),
        (nodata20, 0),
    ]
    for mask, value in layers:
        scl[mask] = value
    return scl


def _overcast(atm: Atmosphere, surface: Surface, day: dt.date) -> Atmosphere:
    """Thick cloud over the overcast zones (and 60 m around them) from ``overcast_from`` on."""
    cond = surface.conditions
    if not cond.overcast_zones or cond.overcast_from is None or day < cond.overcast_from:
        return atm
    zones = [surface.land.zones[c] for c in cond.overcast_zones if c in surface.land.zones]
    cover = L.coverage(shapely.union_all(zones).buffer(60.0), surface.land.n) if zones else np.zeros_like(atm.opacity)
    cloud = np.where(cover > 0, 1.0, 0.0).astype("float32")
    return replace(atm, opacity=np.maximum(atm.opacity, cloud), top=np.where(cloud > 0, 0.6, atm.top).astype("float32"))


def render(rng: np.random.Generator, acq: Acquisition, surface: Surface, corner: np.ndarray) -> Rendered:
    """Render one acquisition to DN and SCL."""
    n = surface.land.n
    atm, cf = atmosphere(rng, n, acq.date, surface.land.elevation, surface.conditions.cloud_boost)
    atm = _overcast(atm, surface, acq.date)
    refl = observe(surface.disturbed(acq.date), atm)
    refl20 = block_mean(refl[4:6])
    noise10 = rng.standard_normal((4, n, n), dtype="float32") * (NOISE_A + NOISE_B * np.abs(refl[:4]))
    noise20 = rng.standard_normal(refl20.shape, dtype="float32") * (NOISE_A + NOISE_B * np.abs(refl20))
    dn10 = to_dn(refl[:4] + noise10)
    dn20 = to_dn(refl20 + noise20)
    nodata20 = block_mean(corner.astype("float32")) > 0 if acq.clipped else np.zeros((n // 2, n // 2), dtype=bool)
    nodata10 = upsample(nodata20)
    dn10[:, nodata10] = 0
    dn20[:, nodata20] = 0
    scl = scene_classification(block_mean(refl), atm, nodata20)
    return Rendered(dn10=dn10, dn20=dn20, scl=scl, cloud_fraction=cf)
