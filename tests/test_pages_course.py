"""Issue 21: the course as an instructor and a student live it (reveal, sign-in, times, a closed contest, finals)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from brats_kit.cli import main
from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.service import CourseService
from test_pages import csrf_of, files, sign_in, upload  # noqa: F401 (files is a fixture)
from test_server_support import Clock, make_course

DEADLINE = "2026-11-05T23:59:00+01:00"  # three days after the test clock's start (2026-11-02 09:00 UTC)


def switch(client, token):
    """Sign out whoever is signed in, sign ``token`` in."""
    client.cookies.clear()
    sign_in(client, token)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"BRATS_KIT_TOKEN": None})


@pytest.fixture
def early(tmp_path, competition):
    """A course of three teams whose deadline has not passed, on the test clock."""
    return make_course(tmp_path, competition, teams=("alpha", "beta", "gamma"), deadline=DEADLINE, finals=1)


def test_the_quota_day_follows_the_deadline_offset_and_times_show_in_it(early, scorer, files):
    root, tok, admin = early
    with Course(root) as course:
        assert course.config.timezone == "+01:00"
        service = CourseService(course, clock=Clock())
        day, resets = service.day(Clock()())
        # Local midnight (23:00 UTC), not 00:00 UTC.
        assert (day, resets.isoformat()) == ("2026-11-02", "2026-11-02T23:00:00+00:00")
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        page = upload(c, files["good"]).text
        # The deadline as it was given, to the minute and the zone named; no "Z", no microseconds.
        assert "2026-11-05 23:59 UTC+01:00" in page and "2026-11-02 10:00 UTC+01:00" in page
        assert "22:59:00Z" not in page and ".000" not in page


def test_an_explicit_timezone_wins_over_the_deadline_offset(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition, deadline=DEADLINE, timezone_name="Europe/Paris")
    with Course(root) as course:
        assert course.config.timezone == "Europe/Paris"
        assert CourseService(course, clock=Clock()).deadline_text() == "2026-11-05 23:59 CET"


def test_submission_numbers_count_per_team(early, scorer, files):
    root, tok, admin = early
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        upload(c, files["good"])
        switch(c, tok["beta"])
        receipt = upload(c, files["good"]).text
        # beta's first submission is its 1st, although the course's second.
        assert "Receipt: your submission 1 is scored" in receipt
        assert '<td data-label="#">1</td>' in receipt and '<td data-label="#">2</td>' not in receipt


def test_one_token_box_signs_in_the_instructor_and_teams(early, scorer):
    root, tok, admin = early
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        page = c.get("/").text
        assert 'name="role"' not in page
        assert sign_in(c, admin).headers["location"] == "/admin"
        c.cookies.clear()
        assert sign_in(c, tok["beta"]).headers["location"] == "/team"
        c.cookies.clear()
        assert sign_in(c, "not-" + admin).headers["location"] == "/"  # post/redirect/get
        assert c.get("/").status_code == 401


def test_the_page_refuses_an_early_reveal_until_confirmed_twice_and_counts_teams(early, scorer, files):
    root, tok, admin = early
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        upload(c, files["good"])
        upload(c, files["good"])
        upload(c, files["bad"])  # an invalid file is no hand-in
        switch(c, tok["beta"])
        upload(c, files["bad"])
        switch(c, admin)
        confirm = c.get("/admin/reveal").text
        # Two valid submissions and two invalid ones from two teams, but one team of three handed in.
        assert "1 of 3 teams" in confirm and "4 submissions in all" in confirm
        assert "2026-11-05 23:59 UTC+01:00" in confirm and "not passed" in confirm and 'id="before-deadline"' in confirm
        csrf = csrf_of(c.get("/admin"))
        refused = c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal"})
        assert refused.status_code == 409 and "before_deadline" in refused.text and 'id="before-deadline"' in refused.text
        with Course(root) as course:
            assert not CourseService(course, clock=Clock()).revealed()
        done = c.post("/admin/reveal", data={"csrf": csrf, "confirm": "reveal", "before_deadline": "yes"})
        assert done.status_code == 200 and "revealed" in done.text


def test_after_the_deadline_the_page_asks_once(early, scorer):
    root, tok, admin = early
    clock = Clock()
    clock.advance(days=4)
    with TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        sign_in(c, admin)
        confirm = c.get("/admin/reveal").text
        assert "it has passed" in confirm and 'id="before-deadline"' not in confirm
        done = c.post("/admin/reveal", data={"csrf": csrf_of(c.get("/admin")), "confirm": "reveal"})
        assert done.status_code == 200 and "revealed" in done.text


def test_server_reveal_refuses_before_the_deadline_without_the_flag(tmp_path, competition):
    # The command runs on the real clock: a deadline far ahead.
    root, _, _ = make_course(tmp_path, competition, deadline="2099-01-01T12:00:00+01:00")
    refused = cli("server", "reveal", root, "--yes")
    assert refused.exit_code == 1 and "has not passed" in refused.output and "--before-deadline" in refused.output
    with Course(root) as course:
        assert not CourseService(course).revealed()
    # Without --yes the prompt counts the teams and names the deadline.
    asked = CliRunner().invoke(main, ["server", "reveal", str(root), "--before-deadline"], input="n\n")
    assert "0 of 3 teams handed in" in asked.output and "2099-01-01 12:00 UTC+01:00" in asked.output
    assert asked.exit_code != 0
    done = cli("server", "reveal", root, "--yes", "--before-deadline", "--json")
    assert done.exit_code == 0 and json.loads(done.output)["revealed"] is True


def test_after_the_reveal_the_team_page_is_closed_and_shows_the_standing(early, scorer, files):
    root, tok, admin = early
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        upload(c, files["good"])
        open_page = c.get("/team").text
        assert 'id="upload"' in open_page and 'id="finals"' in open_page and " left)" in open_page
        with Course(root) as course:
            CourseService(course, clock=Clock()).reveal(before_deadline=True)
        page = c.get("/team").text
        assert "The competition is over" in page and "rank 1</strong> of 3 teams" in page
        for gone in ('id="upload"', 'id="finals"', 'id="remaining"', " left)", 'type="checkbox"'):
            assert gone not in page, gone
        switch(c, tok["gamma"])
        assert "no scored submission on the final board" in c.get("/team").text


def test_a_refused_finals_choice_keeps_the_ticked_boxes(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, finals=1)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        for _ in range(3):
            upload(c, files["good"])
        csrf = csrf_of(c.get("/team"))
        assert 'value="1" aria-label="final 1" checked' not in c.get("/team").text
        page = c.post("/team/finals", data={"csrf": csrf, "final": ["1", "3"]})
        assert page.status_code == 422 and "too_many_finals" in page.text
        assert 'value="1" aria-label="final 1" checked' in page.text
        assert 'value="3" aria-label="final 3" checked' in page.text
        assert 'value="2" aria-label="final 2" checked' not in page.text


def test_refused_uploads_are_counted_per_team_and_day(tmp_path, competition, scorer, files):
    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, per_day=1, deadline=DEADLINE)
    bearer = {"Authorization": f"Bearer {tok['beta']}"}
    with TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        ok = upload(c, files["good"])  # post/redirect/get: the team page shows the receipt
        assert ok.status_code == 200 and 'id="receipt"' in ok.text
        over = upload(c, files["good"])  # the page's form: refused before the body is read
        assert over.status_code == 429 and "quota_exceeded" in over.text
        codes = [c.post("/api/v1/submissions", headers=bearer, files={"file": ("p.npy", files["good"].read_bytes())})
                 .status_code for _ in range(2)]
        assert codes == [201, 429]  # the API's second: refused at authentication
        clock.advance(days=4)  # after the deadline
        late = c.post("/api/v1/submissions", headers=bearer, files={"file": ("p.npy", files["good"].read_bytes())})
        assert late.status_code == 403
    with Course(root) as course:
        status = CourseService(course, clock=clock).status()
    teams = {t["team"]: t for t in status["teams"]}
    assert (teams["alpha"]["over_quota"], teams["alpha"]["refused_late"]) == (1, 0)
    assert (teams["beta"]["over_quota"], teams["beta"]["refused_late"]) == (1, 1)
    assert teams["gamma"]["over_quota"] == 0 and teams["beta"]["today_refused"] == 1
    text = cli("server", "status", root).output  # people read the course's zone, to the minute
    assert "deadline 2026-11-05 23:59 UTC+01:00" in text and "over quota" in text and "Z;" not in text
    out = cli("server", "status", root, "--json")
    assert {t["team"]: t["over_quota"] for t in json.loads(out.output)["teams"]} == {"alpha": 1, "beta": 1, "gamma": 0}
    with TestClient(create_app(root, clock=clock, scorer=scorer)) as c:
        sign_in(c, admin)
        table = c.get("/admin").text.split('id="refused"')[1].split("</table>")[0]
        assert "<td>2026-11-02</td><td><bdi>alpha</bdi></td><td class=\"num\">1</td><td class=\"num\">0</td>" in table
        assert "<td>2026-11-02</td><td><bdi>beta</bdi></td><td class=\"num\">1</td><td class=\"num\">0</td>" in table
        assert "<td>2026-11-06</td><td><bdi>beta</bdi></td><td class=\"num\">0</td><td class=\"num\">1</td>" in table


def test_the_dashboards_default_gradebook_works_without_baselines(early, scorer, files):
    root, tok, admin = early
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        sign_in(c, tok["alpha"])
        upload(c, files["good"])
        switch(c, admin)
        c.post("/admin/reveal", data={"csrf": csrf_of(c.get("/admin")), "confirm": "reveal", "before_deadline": "yes"})
        book = c.get("/admin/grades.csv")
        assert book.status_code == 200, book.text
        grades = {line.split(",")[3]: line.split(",")[5] for line in book.text.splitlines()[1:]}
        assert float(grades["alpha"]) > 0 and grades["beta"] == ""
        assert c.get("/admin/grades.csv", params={"zeros": "true"}).text.count(",0.0,") >= 2
        assert "linear:0..1:100" in c.get("/admin/grades-readme.txt").text
