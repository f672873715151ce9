"""Team and admin tokens: random, shown once in the private folder, stored only as hashes.

A token is 256 random bits (``secrets.token_urlsafe(32)``); what the database
keeps is its sha256, a one-way function that needs no salt or slow hash for a
value that cannot be guessed. Comparisons use :func:`hmac.compare_digest`.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


class FailureLimiter:
    """At most ``limit`` failed authentications per client address within ``window`` seconds.

    Counted on a monotonic clock (a simulated course clock must not unlock it).
    """

    def __init__(self, limit: int = 20, window: float = 60.0, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque:
        q = self._failures.setdefault(address, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, address: str) -> float:
        """Seconds until this address may try again (0 when it may now)."""
        with self._lock:
            now = self.clock()
            q = self._recent(address, now)
            if len(q) < self.limit:
                if not q:
                    self._failures.pop(address, None)
                return 0.0
            return max(0.0, q[0] + self.window - now)

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(address, now).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a flood of addresses
                self._failures.clear()
