"""The scan's COGs (``OUT/rasters/*.tif``): what each band holds and how its COG is written.

Every output raster has one :class:`CogSpec` in :data:`COGS` (one band per concept): a
:class:`BandKind` (data type, no-data value, overview resampling, unit), a description, and for
grades their category names and colour table. The writers (:mod:`redline.run.rasters`,
:mod:`redline.assess`) encode each band with :meth:`CogSpec.encode` and make the COG with
:func:`write_cog`, which writes:

- the band description and unit on every band (GDAL ``SetDescription`` / ``SetUnitType``; QGIS
  shows both), the description also as the dataset's ``description`` tag;
- overviews with the kind's resampling (GDAL COG driver ``OVERVIEW_RESAMPLING``; GDAL's default
  there is CUBIC, which invents dates and classes between real ones): NEAREST for dates, counts,
  flags and bit fields, MODE for grades (the most frequent class of the cell), AVERAGE only for
  continuous values and the true-colour image; the algorithm is also written as the dataset tag
  ``OVERVIEW_RESAMPLING`` (rio-cogeo's name for it);
- for grades, a colour table in the TIFF and the category names in the GDAL PAM sidecar
  ``<name>.tif.aux.xml`` (``CategoryNames``: GeoTIFF has no tag for them; GDAL, so QGIS and
  ``gdalinfo``, reads the sidecar with the file).

Units follow the CF conventions (v1.11): ``1`` for dimensionless values (§3.1: indices, fractions,
flags, grades), ``days since 1970-01-01`` for dates (§4.4), ``observations`` for counts of clear
or anomalous looks. Dates are int32 days since 1970-01-01 (UTC), the day of the first look that
counts; -1 is no-data.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp

__all__ = ["BandKind", "CogSpec", "COGS", "CONTINUOUS", "COUNT", "DATE", "FLAG", "GRADE", "BITS", "COLOUR", "write_cog"]


@dataclass(frozen=True)
class BandKind:
    """How one kind of band is stored: GDAL data type, no-data value, overview resampling
    (GDAL name) and its unit."""

    name: str
    dtype: str
    nodata: float | int
    resampling: str
    unit: str


CONTINUOUS = BandKind("continuous", "float32", float("nan"), "AVERAGE", "1")
DATE = BandKind("date", "int32", -1, "NEAREST", "days since 1970-01-01")
COUNT = BandKind("count", "int16", -1, "NEAREST", "observations")
BITS = BandKind("bits", "int16", -1, "NEAREST", "1")  # a bit field: any mixing would set bits no pixel had
FLAG = BandKind("flag", "uint8", 255, "NEAREST", "1")  # 0 no, 1 yes
GRADE = BandKind("grade", "uint8", 0, "MODE", "1")  # class codes 1…n, 0 none
COLOUR = BandKind("colour", "uint8", 0, "AVERAGE", "1")  # display values 1–255, 0 none


@dataclass(frozen=True)
class CogSpec:
    """One output raster: its kind, what it holds, and (grades) names and colours of its codes.

    ``band_names`` name the bands of a multi-band raster (else every band takes
    ``description``); ``categories`` are the names of codes 0, 1, 2 …; ``colours`` maps a code to
    an RGBA colour (0–255)."""

    kind: BandKind
    description: str
    band_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    colours: Mapping[int, tuple[int, int, int, int]] = field(default_factory=dict)

    def described(self, description: str) -> CogSpec:
        """The same spec with another description (e.g. the fitted end-members of FVC)."""
        return dataclasses.replace(self, description=description)

    def with_legend(self, categories: tuple[str, ...], colours: Mapping[int, tuple[int, int, int, int]]) -> CogSpec:
        """The same spec with category names (codes 0, 1, …) and a colour table."""
        return dataclasses.replace(self, categories=tuple(categories), colours=dict(colours))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """``values`` (any numeric array; NaN = none) in the kind's data type, no-data where not
        finite; whole numbers for integer kinds (dates, counts, flags and grades are whole)."""
        v = np.asarray(values)
        if np.issubdtype(v.dtype, np.floating):
            finite = np.isfinite(v)
            v = np.where(finite, v, self.kind.nodata)
            if self.kind.dtype != "float32":
                v = np.rint(v)
        return v.astype(self.kind.dtype, copy=False)


#: Every raster of ``OUT/rasters`` (file stem → spec); README "What make demo produces" lists them.
COGS: dict[str, CogSpec] = {
    # detection (redline.run.rasters, from the detector's fields; only where disturbed unless noted)
    "disturbance_date": CogSpec(DATE, "first anomalous observation of the disturbance (days since 1970-01-01)"),
    "magnitude": CogSpec(CONTINUOUS, "index drop of the triggering index (index units)"),
    "n_confirm": CogSpec(COUNT, "confirming anomalous observations"),
    "n_unsupported_monitor": CogSpec(COUNT, "clear monitor observations without seasonal support (no clear baseline look on both sides of their day of year)"),
    "unsupported_months": CogSpec(BITS, "months (bit m-1 for month m) with a clear monitor observation without seasonal support"),
    # observation and index means (redline.run.rasters in a scan, redline.assess in `redline assess`)
    "observed": CogSpec(FLAG, "1 if seen clear at least once in the monitor window"),
    "monitored": CogSpec(FLAG, "1 if the baseline window had enough clear observations for the detector"),
    "nclear_baseline": CogSpec(COUNT, "clear observations in the baseline window"),
    "nclear_monitor": CogSpec(COUNT, "clear observations in the monitor window"),
    "last_clear": CogSpec(DATE, "last clear observation, baseline start to monitor end (days since 1970-01-01)"),
    "ndvi_baseline": CogSpec(CONTINUOUS, "growing-season mean NDVI of the baseline window"),
    "ndvi_monitor": CogSpec(CONTINUOUS, "growing-season mean NDVI of the monitor window"),
    "ndvi_annual": CogSpec(CONTINUOUS, "growing-season mean NDVI per calendar year (band description = year)"),
    "true_colour_monitor": CogSpec(COLOUR, "monitor-window median true colour (0-0.3 reflectance to 1-255, gamma 1/1.6)",
                                   band_names=("red", "green", "blue")),
    # assessment (redline.assess)
    "fvc_baseline": CogSpec(CONTINUOUS, "fractional vegetation cover of the baseline window (0-1)"),
    "fvc_monitor": CogSpec(CONTINUOUS, "fractional vegetation cover of the monitor window (0-1)"),
    "rsei_baseline": CogSpec(CONTINUOUS, "RSEI of the baseline window, 0 (worst) - 1 (best)"),
    "rsei_monitor": CogSpec(CONTINUOUS, "RSEI of the monitor window, 0 (worst) - 1 (best)"),
    "rsei_change": CogSpec(CONTINUOUS, "RSEI monitor - baseline (pooled scale)"),
    "rsei_grade_baseline": CogSpec(GRADE, "RSEI grade of the baseline window: 1 差 poor, 2 较差 fair, 3 一般 moderate, 4 良 good, 5 优 excellent; 0 none"),
    "rsei_grade_monitor": CogSpec(GRADE, "RSEI grade of the monitor window: 1 差 poor, 2 较差 fair, 3 一般 moderate, 4 良 good, 5 优 excellent; 0 none"),
}


def _write_category_names(path: Path, categories: tuple[str, ...]) -> None:
    """GDAL's PAM sidecar ``<path>.aux.xml`` with band 1's category names (GDAL's
    ``GDALSetRasterCategoryNames``, which GeoTIFF keeps only there: gdal.org, "GDAL PAM")."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", {"band": "1"})
    names = ET.SubElement(band, "CategoryNames")
    for name in categories:
        ET.SubElement(names, "Category").text = name
    ET.indent(root)
    Path(f"{path}.aux.xml").write_bytes(ET.tostring(root, encoding="utf-8") + b"\n")


