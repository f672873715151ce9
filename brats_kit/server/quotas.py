"""The deadline and the daily quotas: who may still hand in, and the refusals when not.

A team may record ``per_day`` scored and ``max_invalid_per_day`` invalid uploads per
quota day (a code job still queued or running holds one of its scored uploads) (midnight to midnight in the course's time zone); nothing after the
deadline or the reveal. The standing of a team is read in one statement
(:data:`STANDING`, or :data:`TEAM_STANDING` by token hash for an upload's first query).
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Optional

from sqlalchemy import bindparam, func, select, tuple_

from .clock import iso, quota_day
from .db import CodeJob, Meta, Submission, Team, revealed_flag
from .refusal import Refusal


#: Code jobs still queued or running: each holds one of its team's valid submissions of the day.
ACTIVE_JOBS = ("queued", "running")


def _count(status: str, team_id):
    n = (select(func.count()).where(Submission.team_id == team_id, Submission.day == bindparam("day"),
                                    Submission.status == status).scalar_subquery())
    if status == "scored":
        n = n + (select(func.count()).where(CodeJob.team_id == team_id, CodeJob.day == bindparam("day"),
                                            CodeJob.state.in_(ACTIVE_JOBS)).scalar_subquery())
    return n.label(status)


_REVEALED = select(Meta.value).where(Meta.key == "revealed").scalar_subquery().label("revealed")
#: Whether the results are revealed, and a team's scored and invalid uploads of a day (one statement).
STANDING = select(_REVEALED, _count("scored", bindparam("team_id")), _count("invalid", bindparam("team_id")))
#: The same for the team holding a token (by its hash): an upload's first query.
TEAM_STANDING = select(Team.id, Team.name, Team.token_hash, _REVEALED, _count("scored", Team.id),
                       _count("invalid", Team.id)).where(Team.token_hash == bindparam("digest"))


def used_of(row) -> dict:
    """``{"scored", "invalid"}`` of a :data:`STANDING` or :data:`TEAM_STANDING` row."""
    return {"scored": row.scored or 0, "invalid": row.invalid or 0}


def no_uploads() -> dict:
    return {"scored": 0, "invalid": 0}


class Quotas:
    """The course's deadline and daily caps.

    Parameters
    ----------
    config : CourseConfig
    now : callable
        The service's clock (aware UTC datetimes).
    """

    def __init__(self, config, now: Callable[[], datetime]):
        self.config = config
        self.now = now

    def day(self, when: datetime) -> tuple:
        """``(day, resets_at)``: the quota day of ``when`` and when it ends (UTC)."""
        return quota_day(when, self.config.zone)

    def closed(self, now: datetime, revealed: bool) -> Optional[Refusal]:
        """The refusal of any change after the reveal or the deadline (None while open)."""
        deadline = self.config.deadline_at
        if revealed:
            return Refusal(403, "closed", "the competition is over: the results have been revealed")
        if deadline is not None and now >= deadline:
            return Refusal(403, "deadline_passed", f"the deadline ({iso(deadline)}) has passed",
                           {"deadline": iso(deadline)})
        return None

    def refusal(self, kind: str, resets_at: datetime) -> Refusal:
        """429 ``quota_exceeded`` for ``kind`` (``scored`` or ``invalid``), with when the day ends."""
        if kind == "scored":
            text = f"the daily quota of {self.config.per_day} valid submissions is used up"
        else:
            text = f"the daily cap of {self.config.max_invalid_per_day} invalid submissions is used up"
        wait = max(1, int((resets_at - self.now()).total_seconds()) + 1)
        return Refusal(429, "quota_exceeded", text, {"resets_at": iso(resets_at), "kind": kind},
                       {"Retry-After": str(wait)})

    def cap(self, kind: str) -> int:
        return self.config.per_day if kind == "scored" else self.config.max_invalid_per_day

    def remaining(self, used: dict) -> dict:
        """What a team may still hand in today, given its ``used`` standing."""
        return {"remaining_today": max(0, self.config.per_day - used["scored"]),
                "invalid_remaining_today": max(0, self.config.max_invalid_per_day - used["invalid"])}

    def standing(self, conn, team_id: int, day: str) -> tuple:
        """``(revealed, used)``: whether the results are out and the team's uploads of ``day``, in one query."""
        row = conn.execute(STANDING, {"team_id": team_id, "day": day}).one()
        return revealed_flag(row.revealed), used_of(row)

    def used_by(self, conn, pairs) -> dict:
        """``{(team_id, day): used}`` for every pair, in one query (a batch's quota standing)."""
        used = {pair: no_uploads() for pair in pairs}
        rows = conn.execute(select(Submission.team_id, Submission.day, Submission.status, func.count())
                            .where(tuple_(Submission.team_id, Submission.day).in_(sorted(pairs)))
                            .group_by(Submission.team_id, Submission.day, Submission.status))
        for team_id, day, status, n in rows:
            used[(team_id, day)][status] = n
        jobs = conn.execute(select(CodeJob.team_id, CodeJob.day, func.count())
                            .where(tuple_(CodeJob.team_id, CodeJob.day).in_(sorted(pairs)),
                                   CodeJob.state.in_(ACTIVE_JOBS))
                            .group_by(CodeJob.team_id, CodeJob.day))
        for team_id, day, n in jobs:
            used[(team_id, day)]["scored"] += n
        return used

    def refuse_early(self, now: datetime, resets_at: datetime, revealed: bool, used: dict) -> None:
        """Refuse before reading a body: after the deadline, or when both daily caps are used up."""
        closed = self.closed(now, revealed)
        if closed:
            raise closed
        if used["scored"] >= self.config.per_day and used["invalid"] >= self.config.max_invalid_per_day:
            raise self.refusal("scored", resets_at)
