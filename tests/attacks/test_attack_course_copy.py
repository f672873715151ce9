"""A course folder and its database carry one course id; a copied folder is an independent course (issue 20: 7)."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.db import SCHEMA_VERSION, Meta, SignInSession, Submission
from brats_kit.server.verify import audit_course
from data_spec import KitError
from test_server_support import Clock, make_course

from attack_support import sign_in, files  # noqa: F401 - files: a fixture


def _hand_in(root, scorer, token, path):
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        r = c.post("/api/v1/submissions", files={"file": ("a.npy", path.read_bytes())},
                   headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        return r.json()


def _rows(root):
    with Course(root) as c, c.sessions() as s:
        return [(sub.id, sub.sha256) for sub in s.scalars(select(Submission))]


def test_a_copied_folder_uses_its_own_database_and_store(tmp_path, competition, scorer, files):
    root, tok, _ = make_course(tmp_path, competition)
    _hand_in(root, scorer, tok["alpha"], files["good"])
    before = _rows(root)
    stored = sorted(p.name for p in (root / "store").rglob("*") if p.is_file())
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    receipt = _hand_in(copy, scorer, tok["beta"], files["other"])
    assert _rows(root) == before  # the original database is unchanged...
    assert sorted(p.name for p in (root / "store").rglob("*") if p.is_file()) == stored  # ...and its store
    assert (receipt["id"], receipt["sha256"]) in _rows(copy)
    assert (copy / "store" / receipt["sha256"][:2] / receipt["sha256"]).is_file()
    with Course(root) as a, Course(copy) as b:
        assert audit_course(a)["ok"] and audit_course(b)["ok"]
    config = json.loads((copy / "private" / "course.json").read_text())
    assert str(root) not in config["db"]


def test_a_folder_is_refused_against_another_courses_database(tmp_path, competition, db):
    one, _, _ = make_course(tmp_path, competition, db=db)
    two, _, _ = make_course(tmp_path, competition)
    config_path = two / "private" / "course.json"
    config = json.loads(config_path.read_text())
    config["db"] = json.loads((one / "private" / "course.json").read_text())["db"]
    if config["db"].startswith("sqlite:///private/"):
        config["db"] = f"sqlite:///{one}/private/course.db"
    for own in (two / "private").glob("course.db*"):
        own.unlink()  # no database of its own: the course ids alone tell
    config_path.write_text(json.dumps(config))
    with pytest.raises(KitError, match="belongs to another course") as err:
        Course(two)
    assert err.value.code == "wrong_database"
    r = CliRunner().invoke(main, ["server", "run", str(two), "--port", "1"])
    assert r.exit_code == 1 and "another course" in r.output
    assert Course(one).close() is None  # the other course still opens


def test_a_course_made_before_course_ids_still_opens_and_audits(tmp_path, competition, scorer, files, db):
    """Schema 1: no session table, no course id, an absolute SQLite path in course.json."""
    root, tok, _ = make_course(tmp_path, competition, db=db)
    _hand_in(root, scorer, tok["alpha"], files["good"])
    config_path = root / "private" / "course.json"
    config = json.loads(config_path.read_text())
    del config["course_id"]
    if config["db"].startswith("sqlite:///private/"):
        config["db"] = f"sqlite:///{root.resolve()}/private/course.db"
    config_path.write_text(json.dumps(config))
    with Course(root) as c, c.sessions() as s, s.begin():
        s.execute(delete(Meta).where(Meta.key == "course_id"))
        s.execute(update(Meta).where(Meta.key == "schema_version").values(value="1"))
        SignInSession.__table__.drop(s.connection())
    with Course(root) as c:
        assert audit_course(c)["ok"]
        with c.sessions() as s:
            assert s.get(Meta, "schema_version").value == str(SCHEMA_VERSION)
            assert s.get(Meta, "course_id").value == c.config.course_id
            assert s.execute(text("SELECT count(*) FROM session")).scalar() == 0
    assert json.loads(config_path.read_text())["course_id"]
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as client:
        sign_in(client, tok["alpha"])
        assert client.get("/team", follow_redirects=False).status_code == 200


def test_a_copy_of_a_course_made_before_relative_paths_is_refused_not_shared(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    config_path = root / "private" / "course.json"
    config = json.loads(config_path.read_text())
    config["db"] = f"sqlite:///{root.resolve()}/private/course.db"  # the former absolute path
    config_path.write_text(json.dumps(config))
    Course(root).close()  # the original opens as it is
    copy = tmp_path / "old-copy"
    shutil.copytree(root, copy)
    with pytest.raises(KitError, match="would write into the original") as err:
        Course(copy)
    assert err.value.code == "wrong_database" and "sqlite:///private/course.db" in err.value.hint
