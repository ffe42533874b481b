"""Brute-force references for the tests: pixel coverage fractions by supersampling."""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio import features


def coverage_fractions(geom, transform: Affine, shape: tuple[int, int], k: int = 25) -> np.ndarray:
    """Fraction (0–1) of each pixel of a (rows, cols) grid covered by ``geom``, estimated by
    splitting every pixel into k × k sub-pixels and counting those whose centre is inside."""
    rows, cols = shape
    out = np.zeros(shape, dtype="float64")
    w, s, e, n = geom.bounds
    inv = ~transform
    ca, ra = inv * (w, n)
    cb, rb = inv * (e, s)
    r0, c0 = max(int(np.floor(min(ra, rb))), 0), max(int(np.floor(min(ca, cb))), 0)
    r1, c1 = min(int(np.ceil(max(ra, rb))), rows), min(int(np.ceil(max(ca, cb))), cols)
    h, wd = r1 - r0, c1 - c0
    if h <= 0 or wd <= 0:
        return out
    x0, y0 = transform * (c0, r0)
    fine = Affine(transform.a / k, 0.0, x0, 0.0, transform.e / k, y0)
    burned = features.rasterize([(geom, 1)], out_shape=(h * k, wd * k), transform=fine, fill=0, dtype="uint8")
    out[r0:r1, c0:c1] = burned.reshape(h, k, wd, k).mean(axis=(1, 3))
    return out


def weighted_mean(values: np.ndarray, cover: np.ndarray) -> float:
    """Σ c·v / Σ c over the pixels where ``values`` is finite."""
    ok = np.isfinite(values) & (cover > 0)
    return float((values[ok] * cover[ok]).sum() / cover[ok].sum())
