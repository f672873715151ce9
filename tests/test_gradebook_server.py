"""``server grades`` and ``server integrity``: the course's gradebook equals the offline one on its export."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.export import export_submissions
from brats_kit.server.service import CourseService
from data_spec import load_truth
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from grader.leaderboard import build_leaderboard
from grader.leaderboard.gradebook import gradebook_from_site
from test_server_support import Clock, make_course, shifted

API = "/api/v1"


@pytest.fixture(scope="module")
def course(tmp_path_factory, competition):
    tmp = tmp_path_factory.mktemp("gradebook-server")
    truth = load_truth(competition / "private")
    files = {}
    for name, y in (("shift2", shifted(truth.y, 2)), ("shift4", shifted(truth.y, 4)),
                    ("shift9", shifted(truth.y, 9))):
        files[name] = tmp / f"{name}.npy"
        write_submission(files[name], y)
    bases = tmp / "baselines"
    (bases / "flair-threshold").mkdir(parents=True)
    write_submission(bases / "flair-threshold" / "pred.npy", shifted(truth.y, 12))
    (bases / "svm").mkdir()
    write_submission(bases / "svm" / "pred.npy", shifted(truth.y, 1))
    clock = Clock()
    root, tok, admin = make_course(tmp, competition, teams=("alpha", "beta", "gamma", "delta"))
    with IsolatedScorer(competition / "private", workers=1, timeout=30) as scorer, \
            TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        for team, name in (("alpha", "shift2"), ("beta", "shift4"), ("gamma", "shift2"), ("beta", "shift9")):
            r = c.post(f"{API}/submissions", files={"file": ("p.npy", files[name].read_bytes())},
                       headers={"Authorization": f"Bearer {tok[team]}"})
            assert r.status_code == 201
            clock.advance(minutes=5)
        before = CliRunner().invoke(main, ["server", "grades", str(root), "--out", str(tmp / "early.csv"),
                                           "--baselines", str(bases)])
        assert before.exit_code == 1 and "not revealed" in before.output
        assert not (tmp / "early.csv").exists()
        assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    return tmp, root, bases


@pytest.mark.parametrize("fmt", ["csv", "moodle", "canvas"])
def test_server_grades_equal_the_offline_gradebook_of_the_export(course, competition, fmt):
    tmp, root, bases = course
    out = tmp / f"server-{fmt}.csv"
    result = CliRunner().invoke(main, ["server", "grades", str(root), "--format", fmt, "--scale", "linear:20",
                                       "--baselines", str(bases), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Course(root) as c:
        export_submissions(c, tmp / f"export-{fmt}")
    site = tmp / f"site-{fmt}"
    build_leaderboard(tmp / f"export-{fmt}", competition / "private", site, reveal=True, bootstrap=0,
                      baselines=bases, cache=tmp / "cache")
    offline = tmp / f"offline-{fmt}.csv"
    gradebook_from_site(site, root / "private" / "roster.csv", offline, fmt=fmt, scale="linear:20")
    assert out.read_text() == offline.read_text()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        by_team = {r["team"]: r for r in rows}
        assert by_team["delta"]["status"] == "no valid submission" and by_team["delta"]["grade"] == ""
        assert float(by_team["alpha"]["grade"]) == float(by_team["gamma"]["grade"]) > float(by_team["beta"]["grade"])


def test_the_default_gradebook_works_without_baselines_and_a_second_export_refuses(course):
    # Issue 21 item 2: without `server init --baselines` the default scale falls back to a stated one.
    tmp, root, _ = course
    result = CliRunner().invoke(main, ["server", "grades", str(root), "--out", str(tmp / "g.csv")])
    assert result.exit_code == 0, result.output
    readme = (tmp / "g.csv.README.txt").read_text()
    assert "Dice 0 = 0 marks, Dice 1 = 100" in readme and "linear:0..1:100" in readme
    grades = {r["team"]: r["grade"] for r in csv.DictReader(io.StringIO((tmp / "g.csv").read_text()))}
    assert grades["delta"] == "" and float(grades["alpha"]) > 0  # no submission: empty, not 0.0
    # A second export to the same --out (Canvas over Moodle) refuses without --force.
    before = (tmp / "g.csv").read_bytes()
    again = CliRunner().invoke(main, ["server", "grades", str(root), "--out", str(tmp / "g.csv"), "--format", "canvas"])
    assert again.exit_code == 1 and "earlier gradebook" in again.output and (tmp / "g.csv").read_bytes() == before
    forced = CliRunner().invoke(main, ["server", "grades", str(root), "--out", str(tmp / "g.csv"), "--format",
                                       "canvas", "--force", "--zeros", "--scale", "0.5:10,0.9:20"])
    assert forced.exit_code == 0, forced.output
    assert (tmp / "g.csv").read_text().endswith(",0.0\n")  # delta's students (last): 0 marks, as asked


def test_server_integrity_flags_the_shared_file(course):
    tmp, root, _ = course
    out = tmp / "integrity.csv"
    result = CliRunner().invoke(main, ["server", "integrity", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["kind"], r["team_a"], r["team_b"]) for r in rows] == [("identical_file", "alpha", "gamma")]
    assert "median pairwise Dice" in result.output
    (tmp / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(main, ["server", "integrity", str(root), "--out", str(tmp / "notes.txt")])
    assert refused.exit_code == 1 and (tmp / "notes.txt").read_text() == "mine"


def _just_under(truth, target: float = 0.8, below: float = 5e-5):
    """The truth, spoiled on one private slice so that the private mean Dice is in [target - below, target)."""
    y = truth.y.copy()
    private = np.flatnonzero(~truth.public)
    n = len(private)
    k = max(private, key=lambda i: int(truth.y[i].sum()))  # the private slice with the most tumour
    t, free = int(truth.y[k].sum()), np.flatnonzero(truth.y[k].ravel() == 0)
    need_lo, need_hi = (target - below) * n - (n - 1), target * n - (n - 1)  # that slice's Dice
    for fn in range(t):
        # Dice 2(t - fn) / (2(t - fn) + fp + fn): the largest fp that keeps it at least need_lo.
        fp = int(np.floor(2 * (t - fn) / need_lo - 2 * (t - fn) - fn))
        if 0 <= fp <= len(free) and need_lo <= 2 * (t - fn) / (2 * (t - fn) + fp + fn) < need_hi:
            flat = y[k].ravel()
            flat[np.flatnonzero(flat)[:fn]] = 0
            flat[free[:fp]] = 1
            y[k] = flat.reshape(y[k].shape)
            return y
    raise AssertionError("no such prediction on this truth")


def test_a_dice_just_under_a_threshold_earns_the_same_step_on_both_paths(tmp_path, competition, scorer):
    """0.79996 is not 0.8: the server's grades and ``leaderboard --roster`` both read full precision."""
    from brats_kit.server.gradebook import course_grades
    from test_server_support import record_directly

    truth = load_truth(competition / "private")
    y = _just_under(truth)
    subs = tmp_path / "subs"
    (subs / "alpha").mkdir(parents=True)
    write_submission(subs / "alpha" / "p.npy", y)
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha",))
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        record_directly(service, course, "alpha", subs / "alpha" / "p.npy", scorer)
        service.reveal()
        private = service.leaderboard()["rows"][0]["dice"]
        assert 0.8 - 5e-5 <= private < 0.8
        course_grades(service, tmp_path / "server.csv", fmt="csv", scale="0.8:10")
    result = CliRunner().invoke(main, ["leaderboard", str(subs), "--truth", str(competition / "private"),
                                       "--out", str(tmp_path / "site"), "--reveal", "--bootstrap", "0",
                                       "--roster", str(root / "private" / "roster.csv"),
                                       "--grades-out", str(tmp_path / "offline.csv"), "--format", "csv",
                                       "--scale", "0.8:10"])
    assert result.exit_code == 0, result.output
    server, offline = (list(csv.DictReader(io.StringIO((tmp_path / f"{p}.csv").read_text())))
                       for p in ("server", "offline"))
    assert [r["grade"] for r in server] == [r["grade"] for r in offline] and {r["grade"] for r in server} == {"0.0"}
    # The site shows the score rounded (0.8000): re-parsed from its CSV, it would earn the step.
    gradebook_from_site(tmp_path / "site", root / "private" / "roster.csv", tmp_path / "rounded.csv", fmt="csv",
                        scale="0.8:10")
    assert {r["grade"] for r in csv.DictReader(io.StringIO((tmp_path / "rounded.csv").read_text()))} == {"10.0"}
