"""CSRF tokens travel in POST bodies only; every form post ends in a 303 (post/redirect/get) (issue 20: 12)."""
from __future__ import annotations

import re

from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from test_server_support import Clock, make_course

from attack_support import csrf_of, sign_in, files  # noqa: F401 - files: a fixture


def _stored(root):
    return sorted(p.name for p in (root / "store").rglob("*") if p.is_file())


def test_no_page_puts_a_token_in_a_url_and_the_query_token_is_refused(tmp_path, competition, scorer, files):
    root, tok, _ = make_course(tmp_path, competition)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        page = c.get("/team")
        csrf = csrf_of(page)
        assert "csrf=" not in page.text and csrf not in re.findall(r'action="([^"]*)"', page.text)
        data = files["good"].read_bytes()
        # The token in the URL (the old form): refused, nothing kept.
        assert c.post("/team/upload", params={"csrf": csrf}, files={"file": ("a.npy", data)}).status_code == 403
        # The token after the file: refused before the file is kept.
        body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.npy\"\r\n\r\n" + data
                + b"\r\n--B\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf.encode()
                + b"\r\n--B--\r\n")
        late = c.post("/team/upload", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
        assert late.status_code == 403
        # A raw body has no form fields: refused.
        assert c.post("/team/upload", content=data).status_code == 403
        assert _stored(root) == []
        # The token as the form's field before the file: accepted.
        ok = c.post("/team/upload", data={"csrf": csrf}, files={"file": ("a.npy", data)}, follow_redirects=False)
        assert ok.status_code == 303 and "csrf" not in ok.headers["location"] and len(_stored(root)) == 1


def test_every_form_post_ends_in_a_303_and_its_result_is_shown_after(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, per_day=1)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        bad = sign_in(c, "wrong")
        assert bad.status_code == 303 and c.get("/").status_code == 401
        assert sign_in(c, tok["alpha"]).status_code == 303
        csrf = csrf_of(c.get("/team"))
        post = {"follow_redirects": False}
        up = c.post("/team/upload", data={"csrf": csrf}, files={"file": ("a.npy", files["good"].read_bytes())}, **post)
        assert (up.status_code, up.headers["location"]) == (303, "/team")
        shown = c.get("/team")
        assert 'id="receipt"' in shown.text and 'id="receipt"' not in c.get("/team").text  # shown once
        over = c.post("/team/upload", data={"csrf": csrf}, files={"file": ("b.npy", files["other"].read_bytes())},
                      **post)
        assert over.status_code == 303
        refused = c.get("/team")
        assert refused.status_code == 429 and 'id="refusal"' in refused.text
        fin = c.post("/team/finals", data={"csrf": csrf, "final": "1"}, **post)
        assert fin.status_code == 303 and 'id="message"' in c.get("/team").text
        assert c.post("/signout", data={"csrf": csrf}, **post).status_code == 303
        sign_in(c, admin, role="instructor")
        csrf = csrf_of(c.get("/admin"))
        rev = c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal"}, **post)
        assert (rev.status_code, rev.headers["location"]) == (303, "/admin")
        assert 'id="message"' in c.get("/admin").text
        again = c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal"}, **post)
        assert again.status_code == 303 and c.get("/admin").status_code == 409
