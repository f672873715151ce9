"""A course ranked by a mask score (issue 22): the upload stores every mask score per case, and the live
board, the API, the gradebook and the export rank by the course's score from what was stored.

Also: a database of schema version 3 upgraded in place (SQLite and PostgreSQL), its older rows
refused by name until ``server rescore --backfill``; a rescore recomputes the mask scores; a
tampered row is caught.
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.board import TITLE, board_page, build_board, export_for_board
from brats_kit.server.course import Course
from brats_kit.server.db import SCHEMA_VERSION, Meta, Submission
from brats_kit.server.gradebook import course_scores
from brats_kit.server.rescore import backfill_mask_scores, rescore_course
from brats_kit.server.service import CourseService
from brats_kit.server.verify import audit_course
from data_spec import KitError, load_truth
from data_spec.errors import BadArgumentError
from data_spec.hdf5 import write_split_h5
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from grader.leaderboard.build import SITE_FILES, build_leaderboard
from grader.metrics import mask_scores_per_slice
from grader.score_types import MASK_SCORES
from test_code_jobs import hidden_competition  # noqa: F401  (a fixture)
from test_server_support import Clock, make_course, record_directly, shifted

API = "/api/v1"
NAMES = tuple(st.name for st in MASK_SCORES)


@pytest.fixture(scope="module")
def truth(competition):
    return load_truth(competition / "private")


@pytest.fixture(scope="module")
def files(tmp_path_factory, truth):
    """exact: the truth; near: a 1-pixel shift; far: a 5-pixel shift; bad: an invalid file."""
    d = tmp_path_factory.mktemp("mask-ranking-subs")
    out = {}
    for name, y in (("exact", truth.y), ("near", shifted(truth.y, 1)), ("far", shifted(truth.y, 5))):
        write_submission(d / f"{name}.npy", y)
        out[name] = d / f"{name}.npy"
    np.save(d / "bad.npy", truth.y * np.uint8(255))
    out["bad"] = d / "bad.npy"
    return out


@pytest.fixture(scope="module")
def scorer(competition):
    """Workers that store every mask score (a course's own store its ranking score's only)."""
    with IsolatedScorer(competition / "private", workers=2, timeout=30, metrics=NAMES) as scorer:
        yield scorer


@pytest.fixture(scope="module")
def legacy_scorer(competition):
    """Workers as the previous kit had them (and a course ranked by dice has): counts only, no mask scores."""
    with IsolatedScorer(competition / "private", workers=1, timeout=30) as scorer:
        yield scorer


def _rows(course):
    with course.sessions() as s:
        return list(s.scalars(select(Submission).order_by(Submission.id)))


def _course(tmp_path, competition, scorer, files, ranking, hand_ins, db=None):
    """A course ranked by ``ranking`` with ``hand_ins`` ((team, file name) pairs, a minute apart) recorded."""
    teams = tuple(sorted({team for team, _ in hand_ins}))
    root, _, _ = make_course(tmp_path, competition, teams=teams, ranking=ranking, db=db)
    course = Course(root)
    clock = Clock()
    service = CourseService(course, clock=clock)
    for team, name in hand_ins:
        record_directly(service, course, team, files[name], scorer)
        clock.advance(minutes=1)
    return course, service


# -- the scoring worker ----------------------------------------------------------------------------
def test_the_worker_returns_every_mask_score_per_case_as_computed_in_process(scorer, truth, files):
    verdict = scorer.score(files["near"])
    assert verdict.ok and set(verdict.mask_scores) == set(NAMES)
    direct = mask_scores_per_slice(truth.mask, shifted(truth.y, 1).astype(bool), list(NAMES))
    for name in NAMES:
        assert np.array_equal(np.asarray(verdict.mask_scores[name]), direct[name]), name
    assert scorer.score(files["bad"]).mask_scores is None  # an invalid file has none


def test_a_scorer_asked_for_no_mask_scores_returns_counts_only_and_an_unknown_name_is_refused(legacy_scorer, files,
                                                                                                competition):
    verdict = legacy_scorer.score(files["near"])
    assert verdict.ok and verdict.mask_scores is None and "mask_scores" not in verdict.record()
    with pytest.raises(BadArgumentError, match="not a mask score: 'dice'"):
        IsolatedScorer(competition / "private", workers=1, metrics=("dice",))


# -- an upload through the API, the API's board ----------------------------------------------------
def test_an_upload_stores_the_mask_scores_and_the_api_ranks_by_the_course_s_score(tmp_path, competition, scorer,
                                                                                   files, truth):
    root, tok, _ = make_course(tmp_path, competition, teams=("alpha", "beta"), ranking="nsd")
    clock = Clock()
    with TestClient(create_app(root, clock=clock)) as c:  # the course's own workers (make_scorer)
        for team, name in (("alpha", "far"), ("beta", "near")):
            r = c.post(f"{API}/submissions", files={"file": ("p.npy", files[name].read_bytes())},
                       headers={"Authorization": f"Bearer {tok[team]}"})
            assert r.status_code == 201, r.text
            assert "mask_scores" not in r.json()  # the receipt shows what it showed before
            clock.advance(minutes=1)
        board = c.get(f"{API}/leaderboard").json()
    with Course(root) as course:
        rows = _rows(course)
    # Only the score the course ranks by: every mask score would cost each upload about 20 times more.
    assert all(set(r.mask_scores) == {"nsd"} and len(r.mask_scores["nsd"]) == len(truth) for r in rows)
    assert board["ranking"] == "nsd" and "NSD" in board["rule"]
    assert [r["team"] for r in board["rows"]] == ["beta", "alpha"]
    public = truth.public
    for r, row in zip(board["rows"], (rows[1], rows[0])):
        assert r["nsd"] == pytest.approx(np.mean(np.asarray(row.mask_scores["nsd"])[public]), abs=0)
    assert board["rows"][0]["nsd"] > board["rows"][1]["nsd"]


# -- the live board ranked by a distance: order and ties ------------------------------------------
def test_a_board_ranked_by_a_distance_puts_the_lowest_first_and_ties_go_to_the_earlier(tmp_path, competition,
                                                                                      scorer, files):
    # The identical "exact" files of zeta (earlier) and alpha tie at distance 0; "far" was handed in first.
    hand_ins = (("beta", "far"), ("zeta", "exact"), ("gamma", "near"), ("alpha", "exact"), ("beta", "bad"))
    course, service = _course(tmp_path, competition, scorer, files, "lesion_hd95", hand_ins)
    try:
        for phase in ("public", "private"):
            if phase == "private":
                service.reveal()
            build_board(course, bootstrap=50)
            site = course.private / "board" / "site"
            table = list(csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8"))))
            site_order = [r["team"] for r in table if r["kind"] == "team"]
            api = service.leaderboard()["rows"]
            assert site_order == [r["team"] for r in api] == ["zeta", "alpha", "gamma", "beta"], phase
            values = [r["lesion_hd95"] for r in api]
            assert values[0] == values[1] == 0.0 and values[1] < values[2] < values[3]
            assert "lower is better" in (site / "index.html").read_text(encoding="utf-8")
    finally:
        course.close()


@pytest.mark.parametrize("ranking", ["nsd", "lesion_dice", "hd95"])
def test_the_export_reproduces_a_board_ranked_by_a_mask_score_byte_for_byte(tmp_path, competition, scorer, files,
                                                                           ranking):
    hand_ins = (("beta", "far"), ("zeta", "near"), ("beta", "bad"), ("alpha", "near"), ("gamma", "exact"))
    course, service = _course(tmp_path, competition, scorer, files, ranking, hand_ins)
    try:
        for phase in ("public", "private"):
            if phase == "private":
                service.reveal()
            done = build_board(course, bootstrap=100)
            export_for_board(course, tmp_path / "subs")
            build_leaderboard(tmp_path / "subs", course.config.truth, tmp_path / "offline", reveal=done["revealed"],
                              bootstrap=100, cache=tmp_path / "cache", title=TITLE, ranking=ranking,
                              **board_page(course))
            live = course.private / "board" / "site"
            for name in SITE_FILES:
                assert (live / name).read_bytes() == (tmp_path / "offline" / name).read_bytes(), (phase, name)
    finally:
        course.close()


def test_the_board_never_rereads_a_file_when_ranked_by_a_mask_score(tmp_path, competition, scorer, files,
                                                                    monkeypatch):
    import grader.leaderboard.scoring
    import grader.metrics
    import grader.scoring
    from brats_kit.server.store import Store

    hand_ins = (("beta", "far"), ("alpha", "near"))
    course, _ = _course(tmp_path, competition, scorer, files, "nsd", hand_ins)

    def again(*args, **kwargs):
        raise AssertionError("the live board read or re-scored a file the server already scored")

    for module, name in ((grader.scoring, "evaluate"), (grader.scoring, "with_mask_scores"),
                         (grader.metrics, "mask_scores_per_slice"), (grader.leaderboard.scoring, "read_once")):
        monkeypatch.setattr(module, name, again)
    monkeypatch.setattr(Store, "path", again)
    try:
        assert build_board(course, bootstrap=20)["summary"].teams_ranked == 2
    finally:
        course.close()


# -- gradebooks -----------------------------------------------------------------------------------
def test_the_gradebook_grades_the_course_s_score_and_refuses_a_distance(tmp_path, competition, scorer, files, truth):
    hand_ins = (("alpha", "far"), ("alpha", "near"), ("beta", "far"))
    course, service = _course(tmp_path, competition, scorer, files, "nsd", hand_ins)
    try:
        service.reveal()
        scores = course_scores(service).teams
        rows = _rows(course)
        private = ~truth.public
        assert scores["alpha"] == np.mean(np.asarray(rows[1].mask_scores["nsd"])[private])  # its best public
        assert scores["beta"] == np.mean(np.asarray(rows[2].mask_scores["nsd"])[private])
    finally:
        course.close()
    config = json.loads((course.root / "private" / "course.json").read_text())
    (course.root / "private" / "course.json").write_text(json.dumps(dict(config, ranking="hd95")))
    with Course(course.root) as reopened:
        with pytest.raises(BadArgumentError, match="cannot grade HD95"):
            course_scores(CourseService(reopened))


# -- upgrade, older rows, backfill ----------------------------------------------------------------
def _as_schema_3(course) -> None:
    """The course's database as the previous kit made it: no mask_scores column, schema version 3."""
    with course.engine.begin() as conn:
        conn.execute(text("ALTER TABLE submission DROP COLUMN mask_scores"))
    with course.sessions() as s, s.begin():
        s.execute(update(Meta).where(Meta.key == "schema_version").values(value="3"))


