"""The STAC catalogue of a scan's output folder: ``catalog.json`` and one Item for the scan,
``<scan_id>/<scan_id>.json``, with every output file of ``OUT`` as an asset.

A self-contained STAC 1.1 catalogue (stac-spec v1.1.0 best practices, "Self-contained
Catalogs"): every link and asset href is relative, so the folder can be moved, copied or served
over HTTP as it is (:func:`serve_catalog`). The Item is made from the folder alone, after every
output it lists exists: the interval, scan id, software and checksums from ``manifest.json``,
the footprint from ``zones.geojson``, the grid, data types and no-data of each raster from the
COG itself. It declares the projection (v2.0.0), raster (v1.1.0), file (v2.1.0) and processing
(v1.2.0) extensions. :func:`write_catalog` then adds the catalogue's own files to the manifest
and signs it again, so ``redline verify`` covers them; the manifest, in turn, carries no
checksum in the catalogue (it cannot hold its own). May import :mod:`redline.outputs`,
:mod:`redline.provenance` and :mod:`redline.errors`; the scan and ``redline map`` call it last.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import json
import logging
import math
import mimetypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
import rasterio
import shapely
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Sampling

from redline import outputs, provenance
from redline.errors import OutputsError, RedlineInputError

if TYPE_CHECKING:
    from redline.register.keys import SigningKey

__all__ = ["write_catalog", "catalog_files", "serve_catalog", "COG", "PROCESSING_SCHEMA"]

log = logging.getLogger(__name__)

#: stac-spec v1.1.0 best practices, "Common Media Types in STAC"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
#: The processing extension's schema (github.com/stac-extensions/processing, v1.2.0); pystac has
#: no class for it, its four fields are written directly.
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#: multihash of a sha2-256 digest: function code 0x12, digest length 0x20 bytes, then the digest
#: (multiformats multihash and its multicodec table), as the file extension v2.1.0 asks of
#: ``file:checksum``.
_SHA2_256_MULTIHASH = "1220"
#: Decimal places of the footprint's coordinates: 1e-7° is ≤ 1.1 cm (RFC 7946 §11.2: more
#: precision than needed only adds size).
_DECIMALS = 7

#: suffix → media type. Registered types (IANA; GeoJSON RFC 7946, CSV RFC 4180, GeoPackage OGC
#: 12-128r18 §4.1.1, GPX application/gpx+xml, KML OGC 07-147r2) and stac-spec's COG type.
_MEDIA_TYPES = {
    ".tif": COG, ".geojson": pystac.MediaType.GEOJSON, ".csv": "text/csv", ".gpkg": pystac.MediaType.GEOPACKAGE,
    ".json": pystac.MediaType.JSON, ".html": pystac.MediaType.HTML, ".pdf": "application/pdf", ".png": pystac.MediaType.PNG,
    ".svg": "image/svg+xml", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".gpx": "application/gpx+xml", ".kml": pystac.MediaType.KML, ".kmz": "application/vnd.google-earth.kmz",
    ".xml": pystac.MediaType.XML,  # a COG's GDAL sidecar (``.tif.aux.xml``: a grade raster's category names)
}
#: Titles of the output folder's named files (redline.outputs)
_TITLES = {
    outputs.ALERTS_GEOJSON: "alerts of this scan", outputs.ZONES_GEOJSON: "zones with their statistics",
    outputs.ADMIN_GEOJSON: "counties with their statistics", outputs.ZONE_STATS_CSV: "statistics per zone",
    outputs.ADMIN_STATS_CSV: "statistics per county", outputs.NDVI_ANNUAL_CSV: "annual NDVI per zone",
    outputs.ASSESSMENT_GPKG: "assessment layers", outputs.ASSESSMENT_JSON: "assessment methods and parameters",
    outputs.MANIFEST_JSON: "provenance manifest (signed; checksums of every other file)", outputs.MAP_HTML: "interactive map (offline)",
    outputs.REPORT_HTML: "supervision report", outputs.REGISTER_GPKG: "alert register (signed review history)",
}


def write_catalog(out: Path, *, key: SigningKey) -> list[Path]:
    """Write ``OUT``'s STAC catalogue from the folder as it is now, and record its files in the
    manifest (signed again with ``key``).

    The previous catalogue of the folder (``catalog.json`` and the Items it links, e.g. of an
    earlier scan id) is removed first. Every output file is an asset
    (:func:`redline.provenance.output_files`, plus ``manifest.json``): not the SQLite sidecars
    and lock of a register, the map's copies of web libraries (``lib/``) or field photos.

    Parameters
    ----------
    out
        A finished scan's output folder: ``manifest.json`` (with ``scan_id``) and
        ``zones.geojson`` (EPSG:4326) in it.
    key
        The installation's signing key (the manifest is signed again).

    Returns
    -------
    list of Path
        ``catalog.json`` and the Item's JSON file.

    Raises
    ------
    OutputsError
        ``out`` is not a scan's output folder (no manifest, or one without ``scan_id``).
    """
    out = Path(out)
    manifest = provenance.read_manifest(out)
    if not manifest.get("scan_id"):
        raise OutputsError(f"{out / outputs.MANIFEST_JSON}: not a scan's manifest (no scan_id); a STAC catalogue is written for scans only")
    resolved = (manifest.get("config") or {}).get("resolved") or {}
    for window in ("baseline", "monitor"):
        if not {"start", "end"} <= set(resolved.get(window) or {}):
            raise OutputsError(f"{out / outputs.MANIFEST_JSON}: no config.resolved.{window} start and end; run the scan again to write its STAC catalogue")
    old = catalog_files(out)
    for f in old:
        f.unlink()
        if f.parent != out:
            with contextlib.suppress(OSError):  # the Item's folder, when now empty
                f.parent.rmdir()
    item = _item(out, manifest, sorted([*provenance.output_files(out), out / outputs.MANIFEST_JSON]))
    cat = pystac.Catalog(id=manifest["scan_id"], title=f"redline scan {manifest['scan_id']}",
                         description=f"redline scan {manifest['scan_id']}: alerts, rasters, tables, figures, map, report and provenance of the scan")
    cat.add_item(item)
    cat.normalize_hrefs(str(out.resolve()))
    cat.make_all_asset_hrefs_relative()
    # the manifest lists every library version: processing extension v1.2.0 "processing-software"
    item.add_link(pystac.Link("processing-software", pystac.utils.make_relative_href(str((out / outputs.MANIFEST_JSON).resolve()), item.get_self_href()),
                              media_type=pystac.MediaType.JSON, title="manifest.json: software and library versions"))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    written = catalog_files(out)
    rels = {f.relative_to(out).as_posix() for f in written}
    provenance.record_outputs(out, written, key=key, dropped=tuple(r for r in (f.relative_to(out).as_posix() for f in old) if r not in rels))
    log.info("STAC catalogue %s: 1 item, %d assets", out / outputs.CATALOG_JSON, len(item.assets))
    return written


def catalog_files(out: Path) -> list[Path]:
    """The files of ``OUT``'s STAC catalogue as they are: ``catalog.json`` and the STAC Item
    files it links that lie in ``out`` (empty without a catalogue)."""
    root = Path(out) / outputs.CATALOG_JSON
    if not root.is_file():
        return []
    try:
        links = json.loads(root.read_text(encoding="utf-8")).get("links", [])
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return [root]
    base = Path(out).resolve()
    items = []
    for link in links if isinstance(links, list) else []:
        href = link.get("href", "") if isinstance(link, dict) else ""
        if link.get("rel") == "item" and "://" not in href and not href.startswith("/"):
            p = (root.parent / href).resolve()
            if p.is_file() and p.is_relative_to(base) and _is_stac_item(p):
                items.append(Path(out) / p.relative_to(base))
    return [root, *items]


def _is_stac_item(path: Path) -> bool:
    """True for a STAC Item's JSON file (never an output a damaged catalogue links as an item)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc


