"""The code track on the server (issue 23): jobs queued in the database, run in the sandbox by a pool, recorded once."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from datetime import timedelta

import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from brats_kit.cli import main
from brats_kit.server.client import list_code_jobs, list_submissions, submit, submit_code
from brats_kit.server.course import Course
from brats_kit.server.db import CodeJob, Submission
from brats_kit.server.jobs import MAX_ATTEMPTS, SERVER, CodeJobs, check_code_track, code_config, enable_code_track
from brats_kit.server.run import ServerThread
from brats_kit.server.service import CourseService
from brats_kit.server.verify import audit_course
from data_spec import HIDDEN, case_ids, hidden_public_mask, public_mask, write_competition
from data_spec.layout import open_hidden
from data_spec.submission import write_submission
from data_spec.truth import load_hidden_truth, load_truth
from grader.code import code_user, grade_code, sandbox_problem
from grader.code.users import current_user_name
from test_server_support import make_course
from conftest import make_slices

PROBLEM = sandbox_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")
#: Who the server's jobs run as in these tests: the default (nobody when root) where it can reach the kit's
#: Python environment (.ci/run's); else this process's own user (e.g. a Python under /root, mode 0700).
#: tests/test_code_user.py runs jobs as nobody from a world-readable environment in every case.
CODE_USER = None if PROBLEM or sandbox_problem(code_user()) is None else current_user_name()

THRESHOLD = """
import numpy as np

def predict(x):
    return (x[..., 3] > 1.0).astype(np.uint8)
"""
SLOW = """
import time
import numpy as np

def predict(x):
    time.sleep({seconds})
    return (x[..., 3] > 1.0).astype(np.uint8)
"""
CRASH = """
def predict(x):
    print("SECRET-HIDDEN-INPUT", float(x.sum()))
    raise ValueError("boom")
