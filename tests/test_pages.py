"""The course's pages: sign-in sessions, CSRF, the team page, the board and the dashboard, and their security."""
from __future__ import annotations

import html
import re
import stat

import numpy as np
import pytest
from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from brats_kit.server.pages import COOKIE
from data_spec import load_truth
from data_spec.submission import write_submission
from test_server_support import Clock, make_course, shifted

HOSTILE = ("<script>alert(1)<script>", "\u202eevil", "=1+2")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def files(tmp_path_factory, competition):
    truth = load_truth(competition / "private")
    d = tmp_path_factory.mktemp("page-subs")
    write_submission(d / "good.npy", shifted(truth.y, 3))
    np.save(d / "bad255.npy", truth.y * np.uint8(255))
    return {"good": d / "good.npy", "bad": d / "bad255.npy", "truth": truth}


@pytest.fixture
def course(tmp_path, competition):
    return make_course(tmp_path, competition, teams=("alpha", "beta") + HOSTILE, per_day=3, finals=1)


def csrf_of(page) -> str:
    return html.unescape(CSRF.search(page.text).group(1))


def sign_in(client, token, role="team"):
    csrf = csrf_of(client.get("/"))
    return client.post("/signin", data={"csrf": csrf, "token": token, "role": role}, follow_redirects=False)


def upload(client, path):
    csrf = csrf_of(client.get("/team"))
    # The token is a form field sent before the file (never in the URL); the post redirects to the team page.
    return client.post("/team/upload", data={"csrf": csrf}, files={"file": (path.name, path.read_bytes())})


def test_sign_in_sets_a_strict_httponly_signed_cookie_and_a_secret_only_the_owner_reads(course, scorer):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        r = sign_in(c, tok["alpha"])
        assert r.status_code == 303 and r.headers["location"] == "/team"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and tok["alpha"].lower() not in cookie
        assert stat.S_IMODE((root / "private" / "session_secret").stat().st_mode) == 0o600
        page = c.get("/team")
        assert page.status_code == 200 and "Team alpha" in html.unescape(page.text)
        csp = page.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert f'<style nonce="{nonce}">' in page.text and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in page.text and "style=" not in page.text
        # A forged cookie is no session.
        c.cookies.set(COOKIE, c.cookies.get(COOKIE)[:-3] + "AAA")
        assert c.get("/team", follow_redirects=False).status_code == 303
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        bad = sign_in(c, "not-a-token")
        assert bad.status_code == 303 and bad.headers["location"] == "/"
        bad = c.get("/")  # post/redirect/get: the refusal is shown after the redirect, with its status
        assert bad.status_code == 401 and "invalid token" in bad.text
        assert c.get("/").status_code == 200  # shown once
        # One token box: the server knows whose token it is (a stale "role" field changes nothing).
        assert sign_in(c, tok["alpha"], role="instructor").headers["location"] == "/team"
        assert sign_in(c, admin).headers["location"] == "/admin"
        assert c.get("/admin").status_code == 200 and c.get("/team", follow_redirects=False).status_code == 303


