"""The course database: SQLAlchemy 2 tables, engines for SQLite (WAL) and PostgreSQL, the schema version.

Every write that must be exact under concurrency (a submission against its quota,
a final choice, a reveal, a token rotation) runs in :func:`write_transaction`,
which serialises writers: ``BEGIN IMMEDIATE`` on SQLite, a row lock on the audit
head on PostgreSQL. Scoring happens before the transaction, so the lock is held
for a few inserts only.
"""
from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from data_spec.errors import BadArgumentError, KitError

#: Bumped on every change of the tables; a database with a newer version is refused, an older one
#: upgraded in place by :func:`upgrade_schema` (version 2 added the ``session`` table and the course id,
#: version 3 the submission's ``truth_sha256`` and ``superseded`` columns, version 4 its ``mask_scores``,
#: version 5 the code job's ``prediction_sha256``).
SCHEMA_VERSION = 5
GENESIS = "0" * 64
_IMMEDIATE = "brats_kit_write_lock"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, whatever the backend keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key-value facts about the course database: ``schema_version``, ``revealed``, the audit head."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Team(Base):
    __tablename__ = "team"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Member(Base):
    """A student of the roster (private: never on a public page)."""

    __tablename__ = "member"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    student_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(400))
    email: Mapped[str] = mapped_column(String(400))


class Submission(Base):
    """One file handed in; ``public`` and ``private`` hold the scores of each phase (private: admin only)."""

    __tablename__ = "submission"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    errors: Mapped[list] = mapped_column(JSON)
    public: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    private: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    counts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: Per-case values of the course's mask score (one of hd95, lesion_dice, lesion_hd95, nsd; none for a
    #: course ranked by Dice), computed by the scoring worker at upload or by the code job: what the course
    #: ranks on. None: recorded before schema version 4 (``server rescore --backfill`` computes them).
    mask_scores: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)  # None: SQL NULL
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The sha256 of the truth file the scores were computed against (``server rescore`` moves it).
    truth_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: What the receipt said before a rescore (status, scores, the truth's sha256); None if never changed.
    superseded: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_submission_team_day", "team_id", "day", "status"),)


class CodeJob(Base):
    """A code submission's job: queued, running, then scored, invalid or failed (see :mod:`.jobs`).

    A scored or invalid job (and one failed by the student's code) becomes a ``submission``
    row (``submission_id``); a job failed for the server's own reasons never does, so it
    counts against no quota. ``log`` is the program's output: the instructor's only.
    """

    __tablename__ = "code_job"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failure: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(nullable=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), nullable=True)
    #: The stored prediction of a scored job (the store's ``.npy`` of its hidden slices): the code board
    #: is rebuilt offline from it (``server export --track code``). None before version 4 and when not scored.
    prediction_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_code_job_state", "state", "id"), Index("ix_code_job_team_day", "team_id", "day"))


class AuditEvent(Base):
    """One entry of the hash-chained log: ``hash = sha256(prev_hash + canonical JSON of the entry)``."""

    __tablename__ = "audit"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class SignInSession(Base):
    """A signed-in browser session, kept server-side so sign-out, a token rotation or "end all sessions" revoke it.

    ``id`` is the sha256 of the random session id the cookie carries (a copied database opens no session).
    """

    __tablename__ = "session"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a power cut, not only a crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # pysqlite's own transaction handling would start DEFERRED transactions; BEGIN is emitted below.
    dbapi_conn.isolation_level = None


