"""Any id that is not one of the team's submissions is a 404, never a 500 or a traceback (issue 20: 13)."""
from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from test_server_support import Clock, make_course

from attack_support import sign_in, files  # noqa: F401 - files: a fixture

HOSTILE_IDS = ("99999999999999999999", "9223372036854775808", "2147483648", "-1", "0", "1.5", "1e3", "abc",
               "%2e%2e", "%EF%BC%91", "٧")


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_hostile_ids_are_404_everywhere(tmp_path, competition, scorer, files, db, bad, caplog):
    root, tok, _ = make_course(tmp_path, competition, db=db)
    headers = {"Authorization": f"Bearer {tok['alpha']}"}
    with TestClient(create_app(root, clock=Clock(), scorer=scorer), raise_server_exceptions=False) as c:
        mine = c.post("/api/v1/submissions", files={"file": ("a.npy", files["good"].read_bytes())}, headers=headers)
        assert mine.status_code == 201
        with caplog.at_level(logging.DEBUG):
            for path in (f"/api/v1/submissions/{bad}", f"/api/v1/submissions/{bad}/file"):
                r = c.get(path, headers=headers)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
            sign_in(c, tok["alpha"])
            assert c.get("/team/submissions/{}/file".format(bad)).status_code == 404
            page = c.get("/team", params={"report": bad})
            assert page.status_code == 404
        assert "Traceback" not in caplog.text and "OverflowError" not in caplog.text
        # The team's own id still opens.
        own = mine.json()["id"]
        assert c.get(f"/api/v1/submissions/{own}", headers=headers).status_code == 200
        assert c.get("/team", params={"report": str(own)}).status_code == 200
