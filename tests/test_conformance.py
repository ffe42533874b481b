"""Conformance of a scan's outputs to the standards other tools read them by (issue 24): the
validators run on a copy of the session's demo scan (``small_scan``, tests/conftest.py), so every
later change keeps the outputs valid. A test that changes a folder makes its own copy.

- **STAC 1.1** catalogue: pystac ``validate_all`` offline against the core and the vendored
  extension schemas (tests/data/stac-schemas), every href resolving, also after the folder moves
  and over HTTP (``redline stac serve``);
- **GeoJSON** per RFC 7946: exterior rings counter-clockwise and holes clockwise (§3.1.6), at
  most 7 decimals (§11.2), feature ``id`` = alert / zone / county id (§3.2), no ``crs`` member (§4);
- **GPX and KML** field exports read back by Debian's gpsbabel with one waypoint per alert, named
  by its id; KML outlines read by GDAL;
- **COGs**: ``rio cogeo validate --strict`` on every raster; bands with a description, a unit, an
  integer type for dates, counts, flags and grades with an explicit no-data, overviews that never
  invent a value for categorical bands, colour tables and category names on grade rasters (read
  with Debian's gdalinfo, as QGIS reads them through GDAL).

The printed report's validators (A4 pages rendered by pdftoppm and checked for ink at the edges,
the first page's periods, scenes, parameters and chain head) need a browser to print and live
with the report's tests, tests/test_report.py (``test_the_pdf_is_a4_and_no_page_is_cut_at_its_edges``
and ``test_the_first_page_names_the_scan_its_periods_scenes_parameters_and_chain_head``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import geopandas as gpd
import jsonschema
import pystac
import pytest
import shapely
import shapely.geometry
from pystac.errors import STACValidationError
from pystac.validation import RegisteredValidator, set_validator
from pystac.validation.local_validator import get_local_schema_cache
from pystac.validation.schema_uri_map import DefaultSchemaUriMap
from pystac.validation.stac_validator import STACValidator
from referencing import Registry, Resource

from redline.geojson import to_geojson
from redline.register import Register
from redline.register.export import export_alerts

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def out(small_scan, tmp_path_factory) -> Path:
    """A copy of the small scan's output folder (read only for the tests that take it)."""
    dest = tmp_path_factory.mktemp("conformance") / "out"
    shutil.copytree(small_scan.out_dir, dest)
    return dest


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True)


def _tool(name: str) -> str:
    exe = shutil.which(name)
    assert exe, f"Debian's {name} is not installed: run `make test` (its target readers installs it)"
    return exe


# ---------------------------------------------------------------------------------------------
# STAC catalogue (issue 24, item 1): catalog.json + one Item per scan, STAC 1.1 with the
# projection, raster, file and processing extensions, validated by pystac without the network
# against pystac's core schemas and the extension schemas in tests/data/stac-schemas/.
# ---------------------------------------------------------------------------------------------