#: A pooled PostgreSQL connection idle for longer than this is tested before use.
IDLE_PING_S = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use when it has been idle (the database may have restarted meanwhile).

    ``pool_pre_ping`` tests every checkout: a round trip per use that cost a fifth of a
    busy course's uploads per second. A connection in constant use needs no test; one
    that broke mid-burst fails its request once and the pool is renewed (SQLAlchemy's
    optimistic handling). A failed test raises ``DisconnectionError``, on which the pool
    retries with a fresh connection (the "pessimistic, custom" recipe of its documentation).
    """

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        if time.monotonic() - record.info.get("idle_since", time.monotonic()) > IDLE_PING_S:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - any failure: a fresh connection
                raise DisconnectionError(str(exc)) from exc


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``) set up for the server."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # A write transaction takes the write lock at once, so a read-then-insert (the quota) is
            # exact; readers use WAL snapshots and never wait.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

        return engine
    if url.startswith("postgresql"):
        engine = create_engine(url, pool_size=10, max_overflow=20)
        _ping_when_idle(engine)
        return engine
    raise BadArgumentError(f"unsupported database URL {url!r}",
                   expected="sqlite:///PATH or postgresql+psycopg://...")


def create_schema(engine: Engine, course_id: str) -> None:
    """Create the tables in an empty database and record the schema version and course id; refuse a non-empty one."""
    from sqlalchemy import inspect

    if inspect(engine).get_table_names():
        raise KitError("the database already holds tables", code="exists",
                       hint="give a new database (--db) or a new course folder")
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
        s.add(Meta(key="revealed", value="no"))
        s.add(Meta(key="audit_head", value=f"0 {GENESIS}"))
        s.add(Meta(key="course_id", value=course_id))


def upgrade_schema(engine: Engine) -> None:
    """Bring a database of an older kit to :data:`SCHEMA_VERSION` in place (new tables only; nothing is rewritten).

    Version 1 to 2 adds the ``session`` table; its course id is adopted by the course folder
    that opens it first (:class:`~.course.Course`). Version 2 to 3 adds the submission's
    ``truth_sha256`` and ``superseded`` columns (empty; the course folder fills the truth's). Version 3
    to 4 adds the submission's ``mask_scores`` (empty: ``server rescore --backfill`` fills them).
    Version 4 to 5 adds the code job's ``prediction_sha256`` (empty: jobs scored before kept no prediction).
    """
    with Session(engine) as s:
        version = int(get_meta(s, "schema_version", "0"))
    if version >= SCHEMA_VERSION:
        return
    Base.metadata.create_all(engine)  # creates the missing tables, leaves the others as they are
    _add_missing_columns(engine, Submission.__table__)
    _add_missing_columns(engine, CodeJob.__table__)
    with write_transaction(session_factory(engine)) as s:
        if int(get_meta(s, "schema_version", "0")) < SCHEMA_VERSION:
            set_meta(s, "schema_version", str(SCHEMA_VERSION))


def stored_files(s) -> set:
    """Every sha256 the database keeps in the store: submissions' files, code archives, code predictions."""
    return (set(s.scalars(select(Submission.sha256))) | set(s.scalars(select(CodeJob.sha256)))
            | set(s.scalars(select(CodeJob.prediction_sha256).where(CodeJob.prediction_sha256.is_not(None)))))


def kept_predictions(s) -> dict:
    """``submission id -> sha256`` of the predictions code jobs kept: a code row's file for the offline board."""
    return dict(s.execute(select(CodeJob.submission_id, CodeJob.prediction_sha256)
                          .where(CodeJob.prediction_sha256.is_not(None))).all())


def keeps_file(s, sha256: str) -> bool:
    """Whether a row refers to the stored file ``sha256`` (a refused upload's file is removed only if none does)."""
    return any(s.scalar(select(func.count()).select_from(table).where(column == sha256))
               for table, column in ((Submission, Submission.sha256), (CodeJob, CodeJob.sha256),
                                     (CodeJob, CodeJob.prediction_sha256)))


def _add_missing_columns(engine: Engine, table) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each nullable column of ``table`` the database lacks."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(engine).get_columns(table.name)}
    with engine.begin() as conn:
        for col in table.columns:
            if col.name not in have:
                kind = col.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {col.name} {kind}'))


def check_schema(engine: Engine) -> None:
    """Refuse a database without the kit's tables, or made by a newer kit."""
    with Session(engine) as s:
        try:
            row = s.get(Meta, "schema_version")
        except Exception as exc:  # noqa: BLE001 - any driver error here means "not our database"
            raise KitError(f"not a brats-kit course database ({type(exc).__name__})", code="bad_database") from None
    if row is None:
        raise KitError("the database has no schema version", code="bad_database")
    if int(row.value) > SCHEMA_VERSION:
        raise KitError(f"the database has schema version {row.value}, newer than this kit's {SCHEMA_VERSION}",
                       code="bad_database", hint="upgrade brats-kit")
    if int(row.value) < SCHEMA_VERSION:
        upgrade_schema(engine)


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


#: PostgreSQL's write lock: the rows of the audit head, which every write moves, of the reveal and of
#: the truth's sha256 (``server rescore`` moves it); read as the lock is taken, for the facts a write
#: needs (SQLite renders no FOR UPDATE).
_LOCKED_META = (select(Meta.key, Meta.value).where(Meta.key.in_(("audit_head", "revealed", "truth_sha256")))
                .with_for_update())


@contextlib.contextmanager
def write_transaction(sessions: sessionmaker):
    """A session in a transaction that holds the course's write lock until commit (see module doc)."""
    with sessions() as s, s.begin():
        if s.get_bind().dialect.name == "sqlite":
            s.connection(execution_options={_IMMEDIATE: True})
        else:
            s.execute(_LOCKED_META)
        yield s


@contextlib.contextmanager
def write_connection(engine: Engine):
    """:func:`write_transaction` as a Core connection: the same lock, without the ORM's unit of work.

    Yields ``(connection, meta)``, ``meta`` holding ``audit_head``, ``revealed`` and ``truth_sha256`` as read
    under the lock (in the statement that takes it, on PostgreSQL). For the upload's hot
    path (:meth:`~.service.CourseService.record`), where the ORM's per-statement overhead
    and each round trip to the database count.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            yield conn, dict(conn.execute(_LOCKED_META).all())


def get_meta(s: Session, key: str, default=None):
    row = s.get(Meta, key)
    return default if row is None else row.value


#: The ``revealed`` fact's value once the private board is out (``"no"`` before).
REVEALED = "yes"


def revealed_flag(value: Optional[str]) -> bool:
    """Whether a stored ``revealed`` value (a row's, or ``write_connection``'s ``meta``) says revealed."""
    return value == REVEALED


def is_revealed(s: Session) -> bool:
    """Whether the instructor has revealed the private board (the one test of the ``revealed`` fact)."""
    return revealed_flag(get_meta(s, "revealed"))


def set_meta(s: Session, key: str, value: str) -> None:
    row = s.get(Meta, key)
    if row is None:
        s.add(Meta(key=key, value=value))
    else:
        row.value = value
