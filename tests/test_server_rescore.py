"""``server rescore`` after a truth fix: versioned scores, superseded receipts, the audit, SQLite and PostgreSQL."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.db import AuditEvent, Meta, Submission
from brats_kit.server.grading import truth_version
from brats_kit.server.rescore import TRUTHS, rescore_course
from brats_kit.server.service import CourseService
from brats_kit.server.verify import audit_course
from data_spec import KitError, load_truth
from data_spec.hdf5 import write_split_h5
from data_spec.submission import write_submission
from grader.leaderboard.ranking import rank_teams
from grader.scoring import evaluate
from test_server_support import Clock, make_course, record_directly, shifted

API = "/api/v1"


@pytest.fixture(scope="module")
def old(competition):
    return load_truth(competition / "private")


@pytest.fixture(scope="module")
def fixed(old):
    """The truth with ONE public slice moved by a pixel: the slice with the most foreground."""
    i = int(np.argmax(np.where(old.public, (old.y > 0).sum(axis=(1, 2)), -1)))
    y = old.y.copy()
    y[i] = np.roll(old.y[i], 1, axis=1)
    assert (y[i] != old.y[i]).any()
    return y, i


@pytest.fixture(scope="module")
def fix_file(tmp_path_factory, old, fixed):
    """The fixed truth as the instructor hands it in: an HDF5 truth whose flags say every case is public
    (a careless export): the rescore must keep the course's own split."""
    path = tmp_path_factory.mktemp("fix") / "test_truth.h5"
    write_split_h5(path, y=fixed[0], case_id=old.case_id, public=np.ones(len(old), bool), split="test")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, old, fixed):
    """alpha hands in the old truth, beta a 3-pixel shift, gamma the fixed truth itself."""
    d = tmp_path_factory.mktemp("rescore-subs")
    out = {}
    for name, y in (("alpha", old.y), ("beta", shifted(old.y, 3)), ("gamma", fixed[0])):
        write_submission(d / f"{name}.npy", y)
        out[name] = d / f"{name}.npy"
    return out


def _course(tmp_path, competition, scorer, files, db):
    root, tokens, admin = make_course(tmp_path, competition, db=db)
    clock = Clock()
    with Course(root) as course:
        service = CourseService(course, clock=clock)
        for team in ("alpha", "beta", "gamma"):
            record_directly(service, course, team, files[team], scorer)
            clock.advance(minutes=1)
    return root, tokens


def _rows(course):
    with course.sessions() as s:
        return {r.id: {c.name: getattr(r, c.name) for c in Submission.__table__.columns}
                for r in s.scalars(select(Submission).order_by(Submission.id))}


def _events(course):
    with course.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent))


