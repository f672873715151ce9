"""What the audit and the integrity report say must be true (issue 20: 6, 9)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.server.course import Course
from brats_kit.server.db import Submission
from brats_kit.server.integrity import integrity_of_course
from brats_kit.server.service import CourseService
from brats_kit.server.verify import audit_course
from attack_support import files  # noqa: F401 - a fixture
from test_server_support import Clock, make_course, record_directly


def test_the_earlier_of_two_identical_files_32_ms_apart_is_named_first(tmp_path, competition, scorer, files, db):
    # "zeta" hands in first; "alpha" copies it 32 ms later, in the same second (a name sorts it first).
    root, _, _ = make_course(tmp_path, competition, teams=("alpha", "zeta"), db=db)
    clock = Clock(datetime(2026, 11, 2, 9, 0, 0, 100_000, tzinfo=timezone.utc))
    with Course(root) as course:
        service = CourseService(course, clock=clock)
        record_directly(service, course, "zeta", files["good"], scorer)
        clock.advance(milliseconds=32)
        record_directly(service, course, "alpha", files["good"], scorer)
        flag = integrity_of_course(service).flags[0]
    assert flag.kind == "identical_file"
    assert (flag.team_a, flag.team_b) == ("zeta", "alpha")
    assert (flag.submitted_at_a, flag.submitted_at_b) == ("2026-11-02T09:00:00.100Z", "2026-11-02T09:00:00.132Z")


def test_identical_timestamps_are_ordered_by_submission_id(tmp_path, competition, scorer, files):
    root, _, _ = make_course(tmp_path, competition, teams=("alpha", "zeta"))
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        record_directly(service, course, "zeta", files["good"], scorer)
        record_directly(service, course, "alpha", files["good"], scorer)  # same clock: only the id tells
        flag = integrity_of_course(service).flags[0]
    assert (flag.team_a, flag.team_b) == ("zeta", "alpha")


def _course_with_uploads(tmp_path, competition, scorer, files, db):
    root, _, _ = make_course(tmp_path, competition, db=db)
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        first = record_directly(service, course, "alpha", files["good"], scorer)
        second = record_directly(service, course, "beta", files["other"], scorer)
    return root, first, second


def test_an_edited_score_fails_the_audit_naming_its_row(tmp_path, competition, scorer, files, db):
    root, first, second = _course_with_uploads(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        assert audit_course(course)["ok"]
        with course.sessions() as s, s.begin():
            sub = s.get(Submission, second["id"])
            sub.public = dict(sub.public, dice=0.999)
            sub.private = dict(sub.private, dice=0.999)
        report = audit_course(course)
    assert not report["ok"]
    assert len(report["problems"]) == 1 and f"submission {second['id']} (beta)" in report["problems"][0]
    r = CliRunner().invoke(main, ["server", "audit", str(root)])
    assert r.exit_code == 1 and f"submission {second['id']} (beta)" in r.output


def test_audit_rescore_lists_every_score_that_differs_from_the_files(tmp_path, competition, scorer, files, db):
    root, first, second = _course_with_uploads(tmp_path, competition, scorer, files, db)
    with Course(root) as course:
        with course.sessions() as s, s.begin():
            sub = s.get(Submission, first["id"])
            true_dice = sub.private["dice"]
            sub.private = dict(sub.private, dice=0.999)
        report = audit_course(course, rescore_files=True, scorer=scorer)
    assert report["rescored"] == 2
    rescored = [p for p in report["problems"] if "re-scored" in p]
    assert rescored == [f"submission {first['id']} (alpha): private.dice is 0.999 in the database but "
                        f"{true_dice!r} when re-scored"]
    r = CliRunner().invoke(main, ["server", "audit", str(root), "--rescore", "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["rescored"] == 2


def test_other_graded_columns_are_covered_too(tmp_path, competition, scorer, files):
    root, first, _ = _course_with_uploads(tmp_path, competition, scorer, files, None)
    for column, value in (("counts", None), ("errors", [{"code": "x"}]), ("format", "dat")):
        with Course(root) as course:
            with course.sessions() as s, s.begin():
                sub = s.get(Submission, first["id"])
                saved = getattr(sub, column)
                setattr(sub, column, value)
            assert not audit_course(course)["ok"], column
            with course.sessions() as s, s.begin():
                setattr(s.get(Submission, first["id"]), column, saved)
            assert audit_course(course)["ok"], column


def test_events_of_courses_made_before_the_grade_digest_still_audit_ok(tmp_path, competition, scorer, files,
                                                                        monkeypatch):
    from brats_kit.server import audit

    monkeypatch.setattr(audit, "submission_payload", lambda i, sha, size, columns: {
        "id": i, "sha256": sha, "bytes": size, "status": columns["status"]})  # the version 1 payload
    root, _, _ = _course_with_uploads(tmp_path, competition, scorer, files, None)
    with Course(root) as course:
        assert audit_course(course)["ok"]
