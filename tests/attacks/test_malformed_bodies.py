"""Attacks by request body: a multipart body cut before its closing boundary, oversized forms and JSON."""
from __future__ import annotations

from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from test_server_support import Clock, make_course

API = "/api/v1"


def test_unterminated_multipart_is_refused_and_leaves_nothing(tmp_path, competition, scorer, db):
    root, tok, _ = make_course(tmp_path, competition, db=db)
    h = {"Authorization": f"Bearer {tok['alpha']}", "content-type": "multipart/form-data; boundary=XX"}
    body = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.npy"\r\n\r\n' + b"\x00" * 5000
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        r = c.post(f"{API}/submissions", content=body, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_request", r.text
        # The same body, terminated, is a (scored or invalid) submission: only the missing boundary was refused.
        r = c.post(f"{API}/submissions", content=body + b"\r\n--XX--\r\n", headers=h)
        assert r.status_code == 201, r.text
        listed = c.get(f"{API}/submissions", headers={"Authorization": h["Authorization"]}).json()["submissions"]
        assert len(listed) == 1
    with Course(root) as course:
        assert course.store.temporary_files() == [] and len(course.store.files()) == 1
