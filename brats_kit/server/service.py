"""What the server does, without HTTP: the facade every route, page and command calls.

:class:`CourseService` owns the course's use cases (hand in, finals, reveal, status,
the team's and the instructor's views); it delegates authentication and its limits to
:mod:`.auth`, the deadline and quotas to :mod:`.quotas` and recording (group commit)
to :mod:`.recording`. Every refusal is a :class:`~.refusal.Refusal` carrying its HTTP status.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Callable, Optional

import numpy as np
from sqlalchemy import case, func, select

from data_spec.errors import KitError
from data_spec.truth import load_truth
from grader.counts import Counts
from grader.leaderboard.collect import Submission as BoardEntry
from grader.leaderboard.ranking import rank_teams, ranking_type, rule, score_of
from grader.score_types import RANKING, MeanDice
from grader.scoring import SCORED

from . import audit
from .auth import Authenticator
from .clock import iso, local_text, utc_now
from . import signins
from .course import Course, check_permissions, read_tokens, tokens_text, write_private
from .db import (REVEALED, AuditEvent, CodeJob, Member, Submission, Team, is_revealed, set_meta, stored_files,
                 write_transaction)
from .grading import course_mask_scores, lacks_mask_scores, truth_info
from .naming import EXTENSIONS, export_name
from .quotas import Quotas, SharedInFlight, no_uploads
from .recording import Recorder
from .refusal import Principal, Refusal
from .shared import LockSession, SharedFailureLimiter, require_postgresql
from .tracks import CODE, FILE, board_truth, check_track, hidden_truth_of, track_of
from .tokens import FailureLimiter, new_token, same_hash, token_hash

__all__ = ["CourseService", "Refusal", "Principal", "utc_now", "iso", "EXTENSIONS", "export_name", "startup_checks"]

log = logging.getLogger("brats_kit.server")

#: The name :meth:`CourseService.rotate_token` gives the instructor.
ADMIN = "admin"
#: The refusals of an upload counted per team and day (``over_quota`` is the first).
COUNTED_REFUSALS = ("quota_exceeded", "deadline_passed", "closed")


def startup_checks(course: Course, *, replica: bool = False) -> list:
    """Fix exposed private files (warning), remove unacknowledged uploads and quarantine unknown stored files.

    Returns the paths removed and moved. A stored file the database does not know may
    have a receipt (a database restored from an older backup): it is moved to
    ``store/quarantine/``, never deleted (``server audit --adopt`` records it again).

    ``replica``: other replicas share the store and may be receiving, or about to
    record, the files a lone server would tidy: only files untouched for
    :func:`replica_grace_s` are removed or quarantined.
    """
    if replica:
        require_postgresql(course.engine, course.root)
    for path in check_permissions(course.root, fix=True):
        log.warning("%s was readable by others: its mode is now owner-only", path)
    # A course created before the code track has no table of code jobs: an empty one, added once.
    CodeJob.__table__.create(course.engine, checkfirst=True)
    with course.sessions() as s:
        referenced = stored_files(s)
    _warn_missing_mask_scores(course)
    removed, moved = course.store.recover(referenced, older_than=replica_grace_s(course.config) if replica else None)
    for path in removed:
        log.warning("removed %s, left by an interrupted upload (never acknowledged)", path)
    for path in moved:
        log.warning("quarantined %s: the database does not know it (a restored backup?); "
                    "see 'brats-kit server audit --adopt'", path)
    return removed + moved


def _warn_missing_mask_scores(course: Course) -> None:
    """Say at start-up that a course ranked by a mask score holds rows without it (an upgraded database)."""
    names = course_mask_scores(course.config)
    if not names:
        return
    with course.sessions() as s:
        stored = s.scalars(select(Submission.mask_scores).where(Submission.status == SCORED))
        lacking = sum(lacks_mask_scores(m, names) for m in stored)
    if lacking:
        log.warning("%d scored submission(s) have no stored %s: the board cannot be ranked by it until "
                    "'brats-kit server rescore COURSE --backfill' computes them", lacking, names[0])


def check_mask_scores(entries, truth, ranking) -> None:
    """Refuse to rank by a mask score valid entries do not all hold per case, for every case of ``truth``.

    Raises
    ------
    KitError
        ``missing_scores``: submissions recorded before the uploads stored mask scores (or with
        values of another number of cases): never ranked as if they scored the worst.
    """
    if not ranking.needs_masks:
        return
    lacking = [e for e in entries if e.valid and len(e.mask_scores.get(ranking.name, ())) != len(truth)]
    if lacking:
        raise KitError(f"{len(lacking)} scored submission(s) have no stored per-case {ranking.title} for the "
                       f"{len(truth)} cases of the truth (e.g. {lacking[0].team}'s {lacking[0].name}): the course "
                       f"cannot be ranked by {ranking.name} yet", code="missing_scores", path=truth.path,
                       hint="brats-kit server rescore COURSE --backfill computes them once from the stored files")


def rank_recorded(entries, phase: str, truth, ranking=RANKING) -> list:
    """The one ranking (:func:`~grader.leaderboard.ranking.rank_teams`) of recorded entries by ``ranking``.

    A mask score's phase values come from the per-case values each upload stored
    (:func:`~grader.leaderboard.build.phase_scores`, as the live board computes them).
    """
    from grader.leaderboard.build import phase_scores

    check_mask_scores(entries, truth, ranking)
    if ranking.needs_masks:
        phase_scores([e for e in entries if e.valid], {"public": truth.public, "private": ~truth.public}, ranking)
    return rank_teams(entries, phase, ranking)


#: Seconds a replica leaves another's temporary or not-yet-recorded file alone at start-up, at least.
REPLICA_GRACE_S = 600.0


def replica_grace_s(config) -> float:
    """How old a file of the store must be before a starting replica tidies it: well beyond the longest upload
    (a body under the transport's deadlines, then scoring under the course's time limit, then one commit).

    >>> from types import SimpleNamespace
    >>> replica_grace_s(SimpleNamespace(timeout_s=20.0)), replica_grace_s(SimpleNamespace(timeout_s=400.0))
    (600.0, 1200.0)
    """
    return max(REPLICA_GRACE_S, 3 * float(config.timeout_s))


#: The largest id a submission can have (the column is a 32-bit INTEGER on PostgreSQL).
MAX_SUBMISSION_ID = 2**31 - 1


def submission_id(value) -> Optional[int]:
    """``value`` (a path or query text, or an int) as a submission id, or None when it cannot be one.

    Examples
    --------
    >>> [submission_id(v) for v in ("7", 7, "99999999999999999999", "-1", "0", "1.5", " 7", "٧", None)]
    [7, 7, None, None, None, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 10:
            return None
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= MAX_SUBMISSION_ID:
        return None
    return value


def refused_uploads(s) -> list:
    """Every refused upload as ``(team, day, "over_quota" or "late")``, from the audit log (see :meth:`CourseService.refused`)."""
    rows = s.execute(select(AuditEvent.team, AuditEvent.payload).where(AuditEvent.kind == audit.REFUSED)).all()
    return [(team, p.get("day"), "over_quota" if p.get("code") == "quota_exceeded" else "late") for team, p in rows]


class CourseService:
    """A course being served.

    Parameters
    ----------
    course : Course
    clock : callable
        Returns the current time as an aware datetime (injectable: the demo simulates days).
    limiter : FailureLimiter, optional
        Failed authentications per client address.
    scorer : IsolatedScorer, optional
        The workers that score an upload (:meth:`score`); the application passes its own.
    replica : bool
        One of several processes serving the course (``server run --replica``, PostgreSQL only): the
        failure limiter and the per-team in-flight slots are kept in the database
        (:class:`~.shared.SharedFailureLimiter`, :class:`~.quotas.SharedInFlight`), not in this process.

    Attributes
    ----------
    truth : Truth
        The test truth, loaded once for the server process (public facts and per-case reports use it).
    info : dict
        The public facts about the test set (``n_slices``, ``case_ids``) and the default size cap.
    """

    def __init__(self, course: Course, *, clock: Callable[[], datetime] = utc_now,
                 limiter: Optional[FailureLimiter] = None, scorer=None, replica: bool = False):
        self.course = course
        self.replica = replica
        self.config = course.config
        self.clock = clock
        self.scorer = scorer
        self.truth = load_truth(self.config.truth)
        self.info = truth_info(self.truth)
        self.max_bytes = self.config.max_bytes or self.info["max_bytes"]
        self.quotas = Quotas(self.config, self.now)
        #: The replica's advisory locks (None for a lone server): in-flight slots, the board's builder, code jobs.
        self.locks: Optional[LockSession] = None
        if replica:
            require_postgresql(course.engine, course.root)
            limiter = limiter or SharedFailureLimiter(course.engine)
            self.locks = LockSession(course.engine)
            self.quotas.in_flight = SharedInFlight(course.engine, self.locks, self.quotas.in_flight.per_team)
            # Another replica may be recording the same bytes: a refused upload's file is left for the
            # start-up tidy (quarantined once old), never removed under a row about to point at it.
            course.store.shared = True
        self.auth = Authenticator(course.engine, self.quotas, limiter)
        self.recorder = Recorder(course, self.quotas)

    @property
    def limiter(self) -> FailureLimiter:
        return self.auth.limiter

    def close(self) -> None:
        """End what the service holds outside this process: a replica's advisory locks (its session)."""
        if self.locks is not None:
            self.locks.close()

    # -- time --------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock().astimezone(timezone.utc)

    def day(self, when: datetime) -> tuple:
        """``(day, resets_at)``: the quota day of ``when`` in the course's time zone, and when it ends (UTC)."""
        return self.quotas.day(when)

    def local(self, when) -> Optional[str]:
        """A moment (datetime or ISO text) in the course's time zone, to the minute, zone named."""
        return local_text(when, self.config.zone)

    def deadline_text(self) -> Optional[str]:
        return self.local(self.config.deadline_at)

    def revealed(self) -> bool:
        with self.course.sessions() as s:
            return is_revealed(s)

    # -- authentication ------------------------------------------------------------------------
    def authenticate(self, token: Optional[str], address: str, *, admin: bool = False) -> Principal:
        """The team (or the instructor) a bearer token belongs to; 401 otherwise, 429 after too many failures."""
        return self.auth.authenticate(token, address, admin=admin)

    def authenticate_upload(self, token: Optional[str], address: str) -> Principal:
        """:meth:`authenticate` then :meth:`precheck`, in one query (one trip to a worker thread per upload)."""
        try:
            return self.auth.authenticate_upload(token, address)
        except Refusal as exc:
            if exc.code in COUNTED_REFUSALS:  # the token was good: whose upload was refused
                self.refused(self.auth.authenticate(token, address), exc)
            raise

    def sign_in(self, token: Optional[str], address: str) -> Principal:
        """Whoever a token belongs to, the instructor or a team: the sign-in page has one token box."""
        stored = self.auth.stored_hash(Principal(None, None, True))
        admin = bool(token) and bool(stored) and same_hash(stored, token_hash(token))
        return self.auth.authenticate(token, address, admin=admin)

    def signed_in_hash(self, who: Principal) -> Optional[str]:
        """The token hash a session of ``who`` is bound to, as stored now (a rotated token ends the session)."""
        return self.auth.stored_hash(who)

    # -- sign-in sessions (pages) -----------------------------------------------------------------
    def open_session(self, who: Principal) -> str:
        """A server-side session for a signed-in browser: its id, for the cookie (see :mod:`.signins`)."""
        return signins.open_session(self.course.sessions, who, self.now())

    def session_alive(self, who: Principal, sid) -> bool:
        """Whether the browser session ``sid`` of ``who`` is still open (not signed out, not revoked)."""
        return signins.session_alive(self.course.engine, who, sid)

    def sign_out(self, sid) -> None:
        """End one browser session server-side: a copy of its cookie opens nothing afterwards."""
        signins.end_session(self.course.sessions, sid)

    def end_all_sessions(self) -> int:
        """End every browser session of the course (teams and instructor): how many were open."""
        with write_transaction(self.course.sessions) as s:
            n = signins.end_sessions(s, everyone=True)
            audit.append(s, self.now(), audit.SESSIONS_ENDED, None, {"sessions": n})
        return n

    # -- hand in -------------------------------------------------------------------------------
    def precheck(self, who: Principal, in_flight: int = 0) -> Principal:
        """Refuse before reading the body: after the deadline, or when both daily caps are used up
        (counting ``in_flight`` other uploads of the team as used, see :meth:`.Quotas.refuse_early`)."""
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.engine.connect() as conn:
            standing = self.quotas.standing(conn, who.team_id, day)
        try:
            self.quotas.refuse_early(now, resets_at, *standing, in_flight=in_flight)
        except Refusal as exc:
            self.refused(who, exc)
            raise
        return who

    def refused(self, who: Principal, exc: Refusal) -> None:
        """Count an upload the course refused (quota, deadline, reveal): one audit event, shown by :meth:`status`.

        The one place refusals are written; the facade calls it where a refusal of an upload is raised.
        """
        if exc.code not in COUNTED_REFUSALS or who.team is None:
            return
        now = self.now()
        day, _ = self.day(now)
        with write_transaction(self.course.sessions) as s:
            audit.append(s, now, audit.REFUSED, who.team,
                         {"code": exc.code, "kind": exc.extra.get("kind"), "day": day})

    def open_upload(self):
        """A new upload in the store's ``tmp/``, capped at :attr:`max_bytes`."""
        return self.course.store.upload(self.max_bytes)

    def score(self, upload):
        """Score a received upload in the isolated workers: a future of its ``Verdict``."""
        return self.scorer.submit(upload.path)

    def hand_in(self, who: Principal, upload, sha256: str, verdict) -> dict:
        """Store and record a scored upload (:meth:`record`): its receipt, or the refusal raised."""
        return self.record(who, sha256=sha256, size=upload.size, verdict=verdict,
                           commit_file=lambda: self.course.store.commit(upload, sha256))

    def record(self, who: Principal, *, sha256: str, size: int, verdict, commit_file: Callable[[], None]) -> dict:
        """Check the quota and record a submission; return the receipt (see :meth:`.Recorder.record`)."""
        try:
            return self.recorder.record(who, sha256=sha256, size=size, verdict=verdict, commit_file=commit_file)
        except Refusal as exc:
            self.refused(who, exc)
            raise

    def receipt(self, sub: Submission, team: str, *, used: Optional[dict] = None, resets_at=None,
                revealed: Optional[bool] = None) -> dict:
        """What the team sees of one of its submissions (public scores only before the reveal)."""
        return self.recorder.receipt(sub, team, used=used, resets_at=resets_at,
                                     revealed=self.revealed() if revealed is None else revealed)

    # -- the team's own submissions --------------------------------------------------------------
    def list_submissions(self, who: Principal) -> dict:
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.sessions() as s:
            subs = list(s.scalars(select(Submission).where(Submission.team_id == who.team_id).order_by(Submission.id)))
            revealed, used = self.quotas.standing(s, who.team_id, day)
        return {"team": who.team, "submissions": [self.receipt(sub, who.team, revealed=revealed) for sub in subs],
                **self.quotas.remaining(used),
                "quota_resets_at": iso(resets_at), "deadline": iso(self.config.deadline_at),
                "finals_allowed": self.config.finals}

    def _own(self, who: Principal, sub_id) -> Submission:
        """One of the team's own submissions; any other id (another team's, unknown, out of range, not a
        whole number) is the same 404, before the database sees it."""
        key = submission_id(sub_id)
        sub = None
        if key is not None:
            with self.course.sessions() as s:
                sub = s.get(Submission, key)
        if sub is None or sub.team_id != who.team_id:
            # Another team's id is indistinguishable from one that does not exist.
            raise Refusal(404, "not_found", "no such submission")
        return sub

    def get_submission(self, who: Principal, sub_id) -> dict:
        return self.receipt(self._own(who, sub_id), who.team)

    def file_of(self, who: Principal, sub_id):
        """The stored file of one of the team's own submissions (for its download)."""
        sub = self._own(who, sub_id)
        return self.course.store.path(sub.sha256), export_name(sub)

    def public_report(self, who: Principal, sub_id) -> dict:
        """Per public slice counts and Dice of one of the team's own submissions (404 for any other).

        Computed from the counts stored at upload and the truth loaded once (:attr:`truth`).
        """
        sub = self._own(who, sub_id)
        sub_id = sub.id
        if sub.status != SCORED or not sub.counts:
            return {"id": sub_id, "rows": [], "note": "an invalid submission has no scores"}
        counts = Counts.from_record(sub.counts, self.truth).phase("public")
        rows = [{"case_id": str(c), "tp": int(tp), "fp": int(fp), "fn": int(fn), MeanDice.name: float(d)}
                for c, tp, fp, fn, d in zip(counts.case_id, counts.tp, counts.fp, counts.fn, counts.dice())]
        return {"id": sub_id, "rows": rows, "note": None}

    def choose_finals(self, who: Principal, ids) -> dict:
        """Mark up to ``finals`` of the team's own scored submissions as its finals (an empty list: best public)."""
        ids = sorted(set(int(i) for i in ids))
        if len(ids) > self.config.finals * (2 if hidden_truth_of(self.config) else 1):  # per track, checked below
            raise self._too_many_finals()
        with write_transaction(self.course.sessions) as s:
            now = self.now()
            closed = self.quotas.closed(now, is_revealed(s))
            if closed:
                raise closed
            subs = {sub.id: sub for sub in s.scalars(select(Submission).where(Submission.team_id == who.team_id))}
            for i in ids:
                if i not in subs:
                    raise Refusal(404, "not_found", f"no such submission: {i}")
                if subs[i].status != SCORED:
                    raise Refusal(422, "not_scored", f"submission {i} is invalid and cannot be a final")
            if any(n > self.config.finals for n in Counter(track_of(subs[i].format) for i in ids).values()):
                raise self._too_many_finals()
            for sub in subs.values():
                sub.final = sub.id in ids
            audit.append(s, now, audit.FINALS, who.team, {"ids": ids})
        return {"team": who.team, "finals": ids, "rule": "best public among the finals" if ids else "best public"}

    def _too_many_finals(self) -> Refusal:
        return Refusal(422, "too_many_finals", f"at most {self.config.finals} final submissions may be chosen per "
                       "track", {"allowed": self.config.finals})

    # -- the board -----------------------------------------------------------------------------
    @staticmethod
    def board_entries(s, *, name: Callable[[Submission], str] = export_name, exact_times: bool = False,
                      track: str = FILE) -> list:
        """Every submission of ``track`` as a leaderboard entry, with the scores stored at upload.

        Returns ``(entry, row)`` pairs; nothing is read from the store, nothing re-validated.
        ``name`` gives each entry's file name (the live board's hides the hash). Times are cut
        to the second (as the export's manifest keeps them) unless ``exact_times``.
        """
        rows = s.execute(select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
                         .order_by(Submission.id)).all()
        out = []
        for sub, team in rows:
            if track_of(sub.format) != track:  # each track is ranked on its own truth
                continue
            when = sub.submitted_at if exact_times else sub.submitted_at.replace(microsecond=0)
            entry = BoardEntry(team, name(sub), None, when,
                               final=True if sub.final else None, time_source="server", sha256=sub.sha256,
                               status=sub.status, errors=sub.errors)
            if sub.status == SCORED:
                # Copies: a mask score ranked by is added to them (:func:`rank_recorded`), never to the row.
                entry.scores = {"public": dict(sub.public), "private": dict(sub.private)}
                entry.mask_scores = {name: np.asarray(values, dtype=np.float64)
                                     for name, values in (sub.mask_scores or {}).items()}
            out.append((entry, sub))
        return out

    def leaderboard(self, track: str = FILE) -> dict:
        """``track``'s public board (display names only); after the reveal, the private board too.

        Ranked by the library's one ranking (:func:`grader.leaderboard.ranking.rank_teams`), as the live board is.
        """
        check_track(track)
        with self.course.sessions() as s:
            revealed = is_revealed(s)
            entries = self.board_entries(s, track=track)
            n_teams = s.scalar(select(func.count()).select_from(Team))
        ids = {id(e): sub.id for e, sub in entries}
        phase = "private" if revealed else "public"
        ranking = ranking_type(self.config.ranking)
        try:
            ranked = rank_recorded([e for e, _ in entries], phase, self.track_truth(track), ranking)
        except KitError as exc:
            if exc.code != "missing_scores":
                raise
            # Said to everyone without naming a team or a file; the instructor's log and audit name them.
            raise Refusal(503, "missing_scores", f"the board cannot be ranked by {ranking.name} until the instructor "
                          "computes the scores of submissions recorded before they were stored",
                          {"retry": "after 'brats-kit server rescore COURSE --backfill'"}) from None
        rows = []
        for r in ranked:
            e = r.submission
            row = {"team": r.team, RANKING.name: score_of(e, phase), "f1": e.scores[phase]["f1"],
                   "submitted_at": e.time_text, "selected_by": r.reason, "submission": ids[id(e)], "rank": r.rank}
            row[ranking.name] = score_of(e, phase, ranking)
            if revealed:
                row.update(public_dice=score_of(e, "public"), public_f1=e.scores["public"]["f1"],
                           public_rank=r.public_rank, move=r.move)
                row["public_" + ranking.name] = score_of(e, "public", ranking)
            rows.append(row)
        return {"phase": phase, "revealed": revealed, "teams": n_teams, "ranked": len(rows), "rows": rows,
                "rule": rule(ranking), "ranking": ranking.name, "track": track}

    def track_truth(self, track: str = FILE):
        """The truth ``track`` is ranked on: the test truth, or the code track's hidden slices (loaded once)."""
        if check_track(track) == FILE:
            return self.truth
        return board_truth(hidden_truth_of(self.config), CODE)

    def early_reveal(self, now: Optional[datetime] = None) -> Optional[Refusal]:
        """The refusal of a reveal before the deadline (None once it has passed, or without a deadline)."""
        deadline = self.config.deadline_at
        if deadline is None or (now or self.now()) >= deadline:
            return None
        when = self.local(deadline)
        return Refusal(409, "before_deadline", f"the deadline ({when}) has not passed: revealing now closes the "
                       "competition early for every team", {"deadline": iso(deadline),
                                                             "hint": "reveal after the deadline, or say so "
                                                                     "explicitly: server reveal --before-deadline"})

    def reveal(self, *, before_deadline: bool = False) -> dict:
        """Reveal the private board and close submissions; before the deadline only when ``before_deadline``."""
        with write_transaction(self.course.sessions) as s:
            if is_revealed(s):
                raise Refusal(409, "already_revealed", "the results are already revealed")
            now = self.now()
            early = self.early_reveal(now)
            if early is not None and not before_deadline:
                raise early
            set_meta(s, "revealed", REVEALED)
            audit.append(s, now, audit.REVEAL, None, {})
        return self.leaderboard()

    # -- the instructor ------------------------------------------------------------------------
    def rotate_token(self, team: str) -> str:
        """A new token for ``team`` (the old one stops working, its sessions end); ``private/tokens.csv`` is rewritten.

        ``team`` :data:`ADMIN` rotates the instructor's token (``private/admin_token.txt``).
        """
        token = new_token()
        with write_transaction(self.course.sessions) as s:
            row = s.scalars(select(Team).where(Team.name == team)).first()
            if team == ADMIN:
                if row is not None:
                    raise KitError("a team is named 'admin': 'admin' names the instructor here",
                                   code="ambiguous_team", hint="rename the team in the roster")
                set_meta(s, "admin_token_hash", token_hash(token))
                signins.end_sessions(s, admin=True)
                audit.append(s, self.now(), audit.TOKEN_ROTATED, None, {"admin": True})
                write_private(self.course.admin_token_file, token + "\n")
                return token
            if row is None:
                raise KitError(f"no team named {team!r}", code="unknown_team",
                               hint=f"'{ADMIN}' rotates the instructor's token")
            row.token_hash = token_hash(token)
            signins.end_sessions(s, team_id=row.id)
            audit.append(s, self.now(), audit.TOKEN_ROTATED, team, {})
            tokens = read_tokens(self.course.tokens_csv) if self.course.tokens_csv.is_file() else {}
            tokens[team] = token
            write_private(self.course.tokens_csv, tokens_text(tokens))
        return token

    def status(self) -> dict:
        """Teams, submissions, today's quota use and last activity (the instructor's view).

        Four queries whatever the number of teams: the teams, every team's uploads per
        status (all time, today, last), whether the results are revealed, and the refused
        uploads (``over_quota``, ``refused_late``, ``today_refused`` per team; see :meth:`refused`).
        """
        now = self.now()
        day, resets_at = self.day(now)
        with self.course.sessions() as s:
            teams = s.execute(select(Team.id, Team.name).order_by(Team.name)).all()
            per_status = s.execute(select(Submission.team_id, Submission.status, func.count(),
                                          func.sum(case((Submission.day == day, 1), else_=0)),
                                          func.max(Submission.submitted_at))
                                   .group_by(Submission.team_id, Submission.status)).all()
            revealed = is_revealed(s)
            refusals = refused_uploads(s)
        refused: dict = {}
        for team, refusal_day, kind in refusals:
            counts = refused.setdefault(team, Counter())
            counts[kind] += 1
            counts["today_refused"] += refusal_day == day
        total = {t.id: no_uploads() for t in teams}
        today = {t.id: no_uploads() for t in teams}
        last: dict = {}
        for team_id, kind, n, n_today, latest in per_status:
            total[team_id][kind] = n
            today[team_id][kind] = int(n_today or 0)
            last[team_id] = max(latest, last.get(team_id, latest))
        rows = [{"team": t.name, "scored": total[t.id]["scored"], "invalid": total[t.id]["invalid"],
                 "today_scored": today[t.id]["scored"], "today_invalid": today[t.id]["invalid"],
                 "over_quota": refused.get(t.name, {}).get("over_quota", 0),
                 "refused_late": refused.get(t.name, {}).get("late", 0),
                 "today_refused": refused.get(t.name, {}).get("today_refused", 0),
                 "last_activity": iso(last.get(t.id))} for t in teams]
        return {"now": iso(now), "quota_day": f"{day} ({self.config.timezone})", "quota_resets_at": iso(resets_at),
                "timezone": self.config.timezone, "handed_in": sum(1 for r in rows if r["scored"]),
                "per_day": self.config.per_day, "max_invalid_per_day": self.config.max_invalid_per_day,
                "deadline": iso(self.config.deadline_at), "revealed": revealed, "teams": rows,
                "submissions": sum(r["scored"] + r["invalid"] for r in rows),
                "quarantined": sorted(self.course.store.quarantined())}

    def dashboard(self) -> dict:
        """The instructor's dashboard: :meth:`status`, the roster, uploads per day, error codes, the audit chain."""
        status = self.status()
        with self.course.sessions() as s:
            roster = s.execute(select(Team.name, Member.student_id, Member.name, Member.email)
                               .join(Member, Member.team_id == Team.id).order_by(Team.name, Member.student_id)).all()
            per_day = s.execute(select(Submission.day, Submission.status, func.count())
                                .group_by(Submission.day, Submission.status).order_by(Submission.day)).all()
            invalid = list(s.scalars(select(Submission.errors).where(Submission.status == "invalid")))
            # The chain's breaks (database only: cheap enough for every dashboard load).
            problems = audit.verify_chain(s)
            events = s.scalar(select(func.count()).select_from(AuditEvent))
            refusals = refused_uploads(s)
        days: dict = {}
        for day, kind, n in per_day:
            days.setdefault(day, {**no_uploads(), "refused": 0})[kind] = n
        by_team_day: dict = {}
        for team, day, kind in refusals:
            days.setdefault(day, {**no_uploads(), "refused": 0})["refused"] += 1
            by_team_day.setdefault((day, team), Counter())[kind] += 1
        days = dict(sorted(days.items()))
        codes = Counter()
        examples = {}
        for errors in invalid:
            for code in {e.get("code") for e in errors or []}:
                codes[code] += 1
            for e in errors or []:
                examples.setdefault(e.get("code"), e)
        members: dict = {}
        for team, sid, name, email in roster:
            members.setdefault(team, []).append({"student_id": sid, "name": name, "email": email})
        refused = [{"day": day, "team": team, "over_quota": n["over_quota"], "late": n["late"]}
                   for (day, team), n in sorted(by_team_day.items())]
        return {"status": status, "members": members, "days": days, "refused": refused,
                "codes": [(code, n, examples.get(code, {})) for code, n in codes.most_common()],
                "chain": {"ok": not problems, "problems": problems, "events": events}}

