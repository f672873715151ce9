"""A whole course as an instructor and two teams live it, through the installed commands only (issue 21).

Runnable alone: ``pytest tests/walkthrough/test_course_walkthrough.py``. Every step is a
``brats-kit`` process (the server too, on a free loopback port, the real clock), as a
reader of the README would type it: init, tokens, uploads, finals, a refusal, the reveal
refused before the deadline, the reveal, the board, the grades.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from data_spec import load_truth
from data_spec.submission import write_submission

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the suite's helpers, when run alone
from test_server_support import shifted, write_roster  # noqa: E402
from test_submit import RealServer  # noqa: E402

BRATS_KIT = str(Path(sys.executable).parent / "brats-kit")


def run(*args, ok=True, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([BRATS_KIT, *map(str, args)], capture_output=True, text=True, timeout=180,
                          env={"PATH": str(Path(sys.executable).parent), **(env or {})})
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def test_an_instructor_and_two_teams_run_a_whole_course(tmp_path, competition):
    truth = load_truth(competition / "private")
    good, better, bad = tmp_path / "good.npy", tmp_path / "better.npy", tmp_path / "bad.npy"
    write_submission(good, shifted(truth.y, 5))
    write_submission(better, shifted(truth.y, 2))
    np.save(bad, truth.y * np.uint8(255))
    roster = write_roster(tmp_path / "roster.csv", ("owls", "larks"))
    course = tmp_path / "course"

    # The instructor: a course whose deadline is far ahead, two valid uploads a day.
    info = json.loads(run("server", "init", course, "--competition", competition, "--roster", roster,
                          "--per-day", 2, "--deadline", "2099-06-30T23:59:00+02:00", "--json").stdout)
    assert json.loads((course / "private" / "course.json").read_text())["timezone"] == "+02:00"
    assert "tokens.csv" in run("server", "tokens", course).stdout
    tokens = {r["team"]: r["token"] for r in csv.DictReader(open(info["tokens"], encoding="utf-8"))}
    admin = Path(info["admin_token"]).read_text().strip()

    server = RealServer(course, tmp_path / "server.log")
    try:
        url = server.url.removeprefix("http://")  # a bare HOST:PORT means http://
        owls, larks = ({"BRATS_KIT_TOKEN": tokens[t]} for t in ("owls", "larks"))
        # The teams hand in; the client refuses the invalid file before it is sent.
        assert run("submit", good, "--server", url, env=owls).returncode == 0
        assert run("submit", better, "--server", url, env=owls).returncode == 0
        refused = run("submit", bad, "--server", url, env=owls, ok=False)
        assert refused.returncode == 1 and "255" in refused.stdout + refused.stderr
        over = run("submit", good, "--server", url, "--json", env=owls, ok=False)  # the third valid one today
        assert over.returncode == 1 and "quota_exceeded" in over.stdout
        assert run("submit", good, "--server", url, env=larks).returncode == 0
        mine = json.loads(run("submissions", "--server", url, "--json", env=owls).stdout)
        assert [s["status"] for s in mine["submissions"]] == ["scored", "scored"]
        run("finals", mine["submissions"][0]["id"], "--server", url, env=owls)

        # The refusal is counted for the instructor.
        status = json.loads(run("server", "status", course, "--json").stdout)
        assert {t["team"]: t["over_quota"] for t in status["teams"]} == {"larks": 0, "owls": 1}
        assert status["handed_in"] == 2 and status["timezone"] == "+02:00"

        # Revealing before the deadline is refused unless said explicitly.
        early = run("server", "reveal", course, "--yes", ok=False)
        assert early.returncode == 1 and "2099-06-30 23:59 UTC+02:00" in early.stderr + early.stdout
        board = json.loads(run("server", "reveal", course, "--yes", "--before-deadline", "--json").stdout)
        assert board["revealed"] and {r["team"] for r in board["rows"]} == {"owls", "larks"}
        late = run("submit", good, "--server", url, "--json", env=larks, ok=False)
        assert late.returncode == 1 and "closed" in late.stdout

        # The public board: links back, every team, no file names or errors.
        page = httpx.get(server.url + "/leaderboard", timeout=30).text
        assert "owls" in page and "larks" in page and "bad.npy" not in page and "bad_values" not in page
    finally:
        server.stop()

    # The grades, with no baselines: a stated scale; a second export to the same file refuses.
    out = tmp_path / "grades.csv"
    run("server", "grades", course, "--out", out)
    assert "linear:0..1:100" in (tmp_path / "grades.csv.README.txt").read_text()
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["team"] for r in rows} == {"owls", "larks"} and all(float(r["grade"]) > 0 for r in rows)
    again = run("server", "grades", course, "--out", out, "--format", "moodle", ok=False)
    assert again.returncode == 1 and "--force" in again.stderr + again.stdout
