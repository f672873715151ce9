"""End to end: ``brats-kit server run`` as a real process, ``brats-kit submit`` as the students run it, SIGKILL under load."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from brats_kit.server.app import startup_checks
from brats_kit.server.course import Course
from brats_kit.server.verify import audit_course
from brats_kit.server.db import Submission
from data_spec import load_truth
from data_spec.submission import write_submission
from test_server_support import make_course, shifted

BRATS_KIT = str(Path(sys.executable).parent / "brats-kit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealServer:
    """``brats-kit server run COURSE`` in a subprocess on a free loopback port."""

    def __init__(self, root: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([BRATS_KIT, "server", "run", str(root), "--port", str(self.port)],
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{self.url}/api/v1/competition", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()


def cli(*args):
    """The same command in this process (click's runner): cheaper than a new interpreter."""
    from click.testing import CliRunner

    from brats_kit.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], env={"BRATS_KIT_TOKEN": None})


def run_cli(*args, env=None):
    return subprocess.run([BRATS_KIT, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture(scope="module")
def subs(tmp_path_factory, competition):
    y = load_truth(competition / "private").y
    d = tmp_path_factory.mktemp("subs")
    out = [write_submission(d / f"s{k}.npy", shifted(y, k)) or d / f"s{k}.npy" for k in range(4)]
    np.save(d / "bad.npy", y * np.uint8(255))
    return out, d / "bad.npy"


def test_real_server_submit_command_and_sigkill_under_load(tmp_path, competition, subs):
    """One real server process: the students' command against it, then SIGKILL under load (one kill here;
    benchmarks/server_load.py kills ten times under the full load)."""
    good, bad = subs
    root, tok, admin = make_course(tmp_path, competition, per_day=2, max_invalid_per_day=10_000)
    server = RealServer(root, tmp_path / "server.log")
    try:
        ok = run_cli("submit", good[1], "--server", server.url, "--json", env={"BRATS_KIT_TOKEN": tok["alpha"]})
        assert ok.returncode == 0, ok.stderr
        receipt = json.loads(ok.stdout)
        assert receipt["status"] == "scored" and receipt["team"] == "alpha" and receipt["remaining_today"] == 1
        text = cli("submit", good[2], "--server", server.url, "--token", tok["alpha"])
        assert text.exit_code == 0 and "SCORED" in text.stdout and "public scores" in text.stdout
        # An invalid file is refused here, with its hint, and never uploaded.
        invalid = run_cli("submit", bad, "--server", server.url, "--token", tok["beta"])
        assert invalid.returncode == 1 and "divide by 255" in invalid.stderr and "not uploaded" in invalid.stderr
        listed = httpx.get(f"{server.url}/api/v1/submissions", headers={"Authorization": f"Bearer {tok['beta']}"})
        assert listed.json()["submissions"] == []
        over = cli("submit", good[3], "--server", server.url, "--token", tok["alpha"])
        assert over.exit_code == 1 and "quota" in over.stderr and "resets" in over.stderr
        wrong = cli("submit", good[0], "--server", server.url, "--token", "not-a-token")
        assert wrong.exit_code == 1 and "401" in wrong.stderr
        assert cli("submit", good[0], "--server", server.url).exit_code == 2  # no token: usage
        status = cli("server", "status", root, "--json")
        assert status.exit_code == 0
        assert {r["team"]: r["scored"] for r in json.loads(status.stdout)["teams"]}["alpha"] == 2
        # Load from three teams (valid files within beta's and gamma's quota, invalid ones beyond it), then SIGKILL.
        receipts = [receipt, json.loads(cli("submit", good[0], "--server", server.url, "--token", tok["beta"],
                                            "--json").stdout)]
        stop, first = threading.Event(), threading.Event()
        threads = [threading.Thread(target=_load, args=(server.url, tok[team], good + [bad], receipts, stop, first))
                   for team in ("alpha", "beta", "gamma")]
        for t in threads:
            t.start()
        first.wait(60)
        time.sleep(random.Random(0).uniform(0.0, 0.5))
    finally:
        server.kill()
        stop.set()
    for t in threads:
        t.join()
    unreachable = run_cli("submit", good[0], "--server", server.url, "--token", tok["alpha"])
    assert unreachable.returncode == 4, unreachable.stderr
    with Course(root) as course:
        result = audit_course(course)
        assert result["ok"], result["problems"]
        startup_checks(course)  # what the server does when it starts again
    with Course(root) as course, course.sessions() as s:
        rows = {sub.id: sub for sub in s.scalars(select(Submission))}
        for r in receipts:
            assert rows[r["id"]].sha256 == r["sha256"]
            assert course.store.path(r["sha256"]).is_file()
        assert course.store.temporary_files() == []
        assert set(course.store.files()) == {sub.sha256 for sub in rows.values()}
    assert cli("server", "audit", root).exit_code == 0
    exported = cli("server", "export", root, "--out", tmp_path / "SUBMISSIONS")
    assert exported.exit_code == 0 and (tmp_path / "SUBMISSIONS" / "manifest.csv").is_file()
    assert cli("server", "tokens", root, "--rotate", "alpha").exit_code == 0
    assert (root / "private" / "tokens.csv").read_text().count(tok["alpha"]) == 0
    assert cli("server", "reveal", root, "--yes").exit_code == 0


def _load(url: str, token: str, files: list, receipts: list, stop: threading.Event, first: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            path = random.choice(files)
            try:
                r = client.post("/api/v1/submissions", files={"file": ("f", path.read_bytes())},
                                headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError:
                return  # the server was killed mid-request: no receipt, so nothing was promised
            if r.status_code == 201:
                receipts.append(r.json())
                first.set()