STAC_SCHEMAS = TESTS / "data" / "stac-schemas"
EXTENSIONS = {
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
#: Files of OUT that are not outputs and so not assets: SQLite's sidecars and the register's
#: lock, and the map's copies of third-party web libraries (lib/; the manifest skips them too)
NOT_ASSETS = ("-wal", "-shm", "-journal", ".lock")


class OfflineValidator(STACValidator):
    """A pystac validator that reads only local schemas: pystac's STAC 1.1 core and GeoJSON
    schemas and the extension schemas vendored in tests/data/stac-schemas/. A schema or ``$ref``
    that is not local fails the validation (``referencing`` has no way to fetch it): nothing is
    downloaded."""

    def __init__(self) -> None:
        self.schemas = dict(get_local_schema_cache())
        for path in sorted(STAC_SCHEMAS.glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.schemas[schema["$id"].rstrip("#")] = schema
        self.registry = Registry().with_resources([(uri, Resource.from_contents(s)) for uri, s in self.schemas.items()])
        self.uri_map = DefaultSchemaUriMap()

    def _check(self, stac_dict: dict, uri: str | None, href: str | None) -> str:
        if uri not in self.schemas:
            raise STACValidationError(f"{href}: schema {uri} is not available offline; vendor it into {STAC_SCHEMAS}")
        schema = self.schemas[uri]
        errors = list(jsonschema.validators.validator_for(schema)(schema, registry=self.registry).iter_errors(stac_dict))
        if errors:
            raise STACValidationError(f"{href}: invalid against {uri}: {jsonschema.exceptions.best_match(errors).message}", source=errors)
        return uri

    def validate_core(self, stac_dict, stac_object_type, stac_version, href=None) -> str:
        return self._check(stac_dict, self.uri_map.get_object_schema_uri(stac_object_type, stac_version), href)

    def validate_extension(self, stac_dict, stac_object_type, stac_version, extension_id, href=None) -> str:
        return self._check(stac_dict, extension_id, href)


@pytest.fixture
def offline_stac():
    """pystac validates with :class:`OfflineValidator` during the test, then as before."""
    before = RegisteredValidator.get_validator()
    validator = OfflineValidator()
    set_validator(validator)
    yield validator
    set_validator(before)


def _catalogue_json(folder: Path) -> list[Path]:
    """catalog.json and the Item files it links, as pystac reads them."""
    cat = pystac.Catalog.from_file(str(folder / "catalog.json"))
    return [folder / "catalog.json", *(Path(i.get_self_href()) for i in cat.get_items(recursive=True))]


def _hrefs(folder: Path) -> list[tuple[Path, str]]:
    """(JSON file, href) of every link and asset of the catalogue's JSON files, as written."""
    out = []
    for doc in _catalogue_json(folder):
        d = json.loads(doc.read_text(encoding="utf-8"))
        out += [(doc, link["href"]) for link in d.get("links", [])]
        out += [(doc, a["href"]) for a in d.get("assets", {}).values()]
    return out


def broken_hrefs(folder: Path) -> tuple[int, list[str]]:
    """(number of hrefs, the broken ones): each href must be relative (no scheme, no leading
    ``/``) and name an existing file when resolved against its JSON file's folder."""
    hrefs = _hrefs(folder)
    broken = []
    for doc, href in hrefs:
        target = doc.parent / urllib.parse.unquote(href)
        if urllib.parse.urlparse(href).scheme or href.startswith("/") or not target.is_file():
            broken.append(f"{doc.relative_to(folder)}: {href}")
    return len(hrefs), broken


def _item(folder: Path):
    return next(pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(recursive=True))


def test_catalogue_passes_pystac_validate_all_offline(out, offline_stac):
    pystac.Catalog.from_file(str(out / "catalog.json")).validate_all()
    item = _item(out)
    assert set(item.stac_extensions) == EXTENSIONS
    assert set(item.validate()) == {"https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json", *EXTENSIONS}


def test_the_offline_validator_rejects_what_the_schemas_forbid(out, offline_stac):
    """The validator is not vacuous: each extension's schema catches a wrong field."""
    good = json.loads(Path(_item(out).get_self_href()).read_text(encoding="utf-8"))
    cog = next(k for k, a in good["assets"].items() if "raster:bands" in a)
    for path, bad in ((("assets", cog, "file:checksum"), 1234), (("assets", cog, "proj:shape"), [155]),
                      (("assets", cog, "raster:bands"), [{"data_type": "float"}]), (("properties", "processing:software"), "redline")):
        d = json.loads(json.dumps(good))
        target = d
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = bad
        with pytest.raises(STACValidationError):
            pystac.validation.validate_dict(d)


def test_every_href_resolves(out):
    n, broken = broken_hrefs(out)
    assert broken == [], f"{len(broken)} of {n} hrefs broken: {broken[:5]}"
    assert n == len(_item(out).assets) + 2 + 3  # catalogue: root, item; item: root, parent, processing-software


def test_moving_the_folder_keeps_every_href_resolving(out, tmp_path, offline_stac):
    moved = tmp_path / "elsewhere" / "deeper" / "renamed-out"
    shutil.copytree(out, moved)
    n, broken = broken_hrefs(moved)
    assert (n, broken) == (broken_hrefs(out)[0], [])
    pystac.Catalog.from_file(str(moved / "catalog.json")).validate_all()
    assert all(Path(a.get_absolute_href()).is_relative_to(moved) for a in _item(moved).assets.values())


def test_item_covers_the_monitor_window_with_the_baseline_beside_it(out, small_config):
    item = _item(out)
    assert item.datetime is None
    assert item.properties["start_datetime"] == f"{small_config.monitor.start}T00:00:00Z"
    assert item.properties["end_datetime"] == f"{small_config.monitor.end}T23:59:59Z"
    assert item.properties["redline:baseline_start"] == f"{small_config.baseline.start}T00:00:00Z"
    assert item.properties["redline:baseline_end"] == f"{small_config.baseline.end}T23:59:59Z"
    assert item.id == json.loads((out / "manifest.json").read_text(encoding="utf-8"))["scan_id"]
    assert item.properties["processing:software"]["redline"] == json.loads((out / "manifest.json").read_text())["redline_version"]
    assert "manifest.json" in item.properties["processing:lineage"]


def test_footprint_is_the_union_of_the_zones_counter_clockwise(out):
    import geopandas as gpd
    import shapely

    item = _item(out)
    geom = shapely.geometry.shape(item.geometry)
    zones = gpd.read_file(out / "zones.geojson").to_crs(4326).union_all()
    assert geom.is_valid
    assert geom.symmetric_difference(zones).area <= zones.length * 1e-7  # equal up to rounding to 1e-7°: a strip along the outline
    polygons = getattr(geom, "geoms", [geom])
    assert all(shapely.is_ccw(p.exterior) for p in polygons)  # RFC 7946 §3.1.6: exteriors counter-clockwise
    assert item.bbox == pytest.approx(list(geom.bounds))


def test_every_output_file_is_an_asset_with_a_media_type_and_roles(out):
    assets = _item(out).assets
    files = {p for p in out.rglob("*") if p.is_file()} - set(_catalogue_json(out))
    files = {p for p in files if not p.name.endswith(NOT_ASSETS) and p.relative_to(out).parts[0] != "lib"}
    assert {Path(a.get_absolute_href()) for a in assets.values()} == files
    assert all(a.media_type and a.roles and a.title for a in assets.values())
    kinds = {k: a.media_type for k, a in assets.items()}
    assert kinds["register_gpkg"] == "application/geopackage+sqlite3" and kinds["manifest_json"] == "application/json"
    assert kinds["magnitude"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert kinds["alerts_geojson"] == "application/geo+json" and kinds["zone_stats_csv"] == "text/csv"
    assert kinds["map_html"] == kinds["report_html"] == "text/html"
    assert {tuple(a.roles) for k, a in assets.items() if k.startswith("chips_")} == {("graphic", "chip")}
    assert {tuple(a.roles) for k, a in assets.items() if k.startswith("figures_")} == {("graphic", "figure")}


def test_raster_assets_carry_the_cogs_grid_and_band_types(out):
    import math

    import rasterio

    cogs = {k: a for k, a in _item(out).assets.items() if a.href.endswith(".tif")}
    assert cogs and len(cogs) == len(list((out / "rasters").glob("*.tif")))
    for key, a in cogs.items():
        with rasterio.open(a.get_absolute_href()) as src:
            assert a.extra_fields["proj:code"] == f"EPSG:{src.crs.to_epsg()}", key
            assert a.extra_fields["proj:shape"] == [src.height, src.width], key
            assert a.extra_fields["proj:transform"] == list(src.transform)[:6], key
            bands = a.extra_fields["raster:bands"]
            assert [b["data_type"] for b in bands] == list(src.dtypes), key
            nodata = "nan" if src.nodata is not None and math.isnan(src.nodata) else src.nodata
            assert all(b.get("nodata") == nodata for b in bands), key
            assert [b.get("unit") for b in bands] == [u or None for u in src.units], key


def test_checksums_match_the_files_and_the_manifest(out):
    from redline.provenance import verify_folder

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    with_sum = 0
    for key, a in _item(out).assets.items():
        path = Path(a.get_absolute_href())
        rel = path.relative_to(out).as_posix()
        if rel in ("manifest.json", "register.gpkg"):  # the manifest cannot hold its own checksum; reviews change the register
            assert "file:checksum" not in a.extra_fields, key
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert a.extra_fields["file:checksum"] == "1220" + digest, key  # multihash: sha2-256 (0x12), 32 bytes (0x20)
        assert a.extra_fields["file:size"] == path.stat().st_size == manifest["outputs"][rel]["size"], key
        assert manifest["outputs"][rel]["sha256"] == digest, key
        with_sum += 1
    assert with_sum == len(_item(out).assets) - 2
    for doc in _catalogue_json(out):  # the catalogue itself is in the signed manifest
        assert manifest["outputs"][doc.relative_to(out).as_posix()]["sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest()
    problems, _ = verify_folder(out)
    assert problems == []


def test_map_rerender_refreshes_the_catalogue(out, tmp_path, offline_stac):
    """`redline map` after a review writes a new map and report: the catalogue lists their new
    checksums, the manifest those of the catalogue, and `redline verify` stays clean."""
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = {k: a.extra_fields.get("file:checksum") for k, a in _item(copy).assets.items()}
    aid = json.loads((copy / "alerts.geojson").read_text(encoding="utf-8"))["features"][0]["properties"]["alert_id"]
    assert _cli("alerts", "review", aid, "--status", "field_check", "--by", "tester", "--register", str(copy / "register.gpkg")).returncode == 0
    res = _cli("map", str(copy), "--no-online-basemaps")
    assert res.returncode == 0, res.stderr
    after = _item(copy).assets
    assert after["map_html"].extra_fields["file:checksum"] != before["map_html"]
    assert after["map_html"].extra_fields["file:checksum"] == "1220" + hashlib.sha256((copy / "map.html").read_bytes()).hexdigest()
    assert broken_hrefs(copy)[1] == []
    pystac.Catalog.from_file(str(copy / "catalog.json")).validate_all()
    res = _cli("verify", str(copy))
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_new_catalogue_replaces_the_previous_one(out, tmp_path):
    """A folder scanned before under another scan id: its old Item goes, the new one is written
    and only the new catalogue is in the manifest."""
    from redline.provenance import verify_folder
    from redline.register.keys import load_key
    from redline.run.catalog import write_catalog

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    item = Path(_item(copy).get_self_href())
    old = copy / "old-scan-20221231" / "old-scan-20221231.json"
    old.parent.mkdir()
    item.rename(old)
    (copy / "catalog.json").write_text((copy / "catalog.json").read_text(encoding="utf-8").replace(f"./{item.parent.name}/{item.name}",
                                                                                                 "./old-scan-20221231/old-scan-20221231.json"))
    written = write_catalog(copy, key=load_key())
    assert [p.relative_to(copy).as_posix() for p in written] == ["catalog.json", item.relative_to(copy).as_posix()]
    assert not old.parent.exists()
    assert verify_folder(copy)[0] == []


def test_stac_serve_serves_the_output_folder_to_a_stac_browser(out):
    """`redline stac serve OUT` serves the static catalogue over HTTP with CORS: every link and
    asset resolves over HTTP, with the size the catalogue gives."""
    import re

    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "stac", "serve", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/catalog\.json", proc.stdout.readline()).group(0)
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert resp.headers["Content-Type"] == "application/json"
        item = next(pystac.Catalog.from_file(url).get_items(recursive=True))
        assert item.get_self_href().startswith("http://127.0.0.1")
        for key, a in item.assets.items():
            with urllib.request.urlopen(urllib.request.Request(a.get_absolute_href(), method="HEAD"), timeout=10) as resp:
                assert resp.status == 200, key
                if "file:size" in a.extra_fields:
                    assert int(resp.headers["Content-Length"]) == a.extra_fields["file:size"], key
        for link in item.links:
            with urllib.request.urlopen(urllib.request.Request(link.get_absolute_href(), method="HEAD"), timeout=10) as resp:
                assert resp.status == 200, link.rel
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_stac_serve_of_a_scan_folder_without_catalogue_says_what_to_do(out, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("catalog.json"))
    res = _cli("stac", "serve", str(copy))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {copy}: a scan's output folder without catalog.json; run `redline map {copy}` to write its STAC catalogue"]


# --------------------------------------------------------------------------- GeoJSON (RFC 7946)

#: the scan's GeoJSON files and the property each feature's id repeats
SCAN_GEOJSON = {"alerts.geojson": "alert_id", "zones.geojson": "zone_id", "admin_units.geojson": "admin_id"}


def rfc7946_problems(text: str, id_field: str) -> list[str]:
    """What in a GeoJSON FeatureCollection (text) breaks RFC 7946 as redline writes it; [] if none.
    Decimals are counted on the numbers as written (read as strings)."""
    as_written, data = json.loads(text, parse_float=str), json.loads(text)
    problems = ["a crs member (RFC 7946 §4)"] if "crs" in data else []
    ids = [f.get("id") for f in data["features"]]
    for raw, f in zip(as_written["features"], data["features"]):
        fid = f.get("id")
        if fid is None or fid != f["properties"].get(id_field):
            problems.append(f"feature id {fid!r} is not its {id_field} {f['properties'].get(id_field)!r}")
        if f["geometry"] is None:
            continue
        decimals = max(len(d) for d in re.findall(r"\d+\.(\d+)", json.dumps(raw["geometry"]["coordinates"])) or [""])
        if decimals > 7:
            problems.append(f"{fid}: {decimals} decimals")
        geom = shapely.geometry.shape(f["geometry"])
        for poly in getattr(geom, "geoms", [geom]):
            if not poly.exterior.is_ccw:
                problems.append(f"{fid}: exterior ring clockwise")
            problems += [f"{fid}: hole counter-clockwise" for hole in poly.interiors if hole.is_ccw]
    if len(set(map(str, ids))) != len(ids):
        problems.append("feature ids repeat")
    return problems


def _geometry_floats(text: str) -> dict:
    return json.loads(text, parse_float=float)


@pytest.mark.parametrize("name", sorted(SCAN_GEOJSON))
def test_the_scans_geojson_follows_rfc7946(out, name):
    text = (out / name).read_text(encoding="utf-8")
    assert rfc7946_problems(text, SCAN_GEOJSON[name]) == []
    features = _geometry_floats(text)["features"]
    assert features and all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)


def test_rfc7946_keeps_the_shapes_within_a_centimetre(out):
    """Rounding to 7 decimals and re-winding moves no vertex more than 1e-7° and keeps each area."""
    alerts = Register(out / "register.gpkg").alerts().set_index("alert_id")
    written = gpd.read_file(out / "alerts.geojson").set_index("alert_id")
    for aid, row in written.iterrows():
        before = alerts.loc[aid, "geometry"]
        assert shapely.hausdorff_distance(before, row.geometry) < 2e-7
        assert row.geometry.area == pytest.approx(before.area, rel=1e-4)


def test_to_geojson_rewinds_and_rounds_any_frame():
    """A clockwise square with a counter-clockwise hole and 15 decimals, a multipolygon, and a
    missing outline: written counter-clockwise / clockwise with 7 decimals and their ids."""
    cw = shapely.Polygon([(103.1, 30.1), (103.1, 30.2), (103.2, 30.2), (103.2, 30.1)],
                         holes=[[(103.12, 30.12), (103.18, 30.12), (103.18, 30.18), (103.12, 30.18)]])
    cw = shapely.affinity.translate(cw, 1.234567890123e-9, 9.87654321e-10)
    assert not cw.exterior.is_ccw and cw.interiors[0].is_ccw
    multi = shapely.MultiPolygon([shapely.box(104, 30, 104.1, 30.1, ccw=False), shapely.box(104.2, 30, 104.3, 30.1, ccw=False)])
    frame = gpd.GeoDataFrame({"alert_id": ["A-1", "A-2", "A-3"], "area_m2": [1.5, 2.0, None]}, geometry=[cw, multi, None], crs=4326)
    text = to_geojson(frame, id_column="alert_id")
    assert rfc7946_problems(text, "alert_id") == []
    f = _geometry_floats(text)["features"]
    assert [x["id"] for x in f] == ["A-1", "A-2", "A-3"] and f[2]["geometry"] is None and f[2]["properties"]["area_m2"] is None
    assert f[0]["geometry"]["coordinates"][0][0] == [103.1, 30.1]
    with pytest.raises(KeyError, match="zone_id"):
        to_geojson(frame, id_column="zone_id")


def test_to_geojson_writes_wgs84_from_any_crs():
    utm = gpd.GeoDataFrame({"zone_id": ["Z"]}, geometry=[shapely.box(400000, 3400000, 401000, 3401000, ccw=False)], crs=32648)
    text = to_geojson(utm, id_column="zone_id")
    assert rfc7946_problems(text, "zone_id") == [] and '"crs"' not in text
    lon, lat = _geometry_floats(text)["features"][0]["geometry"]["coordinates"][0][0]
    assert 103 < lon < 104 and 30 < lat < 31


def test_alerts_export_and_list_write_rfc7946(out, tmp_path):
    a = Register(out / "register.gpkg").alerts()
    path = export_alerts(a, tmp_path / "a.geojson", "geojson")
    assert rfc7946_problems(path.read_text(encoding="utf-8"), "alert_id") == []
    assert sorted(f["id"] for f in _geometry_floats(path.read_text(encoding="utf-8"))["features"]) == sorted(a["alert_id"])
    from tests.serve_site import cli

    listed = cli("alerts", "list", "--format", "geojson", "--out", out)
    assert listed.returncode == 0, listed.stderr
    assert rfc7946_problems(listed.stdout, "alert_id") == [] and len(json.loads(listed.stdout)["features"]) == len(a)


def test_the_review_services_geojson_follows_rfc7946(out):
    from tests.serve_site import PASSWORD, Site, add_users, http_login, serving

    add_users(out, {"boss": ("admin", "", "")})
    n = len(Register(out / "register.gpkg").alerts())
    with serving(out) as url:
        c, res = http_login(Site(url=url, out=out, register=out / "register.gpkg"), "boss", PASSWORD)
        assert res.status_code in (200, 303)
        for path in ("/map.geojson", "/export/alerts.geojson"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json"), path
            assert rfc7946_problems(r.text, "alert_id") == [], path
            assert len(r.json()["features"]) == n, path


# --------------------------------------------------------------------------- GPX and KML via gpsbabel


def gpsbabel_waypoints(fmt: str, path) -> list[dict[str, str]]:
    """The waypoints Debian's gpsbabel reads from ``path`` (``-w``: waypoints only), as rows of
    its ``unicsv`` output (``Latitude``, ``Longitude``, ``Name``, ``Description``)."""
    res = subprocess.run([_tool("gpsbabel"), "-w", "-i", fmt, "-f", str(path), "-o", "unicsv", "-F", "-"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return list(csv.DictReader(io.StringIO(res.stdout)))


@pytest.mark.parametrize("fmt", ["gpx", "kml"])
def test_gpsbabel_reads_one_waypoint_per_alert_named_by_its_id(out, tmp_path, fmt):
    a = Register(out / "register.gpkg").alerts().set_index("alert_id")
    path = export_alerts(a.reset_index(), tmp_path / f"alerts.{fmt}", fmt)
    wpts = gpsbabel_waypoints(fmt, path)
    assert len(a) > 1 and sorted(w["Name"] for w in wpts) == sorted(a.index)
    for w in wpts:
        assert float(w["Latitude"]) == pytest.approx(float(a.loc[w["Name"], "centroid_lat"]), abs=1e-6)
        assert float(w["Longitude"]) == pytest.approx(float(a.loc[w["Name"], "centroid_lon"]), abs=1e-6)
        assert a.loc[w["Name"], "disturbance_type"] in w["Description"]


def test_kml_outlines_are_polygons_of_every_alert_beside_the_waypoints(out, tmp_path):
    """GDAL's KML reader: layer ``waypoints`` (points) and layer ``outlines`` (the polygons, with
    their holes), one feature per alert in each."""
    import pyogrio

    a = Register(out / "register.gpkg").alerts().set_index("alert_id")
    path = export_alerts(a.reset_index(), tmp_path / "alerts.kml", "kml")
    assert [name for name, _ in pyogrio.list_layers(path)] == ["waypoints", "outlines"]
    points, outlines = pyogrio.read_dataframe(path, layer="waypoints"), pyogrio.read_dataframe(path, layer="outlines")
    assert sorted(points["Name"]) == sorted(outlines["Name"]) == sorted(a.index)
    assert set(points.geom_type) == {"Point"}
    for row in outlines.itertuples():
        geom, ref = shapely.force_2d(row.geometry), a.loc[row.Name, "geometry"]
        assert shapely.hausdorff_distance(geom, ref) < 2e-7 and geom.area == pytest.approx(ref.area, rel=1e-4)
        assert len(shapely.get_parts(geom)) == len(shapely.get_parts(ref))


def test_gpx_is_gpx_1_1_with_waypoints_before_tracks(out, tmp_path):
    """GPX 1.1's schema is a sequence (metadata, wpt*, rte*, trk*): every wpt comes first, one trk
    per alert with a segment per ring."""
    import xml.etree.ElementTree as ET

    a = Register(out / "register.gpkg").alerts()
    root = ET.parse(export_alerts(a, tmp_path / "a.gpx", "gpx")).getroot()
    ns = "{http://www.topografix.com/GPX/1/1}"
    assert root.tag == f"{ns}gpx" and root.get("version") == "1.1"
    tags = [child.tag.removeprefix(ns) for child in root]
    assert tags == ["wpt"] * len(a) + ["trk"] * len(a)
    rings = sum(len(p.interiors) + 1 for g in a.geometry for p in getattr(g, "geoms", [g]))
    assert len(root.findall(f"{ns}trk/{ns}trkseg")) == rings


# --------------------------------------------------------------------------- COGs

#: every raster of OUT/rasters and the kind of its band(s)
RASTER_KINDS = {
    "disturbance_date": "date", "last_clear": "date",
    "n_confirm": "count", "nclear_baseline": "count", "nclear_monitor": "count", "n_unsupported_monitor": "count",
    "unsupported_months": "bits",
    "observed": "flag", "monitored": "flag",
    "rsei_grade_baseline": "grade", "rsei_grade_monitor": "grade",
    "magnitude": "continuous", "ndvi_baseline": "continuous", "ndvi_monitor": "continuous", "ndvi_annual": "continuous",
    "fvc_baseline": "continuous", "fvc_monitor": "continuous", "rsei_baseline": "continuous", "rsei_monitor": "continuous",
    "rsei_change": "continuous",
    "true_colour_monitor": "colour",
}
#: kind → (data type, no-data, overview resampling): integers for whatever is counted, dated or
#: classed; overviews that pick a value that occurs (NEAREST) or the most frequent (MODE) for
#: them, averages only for continuous values (GDAL, gdaladdo -r)
KIND_STORAGE = {
    "date": ("int32", -1, {"NEAREST"}), "count": ("int16", -1, {"NEAREST"}), "bits": ("int16", -1, {"NEAREST"}),
    "flag": ("uint8", 255, {"NEAREST"}), "grade": ("uint8", 0, {"MODE", "NEAREST"}),
    "continuous": ("float32", "nan", {"AVERAGE", "BILINEAR"}), "colour": ("uint8", 0, {"AVERAGE", "BILINEAR"}),
}
#: RSEI grades 1 差 … 5 优 as the figures colour them (ColorBrewer RdYlGn, 5 classes)
GRADE_RGB = {1: "#d7191c", 2: "#fdae61", 3: "#ffffbf", 4: "#a6d96a", 5: "#1a9641"}


def _gdalinfo(path) -> dict:
    """``gdalinfo -json`` of Debian's GDAL: what QGIS reads through GDAL (descriptions, units,
    colour table, category names from the PAM sidecar, metadata)."""
    # as a desktop GIS opens a local file: the scan sets GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR in
    # this process (pipelines.set_gdal_env, for COGs over HTTP), which hides every sidecar file
    env = {k: v for k, v in os.environ.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}
    res = subprocess.run([_tool("gdalinfo"), "-json", str(path)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_every_raster_is_a_valid_cog_of_a_known_kind(out):
    from rio_cogeo.cogeo import cog_validate

    tifs = sorted((out / "rasters").glob("*.tif"))
    assert sorted(p.stem for p in tifs) == sorted(RASTER_KINDS)  # one raster per concept, none unclassified
    for path in tifs:
        valid, errors, warnings = cog_validate(str(path), strict=True, quiet=True)
        assert valid and errors == [] and warnings == [], (path.name, errors, warnings)


@pytest.mark.parametrize("stem", sorted(RASTER_KINDS))
def test_each_band_has_its_kinds_type_nodata_description_unit_and_resampling(out, small_config, stem):
    import numpy as np
    import rasterio

    dtype, nodata, resampling = KIND_STORAGE[RASTER_KINDS[stem]]
    path = out / "rasters" / f"{stem}.tif"
    info = _gdalinfo(path)
    with rasterio.open(path) as src:
        assert set(src.dtypes) == {dtype}, src.dtypes
        assert (np.isnan(src.nodata) if nodata == "nan" else src.nodata == nodata), src.nodata
        assert src.tags()["OVERVIEW_RESAMPLING"] in resampling
        values = src.read(masked=True).compressed()
    for band in info["bands"]:
        assert band.get("description", "").strip() and band.get("unit", "").strip(), (stem, band.get("description"), band.get("unit"))
    kind = RASTER_KINDS[stem]
    if kind == "flag":
        assert set(np.unique(values)) <= {0, 1} and values.size
    elif kind == "grade":
        assert set(np.unique(values)) <= {1, 2, 3, 4, 5} and values.size
    elif kind == "count":
        assert values.min() >= 0
    elif kind == "date":
        first = (small_config.baseline.start - dt.date(1970, 1, 1)).days
        last = (small_config.monitor.end - dt.date(1970, 1, 1)).days
        assert values.size and first <= values.min() and values.max() <= last, (values.min(), values.max(), first, last)
    if kind == "date":
        assert info["bands"][0]["unit"] == "days since 1970-01-01"


@pytest.mark.parametrize("stem", ["rsei_grade_baseline", "rsei_grade_monitor"])
def test_grade_rasters_carry_a_colour_table_and_category_names_gdal_reads(out, stem):
    band = _gdalinfo(out / "rasters" / f"{stem}.tif")["bands"][0]
    assert band["colorInterpretation"] == "Palette"
    entries = band["colorTable"]["entries"]
    for code, colour in GRADE_RGB.items():
        assert entries[code] == [int(colour[i:i + 2], 16) for i in (1, 3, 5)] + [255], code
    assert entries[0][3] == 0  # no grade: transparent
    assert band["categories"][:6] == ["无 none", "差 poor", "较差 fair", "一般 moderate", "良 good", "优 excellent"]


@pytest.mark.parametrize("stem", ["last_clear", "nclear_monitor", "rsei_grade_monitor", "observed"])
def test_overviews_of_categorical_rasters_hold_only_values_that_occur(out, tmp_path, stem):
    """The demo's rasters are smaller than a COG block (no overviews), so each is tiled 4 × 4 into
    a 640 px raster of the same values and written by the scan's COG writer: every value of its
    overviews occurs at full resolution. GDAL's default overview resampling (CUBIC, what the
    scan used before) invents values there — the control that this check can fail."""
    import numpy as np
    import rasterio
    import rasterio.shutil

    from redline.cogs import COGS, write_cog

    with rasterio.open(out / "rasters" / f"{stem}.tif") as src:
        profile, data = src.profile, np.tile(src.read(1), (4, 4))
    big = tmp_path / "big.tif"
    profile.update(driver="GTiff", width=data.shape[1], height=data.shape[0], tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(big, "w", **profile) as dst:
        dst.write(data, 1)
    real = set(np.unique(data)) - {profile["nodata"]}
    cog = write_cog(big, tmp_path / "cog.tif", COGS[stem])
    default = tmp_path / "default.tif"
    rasterio.shutil.copy(big, default, driver="COG", compress="DEFLATE", blocksize=256)

    def overview_values(path) -> set:
        with rasterio.open(path) as src:
            factors = src.overviews(1)
            assert factors, path
            ov = src.read(1, out_shape=(src.height // factors[-1], src.width // factors[-1]))
            return set(np.unique(ov)) - {src.nodata}

    assert overview_values(cog) <= real
    if stem == "last_clear":  # dates far apart side by side: a cubic mix of them is a day no pixel saw
        assert not overview_values(default) <= real
