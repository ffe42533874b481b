"""Mining told from a one-off clearing by its temporal shape and its context (issue #20 item 3):
the type rule of :mod:`redline.alerts` (``classify_type``, ``growth_share``) and the detector's
``last_normal`` field, on real-valued reflectance run through the detector and the alert step."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from affine import Affine

import indices
from redline.alerts import ALB_BRIGHT, GROWTH_SHARE, alerts_from_fields, classify_type, growth_share
from redline.detect import FIELDS, detect, stack_indices
from redline.evaluate import per_type_accuracy, per_type_line

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
#: Surface reflectance (the six bands above, 0–1) of the test surfaces.
FOREST = np.array([0.020, 0.045, 0.025, 0.300, 0.130, 0.055])  # NDVI 0.85, ALB 0.10
#: Grey-brown spoil: bare (NDVI 0.06), soil-like (BI 0.20), brighter than forest by 0.14 in ALB
#: but below ALB_BRIGHT (0.235): brightness alone cannot call it a quarry.
SPOIL = np.array([0.130, 0.170, 0.220, 0.250, 0.350, 0.290])
#: Concrete and grey roofs (NDBI 0.10 > 0, BI 0.09 < 0.15, ALB 0.165).
CONCRETE = np.array([0.120, 0.130, 0.140, 0.180, 0.220, 0.200])

TIMES = pd.date_range("2021-01-05", "2023-12-31", freq="10D")  # a look every 10 days, all clear but where hidden
OPENS = "2023-03-16"  # a look of TIMES: the left half changes then …
LATER = "2023-07-04"  # … and the right half then (110 days later), or is hidden by cloud until then
SHAPE = (8, 16)  # 10 m pixels: 128 px = 12 800 m²; the left and right halves 6 400 m² each
TRANSFORM = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 3400000.0)
CRS = "EPSG:32648"


def _day(iso: str) -> float:
    """Days since 1970-01-01, as the detector's date fields."""
    return float((pd.Timestamp(iso) - pd.Timestamp("1970-01-01")).days)


