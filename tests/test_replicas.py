"""Several ``brats-kit server run --replica`` processes on one PostgreSQL database and one course folder (issue 24).

Each replica is a real process on its own loopback port; what they share is the
database and the folder. The tests run in order on one course (the reveal is last).
"""
from __future__ import annotations

import concurrent.futures
import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from brats_kit.server.course import Course, read_tokens
from brats_kit.server.db import Submission
from brats_kit.server.client import list_code_jobs, submit_code
from brats_kit.server.shared import BOARD_BUILDER, CODE_JOB, holders
from brats_kit.server.verify import audit_course
from data_spec import load_truth
from data_spec.submission import write_submission
from test_code_jobs import PROBLEM, SLOW, code_course, folder, hidden_competition  # noqa: F401 - a fixture
from test_server_support import make_course, shifted
from test_submit import BRATS_KIT, cli, free_port

#: The code-track test needs the sandbox and Dask's commands; the others run without.
DASK = Path(sys.executable).with_name("dask")
CODE_TRACK = PROBLEM is None and DASK.exists()
TEAMS = ("alpha", "beta", "gamma", "delta", "omega", "kappa")

PER_DAY = 4
API = "/api/v1"


class Replica:
    """``brats-kit server run COURSE --replica`` on a free loopback port (its log in ``log``)."""

    def __init__(self, root: Path, log: Path, *extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen([BRATS_KIT, "server", "run", str(root), "--replica", "--port", str(self.port),
                                      *extra], stdout=self._out, stderr=self._out)

    def wait_up(self, timeout: float = 90.0) -> "Replica":
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}{API}/competition", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._out.close()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def start_replicas(root: Path, tmp: Path, n: int, *extra) -> list:
    replicas = [Replica(root, tmp / f"replica-{i}.log", *extra) for i in range(n)]  # they start together
    return [r.wait_up() for r in replicas]


def stop_all(replicas) -> None:
    for r in replicas:  # SIGINT to all first: they shut down side by side
        if r.alive():
            r.proc.send_signal(signal.SIGINT)
    for r in replicas:
        r.stop()


class DaskCluster:
    """A ``dask scheduler`` on a random loopback port and one one-thread ``dask worker`` (own process groups)."""

    def __init__(self, tmp: Path):
        file = tmp / "scheduler.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
        self.procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                        "--no-dashboard", "--scheduler-file", str(file)], **quiet)]
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]
        self.procs.append(subprocess.Popen([str(DASK), "worker", self.address, "--nthreads", "1", "--no-nanny",
                                            "--no-dashboard", "--host", "127.0.0.1"], **quiet))

    def stop(self) -> None:
        for p in reversed(self.procs):  # throw-away: a worker's graceful close waits for its scheduler's timeouts
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture(scope="module")
def comp(request):
    """The competition: with hidden slices when the code track can run here."""
    return request.getfixturevalue("hidden_competition" if CODE_TRACK else "competition")


@pytest.fixture(scope="module")
def files(tmp_path_factory, comp):
    """Distinct valid submissions (``good-I.npy``) of the competition."""
    truth = load_truth(comp / "private")
    d = tmp_path_factory.mktemp("replica-subs")
    out = []
    for i in range(12):
        write_submission(d / f"good-{i}.npy", shifted(truth.y, i + 1))
        out.append(d / f"good-{i}.npy")
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory, comp, pg_cluster):
    """Four replicas of one course (on a Dask cluster when the code track can run here)."""
    tmp = tmp_path_factory.mktemp("replicas")
    kw = dict(db=pg_cluster.new_database(), per_day=PER_DAY, teams=TEAMS, extra={"board_interval_s": 0.2})
    dask, extra = None, ()
    if CODE_TRACK:
        root, tokens, admin = code_course(tmp, comp, time_limit=30.0, **kw)
        dask = DaskCluster(tmp)
        extra = ("--executor", dask.address)
    else:
        root, tokens, admin = make_course(tmp, comp, **kw)
    replicas = start_replicas(root, tmp, 4, *extra)
    state = {"root": root, "tokens": tokens, "admin": admin, "replicas": replicas, "tmp": tmp}
    yield state
    stop_all(replicas)  # every one started (the tests keep those still up in state["replicas"])
    if dask is not None:
        dask.stop()


def upload(url: str, token: str, path: Path) -> httpx.Response:
    with open(path, "rb") as fh:
        return httpx.post(f"{url}{API}/submissions", headers={"Authorization": f"Bearer {token}"},
                          files={"file": (path.name, fh)}, timeout=120)