def _item(out: Path, manifest: dict[str, Any], files: list[Path]) -> pystac.Item:
    """The scan's Item: footprint, monitored interval, baseline window, processing fields and an
    asset per file of ``files`` (absolute hrefs; made relative when the catalogue is saved)."""
    cfg = manifest["config"]["resolved"]
    monitor, baseline = cfg["monitor"], cfg["baseline"]
    geom = _footprint(out, manifest)
    version = str(manifest.get("redline_version") or "unknown")
    item = pystac.Item(
        id=manifest["scan_id"], geometry=shapely.geometry.mapping(geom), bbox=[round(v, _DECIMALS) for v in geom.bounds],
        # the monitored interval has no single nominal time: datetime null with start/end
        # (stac-spec v1.1.0 item-spec "datetime"; common metadata "Date and Time Range")
        datetime=None, start_datetime=_day(monitor["start"]), end_datetime=_day(monitor["end"], end=True),
        properties={
            "title": f"redline scan {manifest['scan_id']}",
            "description": f"disturbances found in the monitor window {monitor['start']} to {monitor['end']} against the baseline "
                           f"{baseline['start']} to {baseline['end']}, with the zones' and counties' assessment",
            "redline:scan_id": manifest["scan_id"],
            "redline:baseline_start": _day(baseline["start"]).isoformat().replace("+00:00", "Z"),
            "redline:baseline_end": _day(baseline["end"], end=True).isoformat().replace("+00:00", "Z"),
            "processing:software": {"redline": version},
            "processing:lineage": _lineage(manifest),
        },
    )
    if manifest.get("finished"):
        item.properties["processing:datetime"] = _utc(manifest["finished"])
        item.common_metadata.created = dt.datetime.fromisoformat(manifest["finished"]).astimezone(dt.timezone.utc)
    item.stac_extensions.append(PROCESSING_SCHEMA)
    checksums = manifest.get("outputs") or {}
    for f in files:
        rel = f.relative_to(out).as_posix()
        asset_key = _asset_key(rel)
        if asset_key in item.assets:
            raise OutputsError(f"{out}: {rel} and another file give the same STAC asset key {asset_key!r}; rename one of them")
        asset = pystac.Asset(href=str(f.resolve()), media_type=_MEDIA_TYPES.get(f.suffix.lower()) or mimetypes.guess_type(f.name)[0],
                             roles=_roles(rel), title=_TITLES.get(rel) or _title(rel))
        item.add_asset(asset_key, asset)
        if rel in checksums:  # written from the manifest: a file changed since is caught by `redline verify`
            FileExtension.ext(asset, add_if_missing=True).apply(checksum=_SHA2_256_MULTIHASH + checksums[rel]["sha256"], size=int(checksums[rel]["size"]))
        if f.suffix.lower() == ".tif":
            _describe_raster(f, asset)
    return item


