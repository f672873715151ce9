"""Nothing a receipt was given for is ever deleted; a backup, a restore and an adoption lose nothing (issue 20: 8)."""
from __future__ import annotations

import json
import shutil
import subprocess

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.db import Submission
from brats_kit.server.verify import audit_course
from attack_support import files  # noqa: F401 - a fixture
from test_server_support import Clock, make_course


def _hand_in(client, token, path):
    r = client.post("/api/v1/submissions", files={"file": ("a.npy", path.read_bytes())},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return r.json()


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _restore(root, backup, db):
    """README's restore, server stopped: the backup's database in place of the course's."""
    if db is None:
        for leftover in root.glob("private/course.db-*"):
            leftover.unlink()
        shutil.copy2(backup / "private" / "course.db", root / "private" / "course.db")
        return
    libpq = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={libpq}",
                    str(backup / "private" / "course.pgdump")], check=True, capture_output=True)


def test_backup_upload_restore_start_adopt_loses_nothing(tmp_path, competition, scorer, files, db):
    root, tok, _ = make_course(tmp_path, competition, db=db)
    clock = Clock()
    with TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        first = _hand_in(c, tok["alpha"], files["good"])
        r = _cli("server", "backup", root, "--out", tmp_path / "bk", "--json")
        assert r.exit_code == 0, r.output
        clock.advance(minutes=5)
        late = _hand_in(c, tok["beta"], files["other"])  # its receipt is given after the backup
    _restore(root, tmp_path / "bk", db)
    with TestClient(create_app(root, clock=clock, scorer=scorer)):  # the server starts again
        pass
    stored = root / "store" / "quarantine" / late["sha256"]
    assert stored.is_file()  # moved aside, never deleted
    status = json.loads(_cli("server", "status", root, "--json").output)
    assert status["quarantined"] == [late["sha256"]]
    assert late["sha256"] in _cli("server", "status", root).output
    with Course(root) as course:
        report = audit_course(course)
    assert report["quarantined"] == [late["sha256"]] and any(late["sha256"] in n for n in report["notes"])
    r = _cli("server", "audit", root, "--adopt", late["sha256"], "--team", "beta", "--at", late["submitted_at"])
    assert r.exit_code == 0, r.output
    with Course(root) as course:
        assert audit_course(course)["ok"] and course.store.quarantined() == {}
        with course.sessions() as s:
            rows = {sub.sha256: sub for sub in s.scalars(select(Submission))}
        assert set(rows) == {first["sha256"], late["sha256"]}
        adopted = rows[late["sha256"]]
        assert adopted.public == late["public"] and adopted.status == "scored"
        assert adopted.submitted_at.isoformat().replace("+00:00", "Z") == late["submitted_at"]
        assert course.store.path(late["sha256"]).is_file()


def test_the_backup_folder_is_a_course_that_opens_on_its_own(tmp_path, competition, scorer, files):
    root, tok, _ = make_course(tmp_path, competition)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        first = _hand_in(c, tok["alpha"], files["good"])
    assert _cli("server", "backup", root, "--out", tmp_path / "bk").exit_code == 0
    assert _cli("server", "backup", root, "--out", tmp_path / "bk").exit_code == 1  # never over a folder
    with Course(tmp_path / "bk") as copy:
        assert audit_course(copy)["ok"]
        assert copy.store.path(first["sha256"]).is_file()


def test_adopt_refuses_a_file_that_is_not_the_receipts(tmp_path, competition, scorer, files):
    root, tok, _ = make_course(tmp_path, competition)
    quarantine = root / "store" / "quarantine"
    quarantine.mkdir()
    fake = "ab" * 32
    (quarantine / fake).write_bytes(b"not the file the receipt names")
    r = _cli("server", "audit", root, "--adopt", fake, "--team", "alpha")
    assert r.exit_code == 1 and "does not match" in r.output
    assert _cli("server", "audit", root, "--adopt", "cd" * 32, "--team", "alpha").exit_code == 1
    assert _cli("server", "audit", root, "--adopt", fake).exit_code == 2  # --team is required
