"""Spectra and phenology of the demo landscape.

All reflectances are Sentinel-2 L2A **surface reflectance** (unitless, 0–1) in the order of
:data:`BANDS`: B02 blue, B03 green, B04 red, B08 nir, B11 swir16, B12 swir22.

Where the end-member numbers come from: typical values of the USGS Spectral Library v7
(Kokaly et al. 2017, doi:10.3133/ds1035; leaves, dry grass, soils, concrete, asphalt, water,
ash) read at the Sentinel-2 band centres, checked against the textbook shapes in Jensen,
*Remote Sensing of the Environment* (2nd ed., ch. 11–12) and the ranges seen in L2A scenes of
subtropical China: green vegetation has a red well and a NIR plateau (NDVI 0.8–0.9), soils
rise steadily into the SWIR (BSI > 0.15), water absorbs from the NIR on (MNDWI > 0.5), char is
dark with a SWIR rise (NBR < 0), concrete is flat and moderately bright (NDBI ≈ 0.1). They are
rounded, representative numbers for a demo, not measurements of a particular place.

Phenology is a double-logistic green-cover fraction per class (Beck et al. 2006,
doi:10.1016/j.rse.2005.10.021; Zhang et al. 2003 for the MODIS phenology product); reflectance
is the linear mix of a green-vegetation end-member and a background end-member weighted by that
fraction, so that NDVI, NBR, MNDWI, NDBI and BSI all follow physically.
"""

from __future__ import annotations

import numpy as np

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def _em(*values: float) -> np.ndarray:
    return np.array(values, dtype="float32")


# --- end-members (blue, green, red, nir, swir16, swir22), surface reflectance 0–1 -------------
#: Broadleaf canopy at full cover (deciduous forest, crops): USGS v7 green leaves.
GREEN_LEAF = _em(0.030, 0.075, 0.035, 0.420, 0.200, 0.090)
#: Subtropical evergreen canopy (evergreen broadleaf / conifer mix): darker NIR plateau
#: than a single broad leaf because of canopy shadowing.
EVERGREEN_CANOPY = _em(0.022, 0.050, 0.024, 0.320, 0.150, 0.065)
#: Green grass / herbaceous cover.
GREEN_GRASS = _em(0.035, 0.080, 0.045, 0.380, 0.230, 0.110)
#: Bark, branches and leaf litter (non-photosynthetic vegetation) under a forest.
LITTER = _em(0.055, 0.075, 0.090, 0.190, 0.260, 0.190)
#: Senesced grass and shrub stems.
DRY_GRASS = _em(0.070, 0.100, 0.130, 0.230, 0.330, 0.250)
#: Dry bare loam (the purple soil of the Sichuan basin is of this brightness).
SOIL = _em(0.080, 0.110, 0.160, 0.220, 0.320, 0.280)
#: Wet paddy soil.
WET_SOIL = _em(0.050, 0.070, 0.090, 0.130, 0.180, 0.140)
#: Clear reservoir water.
WATER_CLEAR = _em(0.045, 0.060, 0.035, 0.020, 0.010, 0.008)
#: Sediment-laden river / summer reservoir water.
WATER_TURBID = _em(0.060, 0.085, 0.075, 0.045, 0.018, 0.012)
#: Weathered rock outcrop (sandstone / limestone with lichen).
ROCK = _em(0.130, 0.150, 0.180, 0.230, 0.290, 0.250)
#: Freshly exposed limestone in a quarry: bright in every band (0.25–0.40).
BRIGHT_ROCK = _em(0.260, 0.290, 0.320, 0.360, 0.400, 0.360)
#: Concrete and grey-tile roofs.
CONCRETE = _em(0.120, 0.130, 0.140, 0.180, 0.220, 0.200)
#: Asphalt / old concrete road.
ASPHALT = _em(0.080, 0.090, 0.100, 0.130, 0.170, 0.160)
#: Char and ash of a fresh burn.
CHAR = _em(0.040, 0.045, 0.050, 0.100, 0.150, 0.130)
#: Exposed lake-bed mud.
MUD = _em(0.060, 0.080, 0.100, 0.140, 0.190, 0.150)
#: Rapeseed in flower (yellow petals raise green and red).
RAPESEED_FLOWER = _em(0.045, 0.170, 0.160, 0.400, 0.230, 0.120)
#: Fresh snow (bright in the visible, dark in the SWIR).
SNOW = _em(0.780, 0.760, 0.730, 0.650, 0.080, 0.060)
#: Spectral shape of a water cloud top (multiplied by a brightness of 0.3–0.7): flat in the
#: visible and NIR, lower in the SWIR where droplets absorb.
CLOUD_SHAPE = _em(1.000, 0.980, 0.970, 0.980, 0.780, 0.580)
#: Thin cirrus seen through the L2A correction: a faint, blue-leaning veil.
CIRRUS = _em(0.350, 0.330, 0.310, 0.300, 0.160, 0.090)
#: Diffuse skylight that still reaches a cloud shadow (additive, blue-heavy).
SKYLIGHT = _em(0.015, 0.010, 0.006, 0.004, 0.001, 0.000)


