"""Hundreds of small zones (issue 25 item 4): the same alerts inside them as the few large zones
they were cut from, zone figures drawn as ``outputs.zone_figures`` says, the rest drawn on demand
by the review service, and a bad value of the key refused in one line."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely

import aoi
import maps
from redline.config import load_config
from tests.serve_site import PASSWORD, Site, add_users, http_login, serving

#: the patches' edge, metres: the small preset's zones (0.7 km²) cut into about 300 pieces
PATCH_EDGE_M = 50.0


def _patches(zones_path: Path, layer: str, id_field: str, edge: float) -> gpd.GeoDataFrame:
    """The zones of ``zones_path`` cut along a square grid of ``edge`` metres (in their UTM
    zone), each piece of at least one pixel keeping its zone's fields, id ``<zone>-P<k>``; in the
    zones' CRS."""
    z = gpd.read_file(zones_path, layer=layer)
    utm = z.to_crs(aoi.utm_crs_for(z))
    w, s, e, n = utm.total_bounds
    cells = gpd.GeoDataFrame(geometry=[shapely.box(w + i * edge, s + j * edge, w + (i + 1) * edge, s + (j + 1) * edge)
                                       for i in range(math.ceil((e - w) / edge)) for j in range(math.ceil((n - s) / edge))], crs=utm.crs)
    pieces = gpd.overlay(utm, cells, how="intersection", keep_geom_type=True)
    pieces = pieces[pieces.geometry.area >= 100.0].reset_index(drop=True)  # slivers under a 10 m pixel left out (SmallZoneWarning)
    pieces[id_field] = [f"{zid}-P{k:04d}" for k, zid in enumerate(pieces[id_field])]
    return pieces.to_crs(z.crs)


@pytest.fixture(scope="module")
def patch_scan(small_scenes, stac_url, tmp_path_factory):
    """A real scan of the small scenes over their zones cut into ~360 patches, with a minimum
    mapping unit of 1 m² (under one pixel: every disturbed piece inside a patch is an alert) and
    no zone figures (``outputs.zone_figures: none``; the choices are tested on the small scan)."""
    from redline.scan import run_scan

    base = load_config(small_scenes.config, overrides={"stac": {"url": stac_url}})
    folder = tmp_path_factory.mktemp("patches")
    pieces = _patches(base.zones.path, base.zones.layer, base.zones.id_field, PATCH_EDGE_M)
    pieces.to_file(folder / "patches.gpkg", layer=base.zones.layer, driver="GPKG")
    cfg = load_config(small_scenes.config, overrides={"stac": {"url": stac_url}, "zones": {"path": str(folder / "patches.gpkg")},
                                                      "detection": {"min_area_m2": 1.0}, "outputs": {"zone_figures": "none"}})
    return run_scan(cfg, folder / "out"), pieces


def test_patches_hold_the_alerts_of_the_zones_they_were_cut_from(small_scan, patch_scan):
    result, pieces = patch_scan
    assert 200 <= len(result.zone_stats) <= 400  # a few hundred zones, every one assessed
    utm = aoi.utm_crs_for(pieces)
    inside = pieces.to_crs(utm).union_all()
    big = small_scan.alerts.to_crs(utm).union_all().intersection(inside)  # the 4-zone scan's alerts, restricted to the patches
    small = result.alerts.to_crs(utm).union_all()
    assert big.area > 1000  # the zones' alerts reach into the patches
    # every alert area of the 4-zone scan inside the patches is an alert of the patch scan (the
    # patch scan's unit of 1 m² keeps pieces the 4-zone unit of 0.5 ha dropped: ⊇, not =)
    assert big.difference(small).area < 1.0
    assert small.difference(inside).area < 1.0  # and no alert of the patch scan leaves its patches
    # the per-pixel fields are the same pixel for pixel inside the patches, whatever the zones
    for name in ("disturbance_date", "magnitude"):
        with rasterio.open(small_scan.out_dir / f"rasters/{name}.tif") as a, rasterio.open(result.out_dir / f"rasters/{name}.tif") as b:
            ga = pieces.to_crs(a.crs).geometry
            win_b = rasterio.windows.from_bounds(*a.bounds, transform=b.transform).round_offsets().round_lengths()
            va, vb = a.read(1), b.read(1, window=win_b, boundless=True, fill_value=b.nodata if b.nodata is not None else np.nan)
            mask = rasterio.features.geometry_mask(ga, out_shape=va.shape, transform=a.transform, invert=True, all_touched=False)
            assert mask.sum() > 1000
            np.testing.assert_array_equal(va[mask], vb[mask])
    # and each alert of the patch scan of at least one pixel lies on pixels the 4-zone scan found
    # disturbed (a piece cut by a patch edge may hold no pixel centre: the pixels it touches)
    with rasterio.open(small_scan.out_dir / "rasters/disturbance_date.tif") as src:
        dates = src.read(1)
        for a in result.alerts[result.alerts["area_m2"] >= 100.0].to_crs(src.crs).itertuples():
            px = rasterio.features.geometry_mask([a.geometry], out_shape=dates.shape, transform=src.transform, invert=True, all_touched=True)
            assert (dates[px] >= 0).any(), a.alert_id


