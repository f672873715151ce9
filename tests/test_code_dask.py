"""The code track's Dask executor: a real ``dask scheduler`` and two ``dask worker`` processes on loopback."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brats_kit.server.client import submit_code
from brats_kit.server.run import ServerThread
from test_code_jobs import PROBLEM, SLOW, THRESHOLD, code_course, folder, hidden_competition, wait_for  # noqa: F401

distributed = pytest.importorskip("distributed", reason="the 'dask' extra (distributed) is not installed")
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture
def cluster(tmp_path):
    """``(address, worker processes)``: a scheduler on a random loopback port and two one-thread workers."""
    dask = str(DASK) if DASK.exists() else shutil.which("dask")
    if dask is None:
        pytest.skip("no 'dask' command")
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], **quiet)]
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        import json

        time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for i in range(2):
            workers.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                             "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"], **quiet))
        procs += workers
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_jobs_run_on_a_dask_cluster_as_on_the_local_pool(tmp_path, hidden_competition, cluster):
    address, _ = cluster
    root, tokens, _ = code_course(tmp_path, hidden_competition)
    code = folder(tmp_path, THRESHOLD)
    with ServerThread(root, board_interval_s=0) as local:
        at_home = wait_for(local, tokens["alpha"], submit_code(code, local.url, tokens["alpha"])["id"])
    with ServerThread(root, board_interval_s=0, executor=address) as server:
        ids = [submit_code(code, server.url, tokens[t])["id"] for t in ("beta", "gamma")]
        jobs = [wait_for(server, tokens[t], i) for t, i in zip(("beta", "gamma"), ids)]
    assert [j["status"] for j in jobs] == ["scored", "scored"]
    assert all(j["public"] == at_home["public"] for j in jobs)


def test_a_dask_worker_killed_mid_job_never_leaves_it_stuck(tmp_path, hidden_competition, cluster):
    address, workers = cluster
    root, tokens, _ = code_course(tmp_path, hidden_competition)
    with ServerThread(root, board_interval_s=0, executor=address) as server:
        job_id = submit_code(folder(tmp_path, SLOW.format(seconds=3)), server.url, tokens["alpha"])["id"]
        wait_for(server, tokens["alpha"], job_id, states=("running",))
        import psutil

        deadline = time.monotonic() + 60
        busy = []
        while not busy and time.monotonic() < deadline:
            busy = [w for w in workers if any(c.name() == "bwrap" for c in psutil.Process(w.pid).children())]
            time.sleep(0.05)
        assert busy, "no worker started the job"
        os.killpg(busy[0].pid, signal.SIGKILL)
        job = wait_for(server, tokens["alpha"], job_id)
    # Dask reschedules the task on the other worker, or the runner retries it: never stuck.
    assert job["status"] == "scored"
