"""An ``other`` alert (no typed evidence) only with a drop a reviewer can see on the chips."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine

from redline.alerts import OTHER_MIN_MAGNITUDE, alerts_from_fields
from redline.detect import FIELDS, MIN_DROP, STACK_VARS


def _fields(magnitude: float, *, post_ndvi: float = 0.62) -> dict[str, np.ndarray]:
    """A 10 × 10 px forest patch (pre NDVI 0.80) whose NDVI fell by ``magnitude``, still green
    after (not bare, not built, not burnt, not water): type ``other``."""
    shape = (30, 30)
    f = {k: np.full(shape, np.nan, dtype="float32") for k in FIELDS}
    patch = np.zeros(shape, bool)
    patch[10:20, 10:20] = True
    f["disturbed"][:] = 0.0
    f["disturbed"][patch] = 1.0
    pre = {"NDVI": 0.80, "MNDWI": -0.5, "NBR": 0.45, "BI": -0.30, "NDBI": -0.30, "ALB": 0.10}
    post = {**pre, "NDVI": post_ndvi, "NBR": 0.42}
    for v in STACK_VARS:
        f[f"pre_{v}"][patch] = pre[v]
        f[f"post_{v}"][patch] = post[v]
    f["magnitude"][patch] = magnitude
    f["trigger"][patch] = STACK_VARS.index("NDVI")
    f["n_confirm"][patch] = 3
    f["zscore"][patch] = 6.0
    f["first_date"][patch] = 19500.0
    f["last_observed"][patch] = 19600.0
    f["burn"][patch] = 0.0
    f["weak"][patch] = 0.0
    return f


def _alerts(fields: dict[str, np.ndarray]) -> gpd.GeoDataFrame:
    tr = Affine(10, 0, 400000, 0, -10, 3400000)
    zone = gpd.GeoDataFrame({"zone_id": ["Z1"], "zone_name": ["z"], "admin_id": ["A"]},
                            geometry=[shapely.box(400000, 3400000 - 300, 400300, 3400000)], crs="EPSG:32648")
    return alerts_from_fields(fields, tr, "EPSG:32648", zone, min_area_m2=5000, consecutive=2, z_threshold=4.0, scan_id="s")


def test_a_faint_other_patch_is_not_an_alert_and_a_visible_one_is():
    visible = OTHER_MIN_MAGNITUDE * MIN_DROP["NDVI"]
    kept = _alerts(_fields(visible + 0.02, post_ndvi=0.80 - visible - 0.02))
    assert list(kept["disturbance_type"]) == ["other"] and kept["area_m2"].iloc[0] == 10000
    assert _alerts(_fields(0.175, post_ndvi=0.625)).empty  # Pucallpa's median `other` drop


def test_a_typed_alert_is_kept_whatever_its_magnitude():
    f = _fields(0.15, post_ndvi=0.35)  # cleared below the vegetation line: `clearing`
    f["post_BI"][f["disturbed"] > 0] = 0.12
    a = _alerts(f)
    assert list(a["disturbance_type"]) == ["clearing"]
