"""A full disk while an upload streams or is committed: a JSON 507 with its code, nothing half-written or counted."""
from __future__ import annotations

import errno
import io
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

import brats_kit.server.store as store_module
from brats_kit.server.app import create_app
from brats_kit.server.client import SubmissionRefused, submit
from brats_kit.server.course import Course
from brats_kit.server.run import ServerThread
from data_spec import load_truth
from test_server_support import Clock, make_course, shifted

API = "/api/v1"


@pytest.fixture(scope="module")
def good(competition, tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "pred.npy"
    np.save(path, shifted(load_truth(competition / "private").y, 3))
    return path


class _FullAfter(io.RawIOBase):
    """A file object whose writes fail with ENOSPC once ``room`` bytes are written (a disk filling up)."""

    def __init__(self, fh, room: int, code: int):
        self.fh, self.room, self.code = fh, room, code

    def write(self, data):
        if len(data) > self.room:
            raise OSError(self.code, "No space left on device")
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)


def _fill_disk_while_streaming(monkeypatch, code=errno.ENOSPC, room=1000):
    real = store_module.os.fdopen
    monkeypatch.setattr(store_module.os, "fdopen", lambda fd, mode: _FullAfter(real(fd, mode), room, code))


def _fill_disk_at_commit(monkeypatch, code=errno.ENOSPC):
    def fsync(fd):
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(store_module.os, "fsync", fsync)


def _nothing_kept(root):
    with Course(root) as course:
        assert course.store.temporary_files() == [] and course.store.files() == {}


@pytest.mark.parametrize("where", ["streaming", "commit"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_a_named_507_and_nothing_is_kept(tmp_path, competition, scorer, good, db, where, code,
                                                         monkeypatch, caplog):
    root, tok, _ = make_course(tmp_path, competition, db=db)
    h = {"Authorization": f"Bearer {tok['alpha']}"}
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        (_fill_disk_while_streaming if where == "streaming" else _fill_disk_at_commit)(monkeypatch, code)
        with caplog.at_level(logging.ERROR, logger="brats_kit.server"):
            for kw in ({"content": good.read_bytes()}, {"files": {"file": ("p.npy", good.read_bytes())}}):
                r = c.post(f"{API}/submissions", headers=h, **kw)
                assert r.status_code == 507 and r.headers["content-type"] == "application/json", r.text
                err = r.json()["error"]
                assert err["code"] == "storage_full" and "NOT received" in err["message"] and "instructor" in err["hint"]
        assert "storage full" in caplog.text
        monkeypatch.undo()
        assert c.get(f"{API}/submissions", headers=h).json()["submissions"] == []  # nothing recorded or counted
    _nothing_kept(root)


def test_the_client_says_the_file_was_not_received(tmp_path, competition, scorer, good, monkeypatch):
    root, tok, _ = make_course(tmp_path, competition)
    with ServerThread(root, scorer=scorer, board_interval_s=0) as server:
        _fill_disk_at_commit(monkeypatch)
        with pytest.raises(SubmissionRefused) as refused:
            submit(good, server.url, tok["alpha"])
        monkeypatch.undo()
    assert refused.value.status == 507 and "NOT received" in str(refused.value)
    assert "instructor" in refused.value.hint
    _nothing_kept(root)
