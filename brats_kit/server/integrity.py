"""``server integrity``: :mod:`grader.integrity` over a course's submissions, files read from the store."""
from __future__ import annotations

from grader.integrity import (DEFAULT_THRESHOLD, IntegrityReport, identical_code, integrity_report, load_prediction,
                              near_identical_code)

from .service import CourseService
from .db import kept_predictions
from .tracks import CODE, FILE


def integrity_of_course(service: CourseService, threshold: float = DEFAULT_THRESHOLD) -> IntegrityReport:
    """Identical files and near-identical predictions between the course's teams (no score changes).

    Which copy came first is decided by the full recorded timestamp, then the submission id
    (the order the database recorded them in), never by a team's name. Code submissions are
    compared as code (:func:`~grader.integrity.identical_code`: their stored file is the
    archive), and by the predictions their jobs made on the hidden slices, kept in the store
    (:func:`~grader.integrity.near_identical_code`; a job scored before they were kept has none).
    """
    with service.course.sessions() as s:
        pairs = service.board_entries(s, exact_times=True, track=FILE)
        code = service.board_entries(s, exact_times=True, track=CODE)
        kept = kept_predictions(s)
    ids = {id(entry): sub.id for entry, sub in pairs + code}

    def order(e):
        return (e.submitted_at, ids[id(e)])

    n = service.info["n_slices"]
    report = integrity_report([entry for entry, _ in pairs],
                              lambda e: load_prediction(service.course.store.path(e.sha256), n),
                              threshold=threshold, order=order)
    report.flags += identical_code([entry for entry, _ in code], lambda e: service.course.store.path(e.sha256), order)
    predicted = {id(entry): kept[sub.id] for entry, sub in code if sub.id in kept}
    if predicted:
        n_hidden = len(service.track_truth(CODE))
        report.flags += near_identical_code(
            [entry for entry, _ in code if id(entry) in predicted],
            lambda e: load_prediction(service.course.store.path(predicted[id(e)]), n_hidden),
            threshold=threshold, order=order)
    return report
