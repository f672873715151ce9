"""What the replicas of one course share: PostgreSQL advisory locks and the failed-authentication table.

``brats-kit server run COURSE --replica`` lets several processes, on one machine or
several, serve one course: they share the PostgreSQL database and the course
folder (its store on a shared file system), never memory. What a single server
keeps in its own memory is kept here instead:

- **session-level advisory locks** (``pg_try_advisory_lock``), all of a process's
  on one connection of its own (:class:`LockSession`): the live board's builder
  (one per course), a team's in-flight slots (:class:`~.quotas.SharedInFlight`) and
  the code jobs a replica runs (:mod:`.jobs`). PostgreSQL releases them when the
  holder's connection ends, so a replica killed with SIGKILL frees what it held
  at once, with no lease to wait for;
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
from sqlalchemy.pool import NullPool

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

    Examples
    --------
    >>> from sqlalchemy import create_engine
    >>> try:
    ...     require_postgresql(create_engine("sqlite://"))
    ... except KitError as exc:
    ...     print(exc.code)
    replica_needs_postgresql
    """
    if engine.dialect.name != "postgresql":
        raise KitError(f"server run --replica needs a PostgreSQL database, not {engine.dialect.name}",
                       code="replica_needs_postgresql", path=where,
                       expected="a course made with --db postgresql+psycopg://...",
                       hint="make the course with 'brats-kit server init ... --db postgresql+psycopg://...', "
                            "or run one server without --replica")


class LockSession:
    """The advisory locks one process holds, all on one PostgreSQL connection of its own (session level).

    One connection per replica, whatever it holds (the board's builder lock, its teams'
    in-flight slots, its running code jobs): a class of thousands costs no connection
    per upload. Calls take turns on the connection (each a few hundred microseconds).
    A key this process already holds is refused to its other tasks (PostgreSQL's own
    locks are re-entrant within a session). If the connection breaks (the database
    restarted), every lock it held is gone: it is said in the log, and taken again by
    whoever asks next.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The course's (PostgreSQL); the session connects on its own, named :func:`application_name`.
    """

    def __init__(self, engine: Engine):
        from sqlalchemy import create_engine

        self.engine = create_engine(engine.url, poolclass=NullPool,
                                    connect_args={"application_name": application_name()})
        self._conn = None
        self._held: set = set()
        self._mutex = threading.Lock()

    def try_acquire(self, kind: int, key: int) -> bool:
        """Take ``(kind, key)`` if no session holds it, this process's other tasks included; never waits."""
        with self._mutex:
            if (kind, key) in self._held:
                return False
            if self._run("SELECT pg_try_advisory_lock(CAST(:k AS integer), CAST(:o AS integer))", kind, key):
                self._held.add((kind, key))
                return True
            return False

    def release(self, kind: int, key: int) -> None:
        """Let ``(kind, key)`` go (a no-op when not held, or lost with a broken connection)."""
        with self._mutex:
            if (kind, key) in self._held:
                self._held.discard((kind, key))
                self._run("SELECT pg_advisory_unlock(CAST(:k AS integer), CAST(:o AS integer))", kind, key)

    def holds(self, kind: int, key: int) -> bool:
        """Whether this process holds ``(kind, key)`` now (the connection is checked: it may have broken)."""
        with self._mutex:
            if (kind, key) not in self._held:
                return False
            try:
                self._run("SELECT 1")
            except Exception:  # noqa: BLE001 - _run forgot every lock
                return False
            return (kind, key) in self._held

    def close(self) -> None:
        """End the session: PostgreSQL releases everything it held."""
        with self._mutex:
            self._reset(invalidate=False)
        self.engine.dispose()

    def _run(self, sql: str, kind: int = 0, key: int = 0):
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            return self._conn.execute(text(sql), {"k": int(kind), "o": int(key)}).scalar()
        except Exception:
            if self._held:
                log.warning("the advisory locks' connection broke: %d lock(s) lost", len(self._held))
            self._reset(invalidate=True)
            raise

    def _reset(self, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            if invalidate:
                conn.invalidate()
            conn.close()


class SessionLock:
    """One advisory lock ``(kind, key)`` of a :class:`LockSession`, as a handle: ``try_acquire``, ``held``, ``release``.

    :meth:`try_acquire` never waits; while held, it checks the session is still alive
    (a restarted database drops it, and the lock with it) and takes the lock again if free.
    """

    def __init__(self, session: LockSession, kind: int, key: int):
        self.session, self.kind, self.key = session, int(kind), int(key)
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """Take the lock if free (True), or confirm it is still held; False when another session holds it."""
        if self._held and self.session.holds(self.kind, self.key):
            return True
        if self._held:
            log.warning("lost the advisory lock (%x, %d) with its connection", self.kind, self.key)
        self._held = self.session.try_acquire(self.kind, self.key)
        return self._held

    def release(self) -> None:
        """Let the lock go (a no-op when not held)."""
        if self._held:
            self._held = False
            try:
                self.session.release(self.kind, self.key)
            except Exception:  # noqa: BLE001 - a broken connection holds nothing any more
                pass


def held_slots(engine: Engine, team_id: int) -> int:
    """Advisory in-flight slots of ``team_id`` held now, by every replica."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = :k AND objid::bigint >= :lo AND objid::bigint < :hi"),
            {"k": TEAM_SLOT, "lo": team_id * SLOTS_PER_TEAM, "hi": (team_id + 1) * SLOTS_PER_TEAM}).scalar())


def slot_key(team_id: int, i: int) -> int:
    """The second key of a team's ``i``-th in-flight slot.

    >>> slot_key(7, 0), slot_key(7, 1), slot_key(8, 0)
    (448, 449, 512)
    """
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


def board_lock(session: LockSession) -> SessionLock:
    """The live board's builder lock: the replica holding it builds, the others serve what it published."""
    return SessionLock(session, BOARD_BUILDER, 0)


def application_name() -> str:
    """How this process's lock session is named in PostgreSQL (``pg_stat_activity``): which replica holds what."""
    return f"{APPLICATION} {os.getpid()}"


def holders(engine: Engine, kind: int) -> list:
    """The processes (their pids, from :func:`application_name`) holding a lock of ``kind`` now."""
    with engine.connect() as conn:
        names = conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :k"), {"k": kind}).scalars()
        return sorted(int(n.split()[-1]) for n in names if n.startswith(APPLICATION + " "))