def scored(root: Path, team_id=None) -> int:
    with Course(root) as c, c.sessions() as s:
        where = [Submission.status == "scored"] + ([Submission.team_id == team_id] if team_id else [])
        return s.scalar(select(func.count()).select_from(Submission).where(*where))


def builders(root: Path) -> list:
    """The pids of the processes holding the live board's builder lock now."""
    with Course(root) as c:
        return holders(c.engine, BOARD_BUILDER)


def _board(url: str) -> bytes:
    """The live board's table as a replica serves it (404 before the first build)."""
    answer = httpx.get(f"{url}/leaderboard/leaderboard.csv", timeout=30)
    return answer.content if answer.status_code == 200 else b""


def _wait(predicate, timeout: float = 90.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_replica_on_sqlite_is_refused_with_a_named_error(tmp_path, competition):
    root, _, _ = make_course(tmp_path, competition)
    result = cli("server", "run", root, "--replica", "--port", free_port())
    assert result.exit_code == 1, result.output
    assert "server run --replica needs a PostgreSQL database, not sqlite" in result.output


def test_quotas_stay_exact_when_one_team_uploads_to_every_replica_at_once(course, files):
    replicas, token = course["replicas"], course["tokens"]["alpha"]
    jobs = [(replicas[i % len(replicas)].url, files[i]) for i in range(3 * PER_DAY)]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: upload(job[0], token, job[1]), jobs))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == PER_DAY, codes
    assert set(codes) == {201, 429}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} <= {"quota_exceeded", "too_many_in_flight"}
    receipts = [a.json() for a in answers if a.status_code == 201]
    assert sorted(r["remaining_today"] for r in receipts) == list(range(PER_DAY))  # each saw the ones before
    with Course(course["root"]) as c, c.sessions() as s:
        team_id = s.scalar(select(Submission.team_id).where(Submission.id == receipts[0]["id"]))
    assert scored(course["root"], team_id) == PER_DAY


def _csrf(page: str) -> str:
    return html.unescape(re.search(r'name="csrf" value="([^"]+)"', page).group(1))


def _signed_in(url: str, token: str) -> dict:
    """The cookies of a browser signed in as a team on ``url``."""
    with httpx.Client(base_url=url) as browser:
        csrf = _csrf(browser.get("/").text)
        assert browser.post("/signin", data={"csrf": csrf, "token": token, "role": "team"}).status_code == 303
        return dict(browser.cookies)


