"""Scheduled scans that cost what is new (issue #26): a scan keeps its state (the per-pixel
baseline model, the later looks, the assessment inputs of the earlier ones; redline.run.state),
and the next scan into the same folder reads only the scenes of new or changed solar days. Its
answer is the full scan's: the same alerts (ids, first dates, areas, confidence, types), the
same rasters and the same zone and county figures — after one new scene, after five more, and
after a scene that arrives late with a date older than the state's last; checked on the real
embedded STAC API serving subsets of the generated `small` scene set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from pipelines import serve_stac
from redline.config import load_config
from redline.run.state import INDEX, STATE_DIR, read_state
from redline.scan import run_scan


def catalogue(src: Path, dst: Path, drop: set[str], reprocessed: set[str] = frozenset()) -> Path:
    """A copy of the scene set's catalogue (the COGs stay where they are) without ``drop``, the
    scenes ``reprocessed`` with another processing baseline (the same pixels)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "collection.json", dst / "collection.json")
    fc = json.loads((src / "items.json").read_text(encoding="utf-8"))
    fc["features"] = [f for f in fc["features"] if f["id"] not in drop]
    for f in fc["features"]:
        if f["id"] in reprocessed:
            f["properties"]["s2:processing_baseline"] = "98.76"
    (dst / "items.json").write_text(json.dumps(fc), encoding="utf-8")
    return dst


def scan_catalogue(scenes, folder: Path, out: Path, *, register: str | None = None, **kw):
    with serve_stac(folder) as url:
        cfg = load_config(scenes.config, overrides={"stac": {"url": url}})
        if register:
            cfg = cfg.model_copy(update={"register_path": register})
        return run_scan(cfg, out, config_text=Path(scenes.config).read_text(encoding="utf-8"), **kw)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def assert_same_answer(a: Path, b: Path, *, history: bool = True) -> None:
    """Alerts, rasters and zone/county tables of two output folders are the same. ``history``:
    the folders' registers had the same alerts before, so that the alerts' outlines (a union
    with the earlier one), confidence (the highest) and type (the first) are compared too."""
    cols = ["alert_id", "zone_id", "first_detected", *(["confidence", "disturbance_type", "area_m2", "last_observed", "n_confirm"] if history else [])]
    fa, fb = gpd.read_file(a / "alerts.geojson"), gpd.read_file(b / "alerts.geojson")
    assert len(fa) > 0
    ka = fa[[c for c in cols if c in fa]].sort_values("alert_id").reset_index(drop=True)
    kb = fb[[c for c in cols if c in fb]].sort_values("alert_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ka, kb)
    if history:
        assert all(x.equals(y) for x, y in zip(fa.sort_values("alert_id").geometry, fb.sort_values("alert_id").geometry))
        # the reviewer's pictures: before/after chips and series figures, pixel for pixel (a
        # rescan draws those of the alerts it had drawn from its state, redline.run.chips)
        pictures = sorted(p.relative_to(a).as_posix() for p in [*(a / "chips").glob("*.png"), *(a / "figures").glob("*-*-*.png")])
        assert len(pictures) >= 3 * len(fa)
        assert pictures == sorted(p.relative_to(b).as_posix() for p in [*(b / "chips").glob("*.png"), *(b / "figures").glob("*-*-*.png")])
        assert [p for p in pictures if (a / p).read_bytes() != (b / p).read_bytes()] == []
    for name in ("zone_stats.csv", "admin_stats.csv", "ndvi_annual.csv"):
        ta, tb = pd.read_csv(a / name), pd.read_csv(b / name)
        if not history:  # what the register's alerts count (their union areas, their first types) left out
            keep = [c for c in ta.columns if not c.startswith(("alerts_", "disturbed_", "zones_with_alerts", "status"))]
            assert len(keep) > (3 if name == "ndvi_annual.csv" else 20)
            ta, tb = ta[keep], tb[keep]
        pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-9)
    rasters = sorted(p.name for p in (a / "rasters").glob("*.tif"))
    assert rasters == sorted(p.name for p in (b / "rasters").glob("*.tif")) and len(rasters) > 5
    for name in rasters:
        with rasterio.open(a / "rasters" / name) as ra, rasterio.open(b / "rasters" / name) as rb:
            x, y = ra.read(), rb.read()
            assert np.array_equal(x, y, equal_nan=True), (name, int((~((x == y) | (np.isnan(x) & np.isnan(y)))).sum()) if x.dtype.kind == "f" else name)


