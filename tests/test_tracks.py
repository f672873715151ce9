"""One board per track (issue 23): file submissions ranked on the test truth, code jobs on the hidden truth.

The hidden set here has 4 slices and the test set 5: before the tracks were split, a scored
code job stopped the live board's rebuild (``stale_counts``) and the API ranked both kinds of
row on the test truth's public/private split.
"""
from __future__ import annotations

import contextlib
import csv
import html
import json
import re
import zipfile
from pathlib import Path
import io

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.board import CODE_TITLE, build_board, export_for_board, site_of
from brats_kit.server.client import submit, submit_code
from brats_kit.server.course import Course
from brats_kit.server.db import Team, set_meta
from brats_kit.server.gradebook import course_gradebook
from brats_kit.server.refusal import Principal, Refusal
from brats_kit.server.run import ServerThread
from brats_kit.server.service import CourseService
from data_spec.errors import BadArgumentError
from data_spec.layout import open_hidden
from data_spec.manifest import MANIFEST_CSV
from data_spec.submission import write_submission
from data_spec.truth import load_hidden_truth, load_truth
from grader.code import grade_code
from test_code_jobs import PROBLEM, THRESHOLD, code_course, folder, hidden_competition, wait_for  # noqa: F401
from test_server_support import make_course

pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")
API = "/api/v1"


@pytest.fixture(scope="module")
def two_tracks(tmp_path_factory, hidden_competition):  # noqa: F811 - the fixture imported above
    """A code course: alpha hands in a file, beta a code job and a file, gamma and delta copies of beta's code."""
    tmp = tmp_path_factory.mktemp("tracks")
    root, tokens, admin = code_course(tmp, hidden_competition, finals=1, teams=("alpha", "beta", "gamma", "delta"))
    truth = load_truth(hidden_competition / "private")
    pred = tmp / "pred.npy"
    write_submission(pred, np.ascontiguousarray(np.roll(truth.y, 2, axis=2)))
    code = folder(tmp, THRESHOLD)
    with ServerThread(root, board_interval_s=0) as server:
        assert submit(pred, server.url, tokens["alpha"]).status == "scored"
        job = wait_for(server, tokens["beta"], submit_code(code, server.url, tokens["beta"])["id"])
        assert job["status"] == "scored"
        assert submit(pred, server.url, tokens["beta"]).status == "scored"
        # gamma hands in beta's archive as it is; delta the same submission.py beside a file of its own.
        copy = folder(tmp, THRESHOLD, name="delta")
        (copy / "notes.txt").write_text("our own work\n")
        for team, source in (("gamma", code), ("delta", copy)):
            assert wait_for(server, tokens[team], submit_code(source, server.url, tokens[team])["id"])["status"] == \
                "scored"
    return root, tokens, admin, code


def hidden_verdict(competition, code):
    hidden = open_hidden(competition)
    return grade_code(code, np.asarray(hidden.x), load_hidden_truth(competition))[1]


def test_a_scored_code_job_keeps_the_file_board_updating_and_ranks_on_the_hidden_truth(two_tracks,
                                                                                     hidden_competition):  # noqa: F811
    root, _, _, code = two_tracks
    verdict = hidden_verdict(hidden_competition, code)
    assert len(load_hidden_truth(hidden_competition)) != len(load_truth(hidden_competition / "private"))
    with Course(root) as course:
        done = build_board(course, bootstrap=0)  # stale_counts before the split
        assert done["submissions"] == 2 and done["code"]["submissions"] == 3
        file_page = (site_of(course) / "index.html").read_text(encoding="utf-8")
        code_csv = (site_of(course, "code") / "leaderboard.csv").read_text(encoding="utf-8")
        code_page = (site_of(course, "code") / "index.html").read_text(encoding="utf-8")
        service = CourseService(course)
        file_board, code_board = service.leaderboard(), service.leaderboard("code")
    assert sorted(r["team"] for r in file_board["rows"]) == ["alpha", "beta"]
    assert code_board["rows"][0]["submission"] not in {r["submission"] for r in file_board["rows"]}
    row = code_board["rows"][0]
    assert row["team"] == "beta" and code_board["track"] == "code"  # the copies came later: ties go to the earlier
    assert row["dice"] == pytest.approx(verdict.counts.scores("public")["dice"])
    code_teams = [r["team"] for r in csv.DictReader(io.StringIO(code_csv)) if r["kind"] == "team"]
    assert code_teams[0] == "beta" and sorted(code_teams) == ["beta", "delta", "gamma"]
    assert CODE_TITLE in code_page and 'href="/leaderboard"' in code_page
    assert 'href="/leaderboard/code/"' in file_page


