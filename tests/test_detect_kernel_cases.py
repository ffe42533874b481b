"""The compiled kernel against the former numpy kernel (tests/_reference.py) on a made-up cube
that puts the rules' cases side by side, beside the generated `small` cube of
tests/test_detect_kernel.py: clearings, burns, water drying out, a transient dip that is
withdrawn, a weak lasting shift on a noisy surface, pixels too short to monitor, a baseline blind
in autumn, never-clear pixels and a non-finite value, and a variable no scene has (``present``)."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

from redline import detect as detect_module
from redline.detect import FIELDS, STACK_VARS, detect

from tests._reference import reference_kernel
from tests.test_detect_kernel import assert_fields_match

V = {v: i for i, v in enumerate(STACK_VARS)}
BASELINE = ("2021-01-01", "2022-12-31")
MONITOR = ("2023-01-01", "2023-12-31")


def _cube(seed: int = 5, ny: int = 24, nx: int = 30) -> xr.DataArray:
    """(var, time, y, x) float32, NaN = unclear: 3 years of looks every 6–14 days; one case per
    band of rows, its events starting later along x and each pixel's of its own size, so that
    every threshold is crossed by some pixels and not by others."""
    rng = np.random.default_rng(seed)
    days = np.cumsum(rng.integers(6, 15, 120))
    times = np.datetime64("2021-01-02") + days[days < 3 * 365].astype("timedelta64[D]")
    nt = len(times)
    frac = (times - times.astype("datetime64[Y]")).astype(float) / 365.25
    season = np.cos(2 * np.pi * frac)[:, None, None]
    level = np.array([0.6, -0.35, 0.45, 0.1, -0.1, 0.12])  # NDVI MNDWI NBR BI NDBI ALB on land
    amp = np.array([0.2, 0.05, 0.12, -0.05, -0.05, -0.02])
    rows = np.arange(ny)[:, None]
    double = 1 + (rows % 3 == 2)  # every third row: seasons twice as strong
    x = np.broadcast_to(level[:, None, None, None] + amp[:, None, None, None] * season[None] * double[None, None], (6, nt, ny, nx)).copy()
    water = np.arange(ny) >= ny - 4
    x[V["MNDWI"]][:, water] += 0.7
    x[V["NDVI"]][:, water] -= 0.5
    noisy = (rows >= 14) & (rows < 20)  # a noisier surface: the weak shift and the burn seen once below
    x += rng.normal(0, 0.02, x.shape) * np.where(noisy, 3.0, 1.0)[None, None]
    start = np.datetime64("2023-03-01") + (np.arange(nx) * 7).astype("timedelta64[D]")
    since = (times[:, None] - start[None, :]).astype(float)[:, None, :]  # (t, 1, x) days since the event
    size = rng.uniform(0.3, 1.5, (ny, nx))  # each pixel's event magnitude

    def event(r0, r1, shifts, days=np.inf):
        on = (since >= 0) & (since < days) & ((rows >= r0) & (rows < r1))[None]
        for var, d in shifts.items():
            x[V[var]] += np.where(on, d * size, 0.0)

    event(0, 5, {"NDVI": -0.45, "NBR": -0.3, "ALB": 0.06})  # clearing: brighter
    event(5, 10, {"NBR": -0.6, "NDVI": -0.3, "ALB": -0.04})  # burn: darker, drier
    event(10, 14, {"NDVI": -0.4, "NBR": 0.1}, days=40)  # snow-like dip: withdrawn
    event(14, 17, {"NDVI": -0.18, "NBR": -0.06})  # about 3σ on the noisy surface: weak, lasting
    event(17, 20, {"NBR": -0.7, "NDVI": -0.25, "ALB": -0.04}, days=12)  # a burn seen once, then green
    event(ny - 4, ny, {"MNDWI": -0.8, "ALB": 0.05})  # water drying out
    clear = rng.random((nt, ny, nx)) > rng.uniform(0.1, 0.6, (1, ny, nx))
    autumn = ((frac > 0.72) & (frac < 0.95) & (times < np.datetime64(MONITOR[0])))[:, None, None]
    clear &= ~(autumn & (np.arange(nx) % 4 == 0))  # a baseline blind in autumn: unsupported looks
    clear[:, :, -2:] &= rng.random((nt, ny, 2)) < 0.08  # too few clear baseline looks to be monitored
    clear[:, :2, :2] = False  # never clear
    x[:, ~clear] = np.nan
    x[V["NBR"], 3, 3, 3] = np.inf  # a non-finite value is not a clear look
    return xr.DataArray(x.astype("float32"), dims=("var", "time", "y", "x"),
                        coords={"var": list(STACK_VARS), "time": times.astype("datetime64[ns]")})


def _fields(stack: xr.DataArray, **kw) -> dict[str, np.ndarray]:
    ds = detect(stack.chunk({"y": 16, "x": 16}), baseline=BASELINE, monitor=MONITOR, **kw)
    with dask.config.set(scheduler="synchronous"):
        ds = ds.compute()
    return {f: ds[f].values for f in FIELDS}


VARIANTS = {
    "defaults": {},
    "k1-z3-harmonics3": dict(consecutive=1, z_threshold=3.0, harmonics=3),
    "ndvi-trend-k3": dict(indices=("NDVI",), trend=True, consecutive=3, min_baseline_obs=20),
    "mndwi-nbr-annual": dict(indices=("MNDWI", "NBR"), harmonics=1, min_baseline_obs=6),
    "no-ndbi": dict(present=tuple(v for v in STACK_VARS if v != "NDBI")),
}


@pytest.fixture(scope="module")
def cube() -> xr.DataArray:
    return _cube()


@pytest.mark.parametrize("over", VARIANTS.values(), ids=VARIANTS.keys())
def test_compiled_kernel_matches_the_former_numpy_kernel_on_every_case(cube, monkeypatch, over):
    stack = cube
    if "present" in over:
        stack = cube.where(cube["var"] != "NDBI")  # a band no scene has: NaN throughout
    new = _fields(stack, **over)
    with monkeypatch.context() as m:
        m.setattr(detect_module, "chunk_kernel", lambda b, **kw: reference_kernel(b.transpose(2, 3, 0, 1), **kw).transpose(2, 0, 1))
        ref = _fields(stack, **over)
    assert_fields_match(new, ref)


def test_the_cases_are_there(cube):
    """Not a vacuous comparison: each case reaches the rule it is for."""
    f = _fields(cube)
    dist = f["disturbed"] == 1
    assert dist[:5].mean() > 0.5  # clearings
    assert (f["burn"][5:10] == 1).mean() > 0.4  # burns
    assert (dist[10:14].mean() < 0.1) and (np.nansum(f["n_mon_clear"][10:14]) > 0)  # the dip is withdrawn
    assert (f["weak"][14:17] == 1).sum() > 0  # weakly disturbed: the second confirmation pass
    assert (dist[17:20] & (f["n_confirm"][17:20] < 2) & (f["burn"][17:20] == 1)).sum() > 5  # a severe burn look confirms alone
    assert (f["trigger"][-4:][dist[-4:]] == V["MNDWI"]).mean() > 0.5  # water drying out, on MNDWI
    assert 0 < np.nansum(f["n_mon_unsupported"][:, :-2]) < 0.2 * np.nansum(f["n_mon_clear"])  # the autumn-blind baselines
    assert (f["n_base_clear"][:, -2:] < 12).all()  # not monitored ...
    assert (f["n_mon_unsupported"][:, -2:] == f["n_mon_clear"][:, -2:]).all()  # ... every clear look unjudged
    assert (f["n_base_clear"][:2, :2] == 0).all() and np.isnan(f["last_clear"][:2, :2]).all()
