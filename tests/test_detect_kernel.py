"""The compiled detection kernel gives the same fields as the former numpy kernel
(tests/_reference.py, kept verbatim), on a real generated cube through :func:`redline.detect.detect`."""

from __future__ import annotations

import json

import dask
import numpy as np
import pystac
import pytest

import aoi
from redline import detect as detect_module
from redline.detect import FIELDS, detect
from redline.run import analysis_grid, tile_graph

from tests._reference import reference_kernel

#: Fields that are counts, dates, flags or a variable's position: equal exactly.
EXACT = ("n_base_clear", "n_mon_clear", "n_mon_unsupported", "unsupported_months", "last_clear", "disturbed", "first_date", "last_observed", "last_normal", "n_confirm", "trigger", "burn", "weak")
#: Tolerance (index units, z units) of the continuous fields: both kernels compute in float64 and
#: differ only in the order of the sums (BLAS vs a loop), far below float32's resolution here.
ATOL = 1e-5


@pytest.fixture(scope="module")
def small_stack(small_scenes, small_config):
    """The (var, time, y, x) detector stack of the generated `small` scene set (73 dates,
    ~155 × 148 px), loaded through the scan's own path and held in memory."""
    items = [pystac.Item.from_dict(f) for f in json.loads(small_scenes.items.read_text())["features"]]
    zones = aoi.read_zones(small_config.zones.path, id_field="HXBH", layer="hongxian").to_crs(32648)
    stack = tile_graph(small_config, items, analysis_grid(zones, 10)).stack
    with dask.config.set(scheduler="threads"):
        return stack.compute()


def _fields(stack, cfg, **over) -> dict[str, np.ndarray]:
    d = cfg.detection
    kw = dict(indices=tuple(d.indices), z_threshold=d.z_threshold, consecutive=d.consecutive, harmonics=d.harmonics,
              trend=d.trend, min_baseline_obs=d.min_baseline_obs) | over
    ds = detect(stack.chunk({"y": 64, "x": 64}), baseline=(cfg.baseline.start, cfg.baseline.end),
                monitor=(cfg.monitor.start, cfg.monitor.end), **kw)
    with dask.config.set(scheduler="synchronous"):
        ds = ds.compute()
    return {f: ds[f].values for f in FIELDS}


def _reference_fields(stack, cfg, monkeypatch, **over) -> dict[str, np.ndarray]:
    with monkeypatch.context() as m:
        # the reference takes (y, x, var, time) and gives (y, x, field); the kernel's layout is
        # (var, time, y, x) → (field, y, x)
        m.setattr(detect_module, "chunk_kernel", lambda b, **kw: reference_kernel(b.transpose(2, 3, 0, 1), **kw).transpose(2, 0, 1))
        return _fields(stack, cfg, **over)


def assert_fields_match(new: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    """Every detector field of the compiled kernel equals the reference's: NaN at the same
    pixels, the :data:`EXACT` fields bit for bit, the others within :data:`ATOL`."""
    for f in FIELDS:
        np.testing.assert_array_equal(np.isnan(new[f]), np.isnan(ref[f]), err_msg=f"{f}: NaN where the other is not")
        if f in EXACT:
            np.testing.assert_array_equal(new[f], ref[f], err_msg=f)
        else:
            np.testing.assert_allclose(new[f], ref[f], rtol=0, atol=ATOL, equal_nan=True, err_msg=f)


VARIANTS = {
    "defaults": {},
    "k1-z3": dict(consecutive=1, z_threshold=3.0),
    "ndvi-trend-annual": dict(indices=("NDVI",), trend=True, harmonics=1),
    "nbr-mndwi-k3": dict(indices=("NBR", "MNDWI"), consecutive=3, min_baseline_obs=20),
}


@pytest.mark.parametrize("over", VARIANTS.values(), ids=VARIANTS.keys())
def test_compiled_kernel_matches_the_former_numpy_kernel(small_stack, small_config, monkeypatch, over):
    new = _fields(small_stack, small_config, **over)
    ref = _reference_fields(small_stack, small_config, monkeypatch, **over)
    assert_fields_match(new, ref)


def test_the_cube_exercises_the_rules_the_comparison_checks(small_stack, small_config, monkeypatch):
    """Not a vacuous comparison: disturbances, burns and several triggering indices are present,
    and a different confirmation rule (k = 3 in the reference) changes the outcome."""
    new = _fields(small_stack, small_config)
    dist = new["disturbed"] == 1
    assert dist.sum() > 100
    assert (new["burn"] == 1).sum() > 10  # the burn rules (no withdrawal, severe single look)
    assert (new["weak"] == 1).sum() > 0  # the weak, lasting, steady anomalies (a second confirmation pass; few since the seasonal rules)
    unsup = np.nansum(new["n_mon_unsupported"])
    assert 0.05 * np.nansum(new["n_mon_clear"]) < unsup < 0.9 * np.nansum(new["n_mon_clear"])  # the seasonal-support rules act, not everywhere
    single = dist & (new["n_confirm"] < small_config.detection.consecutive)
    assert (single & (new["burn"] == 0)).sum() > 5  # provisional: strong looks pending at the end of the window
    assert len(np.unique(new["trigger"][dist])) >= 2
    assert np.isfinite(new["sigma_ndvi"]).sum() > 0.9 * new["sigma_ndvi"].size
    other = _reference_fields(small_stack, small_config, monkeypatch, consecutive=small_config.detection.consecutive + 1)
    assert (other["disturbed"] != new["disturbed"]).sum() > 0
