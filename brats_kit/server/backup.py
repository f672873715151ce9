"""``server backup``: a consistent copy of a live course, itself a course folder.

The database is copied first, while the server runs: SQLite through its online
backup API (``sqlite3.Connection.backup``: a consistent snapshot, writers wait a
moment at most), PostgreSQL with ``pg_dump --format=custom``. Then the store:
files are only ever added to it, so every file the snapshot references is copied.
The copy holds ``private/`` (configuration, tokens, roster) and ``store/``; its
SQLite path is relative (see :mod:`.course`), so the copy opens as it is.

Restore (server stopped): put the backup's ``private/course.db`` in place of the
course's (remove ``course.db-wal`` and ``course.db-shm``), or ``pg_restore --clean``
its ``private/course.pgdump``, and copy the backup's store files that the course
lacks. At the next start, files received after the backup (their receipts given,
their rows not in the restored database) are moved to ``store/quarantine/``, and
``server audit --adopt`` records them again.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from data_spec.errors import KitError

from .course import CONFIG_JSON, PRIVATE, SQLITE_DB, STORE, Course, database_url, write_private

#: The PostgreSQL dump's name inside the backup's ``private/``.
PG_DUMP = "course.pgdump"


def _sqlite_backup(url: str, dest: Path) -> None:
    source = sqlite3.connect(make_url(url).database, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    os.chmod(dest, 0o600)


def _pg_dump(url: str, dest: Path) -> None:
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise KitError("pg_dump is not on PATH", code="missing_tool", hint="install PostgreSQL's client tools")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        done = subprocess.run([pg_dump, "--format=custom", "--no-owner", f"--dbname={libpq}"], stdout=out,
                              stderr=subprocess.PIPE, check=False)
    if done.returncode:
        dest.unlink()
        raise KitError(f"pg_dump failed: {done.stderr.decode(errors='replace').strip()[-300:]}",
                       code="backup_failed")


def backup_course(course: Course, out) -> dict:
    """Copy ``course`` (database snapshot, then private files and store) into the new folder ``out``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KitError("the backup folder exists and is not empty", code="exists", path=out,
                       hint="give a new folder: a backup never overwrites anything")
    (out / PRIVATE).mkdir(parents=True, mode=0o700)
    os.chmod(out, 0o700)
    url = database_url(course.config.db, course.root)
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:
        database = out / PRIVATE / SQLITE_DB
        _sqlite_backup(url, database)
    else:
        database = out / PRIVATE / PG_DUMP
        _pg_dump(url, database)
    for f in sorted(course.private.iterdir()):
        if f.is_file() and not f.is_symlink() and not f.name.startswith(SQLITE_DB):
            shutil.copy2(f, out / PRIVATE / f.name)
    if sqlite:
        # The backup opens its own snapshot, even when the course's path was absolute (made before).
        config = json.loads((out / PRIVATE / CONFIG_JSON).read_text(encoding="utf-8"))
        config["db"] = f"sqlite:///{PRIVATE}/{SQLITE_DB}"
        write_private(out / PRIVATE / CONFIG_JSON, json.dumps(config, indent=2, sort_keys=True) + "\n")
    files = course.store.files()
    store = out / STORE
    store.mkdir(mode=0o700)
    for sha, f in sorted(files.items()):
        dest = store / f.parent.name / sha
        dest.parent.mkdir(exist_ok=True, mode=0o700)
        shutil.copy2(f, dest)
    for sha, f in sorted(course.store.quarantined().items()):
        (store / "quarantine").mkdir(exist_ok=True, mode=0o700)
        shutil.copy2(f, store / "quarantine" / sha)
    (store / "tmp").mkdir(mode=0o700)
    return {"out": str(out), "database": str(database), "files": len(files),
            "quarantined": len(course.store.quarantined())}