def _asset_key(rel: str) -> str:
    """The asset key of a file (stable, readable, without ``.`` or ``/``): a COG of ``rasters/``
    by its stem (the band name odc-stac and titiler use), any other file by its path with ``/``
    and ``.`` as ``_`` (``figures/overview.svg`` → ``figures_overview_svg``)."""
    parts = rel.split("/")
    if parts[0] == outputs.RASTERS_DIR and len(parts) == 2 and rel.endswith(".tif"):
        return parts[1][: -len(".tif")]
    return rel.replace("/", "_").replace(".", "_")


def _roles(rel: str) -> list[str]:
    """Asset roles (stac-spec v1.1.0 best practices, "List of Asset Roles"; ``chip``, ``figure``,
    ``map`` and ``report`` are redline's own, beside the standard one where one fits)."""
    parts = rel.split("/")
    suffix = Path(rel).suffix.lower()
    if parts[0] == outputs.CHIPS_DIR:
        return ["graphic", "chip"]
    if parts[0] == outputs.FIGURES_DIR:
        return ["graphic", "figure"]
    if rel in (outputs.MANIFEST_JSON, outputs.ASSESSMENT_JSON) or rel.endswith(".aux.xml"):
        return ["metadata"]
    if suffix in (".png", ".jpg") and len(parts) == 1:  # the map's base composite: the whole area, for people
        return ["overview"]
    if suffix == ".html" and rel == outputs.MAP_HTML:
        return ["map"]
    if suffix in (".html", ".pdf"):
        return ["report"]
    return ["data"]


def _title(rel: str) -> str:
    """A readable title for a file without one in :data:`_TITLES`."""
    parts = rel.split("/")
    stem = Path(rel).stem
    if parts[0] == outputs.CHIPS_DIR:
        alert, _, when = stem.rpartition("_")
        return f"{when} chip of alert {alert}" if alert else stem
    if parts[0] == outputs.FIGURES_DIR:
        return f"figure {stem} ({Path(rel).suffix.lstrip('.').upper()})"
    if parts[0] == outputs.RASTERS_DIR:
        return stem.replace("_", " ")
    return f"{stem.replace('_', ' ')} ({Path(rel).suffix.lstrip('.').upper()})"


def _describe_raster(path: Path, asset: pystac.Asset) -> None:
    """Projection and raster fields of a COG's asset, read from the file: CRS code, shape and
    affine transform; per band its data type, no-data, unit, scale/offset, sampling and
    description. A three-band RGB COG is also a ``visual`` asset."""
    with rasterio.open(path) as src:
        epsg = src.crs.to_epsg() if src.crs else None
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        proj.apply(code=f"EPSG:{epsg}" if epsg else None, wkt2=None if epsg or not src.crs else src.crs.to_wkt(),
                   shape=[src.height, src.width], transform=list(src.transform)[:6])
        # GDAL's AREA_OR_POINT tag: a pixel is an area or a point sample (raster extension "sampling")
        sampling = {"area": Sampling.AREA, "point": Sampling.POINT}.get(str(src.tags().get("AREA_OR_POINT", "")).lower())
        bands = []
        for i in range(src.count):
            band = RasterBand.create(nodata=_nodata(src.nodata), data_type=_data_type(src.dtypes[i]), unit=src.units[i] or None,
                                     scale=src.scales[i] if src.scales[i] != 1 else None, offset=src.offsets[i] if src.offsets[i] != 0 else None,
                                     sampling=sampling, spatial_resolution=float(abs(src.res[0])) if src.crs and src.crs.is_projected else None)
            if src.descriptions[i]:
                band.properties["description"] = src.descriptions[i]
            bands.append(band)
        RasterExtension.ext(asset, add_if_missing=True).apply(bands)
        if src.tags().get("description"):
            asset.description = src.tags()["description"]
        if src.count == 3 and [c.name for c in src.colorinterp] == ["red", "green", "blue"]:
            asset.roles = ["visual", "data"]


