"""Sessions end server-side (sign-out, token rotation, "end all"); Secure cookies behind HTTPS (issue 20: 10, 11, 17)."""
from __future__ import annotations

import json

from click.testing import CliRunner
from fastapi.testclient import TestClient

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.pages import COOKIE
from test_server_support import Clock, make_course

from attack_support import csrf_of, sign_in, files  # noqa: F401 - files: a fixture


def _thief(root, scorer, cookie):
    """A second browser holding a copy of the victim's cookie."""
    c = TestClient(create_app(root, clock=Clock(), scorer=scorer))
    c.cookies.set(COOKIE, cookie)
    return c


def test_a_cookie_copied_before_sign_out_opens_nothing_after(tmp_path, competition, scorer, files, db):
    root, tok, _ = make_course(tmp_path, competition, db=db)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as victim:
        assert sign_in(victim, tok["alpha"]).status_code == 303
        copied = victim.cookies.get(COOKIE)
        csrf = csrf_of(victim.get("/team"))
        with _thief(root, scorer, copied) as thief:
            assert thief.get("/team", follow_redirects=False).status_code == 200  # the copy works before
            assert victim.post("/signout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
            assert thief.get("/team", follow_redirects=False).status_code == 303  # back to the sign-in form
            assert thief.post("/team/finals", data={"csrf": csrf, "final": "1"}).status_code == 403


def test_rotating_a_token_or_ending_all_sessions_signs_copies_out(tmp_path, competition, scorer, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["beta"])
        team_cookie = c.cookies.get(COOKIE)
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        admin_cookie = c.cookies.get(COOKIE)
        assert c.get("/admin", follow_redirects=False).status_code == 200
        runner = CliRunner()
        r = runner.invoke(main, ["server", "tokens", str(root), "--end-sessions", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["sessions_ended"] == 2
        for cookie, page in ((team_cookie, "/team"), (admin_cookie, "/admin")):
            with _thief(root, scorer, cookie) as other:
                assert other.get(page, follow_redirects=False).status_code == 303
        # Signed in again, then the team's token is rotated: the session ends with it.
        c.cookies.clear()
        sign_in(c, tok["beta"])
        assert c.get("/team", follow_redirects=False).status_code == 200
        assert runner.invoke(main, ["server", "tokens", str(root), "--rotate", "beta"]).exit_code == 0
        assert c.get("/team", follow_redirects=False).status_code == 303


def test_the_instructors_token_rotates_and_ends_the_admin_sessions(tmp_path, competition, scorer, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, admin, role="instructor")
        assert c.get("/admin", follow_redirects=False).status_code == 200
        r = CliRunner().invoke(main, ["server", "tokens", str(root), "--rotate", "admin"])
        assert r.exit_code == 0, r.output
        assert "admin_token.txt" in r.output
        assert c.get("/admin", follow_redirects=False).status_code == 303
        new = (root / "private" / "admin_token.txt").read_text().strip()
        assert new != admin
        headers = {"Authorization": f"Bearer {admin}"}
        assert c.get("/api/v1/admin/status", headers=headers).status_code == 401
        assert c.get("/api/v1/admin/status", headers={"Authorization": f"Bearer {new}"}).status_code == 200
        c.cookies.clear()
        assert sign_in(c, new, role="instructor").headers["location"] == "/admin"
    from brats_kit.server.course import Course
    from brats_kit.server.verify import audit_course

    with Course(root) as opened:
        assert audit_course(opened)["ok"]


def test_cookies_are_secure_behind_an_https_proxy_and_with_https_only(tmp_path, competition, scorer):
    root, tok, _ = make_course(tmp_path, competition)
    # The scheme uvicorn's proxy-headers support sets from a trusted proxy's X-Forwarded-Proto: https.
    with TestClient(create_app(root, clock=Clock(), scorer=scorer), base_url="https://course.example") as c:
        r = sign_in(c, tok["alpha"])
        assert "secure" in r.headers["set-cookie"].lower()
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        assert "secure" not in sign_in(c, tok["alpha"]).headers["set-cookie"].lower()
    # --https-only: Secure even when the proxy does not say so (the browser then sends it over HTTPS only).
    with TestClient(create_app(root, clock=Clock(), scorer=scorer, https_only=True)) as c:
        assert "secure" in c.get("/").headers["set-cookie"].lower()


def test_https_only_is_an_option_of_server_run():
    r = CliRunner().invoke(main, ["server", "run", "--help"])
    assert "--https-only" in r.output


def test_the_dashboard_ends_every_session(tmp_path, competition, scorer):
    root, tok, admin = make_course(tmp_path, competition)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        team_cookie = c.cookies.get(COOKIE)
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        page = c.get("/admin")
        assert 'action="/admin/sessions/end"' in page.text
        ended = c.post("/admin/sessions/end", data={"csrf": csrf_of(page)}, follow_redirects=False)
        assert (ended.status_code, ended.headers["location"]) == (303, "/")
        assert c.get("/admin", follow_redirects=False).status_code == 303
        with _thief(root, scorer, team_cookie) as other:
            assert other.get("/team", follow_redirects=False).status_code == 303
