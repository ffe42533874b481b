"""The scan's rasters: what each tile writes into the mosaics and the COGs made from them.

Stems, fields, data types, no-data values and descriptions of the detection rasters are here
(:data:`DETECTION_RASTERS`, :data:`CONTINUOUS`); the output folder's ``rasters/`` holds one COG
per stem (README, outputs table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from redline import assess, outputs
from redline.alerts import disturbed_mask
from redline.tiles import Mosaic, Tile

__all__ = ["CONTINUOUS", "DETECTION_RASTERS", "EVERYWHERE", "put_tile_rasters", "true_colour", "write_rasters"]


DETECTION_RASTERS = {
    # output file stem: (field, dtype, nodata, description)
    "disturbance_date": ("first_date", "int32", -1, "first anomalous observation, days since 1970-01-01"),
    "magnitude": ("magnitude", "float32", np.nan, "index drop of the triggering index (index units)"),
    "n_confirm": ("n_confirm", "int16", -1, "confirming anomalous observations"),
    "n_clear_monitor": ("n_mon_clear", "int16", -1, "clear observations in the monitor window"),
    "n_unsupported_monitor": ("n_mon_unsupported", "int16", -1,
                              "clear monitor observations without seasonal support (no clear baseline look on both sides of their day of year)"),
    "unsupported_months": ("unsupported_months", "int16", -1, "months (bit m-1 for month m) with a clear monitor observation without seasonal support"),
}


#: Detection rasters written at every pixel (the others only where disturbed).
EVERYWHERE = ("n_mon_clear", "n_mon_unsupported", "unsupported_months")


def true_colour(rgb: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 RGB of reflectance with one fixed stretch (0–0.3 reflectance → 1–255, gamma 1/1.6),
    the same for every scan so colours compare across scans; 0 = no data."""
    stack = np.stack([rgb["red"], rgb["green"], rgb["blue"]])
    valid = np.isfinite(stack).all(0)
    scaled = np.clip(np.nan_to_num(stack) / 0.3, 0, 1) ** (1 / 1.6)
    out = (1 + scaled * 254).astype("uint8")
    out[:, ~valid] = 0
    return out


#: Rasters of the scan's own, written per tile: stem → (field or None, dtype, nodata, description)
CONTINUOUS = {
    "ndvi_baseline": ("ndvi_base_gs", "growing-season mean NDVI of the baseline window"),
    "ndvi_monitor": ("ndvi_mon_gs", "growing-season mean NDVI of the monitor window"),
}


def put_tile_rasters(mosaic: Mosaic, tile: Tile, fields: dict[str, np.ndarray], rgb: dict[str, np.ndarray]) -> None:
    """Write one tile's detection rasters, NDVI means, observed mask and true colour into the mosaics."""
    disturbed = disturbed_mask(fields)  # weak pixels only where they join a patch (as in the alerts)
    for stem, (fname, dtype, nodata, desc) in DETECTION_RASTERS.items():
        data = fields[fname] if fname in EVERYWHERE else np.where(disturbed, fields[fname], np.nan)
        mosaic.put(stem, tile, np.where(np.isfinite(data), data, nodata).astype(dtype), nodata=nodata, description=desc)
    for stem, (fname, desc) in CONTINUOUS.items():
        mosaic.put(stem, tile, fields[fname].astype("float32"), nodata=np.nan, description=desc)
    mosaic.put("observed", tile, (np.nan_to_num(fields["n_mon_clear"]) >= 1).astype("float32"), nodata=np.nan,
               description="1 if seen clear at least once in the monitor window")
    mosaic.put("true_colour_monitor", tile, true_colour(rgb), nodata=0, description="monitor-window median true colour")


def write_rasters(out: Path, mosaic: Mosaic) -> dict[str, Path]:
    """The scan's COGs from the mosaics; FVC's end-members are fitted over the land pixels of
    the zones of the whole region (streamed block by block, :func:`redline.assess.land_ndvi`)."""
    rdir = out / outputs.RASTERS_DIR
    paths = {stem: mosaic.to_cog(stem, rdir / f"{stem}.tif") for stem in (*DETECTION_RASTERS, *CONTINUOUS, "observed", "true_colour_monitor")}
    blocks = list(mosaic.blocks())
    soil, veg = assess.fvc_end_members(assess.land_ndvi(mosaic, "monitor", blocks, stem="ndvi_monitor"))
    for w in blocks:
        mosaic.put_window("fvc_monitor", w, assess.fvc_from(mosaic.read("ndvi_monitor", w), soil, veg), nodata=np.nan,
                          description=f"fractional vegetation cover, NDVI soil {soil:.3f} / veg {veg:.3f}")
    paths["fvc_monitor"] = mosaic.to_cog("fvc_monitor", rdir / "fvc_monitor.tif")
    return paths
