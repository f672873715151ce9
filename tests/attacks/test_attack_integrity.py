"""What the audit and the integrity report say must be true (issue 20: 6, 9)."""
from __future__ import annotations

from datetime import datetime, timezone

from brats_kit.server.course import Course
from brats_kit.server.integrity import integrity_of_course
from brats_kit.server.service import CourseService
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