def test_patch_scan_lists_only_changed_zones_and_draws_none(patch_scan):
    result, _ = patch_scan
    stats = pd.read_csv(result.out_dir / "zone_stats.csv", dtype={"zone_id": str})
    assert not list((result.out_dir / "figures").glob("zone_*"))  # zone_figures: none
    assert len(list((result.out_dir / "figures").glob("county_*.png"))) == stats["admin_id"].nunique()
    page = (result.out_dir / "report.html").read_text(encoding="utf-8")
    notable = maps.zones_changed(stats) | (stats["status"] == "not_observed")
    assert page.count('<article class="zone"') == int(notable.sum()) < len(stats)  # counties of > 50 zones list the changed ones
    unlisted = [int(n) for n in re.findall(r'<p class="unlisted muted">(\d+) other zone', page)]
    assert sum(unlisted) == len(stats) - int(notable.sum())  # and count the others


def test_a_grade_boundary_crossed_by_noise_is_not_a_changed_zone():
    """A zone is changed by its alerts, or by a grade change of at least HJ 192-2015's one point
    (0.01 RSEI); a boundary crossed by 0.001, or a large change within one grade, is not."""
    stats = pd.DataFrame({
        "zone_id": ["noise", "one-point", "alerts", "within-grade", "unknown", "down"],
        "alerts_total": [0, 0, 2, 0, 0, 0],
        "rsei_baseline": [0.800, 0.80, 0.70, 0.61, np.nan, 0.41],
        "rsei_monitor": [0.799, 0.79, 0.70, 0.79, 0.5, 0.05],
        "rsei_grade_baseline": ["优", "优", "良", "良", None, "一般"],
        "rsei_grade_monitor": ["良", "良", "良", "良", "一般", "差"],
    })
    stats["rsei_change"] = stats["rsei_monitor"] - stats["rsei_baseline"]
    assert maps.RSEI_NO_OBVIOUS_CHANGE == 0.01
    expect = [False, True, True, False, False, True]
    assert maps.zones_changed(stats).tolist() == expect
    assert maps.zones_changed(stats.drop(columns="rsei_change")).tolist() == expect  # from the two means


@pytest.mark.parametrize("choice", ["none", "changed", "all"])
def test_zone_figures_choice_draws_what_it_says(small_scan, tmp_path, choice):
    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    for f in (out / "figures").glob("zone_*"):
        f.unlink()
    stats = pd.read_csv(out / "zone_stats.csv", dtype={"zone_id": str})
    # one zone made unchanged (no alerts, same grade in both periods): "changed" leaves it out
    stats.loc[0, "alerts_total"] = 0
    if "rsei_grade_baseline" in stats:
        stats.loc[0, "rsei_grade_monitor"] = stats.loc[0, "rsei_grade_baseline"]
    stats.to_csv(out / "zone_stats.csv", index=False)
    maps.render_outputs(out, zone_figures=choice)
    drawn = {p.name for p in (out / "figures").glob("zone_*.png")}
    every = {maps.zone_figure_name(z) for z in stats["zone_id"]}
    changed = {maps.zone_figure_name(z) for z in stats.loc[maps.zones_changed(stats), "zone_id"]}
    assert maps.zone_figure_name(stats.loc[0, "zone_id"]) not in changed
    assert drawn == {"none": set(), "changed": changed, "all": every}[choice]
    assert {p.with_suffix(".png").name for p in (out / "figures").glob("zone_*.svg")} == drawn
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("no-zone-figure") == len(every) - len(drawn)  # the zones without one say how to get it