"""


@pytest.fixture(scope="module")
def hidden_competition(tmp_path_factory):
    """A tiny competition with 4 hidden test slices (inputs and truth under private/ only)."""
    out = tmp_path_factory.mktemp("code-competition")
    xtr, ytr = make_slices(6, seed=1)
    xte, yte = make_slices(5, seed=2)
    xh, yh = make_slices(4, seed=3)
    write_competition(
        out, train={"x": xtr, "y": ytr, "case_id": case_ids("train", 6)},
        test={"x": xte, "y": yte, "case_id": case_ids("test", 5), "public": public_mask(5, 0)},
        hidden={"x": xh, "y": yh, "case_id": case_ids(HIDDEN, 4), "public": hidden_public_mask(4, 0)},
        attrs={"generator": "tests.test_code_jobs", "seed": 0}, manifest={"generator": "tests.test_code_jobs"})
    return out


def code_course(tmp_path, competition, *, time_limit=60.0, workers=1, show_logs=False, **kw):
    root, tokens, admin = make_course(tmp_path, competition, **kw)
    enable_code_track(root, check_code_track(competition, time_limit=time_limit, memory_mb=2048, workers=workers,
                                             show_logs=show_logs, user=CODE_USER))
    return root, tokens, admin


def folder(tmp_path, body, name="code"):
    d = tmp_path / name
    d.mkdir()
    (d / "submission.py").write_text(body)
    return d


def wait_for(server, token, job_id, states=("scored", "invalid", "failed"), timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = next(j for j in list_code_jobs(server.url, token) if j["id"] == job_id)
        if job["status"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def test_init_code_refuses_without_hidden_slices_or_sandbox(tmp_path, competition, hidden_competition, monkeypatch):
    from test_server_support import write_roster

    roster = write_roster(tmp_path / "roster.csv", ("alpha",))
    result = CliRunner().invoke(main, ["server", "init", str(tmp_path / "c1"), "--competition", str(competition),
                                       "--roster", str(roster), "--code"])
    assert result.exit_code == 1, result.output
    assert "hidden" in result.output and not (tmp_path / "c1").exists()
    import grader.code.bwrap as bwrap

    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)
    bwrap.sandbox_problem.cache_clear()
    try:
        result = CliRunner().invoke(main, ["server", "init", str(tmp_path / "c2"), "--competition",
                                           str(hidden_competition), "--roster", str(roster), "--code"])
    finally:
        monkeypatch.undo()
        bwrap.sandbox_problem.cache_clear()
    assert result.exit_code == 1, result.output
    assert "sandbox" in result.output and not (tmp_path / "c2").exists()
    result = CliRunner().invoke(main, ["server", "init", str(tmp_path / "c3"), "--competition",
                                       str(hidden_competition), "--roster", str(roster), "--code",
                                       "--code-time-limit", "30", "--json"]
                                 + (["--code-user", CODE_USER] if CODE_USER else []))
    assert result.exit_code == 0, result.output
    with Course(tmp_path / "c3") as c:
        assert code_config(c.config).time_limit == 30 and not code_config(c.config).show_logs
        # The user its jobs run as is recorded: the default is nobody for a server started as root.
        assert code_config(c.config).user == (CODE_USER or ("nobody" if os.geteuid() == 0 else current_user_name()))


def test_benign_code_is_scored_as_at_home_and_ranked_like_a_file(tmp_path, hidden_competition):
    root, tokens, admin = code_course(tmp_path, hidden_competition)
    code = folder(tmp_path, THRESHOLD)
    with ServerThread(root, board_interval_s=0) as server:
        receipt = submit_code(code, server.url, tokens["alpha"])
        assert receipt["status"] == "queued"
        job = wait_for(server, tokens["alpha"], receipt["id"])
        board = server.app.state.service.leaderboard("code")  # its own track's board, on the hidden truth
        assert server.app.state.service.leaderboard()["rows"] == []
    hidden = open_hidden(hidden_competition)
    run, verdict = grade_code(code, np.asarray(hidden.x), load_hidden_truth(hidden_competition))
    assert job["status"] == "scored" and verdict.status == "scored"
    assert job["public"] == pytest.approx(verdict.counts.scores("public"))
    assert "log" not in job
    (row,) = board["rows"]
    assert row["team"] == "alpha" and row["submission"] == job["submission"]
    with Course(root) as c:
        checked = audit_course(c)
        from brats_kit.server.integrity import integrity_of_course

        assert integrity_of_course(CourseService(c)).flags == []  # the archive is never read as a prediction
    assert checked["ok"], checked["problems"]


def test_failures_show_their_class_not_the_output_and_logs_go_to_the_instructor(tmp_path, hidden_competition):
    root, tokens, admin = code_course(tmp_path, hidden_competition)
    with ServerThread(root, board_interval_s=0) as server:
        crashed = wait_for(server, tokens["alpha"], submit_code(folder(tmp_path, CRASH), server.url,
                                                                tokens["alpha"])["id"])
        invalid = wait_for(server, tokens["alpha"], submit_code(
            folder(tmp_path, "def predict(x):\n    return x[..., 0]\n", "probabilities"), server.url,
            tokens["alpha"])["id"])
        import httpx

        logs = httpx.get(f"{server.url}/api/v1/admin/code", headers={"Authorization": f"Bearer {admin}"}).json()
        other = httpx.get(f"{server.url}/api/v1/code/{crashed['id']}",
                          headers={"Authorization": f"Bearer {tokens['beta']}"})
        listing = list_submissions(server.url, tokens["alpha"])
        from test_pages import sign_in

        with httpx.Client(base_url=server.url) as team, httpx.Client(base_url=server.url) as instructor:
            sign_in(team, tokens["alpha"])
            team_page = team.get("/team").text
            sign_in(instructor, admin, role="instructor")
            dashboard = instructor.get("/admin").text
    assert f'id="job-{crashed["id"]}"' in team_page and "crashed (ValueError)" in team_page
    assert "SECRET-HIDDEN-INPUT" not in team_page and "SECRET-HIDDEN-INPUT" in dashboard
    assert (crashed["status"], crashed["failure"], crashed["error_type"]) == ("failed", "crashed", "ValueError")
    assert "SECRET-HIDDEN-INPUT" not in json.dumps(crashed) and "boom" not in json.dumps(crashed)
    assert invalid["status"] == "invalid" and {e["code"] for e in invalid["errors"]} >= {"bad_values"}
    assert other.status_code == 404
    full = {j["id"]: j for j in logs["jobs"]}
    assert "SECRET-HIDDEN-INPUT" in full[crashed["id"]]["log"] and "boom" in full[crashed["id"]]["log"]
    # The student's own failures are invalid submissions: they count against the invalid cap, never the valid one.
    assert listing["remaining_today"] == 5 and listing["invalid_remaining_today"] == 20 - 2
    with Course(root) as c:
        checked = audit_course(c)
    assert checked["ok"], checked["problems"]


def test_show_logs_is_the_instructors_choice(tmp_path, hidden_competition):
    root, tokens, _ = code_course(tmp_path, hidden_competition, show_logs=True)
    with ServerThread(root, board_interval_s=0) as server:
        job = wait_for(server, tokens["alpha"], submit_code(folder(tmp_path, CRASH), server.url, tokens["alpha"])["id"])
    assert "SECRET-HIDDEN-INPUT" in job["log"]


def test_server_failures_are_retried_once_then_failed_and_never_counted(tmp_path, hidden_competition):
    root, tokens, _ = code_course(tmp_path, hidden_competition)
    service = CourseService(Course(root))  # no runner: the test plays the worker whose process is lost twice
    jobs = CodeJobs(service, code_config(service.config))
    who = service.authenticate(tokens["beta"], "test")
    upload = service.course.store.upload(2**20)
    upload.write(b"PK\x05\x06" + b"\x00" * 18)  # any archive: it never runs
    receipt = jobs.enqueue(who, upload, upload.finish())
    assert receipt["status"] == "queued"
    for attempt, state in ((1, "queued"), (2, "failed")):
        job_id, got, _ = jobs.claim()
        assert (job_id, got) == (receipt["id"], attempt)
        assert jobs.record(job_id, attempt, error=RuntimeError("worker lost")) == state
    assert jobs.record(receipt["id"], MAX_ATTEMPTS, error=RuntimeError("late")) is None  # stale: nothing changes
    # A scored outcome arriving after the job failed: not recorded, and its prediction not kept in the store.
    late = {"run": {"status": "ok", "log": "", "seconds": 1.0}, "fields": {"status": "scored"},
            "prediction": b"\x93NUMPY late prediction"}
    assert jobs.record(receipt["id"], MAX_ATTEMPTS, late) is None
    assert not service.course.store.path(hashlib.sha256(late["prediction"]).hexdigest()).exists()
    assert jobs.claim() is None
    assert audit_course(service.course)["notes"] == []  # the failed job's archive is kept, and known
    job = jobs.get_job(who, receipt["id"])
    listing = service.list_submissions(who)
    assert (job["status"], job["failure"], job["submission"]) == ("failed", SERVER, None)
    assert listing["submissions"] == [] and listing["remaining_today"] == 5 and listing["invalid_remaining_today"] == 20
    service.course.close()


def test_a_job_whose_lease_ended_is_retried_then_failed(tmp_path, hidden_competition):
    root, tokens, _ = code_course(tmp_path, hidden_competition)
    service = CourseService(Course(root))
    jobs = CodeJobs(service, code_config(service.config))
    who = service.authenticate(tokens["beta"], "test")
    upload = service.course.store.upload(2**20)
    upload.write(b"PK\x05\x06" + b"\x00" * 18)
    job_id = jobs.enqueue(who, upload, upload.finish())["id"]
    jobs.claim()
    assert jobs.recover() == 0  # the lease runs
    with service.course.sessions() as s, s.begin():
        s.execute(update(CodeJob).values(lease_until=service.now() - timedelta(seconds=1)))
    assert jobs.recover() == 1 and jobs.get_job(who, job_id)["status"] == "queued"
    jobs.claim()
    assert jobs.recover(all_running=True) == 1  # a restart finds it running: its second attempt is gone
    assert jobs.get_job(who, job_id)["failure"] == SERVER
    service.course.close()


def _sandbox_workers() -> list:
    """Processes of ours that are the parent of a running ``bwrap``: the pool's workers running a job."""
    me = psutil.Process()
    out = []
    for child in me.children(recursive=True):
        try:
            parent = child.parent()
            if child.name() == "bwrap" and parent is not None and parent.pid != me.pid and parent.name() != "bwrap":
                out.append(parent)
        except psutil.NoSuchProcess:
            continue
    return out


