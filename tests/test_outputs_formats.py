"""The outputs as other tools read them (issue 24, items 2 and 3), on a copy of the real demo scan:

- every GeoJSON redline writes follows RFC 7946: exterior rings counter-clockwise and holes
  clockwise (§3.1.6), at most 7 decimals (§11.2), feature ``id`` = alert / zone / county id
  (§3.2), no ``crs`` member (§4);
- GPX and KML field exports read back by Debian's gpsbabel with one waypoint per alert, named by
  its id;
- every COG passes ``rio cogeo validate``, and its bands carry a description, a unit, an integer
  type for dates, counts, flags and grades with an explicit no-data, overviews that never invent
  a value for categorical bands, and a colour table and category names on grade rasters (read
  with Debian's gdalinfo, as QGIS reads them through GDAL).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess

import geopandas as gpd
import pytest
import shapely
import shapely.geometry

from redline.geojson import to_geojson
from redline.register import Register
from redline.register.export import export_alerts

pytestmark = pytest.mark.slow

#: the scan's GeoJSON files and the property each feature's id repeats
SCAN_GEOJSON = {"alerts.geojson": "alert_id", "zones.geojson": "zone_id", "admin_units.geojson": "admin_id"}


@pytest.fixture(scope="module")
def out(small_scan, tmp_path_factory):
    """A copy of the session's demo scan (tests never change the shared one)."""
    dst = tmp_path_factory.mktemp("formats") / "out"
    shutil.copytree(small_scan.out_dir, dst)
    return dst


def _tool(name: str) -> str:
    exe = shutil.which(name)
    assert exe, f"Debian's {name} is not installed: run `make test` (its target readers installs it)"
    return exe


# --------------------------------------------------------------------------- GeoJSON (RFC 7946)


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
