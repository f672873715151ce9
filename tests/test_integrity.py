"""Integrity: identical files and near-identical predictions across teams, on a small simulated class."""
from __future__ import annotations

import csv
import io
import os
import shutil

import numpy as np
import pytest

from cohorts.classroom import make_class
from data_spec import KitError, write_course_array
from grader.integrity import (
    DEFAULT_THRESHOLD,
    IDENTICAL,
    NEAR,
    integrity_report,
    load_prediction,
    pooled_dice_matrix,
    report_csv,
)
from grader.leaderboard.build import collect_and_score
from grader.leaderboard.collect import load_board_truth


def integrity_of_folder(submissions, truth, *, threshold=DEFAULT_THRESHOLD, cache):
    """The offline path: the leaderboard's first step, then the report on the files it scored."""
    truth = load_board_truth(truth)
    subs = collect_and_score(submissions, truth, cache=cache).subs
    for s in subs:
        if s.valid:
            s.scores["public"] = s.counts.scores("public")
    return integrity_report(subs, lambda s: load_prediction(s.path, len(truth)), threshold=threshold)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    c = make_class(root / "class", n_teams=6, per_team=(1, 1), n_cases=9, seed=5, invalid_every=0,
                   manifest_every=0, n_baselines=0)
    subs = c["submissions"]
    # team-001 hands in team-000's first file, a day later.
    src = subs / "team-000" / "sub-0.dat"
    copy = subs / "team-001" / "copied.dat"
    shutil.copyfile(src, copy)
    t = os.stat(src).st_mtime + 86400
    os.utime(copy, (t, t))
    # team-003 hands in only team-002's prediction with a handful of pixels changed (another sha256).
    for own in (subs / "team-003").iterdir():
        own.unlink()
    y = load_prediction(subs / "team-002" / "sub-0.dat", 9)
    near = y.copy()
    near[0, 0, :10] ^= 1
    path = write_course_array(subs / "team-003" / "tweaked.dat", near, "y")
    t = os.stat(subs / "team-002" / "sub-0.dat").st_mtime + 3600
    os.utime(path, (t, t))
    report = integrity_of_folder(subs, c["truth"], cache=root / "cache")
    return c, report


def test_a_copied_file_is_flagged_with_both_times(planted):
    _, report = planted
    identical = [f for f in report.flags if f.kind == IDENTICAL]
    assert [(f.team_a, f.submission_a, f.team_b, f.submission_b) for f in identical] == [
        ("team-000", "sub-0.dat", "team-001", "copied.dat")]
    f = identical[0]
    assert f.submitted_at_a < f.submitted_at_b and f.sha256_a == f.sha256_b


def test_a_near_copy_is_flagged_and_independent_teams_are_not(planted):
    _, report = planted
    near = {(f.team_a, f.team_b): f for f in report.flags if f.kind == NEAR}
    assert ("team-002", "team-003") in near
    assert 0.98 <= near[("team-002", "team-003")].dice < 1
    # The exact copy is already an identical-file flag, not counted twice; no other pair comes near.
    assert set(near) == {("team-002", "team-003")}
    assert report.median_dice is not None and report.median_dice < 0.98
    assert report.pairs == 15 and report.compared == 6


def test_csv_lists_flags_and_changes_no_score(planted):
    _, report = planted
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [r["kind"] for r in rows] == [IDENTICAL, NEAR]
    assert rows[0]["dice"] == "1.0"
    assert set(rows[0]) >= {"team_a", "submitted_at_a", "team_b", "submitted_at_b"}


def test_stricter_threshold_and_bad_threshold(planted):
    c, _ = planted
    cache = c["submissions"].parent / "strict-cache"
    strict = integrity_of_folder(c["submissions"], c["truth"], threshold=1.0, cache=cache)
    assert [f.kind for f in strict.flags] == [IDENTICAL]
    with pytest.raises(KitError):
        integrity_of_folder(c["submissions"], c["truth"], threshold=0, cache=cache)


def test_pooled_dice_matrix():
    a = np.zeros((2, 4, 4), np.uint8)
    b = a.copy()
    b[0, 0, :2] = 1
    c = b.copy()
    c[0, 0, 2:] = 1
    d = pooled_dice_matrix([a, b, c, a])
    assert d[0, 3] == 1.0 and d[0, 1] == 0.0
    assert d[1, 2] == pytest.approx(2 * 2 / (2 + 4))
    assert np.allclose(d, d.T)
