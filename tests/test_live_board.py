"""The live public board: the leaderboard engine's site, rebuilt by the server from its own data.

A submission accepted by the server shows on ``/leaderboard`` once the throttled
rebuild ran (its page, its CSV, its policy headers); nothing private before the
reveal (two courses whose private truth differs give byte-identical boards); the
private board after it; bursts coalesce; the thread and its files are gone once
the server stopped.
"""
from __future__ import annotations

import csv
import io
import os
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from brats_kit.server.board import NICENESS, LiveBoard, build_board, export_for_board
from brats_kit.server.course import Course, check_permissions
from brats_kit.server.service import CourseService
from conftest import make_slices
from data_spec import case_ids, load_truth, public_mask, write_competition
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from test_server_support import Clock, make_course, record_directly, shifted

API = "/api/v1"


@pytest.fixture(scope="module")
def twin(tmp_path_factory, competition):
    """The same competition with other private test masks (the public ones and every input unchanged)."""
    out = tmp_path_factory.mktemp("twin-competition")
    xtr, ytr = make_slices(12, seed=1)
    xte, yte = make_slices(6, seed=2)
    public = public_mask(6, 0)
    other = yte.copy()
    other[~public] = np.roll(yte[~public], 9, axis=2)
    other[~public, 20:40, 20:40] = 1
    write_competition(
        out,
        train={"x": xtr, "y": ytr, "case_id": case_ids("train", 12)},
        test={"x": xte, "y": other, "case_id": case_ids("test", 6), "public": public},
        attrs={"generator": "tests.conftest", "seed": 0},
        manifest={"generator": "tests.conftest"},
    )
    assert (load_truth(out / "private").y != load_truth(competition / "private").y).any()
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory, competition):
    truth = load_truth(competition / "private")
    d = tmp_path_factory.mktemp("board-subs")
    write_submission(d / "good.npy", shifted(truth.y, 2))
    write_submission(d / "worse.npy", shifted(truth.y, 6))
    np.save(d / "bad255.npy", truth.y * np.uint8(255))
    return {"good": d / "good.npy", "worse": d / "worse.npy", "bad": d / "bad255.npy"}


def hand_in(c, token, path):
    r = c.post(f"{API}/submissions", headers={"Authorization": f"Bearer {token}"},
               files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    return r.json()


def open_fds_under(root) -> list:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root.resolve())):
            out.append(target)
    return out


