"""The scan's rasters: what each tile writes into the mosaics and the COGs made from them.

Which detector field each detection raster holds is here (:data:`DETECTION_RASTERS`,
:data:`CONTINUOUS`); data type, no-data, description, unit and overview resampling of every
output raster are in :data:`redline.cogs.COGS`. The output folder's ``rasters/`` holds one COG
per stem (README, outputs table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from redline import assess, outputs
from redline.alerts import disturbed_mask
from redline.cogs import COGS
from redline.tiles import Mosaic, Tile

__all__ = ["CONTINUOUS", "DETECTION_RASTERS", "EVERYWHERE", "put_tile_rasters", "true_colour", "write_rasters"]


#: Detection rasters: output file stem → the detector field it holds (redline.detect.FIELDS).
#: The clear observations of the monitor window are ``nclear_monitor``, written by the
#: assessment (:func:`redline.assess.lazy_inputs`): one raster per concept.
DETECTION_RASTERS = {
    "disturbance_date": "first_date",
    "magnitude": "magnitude",
    "n_confirm": "n_confirm",
    "n_unsupported_monitor": "n_mon_unsupported",
    "unsupported_months": "unsupported_months",
}


#: Detection rasters written at every pixel (the others only where disturbed).
EVERYWHERE = ("n_mon_unsupported", "unsupported_months")


def true_colour(rgb: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB of reflectance with one fixed stretch (0–0.3 reflectance → 1–255, gamma 1/1.6),
    the same for every scan so colours compare across scans; 0 = no data."""
    stack = np.stack([rgb["red"], rgb["green"], rgb["blue"]])
    valid = np.isfinite(stack).all(0)
    scaled = np.clip(np.nan_to_num(stack) / 0.3, 0, 1) ** (1 / 1.6)
    out = (1 + scaled * 254).astype("uint8")
    out[:, ~valid] = 0
    return out


#: Rasters of the scan's own, written per tile: stem → the detector field it holds
CONTINUOUS = {
    "ndvi_baseline": "ndvi_base_gs",
    "ndvi_monitor": "ndvi_mon_gs",
}


def _put(mosaic: Mosaic, stem: str, tile: Tile, values: np.ndarray) -> None:
    spec = COGS[stem]
    mosaic.put(stem, tile, spec.encode(values), nodata=spec.kind.nodata, description=spec.description)


def put_tile_rasters(mosaic: Mosaic, tile: Tile, fields: dict[str, np.ndarray], rgb: dict[str, np.ndarray]) -> None:
    """Write one tile's detection rasters, NDVI means, observed flag and true colour into the
    mosaics, each in its type of :data:`redline.cogs.COGS`."""
    disturbed = disturbed_mask(fields)  # weak pixels only where they join a patch (as in the alerts)
    for stem, fname in DETECTION_RASTERS.items():
        _put(mosaic, stem, tile, fields[fname] if fname in EVERYWHERE else np.where(disturbed, fields[fname], np.nan))
    for stem, fname in CONTINUOUS.items():
        _put(mosaic, stem, tile, fields[fname])
    _put(mosaic, "observed", tile, np.nan_to_num(fields["n_mon_clear"]) >= 1)
    _put(mosaic, "true_colour_monitor", tile, true_colour(rgb))


def write_rasters(out: Path, mosaic: Mosaic) -> dict[str, Path]:
    """The scan's COGs from the mosaics; FVC's end-members are fitted over the land pixels of
    the zones of the whole region (streamed block by block, :func:`redline.assess.land_ndvi`)."""
    rdir = out / outputs.RASTERS_DIR
    paths = {stem: mosaic.to_cog(stem, rdir / f"{stem}.tif", COGS[stem])
             for stem in (*DETECTION_RASTERS, *CONTINUOUS, "observed", "true_colour_monitor")}
    blocks = list(mosaic.blocks())
    soil, veg = assess.fvc_end_members(assess.land_ndvi(mosaic, "monitor", blocks, stem="ndvi_monitor"))
    spec = COGS["fvc_monitor"].described(f"fractional vegetation cover of the monitor window (0-1), NDVI soil {soil:.3f} / veg {veg:.3f}")
    for w in blocks:
        mosaic.put_window("fvc_monitor", w, spec.encode(assess.fvc_from(mosaic.read("ndvi_monitor", w), soil, veg)),
                          nodata=spec.kind.nodata, description=spec.description)
    paths["fvc_monitor"] = mosaic.to_cog("fvc_monitor", rdir / "fvc_monitor.tif", spec)
    return paths
