"""Who is asking: bearer tokens checked against their stored hashes, with failures limited per address.

A valid token always authenticates: the token is checked first and the limiter
only decides how a *failure* is answered (401, or 429 once the address has failed
too often). A guesser is slowed; a class sharing its address (a campus NAT, a
reverse proxy without ``--forwarded-allow-ips``) is not locked out by it. Tokens
carry 256 random bits, so answering a right guess is no risk.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from .db import Meta, Team, revealed_flag
from .quotas import TEAM_STANDING, Quotas, used_of
from .refusal import Principal, Refusal
from .tokens import FailureLimiter, same_hash, token_hash


class Authenticator:
    """Bearer tokens of one course.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    quotas : Quotas
        An upload's authentication also reads the team's standing (one query, see :meth:`authenticate_upload`).
    limiter : FailureLimiter, optional
        Failed authentications per client address (consulted on failures only).
    """

    def __init__(self, engine, quotas: Quotas, limiter: Optional[FailureLimiter] = None):
        self.engine = engine
        self.quotas = quotas
        self.limiter = limiter or FailureLimiter()

    def _throttle(self, address: str) -> None:
        wait = self.limiter.retry_after(address)
        if wait > 0:
            raise Refusal(429, "too_many_failures", "too many failed authentications from this address",
                          {"retry_after_s": int(wait) + 1}, {"Retry-After": str(int(wait) + 1)})

    def _unauthorized(self, address: str, admin: bool = False) -> Refusal:
        self._throttle(address)
        self.limiter.failed(address)
        return Refusal(401, "unauthorized", "missing or invalid admin token" if admin else "missing or invalid token",
                       headers={"WWW-Authenticate": "Bearer"})

    def authenticate(self, token: Optional[str], address: str, *, admin: bool = False) -> Principal:
        """The team (or the instructor) a bearer token belongs to; 401 otherwise, 429 after too many failures."""
        if token:
            digest = token_hash(token)
            with self.engine.connect() as conn:
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

    def authenticate_upload(self, token: Optional[str], address: str) -> Principal:
        """:meth:`authenticate` and the quotas' early refusal, in one query (one trip to a worker thread per upload)."""
        now = self.quotas.now()
        day, resets_at = self.quotas.day(now)
        if token:
            digest = token_hash(token)
            with self.engine.connect() as conn:
                row = conn.execute(TEAM_STANDING, {"digest": digest, "day": day}).first()
            if row is not None and same_hash(row.token_hash, digest):
                self.quotas.refuse_early(now, resets_at, revealed_flag(row.revealed), used_of(row))
                return Principal(row.id, row.name)
        raise self._unauthorized(address)

    def stored_hash(self, who: Principal) -> Optional[str]:
        """The token hash ``who`` signed in with, as stored now (None once the team is gone)."""
        with self.engine.connect() as conn:
            if who.admin:
                return conn.execute(select(Meta.value).where(Meta.key == "admin_token_hash")).scalar()
            return conn.execute(select(Team.token_hash).where(Team.id == who.team_id)).scalar()