def test_upload_receipt_hint_finals_report_and_sign_out(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        ok = upload(c, files["good"])
        # Post/redirect/get: a 303 to the team page, which shows the receipt (once).
        assert [r.status_code for r in ok.history] == [303] and ok.history[0].headers["location"] == "/team"
        assert ok.status_code == 200 and 'id="receipt"' in ok.text and "is scored" in ok.text
        api = c.get("/api/v1/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()
        sub = api["submissions"][0]
        assert f'{sub["public"]["dice"]:.4f}' in ok.text and sub["sha256"] in ok.text
        assert re.search(r'id="remaining">2<', ok.text)
        bad = upload(c, files["bad"])
        assert "is invalid" in bad.text and "bad_values" in bad.text and "divide by 255" in html.unescape(bad.text)
        # The per-slice report: public slices only, with the Dice the grader computes.
        truth = files["truth"]
        report = c.get(f"/team?report={sub['id']}")
        shown = re.findall(r"<tr><td>([^<]+)</td>", report.text.split('id="report"')[1])
        assert shown == [str(x) for x in truth.case_id[truth.public]]
        assert not any(str(x) in report.text for x in truth.case_id[~truth.public])
        # The download is the stored file itself.
        assert c.get(f"/team/submissions/{sub['id']}/file").content == files["good"].read_bytes()
        # Finals: the chooser saves through the API's rule.
        csrf = csrf_of(c.get("/team"))
        fin = c.post("/team/finals", data={"csrf": csrf, "final": str(sub["id"])})
        assert fin.status_code == 200 and "Finals: 1" in fin.text
        assert c.get("/api/v1/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()[
            "submissions"][0]["final"] is True
        invalid_final = c.post("/team/finals", data={"csrf": csrf, "final": "2"})
        assert invalid_final.status_code == 422 and "not_scored" in invalid_final.text
        board = c.get("/leaderboard")
        assert "alpha" in board.text and f'{sub["public"]["dice"]:.4f}' in board.text
        out = c.post("/signout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        assert c.get("/team", follow_redirects=False).status_code == 303


def test_every_page_and_form_refuses_without_a_session_or_csrf(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        for path in ("/team", "/team?report=1", "/team/submissions/1/file", "/admin", "/admin/reveal",
                     "/admin/audit", "/admin/integrity", "/admin/integrity.csv", "/admin/grades.csv",
                     "/admin/grades-readme.txt"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/", path
        for path in ("/team/finals", "/admin/reveal", "/signout", "/signin"):
            assert c.post(path, data={"csrf": "x"}).status_code == 403, path
        assert c.post("/team/upload", files={"file": ("a", b"x")}).status_code == 403
        sign_in(c, tok["alpha"])
        for path in ("/admin", "/admin/reveal", "/admin/audit", "/admin/integrity", "/admin/grades.csv"):
            assert c.get(path, follow_redirects=False).status_code == 303, path  # a team is not the instructor
        # Signed in, but without (or with a wrong) CSRF token: refused, and nothing happened.
        assert c.post("/team/upload", files={"file": ("a", files["good"].read_bytes())}).status_code == 403
        assert c.post("/team/upload", params={"csrf": "wrong"},
                      files={"file": ("a", files["good"].read_bytes())}).status_code == 403
        assert c.post("/team/finals", data={"final": "1"}).status_code == 403
        assert c.post("/signout").status_code == 403
        # A team's session is not the instructor's.
        assert c.post("/admin/reveal", data={"csrf": csrf_of(c.get("/team")), "confirm": "reveal"}).status_code == 403
        assert c.get("/api/v1/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()[
            "submissions"] == []
        # The sign-in form has its own CSRF token.
        assert c.post("/signin", data={"token": tok["beta"]}).status_code == 403


def test_a_team_cannot_open_another_teams_submission_file_or_report(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["beta"])
        upload(c, files["good"])
        c.cookies.clear()
        sign_in(c, tok["alpha"])
        for path in ("/team/submissions/1/file", "/team?report=1", "/team/submissions/99/file", "/team?report=99"):
            r = c.get(path)
            assert r.status_code == 404 and "no such submission" in r.text, path
            assert files["good"].read_bytes()[:64] not in r.content
        fin = c.post("/team/finals", data={"csrf": csrf_of(c.get("/team")), "final": "1"})
        assert fin.status_code == 404


def test_rotating_a_token_ends_its_sessions(course, scorer):
    root, tok, admin = course
    app = create_app(root, clock=Clock(), scorer=scorer)
    with TestClient(app) as c:
        sign_in(c, tok["alpha"])
        assert c.get("/team").status_code == 200
        app.state.service.rotate_token("alpha")
        assert c.get("/team", follow_redirects=False).status_code == 303


def test_hostile_names_are_escaped_and_the_roster_stays_off_public_pages(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        for name in HOSTILE:
            c.cookies.clear()
            sign_in(c, tok[name])
            page = upload(c, files["good"])
            assert "<script>alert" not in page.text and "\u202e" not in page.text
        board = c.get("/leaderboard").text
        assert "&lt;script&gt;alert(1)&lt;script&gt;" in board and "<script>" not in board
        assert "\u202e" not in board and "\\u202eevil" in board and "=1+2" in board
        assert "@example.org" not in board and "Student" not in board
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        dash = c.get("/admin").text
        assert "<script>alert" not in dash and "\u202e" not in dash and "s0a@example.org" in dash


def test_dashboard_counts_and_reveal_needs_a_confirmation(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        upload(c, files["good"])
        upload(c, files["bad"])
        upload(c, files["bad"])
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        dash = c.get("/admin")
        codes = dash.text.split('id="codes"')[1].split("</table>")[0]
        assert re.search(r"<code>bad_values</code></td><td class=\"num\">2<", codes)
        days = dash.text.split('id="days"')[1].split("</table>")[0]
        assert "<td>2026-11-02</td><td class=\"num\">1</td><td class=\"num\">2</td>" in days
        assert "chain intact" in dash.text and "not revealed" in dash.text
        full = c.get("/admin/audit")
        assert "Intact" in full.text and "3 submissions" in full.text
        early = c.get("/admin/grades.csv", params={"format": "moodle", "scale": "0.5:10,0.8:20"})
        assert early.status_code == 409 and "not revealed" in early.text
        confirm = c.get("/admin/reveal")
        assert "cannot be undone" in confirm.text
        csrf = csrf_of(confirm)
        # Without the confirmation field nothing is revealed.
        assert c.post("/admin/reveal", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        assert c.get("/api/v1/competition").json()["revealed"] is False
        done = c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal"})
        assert done.status_code == 200 and "revealed" in done.text
        assert c.get("/api/v1/competition").json()["revealed"] is True
        assert "Final (private) board" in c.get("/leaderboard").text
        assert c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal"}).status_code == 409
        # The gradebook: one row per student, the same functions as `server grades`.
        book = c.get("/admin/grades.csv", params={"format": "moodle", "scale": "0.5:10,0.8:20"})
        assert book.status_code == 200 and book.headers["content-type"].startswith("text/csv")
        lines = book.text.splitlines()
        assert lines[0].startswith("ID number,Email address") and len(lines) == 1 + 2 * 5
        assert any(line.startswith("s0a,s0a@example.org") for line in lines)
        plain = c.get("/admin/grades.csv", params={"format": "csv", "scale": "0.5:10,0.8:20"}).text
        assert ",'=1+2," in plain and ",=1+2," not in plain  # a team name read as a formula is guarded
        assert "scale" in c.get("/admin/grades-readme.txt", params={"format": "moodle",
                                                                     "scale": "0.5:10,0.8:20"}).text.lower()
        assert c.get("/admin/grades.csv", params={"format": "xls"}).status_code == 422
        c.cookies.clear()
        assert c.get("/admin/grades.csv", follow_redirects=False).status_code == 303


def test_integrity_page_flags_the_same_file_from_two_teams(course, scorer, files):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        for team in ("alpha", "beta"):
            c.cookies.clear()
            sign_in(c, tok[team])
            receipt = upload(c, files["good"])
            assert "is scored" in receipt.text
        # The second team's page says nothing about who handed the file in first.
        assert "alpha" not in receipt.text.replace("beta", "")
        assert c.get("/admin/integrity", follow_redirects=False).status_code == 303
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        page = c.get("/admin/integrity")
        assert page.status_code == 200
        row = page.text.split('id="flags"')[1].split("</table>")[0]
        assert "identical_file" in row and "alpha" in row and "beta" in row
        csv_text = c.get("/admin/integrity.csv").text
        assert csv_text.splitlines()[0].startswith("kind,team_a") and "identical_file,alpha" in csv_text


def test_a_refused_form_answers_with_the_status_the_api_gives(course, scorer, files):
    # The finals form once refused 'closed' and 'deadline_passed' with 422 where the API says 403.
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        sub = upload(c, files["good"])
        assert sub.status_code == 200 and 'id="receipt"' in sub.text
        bearer = {"Authorization": f"Bearer {tok['alpha']}"}
        assert c.post("/api/v1/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        api = c.put("/api/v1/finals", json={"ids": [1]}, headers=bearer)
        page = c.post("/team/finals", data={"csrf": csrf_of(c.get("/team")), "final": "1"})
        assert api.status_code == page.status_code == 403
        assert api.json()["error"]["code"] == "closed" and "<code>closed</code>" in page.text
        # The upload form too: the page's status is the refusal's own.
        late = upload(c, files["good"])
        assert late.status_code == 403 and "<code>closed</code>" in late.text
        # Malformed ids are the page's own refusal (the API's body is typed): 422.
        assert c.post("/team/finals", data={"csrf": csrf_of(c.get("/team")), "final": "1; DROP"}).status_code == 422


def test_after_the_deadline_the_finals_form_is_refused_as_the_api_refuses(tmp_path, competition, scorer, files):
    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, deadline="2026-11-02T10:00:00+01:00", finals=1)
    with TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        clock.advance(minutes=-1)
        sign_in(c, tok["alpha"])
        assert upload(c, files["good"]).status_code == 200
        clock.advance(minutes=1)
        page = c.post("/team/finals", data={"csrf": csrf_of(c.get("/team")), "final": "1"})
        assert page.status_code == 403 and "deadline_passed" in page.text
        # The refusal page still shows who is signed in (the session guard found it).
        assert 'id="signout"' in page.text


def test_security_headers_come_from_the_middleware_and_the_page_keeps_its_own_policy(course, scorer):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        for path in ("/", "/leaderboard/nothing.csv"):
            r = c.get(path)
            assert r.headers["x-frame-options"] == "DENY" and r.headers["cross-origin-opener-policy"] == "same-origin"
            assert r.headers["cache-control"] == "no-store" and "nonce-" in r.headers["content-security-policy"]
            # One header each: the page does not repeat what the middleware sets.
            assert len(r.headers.get_list("x-content-type-options")) == 1, path


def test_the_pages_import_no_database_module():
    # The contract lint-imports enforces (tests/test_architecture.py runs it): stated here, where it matters.
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    forbidden = [c for c in config["tool"]["importlinter"]["contracts"]
                 if c["type"] == "forbidden" and "brats_kit.server.pages" in c["source_modules"]]
    assert forbidden and set(forbidden[0]["forbidden_modules"]) == {"brats_kit.server.db", "sqlalchemy"}


def test_the_server_process_loads_the_truth_once(course, scorer, files, monkeypatch):
    # The service holds the one loaded truth; the pages' per-slice report uses it (they once loaded their own).
    from data_spec.truth import Truth

    made = []
    init = Truth.__init__

    def counted(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Truth, "__init__", counted)
    root, tok, admin = course
    app = create_app(root, clock=Clock(), scorer=scorer, board_interval_s=0)
    with TestClient(app) as c:
        sign_in(c, tok["alpha"])
        sub = upload(c, files["good"]).status_code
        report = c.get("/team?report=1")
        assert sub == 200 and report.status_code == 200 and 'id="report"' in report.text
        assert c.get("/api/v1/competition").status_code == 200
        c.cookies.clear()
        sign_in(c, admin, role="instructor")
        assert c.get("/admin").status_code == 200
        assert len(made) == 1 and made[0] is app.state.service.truth


def test_the_team_page_and_the_api_hand_in_through_the_same_service_call(course, scorer, files):
    root, tok, admin = course
    app = create_app(root, clock=Clock(), scorer=scorer, board_interval_s=0)
    with TestClient(app) as c:
        service = app.state.service
        calls = []
        own = service.hand_in

        def observed(who, upload_, sha, verdict):
            calls.append((who.team, verdict.status))
            return own(who, upload_, sha, verdict)

        service.hand_in = observed
        sign_in(c, tok["alpha"])
        assert upload(c, files["good"]).status_code == 200
        api = c.post("/api/v1/submissions", files={"file": ("x.npy", files["bad"].read_bytes())},
                     headers={"Authorization": f"Bearer {tok['beta']}"})
        assert api.status_code == 201 and api.json()["status"] == "invalid"
        assert calls == [("alpha", "scored"), ("beta", "invalid")]


def test_an_unknown_gradebook_format_is_a_bad_argument(course, scorer):
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer, board_interval_s=0)) as c:
        sign_in(c, admin, role="instructor")
        for path in ("/admin/grades.csv", "/admin/grades-readme.txt"):
            r = c.get(path, params={"format": "<script>x</script>"})
            assert r.status_code == 422 and "<code>bad_argument</code>" in r.text, path
            assert "<script>x" not in r.text  # the name is echoed escaped


def test_the_instructors_session_is_not_a_teams_on_any_team_form(course, scorer, files):
    # The guards are one dependency per role: the instructor's session and CSRF token open no team form.
    root, tok, admin = course
    with TestClient(create_app(root, clock=Clock(), scorer=scorer, board_interval_s=0)) as c:
        sign_in(c, admin, role="instructor")
        csrf = csrf_of(c.get("/admin"))
        up = c.post("/team/upload", params={"csrf": csrf}, files={"file": ("a", files["good"].read_bytes())})
        fin = c.post("/team/finals", data={"csrf": csrf, "final": "1"})
        assert up.status_code == fin.status_code == 403 and "<code>no_session</code>" in up.text
        assert c.get("/team", follow_redirects=False).headers["location"] == "/"
        assert c.get("/api/v1/admin/status",
                     headers={"Authorization": f"Bearer {admin}"}).json()["submissions"] == 0
        # Signing out takes any signed-in session, with its token.
        assert c.post("/signout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
