"""Sign-in sessions kept server-side: opened at sign-in, revoked by sign-out, a token rotation or "end all".

The cookie carries a random session id; the database keeps only its sha256
(:class:`~.db.SignInSession`), so a copied cookie stops working the moment its row
is deleted, and reading the database opens no session.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Optional

from sqlalchemy import delete, select

from .db import SignInSession, write_transaction
from .refusal import Principal


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(sessions, who: Principal, now: datetime) -> str:
    """A new session of ``who``: its id (for the cookie; only its hash is stored)."""
    sid = secrets.token_urlsafe(32)
    with write_transaction(sessions) as s:
        s.add(SignInSession(id=_key(sid), team_id=who.team_id, admin=who.admin, created_at=now))
    return sid


def session_alive(engine, who: Principal, sid: Optional[str]) -> bool:
    """Whether the session ``sid`` of ``who`` is still open (never revoked)."""
    if not isinstance(sid, str) or not sid:
        return False
    with engine.connect() as conn:
        row = conn.execute(select(SignInSession.team_id, SignInSession.admin)
                           .where(SignInSession.id == _key(sid))).first()
    return row is not None and bool(row.admin) == who.admin and row.team_id == who.team_id


def end_session(sessions, sid: Optional[str]) -> None:
    """Revoke one session (sign-out); an unknown id is a no-op."""
    if isinstance(sid, str) and sid:
        with write_transaction(sessions) as s:
            s.execute(delete(SignInSession).where(SignInSession.id == _key(sid)))


def end_sessions(s, *, team_id: Optional[int] = None, admin: bool = False, everyone: bool = False) -> int:
    """Revoke every session of a team, of the instructor, or of everyone, in the caller's transaction; how many."""
    stmt = delete(SignInSession)
    if not everyone:
        stmt = stmt.where(SignInSession.admin.is_(True)) if admin else stmt.where(SignInSession.team_id == team_id)
    return s.execute(stmt).rowcount or 0