def test_an_accepted_submission_shows_on_the_engines_page_after_the_rebuild(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta", "<b>gamma"))
    clock = Clock()
    app = create_app(root, clock=clock, scorer=scorer, board_interval_s=0.05)
    with TestClient(app) as c:
        sha = hand_in(c, tok["alpha"], files["good"])["sha256"]
        clock.advance(minutes=1)
        hand_in(c, tok["<b>gamma"], files["worse"])
        c.post(f"{API}/submissions", headers={"Authorization": f"Bearer {tok['beta']}"},
               files={"file": ("bad255.npy", files["bad"].read_bytes())})
        hand_in(c, tok["<b>gamma"], files["good"])  # alpha's file again: only the dashboard may say so
        assert app.state.board.wait_current(timeout=120), app.state.board.last_error
        page = c.get("/leaderboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        text = page.text
        assert 'id="board"' in text and 'data-phase="public"' in text and "Submission history" in text
        assert "alpha" in text and "&lt;b&gt;gamma" in text and "<b>gamma" not in text
        # Issue 21: the public board counts a team's invalid files; their names and errors are the team's own.
        problems = text.split('id="problems"')[1].split("</table>")[0]
        assert '<td class="team">beta</td><td class="num">1</td><td class="num">0</td>' in problems
        assert "bad_values" not in text and "bad255" not in text
        # Every roster team is on the board: beta, with no valid submission, at its bottom.
        board_rows = text.split('id="board"')[1].split("</tbody>")[0].split("<tr ")
        assert board_rows[-1].startswith('class="absent"') and '<td class="team">beta</td>' in board_rows[-1]
        assert "no submission" in board_rows[-1]
        # It leads back to sign-in and the team page.
        assert '<a href="/">Sign in</a>' in text and '<a href="/team">Your team page</a>' in text
        assert "@example.org" not in text and "Student" not in text  # display names only
        assert sha[:8] not in text and "duplicate" not in text
        # The engine's own policy, plus what only a header can say; nothing more is allowed.
        csp = page.headers["content-security-policy"]
        assert "script-src 'sha256-" in csp and "img-src data:" in csp and "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp and "connect-src" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        csv = c.get("/leaderboard/leaderboard.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        rows = csv.text.splitlines()
        assert rows[0].startswith("rank,") and "public_dice" in rows[0] and "private" not in csv.text
        assert rows[1].split(",")[3] == "alpha"  # best first
        assert c.get("/leaderboard/../private/course.json").status_code == 404
        assert c.get("/leaderboard/.brats-kit-leaderboard").status_code == 404
        assert c.post("/leaderboard/leaderboard.csv").status_code == 405
        # The JSON board stays as it was.
        assert c.get(f"{API}/leaderboard").json()["rows"][0]["team"] == "alpha"
        # After the reveal: the private board.
        assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        assert app.state.board.wait_current(timeout=120)
        final = c.get("/leaderboard").text
        assert 'data-phase="private"' in final and "Dice (private)" in final
    board = app.state.board
    assert not any(t.name == "brats-kit-live-board" for t in threading.enumerate())
    assert board.rebuilds >= 2 and not open_fds_under(root)


def test_nothing_private_before_the_reveal_two_truths_give_identical_boards(tmp_path, competition, twin, files):
    pages = []
    for comp in (competition, twin):
        root, tok, admin = make_course(tmp_path, comp, teams=("alpha", "beta"))
        clock = Clock()
        with IsolatedScorer(comp / "private", workers=1, timeout=30) as scorer:
            app = create_app(root, clock=clock, scorer=scorer, board_interval_s=0.05)
            with TestClient(app) as c:
                hand_in(c, tok["alpha"], files["good"])
                clock.advance(minutes=5)
                hand_in(c, tok["beta"], files["worse"])
                clock.advance(minutes=5)
                hand_in(c, tok["beta"], files["good"])
                assert app.state.board.wait_current(timeout=120)
                pages.append({name: c.get(f"/leaderboard/{name}").content
                              for name in ("index.html", "leaderboard.csv", "grades.csv", "leaderboard.md")})
                assert pages[-1]["index.html"] == c.get("/leaderboard").content
                # The test can fail: once revealed, the two boards differ.
                assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
                assert app.state.board.wait_current(timeout=120)
                pages[-1]["revealed"] = c.get("/leaderboard/leaderboard.csv").content
    assert {k: v for k, v in pages[0].items() if k != "revealed"} == {k: v for k, v in pages[1].items()
                                                                       if k != "revealed"}
    assert pages[0]["revealed"] != pages[1]["revealed"]


def test_a_burst_is_one_rebuild_and_the_throttle_holds_the_next(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        for team, name in (("alpha", "good"), ("beta", "worse"), ("alpha", "worse")):
            record_directly(service, course, team, files[name], scorer)
        board = LiveBoard(course, interval_s=0.05, poll_s=0.05, bootstrap=50).start()
        try:
            assert board.wait_current(timeout=120)
            assert board.rebuilds == 1  # three submissions before the build: one rebuild
            # Built in a child process below the server's priority: off its interpreter lock and its cores.
            assert board.builder["pid"] != os.getpid()
            assert board.builder["niceness"] >= min(19, os.nice(0) + NICENESS)
        finally:
            board.close()
        assert not board._thread.is_alive()
        assert b"beta" in board.read("leaderboard.csv") and board.read("course.json") is None
        # At most one rebuild per interval: an hour-long one holds the next (the first one too).
        record_directly(service, course, "beta", files["good"], scorer)
        slow = LiveBoard(course, interval_s=3600, poll_s=0.05, bootstrap=50).start()
        try:
            assert not slow.wait_current(timeout=1.0) and slow.rebuilds == 0
        finally:
            slow.close()
        assert not slow._thread.is_alive()


def test_the_export_links_the_stored_files_and_keeps_them_owner_only(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        record_directly(service, course, "alpha", files["good"], scorer)
        out = course.private / "board" / "submissions"
        (course.private / "board").mkdir(mode=0o700)
        done = export_for_board(course, out)
        assert done["submissions"] == 1 and not done["revealed"]
        (exported,) = (out / "alpha").iterdir()
        stored = next(p for p in course.store.root.rglob("*") if p.is_file() and p.stat().st_nlink == 2)
        assert exported.stat().st_ino == stored.stat().st_ino
        assert oct(exported.stat().st_mode & 0o777) == "0o600"
        built = build_board(course, bootstrap=0)
        assert built["summary"].teams_ranked == 1
        assert check_permissions(root, fix=False) == []  # the site under private/ is owner-only


def test_course_baselines_are_reference_rows_and_the_dashboards_default_scale(tmp_path, competition, scorer, files):
    import html
    import re

    from brats_kit.server.baselines import attach_baselines, check_baselines
    from data_spec.errors import KitError

    truth = load_truth(competition / "private")
    refs = tmp_path / "refs"
    (refs / "flair-threshold").mkdir(parents=True)
    write_submission(refs / "flair-threshold" / "pred.npy", shifted(truth.y, 12))
    write_submission(refs / "unet.npy", shifted(truth.y, 1))
    bad = tmp_path / "bad-refs"
    bad.mkdir()
    np.save(bad / "broken.npy", truth.y * np.uint8(255))
    with pytest.raises(KitError) as early:  # before a course exists (what `server init --baselines` needs)
        check_baselines(competition, bad)
    assert early.value.code == "invalid_baseline"
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    with Course(root) as course:
        with pytest.raises(KitError) as refused:
            attach_baselines(course, bad)
        assert refused.value.code == "invalid_baseline" and not (course.private / "baselines").exists()
        done = attach_baselines(course, refs)
        assert sorted(done["baselines"]) == ["flair-threshold", "unet"]
        assert done["baselines"]["unet"] > done["baselines"]["flair-threshold"]
        assert check_baselines(competition, refs) == done["baselines"]
        assert check_permissions(root, fix=False) == []
        attach_baselines(course, refs)  # its own folder: replaced
    app = create_app(root, clock=Clock(), scorer=scorer, board_interval_s=0.05)
    with TestClient(app) as c:
        hand_in(c, tok["alpha"], files["good"])
        assert app.state.board.wait_current(timeout=120), app.state.board.last_error
        page = c.get("/leaderboard").text
        assert page.count('<tr class="baseline"') == 2 and "flair-threshold (baseline)" in page
        assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        csrf = html.unescape(re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1))
        c.post("/signin", data={"csrf": csrf, "token": admin, "role": "instructor"})
        book = c.get("/admin/grades.csv", params={"format": "csv"})  # the default scale: between the baselines
        assert book.status_code == 200, book.text
        readme = c.get("/admin/grades-readme.txt", params={"format": "csv"}).text
        assert "flair-threshold" in readme and "unet" in readme


def test_a_rebuild_stopped_by_the_shutdown_leaves_the_last_site_whole(tmp_path, competition, scorer, files):
    from brats_kit.server.board import _Stopped

    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        record_directly(service, course, "alpha", files["good"], scorer)
        build_board(course, bootstrap=0)
        site = course.private / "board" / "site"
        before = {p.name: p.read_bytes() for p in site.iterdir()}
        record_directly(service, course, "beta", files["worse"], scorer)
        with pytest.raises(_Stopped):
            build_board(course, bootstrap=0, should_stop=lambda: True)
        assert {p.name: p.read_bytes() for p in site.iterdir()} == before
        assert sorted(p.name for p in site.parent.iterdir()) == ["site"]  # no temporary, no export, no cache left


@pytest.mark.parametrize("interval, building", [(3600.0, True), (0, False)])
def test_before_the_first_build_or_without_a_live_board_the_plain_table(tmp_path, competition, scorer, files,
                                                                        interval, building):
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    app = create_app(root, clock=Clock(), scorer=scorer, board_interval_s=interval)
    with TestClient(app) as c:
        hand_in(c, tok["alpha"], files["good"])
        page = c.get("/leaderboard")
        assert page.status_code == 200 and 'id="board"' in page.text and "alpha" in page.text
        assert ("being built" in page.text) is building and "data-phase" not in page.text
        assert "'nonce-" in page.headers["content-security-policy"]  # the pages' own policy
        assert c.get("/leaderboard/leaderboard.csv").status_code == 404
        assert (app.state.board is None) is (not building)
    assert not (root / "private" / "board").exists()  # nothing built, nothing written


def _recorded_course(tmp_path, competition, scorer, files):
    """A course where "zeta" and "alpha" hand in byte-identical files (zeta first), beta a worse and an invalid one."""
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta", "zeta"))
    course = Course(root)
    clock = Clock()
    service = CourseService(course, clock=clock)
    for team, name in (("zeta", "good"), ("beta", "worse"), ("beta", "bad"), ("alpha", "good")):
        record_directly(service, course, team, files[name], scorer)
        clock.advance(minutes=5)
    return course, service


def test_the_live_board_ranks_the_recorded_counts_and_never_validates_again(tmp_path, competition, scorer, files,
                                                                            monkeypatch):
    import grader.leaderboard.scoring
    import grader.scoring
    import grader.validate
    from brats_kit.server.store import Store

    course, service = _recorded_course(tmp_path, competition, scorer, files)

    def validated_again(*args, **kwargs):
        raise AssertionError("the live board validated, read or re-scored a file the server already scored")

    for module, name in ((grader.scoring, "evaluate"), (grader.scoring, "evaluate_bytes"),
                         (grader.validate, "validate_submission"), (grader.leaderboard.scoring, "score_file"),
                         (grader.leaderboard.scoring, "read_once")):
        monkeypatch.setattr(module, name, validated_again)
    monkeypatch.setattr(Store, "path", validated_again)
    try:
        done = build_board(course, bootstrap=50)
        assert done["summary"].teams_ranked == 3 and done["summary"].invalid == 1
        site = course.private / "board" / "site"
        # The invalid file is counted; its error is the team's own (its page).
        assert 'id="problems"' in (site / "index.html").read_text()
        assert "bad_values" not in (site / "index.html").read_text()
        assert not (course.private / "board" / "submissions").exists()
    finally:
        course.close()


def test_the_export_reproduces_the_live_board_byte_for_byte_and_exact_ties_go_to_the_earlier(
        tmp_path, competition, scorer, files):
    from grader.leaderboard.build import SITE_FILES, build_leaderboard

    from brats_kit.server.board import TITLE, board_page

    course, service = _recorded_course(tmp_path, competition, scorer, files)
    try:
        for phase in ("public", "private"):
            if phase == "private":
                service.reveal()
            done = build_board(course, bootstrap=200)
            assert done["revealed"] is (phase == "private")
            export_for_board(course, tmp_path / "subs")
            build_leaderboard(tmp_path / "subs", course.config.truth, tmp_path / "offline", reveal=done["revealed"],
                              bootstrap=200, cache=tmp_path / "cache", title=TITLE, **board_page(course))
            live = course.private / "board" / "site"
            for name in SITE_FILES:
                assert (live / name).read_bytes() == (tmp_path / "offline" / name).read_bytes(), (phase, name)
            # Byte-identical files: the earlier one (zeta's) ranks first, on the site and in the API alike.
            csv_rows = csv.DictReader(io.StringIO((live / "leaderboard.csv").read_text(encoding="utf-8")))
            site_ranks = [(r["rank"], r["team"]) for r in csv_rows if r["kind"] == "team"]
            api = service.leaderboard()["rows"]
            assert [(r["rank"], r["team"]) for r in api] == [(1, "zeta"), (2, "alpha"), (3, "beta")]
            assert site_ranks == [("1", "zeta"), ("2", "alpha"), ("3", "beta")]
            assert api[0]["dice"] == api[1]["dice"]
            if phase == "private":
                assert [(r["public_rank"], r["move"]) for r in api[:2]] == [(1, 0), (2, 0)]
    finally:
        course.close()


def test_counts_that_do_not_fit_the_truth_stop_the_rebuild_with_a_named_error(tmp_path, competition, scorer, files):
    from sqlalchemy import update

    from brats_kit.server.db import Submission
    from data_spec.errors import KitError

    course, service = _recorded_course(tmp_path, competition, scorer, files)
    try:
        build_board(course, bootstrap=0)
        before = (course.private / "board" / "site" / "index.html").read_bytes()
        with course.sessions() as s, s.begin():  # a tampered row: one case short
            s.execute(update(Submission).where(Submission.id == 1).values(counts={"tp": [1], "fp": [0], "fn": [0]}))
        with pytest.raises(KitError) as info:
            build_board(course, bootstrap=0)
        assert info.value.code == "stale_counts" and "submission 1" in str(info.value)
        assert (course.private / "board" / "site" / "index.html").read_bytes() == before
    finally:
        course.close()
