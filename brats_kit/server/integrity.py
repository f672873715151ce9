"""``server integrity``: :mod:`grader.integrity` over a course's submissions, files read from the store."""
from __future__ import annotations

from grader.integrity import DEFAULT_THRESHOLD, IntegrityReport, integrity_report, load_prediction

from .jobs import FORMAT as CODE_FORMAT
from .service import CourseService


def integrity_of_course(service: CourseService, threshold: float = DEFAULT_THRESHOLD) -> IntegrityReport:
    """Identical files and near-identical predictions between the course's teams (no score changes)."""
    with service.course.sessions() as s:
        # A code job's stored file is its archive, and its prediction is of the hidden slices: not compared here.
        entries = [entry for entry, row in service.board_entries(s) if row.format != CODE_FORMAT]
    n = service.info["n_slices"]
    return integrity_report(entries, lambda e: load_prediction(service.course.store.path(e.sha256), n),
                            threshold=threshold)
