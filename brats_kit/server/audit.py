"""The hash-chained audit log: every event appended with the hash of the one before.

``hash = sha256(prev_hash || canonical JSON of {seq, at, kind, team, payload})``.
The head (last sequence number and hash) is also kept in ``meta``, so deleting
the last entries is detected as well as editing or deleting one in the middle.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import GENESIS, AuditEvent, get_meta, set_meta

#: Event kinds.
ACCEPTED, INVALID, FINALS, TOKEN_ROTATED, REVEAL, COURSE_CREATED = (
    "submission_accepted", "submission_invalid", "finals_chosen", "token_rotated", "reveal", "course_created",
)


def entry_hash(prev_hash: str, seq: int, at: datetime, kind: str, team, payload: dict) -> str:
    body = json.dumps({"seq": seq, "at": at.isoformat(), "kind": kind, "team": team, "payload": payload},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + body).encode("ascii")).hexdigest()


def append(s: Session, at: datetime, kind: str, team, payload: dict) -> AuditEvent:
    """Append one event; call inside :func:`~.db.write_transaction` (the head is read then moved)."""
    at = at.astimezone(timezone.utc)  # the hashed text must read back the same from any backend
    seq_text, prev = get_meta(s, "audit_head").split()
    seq = int(seq_text) + 1
    event = AuditEvent(seq=seq, at=at, kind=kind, team=team, payload=payload, prev_hash=prev,
                       hash=entry_hash(prev, seq, at, kind, team, payload))
    s.add(event)
    set_meta(s, "audit_head", f"{seq} {event.hash}")
    return event


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
