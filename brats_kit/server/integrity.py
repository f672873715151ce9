"""``server integrity``: :mod:`grader.integrity` over a course's submissions, files read from the store."""
from __future__ import annotations

from grader.integrity import DEFAULT_THRESHOLD, IntegrityReport, integrity_report, load_prediction

from .jobs import FORMAT as CODE_FORMAT
from .service import CourseService


def integrity_of_course(service: CourseService, threshold: float = DEFAULT_THRESHOLD) -> IntegrityReport:
    """Identical files and near-identical predictions between the course's teams (no score changes).

    Which copy came first is decided by the full recorded timestamp, then the submission id
    (the order the database recorded them in), never by a team's name.
    """
    with service.course.sessions() as s:
        # A code job's stored file is its archive, and its prediction is of the hidden slices: not compared here.
        pairs = [(entry, sub) for entry, sub in service.board_entries(s, exact_times=True)
                 if sub.format != CODE_FORMAT]
    ids = {id(entry): sub.id for entry, sub in pairs}
    n = service.info["n_slices"]
    return integrity_report([entry for entry, _ in pairs],
                            lambda e: load_prediction(service.course.store.path(e.sha256), n),
                            threshold=threshold, order=lambda e: (e.submitted_at, ids[id(e)]))
