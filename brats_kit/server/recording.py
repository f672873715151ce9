"""Recording an upload: its quota checked and its rows written in a group commit, and the receipt it gets."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from sqlalchemy import insert, select

from . import audit
from .clock import iso
from .db import Submission, keeps_file, revealed_flag, write_connection
from .grading import superseded_view, verdict_fields
from .quotas import Quotas
from .refusal import Principal, Refusal


@dataclass(eq=False)
class _Pending:
    """An upload waiting to be recorded (see :meth:`Recorder.record`)."""

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


class Recorder:
    """Writes uploads into a course's database and store.

    Parameters
    ----------
    course : Course
    quotas : Quotas
    """

    def __init__(self, course, quotas: Quotas):
        self.course = course
        self.config = course.config
        self.quotas = quotas
        # Group commit (see record): uploads waiting to be recorded, and whether a thread is recording.
        self._writer = threading.Condition()
        self._waiting: list = []
        self._writing = False

    def receipt(self, sub: Submission, team: str, *, revealed: bool, used: Optional[dict] = None,
                resets_at=None) -> dict:
        """What the team sees of one of its submissions (public scores only before the reveal)."""
        out = {
            "id": sub.id, "team": team, "sha256": sub.sha256, "bytes": sub.bytes,
            "submitted_at": iso(sub.submitted_at), "status": sub.status, "format": sub.format,
            "errors": sub.errors, "public": sub.public, "final": sub.final,
            "deadline": iso(self.config.deadline_at),
        }
        if used is not None:
            out.update(self.quotas.remaining(used))
            out["quota_resets_at"] = iso(resets_at)
            out["quota_day"] = f"{sub.day} ({self.config.timezone})"
        if revealed:
            out["private"] = sub.private
        if sub.superseded is not None:  # a rescore after a truth fix: the grade this receipt first gave
            out["superseded"] = superseded_view(sub.superseded, revealed=revealed)
        return out

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
                    item.now = self.quotas.now()
                    item.day, item.resets_at = self.quotas.day(item.now)
                used = self.quotas.used_by(conn, {(item.who.team_id, item.day) for item in batch})
                stale = self._stale_truth(meta.get("truth_sha256"))
                for item in batch:
                    item.error = stale or self._insert(conn, chain, item, revealed_flag(meta.get("revealed")),
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

    def _stale_truth(self, recorded: Optional[str]) -> Optional[Refusal]:
        """A refusal when ``server rescore`` replaced the truth after this server loaded its own (None otherwise):
        its workers would score against the old one."""
        if recorded is None or recorded == self.course.truth_sha256:
            return None
        return Refusal(503, "truth_replaced", "the course's test truth was replaced while the server ran: "
                       "uploads wait until the instructor restarts it", {"retry": "after the restart"})

    def _insert(self, conn, chain: "audit.Chain", item: _Pending, revealed: bool, used: dict) -> Optional[Refusal]:
        """One upload's quota check and rows, inside the batch's transaction (a refusal is returned).

        ``used`` is the team's standing of the day, counting the uploads of the batch recorded before it.
        """
        kind = item.fields["status"]
        closed = self.quotas.closed(item.now, revealed)
        if closed:
            return closed
        if used[kind] >= self.quotas.cap(kind):
            return self.quotas.refusal(kind, item.resets_at)
        values = dict(team_id=item.who.team_id, sha256=item.sha256, bytes=item.size, submitted_at=item.now,
                      day=item.day, final=False, truth_sha256=self.course.truth_sha256, **item.fields)
        # A Core insert: the ORM's unit of work costs more than the rest of the upload's database work.
        sub = Submission(id=conn.execute(insert(Submission.__table__).values(values)).inserted_primary_key[0],
                         **values)
        event = audit.ACCEPTED if kind == "scored" else audit.INVALID
        chain.append(item.now, event, item.who.team, audit.submission_payload(sub.id, item.sha256, item.size,
                                                                             item.fields))
        used[kind] += 1
        item.sub, item.used = sub, dict(used)
        return None

    def _referenced(self, sha256: str) -> bool:
        with self.course.sessions() as s:  # a code job's prediction may have the same bytes: kept then
            return keeps_file(s, sha256)