def write_cog(src: Path, dst: Path, spec: CogSpec, *, blocksize: int = 256) -> Path:
    """Write ``src`` (a GeoTIFF whose bands are already in ``spec.kind.dtype``) as the
    deflate-compressed COG ``dst``, with the spec's descriptions, units, colour table, category
    names and overview resampling (module docstring). GDAL streams the copy block by block.

    ``src`` takes the metadata first (the COG driver copies it; a COG cannot be edited after).

    Raises
    ------
    ValueError
        ``src`` is not in the spec's data type or no-data value (an encoding the writer forgot).
    """
    kind = spec.kind
    with rasterio.open(src, "r+") as ds:
        nodata_ok = ds.nodata is not None and (ds.nodata == kind.nodata or (np.isnan(ds.nodata) and np.isnan(kind.nodata)))
        if set(ds.dtypes) != {kind.dtype} or not nodata_ok:
            raise ValueError(f"{src}: bands {ds.dtypes} nodata {ds.nodata}; a {kind.name} raster is {kind.dtype} with nodata {kind.nodata}")
        names = list(spec.band_names) or [d if ds.count > 1 and d else spec.description for d in ds.descriptions]
        for i in range(ds.count):
            ds.set_band_description(i + 1, names[i])
            ds.set_band_unit(i + 1, kind.unit)
        ds.update_tags(description=spec.description, OVERVIEW_RESAMPLING=kind.resampling)
        if spec.colours:
            ds.write_colormap(1, dict(spec.colours))
        if ds.count == 3 and kind is COLOUR:
            ds.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    dst.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{dst}.aux.xml").unlink(missing_ok=True)
    with rasterio.Env(GDAL_CACHEMAX=128):
        rasterio.shutil.copy(src, dst, driver="COG", compress="DEFLATE", blocksize=blocksize, overview_resampling=kind.resampling)
    if spec.categories:
        _write_category_names(dst, spec.categories)
    return dst