def test_the_api_takes_the_track_and_refuses_another(two_tracks, hidden_competition):  # noqa: F811
    root, _, _, code = two_tracks
    verdict = hidden_verdict(hidden_competition, code)
    with TestClient(create_app(root, board_interval_s=0)) as c:
        default, files, codes = (c.get(f"{API}/leaderboard{q}") for q in ("", "?track=file", "?track=code"))
        bad = c.get(f"{API}/leaderboard?track=both")
        page = c.get("/leaderboard/code", follow_redirects=True)
    assert default.json() == files.json() and files.json()["track"] == "file"
    assert sorted(r["team"] for r in files.json()["rows"]) == ["alpha", "beta"]
    assert {r["team"] for r in codes.json()["rows"]} == {"beta", "gamma", "delta"}
    assert codes.json()["rows"][0]["dice"] == pytest.approx(verdict.counts.scores("public")["dice"])
    assert bad.status_code == 422
    assert page.status_code == 200 and "beta" in page.text and "alpha" not in page.text


def test_a_course_without_the_code_track_has_no_code_board(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    with TestClient(create_app(root, board_interval_s=0)) as c:
        assert c.get("/leaderboard/code/").status_code == 404
        assert c.get("/leaderboard/code/leaderboard.csv").status_code == 404
    with Course(root) as course:
        assert "code" not in build_board(course, bootstrap=0)
        with pytest.raises(BadArgumentError):
            course_gradebook(CourseService(course), track="code")


def test_the_export_of_the_file_board_holds_no_code_archive(two_tracks, tmp_path):
    root = two_tracks[0]
    with Course(root) as course:
        export_for_board(course, tmp_path / "subs")
    rows = (tmp_path / "subs" / MANIFEST_CSV).read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == 2 and not any(".zip" in r or ".bin" in r for r in rows)


def test_finals_are_chosen_per_track(two_tracks):
    root = two_tracks[0]
    with Course(root) as course:
        service = CourseService(course)
        with course.sessions() as s:
            team_id = s.scalar(select(Team.id).where(Team.name == "beta"))
        beta = Principal(team="beta", team_id=team_id)
        code_id = service.leaderboard("code")["rows"][0]["submission"]
        file_id = next(r["submission"] for r in service.leaderboard()["rows"] if r["team"] == "beta")
        # The finals limit is 1 per track: one file and one code job is within it (refused before the tracks).
        assert service.choose_finals(beta, [code_id, file_id])["finals"] == sorted([code_id, file_id])
        with pytest.raises(Refusal) as info:
            service.choose_finals(beta, [code_id, file_id, 1])
        assert info.value.code == "too_many_finals"
        service.choose_finals(beta, [])


@contextlib.contextmanager
def revealed(root):
    """The module's course revealed for one test, then closed again for the others."""
    with Course(root) as course:
        CourseService(course).reveal(before_deadline=True)
        try:
            yield course
        finally:
            with course.sessions() as s, s.begin():
                set_meta(s, "revealed", "no")


def test_the_gradebook_per_track_after_the_reveal(two_tracks, hidden_competition, tmp_path):  # noqa: F811
    root, _, admin, code = two_tracks
    verdict = hidden_verdict(hidden_competition, code)
    with revealed(root) as course:
        file_book = course_gradebook(CourseService(course), track="file")
        code_book = course_gradebook(CourseService(course), track="code")
        r = CliRunner().invoke(main, ["server", "grades", str(root), "--track", "code", "--out",
                                      str(tmp_path / "grades.csv"), "--json"])
        with TestClient(create_app(root, board_interval_s=0)) as c:
            from test_pages import sign_in

            sign_in(c, admin, role="admin")
            page_readme = c.get("/admin/grades-readme.txt?track=code").text
            page_default = c.get("/admin/grades-readme.txt").text
    assert r.exit_code == 0, r.output
    readme = Path(json.loads(r.output)["readme"]).read_text(encoding="utf-8")
    assert "track: code" in readme and "track: code" in page_readme and "track: file" in page_default
    assert file_book.notes[-1].startswith("track: file") and code_book.notes[-1].startswith("track: code")
    code_scores = {r.student.team: r.score for r in code_book.rows if r.score is not None}
    file_scores = {r.student.team: r.score for r in file_book.rows if r.score is not None}
    assert set(code_scores) == {"beta", "gamma", "delta"} and set(file_scores) == {"alpha", "beta"}
    assert code_scores["beta"] == pytest.approx(verdict.counts.scores("private")["dice"])


def test_the_team_page_shows_the_standing_per_track_after_the_reveal(two_tracks):
    from test_pages import sign_in

    root, tokens, _, _ = two_tracks
    with revealed(root), TestClient(create_app(root, board_interval_s=0)) as c:
        pages = {}
        for team in ("alpha", "beta"):
            assert sign_in(c, tokens[team]).status_code == 303
            pages[team] = " ".join(re.sub(r"<[^>]+>", "", html.unescape(c.get("/team").text)).split())
            c.cookies.clear()
    assert "Code track: rank 1 of 4 teams" in pages["beta"]
    assert "Code track: your team has no scored code submission" in pages["alpha"]
    assert all("Final standing: rank" in page for page in pages.values())


def test_integrity_flags_identical_archives_and_identical_submission_py(two_tracks):
    from brats_kit.server.integrity import integrity_of_course

    with Course(two_tracks[0]) as course:
        report = integrity_of_course(CourseService(course))
    code = sorted((f.kind, f.team_a, f.team_b) for f in report.flags if f.kind.startswith("identical_")
                  and f.kind != "identical_file")
    assert code == [("identical_archive", "beta", "gamma"), ("identical_submission_py", "beta", "delta")]
    assert report.to_dict()["identical_code"] == 2
    # The predictions the jobs made on the hidden slices (kept in the store): delta's wrapper predicts what beta's
    # and gamma's archive does; beta and gamma, one archive, are already flagged above.
    near = sorted((f.team_a, f.team_b, f.dice) for f in report.flags if f.kind == "near_identical_code")
    assert near == [("beta", "delta", 1.0), ("gamma", "delta", 1.0)] and report.to_dict()["near_identical_code"] == 2
    # alpha's and beta's files are the same bytes: the file track's own section, unchanged.
    assert [(f.kind, f.team_a, f.team_b) for f in report.flags if f.kind == "identical_file"] == [
        ("identical_file", "alpha", "beta")]


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.getvalue()


def test_the_team_page_hands_in_code_through_the_apis_use_case(tmp_path, hidden_competition):  # noqa: F811
    from test_pages import csrf_of, sign_in

    root, tokens, _ = code_course(tmp_path, hidden_competition)
    good = _zip({"submission.py": THRESHOLD})
    with TestClient(create_app(root, board_interval_s=0)) as c:
        assert sign_in(c, tokens["alpha"]).status_code == 303
        page = c.get("/team")
        assert 'action="/team/code"' in page.text
        csrf = csrf_of(page)
        # Attacks: no token, the token after the file, a hostile archive: nothing queued.
        assert c.post("/team/code", files={"file": ("a.zip", good)}).status_code == 403
        after = c.post("/team/code", files=[("file", ("a.zip", good, "application/zip")),
                                            ("csrf", (None, csrf))])
        assert after.status_code == 403
        evil = c.post("/team/code", data={"csrf": csrf}, files={"file": ("e.zip", _zip({"../submission.py": "x"}))},
                      follow_redirects=False)
        assert evil.status_code == 303 and evil.headers["location"] == "/team", evil.text[-600:]
        refused = c.get("/team").text
        assert "bad_package" in refused
        assert c.get(f"{API}/code", headers={"Authorization": f"Bearer {tokens['alpha']}"}).json()["jobs"] == []
        # The form: post, redirect, get; the job is the API's.
        r = c.post("/team/code", data={"csrf": csrf}, files={"file": ("a.zip", good)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/team"
        shown = c.get("/team").text
        (job,) = c.get(f"{API}/code", headers={"Authorization": f"Bearer {tokens['alpha']}"}).json()["jobs"]
        assert f"Code job {job['id']} received: queued." in shown
        assert f"Code job {job['id']} received" not in c.get("/team").text  # shown once (the flash is taken)


def test_a_course_without_the_code_track_has_no_code_form(tmp_path, competition):
    from test_pages import csrf_of, sign_in

    root, tokens, _ = make_course(tmp_path, competition)
    with TestClient(create_app(root, board_interval_s=0)) as c:
        sign_in(c, tokens["alpha"])
        page = c.get("/team")
        assert 'action="/team/code"' not in page.text
        r = c.post("/team/code", data={"csrf": csrf_of(page)}, files={"file": ("a.zip", _zip({"submission.py": "x"}))})
        assert r.status_code == 404


def test_the_file_board_of_a_code_course_is_reproduced_offline_and_export_takes_the_track(two_tracks, tmp_path):
    from grader.leaderboard.build import SITE_FILES, build_leaderboard

    from brats_kit.server.board import TITLE, board_page

    root = two_tracks[0]
    with Course(root) as course:
        build_board(course, bootstrap=200)
        export_for_board(course, tmp_path / "subs")
        build_leaderboard(tmp_path / "subs", course.config.truth, tmp_path / "offline", bootstrap=200,
                          cache=tmp_path / "cache", title=TITLE, **board_page(course))
        for name in SITE_FILES:
            assert (site_of(course) / name).read_bytes() == (tmp_path / "offline" / name).read_bytes(), name
    runner = CliRunner()
    for track, n in (("file", 2), ("code", 3)):
        r = runner.invoke(main, ["server", "export", str(root), "--out", str(tmp_path / track), "--track", track,
                                 "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["submissions"] == n
    assert runner.invoke(main, ["server", "export", str(root), "--out", str(tmp_path / "x"), "--track",
                                "both"]).exit_code == 2


SIMPLE = """
import numpy as np

def predict(x):
    return (x[..., 0] > 0.5).astype(np.uint8)
"""


@pytest.fixture(scope="module")
def code_board(tmp_path_factory, hidden_competition):  # noqa: F811 - the fixture imported above
    """A code course: alpha and gamma scored (different models), beta's job crashed (an invalid row)."""
    from test_code_jobs import CRASH

    tmp = tmp_path_factory.mktemp("code-board")
    root, tokens, _ = code_course(tmp, hidden_competition)
    with ServerThread(root, board_interval_s=0) as server:
        for team, body in (("alpha", THRESHOLD), ("beta", CRASH), ("gamma", SIMPLE)):
            job = wait_for(server, tokens[team], submit_code(folder(tmp, body, name=team), server.url,
                                                             tokens[team])["id"])
            assert job["status"] == ("failed" if team == "beta" else "scored"), job
    return root


def test_the_code_board_is_rebuilt_offline_from_the_export_and_the_hidden_truth(code_board, hidden_competition,
                                                                               tmp_path):  # noqa: F811
    from grader.leaderboard.build import SITE_FILES, build_leaderboard

    from brats_kit.server.board import board_page, build_code_board
    from brats_kit.server.db import CodeJob

    hidden = hidden_competition / "private" / "hidden_test.h5"
    with Course(code_board) as course:
        build_code_board(course, hidden, bootstrap=200)
        with course.sessions() as s:
            kept = {j.submission_id: j.prediction_sha256 for j in s.scalars(select(CodeJob))}
        # Each scored job's prediction is in the store; the crashed job kept none.
        assert sum(v is not None for v in kept.values()) == 2 and len(kept) == 3
        for sha in filter(None, kept.values()):
            assert course.store.path(sha).is_file()
        # The board's own export (hard links, the board's names): the offline engine writes the live code board.
        export_for_board(course, tmp_path / "subs", track="code")
        build_leaderboard(tmp_path / "subs", hidden, tmp_path / "offline", bootstrap=200,
                          cache=tmp_path / "cache", title=CODE_TITLE, **board_page(course, "code"))
        for name in SITE_FILES:
            assert (site_of(course, "code") / name).read_bytes() == (tmp_path / "offline" / name).read_bytes(), name
        live = (site_of(course, "code") / "leaderboard.csv").read_text(encoding="utf-8")
    # `server export --track code` + `brats-kit leaderboard --truth hidden_test.h5`: the same teams and scores.
    runner = CliRunner()
    r = runner.invoke(main, ["server", "export", str(code_board), "--out", str(tmp_path / "exported"),
                             "--track", "code", "--json"])
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "exported" / MANIFEST_CSV).read_text(encoding="utf-8").splitlines()[1:]
    assert sum(".npy" in row for row in rows) == 2 and len(rows) == 3  # two predictions, beta's archive
    r = runner.invoke(main, ["leaderboard", str(tmp_path / "exported"), "--truth", str(hidden), "--out",
                             str(tmp_path / "site2"), "--bootstrap", "0", "--json"])
    assert r.exit_code == 0, r.output

    def ranked(text):
        return [(row["team"], row["public_dice"]) for row in csv.DictReader(io.StringIO(text)) if row["kind"] == "team"]

    offline = (tmp_path / "site2" / "leaderboard.csv").read_text(encoding="utf-8")
    assert ranked(offline) == ranked(live) and len(ranked(live)) == 2, (offline, live)


def _kept(course):
    from brats_kit.server.db import CodeJob

    with course.sessions() as s:
        return [(j.id, j.prediction_sha256) for j in s.scalars(select(CodeJob).order_by(CodeJob.id))
                if j.prediction_sha256]


def test_kept_predictions_are_audited_backed_up_and_never_quarantined(code_board, tmp_path):
    import shutil

    from sqlalchemy import update

    from brats_kit.server.backup import backup_course
    from brats_kit.server.db import CodeJob
    from brats_kit.server.service import startup_checks
    from brats_kit.server.verify import audit_course

    copy = tmp_path / "course"
    shutil.copytree(code_board, copy)  # the module's course stays as it is
    with Course(copy) as course:
        kept = _kept(course)
        assert len(kept) == 2
        report = audit_course(course)
        assert report["ok"], report["problems"]
        assert not any("not referenced" in n for n in report["notes"]), report["notes"]
        assert startup_checks(course) == [] and all(course.store.path(sha).is_file() for _, sha in kept)
        backup = backup_course(course, tmp_path / "backup")
        for _, sha in kept:
            assert (tmp_path / "backup" / "store" / sha[:2] / sha).read_bytes() == course.store.path(sha).read_bytes()
        assert backup["files"] >= 5  # 3 archives + 2 predictions
        (job_a, sha_a), (job_b, sha_b) = kept
        # A prediction edited in the store, another gone, a row pointed elsewhere: each named.
        course.store.path(sha_a).write_bytes(b"edited")
        with course.sessions() as s, s.begin():
            s.execute(update(CodeJob).where(CodeJob.id == job_b).values(prediction_sha256="0" * 64))
        problems = audit_course(course)["problems"]
        assert any(f"code job {job_a}" in p and "does not match its sha256" in p for p in problems), problems
        assert any(f"code job {job_b}" in p and "differs from its audit entry" in p for p in problems), problems
        assert any(f"code job {job_b}" in p and "missing from the store" in p for p in problems), problems


def test_a_version_3_database_gets_the_prediction_column(code_board, tmp_path):
    import shutil

    from sqlalchemy import text, update

    from brats_kit.server.db import SCHEMA_VERSION, Meta
    from brats_kit.server.verify import audit_course

    copy = tmp_path / "course"
    shutil.copytree(code_board, copy)
    with Course(copy) as course:
        kept = _kept(course)
        with course.engine.begin() as conn:  # a course made before predictions were kept
            conn.execute(text("ALTER TABLE code_job DROP COLUMN prediction_sha256"))
        with course.sessions() as s, s.begin():
            s.execute(update(Meta).where(Meta.key == "schema_version").values(value="3"))
    with Course(copy) as course:
        with course.sessions() as s:
            assert s.get(Meta, "schema_version").value == str(SCHEMA_VERSION) == "5"
        assert _kept(course) == []  # upgraded in place, empty: the old jobs kept nothing
        # Their predictions are still in the store: moved aside (never deleted) at the next start.
        from brats_kit.server.service import startup_checks

        moved = startup_checks(course)
        assert sorted(p.name for p in moved) == sorted(sha for _, sha in kept)
        # The audit log recorded each prediction: the audit names the rows that no longer refer to theirs.
        assert audit_course(course)["problems"] == [f"code job {job} ({team}): its kept prediction differs from its "
                                                    f"audit entry" for (job, _), team in zip(kept, ("alpha", "gamma"))]