def test_a_killed_worker_is_retried_and_a_file_upload_completes_meanwhile(tmp_path, hidden_competition):
    root, tokens, _ = code_course(tmp_path, hidden_competition)
    truth = load_truth(hidden_competition / "private")
    pred = tmp_path / "pred.npy"
    write_submission(pred, truth.y)
    with ServerThread(root, board_interval_s=0) as server:
        receipt = submit_code(folder(tmp_path, SLOW.format(seconds=4)), server.url, tokens["alpha"])
        wait_for(server, tokens["alpha"], receipt["id"], states=("running",))
        deadline = time.monotonic() + 60
        while not _sandbox_workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        # A file upload while the job runs: its receipt comes while the job is still running.
        file_receipt = submit(pred, server.url, tokens["beta"])
        still = next(j for j in list_code_jobs(server.url, tokens["alpha"]) if j["id"] == receipt["id"])
        assert file_receipt.status == "scored" and still["status"] == "running"
        (worker,) = _sandbox_workers()
        os.kill(worker.pid, signal.SIGKILL)
        job = wait_for(server, tokens["alpha"], receipt["id"])
    assert job["status"] == "scored" and job["attempts"] == 2


def test_a_job_survives_a_server_restart(tmp_path, hidden_competition, db):
    root, tokens, _ = code_course(tmp_path, hidden_competition, db=db)
    with ServerThread(root, board_interval_s=0) as server:
        receipt = submit_code(folder(tmp_path, SLOW.format(seconds=3)), server.url, tokens["gamma"])
        wait_for(server, tokens["gamma"], receipt["id"], states=("running",))
    with Course(root) as c, c.sessions() as s:  # the server went down mid-job
        assert s.get(CodeJob, receipt["id"]).state in ("queued", "running")
    with ServerThread(root, board_interval_s=0) as server:
        job = wait_for(server, tokens["gamma"], receipt["id"])
    assert job["status"] == "scored" and job["attempts"] <= MAX_ATTEMPTS
    with Course(root) as c, c.sessions() as s:
        assert s.scalars(select(Submission).where(Submission.id == job["submission"])).one().status == "scored"


