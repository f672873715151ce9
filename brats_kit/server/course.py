"""A course folder: configuration, roster, tokens, database and store, created by ``server init``.

Layout (everything readable by the instructor only)::

    COURSE/private/course.json    configuration (competition, truth, quotas, deadline, database URL, course id)
    COURSE/private/course.db      the SQLite database (unless --db names another)
    COURSE/private/tokens.csv     team,token: to hand out, one token per team
    COURSE/private/admin_token.txt
    COURSE/private/roster.csv     the roster as given (names and e-mails stay private)
    COURSE/store/                 submitted files by sha256, store/tmp/ for uploads in progress

A folder and its database carry one course id (``course_id`` in ``course.json`` and in the
database's ``meta``): a folder is refused against another course's database. The SQLite
database's path is relative to the folder (``sqlite:///private/course.db``), so a copy of
the folder (``cp -a``) is a copy of the course with its own database; absolute paths
(courses made before) still load.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
import stat
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from data_spec.errors import BadArgumentError, KitError, LayoutError, MissingFileError, check_range
from data_spec.hdf5 import sha256_file
from data_spec.layout import find_truth
from plumbing.atomic import write_text

from . import audit
from .clock import parse_zone, zone_of_deadline
from .db import (Member, Team, check_schema, create_schema, get_meta, make_engine, session_factory, set_meta,
                 write_transaction)
from .store import Store
from .tokens import new_token, token_hash

PRIVATE, STORE = "private", "store"
CONFIG_JSON, SQLITE_DB, TOKENS_CSV, ADMIN_TOKEN, ROSTER_CSV = (
    "course.json", "course.db", "tokens.csv", "admin_token.txt", "roster.csv",
)
ROSTER_COLUMNS = ("student_id", "name", "email", "team")
#: Names a team folder may not take in an export (the leaderboard reads these itself).
_RESERVED = {"manifest.csv"}


@dataclass
class CourseConfig:
    """What ``server init`` was told (``private/course.json``)."""

    competition: str
    truth: str
    db: str
    per_day: int = 5
    max_invalid_per_day: int = 20
    deadline: Optional[str] = None
    finals: int = 2
    timezone: str = "UTC"
    timeout_s: float = 20.0
    memory_mb: int = 2048
    workers: int = 2
    max_bytes: Optional[int] = None
    extra: dict = field(default_factory=dict)
    course_id: Optional[str] = None
    #: The score the live board, ``/api/v1/leaderboard`` and the gradebook rank by (:func:`server_ranking`).
    ranking: str = "dice"

    @property
    def deadline_at(self) -> Optional[datetime]:
        return None if self.deadline is None else datetime.fromisoformat(self.deadline).astimezone(timezone.utc)

    @property
    def zone(self):
        """The course's time zone: an IANA name or the deadline's fixed offset (:func:`.clock.parse_zone`)."""
        return parse_zone(self.timezone)


class Course:
    """An initialised course folder, opened: configuration, engine, sessions, store."""

    def __init__(self, root, *, engine=None):
        self.root = Path(root)
        self.private = self.root / PRIVATE
        path = self.private / CONFIG_JSON
        if not path.is_file():
            raise MissingFileError("not a course folder (no private/course.json)", path=self.root,
                                   hint="create it with 'brats-kit server init'")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.config = CourseConfig(**data)
        except (ValueError, TypeError) as exc:
            raise LayoutError(f"unreadable course configuration ({exc})", path=path) from None
        server_ranking(self.config.ranking)  # a hand-edited configuration the board could not rank by
        self.engine = engine or make_engine(database_url(self.config.db, self.root))
        try:
            check_schema(self.engine)
            self.sessions = session_factory(self.engine)
            self._check_course_id(path)
            self._version_old_scores()
        except BaseException:
            self.engine.dispose()
            raise
        self.store = Store(self.root / STORE)

    def _check_course_id(self, config_path: Path) -> None:
        """Refuse another course's database; a course made before course ids gets one, in both places."""
        self._refuse_a_legacy_copy(config_path)
        with self.sessions() as s:
            stored = get_meta(s, "course_id")
        if stored is None:
            with write_transaction(self.sessions) as s:
                stored = get_meta(s, "course_id")
                if stored is None:
                    stored = self.config.course_id or uuid.uuid4().hex
                    set_meta(s, "course_id", stored)
        if self.config.course_id is not None and stored != self.config.course_id:
            raise KitError(f"the database {_shown_url(self.config.db)} belongs to another course "
                           f"(course id {stored}, this folder's is {self.config.course_id})",
                           code="wrong_database", path=config_path,
                           hint="point private/course.json's db at this course's own database")
        if self.config.course_id is None:
            self.config.course_id = stored
            write_private(config_path, json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n")

    @functools.cached_property
    def truth_sha256(self) -> str:
        """The sha256 of the course's truth file: the version every new score is recorded against."""
        return sha256_file(find_truth(self.config.truth))

    def _version_old_scores(self) -> None:
        """A database from before truths were versioned (upgraded in place): its rows and its ``truth_sha256``
        fact get the current truth's sha256."""
        from sqlalchemy import select, update

        from .db import Submission

        with self.sessions() as s:
            old = s.scalar(select(Submission.id).where(Submission.truth_sha256.is_(None)).limit(1))
            known = get_meta(s, "truth_sha256")
        if old is not None or known is None:
            with write_transaction(self.sessions) as s:
                s.execute(update(Submission).where(Submission.truth_sha256.is_(None))
                          .values(truth_sha256=self.truth_sha256))
                if get_meta(s, "truth_sha256") is None:
                    set_meta(s, "truth_sha256", self.truth_sha256)

    def _refuse_a_legacy_copy(self, config_path: Path) -> None:
        """A folder with its own ``private/course.db`` whose configuration names another folder's (an absolute
        path, as courses made before relative paths kept): a copy that would write into the original."""
        from sqlalchemy.engine import make_url

        url = make_url(self.config.db)
        own = self.private / SQLITE_DB
        if (url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_absolute()
                and own.is_file() and Path(url.database).resolve() != own.resolve()):
            raise KitError(f"this folder has its own database {own} but course.json names {url.database}: "
                           "a copy of a course would write into the original's database",
                           code="wrong_database", path=config_path,
                           hint=f'set "db": "sqlite:///{PRIVATE}/{SQLITE_DB}" in {config_path} to use its own')

    @property
    def tokens_csv(self) -> Path:
        return self.private / TOKENS_CSV

    @property
    def admin_token_file(self) -> Path:
        return self.private / ADMIN_TOKEN

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def server_ranking(name: Optional[str], truth=None) -> str:
    """The ranking score of a course: ``name``, else the competition's (its private manifest), else Dice.

    Any score a board ranks by (:data:`grader.leaderboard.ranking.RANKABLE`): the scoring
    worker stores the course's mask score per case at upload, so the live board ranks from it.

    Raises
    ------
    BadArgumentError
        A name no board ranks by.

    Examples
    --------
    >>> server_ranking(None), server_ranking("dice"), server_ranking("lesion_hd95")
    ('dice', 'dice', 'lesion_hd95')
    >>> server_ranking("f1")
    Traceback (most recent call last):
    ...
    data_spec.errors.BadArgumentError: cannot rank by 'f1'; expected one of dice, hd95, lesion_dice, lesion_hd95, nsd...
    """
    from data_spec.ranking_record import recorded_ranking
    from grader.leaderboard.ranking import ranking_type

    chosen = name if name is not None else (recorded_ranking(truth) if truth is not None else None) or "dice"
    return ranking_type(chosen).name


def database_url(url: str, root) -> str:
    """``url`` with a relative SQLite path resolved against the course folder ``root`` (absolute ones as they are).

    Examples
    --------
    >>> database_url("sqlite:///private/course.db", "/srv/course")
    'sqlite:////srv/course/private/course.db'
    >>> database_url("sqlite:////old/course/private/course.db", "/srv/copy")
    'sqlite:////old/course/private/course.db'
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or Path(parsed.database).is_absolute() \
            or parsed.database == ":memory:":
        return url
    return parsed.set(database=str(Path(root).resolve() / parsed.database)).render_as_string(hide_password=False)


def _check_team_name(team: str, line: int, path) -> None:
    bad = (not team or team.startswith(".") or team in _RESERVED or "/" in team or "\\" in team
           or "\x00" in team or len(team) > 200 or team != team.strip())
    if bad:
        raise LayoutError(f"team name {team!r} cannot be a folder of the export", path=path, where=f"line {line}",
                          expected="a non-empty name without '/', '\\', a leading '.' or surrounding spaces",
                          hint="the team column is the display name on the board")


def read_roster(path) -> dict:
    """``team -> [(student_id, name, email), ...]`` from ``student_id,name,email,team``.

    The roster is read (and its errors named, with their line) by the gradebook's own
    :func:`grader.leaderboard.gradebook.read_roster`; each team name must also make a
    folder of the export.
    """
    from grader.leaderboard.gradebook import read_roster as read_students

    teams: dict = {}
    for student in read_students(path):
        _check_team_name(student.team, student.line, path)
        teams.setdefault(student.team, []).append((student.student_id, student.name, student.email))
    return teams


def tokens_text(tokens: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["team", "token"])
    for team in sorted(tokens):
        writer.writerow([team, tokens[team]])
    return buf.getvalue()


def write_private(path: Path, text: str) -> None:
    """Atomically write a file only the owner can read."""
    write_text(path, text)
    os.chmod(path, 0o600)


def read_tokens(path) -> dict:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["team"]: row["token"] for row in csv.DictReader(fh)}


def init_course(
    root,
    *,
    competition,
    roster,
    per_day: int = 5,
    max_invalid_per_day: int = 20,
    deadline: Optional[str] = None,
    finals: int = 2,
    db: Optional[str] = None,
    timezone_name: Optional[str] = None,
    timeout_s: float = 20.0,
    memory_mb: int = 2048,
    workers: int = 2,
    ranking: Optional[str] = None,
    clock=None,
    extra: Optional[dict] = None,
) -> dict:
    """Create a course folder (see the module doc) and return where its files are.

    Refuses a folder that exists and is not empty. Tokens are random, written to
    ``private/tokens.csv`` and stored only as hashes.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise KitError("the course folder exists and is not empty", code="exists", path=root,
                       hint="give a new folder: init never overwrites a course")
    for name, value, low in (("per_day", per_day, 1), ("max_invalid_per_day", max_invalid_per_day, 0),
                             ("finals", finals, 1)):
        check_range(name, value, low)
    if deadline is not None:
        try:
            when = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
        except ValueError:
            raise BadArgumentError(f"unreadable deadline {deadline!r}",
                           expected="ISO 8601 with its offset, e.g. 2026-12-15T23:59:00+01:00") from None
        if when.tzinfo is None:
            raise BadArgumentError(f"the deadline {deadline!r} has no UTC offset",
                           expected="e.g. 2026-12-15T23:59:00+01:00")
        deadline = when.isoformat()
    # Without --timezone the quota day follows the deadline's offset: it resets at the students' midnight.
    timezone_name = timezone_name or zone_of_deadline(deadline)
    try:
        parse_zone(timezone_name)
    except ValueError:
        raise BadArgumentError(f"unknown time zone {timezone_name!r}",
                               expected="e.g. UTC, Europe/Paris, +01:00") from None
    truth = find_truth(Path(competition) / PRIVATE) if (Path(competition) / PRIVATE).is_dir() else find_truth(competition)
    from .grading import open_truth_info

    info = open_truth_info(truth)  # a truth the grader cannot read is refused now, not at the first upload
    ranking = server_ranking(ranking, truth)
    teams = read_roster(roster)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    private = root / PRIVATE
    private.mkdir(mode=0o700)
    if db is None:
        # Created empty and owner-only first: SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(private / SQLITE_DB, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    url = db or f"sqlite:///{PRIVATE}/{SQLITE_DB}"  # relative to the folder: a copy has its own database
    course_id = uuid.uuid4().hex
    config = CourseConfig(competition=str(Path(competition).resolve()), truth=str(Path(truth).resolve()), db=url,
                          per_day=per_day, max_invalid_per_day=max_invalid_per_day, deadline=deadline,
                          finals=finals, timezone=timezone_name, timeout_s=timeout_s, memory_mb=memory_mb,
                          workers=workers, max_bytes=info["max_bytes"], course_id=course_id, extra=dict(extra or {}),
                          ranking=ranking)
    engine = make_engine(database_url(url, root))
    try:
        create_schema(engine, course_id)
        now = (clock or (lambda: datetime.now(timezone.utc)))()
        tokens = {team: new_token() for team in teams}
        admin = new_token()
        with session_factory(engine)() as s, s.begin():
            for team in sorted(teams):
                t = Team(name=team, token_hash=token_hash(tokens[team]), created_at=now)
                s.add(t)
                s.flush()
                for sid, name, email in teams[team]:
                    s.add(Member(team_id=t.id, student_id=sid, name=name, email=email))
            set_meta(s, "admin_token_hash", token_hash(admin))
            set_meta(s, "truth_sha256", sha256_file(truth))  # what every upload is recorded against
            audit.append(s, now, audit.COURSE_CREATED, None, {"teams": len(teams)})
    finally:
        engine.dispose()
    Store(root / STORE).create()
    write_private(private / TOKENS_CSV, tokens_text(tokens))
    write_private(private / ADMIN_TOKEN, admin + "\n")
    write_private(private / ROSTER_CSV, Path(roster).read_text(encoding="utf-8-sig"))
    write_private(private / CONFIG_JSON, json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
    return {"course": root, "tokens": private / TOKENS_CSV, "admin_token": private / ADMIN_TOKEN,
            "teams": len(teams), "students": sum(len(v) for v in teams.values()), "db": _shown_url(url),
            "ranking": ranking}


def _shown_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def check_permissions(root, *, fix: bool = True) -> list:
    """Private files readable or writable by others: fixed (with a warning) or refused.

    Returns the paths whose mode was fixed. Raises :class:`KitError` when ``fix`` is False
    and something is exposed.
    """
    root = Path(root)
    exposed = []
    for base in (root / PRIVATE, root / STORE):
        if not base.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                st = os.lstat(name)
                if stat.S_IMODE(st.st_mode) & 0o077:
                    exposed.append(Path(name))
    if exposed and not fix:
        raise KitError(f"{len(exposed)} private file(s) of the course are readable by others, e.g. {exposed[0]}",
                       code="unsafe_permissions", hint=f"chmod -R go-rwx {root / PRIVATE} {root / STORE}")
    for p in exposed:
        os.chmod(p, 0o700 if p.is_dir() else 0o600)
    return exposed
