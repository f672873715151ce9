"""Helpers for the server tests (no test here): courses, a settable clock, a throw-away PostgreSQL cluster."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import select

from brats_kit.server.course import init_course, read_tokens
from brats_kit.server.db import Team
from brats_kit.server.service import Principal

START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


class Clock:
    """A settable server clock."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


def write_roster(path: Path, teams=("alpha", "beta", "gamma")) -> Path:
    lines = ["student_id,name,email,team"]
    for i, team in enumerate(teams):
        lines.append(f"s{i}a,Student {i}A,s{i}a@example.org,{team}")
        lines.append(f"s{i}b,Student {i}B,s{i}b@example.org,{team}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_course(tmp: Path, competition: Path, *, teams=("alpha", "beta", "gamma"), db=None, **kw):
    """A course folder; returns ``(root, tokens by team, admin token)``."""
    root = tmp / f"course-{uuid.uuid4().hex[:8]}"
    roster = write_roster(tmp / f"roster-{uuid.uuid4().hex[:8]}.csv", teams)
    kw.setdefault("workers", 1)
    info = init_course(root, competition=competition, roster=roster, db=db, clock=kw.pop("clock", None), **kw)
    return root, read_tokens(info["tokens"]), info["admin_token"].read_text().strip()


def shifted(y: np.ndarray, shift: int) -> np.ndarray:
    """The truth moved by ``shift`` pixels: a prediction of lower Dice as the shift grows."""
    return np.ascontiguousarray(np.roll(y, shift, axis=2))


def _pg_bindir():
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0]))
    return Path(dirs[-1]) if dirs and Path(dirs[-1], "initdb").exists() else None


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a Unix socket (no TCP), as the ``postgres`` user when run as root."""

    def __init__(self, *, fsync: bool = False):
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; "
                               "install Debian's postgresql")
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="brats-pg-"))
        os.chmod(self.base, 0o755)
        self.prefix = []
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run initdb as") from None
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.base / "data"
        self._run("initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        # fsync off for the tests (speed); the benchmark keeps PostgreSQL's durable default.
        opts = f"-c listen_addresses='' -k {self.base} -c fsync={'on' if fsync else 'off'} -c max_connections=300"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.base / "log"), "-w", "-o", opts, "start")
        self.data = data

    def _run(self, tool, *args):
        result = subprocess.run(self.prefix + [str(self.bindir / tool), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()[-500:]}")

    def new_database(self) -> str:
        import psycopg

        name = f"course_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.base), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@/{name}?host={self.base}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def pg_cluster_or_reason(**kw):
    try:
        return PostgresCluster(**kw), None
    except (RuntimeError, OSError) as exc:
        reason = f"PostgreSQL tests skipped: {exc}"
        print(reason, file=sys.stderr)
        return None, reason


def record_directly(service, course, team, path, scorer):
    """One upload through the server's own calls, without HTTP: the receipt, or the refusal raised."""
    with course.sessions() as s:
        team_id = s.scalars(select(Team.id).where(Team.name == team)).one()
    upload = course.store.upload(10**9)
    upload.write(path.read_bytes())
    sha = upload.finish()
    try:
        verdict = scorer.submit(upload.path).result()
        return service.record(Principal(team_id, team), sha256=sha, size=upload.size, verdict=verdict,
                              commit_file=lambda: course.store.commit(upload, sha))
    finally:
        upload.discard()