def test_service_draws_a_missing_zone_figure_on_demand(small_scan, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    zid = str(small_scan.alerts["zone_id"].iloc[0])
    alert_id = str(small_scan.alerts["alert_id"].iloc[0])
    for f in (out / "figures").glob(f"{Path(maps.zone_figure_name(zid)).stem}.*"):
        f.unlink()
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    add_users(out, {"rev": ("reviewer", "", "")})
    with serving(out) as url:
        c, res = http_login(Site(url, out, out / "register.gpkg"), "rev", PASSWORD)
        assert res.status_code in (200, 303)
        page = c.get(f"/alerts/{alert_id}")
        assert page.status_code == 200 and f'/zones/{zid}/figure' in page.text
        fig = c.get(f"/zones/{zid}/figure")
        assert fig.status_code == 200 and fig.headers["content-type"] == "image/png" and fig.content[:8] == b"\x89PNG\r\n\x1a\n"
        cached = list(cache.rglob(maps.zone_figure_name(zid)))
        assert len(cached) == 1 and cached[0].read_bytes() == fig.content  # drawn once into the cache ...
        stamp = cached[0].stat().st_mtime_ns
        assert c.get(f"/zones/{zid}/figure").content == fig.content and cached[0].stat().st_mtime_ns == stamp  # ... and served from it
        assert c.get("/zones/no-such-zone/figure").status_code == 404
    after = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and "register" not in p.name)
    assert after == [p for p in before if "register" not in p]  # OUT, as its manifest signed it, is left alone


def test_bad_zone_figures_value_is_one_line_exit_2(small_scenes, tmp_path):
    cfg = tmp_path / "scan.yml"
    text = Path(small_scenes.config).read_text(encoding="utf-8")
    for name in ("zones.gpkg", "counties.gpkg"):
        shutil.copyfile(Path(small_scenes.root) / name, tmp_path / name)
    cfg.write_text(text + "\noutputs: {zone_figures: some}\n", encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "redline.cli", "validate", str(cfg)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "outputs.zone_figures" in lines[0] and "'some'" in lines[0] and "changed" in lines[0], res.stderr
    res = subprocess.run([sys.executable, "-m", "redline.cli", "map", str(tmp_path), "--zone-figures", "every"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "every" in res.stderr and "changed, all, none" in res.stderr, res.stderr


@pytest.mark.parametrize("n_zones", [1, 3, 120])
def test_grade_shares_figure_keeps_its_legend_under_the_axis_whatever_the_zones(tmp_path, n_zones):
    """The grade legend sits a fixed distance under the x label: laid out without matplotlib's
    "tight layout not applied" warning, inside the image, close under the last bar."""
    import warnings

    from PIL import Image

    rng = np.random.default_rng(7)
    grades = list(maps.GRADE_COLOURS)
    rows = []
    for k in range(n_zones):
        row = {"zone_id": f"Z{k:04d}", "alerts_total": int(k % 7 == 0), "rsei_baseline": 0.5, "rsei_monitor": 0.5 + 0.001 * k}
        for p in ("baseline", "monitor"):
            shares = rng.dirichlet(np.ones(len(grades)))
            row.update({f"rsei_{p}_share_{g}": float(s) for g, s in zip(grades, shares)})
        rows.append(row)
    path = tmp_path / "grades.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps.render_grade_shares(path, pd.DataFrame(rows))
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    poor = np.array([0xD7, 0x19, 0x1C])
    # the legend's "poor" swatch: the only pure poor-red pixels a figure of random shares may lack elsewhere
    # are in the legend; find the lowest row holding that colour and check it is near the image bottom
    hits = np.where((np.abs(img - poor).sum(axis=2) < 6).any(axis=1))[0]
    assert hits.size and img.shape[0] - hits.max() < 60, (img.shape, hits.max() if hits.size else None)
    # and the bars reach down close to the axis: no blank band of more than 0.5 in (50 px) above the tick labels
    frame = np.where((img[:, :, :] < 40).all(axis=2).sum(axis=1) > 0.5 * img.shape[1])[0]  # the axes' top and bottom spines
    bottom_spine = frame.max()
    coloured = np.where((np.abs(img[:bottom_spine] - poor).sum(axis=2) < 6).any(axis=1)
                        | (np.abs(img[:bottom_spine] - np.array([0x1A, 0x96, 0x41])).sum(axis=2) < 6).any(axis=1))[0]
    assert bottom_spine - coloured.max() < 50