def test_an_upgraded_database_is_refused_by_name_until_the_backfill(tmp_path, competition, scorer, legacy_scorer,
                                                                   files, db):
    hand_ins = (("beta", "far"), ("alpha", "near"), ("beta", "bad"))
    course, _ = _course(tmp_path, competition, legacy_scorer, files, "dice", hand_ins, db=db)
    root = course.root
    uploaded = {1: {"nsd": scorer.score(files["far"]).record()["mask_scores"]["nsd"]},
                2: {"nsd": scorer.score(files["near"]).record()["mask_scores"]["nsd"]}, 3: None}
    _as_schema_3(course)
    course.close()
    with Course(root) as course:  # upgraded in place: the column is back, empty
        with course.sessions() as s:
            assert s.get(Meta, "schema_version").value == str(SCHEMA_VERSION) == "5"
        rows = _rows(course)
        assert [r.mask_scores for r in rows] == [None, None, None]
        before = [(r.public, r.private, r.counts, r.superseded) for r in rows]
        checked = audit_course(course)
        assert checked["ok"], checked["problems"]
        assert not any("--backfill" in n for n in checked["notes"])  # a course ranked by dice does not need them
        build_board(course, bootstrap=20)
    config = json.loads((root / "private" / "course.json").read_text())
    (root / "private" / "course.json").write_text(json.dumps(dict(config, ranking="nsd")))
    with Course(root) as course:
        assert any("--backfill" in n and n.startswith("2 scored") for n in audit_course(course)["notes"])
        with pytest.raises(KitError, match="2 scored submission") as err:
            build_board(course, bootstrap=20)
        assert err.value.code == "missing_scores" and "--backfill" in err.value.hint
        with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
            refused = c.get(f"{API}/leaderboard")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "missing_scores"
        assert "beta" not in refused.text and "alpha" not in refused.text
        done = backfill_mask_scores(course)  # the course's own workers
        assert done == {"backfilled": 2, "files": 2, "code_lacking": 0}
        rows = _rows(course)
        assert {r.id: r.mask_scores for r in rows} == uploaded  # as an upload stores them now
        assert [(r.public, r.private, r.counts, r.superseded) for r in rows] == before  # receipts unchanged
        checked = audit_course(course, rescore_files=True, scorer=scorer)
        assert checked["ok"], checked["problems"]
        assert not any("--backfill" in n for n in checked["notes"])
        assert build_board(course, bootstrap=20)["summary"].teams_ranked == 2
        assert backfill_mask_scores(course)["backfilled"] == 0  # nothing left: nothing written