def test_a_rotated_token_ended_sessions_and_a_sign_out_take_effect_on_every_replica(course):
    replicas, root = course["replicas"], course["root"]
    old = course["tokens"]["delta"]
    for r in replicas:
        assert httpx.get(f"{r.url}{API}/submissions", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    result = cli("server", "tokens", root, "--rotate", "delta", "--json")
    assert result.exit_code == 0, result.output
    new = read_tokens(json.loads(result.output)["tokens"])["delta"]
    assert new != old
    for r in replicas:
        assert httpx.get(f"{r.url}{API}/submissions", headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert httpx.get(f"{r.url}{API}/submissions", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    # A browser signed in on one replica is signed in on all (one secret, sessions in the database)...
    cookies = _signed_in(replicas[0].url, new)
    for r in replicas:
        assert httpx.get(f"{r.url}/team", cookies=cookies).status_code == 200
    # ... and "end all sessions" signs it out of every one.
    assert cli("server", "tokens", root, "--end-sessions").exit_code == 0
    for r in replicas:
        assert httpx.get(f"{r.url}/team", cookies=cookies).status_code == 303
    # Signed in on one replica, signed out on another: a copy of the cookie opens nothing on any.
    cookies = _signed_in(replicas[0].url, new)
    page = httpx.get(f"{replicas[1].url}/team", cookies=cookies)
    out = httpx.post(f"{replicas[1].url}/signout", cookies=cookies, data={"csrf": _csrf(page.text)})
    assert out.status_code == 303
    for r in replicas:
        assert httpx.get(f"{r.url}/team", cookies=cookies).status_code == 303


def test_one_replica_builds_the_board_every_replica_serves_it_and_another_takes_over(course, files):
    replicas = course["replicas"]
    # The board built since the first uploads (alpha's), by one replica, served by all: the same bytes.
    _wait(lambda: all(b"alpha" in _board(r.url) for r in replicas), what="alpha on every replica's board")
    assert len({_board(r.url) for r in replicas}) == 1
    pids = {r.proc.pid: r for r in replicas}
    (builder_pid,) = builders(course["root"])
    builder = pids[builder_pid]
    builder.kill()
    others = [r for r in replicas if r is not builder]
    assert upload(others[0].url, course["tokens"]["gamma"], files[6]).status_code == 201
    _wait(lambda: all(b"gamma" in _board(r.url) for r in others), what="gamma on the board after the takeover")
    (taken_over,) = builders(course["root"])
    assert taken_over in {r.proc.pid for r in others}
    course["replicas"] = others


def test_a_replica_killed_under_load_loses_no_receipt_its_code_job_is_finished_and_the_audit_holds(course, files,
                                                                                                   tmp_path):
    replicas, root, tokens = course["replicas"], course["root"], course["tokens"]
    victim = replicas[1]
    if CODE_TRACK:  # a slow job, then the replica running it is the one killed
        job_id = submit_code(folder(tmp_path, SLOW.format(seconds=3)), replicas[0].url, tokens["kappa"])["id"]
        with Course(root) as c:
            runner = _wait(lambda: holders(c.engine, CODE_JOB), what="the job claimed by a replica")
        victim = next(r for r in replicas if r.proc.pid == runner[0])
    teams = ("beta", "gamma", "omega")
    receipts, lock = [], threading.Lock()

    def hand_in(i: int) -> None:
        team = teams[i % len(teams)]
        try:
            answer = upload(replicas[i % len(replicas)].url, tokens[team], files[i % len(files)])
        except httpx.TransportError:
            return  # the replica died under this upload: no receipt was given
        if answer.status_code == 201:
            with lock:
                receipts.append(answer.json())

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hand_in, i) for i in range(PER_DAY * len(teams))]
        _wait(lambda: len(receipts) >= 2, what="uploads accepted before the kill")
        victim.kill()
        concurrent.futures.wait(futures)
    survivors = [r for r in replicas if r is not victim]
    course["replicas"] = survivors
    assert receipts
    if CODE_TRACK:  # retried by a replica still up: scored, not stuck
        job = _wait(lambda: next((j for j in list_code_jobs(survivors[0].url, tokens["kappa"])
                                  if j["id"] == job_id and j["status"] not in ("queued", "running")), None),
                    timeout=60, what="the job finished by another replica")
        assert job["status"] == "scored", job
    with Course(root) as c, c.sessions() as s:
        recorded = {sub.id: sub.sha256 for sub in s.scalars(select(Submission))}
        per_team = dict(s.execute(select(Submission.team_id, func.count()).where(Submission.status == "scored")
                                  .group_by(Submission.team_id)).all())
    assert all(recorded.get(r["id"]) == r["sha256"] for r in receipts)  # 0 lost
    assert max(per_team.values()) <= PER_DAY  # quotas exact
    with Course(root) as c:
        report = audit_course(c)
    assert report["ok"], report["problems"]


def test_failed_authentications_are_counted_over_every_replica(course):
    replicas = course["replicas"]
    # Alternating replicas: per-process limiters would each allow 20 failures, answering 401 to all 40 tries.
    codes = [httpx.get(f"{replicas[i % len(replicas)].url}{API}/submissions",
                      headers={"Authorization": "Bearer nope"}).status_code for i in range(40)]
    first = codes.index(429)
    assert first <= 20 and codes[:first] == [401] * first and codes[first:] == [429] * (40 - first), codes
    for r in replicas:  # every replica refuses the address now, and still lets a right token in
        assert httpx.get(f"{r.url}{API}/submissions", headers={"Authorization": "Bearer nope"}).status_code == 429
        ok = httpx.get(f"{r.url}{API}/submissions", headers={"Authorization": f"Bearer {course['tokens']['beta']}"})
        assert ok.status_code == 200


def test_a_reveal_on_one_replica_closes_every_replica(course, files):
    replicas, admin = course["replicas"], course["admin"]
    answer = httpx.post(f"{replicas[0].url}{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"},
                        timeout=60)
    assert answer.status_code == 200, answer.text
    for r in replicas:
        assert httpx.get(f"{r.url}{API}/competition").json()["revealed"] is True
        refused = upload(r.url, course["tokens"]["omega"], files[0])
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "closed"


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_starting_replica_tidies_only_old_files_of_the_shared_store(tmp_path):
    from brats_kit.server.store import Store

    store = Store(tmp_path / "store")
    store.create()
    files = {}
    for name, age in (("old", 3600), ("young", 1)):
        upload = store.upload(1 << 20)
        upload.write(name.encode())
        upload.finish()
        files[f"{name}-tmp"] = _aged(upload.path, age)
        other = store.upload(1 << 20)
        other.write(name.encode() * 2)
        files[f"{name}-stored"] = _aged(store.commit(other, other.finish()), age)
    removed, moved = store.recover(set(), older_than=600)
    assert removed == [files["old-tmp"]] and [p.name for p in moved] == [files["old-stored"].name]
    assert files["young-tmp"].exists() and files["young-stored"].exists()  # another replica's, in progress
    # A shared store touches a file stored again (the same bytes): a starting replica sees it in use.
    store.shared = True
    again = store.upload(1 << 20)
    again.write(b"young" * 2)
    sha = again.finish()
    _aged(store.path(sha), 3600)
    store.commit(again, sha)
    assert store.recover(set(), older_than=600) == ([], [])
    # ... and leaves a refused upload's file in place: another replica may be recording the same bytes.
    with pytest.raises(RuntimeError):
        with store.staged(sha, lambda _sha: False):
            raise RuntimeError("refused in the transaction")
    assert store.path(sha).exists()