@pytest.fixture(scope="module")
def increments(small_scenes, tmp_path_factory):
    """Catalogues of the small scene set: all but the last six monitor scenes and one late
    scene (a monitor scene in mid-window); + the first of the six; + the other five, an early
    monitor scene reprocessed; + the late one (= every scene, that one still reprocessed)."""
    src = Path(small_scenes.root)
    fc = json.loads((src / "items.json").read_text(encoding="utf-8"))
    monitor = sorted((f["properties"]["datetime"], f["id"]) for f in fc["features"] if f["properties"]["datetime"] >= "2023")
    last6 = [i for _, i in monitor[-6:]]
    late = monitor[len(monitor) // 2][1]
    again = monitor[2][1]
    base = tmp_path_factory.mktemp("increments")
    return {
        "first": catalogue(src, base / "first", {*last6, late}),
        "plus1": catalogue(src, base / "plus1", {*last6[1:], late}),
        "plus5": catalogue(src, base / "plus5", {late}, {again}),
        "late": catalogue(src, base / "late", set(), {again}),
        "ids": {"last6": last6, "late": late, "reprocessed": again},
    }


def looks_files(out: Path) -> dict[str, list[dict]]:
    """Tile id → its looks files' records in the state's index."""
    return {t["id"]: t["files"]["looks"] for t in json.loads((out / STATE_DIR / INDEX).read_text(encoding="utf-8"))["tiles"]}


def test_rescans_read_only_the_new_scenes_and_give_the_full_scans_answer(small_scenes, small_scan, increments, tmp_path, monkeypatch):
    out = tmp_path / "scheduled"
    first = scan_catalogue(small_scenes, increments["first"], out)
    m = manifest(out)
    assert m["state"]["incremental"] is False and m["state"]["why_full"].startswith("no state")
    assert (out / STATE_DIR / INDEX).is_file() and m["state"]["tiles"] >= 1
    assert m["outputs"][m["state"]["path"]]["sha256"] == m["state"]["sha256"]  # the state is checksummed with the outputs
    n_first = first.n_items
    base_files = {t["id"]: t["files"]["base"]["sha256"] for t in json.loads((out / STATE_DIR / INDEX).read_text(encoding="utf-8"))["tiles"]}
    first_files = {t: f[0]["sha256"] for t, f in looks_files(out).items()}

    # one new scene: only it is read (its day), the answer is a full scan's over the same scenes
    one = scan_catalogue(small_scenes, increments["plus1"], out)
    m = manifest(out)
    assert m["state"]["incremental"] is True and m["state"]["new_scenes"] == [increments["ids"]["last6"][0]]
    assert any(n.startswith("incremental: 1 new scene(s)") for n in one.notes)
    assert m["state"]["chips"]["from_state"] >= 1  # alerts drawn before: their chips from the state, no scene read for them
    assert one.n_items == n_first + 1
    index = json.loads((out / STATE_DIR / INDEX).read_text(encoding="utf-8"))
    assert {t["id"]: t["files"]["base"]["sha256"] for t in index["tiles"]} == base_files  # the baseline files kept as they were
    assert len(list((out / STATE_DIR).iterdir())) == 2  # the index and this state's folder: the previous one is gone
    # the looks: the first scan's file kept as it was, and one of the new day's look
    looks = looks_files(out)
    assert all(len(f) == 2 and f[1]["days"] == [m["state"]["days_read"][0]] for f in looks.values())
    assert {t: f[0]["sha256"] for t, f in looks.items()} == first_files
    plus1_files = {t: f[1]["sha256"] for t, f in looks.items()}
    # (its answer against a full scan of the same scenes: tests/test_incremental_cluster.py)

    # five more, then a scene older than the state's last look: read alone, judged in its place
    scan_catalogue(small_scenes, increments["plus5"], out)
    assert manifest(out)["state"]["new_scenes"] == sorted([*increments["ids"]["last6"][1:], increments["ids"]["reprocessed"]])
    # a day of the first scan's looks file reprocessed: that file's other looks go into the new one
    looks = looks_files(out)
    assert all(len(f) == 2 and f[0]["sha256"] == plus1_files[t] and len(f[1]["days"]) > 6 for t, f in looks.items())
    twin_late = tmp_path / "twin-late"
    shutil.copytree(out, twin_late)
    monkeypatch.setattr("redline.run.state.MAX_LOOKS_FILES", 2)  # one file more would be too many: all merged into one
    scan_catalogue(small_scenes, increments["late"], out)
    assert all(len(f) == 1 for f in looks_files(out).values())
    m = manifest(out)
    assert m["state"]["new_scenes"] == [increments["ids"]["late"]]
    days = sorted(json.loads((out / STATE_DIR / INDEX).read_text(encoding="utf-8"))["days"])
    assert len(m["state"]["days_read"]) == 1 and m["state"]["days_read"][0] < days[-1]  # older than the state's last look
    scan_catalogue(small_scenes, increments["late"], twin_late, full=True)
    assert_same_answer(out, twin_late)
    # every scene now: the rasters and tables of the session's fresh full scan of the whole set,
    # its alerts' ids and first dates (confidence, type and outline of an alert the register
    # held before are the register's: the highest confidence, the first type, the union)
    assert_same_answer(out, small_scan.out_dir, history=False)


def test_a_changed_config_or_a_damaged_state_makes_a_full_scan_with_one_line(small_scenes, small_config, increments, tmp_path):
    out = tmp_path / "scheduled"
    scan_catalogue(small_scenes, increments["plus5"], out)
    from redline.run.plan import find_scenes, read_areas, scan_grid

    zones, _ = read_areas(small_config)
    items = find_scenes(small_config, zones).items
    grid = scan_grid(small_config, zones)
    state, why = read_state(out, small_config, items, grid)
    assert state is not None, why
    # another detection threshold: the state is of another config
    other = small_config.model_copy(update={"detection": small_config.detection.model_copy(update={"z_threshold": 3.5})})
    assert read_state(out, other, items, grid) == (None, f"the config changed since the state of scan {state.scan_id} "
                                                         "(detection, windows, zones, masks or assessment)")
    # a baseline scene reprocessed (a new processing baseline under the same id)
    changed = [it.clone() for it in items]
    b = next(it for it in changed if it.datetime.year == 2022)
    b.properties["s2:processing_baseline"] = "99.99"
    s, why = read_state(out, small_config, changed, grid)
    assert s is None and "reprocessed" in why and b.id in why
    # a truncated tile file, then an index from a future format
    tile = out / STATE_DIR / state.index["tiles"][0]["files"]["looks"][0]["file"]
    data = tile.read_bytes()
    tile.write_bytes(data[: len(data) // 2])
    s, why = read_state(out, small_config, items, grid)
    assert s is None and "truncated or altered" in why and str(tile) in why
    tile.write_bytes(data)
    index = json.loads((out / STATE_DIR / INDEX).read_text())
    (out / STATE_DIR / INDEX).write_text(json.dumps({**index, "format_version": 99}))
    s, why = read_state(out, small_config, items, grid)
    assert s is None and "format 99" in why
    # the scan then is a full one and says why on its console lines; its new state is usable again
    res = scan_catalogue(small_scenes, increments["late"], out)
    assert any(n.startswith("full scan: ") and "format 99" in n for n in res.notes)
    assert manifest(out)["state"]["incremental"] is False
    assert read_state(out, small_config, items, grid)[0] is not None


def test_a_state_folder_that_cannot_be_written_is_refused_before_anything_is_read(small_config, tmp_path):
    """`OUT/state` a file (or not writable): one line naming it, exit 2 (RedlineInputError),
    before the search; nothing written."""
    from redline.errors import RedlineInputError

    out = tmp_path / "out"
    out.mkdir()
    (out / STATE_DIR).write_text("not a folder", encoding="utf-8")
    with pytest.raises(RedlineInputError, match=r"state is a file, not the scan state folder"):
        run_scan(small_config, out)
    assert sorted(p.name for p in out.iterdir()) == [STATE_DIR]
