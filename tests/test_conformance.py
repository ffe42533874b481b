"""Conformance of a scan's outputs to the standards other tools read them by: validators run on a
demo scan so every later change keeps outputs valid.

Each section runs one family of validators on a copy of the session's `small` scan
(``small_scan``, tests/conftest.py); a test that changes a folder makes its own copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import jsonschema
import pystac
import pytest
from pystac.errors import STACValidationError
from pystac.validation import RegisteredValidator, set_validator
from pystac.validation.local_validator import get_local_schema_cache
from pystac.validation.schema_uri_map import DefaultSchemaUriMap
from pystac.validation.stac_validator import STACValidator
from referencing import Registry, Resource

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def out(small_scan, tmp_path_factory) -> Path:
    """A copy of the small scan's output folder (read only for the tests that take it)."""
    dest = tmp_path_factory.mktemp("conformance") / "out"
    shutil.copytree(small_scan.out_dir, dest)
    return dest


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "redline.cli", *args], capture_output=True, text=True)


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