def test_replica_start_up_refuses_sqlite_before_touching_the_store(tmp_path, competition):
    from brats_kit.server.service import startup_checks
    from data_spec.errors import KitError

    root, _, _ = make_course(tmp_path, competition)
    leftover = root / "store" / "tmp" / "upload-x.tmp"
    leftover.write_bytes(b"x")
    with Course(root) as c, pytest.raises(KitError) as err:
        startup_checks(c, replica=True)
    assert err.value.code == "replica_needs_postgresql" and leftover.exists()


@pytest.mark.skipif(not CODE_TRACK, reason="no sandbox or no Dask here: the code track cannot be enabled")
def test_code_jobs_of_replicas_are_held_by_their_runner_and_freed_by_its_death_or_its_lease(tmp_path, comp,
                                                                                            pg_cluster):
    from datetime import timedelta

    from sqlalchemy import update

    from brats_kit.server.db import CodeJob
    from brats_kit.server.jobs import CodeJobs, code_config
    from brats_kit.server.service import CourseService

    root, tokens, _ = code_course(tmp_path, comp, db=pg_cluster.new_database())
    # Two replicas in one process: each its own service and lock session (its own PostgreSQL connection).
    a, b = (CourseService(Course(root), replica=True) for _ in range(2))
    jobs_a, jobs_b = (CodeJobs(s, code_config(s.config)) for s in (a, b))
    who = a.authenticate(tokens["beta"], "test")
    upload = a.course.store.upload(2**20)
    upload.write(b"PK\x05\x06" + b"\x00" * 18)  # any archive: it never runs
    job_id = jobs_a.enqueue(who, upload, upload.finish())["id"]
    assert jobs_a.claim()[:2] == (job_id, 1)
    jobs_b.recover(all_running=True)  # b starting while a runs it: a's job is left alone
    assert jobs_b.recover() == 0 and jobs_b.get_job(who, job_id)["status"] == "running"
    a.close()  # a's connection ends (as when it is SIGKILLed): the job is b's to retry, before its lease ends
    assert jobs_b.recover() == 1 and jobs_b.get_job(who, job_id)["status"] == "queued"
    assert jobs_b.claim()[:2] == (job_id, 2)
    # b's own lease ended (its worker never answered): retried no more, and its lock let go with it
    with b.course.sessions() as s, s.begin():
        s.execute(update(CodeJob).values(lease_until=b.now() - timedelta(seconds=1)))
    assert jobs_b.recover() == 1 and jobs_b.get_job(who, job_id)["failure"] == "server"
    assert jobs_b.held == {} and holders(b.course.engine, CODE_JOB) == []
    assert jobs_b.record(job_id, 2, error=RuntimeError("late")) is None  # the late answer changes nothing
    b.close()
    for s in (a, b):
        s.course.close()


def test_replicas_starting_together_share_one_whole_session_secret(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from brats_kit.server.pages import sessions

    fdopen = os.fdopen

    def slow_fdopen(fd, *args):  # the window between a file's creation and its content, made wide
        time.sleep(0.2)
        return fdopen(fd, *args)

    monkeypatch.setattr(sessions.os, "fdopen", slow_fdopen)
    service = SimpleNamespace(course=SimpleNamespace(private=tmp_path))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        secrets = list(pool.map(lambda _: sessions._secret(service), range(6)))
    assert len(set(secrets)) == 1 and len(secrets[0]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == [sessions.SECRET_FILE]  # nothing left aside
