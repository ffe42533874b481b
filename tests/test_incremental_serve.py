"""A scheduled rescan while the review service runs (issue #26 item 5): `redline scan` from cron
and `redline serve` on one output folder, the register a GeoPackage (the embedded default). A
county reviewer records decisions through the JSON API from the moment the rescan starts until
it ends — before and after the scan's merge into the register — and every one of them is kept,
in a chain that verifies; the service answers throughout and then lists the rescan's alerts.
Real processes: the embedded STAC API, `redline scan` and `redline serve` (uvicorn)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from pipelines import serve_stac
from redline.register import Register
from tests.configs import cli_config
from tests.serve_site import CLI, add_users, cli, serving
from tests.test_incremental import increments, manifest, scan_catalogue  # noqa: F401  (increments: fixture)

pytestmark = pytest.mark.slow


def test_reviews_made_while_a_rescan_runs_are_kept(small_scenes, increments, tmp_path):
    out = tmp_path / "scheduled"
    scan_catalogue(small_scenes, increments["first"], out)
    n_first = len(Register(out / "register.gpkg").alerts())
    assert n_first >= 1
    add_users(out, {"wang": ("reviewer", "", "")})  # a county reviewer of every county
    token = cli("users", "token", "wang", "--out", out)
    assert token.returncode == 0, token.stderr

    with serving(out, "--lang", "en") as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token.stdout.strip()}"}, timeout=60)
        page = client.get("/api/alerts").json()
        assert page["total"] == n_first
        aid = page["items"][0]["alert_id"]
        with serve_stac(increments["plus1"]) as stac:
            config = cli_config(small_scenes, stac, tmp_path, "plus1.yml")
            rescan = subprocess.Popen([*CLI, "scan", str(config), "--out", str(out), "--no-progress"],  # as cron runs it
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            moved = client.post(f"/api/alerts/{aid}/decisions", json={"to_status": "under_review"})
            assert moved.status_code == 201, moved.text
            notes, listed = [], []
            while rescan.poll() is None:  # a reviewer at work for as long as the rescan runs
                note = f"第{len(notes) + 1}次查看：影像待核"
                res = client.post(f"/api/alerts/{aid}/decisions", json={"note": note})
                assert res.status_code == 201, res.text
                notes.append(note)
                listed.append(client.get("/api/alerts").status_code)
                time.sleep(0.1)
            stdout, stderr = rescan.communicate(timeout=60)
        assert rescan.returncode == 0, stderr[-2000:]
        assert set(listed) == {200}
        m = manifest(out)
        assert m["state"]["incremental"] is True and m["state"]["new_scenes"] == [increments["ids"]["last6"][0]]
        assert "incremental: 1 new scene(s)" in stdout + stderr

        reg = Register(out / "register.gpkg")
        chain = reg.chain()
        scans = chain[chain["kind"] == "scan"]
        assert len(scans) == 2  # the first scan and the rescan, each sealed once
        merged_at = int(scans["seq"].max())
        kept = chain[chain["note"].isin(notes)]
        assert sorted(kept["note"]) == sorted(notes)  # every decision kept, once
        seqs = kept["seq"].astype(int)
        assert seqs.min() < merged_at < seqs.max(), (len(notes), merged_at)  # reviews before and after the rescan's merge
        assert reg.verify().problems == []
        alerts = reg.alerts().set_index("alert_id")
        assert alerts.at[aid, "status"] == "under_review"  # the merge updates what the scan owns, never the status
        assert client.get("/api/alerts").json()["total"] == len(alerts) >= n_first  # the service reads the merged register
        assert client.get(f"/api/alerts/{aid}").json()["status"] == "under_review"
