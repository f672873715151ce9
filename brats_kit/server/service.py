"""What the server does, without HTTP: authenticate, enforce quotas and the deadline, record, select, reveal.

The routes in :mod:`.app` and the commands in ``brats_kit.commands.server`` call
these; every refusal is a :class:`Refusal` carrying its HTTP status.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Callable, Optional

from sqlalchemy import bindparam, func, insert, select, tuple_

from grader.leaderboard.collect import Submission as BoardEntry
from grader.leaderboard.ranking import RULE, rank_teams, score_of
from grader.scoring import SCORED

from . import audit
from .course import Course, read_tokens, tokens_text, write_private
from .db import Meta, Submission, Team, get_meta, set_meta, write_connection, write_transaction
from .grading import open_truth_info, verdict_fields
from .tokens import FailureLimiter, new_token, same_hash, token_hash

#: Extension of an exported file, by the format the grader recognised (never the uploaded name).
EXTENSIONS = {"dat": "dat", "npy": "npy", "hdf5": "h5", None: "bin"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(when: Optional[datetime]) -> Optional[str]:
    """UTC time as ISO 8601 with a ``Z`` (microseconds kept: two uploads in one second stay ordered)."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(eq=False)
class Refusal(Exception):
    """A request the course refuses: HTTP ``status``, stable ``code``, a sentence, and extra fields."""

    status: int
    code: str
    message: str
    extra: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


@dataclass(frozen=True)
class Principal:
    team_id: Optional[int]
    team: Optional[str]
    admin: bool = False


def export_name(sub: Submission) -> str:
    """The file name of a submission in an export (from its id and content, never from the upload)."""
    return f"{sub.id:06d}-{sub.sha256[:12]}.{EXTENSIONS.get(sub.format, 'bin')}"


@dataclass(eq=False)
class _Pending:
    """An upload waiting to be recorded (see :meth:`CourseService.record`)."""

    who: Principal
    sha256: str
    size: int
    fields: dict
    done: bool = False
    error: Optional[BaseException] = None
    receipt: Optional[dict] = None
    now: Optional[datetime] = None
    day: Optional[str] = None
    resets_at: Optional[datetime] = None
    sub: Optional[Submission] = None
    used: Optional[dict] = None


