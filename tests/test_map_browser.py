"""The scan's map.html in a real headless Chromium with the network blocked."""

from __future__ import annotations

import pytest

from tests.browser import open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_map_works_offline_and_shows_every_alert(small_scan):
    visit = open_page(small_scan.out_dir / "map.html")
    try:
        external = [u for u in visit.requests if not u.startswith(("file://", "data:", "blob:", "about:"))]
        assert external == []
        assert visit.console_errors == []
        n_alerts = visit.driver.execute_script("return window.redlineMap.alertLayer.getLayers().length")
        n_zones = visit.driver.execute_script("return window.redlineMap.zoneLayer.getLayers().length")
        assert n_alerts == len(small_scan.alerts)
        assert n_zones == len(small_scan.zone_stats)
        assert visit.driver.execute_script("return typeof L !== 'undefined' && L.version") == "1.9.3"
    finally:
        visit.driver.quit()