def logistic(x: np.ndarray | float, mid: np.ndarray | float, width: float | np.ndarray) -> np.ndarray:
    """Logistic step from 0 to 1 centred on ``mid`` (days) with scale ``width`` (days)."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype="float64") - mid) / width))


def double_logistic(doy: float, sos: float, w_up: float, eos: float, w_down: float) -> float:
    """Season curve 0→1→0: green-up at day-of-year ``sos``, senescence at ``eos`` (days)."""
    return float(logistic(doy, sos, w_up) * (1.0 - logistic(doy, eos, w_down)))


# --- class phenology: green-cover fraction (0–1) by day of year ---------------------------
# Dates are typical of the subtropical Sichuan basin edge: broadleaf green-up in late March to
# mid April, leaf fall in late October (MODIS MCD12Q2-type phenology of the region).


def evergreen_fraction(doy: float) -> float:
    """Evergreen forest: NDVI ≈ 0.78–0.82 all year, peak in July."""
    return 0.86 + 0.05 * float(np.cos(2 * np.pi * (doy - 200) / 365.25))


def deciduous_fraction(doy: float) -> float:
    """Deciduous forest: NDVI ≈ 0.38 in winter to ≈ 0.83 in summer."""
    return 0.04 + 0.90 * double_logistic(doy, 100, 9, 296, 10)


def shrub_fraction(doy: float) -> float:
    """Shrub and grassland: NDVI ≈ 0.42 in winter to ≈ 0.65 in summer."""
    return 0.25 + 0.45 * double_logistic(doy, 105, 12, 286, 14)


def rock_fraction(doy: float) -> float:
    """Sparse grass in rock crevices."""
    return 0.03 + 0.05 * double_logistic(doy, 110, 12, 280, 12)


def village_fraction(doy: float) -> float:
    """Gardens and trees between houses."""
    return 0.12 + 0.12 * double_logistic(doy, 100, 10, 295, 10)


def turbidity(doy: float) -> float:
    """Share of turbid water in the lake (0–1): summer flood-season runoff carries sediment."""
    return 0.15 + 0.45 * double_logistic(doy, 160, 12, 260, 15)


# --- cropland: a double-crop calendar with per-field, per-year jitter ---------------------

#: Crop rotations of the Chengdu plain: rapeseed then rice, wheat then maize, and tree
#: nurseries (苗木, perennial). Shares follow the general picture of the plain's farming.
ROTATIONS = ("rapeseed_rice", "wheat_maize", "nursery")
ROTATION_SHARES = (0.55, 0.30, 0.15)

#: Nominal calendar, day of year (sowing/harvest dates of the Sichuan basin double crop:
#: winter crop green-up in February, harvest in early May (rapeseed) or mid May (wheat);
#: rice transplanted late May/June and harvested late August/September; maize sown after
#: wheat and harvested in August; autumn sowing of the next winter crop in late October).
CALENDAR = {
    "rapeseed_rice": {"green_up": 40, "harvest_w": 128, "sow_s": 162, "harvest_s": 250, "sow_w": 305},
    "wheat_maize": {"green_up": 50, "harvest_w": 138, "sow_s": 150, "harvest_s": 232, "sow_w": 312},
}

#: Keys of the per-field, per-year jitter (days) drawn in :func:`crop_jitter`.
JITTER_KEYS = ("green_up", "harvest_w", "sow_s", "harvest_s", "sow_w")


def crop_jitter(rng: np.random.Generator, n_fields: int) -> dict[str, np.ndarray]:
    """Per-field calendar shifts (days) for one year.

    Each date moves by a shift common to the year (weather, ±5 days) plus a field's own shift
    (farmer's choice, ±12 days), so sowing and harvest are irregular year to year as in
    reality. ``fallow`` marks fields whose summer crop is skipped that year (≈8 %).
    """
    year_shift = rng.uniform(-5, 5)
    out = {k: (year_shift + rng.uniform(-12, 12, n_fields)).astype("float32") for k in JITTER_KEYS}
    out["fallow"] = rng.random(n_fields) < 0.08
    return out


def crop_state(doy: float, rotation: np.ndarray, jit: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Green-cover, flooded-water and flower fractions (0–1) of each field on ``doy``.

    ``rotation`` indexes :data:`ROTATIONS` per field; ``jit`` is :func:`crop_jitter` output.
    Nursery fields follow a shrub-like curve. Rice fields are flooded for transplanting
    (MNDWI > 0 for a few weeks in late May–June); rapeseed flowers in March.
    """
    n = rotation.size
    green = np.zeros(n, dtype="float32")
    water = np.zeros(n, dtype="float32")
    flower = np.zeros(n, dtype="float32")
    for r, name in enumerate(ROTATIONS[:2]):
        m = rotation == r
        if not m.any():
            continue
        cal = {k: CALENDAR[name][k] + jit[k][m] for k in JITTER_KEYS}
        seedling = (  # last autumn's seedlings until green-up, the next crop's after sowing
            0.22 * (1 - logistic(doy, cal["harvest_w"], 5)) * (1 - logistic(doy, cal["green_up"], 12))
            + 0.22 * logistic(doy, cal["sow_w"] + 15, 8)
        )
        winter = 0.80 * logistic(doy, cal["green_up"], 12) * (1 - logistic(doy, cal["harvest_w"], 5))
        summer = 0.85 * logistic(doy, cal["sow_s"] + 12, 8) * (1 - logistic(doy, cal["harvest_s"], 6))
        summer = np.where(jit["fallow"][m], 0.30 * logistic(doy, cal["sow_s"], 15) * (1 - logistic(doy, 290, 15)), summer)
        green[m] = 0.05 + np.maximum.reduce([seedling, winter, summer])
        if name == "rapeseed_rice":
            flood = 0.70 * logistic(doy, cal["sow_s"] - 8, 3) * (1 - logistic(doy, cal["sow_s"] + 25, 6))
            water[m] = np.where(jit["fallow"][m], 0.0, flood)
            bloom = np.exp(-0.5 * ((doy - (cal["green_up"] + 40)) / 9.0) ** 2)
            flower[m] = 0.35 * bloom
    nursery = rotation == 2
    green[nursery] = 0.45 + 0.30 * double_logistic(doy, 95, 10, 300, 12)
    green = np.clip(green, 0, 0.95)
    water = np.minimum(water, 1 - green)
    flower = np.minimum(flower, green)
    return green, water, flower
