"""Deterministic demo scenes: a generated Sentinel-2 L2A-like landscape with injected
disturbances and ground truth.

:func:`generate_demo` writes Cloud-Optimized GeoTIFFs and STAC Items in Earth Search v1
``sentinel-2-c1-l2a`` conventions (UTM 48N, EPSG:32648; reflectance = DN × 0.0001 − 0.1),
red-line zones and counties (EPSG:4490), ground truth (EPSG:4326) and a scan config. The
``redline demo`` command serves a build on the embedded STAC API and scans it; the tests and
the accuracy benchmark score scans against its truth. Not real data.

Command line: ``python -m redline.demo OUT_DIR [--preset demo|small] [--seed N]``.

The generator's parts are modules of this package: :mod:`~redline.demo.landscape` (grid,
land cover, zones, counties), :mod:`~redline.demo.spectra` (spectra and phenology),
:mod:`~redline.demo.events` (the disturbances of the monitor year), :mod:`~redline.demo.scenes`
(one acquisition: surface, atmosphere, SCL, DN), :mod:`~redline.demo.stac` (Items and
Collection) and :mod:`~redline.demo.build` (the build and its random streams).
"""

from redline.demo.build import GENERATOR_VERSION, PRESETS, DemoScenes, Preset, generate_demo

__all__ = ["generate_demo", "DemoScenes", "PRESETS", "Preset", "GENERATOR_VERSION"]