def test_a_one_slice_fix_changes_the_expected_scores_and_ranks(tmp_path, competition, scorer, files, fix_file,
                                                              old, fixed, db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        before = _rows(course)
        assert {r["truth_sha256"] for r in before.values()} == {old.sha256}
        plan = rescore_course(course, fix_file)
        after = _rows(course)
        assert course.config.truth == plan["truth"]
    # The expected scores: each file counted by the grader against the fixed masks with the course's flags.
    expected_truth = old.__class__(fixed[0], old.case_id, old.public, old.public_source, None, None)
    for sub_id, team in ((1, "alpha"), (2, "beta"), (3, "gamma")):
        counts = evaluate(files[team], expected_truth).counts
        for phase in ("public", "private"):
            assert after[sub_id][phase]["dice"] == pytest.approx(counts.scores(phase)["dice"], abs=1e-12)
        assert after[sub_id]["truth_sha256"] == plan["new_truth"] != old.sha256
    assert after[1]["public"]["dice"] < 1.0 == before[1]["public"]["dice"]
    assert after[3]["public"]["dice"] == 1.0 > before[3]["public"]["dice"]
    assert after[2]["private"] == before[2]["private"]  # the fixed slice is public
    # Ranks: gamma and alpha swap on the public board; the private board does not move.
    ranks = {(r["phase"], r["team"]): (r["old"], r["new"]) for r in plan["rows"] if r["kind"] == "rank"}
    assert ranks == {("public", "alpha"): (1, 2), ("public", "gamma"): (2, 1)}
    assert plan["ranks_changed"] == 2 and plan["submissions_changed"] == 3
    # The report: CSV and summary under private/, the same rows.
    report = (root / "private" / "rescore" / plan["new_truth"])
    assert (report / "diff.csv").read_text().count("\nrank,") == 2
    assert "2 rank(s) change" in (report / "summary.txt").read_text()
    # The new truth keeps the course's own split (the file handed in said "all public"), both truths are kept.
    current = load_truth(plan["truth"])
    assert np.array_equal(current.public, old.public) and current.has_flags
    assert np.array_equal(current.y, fixed[0]) and current.sha256 == plan["new_truth"]
    kept = {p.name.split(".")[0] for p in (root / "private" / TRUTHS).iterdir()}
    assert kept == {old.sha256, plan["new_truth"]}
    # The server's board ranks by the new scores.
    with Course(root) as course:
        board = CourseService(course, clock=Clock()).leaderboard()
    assert [r["team"] for r in board["rows"]] == ["gamma", "alpha", "beta"]


def test_a_flagless_course_truth_keeps_its_split(tmp_path, competition, scorer, old, fixed):
    """A course's ``test_data_y.dat`` has no flags: its split comes from its sha256, which the fix changes.
    The fixed truth handed in the same way must keep the split the class was scored on."""
    from data_spec.course import write_course_array

    flagless = tmp_path / "flagless"
    write_course_array(flagless / "private" / "test_data_y.dat", old.y, "y")
    before = load_truth(flagless)
    fix = tmp_path / "fix" / "test_data_y.dat"
    write_course_array(fix, fixed[0], "y")
    assert not load_truth(fix).has_flags and not np.array_equal(load_truth(fix).public, before.public)
    root, _, _ = make_course(tmp_path, flagless)
    with Course(root) as course:
        plan = rescore_course(course, fix)
        assert course.config.truth == plan["truth"]
    current = load_truth(plan["truth"])
    assert current.has_flags and np.array_equal(current.public, before.public)
    assert (root / "private" / TRUTHS / f"{before.sha256}.dat").read_bytes() == old.y.tobytes()


def test_a_truth_of_another_shape_or_other_cases_is_refused(tmp_path, competition, scorer, files, old, db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    short = tmp_path / "short.h5"
    write_split_h5(short, y=old.y[:-1], case_id=old.case_id[:-1], public=old.public[:-1], split="test")
    renamed = tmp_path / "renamed.h5"
    ids = np.array([str(c) for c in old.case_id], dtype=object)
    ids[2] = "someone-else"
    write_split_h5(renamed, y=old.y, case_id=ids, public=old.public, split="test")
    with Course(root) as course:
        rows, config = _rows(course), (root / "private" / "course.json").read_bytes()
        with pytest.raises(KitError, match="slices") as err:
            rescore_course(course, short)
        assert err.value.code == "truth_mismatch"
        with pytest.raises(KitError, match="case ids") as err:
            rescore_course(course, renamed)
        assert err.value.code == "truth_mismatch" and "slice 2" in str(err.value.where)
        with pytest.raises(KitError) as err:
            rescore_course(course, competition / "private")
        assert err.value.code == "same_truth"
        assert _rows(course) == rows
    assert (root / "private" / "course.json").read_bytes() == config


def test_nothing_changes_when_the_prompt_is_declined(tmp_path, competition, scorer, files, fix_file, db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    seen = []
    with Course(root) as course:
        rows, events = _rows(course), _events(course)
        config = (root / "private" / "course.json").read_bytes()
        plan = rescore_course(course, fix_file, confirm=lambda p: seen.append(p) or False)
        assert not plan["applied"] and seen[0]["ranks_changed"] == 2 and seen[0]["scores_changed"] > 0
        assert _rows(course) == rows and _events(course) == events
    assert (root / "private" / "course.json").read_bytes() == config
    assert not any((root / "private" / TRUTHS).iterdir())  # the staged truth is gone
    assert not (root / "private" / "rescore").exists()


def test_the_audit_passes_after_the_rescore_and_finds_an_edited_superseded_grade(tmp_path, competition, scorer,
                                                                                 files, fix_file, db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        events = _events(course)
        plan = rescore_course(course, fix_file)
        assert _events(course) == events + plan["submissions_changed"] + 1  # one per changed row, one for the truth
        result = audit_course(course, rescore_files=True)  # the chain, the rows, and a fresh scoring vs the new truth
        assert result["ok"], result["problems"]
        with course.sessions() as s, s.begin():
            kinds = [e.kind for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
            assert kinds[-1] == "truth_replaced" and kinds.count("submission_rescored") == 3
            # An instructor "improving" what a team was first told: found.
            row = s.get(Submission, 1)
            s.execute(update(Submission).where(Submission.id == 1)
                      .values(superseded=dict(row.superseded, public={"dice": 0.99})))
        problems = audit_course(course)["problems"]
        assert any("submission 1" in p and "edited" in p for p in problems)


def test_a_receipt_shows_the_current_scores_and_the_superseded_ones(tmp_path, competition, scorer, files,
                                                                   fix_file, old, db):
    root, tokens = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        first = _rows(course)[3]
        plan = rescore_course(course, fix_file)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        r = c.get(f"{API}/submissions/3", headers={"Authorization": f"Bearer {tokens['gamma']}"})
        assert r.status_code == 200, r.text
        rec = r.json()
        untouched = c.get(f"{API}/submissions", headers={"Authorization": f"Bearer {tokens['alpha']}"}).json()
    assert rec["public"]["dice"] == 1.0
    assert rec["superseded"]["public"] == first["public"] and rec["superseded"]["status"] == "scored"
    assert rec["superseded"]["truth_version"] == truth_version(old.sha256)
    assert "private" not in rec["superseded"]  # before the reveal, as the current scores
    # Neither truth's sha256 is shown: a flagless truth's split is derived from it.
    assert old.sha256 not in r.text and plan["new_truth"] not in r.text
    assert all("superseded" in s for s in untouched["submissions"])  # alpha's score changed too


def test_a_server_started_before_the_rescore_refuses_uploads_until_restarted(tmp_path, competition, scorer,
                                                                             files, fix_file, db):
    from brats_kit.server.grading import make_scorer
    from brats_kit.server.refusal import Refusal

    root, _ = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as running:
        service = CourseService(running, clock=Clock())
        with Course(root) as course:
            plan = rescore_course(course, fix_file)
        rows = _rows(running)
        with pytest.raises(Refusal) as refused:  # its workers hold the old truth
            record_directly(service, running, "beta", files["gamma"], scorer)
        assert refused.value.code == "truth_replaced" and _rows(running) == rows
    with Course(root) as restarted, make_scorer(restarted.config) as fresh:
        receipt = record_directly(CourseService(restarted, clock=Clock()), restarted, "beta", files["gamma"], fresh)
        assert receipt["public"]["dice"] == 1.0
        assert _rows(restarted)[receipt["id"]]["truth_sha256"] == plan["new_truth"]
        assert audit_course(restarted)["ok"]


def test_an_upload_recorded_during_the_rescore_stops_it_unchanged(tmp_path, competition, scorer, files, fix_file,
                                                                  db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        config = (root / "private" / "course.json").read_bytes()

        def upload_meanwhile(plan):  # the server was not stopped: beta hands in while the instructor reads
            record_directly(CourseService(course, clock=Clock()), course, "beta", files["alpha"], scorer)
            return True

        with pytest.raises(KitError, match="arrived during the rescore") as err:
            rescore_course(course, fix_file, confirm=upload_meanwhile)
        assert err.value.code == "course_changed"
        rows = _rows(course)
        assert len(rows) == 4 and {r["superseded"] for r in rows.values()} == {None}
        assert audit_course(course)["ok"]
    assert (root / "private" / "course.json").read_bytes() == config
    assert not (root / "private" / "rescore").exists() or not any((root / "private" / "rescore").rglob("*.csv"))


def test_a_file_that_times_out_in_the_rescore_stops_it_unchanged(tmp_path, competition, scorer, files, fix_file,
                                                                 monkeypatch):
    import brats_kit.server.rescore as rescore_module
    from grader.isolation import IsolatedScorer

    root, _ = _course(tmp_path, competition, scorer, files, None)

    def slow_workers(config):  # every file overruns its limit (a loaded machine)
        return IsolatedScorer(config.truth, workers=1, timeout=0.5, task=_sleeping)

    monkeypatch.setattr(rescore_module, "make_scorer", slow_workers)
    with Course(root) as course:
        rows = _rows(course)
        with pytest.raises(KitError, match="could not be re-scored") as err:
            rescore_course(course, fix_file)
        assert err.value.code == "rescore_incomplete" and _rows(course) == rows
    assert not any((root / "private" / TRUTHS).iterdir())


def _sleeping(path, truth, max_bytes):
    import time

    time.sleep(30)


def test_the_team_page_shows_both_scores(tmp_path, competition, scorer, files, fix_file):
    import html

    from test_pages import sign_in

    root, tokens = _course(tmp_path, competition, scorer, files, None)
    with Course(root) as course:
        first = _rows(course)[3]
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tokens["gamma"])
        assert 'id="superseded"' not in c.get("/team").text
    with Course(root) as course:
        rescore_course(course, fix_file)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tokens["gamma"])
        page = html.unescape(c.get("/team").text)
    row = page[page.index('id="sub-3"'):]
    row = row[:row.index("</tr>")]
    assert "1.0000" in row and f"<del class=\"superseded\" title=\"before the truth fix\">{first['public']['dice']:.4f}</del>" in row
    assert 'id="superseded"' in page


def test_an_upgraded_database_versions_its_old_scores(tmp_path, competition, scorer, files, old, db):
    root, _ = _course(tmp_path, competition, scorer, files, db)
    with Course(root) as course:  # a database of schema version 2: no truth_sha256, no superseded
        with course.engine.begin() as conn:
            conn.execute(text("ALTER TABLE submission DROP COLUMN truth_sha256"))
            conn.execute(text("ALTER TABLE submission DROP COLUMN superseded"))
        with course.sessions() as s, s.begin():
            s.execute(update(Meta).where(Meta.key == "schema_version").values(value="2"))
    with Course(root) as course:
        rows = _rows(course)
        assert {r["truth_sha256"] for r in rows.values()} == {old.sha256}
        assert {r["superseded"] for r in rows.values()} == {None}
        assert audit_course(course)["ok"]


def test_the_command_asks_and_json_prints_the_diff(tmp_path, competition, scorer, files, fix_file):
    from click.testing import CliRunner

    from brats_kit.cli import main

    root, _ = _course(tmp_path, competition, scorer, files, None)
    args = ["server", "rescore", str(root), "--truth", str(fix_file)]
    declined = CliRunner().invoke(main, args, input="n\n")
    assert declined.exit_code == 0, declined.output
    assert "2 rank(s) change: replace the course's truth?" in declined.output and "nothing changed" in declined.output
    done = CliRunner().invoke(main, args + ["--json", "--out", str(tmp_path / "report")])
    assert done.exit_code == 0, done.output
    plan = json.loads(done.output)
    assert plan["applied"] and plan["ranks_changed"] == 2 and (tmp_path / "report" / "diff.csv").is_file()
    assert (root / "private" / "board" / "site" / "index.html").is_file()  # the live board rebuilt
    again = CliRunner().invoke(main, args + ["--yes"])
    assert again.exit_code == 1 and "nothing to fix" in again.output
