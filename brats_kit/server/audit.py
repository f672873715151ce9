"""The hash-chained audit log: every event appended with the hash of the one before.

``hash = sha256(prev_hash || canonical JSON of {seq, at, kind, team, payload})``.
The head (last sequence number and hash) is also kept in ``meta``, so deleting
the last entries is detected as well as editing or deleting one in the middle.

A submission's event (version 2, ``"v": 2`` in its payload) also carries the
:func:`grade_digest` of every column its grade depends on (status, format, errors,
the scores of both phases, the per-case counts and mask scores), so editing a score in the database
is found by ``server audit``; events of version 1 (courses made before) hold the
file's hash, size and status only and are checked for those.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from .db import GENESIS, AuditEvent, Meta, get_meta

#: Event kinds.
ACCEPTED, INVALID, FINALS, TOKEN_ROTATED, REVEAL, COURSE_CREATED, SESSIONS_ENDED = (
    "submission_accepted", "submission_invalid", "finals_chosen", "token_rotated", "reveal", "course_created",
    "sessions_ended",
)
#: An upload the course refused (over quota, after the deadline or the reveal): counted on the dashboard.
REFUSED = "upload_refused"
#: ``server rescore``: a submission's new grade (payload as a submission's, plus the truth and what the
#: receipt said before), and the truth it was scored against replaced.
RESCORED, TRUTH_REPLACED = "submission_rescored", "truth_replaced"


#: The version of a submission event's payload; 2 adds the grade digest.
SUBMISSION_EVENT_VERSION = 2
#: The columns of a submission that its grade depends on, covered by :func:`grade_digest`
#: (its team, time, sha256, size and final choice are in the event itself or in the finals events).
GRADED_COLUMNS = ("status", "format", "errors", "public", "private", "counts", "mask_scores")
#: Graded columns a digest leaves out while they are empty: rows recorded before they existed keep their digest.
_LATER_COLUMNS = ("mask_scores",)


def grade_digest(columns: dict) -> str:
    """The sha256 of a submission's graded columns (:data:`GRADED_COLUMNS`), in canonical JSON.

    Examples
    --------
    >>> row = {"status": "scored", "format": "npy", "errors": [], "public": {"dice": 0.8},
    ...        "private": {"dice": 0.7}, "counts": None}
    >>> grade_digest(row) == grade_digest(dict(row, day="ignored"))
    True
    >>> grade_digest(row) == grade_digest(dict(row, private={"dice": 0.9}))
    False
    >>> masked = dict(row, mask_scores={"nsd": [1.0]})
    >>> grade_digest(row) == grade_digest(dict(row, mask_scores=None)), grade_digest(row) == grade_digest(masked)
    (True, False)
    """
    graded = {k: columns.get(k) for k in GRADED_COLUMNS
              if k not in _LATER_COLUMNS or columns.get(k) is not None}
    body = json.dumps(graded, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def submission_payload(sub_id: int, sha256: str, size: int, columns: dict) -> dict:
    """The payload of a submission's event: what :mod:`..verify` checks the row against."""
    return {"id": sub_id, "sha256": sha256, "bytes": size, "status": columns["status"],
            "v": SUBMISSION_EVENT_VERSION, "grade": grade_digest(columns)}


def entry_hash(prev_hash: str, seq: int, at: datetime, kind: str, team, payload: dict) -> str:
    body = json.dumps({"seq": seq, "at": at.isoformat(), "kind": kind, "team": team, "payload": payload},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + body).encode("ascii")).hexdigest()


_HEAD = select(Meta.value).where(Meta.key == "audit_head")


class Chain:
    """Events appended in one transaction: the head is read once, the rows and the new head written at :meth:`close`.

    Use inside :func:`~.db.write_transaction` or :func:`~.db.write_connection` (which hold
    the course's write lock, so the head cannot move meanwhile)::

        chain = Chain(s)
        chain.append(now, ACCEPTED, team, payload)
        chain.close()
    """

    def __init__(self, s, head: Optional[str] = None):
        self.s = s  # a Session or a Core Connection: only Core statements are executed
        # ``head``: the ``audit_head`` value already read under the write lock (one query fewer).
        seq_text, self.head = (head or s.execute(_HEAD).scalar_one()).split()
        self.seq = int(seq_text)
        self.rows: list = []

    def append(self, at: datetime, kind: str, team, payload: dict) -> dict:
        at = at.astimezone(timezone.utc)  # the hashed text must read back the same from any backend
        self.seq += 1
        row = {"seq": self.seq, "at": at, "kind": kind, "team": team, "payload": payload, "prev_hash": self.head,
               "hash": entry_hash(self.head, self.seq, at, kind, team, payload)}
        self.head = row["hash"]
        self.rows.append(row)
        return row

    def close(self) -> None:
        if self.rows:
            self.s.execute(insert(AuditEvent.__table__), self.rows)
            self.s.execute(update(Meta.__table__).where(Meta.key == "audit_head")
                           .values(value=f"{self.seq} {self.head}"))
            self.rows = []


def append(s: Session, at: datetime, kind: str, team, payload: dict) -> dict:
    """Append one event; call inside :func:`~.db.write_transaction` (the head is read then moved)."""
    chain = Chain(s)
    row = chain.append(at, kind, team, payload)
    chain.close()
    return row


def verify_chain(s: Session) -> list:
    """Every break in the chain, as sentences (empty when intact)."""
    problems = []
    prev, expected_seq = GENESIS, 1
    for ev in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
        if ev.seq != expected_seq:
            problems.append(f"audit entries {expected_seq}..{ev.seq - 1} are missing")
        if ev.prev_hash != prev:
            problems.append(f"audit entry {ev.seq}: does not follow the entry before it (a row was edited or deleted)")
        if entry_hash(ev.prev_hash, ev.seq, ev.at, ev.kind, ev.team, ev.payload) != ev.hash:
            problems.append(f"audit entry {ev.seq} ({ev.kind}): its content does not match its hash (edited)")
        prev, expected_seq = ev.hash, ev.seq + 1
    head_seq, head_hash = get_meta(s, "audit_head").split()
    if int(head_seq) != expected_seq - 1 or head_hash != prev:
        problems.append(f"the audit log ends at entry {expected_seq - 1} but its head says {head_seq}: "
                        "entries were deleted or the head was edited")
    return problems
