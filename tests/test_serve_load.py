"""The review service under load (issue 23): 20 users make 50 decisions each through a real
``redline serve`` while a scan merges into the same register — none lost, no 5xx, the chain
intact. The client, the register and the scan are ``benchmarks/serve_load.py``'s (the benchmark
runs the same on 10 000 alerts and reports the timings; this test asserts no timing)."""

from __future__ import annotations

import pytest

from benchmarks.serve_load import run_load

pytestmark = [pytest.mark.slow]

USERS, DECISIONS, ALERTS, CHANGED = 20, 50, 500, 200


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_load(tmp_path_factory.mktemp("load"), n_alerts=ALERTS, n_users=USERS, n_decisions=DECISIONS, changed=CHANGED, log=lambda *_: None)


def test_every_request_is_answered_and_none_with_a_5xx(report):
    assert report.server_errors == 0, report.table()
    assert {k: sum(c.values()) for k, c in report.answers.items()} == {"login": USERS, "queue": USERS * DECISIONS, "alert": USERS * DECISIONS,
                                                                       "decision": USERS * DECISIONS}
    assert set(report.answers["queue"]) == set(report.answers["alert"]) == {200}


def test_every_accepted_decision_is_in_the_history_once_by_its_user(report):
    assert len(report.decisions) == USERS * DECISIONS
    assert {d.status for d in report.decisions} == {303}  # each user decides on alerts of their own, so nothing is refused
    assert report.lost == [] and report.extra_rows == 0
    assert report.recorded == USERS * DECISIONS


def test_the_scan_merged_while_the_users_decided_and_the_register_verifies(report):
    assert report.scan["updated"] == CHANGED * 3 // 4 and report.scan["new"] == CHANGED // 4
    assert report.scan["start"] < report.load_end  # it began before the last decision
    assert report.problems == []


def test_the_queue_shows_what_the_register_holds_after_the_load(report):
    """The service's alert cache, refreshed by decisions and reloaded after the scan, ends where
    the register is: the per-status counts of the queue page are the register's."""
    assert report.register_counts == {"new": ALERTS + CHANGED // 4 - USERS * DECISIONS // 2, "under_review": USERS * DECISIONS // 2}
    assert report.queue_counts == report.register_counts
