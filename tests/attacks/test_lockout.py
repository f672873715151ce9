"""Attacks on authentication: one client's wrong guesses must not lock the class or the instructor out."""
from __future__ import annotations

import io
import re

import numpy as np
from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from data_spec import load_truth
from test_server_support import Clock, make_course, shifted

API = "/api/v1"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_wrong_tokens_from_one_address_slow_the_guesser_not_the_class(tmp_path, competition, scorer, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:  # every request from one address
        codes = [c.get(f"{API}/submissions", headers={"Authorization": f"Bearer wrong{i}"}).status_code
                 for i in range(21)]
        assert codes[:20] == [401] * 20 and codes[20] == 429
        # The guesser keeps being refused with 429 ...
        assert c.post(f"{API}/submissions", content=b"x", headers={"Authorization": "Bearer wrong"}).status_code == 429
        # ... while every valid token from the same address works: the API, an upload, the admin API, sign-in.
        alpha = {"Authorization": f"Bearer {tok['alpha']}"}
        assert c.get(f"{API}/submissions", headers=alpha).status_code == 200
        buf = io.BytesIO()
        np.save(buf, shifted(load_truth(competition / "private").y, 3))
        up = c.post(f"{API}/submissions", content=buf.getvalue(), headers={"Authorization": f"Bearer {tok['beta']}"})
        assert up.status_code == 201 and up.json()["status"] == "scored", up.text
        assert c.get(f"{API}/admin/status", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        csrf = CSRF.search(c.get("/").text).group(1)
        signed = c.post("/signin", data={"csrf": csrf, "token": admin, "role": "instructor"}, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/admin"
