"""Workers die with their parent: ``kill -9`` (or ``timeout``) of a command or server while a worker reads a hanging file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from data_spec import load_truth
from test_server_isolation import _hanging_hdf5

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")


def _children(pid: int) -> set:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _spinning_worker(parent: subprocess.Popen, timeout: float = 120) -> set:
    """The parent's worker processes once one of them is busy on the hanging file (using CPU)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert parent.poll() is None, parent.stderr.read() if parent.stderr else ""
        for child in _children(parent.pid):
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[11]) + int(fields[12]) > 100:  # utime + stime: over a second of CPU, spinning
                return _children(parent.pid)
        time.sleep(0.2)
    raise AssertionError("no worker started spinning on the hanging file")


def _none_survive(workers: set, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:  # never leave a spinning process behind, even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their parent"


@pytest.fixture(scope="module")
def hang(competition, tmp_path_factory):
    path = tmp_path_factory.mktemp("orphans") / "hang.h5"
    _hanging_hdf5(path, load_truth(competition / "private"))
    return path


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_validate_killed_leaves_no_worker(competition, hang, how):
    env = dict(os.environ, BRATS_KIT_READ_TIMEOUT="600")
    cli = [sys.executable, "-c", "from brats_kit.cli import main; main()", "validate", str(hang),
           "--data", str(competition)]
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = _spinning_worker(proc)
    finally:
        proc.send_signal(how)  # kill -9, or what `timeout 20 brats-kit validate hang.h5` sends
        proc.wait(timeout=30)
    _none_survive(workers)


def test_a_killed_scoring_pool_leaves_no_worker(competition, hang, tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from grader.isolation import IsolatedScorer

        if __name__ == "__main__":
            scorer = IsolatedScorer({str(competition / "private")!r}, workers=2, timeout=600)
            futures = [scorer.submit({str(hang)!r})]
            time.sleep(600)
        """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = _spinning_worker(proc)
        assert len(workers) >= 2  # the busy worker and the idle one
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _none_survive(workers)