class CourseService:
    """A course being served.

    Parameters
    ----------
    course : Course
    clock : callable
        Returns the current time as an aware datetime (injectable: the demo simulates days).
    limiter : FailureLimiter, optional
        Failed authentications per client address.
    """

    def __init__(self, course: Course, *, clock: Callable[[], datetime] = utc_now,
                 limiter: Optional[FailureLimiter] = None):
        self.course = course
        self.config = course.config
        self.clock = clock
        self.limiter = limiter or FailureLimiter()
        self.info = open_truth_info(self.config.truth)
        self.max_bytes = self.config.max_bytes or self.info["max_bytes"]
        # Group commit (see record): uploads waiting to be recorded, and whether a thread is recording.
        self._writer = threading.Condition()
        self._waiting: list = []
        self._writing = False

    # -- time --------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock().astimezone(timezone.utc)

    def day(self, when: datetime) -> tuple:
        """``(day, resets_at)``: the quota day of ``when`` in the course's time zone, and when it ends (UTC)."""
        zone = self.config.zone
        local = when.astimezone(zone)
        start_next = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
        return local.date().isoformat(), start_next.astimezone(timezone.utc)

    def revealed(self) -> bool:
        with self.course.sessions() as s:
            return get_meta(s, "revealed") == "yes"

    # -- authentication ------------------------------------------------------------------------
    def _throttle(self, address: str) -> None:
        wait = self.limiter.retry_after(address)
        if wait > 0:
            raise Refusal(429, "too_many_failures", "too many failed authentications from this address",
                          {"retry_after_s": int(wait) + 1}, {"Retry-After": str(int(wait) + 1)})

    def authenticate_upload(self, token: Optional[str], address: str) -> Principal:
        """:meth:`authenticate` then :meth:`precheck`, in one query (one trip to a worker thread per upload)."""
        self._throttle(address)
        now = self.now()
        day, resets_at = self.day(now)
        if token:
            digest = token_hash(token)
            with self.course.engine.connect() as conn:
                row = conn.execute(_TEAM_STANDING, {"digest": digest, "day": day}).first()
            if row is not None and same_hash(row.token_hash, digest):
                self._refuse_early(now, resets_at, row.revealed == "yes", _used_of(row))
                return Principal(row.id, row.name)
        raise self._unauthorized(address)

    def authenticate(self, token: Optional[str], address: str, *, admin: bool = False) -> Principal:
        """The team (or the instructor) a bearer token belongs to; 401 otherwise, 429 after too many failures."""
        self._throttle(address)
        if token:
            digest = token_hash(token)
            with self.course.engine.connect() as conn:
                if admin:
                    stored = conn.execute(select(Meta.value).where(Meta.key == "admin_token_hash")).scalar() or ""
                    if stored and same_hash(stored, digest):
                        return Principal(None, None, True)
                else:
                    team = conn.execute(select(Team.id, Team.name, Team.token_hash)
                                        .where(Team.token_hash == digest)).first()
                    if team is not None and same_hash(team.token_hash, digest):
                        return Principal(team.id, team.name)
        raise self._unauthorized(address, admin)

    def _unauthorized(self, address: str, admin: bool = False) -> Refusal:
        self.limiter.failed(address)
        return Refusal(401, "unauthorized", "missing or invalid admin token" if admin else "missing or invalid token",
                       headers={"WWW-Authenticate": "Bearer"})

    # -- submissions ---------------------------------------------------------------------------
    def _closed(self, now: datetime, s, revealed: Optional[bool] = None) -> Optional[Refusal]:
        deadline = self.config.deadline_at
        if revealed if revealed is not None else get_meta(s, "revealed") == "yes":
            return Refusal(403, "closed", "the competition is over: the results have been revealed")
        if deadline is not None and now >= deadline:
            return Refusal(403, "deadline_passed", f"the deadline ({iso(deadline)}) has passed",
                           {"deadline": iso(deadline)})
        return None

    def _used(self, s, team_id: int, day: str) -> dict:
        return self._standing(s, team_id, day)[1]

    def _standing(self, s, team_id: int, day: str) -> tuple:
        """``(revealed, used)``: whether the results are out and the team's uploads of ``day``, in one query."""
        row = s.execute(_STANDING, {"team_id": team_id, "day": day}).one()
        return row.revealed == "yes", _used_of(row)

    def _used_by(self, s, pairs) -> dict:
        """``{(team_id, day): used}`` for every pair, in one query (the batch's quota standing)."""
        used = {pair: {"scored": 0, "invalid": 0} for pair in pairs}
        rows = s.execute(select(Submission.team_id, Submission.day, Submission.status, func.count())
                         .where(tuple_(Submission.team_id, Submission.day).in_(sorted(pairs)))
                         .group_by(Submission.team_id, Submission.day, Submission.status))
        for team_id, day, status, n in rows:
            used[(team_id, day)][status] = n
        return used

    def _quota_refusal(self, kind: str, resets_at: datetime) -> Refusal:
        if kind == "scored":
            text = f"the daily quota of {self.config.per_day} valid submissions is used up"
        else:
            text = f"the daily cap of {self.config.max_invalid_per_day} invalid submissions is used up"
        wait = max(1, int((resets_at - self.now()).total_seconds()) + 1)
        return Refusal(429, "quota_exceeded", text, {"resets_at": iso(resets_at), "kind": kind},
                       {"Retry-After": str(wait)})

    def precheck(self, who: Principal) -> None:
        """Refuse before reading the body: after the deadline, or when both daily caps are used up."""
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.engine.connect() as conn:
            standing = self._standing(conn, who.team_id, day)
        self._refuse_early(now, resets_at, *standing)

    def _refuse_early(self, now: datetime, resets_at: datetime, revealed: bool, used: dict) -> None:
        closed = self._closed(now, None, revealed)
        if closed:
            raise closed
        if used["scored"] >= self.config.per_day and used["invalid"] >= self.config.max_invalid_per_day:
            raise self._quota_refusal("scored", resets_at)

    def record(self, who: Principal, *, sha256: str, size: int, verdict, commit_file: Callable[[], None]) -> dict:
        """Check the quota and record a scored or invalid submission; return the receipt.

        ``commit_file`` fsyncs the scored upload and moves it into the store; it runs before the
        transaction (which then holds the write lock for the database alone), so an
        acknowledged upload always has its file; a refused one's file is removed
        again (see :meth:`~.store.Store.staged`).

        Uploads that arrive while another thread is recording are recorded together,
        in one transaction (group commit): the thread that finds the writer free takes
        every upload waiting at that moment, checks each one's quota in turn (each
        sees the rows inserted before it) and commits them at once, so a busy class
        pays for one write lock and one commit per batch rather than per upload, and
        its uploads never wait on each other's locks. The transaction holds the course's
        write lock (:func:`~.db.write_connection`), so servers in other processes
        sharing the database stay exact too.
        """
        item = _Pending(who, sha256, size, verdict_fields(verdict))
        with self.course.store.staged(sha256, self._referenced):
            commit_file()
            with self._writer:
                self._waiting.append(item)
                while self._writing and not item.done:
                    self._writer.wait()
                if not item.done:
                    batch, self._waiting, self._writing = self._waiting, [], True
            if not item.done:
                try:
                    self._record_batch(batch)
                finally:
                    with self._writer:
                        self._writing = False
                        self._writer.notify_all()
            if item.error is not None:
                raise item.error  # the staged file is removed again
        return item.receipt

    def _record_batch(self, batch: list) -> None:
        """Record a batch of uploads in one transaction; each item gets its receipt or its error."""
        try:
            with write_connection(self.course.engine) as (conn, meta):
                chain = audit.Chain(conn, meta["audit_head"])
                for item in batch:
                    item.now = self.now()
                    item.day, item.resets_at = self.day(item.now)
                used = self._used_by(conn, {(item.who.team_id, item.day) for item in batch})
                for item in batch:
                    item.error = self._insert(conn, chain, item, meta.get("revealed") == "yes",
                                              used[(item.who.team_id, item.day)])
                chain.close()
            for item in batch:
                if item.error is None:
                    item.receipt = self.receipt(item.sub, item.who.team, used=item.used, resets_at=item.resets_at,
                                                revealed=False)
        except BaseException as exc:  # the transaction failed: nothing of the batch is recorded
            for item in batch:
                item.error, item.receipt = exc, None
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in batch:
                item.done = True

    def _insert(self, s, chain: "audit.Chain", item: "_Pending", revealed: bool, used: dict) -> Optional[Refusal]:
        """One upload's quota check and rows, inside the batch's transaction (a refusal is returned).

        ``used`` is the team's standing of the day, counting the uploads of the batch recorded before it.
        """
        kind = item.fields["status"]
        closed = self._closed(item.now, s, revealed)
        if closed:
            return closed
        cap = self.config.per_day if kind == "scored" else self.config.max_invalid_per_day
        if used[kind] >= cap:
            return self._quota_refusal(kind, item.resets_at)
        values = dict(team_id=item.who.team_id, sha256=item.sha256, bytes=item.size, submitted_at=item.now,
                      day=item.day, final=False, **item.fields)
        # A Core insert: the ORM's unit of work costs more than the rest of the upload's database work.
        sub = Submission(id=s.execute(insert(Submission.__table__).values(values)).inserted_primary_key[0], **values)
        event = audit.ACCEPTED if kind == "scored" else audit.INVALID
        chain.append(item.now, event, item.who.team, {"id": sub.id, "sha256": item.sha256, "bytes": item.size,
                                                      "status": kind})
        used[kind] += 1
        item.sub, item.used = sub, dict(used)
        return None

    def _referenced(self, sha256: str) -> bool:
        with self.course.sessions() as s:
            return s.scalar(select(func.count()).select_from(Submission).where(Submission.sha256 == sha256)) > 0

    def receipt(self, sub: Submission, team: str, *, used: Optional[dict] = None, resets_at=None,
                revealed: Optional[bool] = None) -> dict:
        """What the team sees of one of its submissions (public scores only before the reveal)."""
        out = {
            "id": sub.id, "team": team, "sha256": sub.sha256, "bytes": sub.bytes,
            "submitted_at": iso(sub.submitted_at), "status": sub.status, "format": sub.format,
            "errors": sub.errors, "public": sub.public, "final": sub.final,
            "deadline": iso(self.config.deadline_at),
        }
        if used is not None:
            out["remaining_today"] = max(0, self.config.per_day - used["scored"])
            out["invalid_remaining_today"] = max(0, self.config.max_invalid_per_day - used["invalid"])
            out["quota_resets_at"] = iso(resets_at)
            out["quota_day"] = f"{sub.day} ({self.config.timezone})"
        if self.revealed() if revealed is None else revealed:
            out["private"] = sub.private
        return out

    def list_submissions(self, who: Principal) -> dict:
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.sessions() as s:
            subs = list(s.scalars(select(Submission).where(Submission.team_id == who.team_id).order_by(Submission.id)))
            used = self._used(s, who.team_id, day)
            revealed = get_meta(s, "revealed") == "yes"
        return {"team": who.team, "submissions": [self.receipt(sub, who.team, revealed=revealed) for sub in subs],
                "remaining_today": max(0, self.config.per_day - used["scored"]),
                "invalid_remaining_today": max(0, self.config.max_invalid_per_day - used["invalid"]),
                "quota_resets_at": iso(resets_at), "deadline": iso(self.config.deadline_at),
                "finals_allowed": self.config.finals}

    def get_submission(self, who: Principal, sub_id: int) -> dict:
        with self.course.sessions() as s:
            sub = s.get(Submission, sub_id)
        if sub is None or sub.team_id != who.team_id:
            # Another team's id is indistinguishable from one that does not exist.
            raise Refusal(404, "not_found", "no such submission")
        return self.receipt(sub, who.team)

    def file_of(self, who: Principal, sub_id: int):
        """The stored file of one of the team's own submissions (for its download)."""
        with self.course.sessions() as s:
            sub = s.get(Submission, sub_id)
        if sub is None or sub.team_id != who.team_id:
            raise Refusal(404, "not_found", "no such submission")
        return self.course.store.path(sub.sha256), export_name(sub)

    def choose_finals(self, who: Principal, ids) -> dict:
        """Mark up to ``finals`` of the team's own scored submissions as its finals (an empty list: best public)."""
        ids = sorted(set(int(i) for i in ids))
        if len(ids) > self.config.finals:
            raise Refusal(422, "too_many_finals", f"at most {self.config.finals} final submissions may be chosen",
                          {"allowed": self.config.finals})
        with write_transaction(self.course.sessions) as s:
            now = self.now()
            closed = self._closed(now, s)
            if closed:
                raise closed
            subs = {sub.id: sub for sub in s.scalars(select(Submission).where(Submission.team_id == who.team_id))}
            for i in ids:
                if i not in subs:
                    raise Refusal(404, "not_found", f"no such submission: {i}")
                if subs[i].status != "scored":
                    raise Refusal(422, "not_scored", f"submission {i} is invalid and cannot be a final")
            for sub in subs.values():
                sub.final = sub.id in ids
            audit.append(s, now, audit.FINALS, who.team, {"ids": ids})
        return {"team": who.team, "finals": ids, "rule": "best public among the finals" if ids else "best public"}

    # -- the board -----------------------------------------------------------------------------
    @staticmethod
    def board_entries(s, *, name: Callable[[Submission], str] = export_name) -> list:
        """Every submission as a leaderboard entry, with the scores stored at upload.

        Returns ``(entry, row)`` pairs; nothing is read from the store, nothing re-validated.
        ``name`` gives each entry's file name (the live board's hides the hash).
        """
        rows = s.execute(select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
                         .order_by(Submission.id)).all()
        out = []
        for sub, team in rows:
            entry = BoardEntry(team, name(sub), None, sub.submitted_at.replace(microsecond=0),
                               final=True if sub.final else None, time_source="server", sha256=sub.sha256,
                               status=sub.status, errors=sub.errors)
            if sub.status == SCORED:
                entry.scores = {"public": sub.public, "private": sub.private}
            out.append((entry, sub))
        return out

    def leaderboard(self) -> dict:
        """The public board (display names only); after the reveal, the private board too.

        Ranked by the library's one ranking (:func:`grader.leaderboard.ranking.rank_teams`), as the live board is.
        """
        with self.course.sessions() as s:
            revealed = get_meta(s, "revealed") == "yes"
            entries = self.board_entries(s)
            n_teams = s.scalar(select(func.count()).select_from(Team))
        ids = {id(e): sub.id for e, sub in entries}
        phase = "private" if revealed else "public"
        rows = []
        for r in rank_teams([e for e, _ in entries], phase):
            e = r.submission
            row = {"team": r.team, "dice": score_of(e, phase), "f1": e.scores[phase]["f1"],
                   "submitted_at": e.time_text, "selected_by": r.reason, "submission": ids[id(e)], "rank": r.rank}
            if revealed:
                row.update(public_dice=score_of(e, "public"), public_f1=e.scores["public"]["f1"],
                           public_rank=r.public_rank, move=r.move)
            rows.append(row)
        return {"phase": phase, "revealed": revealed, "teams": n_teams, "ranked": len(rows), "rows": rows,
                "rule": RULE}

    def reveal(self) -> dict:
        with write_transaction(self.course.sessions) as s:
            if get_meta(s, "revealed") == "yes":
                raise Refusal(409, "already_revealed", "the results are already revealed")
            now = self.now()
            set_meta(s, "revealed", "yes")
            audit.append(s, now, audit.REVEAL, None, {})
        return self.leaderboard()

    def rotate_token(self, team: str) -> str:
        """A new token for ``team`` (the old one stops working); ``private/tokens.csv`` is rewritten."""
        token = new_token()
        with write_transaction(self.course.sessions) as s:
            row = s.scalars(select(Team).where(Team.name == team)).first()
            if row is None:
                from data_spec.errors import KitError

                raise KitError(f"no team named {team!r}", code="unknown_team")
            row.token_hash = token_hash(token)
            audit.append(s, self.now(), audit.TOKEN_ROTATED, team, {})
            tokens = read_tokens(self.course.tokens_csv) if self.course.tokens_csv.is_file() else {}
            tokens[team] = token
            write_private(self.course.tokens_csv, tokens_text(tokens))
        return token

    def status(self) -> dict:
        """Teams, submissions, today's quota use and last activity (the instructor's view)."""
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.sessions() as s:
            teams = list(s.scalars(select(Team).order_by(Team.name)))
            rows = []
            for t in teams:
                counts = dict(s.execute(select(Submission.status, func.count()).where(Submission.team_id == t.id)
                                        .group_by(Submission.status)).all())
                last = s.scalar(select(func.max(Submission.submitted_at)).where(Submission.team_id == t.id))
                used = self._used(s, t.id, day)
                rows.append({"team": t.name, "scored": counts.get("scored", 0), "invalid": counts.get("invalid", 0),
                             "today_scored": used["scored"], "today_invalid": used["invalid"],
                             "last_activity": iso(last)})
            revealed = get_meta(s, "revealed") == "yes"
        return {"now": iso(now), "quota_day": f"{day} ({self.config.timezone})", "quota_resets_at": iso(resets_at),
                "per_day": self.config.per_day, "max_invalid_per_day": self.config.max_invalid_per_day,
                "deadline": iso(self.config.deadline_at), "revealed": revealed, "teams": rows,
                "submissions": sum(r["scored"] + r["invalid"] for r in rows)}


def _count(status: str, team_id):
    return (select(func.count()).where(Submission.team_id == team_id, Submission.day == bindparam("day"),
                                       Submission.status == status).scalar_subquery().label(status))


_REVEALED = select(Meta.value).where(Meta.key == "revealed").scalar_subquery().label("revealed")
#: Whether the results are revealed, and a team's scored and invalid uploads of a day (one statement).
_STANDING = select(_REVEALED, _count("scored", bindparam("team_id")), _count("invalid", bindparam("team_id")))
#: The same for the team holding a token (by its hash): an upload's first query.
_TEAM_STANDING = select(Team.id, Team.name, Team.token_hash, _REVEALED, _count("scored", Team.id),
                        _count("invalid", Team.id)).where(Team.token_hash == bindparam("digest"))


def _used_of(row) -> dict:
    return {"scored": row.scored or 0, "invalid": row.invalid or 0}