def _data_type(dtype: str) -> DataType:
    """The raster extension's data type of a rasterio/numpy dtype name (``complex64`` →
    ``cfloat32``, anything unknown ``other``)."""
    dtype = {"complex64": "cfloat32", "complex128": "cfloat64", "complex_int16": "cint16"}.get(dtype, dtype)
    return DataType(dtype) if dtype in {d.value for d in DataType} else DataType.OTHER


def _nodata(value: float | None) -> float | str | None:
    """No-data as the raster extension writes it: a number, or ``"nan"``/``"inf"``/``"-inf"``
    (JSON has no NaN, RFC 8259 §6)."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if float(value).is_integer() else float(value)


def _footprint(out: Path, manifest: dict[str, Any]) -> shapely.Geometry:
    """The zones' footprint (their union, EPSG:4326) from ``zones.geojson``, exteriors
    counter-clockwise (RFC 7946 §3.1.6), coordinates to :data:`_DECIMALS` places; the search
    box of the manifest when the folder has no zones layer."""
    import geopandas as gpd

    path = out / outputs.ZONES_GEOJSON
    if path.is_file():
        geom = gpd.read_file(path).to_crs(4326).union_all()
    else:
        geom = shapely.box(*manifest["stac"]["search"]["bbox"])
    geom = shapely.make_valid(shapely.set_precision(geom, 10.0 ** -_DECIMALS))
    return shapely.orient_polygons(geom, exterior_cw=False)


def _lineage(manifest: dict[str, Any]) -> str:
    """How the outputs were made, in one paragraph (processing extension ``processing:lineage``)."""
    stac = manifest.get("stac") or {}
    search = stac.get("search") or {}
    collections = ", ".join(search.get("collections") or []) or "the configured collections"
    cfg = manifest["config"]["resolved"]
    return (f"redline scan of {len(manifest.get('items') or [])} STAC items ({collections}) from {stac.get('url', 'a STAC API')}: "
            f"cloud-masked spectral indices on the {cfg.get('resolution', '')} m analysis grid, a per-pixel baseline "
            f"{cfg['baseline']['start']} to {cfg['baseline']['end']} and disturbances detected in {cfg['monitor']['start']} to "
            f"{cfg['monitor']['end']}, merged into the signed alert register; every item, parameter, library version and "
            "output checksum is in manifest.json.")


def _day(value: str, *, end: bool = False) -> dt.datetime:
    """A config date as a UTC instant: its first second, or with ``end`` its last (the windows'
    end dates are inclusive)."""
    day = dt.date.fromisoformat(str(value)[:10])
    return dt.datetime.combine(day, dt.time(23, 59, 59) if end else dt.time(0, 0, 0), tzinfo=dt.timezone.utc)


def _utc(value: str) -> str:
    """An ISO time of the manifest as RFC 3339 UTC with ``Z``."""
    return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


class _CatalogHandler(http.server.SimpleHTTPRequestHandler):
    """Files of the output folder, with CORS so a STAC browser on another origin may read them
    (stac-spec v1.1.0 best practices, "Enable Cross-origin resource sharing (CORS)")."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".json": "application/json", ".geojson": "application/geo+json",
                      ".tif": COG, ".gpkg": "application/geopackage+sqlite3"}

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


@contextlib.contextmanager
def serve_catalog(out: Path, *, port: int | None = None) -> Iterator[str]:
    """Serve a scan's output folder over HTTP on 127.0.0.1 as a static STAC catalogue.

    Parameters
    ----------
    out
        The output folder, with ``catalog.json``.
    port
        TCP port; a free one when omitted.

    Yields
    ------
    str
        The catalogue's URL, e.g. ``http://127.0.0.1:43127/catalog.json`` (for a STAC browser);
        the server stops when the block exits.

    Raises
    ------
    RedlineInputError
        No ``catalog.json`` in ``out``, or the port cannot be bound.
    """
    out = Path(out)
    if not (out / outputs.CATALOG_JSON).is_file():
        raise RedlineInputError(f"{out}: no {outputs.CATALOG_JSON}; run `redline map {out}` to write the STAC catalogue of a scan's folder")
    handler = functools.partial(_CatalogHandler, directory=os.fspath(out.resolve()))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port or 0), handler)
    except OSError as exc:
        raise RedlineInputError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another port") from None
    thread = threading.Thread(target=server.serve_forever, name="stac-catalog", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{outputs.CATALOG_JSON}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
