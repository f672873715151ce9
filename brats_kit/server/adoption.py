"""``server audit --adopt``: a quarantined file recorded again, from the store and its receipt's hash.

A database restored from a backup older than the store does not know the files
received since; the server moves them to ``store/quarantine/`` at startup
(:meth:`~.store.Store.recover`). The team shows its receipt (team, sha256, time);
:func:`adopt` checks the file against that hash, scores it again in the isolated
workers, moves it back to its address and records it, with its audit event (marked
``adopted``), outside the daily quota: it was accepted once already.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import select

from data_spec.errors import BadArgumentError, KitError

from . import audit
from .clock import quota_day
from .course import Course
from .db import Submission, Team, write_transaction
from .grading import make_scorer, verdict_fields


def adopt(course: Course, sha256: str, team: str, *, at: Optional[datetime] = None, scorer=None) -> dict:
    """Record the quarantined file ``sha256`` as a submission of ``team`` handed in ``at``.

    Parameters
    ----------
    course : Course
    sha256 : str
        The hash on the team's receipt (the file is checked against it).
    team : str
        The team on the receipt.
    at : datetime, optional
        The receipt's ``submitted_at`` (default: when the file reached the store, its mtime).
    scorer : IsolatedScorer, optional
        Workers to score with (default: the course's own, started and stopped here).

    Returns
    -------
    dict
        ``id``, ``team``, ``sha256``, ``status``, ``submitted_at`` of the new row.
    """
    source = course.store.quarantine / sha256
    if sha256 not in course.store.quarantined():
        raise KitError(f"no quarantined file {sha256!r}", code="not_quarantined", path=course.store.quarantine,
                       hint="'brats-kit server status' lists the quarantined files")
    if at is None:
        at = datetime.fromtimestamp(source.stat().st_mtime, timezone.utc)
    elif at.tzinfo is None:
        raise BadArgumentError(f"the time {at.isoformat()} has no UTC offset", expected="the receipt's submitted_at")
    with course.sessions() as s:
        team_row = s.scalars(select(Team).where(Team.name == team)).first()
    if team_row is None:
        raise KitError(f"no team named {team!r}", code="unknown_team")
    own = scorer is None
    scorer = make_scorer(course.config) if own else scorer
    try:
        try:
            path = course.store.release(sha256)  # checks the content against the receipt's hash first
        except ValueError as exc:
            raise KitError(str(exc), code="changed_file", path=source,
                           hint="the file is not the one the receipt names: it cannot be adopted") from None
        fields = verdict_fields(scorer.submit(path).result())
    finally:
        if own:
            scorer.close()
    at = at.astimezone(timezone.utc)
    day, _ = quota_day(at, course.config.zone)
    size = path.stat().st_size
    with write_transaction(course.sessions) as s:
        sub = Submission(team_id=team_row.id, sha256=sha256, bytes=size, submitted_at=at, day=day, final=False,
                         truth_sha256=course.truth_sha256,
                         **fields)
        s.add(sub)
        s.flush()
        event = audit.ACCEPTED if fields["status"] == "scored" else audit.INVALID
        audit.append(s, at, event, team, dict(audit.submission_payload(sub.id, sha256, size, fields), adopted=True))
        sub_id = sub.id
    return {"id": sub_id, "team": team, "sha256": sha256, "status": fields["status"], "submitted_at": at.isoformat()}
