"""map.html from a small real output folder: offline assets, escaping, register-driven status."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from maps import render_map
from redline.alerts import ALERT_COLUMNS

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs\.|code\.jquery|maxcdn|googleapis|bootstrapcdn")


@pytest.fixture
def out_dir(tmp_path):
    x0, y0 = 400000, 3400000
    zones = gpd.GeoDataFrame(
        {"zone_id": ["Z1", "Z2"], "zone_name": ["龙门山水源涵养生态保护红线", "<script>alert(1)</script>`${x}`"], "category": ["水源涵养", "水土保持"], "admin_id": ["510182", "510181"]},
        geometry=[shapely.box(x0, y0 - 1000, x0 + 1000, y0), shapely.box(x0 + 1200, y0 - 1000, x0 + 2000, y0)], crs=32648,
    ).to_crs(4326)
    (tmp_path / "zones.geojson").write_text(zones.to_json(ensure_ascii=False), encoding="utf-8")
    rows = []
    for i, (t, s) in enumerate([("clearing", "new"), ("mining", "under_review"), ("fire", "confirmed"), ("water_loss", "dismissed")]):
        geom = shapely.box(x0 + 100 + 200 * i, y0 - 300, x0 + 180 + 200 * i, y0 - 200)
        rows.append({c: None for c in ALERT_COLUMNS} | {"alert_id": f"Z1-2023060{i + 1}-1", "zone_id": "Z1", "zone_name": "龙门山", "area_m2": 8000.0,
                     "first_detected": "2023-06-01", "last_observed": "2023-07-01", "confidence": "high", "disturbance_type": t,
                     "magnitude": 0.4, "n_observations": 4, "status": s, "scan_ids": "s1", "geometry": geom})
    alerts = gpd.GeoDataFrame(rows, geometry="geometry", crs=32648).to_crs(4326)
    (tmp_path / "alerts.geojson").write_text(alerts.to_json(), encoding="utf-8")
    (tmp_path / "rasters").mkdir()
    rgb = np.random.default_rng(0).integers(1, 255, (3, 100, 200), dtype="uint8")
    with rasterio.open(tmp_path / "rasters" / "true_colour_monitor.tif", "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8",
                       crs="EPSG:32648", transform=from_origin(x0, y0, 10, 10), nodata=0) as dst:
        dst.write(rgb)
    return tmp_path


def test_page_uses_local_assets_only(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    assert not CDN.search(page)
    assert not re.search(r"(src|href)=[\"']https?://", page)
    for rel in ("lib/leaflet/leaflet.js", "lib/leaflet/leaflet.css", "lib/jquery.min.js"):
        assert (out_dir / rel).exists()
        assert rel in page


def test_input_text_is_escaped(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "${x}" not in page  # would be evaluated inside folium's JS template literals
    assert "龙门山水源涵养生态保护红线" in page


def test_popups_and_legend(out_dir):
    page = render_map(out_dir).read_text(encoding="utf-8")
    for i in range(1, 5):
        assert f"Z1-2023060{i}-1" in page
    for label in ("clearing", "construction", "mining", "fire", "water loss", "dismissed"):
        assert label in page
    assert "data:image/png;base64," in page  # the offline base composite


def test_register_status_drives_the_map(out_dir):
    alerts = gpd.read_file(out_dir / "alerts.geojson")
    alerts.loc[0, "status"] = "field_check"
    alerts.to_file(out_dir / "register.gpkg", layer="alerts", driver="GPKG")
    without = render_map(out_dir).read_text(encoding="utf-8")
    with_reg = render_map(out_dir, register=out_dir / "register.gpkg").read_text(encoding="utf-8")
    assert "Z1-20230601-1 · clearing · new" in without
    assert "Z1-20230601-1 · clearing · field_check" in with_reg
