"""The deadline and the daily quotas: who may still hand in, and the refusals when not.

A team may record ``per_day`` scored and ``max_invalid_per_day`` invalid uploads per
quota day (a code job still queued or running holds one of its scored uploads) (midnight to midnight in the course's time zone); nothing after the
deadline or the reveal. The standing of a team is read in one statement
(:data:`STANDING`, or :data:`TEAM_STANDING` by token hash for an upload's first query).

A team has at most ``max_inflight_per_team`` uploads (default 1) between admission
and its receipt (:class:`InFlight`): the others wait their turn in order, without a
scoring worker, and are checked against the quotas again when it comes, so a team
firing many files at once holds one scoring worker, never queues ahead of the other
teams, and has no file scored once its caps are used up.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
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


#: Uploads of one team admitted at once (receiving, scoring, recording), unless the course says otherwise.
MAX_INFLIGHT_PER_TEAM = 1
#: Uploads of one team that may wait for their turn; more are refused (429 ``too_many_in_flight``).
MAX_WAITING_PER_TEAM = 8


def too_many_in_flight(uploads: int) -> Refusal:
    """The 429 of an upload refused while ``uploads`` of its team are in progress or waiting."""
    return Refusal(429, "too_many_in_flight", f"this team already has {uploads} uploads in progress",
                   {"hint": "wait for your receipts before handing in again"}, {"Retry-After": "5"})


class InFlight:
    """At most ``per_team`` uploads of a team at once; the next ones wait in arrival order (event-loop state).

    Examples
    --------
    >>> gate = InFlight(per_team=1)
    >>> async def one():
    ...     async with gate.slot(7) as (others, waited):
    ...         return others, waited, gate.active(7)
    >>> asyncio.run(one()), gate.active(7)
    ((0, False, 1), 0)
    """

    def __init__(self, per_team: int = MAX_INFLIGHT_PER_TEAM, max_waiting: int = MAX_WAITING_PER_TEAM):
        self.per_team, self.max_waiting = max(1, int(per_team)), int(max_waiting)
        self._active: collections.Counter = collections.Counter()
        self._waiting: dict = collections.defaultdict(collections.deque)

    def active(self, team_id) -> int:
        """Uploads of the team holding a slot now."""
        return self._active[team_id]

    @contextlib.asynccontextmanager
    async def slot(self, team_id):
        """Hold one of the team's slots: yields ``(others, waited)``, the team's other uploads holding one and
        whether this one had to wait. Raises 429 ``too_many_in_flight`` when too many already wait."""
        waited = False
        if self._active[team_id] >= self.per_team:
            queue = self._waiting[team_id]
            if len(queue) >= self.max_waiting:
                raise too_many_in_flight(self.per_team + len(queue))
            turn = asyncio.get_running_loop().create_future()
            queue.append(turn)
            try:
                await turn  # the slot is handed over by the upload that releases it
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._release(team_id)  # handed over just as this one gave up: pass it on
                else:
                    queue.remove(turn)
                raise
            waited = True
        else:
            self._active[team_id] += 1
        try:
            yield self._active[team_id] - 1, waited
        finally:
            self._release(team_id)

    def _release(self, team_id) -> None:
        queue = self._waiting.get(team_id)
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to the next in line; the count stays
                return
        self._waiting.pop(team_id, None)
        self._active[team_id] -= 1
        if self._active[team_id] <= 0:
            del self._active[team_id]


#: Seconds between two tries of a team's shared slot while another replica holds it (doubling up to the last).
SLOT_POLL_S = (0.01, 0.2)
#: Seconds an upload waits for a slot another replica holds before it is refused (429 ``too_many_in_flight``).
SLOT_WAIT_S = 120.0


class SharedInFlight(InFlight):
    """:class:`InFlight` over every replica of a course (``server run --replica``).

    Within a replica the uploads of a team queue as in :class:`InFlight` (in arrival
    order, at most ``max_waiting``); the one whose turn comes then takes one of the
    team's ``per_team`` PostgreSQL advisory locks (on the replica's
    :class:`~.shared.LockSession`), trying again every few milliseconds while other
    replicas hold them all (arrival order is kept within a replica, not across
    replicas). The locks are the session's: a replica killed mid-upload frees its
    slots when its connection ends.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The course's PostgreSQL engine (to count a team's slots held by every replica).
    locks : LockSession
        The replica's advisory locks.
    """

    def __init__(self, engine, locks, per_team: int = MAX_INFLIGHT_PER_TEAM,
                 max_waiting: int = MAX_WAITING_PER_TEAM, wait_s: float = SLOT_WAIT_S):
        super().__init__(per_team, max_waiting)
        self.engine, self.locks, self.wait_s = engine, locks, float(wait_s)

    @contextlib.asynccontextmanager
    async def slot(self, team_id):
        from starlette.concurrency import run_in_threadpool

        async with super().slot(team_id) as (others, waited):
            lock, shared_wait = await self._take(team_id)
            try:
                if self.per_team > 1:  # the team's slots held by every replica, this one's included
                    from .shared import held_slots

                    others = max(others, await run_in_threadpool(held_slots, self.engine, team_id) - 1)
                yield others, waited or shared_wait
            finally:
                await run_in_threadpool(lock.release)

    async def _take(self, team_id) -> tuple:
        """One of the team's shared slots: ``(lock, waited)``; 429 once :attr:`wait_s` have gone by."""
        from starlette.concurrency import run_in_threadpool

        from .shared import TEAM_SLOT, SessionLock, slot_key

        locks = [SessionLock(self.locks, TEAM_SLOT, slot_key(team_id, i)) for i in range(self.per_team)]
        loop = asyncio.get_running_loop()
        deadline, pause, waited = loop.time() + self.wait_s, SLOT_POLL_S[0], False
        while True:
            for lock in locks:
                if await run_in_threadpool(lock.try_acquire):
                    return lock, waited
            if loop.time() > deadline:
                raise too_many_in_flight(self.per_team)
            waited = True
            await asyncio.sleep(pause)
            pause = min(2 * pause, SLOT_POLL_S[1])


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
        self.in_flight = InFlight((config.extra or {}).get("max_inflight_per_team", MAX_INFLIGHT_PER_TEAM))

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

    def refuse_early(self, now: datetime, resets_at: datetime, revealed: bool, used: dict, in_flight: int = 0) -> None:
        """Refuse before reading a body: after the deadline, or when both daily caps are used up.

        ``in_flight``: the team's other uploads not yet recorded, counted as used in both caps (each
        may yet take either): with more than one upload of a team at once, the refusal errs early.
        """
        closed = self.closed(now, revealed)
        if closed:
            raise closed
        if (used["scored"] + in_flight >= self.config.per_day
                and used["invalid"] + in_flight >= self.config.max_invalid_per_day):
            raise self.refusal("scored", resets_at)
