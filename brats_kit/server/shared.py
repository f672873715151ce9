"""What the replicas of one course share: PostgreSQL advisory locks and the failed-authentication table.

``brats-kit server run COURSE --replica`` lets several processes, on one machine or
several, serve one course: they share the PostgreSQL database and the course
folder (its store on a shared file system), never memory. What a single server
keeps in its own memory is kept here instead:

- a **session-level advisory lock** (:class:`SessionLock`, ``pg_try_advisory_lock``)
  held on a connection of its own: the live board's builder (one per course) and a
  team's in-flight slots (:class:`~.quotas.SharedInFlight`). PostgreSQL releases it
  when the holder's connection ends, so a replica killed with SIGKILL frees
  what it held at once, with no lease to wait for; a code job's runner holds one too
  (:mod:`.jobs`);
- the failed authentications per address (:class:`SharedFailureLimiter`), rows of an
  UNLOGGED table (``brats_auth_failure``: state of the moment, not the course's record:
  neither in the schema version nor in the audit) timed by the database's clock.

A single server (without ``--replica``) keeps the in-memory versions: same interface,
no round trip.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Optional

from sqlalchemy import text
from sqlalchemy.engine import Engine

from data_spec.errors import KitError

log = logging.getLogger("brats_kit.server.shared")

#: The first key of the kit's advisory locks (two-key form ``(KIND, object)``): one kind per purpose.
BOARD_BUILDER, TEAM_SLOT, SETUP, CODE_JOB = 0x42524B01, 0x42524B02, 0x42524B03, 0x42524B04
#: The application name of the kit's lock connections (followed by the process id).
APPLICATION = "brats-kit replica"
#: A team's in-flight slots are keys ``team_id * SLOTS_PER_TEAM + i`` (``--max-inflight-per-team`` is at most 64).
SLOTS_PER_TEAM = 64


def require_postgresql(engine: Engine, where=None) -> None:
    """Refuse a replica on anything but PostgreSQL (SQLite is one machine's file, and has no advisory locks).

    Raises
    ------
    KitError
        ``replica_needs_postgresql``.
    """
    if engine.dialect.name != "postgresql":
        raise KitError(f"server run --replica needs a PostgreSQL database, not {engine.dialect.name}",
                       code="replica_needs_postgresql", path=where,
                       expected="a course made with --db postgresql+psycopg://...",
                       hint="make the course with 'brats-kit server init ... --db postgresql+psycopg://...', "
                            "or run one server without --replica")


class SessionLock:
    """A PostgreSQL session-level advisory lock ``(kind, key)``, held on a connection of its own until released.

    :meth:`try_acquire` never waits. While held, :meth:`try_acquire` checks the connection
    is still alive (a restarted database drops it, and the lock with it) and says so.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        PostgreSQL.
    kind, key : int
        The lock's two 32-bit keys.
    """

    def __init__(self, engine: Engine, kind: int, key: int):
        self.engine, self.kind, self.key = engine, int(kind), int(key)
        self._conn = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if free (True), or confirm it is still held; False when another session holds it."""
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except Exception:  # noqa: BLE001 - the connection (and the lock with it) is gone
                log.warning("lost the advisory lock (%x, %d): its connection broke", self.kind, self.key)
                self._drop(invalidate=True)
        conn = self.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(CAST(:k AS integer), CAST(:o AS integer))"), {"k": self.kind, "o": self.key}).scalar()
            conn.commit()  # the lock is the session's, not the transaction's: no transaction stays open
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        """Let the lock go (a no-op when not held)."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(CAST(:k AS integer), CAST(:o AS integer))"), {"k": self.kind, "o": self.key})
            self._conn.commit()
            self._drop(invalidate=False)
        except Exception:  # noqa: BLE001 - a broken connection holds nothing any more
            self._drop(invalidate=True)

    def _drop(self, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if invalidate:
            conn.invalidate()  # never back to the pool: whatever it held ends with it
        conn.close()


def held_slots(engine: Engine, team_id: int) -> int:
    """Advisory in-flight slots of ``team_id`` held now, by every replica."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = :k AND objid::bigint >= :lo AND objid::bigint < :hi"),
            {"k": TEAM_SLOT, "lo": team_id * SLOTS_PER_TEAM, "hi": (team_id + 1) * SLOTS_PER_TEAM}).scalar())