def _pre_post(before: np.ndarray, after: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Index values of two surfaces as the patch medians the alert step gives the type rule."""
    def values(r: np.ndarray) -> dict[str, float]:
        ds = xr.Dataset({b: xr.DataArray([float(v)]) for b, v in zip(BANDS, r, strict=True)})
        ix = indices.compute_indices(ds, ["NDVI", "MNDWI", "NBR", "BI", "NDBI"])
        return {k: float(ix[k].values[0]) for k in ix} | {"ALB": float(r.mean())}
    return values(before), values(after)


def _scene_stack(after: np.ndarray, right_from: str, *, cloud_right: tuple[str, str] | None = None) -> xr.DataArray:
    """(var, time, y, x) detector stack of a forest whose left half turns to ``after`` on
    :data:`OPENS` and whose right half does on ``right_from``; ``cloud_right`` hides the right half
    (NaN) between two dates. Reflectance noise 0.004 (seeded)."""
    rng = np.random.default_rng(3)
    refl = np.broadcast_to(FOREST[:, None, None, None], (6, len(TIMES), *SHAPE)).copy()
    half = SHAPE[1] // 2
    left = TIMES >= OPENS
    right = TIMES >= right_from
    refl[:, left, :, :half] = after[:, None, None, None]
    refl[:, right, :, half:] = after[:, None, None, None]
    refl += 0.004 * rng.standard_normal(refl.shape)
    if cloud_right is not None:
        hidden = (TIMES >= cloud_right[0]) & (TIMES < cloud_right[1])
        refl[:, hidden, :, half:] = np.nan
    coords = {"time": TIMES, "y": 3400000.0 - 5.0 - 10.0 * np.arange(SHAPE[0]), "x": 400005.0 + 10.0 * np.arange(SHAPE[1])}
    ds = xr.Dataset({b: xr.DataArray(refl[i].astype("float32"), dims=("time", "y", "x"), coords=coords) for i, b in enumerate(BANDS)})
    return stack_indices(indices.compute_indices(ds, ["NDVI", "MNDWI", "NBR", "BI", "NDBI"]), ds)


def _alerts(stack: xr.DataArray) -> tuple[gpd.GeoDataFrame, dict[str, np.ndarray]]:
    det = detect(stack, baseline=("2021-01-01", "2022-12-31"), monitor=("2023-01-01", "2023-12-31")).compute()
    fields = {f: det[f].values for f in FIELDS}
    zone = shapely.box(400000.0 - 50, 3400000.0 - 130, 400000.0 + 210, 3400000.0 + 50)
    zones = gpd.GeoDataFrame({"zone_id": ["Z1"], "zone_name": ["zone"], "admin_id": ["510000"]}, geometry=[zone], crs=CRS)
    return alerts_from_fields(fields, TRANSFORM, CRS, zones, min_area_m2=5000.0, consecutive=2, z_threshold=4.0, scan_id="t"), fields


def test_the_test_surfaces_are_what_they_say():
    pre, post = _pre_post(FOREST, SPOIL)
    assert pre["NDVI"] > 0.8 and post["NDVI"] < 0.1 and post["BI"] > 0.15
    assert post["ALB"] < ALB_BRIGHT and post["ALB"] - pre["ALB"] > 0.13
    pre, post = _pre_post(FOREST, CONCRETE)
    assert post["NDBI"] > 0 and post["BI"] < 0.15


def test_the_same_bare_spoil_is_mining_when_it_grew_and_a_clearing_when_it_appeared_at_once():
    pre, post = _pre_post(FOREST, SPOIL)
    assert classify_type(pre, post, growth=0.5) == "mining"
    assert classify_type(pre, post, growth=0.0) == "clearing"
    assert classify_type(pre, post, growth=GROWTH_SHARE - 0.01) == "clearing"
    # the scene context: beside ground already bare in the baseline, a working face that advances
    assert classify_type(pre, post, expansion=True) == "mining"
    # exposed bright rock is a quarry even before it grows (the rule's first sign)
    bright = post | {"ALB": ALB_BRIGHT + 0.02}
    assert classify_type(pre, bright) == "mining"
    # a bright patch that greened again (weeds on a clearing) is not a quarry: it did not stay bare
    assert classify_type(pre, bright | {"NDVI": 0.3}, growth=0.5) != "mining"


def test_mining_does_not_swallow_construction_or_fire():
    pre, post = _pre_post(FOREST, CONCRETE)
    assert classify_type(pre, post, growth=0.6, expansion=True) == "construction"  # a site that grew: barely brighter
    char = np.array([0.040, 0.045, 0.050, 0.100, 0.150, 0.130])
    pre, post = _pre_post(FOREST, char)
    assert classify_type(pre, post, growth=0.6, expansion=True) == "fire"


def test_growth_share_counts_later_pixels_seen_undisturbed_and_adjacent():
    first = np.full((4, 10), np.nan)
    last_normal = np.full((4, 10), np.nan)
    sel = np.zeros((4, 10), dtype=bool)
    sel[:, :8] = True
    first[:, :4] = 100.0  # the pit opens on day 100
    first[:, 4:8] = 190.0  # the next bench 90 days later ...
    last_normal[:, 4:8] = 180.0  # ... where the ground was seen undisturbed on day 180
    assert growth_share(first, last_normal, sel) == pytest.approx(0.5)
    # the same late dates under cloud: last seen undisturbed before the pit opened
    assert growth_share(first, np.where(sel, 90.0, np.nan), sel) == 0.0
    # less than GROWTH_STEP_DAYS later: one change seen over a few weeks
    assert growth_share(np.where(first > 150, 120.0, first), np.where(first > 150, 110.0, np.nan), sel) == 0.0
    # later pixels not connected to the earlier ones through later pixels seen undisturbed
    lonely = last_normal.copy()
    lonely[:, 4:6] = np.nan  # a band of late pixels never seen undisturbed (cloud) between them
    assert growth_share(first, lonely, sel) == 0.0
    assert growth_share(first, last_normal, np.zeros_like(sel)) == 0.0


def test_a_patch_that_grows_across_looks_is_mining_the_same_patch_seen_late_under_cloud_a_clearing():
    """Through the detector and the alert step: identical spectra, only the temporal shape differs."""
    grown, fields = _alerts(_scene_stack(SPOIL, LATER))
    assert len(grown) == 1 and grown.iloc[0]["disturbance_type"] == "mining"
    right = fields["last_normal"][:, SHAPE[1] // 2:]
    assert np.all(right == _day("2023-06-24"))  # seen undisturbed on the look before its own date
    cloudy, fields = _alerts(_scene_stack(SPOIL, OPENS, cloud_right=("2023-03-06", LATER)))
    assert len(cloudy) == 1 and cloudy.iloc[0]["disturbance_type"] == "clearing"
    # the right half is dated late all the same (its first clear look after the change) ...
    assert np.all(fields["first_date"][:, SHAPE[1] // 2:] == _day(LATER))
    # ... but it was last seen undisturbed before the patch's date
    assert np.all(fields["last_normal"][:, SHAPE[1] // 2:] == _day("2023-02-24"))


def test_a_construction_site_that_grows_stays_construction():
    site, _ = _alerts(_scene_stack(CONCRETE, LATER))
    assert len(site) == 1 and site.iloc[0]["disturbance_type"] == "construction"


def test_per_type_accuracy_and_its_line():
    confusion = {"mining": {"mining": 2}, "construction": {"construction": 1, "clearing": 2}, "clearing": {"clearing": 4}}
    per_type = per_type_accuracy(confusion)
    assert per_type["construction"] == {"correct": 1, "total": 3, "accuracy": pytest.approx(1 / 3)}
    assert per_type["mining"]["accuracy"] == 1.0
    assert per_type_line(per_type) == "types: clearing 4/4, construction 1/3, mining 2/2"
