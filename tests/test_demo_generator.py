"""The demo generator (redline.demo): determinism, Earth Search conventions, realistic clouds and
masks, and ground truth that matches what the pixels show."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import time

import geopandas as gpd
import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox
from scipy import ndimage

from redline.config import load_config
from redline.demo import PRESETS, DemoScenes, generate_demo
from redline.demo import build as B
from redline.demo import events as E
from redline.demo import landscape as L
from redline.demo import scenes as SC
from redline.demo import spectra as S

ASSETS = ("blue", "green", "red", "nir", "swir16", "swir22", "scl")
GRID_UTM = shapely.box(400000, 3400000 - 1600, 400000 + 1600, 3400000)  # the small preset


def _features(build: DemoScenes) -> list[dict]:
    return json.loads(build.items.read_text(encoding="utf-8"))["features"]


def _read(feature: dict, key: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    with rasterio.open(feature["assets"][key]["href"]) as src:
        return src.read(1, out_shape=shape)


def _reflectance(feature: dict, key: str, n: int) -> np.ndarray:
    """Reflectance of a band on the 10 m grid (20 m bands replicated), NaN where no data."""
    dn = _read(feature, key, (n, n)).astype("float64")
    rb = feature["assets"][key]["raster:bands"][0]
    return np.where(dn == 0, np.nan, dn * rb["scale"] + rb["offset"])


def _p(feature: dict, key: str) -> float:
    return feature["properties"][key]


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=k)


# --- determinism and caching ------------------------------------------------------------
def test_same_seed_gives_identical_pixels_and_truth(small_scenes, tmp_path):
    t0 = time.perf_counter()
    again = generate_demo(tmp_path / "again", preset="small")
    seconds = time.perf_counter() - t0
    assert seconds < 30, f"small preset took {seconds:.1f} s (target < 15 s)"
    a, b = _features(small_scenes), _features(again)
    assert [f["id"] for f in a] == [f["id"] for f in b]
    assert [_p(f, "eo:cloud_cover") for f in a] == [_p(f, "eo:cloud_cover") for f in b]
    for i in (0, 1, 17, 40, len(a) - 1):  # clipped and full orbits, clear and cloudy dates
        for key in ASSETS:
            np.testing.assert_array_equal(_read(a[i], key), _read(b[i], key), err_msg=f"{a[i]['id']} {key}")
    ta = gpd.read_file(small_scenes.truth, layer="events")
    tb = gpd.read_file(again.truth, layer="events")
    assert ta.drop(columns="geometry").equals(tb.drop(columns="geometry"))
    assert all(ga.equals_exact(gb, 1e-9) for ga, gb in zip(ta.geometry, tb.geometry, strict=True))


def test_another_seed_gives_another_landscape(small_scenes, tmp_path):
    other = generate_demo(tmp_path / "seed7", preset="small", seed=7)
    a, b = _features(small_scenes), _features(other)
    assert not np.array_equal(_read(a[3], "nir"), _read(b[3], "nir"))
    ta = gpd.read_file(small_scenes.truth, layer="events")
    tb = gpd.read_file(other.truth, layer="events")
    assert not all(ga.equals_exact(gb, 1e-6) for ga, gb in zip(ta.geometry, tb.geometry, strict=True))
    assert json.loads((other.root / "BUILD.json").read_text())["seed"] == 7


def test_a_finished_build_is_reused_not_rewritten(small_scenes):
    before = small_scenes.items.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = generate_demo(small_scenes.root, preset="small")
    assert time.perf_counter() - t0 < 2
    assert again == small_scenes
    assert small_scenes.items.stat().st_mtime_ns == before
    build = json.loads((small_scenes.root / "BUILD.json").read_text())
    assert build["preset"] == "small" and build["n_scenes"] == small_scenes.n_scenes
    assert build["items_sha256"] == hashlib.sha256(small_scenes.items.read_bytes()).hexdigest()
    assert not list(small_scenes.root.parent.glob(".*building*"))  # no temp folder left behind


def test_refuses_a_folder_that_is_not_a_build_and_unknown_presets(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_demo(tmp_path / "mine", preset="small")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown demo preset"):
        generate_demo(tmp_path / "x", preset="huge")


# --- STAC and COG conventions -----------------------------------------------------------
def test_items_follow_earth_search_sentinel_2_c1_l2a(small_scenes):
    feats = _features(small_scenes)
    assert small_scenes.n_scenes == len(feats) == 73  # 2022-01-05 … 2023-12-26, every 10 days
    days = [dt.date.fromisoformat(f["properties"]["datetime"][:10]) for f in feats]
    assert days[0] == dt.date(2022, 1, 5) and dt.date(2023, 12, 21) < days[-1] <= dt.date(2023, 12, 31)
    assert {(b - a).days for a, b in itertools.pairwise(days)} == {10}
    grid_ll = gpd.GeoSeries([GRID_UTM], crs=32648).to_crs(4326).iloc[0].buffer(1e-6)
    for f in feats:
        item = pystac.Item.from_dict(f)
        assert re.fullmatch(r"S2[AB]_T48RVU_\d{8}T\d{6}_L2A", item.id)
        assert item.collection_id == "sentinel-2-c1-l2a"
        p = item.properties
        assert f["properties"]["proj:epsg"] == 32648  # projection v1.1 as Earth Search writes it …
        assert p.get("proj:code", f"EPSG:{p.get('proj:epsg')}") == "EPSG:32648"  # … pystac may migrate it
        assert p["s2:processing_baseline"] == "05.10"
        assert (p["mgrs:utm_zone"], p["mgrs:latitude_band"], p["mgrs:grid_square"]) == (48, "R", "VU")
        assert dt.time(3, 30) <= item.datetime.time() <= dt.time(3, 50)
        assert set(item.assets) == set(ASSETS)
        assert shapely.geometry.shape(item.geometry).within(grid_ll)
        for key, asset in item.assets.items():
            x = asset.extra_fields
            rb = x["raster:bands"][0]
            assert asset.href.startswith("file:///") and asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert x["proj:shape"] == ([160, 160] if x["gsd"] == 10 else [80, 80])
            if key == "scl":
                assert rb == {"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}
            else:
                assert (rb["scale"], rb["offset"], rb["nodata"], rb["data_type"]) == (0.0001, -0.1, 0, "uint16")
                assert x["eo:bands"][0]["common_name"] == key
    assert {f["properties"]["platform"] for f in feats} == {"sentinel-2a", "sentinel-2b"}
    raw = json.loads(small_scenes.collection.read_text())
    assert raw["license"] == "proprietary"  # as Earth Search (pystac migrates it to "other")
    coll = pystac.Collection.from_dict(raw)
    assert coll.id == "sentinel-2-c1-l2a" and "generated" in coll.description.lower()
    assert coll.extent.temporal.intervals[0][0].date() == days[0] and coll.extent.temporal.intervals[0][1].date() == days[-1]


def test_assets_are_tiled_deflate_cogs_on_the_utm_grid(small_scenes):
    f = _features(small_scenes)[0]
    for key in ASSETS:
        with rasterio.open(f["assets"][key]["href"]) as src:
            assert src.crs.to_epsg() == 32648 and src.nodata == 0
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.profile["compress"] == "deflate" and src.profile["tiled"]
            assert (src.transform.c, src.transform.f) == (400000.0, 3400000.0)
            assert src.res == ((10.0, 10.0) if key in ("blue", "green", "red", "nir") else (20.0, 20.0))
            assert list(src.transform)[:6] == f["assets"][key]["proj:transform"]


def test_odc_stac_reads_reflectance_with_the_declared_scale_and_offset(small_scenes):
    feats = [f for f in _features(small_scenes) if f["properties"]["eo:cloud_cover"] < 5][:3]
    assert len(feats) == 3
    items = [pystac.Item.from_dict(f) for f in feats]
    gb = GeoBox.from_bbox(GRID_UTM.bounds, crs="EPSG:32648", resolution=10)
    ds = odc.stac.load(items, bands=["red", "nir", "swir16", "scl"], geobox=gb)
    rb = items[0].assets["red"].extra_fields["raster:bands"][0]
    np.testing.assert_array_equal(ds["red"].isel(time=0).values, _read(feats[0], "red"))
    clear = np.isin(ds["scl"].values, (4, 5, 6))
    refl = {b: ds[b].values * rb["scale"] + rb["offset"] for b in ("red", "nir", "swir16")}
    for b, r in refl.items():
        assert np.nanmin(r[clear]) >= 0.0 and np.nanmax(r[clear]) <= 1.0, b
    ndvi = (refl["nir"] - refl["red"]) / (refl["nir"] + refl["red"])
    assert np.median(ndvi[ds["scl"].values == 4]) > 0.6
    assert np.median(refl["nir"][ds["scl"].values == 6]) < 0.08


# --- clouds, shadows, no-data -----------------------------------------------------------
def test_scl_cloud_classes_coincide_with_bright_pixels(small_scenes):
    feats = [f for f in _features(small_scenes) if 10 < _p(f, "eo:cloud_cover") < 90 and _p(f, "s2:snow_ice_percentage") == 0]
    assert len(feats) >= 5
    for f in feats[:8]:
        scl = _read(f, "scl")
        blue20 = SC.block_mean(_read(f, "blue").astype("float64")) * 1e-4 - 0.1
        cloud, land = np.isin(scl, (8, 9)), np.isin(scl, (4, 5))
        assert np.median(blue20[cloud]) > 0.25 and np.median(blue20[land]) < 0.08, f["id"]
        bright = blue20 > 0.35
        assert np.isin(scl[bright], (8, 9, 10)).mean() > 0.98, f["id"]  # bright ⇒ flagged
        assert np.median(blue20[scl == 9]) > np.median(blue20[scl == 8])


def test_shadows_are_dark_and_some_cloud_edges_escape_the_mask(small_scenes):
    feats = [
        f for f in _features(small_scenes)
        if _p(f, "s2:cloud_shadow_percentage") > 5 and _p(f, "eo:cloud_cover") < 70 and _p(f, "s2:thin_cirrus_percentage") == 0
    ]
    assert feats
    ring_dates = 0
    for f in feats:
        scl = _read(f, "scl")
        nir20 = SC.block_mean(_read(f, "nir").astype("float64")) * 1e-4 - 0.1
        assert np.median(nir20[scl == 3]) < 0.7 * np.median(nir20[scl == 4]), f["id"]
        # clear pixels right next to a labelled cloud are brighter than clear pixels far away
        cloud, land = np.isin(scl, (8, 9)), np.isin(scl, (4, 5))
        ring = land & _dilate(cloud, 1)
        far = land & ~_dilate(cloud, 4) & ~_dilate(scl == 3, 2)
        blue20 = SC.block_mean(_read(f, "blue").astype("float64")) * 1e-4 - 0.1
        if ring.sum() > 20 and np.median(blue20[ring]) > np.median(blue20[far]) + 0.01:
            ring_dates += 1
    assert ring_dates >= 1


def test_second_orbit_leaves_a_no_data_corner_and_metadata_matches_the_scl(small_scenes):
    for i, f in enumerate(_features(small_scenes)[:6]):
        scl = _read(f, "scl")
        nodata20 = scl == 0
        share = nodata20.mean()
        if i % 2 == 1:
            assert 0.08 < share < 0.20, share
            for key in ("blue", "red", "nir"):
                np.testing.assert_array_equal(_read(f, key) == 0, SC.upsample(nodata20), err_msg=key)
            assert (_read(f, "swir16") == 0).sum() == nodata20.sum()
        else:
            assert share == 0 and (_read(f, "red") > 0).all()
        p = f["properties"]
        assert p["s2:nodata_pixel_percentage"] == pytest.approx(100 * share, abs=1e-3)
        valid = scl[~nodata20]
        assert p["eo:cloud_cover"] == pytest.approx(100 * np.isin(valid, (8, 9, 10)).mean(), abs=1e-3)


def test_cloud_climate_is_sichuan_like(small_scenes):
    feats = _features(small_scenes)
    cc = np.array([f["properties"]["eo:cloud_cover"] for f in feats])
    months = np.array([int(f["properties"]["datetime"][5:7]) for f in feats])
    assert (cc < 10).mean() >= 0.2  # a good share nearly clear
    assert (cc > 70).mean() >= 0.3  # many dates mostly cloudy
    assert cc[np.isin(months, (6, 7, 8, 9, 10))].mean() > cc[np.isin(months, (3, 4, 5))].mean()  # monsoon
    assert max(SC.CLOUD_CLIMATE[m][2] for m in (6, 7, 8, 9)) > max(SC.CLOUD_CLIMATE[m][2] for m in (3, 4, 5))


# --- vectors and truth ------------------------------------------------------------------
def test_zones_and_counties(small_scenes):
    zones = gpd.read_file(small_scenes.zones, layer="hongxian")
    counties = gpd.read_file(small_scenes.counties, layer="xzq")
    assert zones.crs.to_epsg() == 4490 and counties.crs.to_epsg() == 4490
    assert list(zones.columns) == ["HXBH", "HXMC", "STGN", "XZQDM", "geometry"] and len(zones) == 3
    assert zones["HXBH"].is_unique and zones["HXMC"].str.endswith("生态保护红线").all()
    assert set(zones["STGN"]) <= {"水源涵养", "生物多样性维护", "水土保持"}
    assert set(counties["XZQDM"]) == {"510181", "510182"} and set(counties["XZQMC"]) == {"都江堰市", "彭州市"}
    zu, cu = zones.to_crs(32648), counties.to_crs(32648).set_index("XZQDM")
    assert cu.union_all().symmetric_difference(GRID_UTM).area < 1.0
    for z in zu.itertuples():
        assert z.geometry.difference(cu.geometry[z.XZQDM]).area < 1.0, z.HXBH  # inside its county
        for other in zu.itertuples():
            if other.HXBH != z.HXBH:
                assert z.geometry.intersection(other.geometry).area < 1.0
    assert any(len(p.interiors) > 0 for g in zu.geometry for p in getattr(g, "geoms", [g]))  # an enclave
    assert sum(len(getattr(g, "geoms", [g])) == 2 for g in zu.geometry) == 1  # one zone of two parts
    lake_zone = zu.set_index("HXBH").geometry["510182-HX-0003"]
    clear = next(f for f in _features(small_scenes) if f["properties"]["eo:cloud_cover"] < 2)
    water = _read(clear, "scl") == 6
    polys = rasterio.features.shapes(water.astype("uint8"), mask=water, transform=L.grid_transform(80, 20.0))
    shapes = [shapely.geometry.shape(s) for s, _ in polys]
    assert lake_zone.contains(shapely.union_all(shapes).buffer(-25).representative_point())


def test_truth_events_lie_on_the_grid_with_consistent_flags(small_scenes):
    truth = gpd.read_file(small_scenes.truth, layer="events")
    assert truth.crs.to_epsg() == 4326
    assert {"event_id", "type", "start_date", "area_m2", "zone_id", "in_zone", "above_mmu"} <= set(truth.columns)
    assert set(truth["type"]) == {"clearing", "construction", "mining", "fire", "water_loss"}
    t = truth.to_crs(32648)
    zones = gpd.read_file(small_scenes.zones, layer="hongxian").to_crs(32648).set_index("HXBH")
    union = zones.union_all()
    item_days = {f["properties"]["datetime"][:10] for f in _features(small_scenes)}
    for e in t.itertuples():
        assert e.geometry.within(GRID_UTM.buffer(-10)), e.event_id
        assert e.area_m2 == pytest.approx(e.geometry.area, rel=2e-3)
        inside = e.geometry.intersection(union).area
        assert e.in_zone == (inside >= 0.5 * e.geometry.area)
        assert e.above_mmu == (inside >= 5000)
        if e.zone_id:
            assert e.geometry.intersection(zones.geometry[e.zone_id]).area > 0.5 * e.geometry.area
        assert e.start_date in item_days and "2023-03-01" <= e.start_date <= "2023-10-31"
        for other in t.itertuples():
            if other.event_id != e.event_id:
                assert e.geometry.distance(other.geometry) >= 30
    expected = t[t.in_zone & t.above_mmu]
    assert set(expected["type"]) == {"clearing", "construction", "mining", "fire", "water_loss"}
    assert expected["area_m2"].between(8000, 60000).all()
    assert (~t.in_zone).sum() >= 1 and (t.in_zone & ~t.above_mmu & (t.area_m2 < 5000)).sum() >= 1


def test_every_event_changes_the_spectra_as_its_type_says(small_scenes):
    """Clear-sky index medians over each event, after the change vs the same season of the
    baseline year: the truth must be visible in the pixels."""
    feats = _features(small_scenes)
    n = 160
    truth = gpd.read_file(small_scenes.truth, layer="events").to_crs(32648)
    tr = L.grid_transform(n)
    masks = {
        e.event_id: rasterio.features.rasterize([e.geometry.buffer(-10)], out_shape=(n, n), transform=tr).astype(bool)
        for e in truth.itertuples()
    }
    series: dict[str, list[tuple[dt.date, dict[str, float]]]] = {k: [] for k in masks}
    for f in feats:
        scl = _read(f, "scl", (n, n))
        b = {k: _reflectance(f, k, n) for k in ("blue", "green", "red", "nir", "swir16", "swir22")}
        idx = {
            "NDVI": (b["nir"] - b["red"]) / (b["nir"] + b["red"]),
            "NBR": (b["nir"] - b["swir22"]) / (b["nir"] + b["swir22"]),
            "MNDWI": (b["green"] - b["swir16"]) / (b["green"] + b["swir16"]),
            "NDBI": (b["swir16"] - b["nir"]) / (b["swir16"] + b["nir"]),
            "ALB": np.mean([b[k] for k in b], axis=0),
        }
        day = dt.date.fromisoformat(f["properties"]["datetime"][:10])
        for eid, m in masks.items():
            ok = m & np.isin(scl, (4, 5, 6))
            if ok.sum() >= 0.9 * m.sum():
                series[eid].append((day, {k: float(np.median(v[ok])) for k, v in idx.items()}))
    for e in truth.itertuples():
        settled = dt.date.fromisoformat(e.stage_dates.split(";")[-1]) + dt.timedelta(days=45)
        after = [(d, v) for d, v in series[e.event_id] if d >= settled]
        assert after, f"{e.event_id}: no clear view after the change"
        doys = [d.timetuple().tm_yday for d, _ in after]
        before = [v for d, v in series[e.event_id] if d.year == 2022 and min(doys) - 30 <= d.timetuple().tm_yday <= max(doys) + 30]
        assert before, f"{e.event_id}: no clear view in the same season of the baseline year"
        a = {k: float(np.median([v[k] for _, v in after])) for k in after[0][1]}
        p = {k: float(np.median([v[k] for v in before])) for k in before[0]}
        if e.type in ("clearing", "mining", "fire", "construction"):
            assert p["NDVI"] - a["NDVI"] > 0.25, (e.event_id, p, a)
        if e.type == "fire":
            assert p["NBR"] - a["NBR"] > 0.5 and a["ALB"] < p["ALB"], (e.event_id, p, a)
        if e.type == "mining":
            assert a["ALB"] > 0.25 and a["ALB"] - p["ALB"] > 0.12, (e.event_id, p, a)
        if e.type == "construction":
            assert a["NDBI"] > 0, (e.event_id, p, a)
        if e.type == "water_loss":
            assert p["MNDWI"] > 0.3 and a["MNDWI"] < 0, (e.event_id, p, a)


def test_mining_pit_grows_in_steps():
    p = PRESETS["small"]
    land = L.build_landscape(B.rng(1, B.LANDSCAPE), p.size, p.zones)
    dates = [a.date for a in B.acquisitions(p) if a.date.year == 2023]
    events = E.place_events(B.rng(1, B.EVENTS), land, p.events, dates, SC.nodata_corner(p.size))
    mine = next(e for e in events if e.type == "mining")
    assert 2 <= len(mine.stages) <= 3
    areas = [g.area for _, g in mine.stages]
    assert areas == sorted(areas) and areas[0] < 0.6 * areas[-1]
    jit = {y: S.crop_jitter(B.rng(1, B.CROPS, y), land.rotation.size) for y in (2022, 2023)}
    surface = SC.Surface(land, jit, [mine])
    final = L.coverage(mine.geometry, p.size) > 0.5
    bright = [(surface.disturbed(d)[:4].mean(axis=0)[final] > 0.2).mean() for d, _ in mine.stages]
    assert bright == sorted(bright) and bright[0] < 0.7 and bright[-1] > 0.95


# --- landscape properties (no rendering) ------------------------------------------------
def test_cropland_calendar_is_irregular_year_to_year():
    rot = np.zeros(200, dtype="int8")  # rapeseed → rice
    peaks = []
    for year in (2021, 2022, 2023):
        jit = S.crop_jitter(B.rng(5, B.CROPS, year), rot.size)
        curve = np.array([S.crop_state(d, rot, jit)[0] for d in range(150, 300)])  # summer crop
        peaks.append(150 + curve.argmax(axis=0) + (curve >= 0.5).sum(axis=0) / 2)
        harvest = np.array([S.crop_state(d, rot, jit)[0] for d in range(100, 160)])
        assert harvest[0].mean() > 0.6 and harvest[-1].mean() < 0.4  # winter crop harvested in May
    shift = np.abs(np.diff(peaks, axis=0))
    assert np.median(shift) >= 4 and shift.max() >= 10  # fields move by days to weeks between years
    flood = np.array([S.crop_state(d, rot, S.crop_jitter(B.rng(5, B.CROPS, 2022), rot.size))[1].mean() for d in range(140, 190)])
    assert flood.max() > 0.4  # rice fields are flooded for transplanting


def test_demo_preset_layout():
    p = PRESETS["demo"]
    assert (p.size, p.first, p.last, p.revisit_days) == (320, dt.date(2021, 1, 5), dt.date(2023, 12, 31), 10)
    assert len(B.acquisitions(p)) == 110
    land = L.build_landscape(B.rng(20230101, B.LANDSCAPE), p.size, p.zones)
    grid = p.size * L.RES
    cover = shapely.union_all(list(land.zones.values())).area / grid**2
    assert len(land.zones) == 5 and 0.38 < cover < 0.52
    areas = sorted(g.area for g in land.zones.values())
    assert areas[-1] > 2.5 * areas[0]  # zones of different sizes
    dates = [a.date for a in B.acquisitions(p) if a.date.year == 2023]
    events = E.place_events(B.rng(20230101, B.EVENTS), land, p.events, dates, SC.nodata_corner(p.size))
    union = shapely.union_all(list(land.zones.values()))
    inside = [e for e in events if e.geometry.within(union)]
    for kind in E.TYPES:
        assert sum(e.type == kind and e.geometry.area >= 8000 for e in inside) == 2, kind
    assert sum(e.geometry.distance(union) > 0 for e in events) == 2
    assert sum(e.geometry.area < 5000 for e in inside) == 2
    assert all(e.geometry.area <= 60000 for e in events)
    assert len({e.start.month for e in events}) >= 5  # spread over March–October
    for i, a in enumerate(events):
        assert all(a.geometry.distance(b.geometry) > 0 for b in events[i + 1 :])


def test_scan_config_loads(small_scenes):
    cfg = load_config(small_scenes.config, overrides={"stac": {"url": "http://127.0.0.1:9"}})
    assert cfg.name == "demo-small"
    assert str(cfg.baseline.start) == "2022-01-01" and str(cfg.monitor.end) == "2023-12-31"
    assert cfg.detection.min_area_m2 == 5000 and cfg.stac.collections == ["sentinel-2-c1-l2a"]
    assert cfg.zones.id_field == "HXBH" and cfg.admin_units.id_field == "XZQDM"
