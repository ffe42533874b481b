"""Scheduled scans on a Dask cluster with the register in PostGIS (issue #26): a real `dask
scheduler` and two `dask worker` processes on loopback, the register in a throw-away PostGIS
database; the rescan from the state reads its one new scene in the workers, a review made between
the scans is kept, and `--full` over the same scenes gives the same rasters, tables and alerts."""

from __future__ import annotations

import shutil

import pytest

from tests import test_cluster
from tests.test_incremental import assert_same_answer, increments, manifest, scan_catalogue  # noqa: F401  (increments: fixture)

cluster = test_cluster.cluster  # a real `dask scheduler` and two `dask worker` processes (fixture)


@pytest.mark.slow
@pytest.mark.postgres
def test_on_a_dask_cluster_with_the_register_on_postgis_reviews_are_kept(small_scenes, increments, cluster, pg_cluster, tmp_path):
    """A real `dask scheduler` and two `dask worker` processes, the register in PostGIS: the
    rescan reads the new scene in the workers from the state, a review made between the scans
    is kept, and `--full` over the same scenes gives the same rasters and tables."""
    from redline.register import Register

    url = pg_cluster.new_database()
    out = tmp_path / "scheduled"
    scan_catalogue(small_scenes, increments["first"], out, register=url, scheduler=cluster)
    reg = Register(url)
    alerts = reg.alerts()
    aid = sorted(alerts["alert_id"])[0]
    reg.review(aid, to_status="under_review", by="王工", note="先看影像")
    scan_catalogue(small_scenes, increments["plus1"], out, register=url, scheduler=cluster)
    m = manifest(out)
    assert m["state"]["incremental"] is True and m["state"]["new_scenes"] == [increments["ids"]["last6"][0]]
    after = Register(url)
    assert after.alerts().set_index("alert_id").at[aid, "status"] == "under_review"
    assert any(h["alert_id"] == aid and h["note"] == "先看影像" for h in after.history().to_dict("records"))
    incremental = tmp_path / "incremental-copy"
    shutil.copytree(out, incremental)
    scan_catalogue(small_scenes, increments["plus1"], out, register=url, full=True)  # --full: the same folder, its state usable
    m = manifest(out)
    assert m["state"]["incremental"] is False and m["state"]["why_full"] == "--full given"
    assert_same_answer(incremental, out, history=False)
    assert Register(url).alerts().set_index("alert_id").at[aid, "status"] == "under_review"
