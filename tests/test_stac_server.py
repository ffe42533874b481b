"""The embedded STAC API: a real rustac server on loopback, searched with pystac-client."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pystac
import pytest
from pystac_client import Client

from pipelines import search_items, serve_stac
from redline.errors import StacError


def _item(i: int, lon: float) -> dict:
    day = 1 + i % 28
    month = 1 + i // 28
    return pystac.Item(
        id=f"scene-{i:03d}", bbox=[lon, 30.0, lon + 0.1, 30.1],
        geometry={"type": "Polygon", "coordinates": [[[lon, 30.0], [lon + 0.1, 30.0], [lon + 0.1, 30.1], [lon, 30.1], [lon, 30.0]]]},
        datetime=pystac.utils.str_to_datetime(f"2023-{month:02d}-{day:02d}T03:40:00Z"),
        properties={"eo:cloud_cover": float(i % 10) * 10}, collection="sentinel-2-c1-l2a",
    ).to_dict()


@pytest.fixture
def item_folder(tmp_path):
    feats = [_item(i, 103.0) for i in range(30)] + [_item(i, 110.0) for i in range(30, 35)]
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return tmp_path


def test_search_by_bbox_datetime_with_paging(item_folder):
    with serve_stac(item_folder) as url:
        assert url.startswith("http://127.0.0.1:")
        client = Client.open(url)
        search = client.search(collections=["sentinel-2-c1-l2a"], bbox=[102.9, 29.9, 103.2, 30.2], datetime="2023-01-01/2023-01-31", limit=7)
        pages = list(search.pages())
        ids = [it.id for page in pages for it in page.items]
        assert len(pages) >= 2  # paged
        assert sorted(ids) == [f"scene-{i:03d}" for i in range(28)]


def test_cloud_cover_is_filtered_on_the_client_when_the_server_lacks_query(item_folder):
    with serve_stac(item_folder) as url:
        res = search_items(url, collections=["sentinel-2-c1-l2a"], bbox=(102.9, 29.9, 103.2, 30.2), datetime="2023-01-01/2023-12-31", max_cloud_cover=30)
    assert res.client_side_cloud_filter
    assert res.n_before_cloud_filter == 30
    assert {float(it.properties["eo:cloud_cover"]) for it in res.items} == {0.0, 10.0, 20.0, 30.0}
    assert len(res.items) == 12


def test_unknown_collection_is_a_clear_error(item_folder):
    with serve_stac(item_folder) as url:
        with pytest.raises(StacError, match="collection 'landsat-c2-l2' does not exist"):
            search_items(url, collections=["landsat-c2-l2"], bbox=(102, 29, 104, 31), datetime="2023-01-01/2023-12-31")


def test_server_stops_on_exit_and_on_error(item_folder):
    with pytest.raises(RuntimeError):
        with serve_stac(item_folder) as url:
            raise RuntimeError("boom")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/", timeout=2)
    out = subprocess.run(["pgrep", "-f", f"rustac serve --addr {url.removeprefix('http://')}"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_unreachable_api_is_one_clear_line():
    with pytest.raises(StacError, match="cannot open the STAC API"):
        search_items("http://127.0.0.1:9", collections=["x"], bbox=(0, 0, 1, 1), datetime="2023-01-01/2023-01-02")


@pytest.mark.parametrize("how", ["ctrl-c", "ctrl-c-in-a-background-job", "kill"])
def test_cli_stac_serve_answers_and_stops_on_ctrl_c(item_folder, how):
    import re
    import signal
    import sys
    import time

    # a shell starts a background job (`redline stac serve DIR &`) with SIGINT ignored, which Python keeps
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if how == "ctrl-c-in-a-background-job" else None
    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "stac", "serve", str(item_folder)], stdout=subprocess.PIPE, text=True,
                            preexec_fn=ignore)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        assert len(list(Client.open(url).search(collections=["sentinel-2-c1-l2a"], max_items=5).items())) == 5
        proc.send_signal(signal.SIGTERM if how == "kill" else signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        time.sleep(0.5)
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url + "/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
