"""Deterministic demo scenes: a generated Sentinel-2 L2A-like landscape with injected
disturbances and ground truth.

:func:`generate_demo` writes Cloud-Optimized GeoTIFFs and STAC Items in Earth Search v1
``sentinel-2-c1-l2a`` conventions (UTM 48N, EPSG:32648; reflectance = DN × 0.0001 − 0.1),
red-line zones and counties (EPSG:4490), ground truth (EPSG:4326) and a scan config. The
``redline demo`` command serves a build on the embedded STAC API and scans it; the tests and
the accuracy benchmark score scans against its truth. Not real data.

Command line: ``python -m redline.demo OUT_DIR [--preset demo|small] [--seed N]``.
"""

from redline.demo._build import GENERATOR_VERSION, PRESETS, DemoScenes, Preset, generate_demo

__all__ = ["generate_demo", "DemoScenes", "PRESETS", "Preset", "GENERATOR_VERSION"]
