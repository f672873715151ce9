"""The deadline-rush benchmark, small (issue 24): two ``server run`` replicas on PostgreSQL, correctness only.

The full-size rush (5,000 teams, 10 minutes) is ``python benchmarks/deadline_rush.py``; here 8
teams hand in 3 files each over a few seconds before the deadline. Nothing here checks a time.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import deadline_rush  # noqa: E402
from replicas import check_course, course_rows  # noqa: E402

TEAMS, UPLOADS, PER_DAY = 8, 3, 2


@pytest.fixture(scope="module")
def rushed(pg_cluster, tmp_path_factory):
    # lead: two replicas took up to 13 s to start at load 10; a slower start squeezes the 6 s window.
    tmp = tmp_path_factory.mktemp("rush")
    result = deadline_rush.rush(tmp, db=pg_cluster.new_database(), cluster=pg_cluster, teams=TEAMS, minutes=0.1,
                                uploads=UPLOADS, per_day=PER_DAY, replicas=2, clients=8, lead=15, grace=60,
                                board_interval=0, cases=6)
    return result, tmp / "course"


def test_rush_loses_nothing_and_keeps_quotas_exact(rushed):
    r, _ = rushed
    assert r["answered"] == TEAMS * UPLOADS and r["not_sent"] == 0
    assert r["lost"] == 0 and r["unreceipted_rows"] == 0
    assert r["quota_errors"] == 0 and r["quota_exceeded"] == 0 and r["teams_with_wrong_count"] == 0
    assert r["refused_early"] == 0 and not r["other_answers"] and r["audit_ok"]
    # Every answer is a receipt, a quota refusal or a late refusal; at most PER_DAY receipts a team.
    assert r["accepted"] + r["refused_quota"] + r["late"] == TEAMS * UPLOADS
    assert 0 < r["accepted"] <= TEAMS * PER_DAY
    assert deadline_rush.correct(r)
    assert r["p99_ms"] >= r["p50_ms"] > 0 and r["server_cpu_ms_per_request"] > 0


def test_rows_are_counted_against_receipts(rushed):
    """The end-of-run check finds a lost receipt, a row nobody was given and a wrong count."""
    _, course = rushed
    rows = course_rows(course)
    receipts = {sid: (team, sha) for sid, team, sha, _, _ in rows}
    counts = {}
    for _, team, _, _, _ in rows:
        counts[team] = counts.get(team, 0) + 1
    clean = check_course(course, receipts, per_day=PER_DAY, max_invalid=0, expected=counts)
    assert (clean["lost"], clean["unreceipted_rows"], clean["quota_exceeded"], clean["teams_with_wrong_count"],
            clean["audit_ok"]) == (0, 0, 0, 0, True)

    sid, (team, sha) = next(iter(receipts.items()))
    forged = dict(receipts)
    forged[10**9] = (team, sha)  # a receipt the database never recorded
    assert check_course(course, forged, per_day=PER_DAY, audit=False)["lost"] == 1
    forged = dict(receipts)
    forged[sid] = (team, "0" * 64)  # a receipt whose file is not the row's
    assert check_course(course, forged, per_day=PER_DAY, audit=False)["lost"] == 1
    forged = dict(receipts)
    del forged[sid]  # a row that no client holds a receipt for
    assert check_course(course, forged, per_day=PER_DAY, audit=False)["unreceipted_rows"] == 1
    assert check_course(course, receipts, per_day=PER_DAY - 1, audit=False)["quota_exceeded"] >= 1
    assert check_course(course, receipts, per_day=PER_DAY, expected={team: counts[team] + 1},
                        audit=False)[
        "teams_with_wrong_count"] == 1


def test_contest_zone_keeps_the_quota_day_whole():
    from datetime import datetime, timedelta, timezone

    for hour in range(24):
        now = datetime(2026, 12, 4, hour, 59, tzinfo=timezone.utc)
        local = now.astimezone(deadline_rush.contest_zone(now))
        assert 8 <= local.hour <= 16 and (local + timedelta(hours=6)).date() == local.date()