def test_the_backfill_refuses_a_row_that_no_longer_scores_as_recorded(tmp_path, competition, scorer, files):
    course, _ = _course(tmp_path, competition, scorer, files, "lesion_dice", (("alpha", "near"),))
    try:
        with course.sessions() as s, s.begin():
            s.execute(update(Submission).values(mask_scores=None, counts={"tp": [0] * 6, "fp": [0] * 6,
                                                                           "fn": [0] * 6}))
        with pytest.raises(KitError) as err:
            backfill_mask_scores(course, scorer=scorer)
        assert err.value.code == "grade_changed"
        assert _rows(course)[0].mask_scores is None
    finally:
        course.close()


def test_the_command_backfills_and_wants_one_of_its_two_modes(tmp_path, competition, legacy_scorer, files):
    course, _ = _course(tmp_path, competition, legacy_scorer, files, "lesion_hd95", (("alpha", "near"),))
    root = course.root
    with course.sessions() as s, s.begin():
        s.execute(update(Submission).values(mask_scores=None))
    course.close()
    both = CliRunner().invoke(main, ["server", "rescore", str(root), "--backfill", "--truth", str(root)])
    neither = CliRunner().invoke(main, ["server", "rescore", str(root)])
    assert both.exit_code == neither.exit_code == 2
    done = CliRunner().invoke(main, ["server", "rescore", str(root), "--backfill", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["backfilled"] == 1
    with Course(root) as course:
        assert set(_rows(course)[0].mask_scores) == {"lesion_hd95"}


# -- hostile edits, rescore -----------------------------------------------------------------------
def test_edited_or_short_mask_scores_are_caught(tmp_path, competition, scorer, files):
    course, _ = _course(tmp_path, competition, scorer, files, "nsd", (("alpha", "near"), ("beta", "far")))
    try:
        row = _rows(course)[1]
        better = {**row.mask_scores, "nsd": [1.0] * len(row.mask_scores["nsd"])}
        with course.sessions() as s, s.begin():
            s.execute(update(Submission).where(Submission.id == row.id).values(mask_scores=better))
        problems = audit_course(course)["problems"]
        assert any(f"submission {row.id}" in p and "edited in the database" in p for p in problems)
        with course.sessions() as s, s.begin():
            s.execute(update(Submission).where(Submission.id == row.id)
                      .values(mask_scores={**row.mask_scores, "nsd": [1.0]}))
        with pytest.raises(KitError) as err:
            build_board(course, bootstrap=0)
        assert err.value.code == "missing_scores"
    finally:
        course.close()


def test_a_rescore_recomputes_the_mask_scores_against_the_new_truth(tmp_path, competition, scorer, files, truth):
    # The fix: the truth becomes the 5-pixel shift, so "far" is now exact on every case.
    fix = tmp_path / "fix.h5"
    write_split_h5(fix, y=shifted(truth.y, 5), case_id=truth.case_id, public=truth.public, split="test")
    course, service = _course(tmp_path, competition, scorer, files, "nsd", (("alpha", "exact"), ("beta", "far")))
    try:
        before = {r.id: r.mask_scores for r in _rows(course)}
        assert before[2]["nsd"] != [1.0] * len(truth)
        assert [r["team"] for r in service.leaderboard()["rows"]] == ["alpha", "beta"]
        plan = rescore_course(course, fix)
        assert plan["applied"] and plan["ranks_changed"] >= 2
        assert any(r["kind"] == "score" and r["name"] == "nsd" for r in plan["rows"])
        assert {r["name"] for r in plan["rows"] if r["kind"] == "rank"} == {"nsd"}
        rows = {r.id: r for r in _rows(course)}
        assert rows[2].mask_scores == {"nsd": [1.0] * len(truth)}  # the course's workers: its ranking score
        assert rows[1].mask_scores["nsd"] != before[1]["nsd"]
        assert [r["team"] for r in CourseService(course).leaderboard()["rows"]] == ["beta", "alpha"]
        assert audit_course(course)["ok"]
    finally:
        course.close()


# -- the code track --------------------------------------------------------------------------------
def test_a_code_job_stores_the_course_s_mask_score_and_the_code_board_ranks_by_the_course_s_score(tmp_path,
                                                                                          hidden_competition):
    from brats_kit.server.run import ServerThread
    from brats_kit.server.client import submit_code
    from data_spec.truth import load_hidden_truth
    from grader.code import sandbox_problem
    from test_code_jobs import THRESHOLD, code_course, folder, wait_for

    if sandbox_problem():
        pytest.skip(sandbox_problem())
    root, tokens, _ = code_course(tmp_path, hidden_competition, teams=("alpha",), ranking="lesion_dice")
    with ServerThread(root, board_interval_s=0) as server:
        receipt = submit_code(folder(tmp_path, THRESHOLD), server.url, tokens["alpha"])
        job = wait_for(server, tokens["alpha"], receipt["id"])
        board = server.app.state.service.leaderboard("code")
    assert job["status"] == "scored"
    hidden = load_hidden_truth(hidden_competition)
    with Course(root) as course:
        (row,) = _rows(course)
        assert set(row.mask_scores) == {"lesion_dice"} and len(row.mask_scores["lesion_dice"]) == len(hidden)
        assert build_board(course, bootstrap=20)["code"]["summary"].teams_ranked == 1
    (ranked,) = board["rows"]
    assert board["ranking"] == "lesion_dice"
    assert ranked["lesion_dice"] == np.mean(np.asarray(row.mask_scores["lesion_dice"])[hidden.public])