def test_hostile_archives_are_refused_before_queueing(tmp_path, hidden_competition):
    import zipfile

    import httpx

    root, tokens, _ = code_course(tmp_path, hidden_competition)
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../etc/cron.d/x", "boom")
    with ServerThread(root, board_interval_s=0) as server:
        r = httpx.post(f"{server.url}/api/v1/code", files={"file": ("x.zip", bad.read_bytes())},
                       headers={"Authorization": f"Bearer {tokens['alpha']}"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_package"
        assert list_code_jobs(server.url, tokens["alpha"]) == []
        spec = httpx.get(f"{server.url}/openapi.json").json()

    def answer(path, method, code):
        schema = spec["paths"][f"/api/v1{path}"][method]["responses"][code]["content"]["application/json"]["schema"]
        return schema["$ref"].rsplit("/", 1)[-1]

    assert answer("/code", "post", "201") == answer("/code/{job_id}", "get", "200") == "CodeJob"
    assert answer("/code", "get", "200") == "CodeJobList" and answer("/admin/code", "get", "200") == "CodeJobLogs"
    assert answer("/code", "post", "422") == "ErrorBody"


def test_a_course_without_the_code_track_refuses_code(tmp_path, competition):
    root, tokens, _ = make_course(tmp_path, competition)
    with ServerThread(root, board_interval_s=0) as server:
        assert list_code_jobs(server.url, tokens["alpha"]) is None


def test_submit_and_submissions_commands_take_a_folder_or_a_zip(tmp_path, hidden_competition):
    import zipfile

    root, tokens, _ = code_course(tmp_path, hidden_competition)
    code = folder(tmp_path, THRESHOLD)
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(code / "submission.py", "code/submission.py")
    no_module = tmp_path / "empty"
    no_module.mkdir()
    runner = CliRunner()
    with ServerThread(root, board_interval_s=0) as server:
        common = ["--server", server.url, "--token", tokens["alpha"], "--json"]
        ids = []
        for source in (code, archive):
            result = runner.invoke(main, ["submit", str(source)] + common)
            assert result.exit_code == 0, result.output
            job = json.loads(result.output)
            assert job["status"] == "queued"
            ids.append(job["id"])
        refused = runner.invoke(main, ["submit", str(no_module)] + common)
        assert refused.exit_code == 1 and "submission.py" in refused.output
        for i in ids:
            wait_for(server, tokens["alpha"], i)
        listing = runner.invoke(main, ["submissions"] + common)
        text = runner.invoke(main, ["submissions"] + common[:-1])
    assert listing.exit_code == 0, listing.output
    jobs = json.loads(listing.output)["code_jobs"]
    assert [j["status"] for j in jobs] == ["scored", "scored"]
    assert "code jobs: 2" in text.output and "SCORED" in text.output


ATTACK = """
import os, socket

class Leaked(Exception):
    pass

def predict(x):
    found = []
    for path in {paths!r}:
        try:
            with open(path, "rb") as fh:
                found.append((path, len(fh.read(10))))
        except OSError:
            pass
    try:
        os.makedirs({store!r} + "/planted", exist_ok=True)  # checked on the host
    except OSError:
        pass
    if any(k.startswith("BRATS") or "SECRET" in v for k, v in os.environ.items()):
        found.append("environment")
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2)
        found.append("network")
    except OSError:
        pass
    if found:
        raise Leaked(str(found))
    raise PermissionError("nothing reachable")
"""


@pytest.fixture
def outside_tmp():
    """A folder outside /tmp (the sandbox's /tmp is its own tmpfs: a course under /tmp would be out of reach anyway)."""
    import shutil
    import tempfile

    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="brats-jobs-test-", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_hostile_job_reaches_nothing_of_the_course(outside_tmp, tmp_path, hidden_competition, monkeypatch):
    root, tokens, admin = code_course(outside_tmp, hidden_competition)
    monkeypatch.setenv("BRATS_KIT_TOKEN", tokens["beta"])
    monkeypatch.setenv("COURSE_SECRET", "SECRET")
    private = root / "private"
    paths = [str(p) for p in (private / "tokens.csv", private / "admin_token.txt", private / "course.db",
                              private / "course.json", hidden_competition / "private" / "hidden_test.h5",
                              hidden_competition / "private" / "test_truth.h5")]
    with ServerThread(root, board_interval_s=0) as server:
        other = submit_code(folder(tmp_path, THRESHOLD, "other-team"), server.url, tokens["beta"])
        wait_for(server, tokens["beta"], other["id"])
        with Course(root) as c:
            paths.append(str(c.store.path(other["sha256"])))  # another team's code
        body = ATTACK.format(paths=paths, store=str(root / "store"), port=server.port)
        job = wait_for(server, tokens["alpha"], submit_code(folder(tmp_path, body), server.url, tokens["alpha"])["id"])
        import httpx
        logs = httpx.get(f"{server.url}/api/v1/admin/code", headers={"Authorization": f"Bearer {admin}"}).json()
    log_text = logs["jobs"][-1]["log"]
    assert all(os.path.exists(p) for p in paths)  # they exist on the host...
    assert (job["status"], job["failure"], job["error_type"]) == ("failed", "crashed", "PermissionError"), log_text
    assert not (root / "store" / "planted").exists()  # ...and nothing of them was reached from the sandbox


def test_a_course_made_before_the_code_track_still_starts(tmp_path, competition):
    from sqlalchemy import inspect

    root, tokens, _ = make_course(tmp_path, competition)
    with Course(root) as c:
        CodeJob.__table__.drop(c.engine)
    with ServerThread(root, board_interval_s=0) as server:
        assert list_submissions(server.url, tokens["alpha"])["submissions"] == []
    with Course(root) as c:
        assert "code_job" in inspect(c.engine).get_table_names()


def test_a_queued_job_holds_a_slot_of_the_daily_quota(tmp_path, hidden_competition):
    from brats_kit.server.client import SubmissionRefused

    root, tokens, _ = code_course(tmp_path, hidden_competition, per_day=2)
    pred = tmp_path / "pred.npy"
    write_submission(pred, load_truth(hidden_competition / "private").y)
    with ServerThread(root, board_interval_s=0) as server:
        job_id = submit_code(folder(tmp_path, SLOW.format(seconds=3)), server.url, tokens["alpha"])["id"]
        assert submit(pred, server.url, tokens["alpha"]).status == "scored"  # the second slot
        for hand_in in (lambda: submit(pred, server.url, tokens["alpha"]),
                        lambda: submit_code(folder(tmp_path, THRESHOLD, "again"), server.url, tokens["alpha"])):
            with pytest.raises(SubmissionRefused) as refused:
                hand_in()
            assert refused.value.status == 429
        assert list_submissions(server.url, tokens["alpha"])["remaining_today"] == 0
        assert wait_for(server, tokens["alpha"], job_id)["status"] == "scored"
        listing = list_submissions(server.url, tokens["alpha"])
    assert listing["remaining_today"] == 0 and len(listing["submissions"]) == 2