def slot_key(team_id: int, i: int) -> int:
    """The second key of a team's ``i``-th in-flight slot."""
    return int(team_id) * SLOTS_PER_TEAM + int(i)


#: Failures of an address, kept for the limiter's window (UNLOGGED: a crash of the database may empty it).
_FAILURES_DDL = (
    "CREATE UNLOGGED TABLE IF NOT EXISTS brats_auth_failure "
    "(address VARCHAR(200) NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
    "CREATE INDEX IF NOT EXISTS ix_brats_auth_failure ON brats_auth_failure (address, at)",
)
_RECENT = text("SELECT count(*) AS n, "
               "EXTRACT(EPOCH FROM min(at) + make_interval(secs => :window) - clock_timestamp()) AS wait "
               "FROM brats_auth_failure WHERE address = :a AND at > clock_timestamp() - make_interval(secs => :window)")
#: Every this many failures recorded by a process, the rows of every address older than the window go.
_SWEEP_EVERY = 1000


class SharedFailureLimiter:
    """:class:`~.tokens.FailureLimiter` for replicas: at most ``limit`` failures per address within ``window``
    seconds, counted over every replica (rows in the database, its clock; consulted on failures only).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        PostgreSQL; the table is created if missing.
    limit : int
    window : float
        Seconds.
    """

    def __init__(self, engine: Engine, limit: int = 20, window: float = 60.0):
        self.engine, self.limit, self.window = engine, int(limit), float(window)
        self._recorded = 0
        self._lock = threading.Lock()
        with engine.begin() as conn:
            # Replicas starting together: one creates the table, the others find it (DDL is not race-free).
            conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:k AS integer), 0)"), {"k": SETUP})
            for ddl in _FAILURES_DDL:
                conn.exec_driver_sql(ddl)

    def retry_after(self, address: str) -> float:
        """Seconds until this address may try again (0 when it may now)."""
        with self.engine.connect() as conn:
            row = conn.execute(_RECENT, {"a": address[:200], "window": self.window}).one()
        if row.n < self.limit:
            return 0.0
        return max(0.0, float(row.wait or 0.0))

    def failed(self, address: str) -> None:
        with self._lock:
            self._recorded += 1
            sweep = self._recorded % _SWEEP_EVERY == 0
        with self.engine.begin() as conn:
            conn.execute(text("INSERT INTO brats_auth_failure (address) VALUES (:a)"), {"a": address[:200]})
            old = "at <= clock_timestamp() - make_interval(secs => :window)"
            if sweep:
                conn.execute(text(f"DELETE FROM brats_auth_failure WHERE {old}"), {"window": self.window})
            else:
                conn.execute(text(f"DELETE FROM brats_auth_failure WHERE address = :a AND {old}"),
                             {"a": address[:200], "window": self.window})


def board_lock(engine: Engine) -> SessionLock:
    """The live board's builder lock (on an engine of its own): the replica holding it builds, the others
    serve what it published. Release it, then dispose of ``lock.engine``."""
    return SessionLock(lock_engine(engine, pool_size=1, max_overflow=1), BOARD_BUILDER, 0)


def application_name() -> str:
    """How this process's lock connections are named in PostgreSQL (``pg_stat_activity``): which replica holds what."""
    return f"{APPLICATION} {os.getpid()}"


def lock_engine(engine: Engine, pool_size: int = 8, max_overflow: int = 120) -> Engine:
    """An engine for held locks, beside the course's: a held lock keeps its connection for an upload's whole
    time, which must not starve the queries' pool. Its connections carry :func:`application_name`."""
    from sqlalchemy import create_engine

    return create_engine(engine.url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                         connect_args={"application_name": application_name()})


def holders(engine: Engine, kind: int) -> list:
    """The processes (their pids, from :func:`application_name`) holding a lock of ``kind`` now."""
    with engine.connect() as conn:
        names = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :k"), {"k": kind}).scalars()
        return sorted(int(n.split()[-1]) for n in names if n.startswith(APPLICATION + " "))

