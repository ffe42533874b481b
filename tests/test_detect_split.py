"""The detector in two halves (issue #26: a stored baseline model, the monitor run on new looks):
:func:`redline.detect.fit_baseline` on the baseline looks, then :func:`redline.detect.monitor`
on the monitor looks, give :func:`redline.detect.detect`'s fields bit for bit — on the generated
`small` cube with its events and on the real Slovenian Sentinel-2 series (leaf fall, snow) with a
real clearing pasted in — and the monitor half judges any later part of the window as the whole
detector would over the dates seen so far."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from redline.detect import FIELDS, detect, fit_baseline, model_channels, monitor
from tests.test_detect_kernel import small_stack  # noqa: F401  (fixture)
from tests.test_real_data import slovenia_stack


def _in(stack, window):
    t = stack["time"].values.astype("datetime64[D]")
    return stack.isel(time=np.flatnonzero((t >= np.datetime64(window[0])) & (t <= np.datetime64(window[1]))))


def _compute(ds):
    with dask.config.set(scheduler="synchronous"):
        return ds.compute()


def _both(stack, baseline, window, **kw):
    """detect() over the whole stack and fit_baseline() + monitor() over its two windows."""
    whole = _compute(detect(stack, baseline=baseline, monitor=window, **kw))
    fit_kw = {k: kw[k] for k in ("indices", "harmonics", "trend", "min_baseline_obs") if k in kw}
    model = fit_baseline(_in(stack, baseline), **fit_kw)
    halves = _compute(monitor(model, _in(stack, window), monitor=window,
                              **{k: kw[k] for k in ("z_threshold", "consecutive") if k in kw}))
    return whole, halves, _compute(model)


def _assert_identical(whole, halves):
    for f in FIELDS:
        a, b = whole[f].values, halves[f].values
        assert np.array_equal(a, b, equal_nan=True), (f, int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum()))


@pytest.mark.parametrize("over", [{}, {"trend": True, "harmonics": 1, "consecutive": 3}, {"indices": ("NDVI",), "min_baseline_obs": 8, "z_threshold": 3.0}])
def test_fit_then_monitor_equals_detect_on_the_generated_cube(small_stack, small_config, over):  # noqa: F811
    d = small_config.detection
    kw = dict(indices=tuple(d.indices), z_threshold=d.z_threshold, consecutive=d.consecutive, harmonics=d.harmonics, trend=d.trend,
              min_baseline_obs=d.min_baseline_obs) | over
    baseline = (str(small_config.baseline.start), str(small_config.baseline.end))
    window = (str(small_config.monitor.start), str(small_config.monitor.end))
    whole, halves, model = _both(small_stack.chunk({"y": 64, "x": 64}), baseline, window, **kw)
    assert int(np.nansum(whole["disturbed"].values)) > 100  # the cube's events are found: the comparison covers disturbances
    _assert_identical(whole, halves)
    # the model says what it is: β per variable and term, σ floored, n_base as counted
    assert list(model["model"]["channel"].values) == model_channels(kw["harmonics"], kw["trend"])
    n_base = model["model"].sel(channel="n_base").values
    assert np.array_equal(n_base, whole["n_base_clear"].values)
    assert np.array_equal(model["clear"].sum("time").values, n_base)
    fitted = n_base >= kw["min_baseline_obs"]
    assert np.isfinite(model["model"].sel(channel="sigma_NDVI").values[fitted]).all()
    assert np.isnan(model["model"].sel(channel="sigma_NDVI").values[~fitted]).all()
    assert (model["model"].sel(channel="sigma_NDVI").values[fitted] >= 0.02).all()  # SIGMA_FLOOR["NDVI"]


def test_fit_then_monitor_equals_detect_on_the_real_series_leaf_fall_snow_and_a_clearing():
    """The real Slovenian series: 2017 whole (leaf fall, snow: looks without seasonal support),
    then with a real clearing pasted in (a field's post-harvest bare-soil NDVI over a forest
    block from June on)."""
    stack, lulc = slovenia_stack()
    baseline, window = ("2015-07-01", "2016-12-31"), ("2017-01-01", "2017-12-31")
    whole, halves, _ = _both(stack, baseline, window)
    assert np.nansum(whole["n_mon_unsupported"].values) > 0
    _assert_identical(whole, halves)
    data = stack.values.copy()
    t = stack["time"].values.astype("datetime64[D]")
    after = t >= np.datetime64("2017-06-01")
    forest = np.argwhere(lulc == 2)
    y0, x0 = forest[len(forest) // 2]
    data[0, after, y0:y0 + 12, x0:x0 + 12] = np.where(np.isfinite(data[0, after, y0:y0 + 12, x0:x0 + 12]), 0.15, np.nan)
    cleared = stack.copy(data=data).chunk({"x": 50, "y": 50})
    whole, halves, _ = _both(cleared, baseline, window)
    assert whole["disturbed"].values[y0:y0 + 12, x0:x0 + 12].mean() > 0.5
    _assert_identical(whole, halves)


def test_monitor_on_the_looks_so_far_equals_detect_on_the_dates_so_far(small_stack, small_config):  # noqa: F811
    """A scheduled scan: the same stored model judges the monitor looks seen up to each of three
    dates as detect() does on the dates up to then (the incremental runs of issue #26)."""
    baseline = (str(small_config.baseline.start), str(small_config.baseline.end))
    window = (str(small_config.monitor.start), str(small_config.monitor.end))
    stack = small_stack.chunk({"y": 64, "x": 64})
    model = _compute(fit_baseline(_in(stack, baseline)))
    mon = _in(stack, window)
    n = mon.sizes["time"]
    for upto in (n // 3, 2 * n // 3, n):
        seen = mon.isel(time=slice(0, upto))
        until = str(seen["time"].values[-1])[:10]
        so_far = stack.isel(time=slice(0, stack.sizes["time"] - n + upto))
        whole = _compute(detect(so_far, baseline=baseline, monitor=window))
        halves = _compute(monitor(model, seen, monitor=window))
        _assert_identical(whole, halves)
        assert str(so_far["time"].values[-1])[:10] == until


def test_monitor_refuses_looks_not_after_the_baseline(small_stack, small_config):  # noqa: F811
    baseline = (str(small_config.baseline.start), str(small_config.baseline.end))
    model = fit_baseline(_in(small_stack, baseline))
    with pytest.raises(ValueError, match="not after the baseline's last date"):
        monitor(model, _in(small_stack, baseline).isel(time=slice(-3, None)), monitor=baseline)
