"""``server integrity``: :mod:`grader.integrity` over a course's submissions, files read from the store."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from grader.integrity import DEFAULT_THRESHOLD, IntegrityReport, integrity_report, load_prediction

from .db import Submission, Team
from .service import CourseService


def integrity_of_course(service: CourseService, threshold: float = DEFAULT_THRESHOLD) -> IntegrityReport:
    """Identical files and near-identical predictions between the course's teams (no score changes)."""
    with service.course.sessions() as s:
        entries = [entry for entry, _ in service.board_entries(s)]
    n = service.info["n_slices"]
    return integrity_report(entries, lambda e: load_prediction(service.course.store.path(e.sha256), n),
                            threshold=threshold)


def duplicate_of(session, sha256: str, team: str) -> Optional[dict]:
    """The earliest submission of another team with this sha256 (``id``, ``team``, ``submitted_at``), or None.

    For the receipt's flag: tell the second team "identical to a file handed in by
    another team" without naming it; the dashboard names it.
    """
    row = session.execute(
        select(Submission.id, Team.name, Submission.submitted_at).join(Team, Team.id == Submission.team_id)
        .where(Submission.sha256 == sha256, Team.name != team)
        .order_by(Submission.submitted_at, Submission.id).limit(1)
    ).first()
    return None if row is None else {"id": row[0], "team": row[1], "submitted_at": row[2]}
