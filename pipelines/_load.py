from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import odc.stac
import pandas as pd
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from redline.errors import LocalHrefWarning, StacError

log = logging.getLogger(__name__)

REFLECTANCE_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


@dataclass(frozen=True)
class ItemScaling:
    """How one item's DN become surface reflectance: ``refl = DN * scale + offset``.

    Parsed once from the item's ``raster:bands`` (STAC 1.0) at the boundary; ``nodata`` is the
    DN that marks no data. Recorded per item in the manifest.
    """

    item_id: str
    band: str
    scale: float
    offset: float
    nodata: float | None


def _asset_for(item: pystac.Item, band: str) -> pystac.Asset:
    if band in item.assets:
        return item.assets[band]
    for asset in item.assets.values():
        for b in asset.extra_fields.get("eo:bands", []) or []:
            if b.get("common_name") == band or b.get("name") == band:
                return asset
    raise StacError(f"item {item.id}: no asset for band '{band}' (asset keys: {', '.join(item.assets)}); use a profile that maps it")


def item_scaling(item: pystac.Item, band: str) -> ItemScaling:
    """Scale, offset and nodata of ``band`` in ``item`` from ``raster:bands`` (defaults 1, 0, None)."""
    asset = _asset_for(item, band)
    rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
    return ItemScaling(
        item_id=item.id,
        band=band,
        scale=float(rb.get("scale", 1.0)),
        offset=float(rb.get("offset", 0.0)),
        nodata=rb.get("nodata"),
    )


def _solar_day(item: pystac.Item) -> np.datetime64:
    """The local solar date of an item (UTC time shifted by longitude / 15 h), as odc-stac groups."""
    lon = 0.5 * (item.bbox[0] + item.bbox[2]) if item.bbox else 0.0
    t = pd.Timestamp(item.datetime).tz_convert(None) if pd.Timestamp(item.datetime).tzinfo else pd.Timestamp(item.datetime)
    return np.datetime64((t + pd.Timedelta(hours=lon / 15.0)).normalize(), "ns")


def local_href_patch(url: str) -> str:
    """Read a bare local path that a STAC API turned into ``http://host/abs/path`` as the file.

    By URL rules a bare ``/abs/path.tif`` href served by an API resolves against the API's
    host and 404s. When the local file exists, warn once and read the file instead.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.hostname in ("127.0.0.1", "localhost"):
        candidate = Path(parsed.path)
        if candidate.is_absolute() and candidate.exists():
            warnings.warn(
                f"asset href {url} is a bare local path resolved against the API host; reading {candidate}",
                LocalHrefWarning,
                stacklevel=2,
            )
            return str(candidate)
    if parsed.scheme == "file":
        return parsed.path
    return url


def load_reflectance(
    items: list[pystac.Item],
    geobox: GeoBox,
    *,
    bands: tuple[str, ...] = REFLECTANCE_BANDS,
    mask_band: str = "scl",
    chunk: int = 256,
) -> tuple[xr.Dataset, list[ItemScaling]]:
    """Load items lazily onto ``geobox`` as surface reflectance.

    Parameters
    ----------
    items
        STAC Items of one collection family (e.g. sentinel-2-c1-l2a).
    geobox
        The analysis grid (a UTM CRS, metres).
    bands
        Common band names to load; each becomes float32 reflectance (0–1), NaN where no data.
    mask_band
        The quality band (Sentinel-2 SCL), loaded as uint8 with nearest resampling.
    chunk
        Spatial chunk edge in pixels; time is one chunk per date.

    Returns
    -------
    (xarray.Dataset, list of ItemScaling)
        Dataset with dims ``(time, y, x)`` of dask arrays, one time step per solar day, and the
        scaling applied to each item and band (for the manifest). Nothing is read yet.
    """
    if not items:
        raise StacError("no scenes to load; widen the date window or the cloud-cover limit")
    scalings = [item_scaling(it, b) for it in items for b in bands]
    raw = odc.stac.load(
        items,
        bands=[*bands, mask_band],
        geobox=geobox,
        chunks={"x": chunk, "y": chunk},
        groupby="solar_day",
        resampling={mask_band: "nearest", "*": "bilinear"},
        patch_url=local_href_patch,
        fail_on_error=True,
    )
    days = pd.DatetimeIndex(raw.time.values).normalize()
    out = {}
    for band in bands:
        per_item = {(_solar_day(it)): item_scaling(it, band) for it in items}
        scale = xr.DataArray(np.array([per_item[np.datetime64(d, "ns")].scale for d in days], "float32"), dims="time", coords={"time": raw.time})
        offset = xr.DataArray(np.array([per_item[np.datetime64(d, "ns")].offset for d in days], "float32"), dims="time", coords={"time": raw.time})
        nodata = raw[band].attrs.get("nodata", 0)
        dn = raw[band]
        refl = (dn.astype("float32") * scale + offset).where(dn != nodata)
        out[band] = refl.astype("float32").assign_attrs(units="1", long_name=f"{band} surface reflectance")
    out[mask_band] = raw[mask_band]
    ds = xr.Dataset(out, coords=raw.coords, attrs={"crs": str(geobox.crs)})
    return ds, scalings
