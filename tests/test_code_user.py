"""Code jobs run as an unprivileged host user, not root (issue 23): ``--code-user``, default ``nobody`` under root.

The real runs start ``bwrap`` as ``nobody`` from a world-readable Python environment (the
running one when ``nobody`` can reach it, as under .ci/run; else a virtual environment made
in /var/tmp from a readable interpreter of the same version, its site folders those of the
running one), and look at the job's processes from the host's /proc.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from data_spec.errors import BadArgumentError
from grader.code import CodeUser, code_user, sandbox_problem
from grader.code import bwrap
from grader.code.users import current_user_name, unreachable
from grader.errors import CodeUserError
from test_code_jobs import PROBLEM, hidden_competition  # noqa: F401
from test_server_support import write_roster

ROOT = os.geteuid() == 0
NOBODY = CodeUser("nobody", 65534, 65534)
as_root = pytest.mark.skipif(not ROOT, reason="only a process started as root switches users")
sandboxed = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")


def test_the_default_code_user_is_nobody_under_root_and_the_process_itself_otherwise(monkeypatch):
    assert code_user() == (NOBODY if ROOT else None)
    assert code_user(current_user_name()) is None  # naming one's own user (root included) switches nothing
    with pytest.raises(BadArgumentError, match="does not exist") as err:
        code_user("no-such-user-brats")
    assert err.value.where == "--code-user" and "useradd" in err.value.hint
    import grader.code.users as users

    monkeypatch.setattr(users.os, "geteuid", lambda: 4242)  # an unprivileged server
    assert code_user() is None
    with pytest.raises(BadArgumentError, match="only a server started as root"):
        code_user("nobody")


def test_unreachable_names_the_first_folder_the_user_cannot_enter_or_read():
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        os.chmod(base, 0o755)
        (base / "env" / "lib").mkdir(parents=True, mode=0o755)
        (base / "env" / "lib" / "mod.py").write_text("x = 1\n")
        os.chmod(base / "env" / "lib" / "mod.py", 0o644)
        assert unreachable([base / "env" / "lib", base / "env" / "lib" / "mod.py"], NOBODY) is None
        os.chmod(base / "env", 0o700)  # like /root: its owner only
        problem = unreachable([base / "env" / "lib"], NOBODY)
        assert problem.startswith(f"{base / 'env'} (mode drwx------") and "cannot enter" in problem
        os.chmod(base / "env", 0o711)  # may be entered, not listed: enough for a path inside it
        assert unreachable([base / "env" / "lib"], NOBODY) is None
        os.chmod(base / "env" / "lib" / "mod.py", 0o600)
        assert "cannot read" in unreachable([base / "env" / "lib" / "mod.py"], NOBODY)
        assert unreachable([base / "env" / "lib" / "mod.py"], None) is None  # no switch: nothing to check
    finally:
        shutil.rmtree(base)


@as_root
@sandboxed
def test_init_code_refuses_a_code_user_that_cannot_reach_the_sandbox(tmp_path, hidden_competition,  # noqa: F811
                                                                     monkeypatch):
    """The job folder is made in a folder nobody cannot enter: refused at init, named, with its path and a hint."""
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    bwrap.sandbox_problem.cache_clear()
    roster = write_roster(tmp_path / "roster.csv", ("alpha",))
    try:
        result = CliRunner().invoke(main, ["server", "init", str(tmp_path / "c1"), "--competition",
                                           str(hidden_competition), "--roster", str(roster), "--code",
                                           "--code-user", "nobody"])
        with pytest.raises(CodeUserError, match="nobody") as err:  # the library refuses before running anything
            bwrap.run_code(tmp_path, [], user=NOBODY)
    finally:
        monkeypatch.undo()
        bwrap.sandbox_problem.cache_clear()
    assert err.value.code == "code_user_cannot_read" and "chmod o+rx" in err.value.hint
    # The first folder nobody cannot enter: the job folder's parent here, or the Python itself (under /root).
    blocked = err.value.message.split(" cannot reach ", 1)[1].split(" (mode ")[0]
    assert blocked in (str(private), "/root") or unreachable([blocked], NOBODY), err.value.message
    assert result.exit_code == 1, result.output
    assert "error: the code user 'nobody' cannot reach" in result.output and "chmod o+rx" in result.output
    assert not (tmp_path / "c1").exists()
    result = CliRunner().invoke(main, ["server", "init", str(tmp_path / "c2"), "--competition",
                                       str(hidden_competition), "--roster", str(roster), "--code",
                                       "--code-user", "no-such-user-brats"])
    assert result.exit_code == 1 and "does not exist" in result.output and not (tmp_path / "c2").exists()


@as_root
@sandboxed
def test_a_course_whose_code_user_cannot_run_is_refused_at_start(tmp_path, hidden_competition,  # noqa: F811
                                                                 monkeypatch):
    """A course.json edited to a user that cannot reach the job folder: refused before serving, named."""
    from brats_kit.server.course import Course
    from brats_kit.server.jobs import check_code_user, code_config, enable_code_track
    from test_code_jobs import code_course

    root, _, _ = code_course(tmp_path, hidden_competition)
    with Course(root) as course:
        enable_code_track(root, dataclasses.replace(code_config(course.config), user="nobody"))
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    bwrap.sandbox_problem.cache_clear()
    try:
        with Course(root) as course, pytest.raises(CodeUserError, match="the code user 'nobody' cannot reach"):
            check_code_user(course.config)
    finally:
        monkeypatch.undo()
        bwrap.sandbox_problem.cache_clear()


def _readable_interpreter() -> str:
    """An interpreter of this Python's version that nobody can run, or '' (then the test is skipped)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys._base_executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if candidate and os.path.isfile(candidate) and unreachable([candidate], NOBODY) is None:
            return candidate
    return ""


@pytest.fixture(scope="module")
def world_readable_python():
    """The python of an environment nobody can reach, holding this one's packages (numpy, the kit...)."""
    if sandbox_problem(NOBODY) is None:
        yield sys.executable
        return
    base = _readable_interpreter()
    if not base:
        pytest.skip(f"no interpreter of this Python's version that nobody can run ({sandbox_problem(NOBODY)})")
    env = Path(tempfile.mkdtemp(prefix="brats-world-readable-", dir="/var/tmp"))  # /tmp is the sandbox's tmpfs
    try:
        os.chmod(env, 0o755)
        subprocess.run([base, "-m", "venv", "--without-pip", str(env / "venv")], check=True)
        python = str(env / "venv" / "bin" / "python")
        site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        ours = [p for p in sys.path if os.path.basename(p) == "site-packages"]
        Path(site, "brats_kit_site.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
        blocked = unreachable(ours, NOBODY)
        if blocked:
            pytest.skip(f"this environment's packages are not readable by nobody: {blocked}")
        yield python
    finally:
        shutil.rmtree(env, ignore_errors=True)


SCRIPT = textwrap.dedent('''
    import io, json, os, sys, threading, time
    import numpy as np, psutil
    from grader.code import code_user, run_code
    from brats_kit.server.executors import execute

    code, hidden = sys.argv[1], sys.argv[2]
    seen, done = {}, threading.Event()

    def watch():  # the host's view (/proc) of this process's sandboxed descendants while they live
        me = os.getpid()
        while not done.is_set():
            for p in psutil.process_iter(["pid", "cmdline", "uids"]):
                try:
                    if me in [q.pid for q in p.parents()] and p.info["pid"] != me:
                        seen[p.info["pid"]] = [list(p.info["uids"]), " ".join(p.info["cmdline"] or [])[-200:]]
                except psutil.Error:
                    pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    x = (np.arange(2 * 240 * 240 * 4, dtype=np.float32).reshape(2, 240, 240, 4) % 7) / 3
    try:
        run = run_code(code, x, user=code_user("nobody"))
        job = execute(code, hidden, {"time_limit": 60.0, "memory_mb": 2048}, "nobody")
    finally:
        done.set()
        watcher.join()
    expected = (x[..., 3] > 1.0).astype(np.uint8)
    kept = job.pop("prediction")  # the .npy the server keeps: the job's masks of the hidden slices
    job["prediction_shape"] = list(np.load(io.BytesIO(kept), allow_pickle=False).shape)
    print(json.dumps({"status": run.status, "failure": run.failure, "error_type": run.error_type, "log": run.log,
                      "valid": bool(run.validation and run.validation.ok),
                      "same": bool(run.prediction is not None and np.array_equal(run.prediction, expected)),
                      "processes": list(seen.values()), "job": job}))
''')

SUBMISSION = '''
import dataclasses
import json
import os
import time

import numpy as np

THRESHOLD = json.load(open("thresholds.json"))["t"]  # a file beside submission.py


def predict(x):
    print("uid", os.getuid(), "uid_map", open("/proc/self/uid_map").read().split(), flush=True)
    time.sleep(1.0)  # alive long enough for the host to look at it
    return (x[..., 3] > THRESHOLD).astype(np.uint8)
'''


@as_root
@sandboxed
def test_a_job_runs_as_nobody_on_the_host_and_still_reads_its_code_and_inputs(tmp_path, world_readable_python,
                                                                              hidden_competition):  # noqa: F811
    code = tmp_path / "code"
    code.mkdir()
    (code / "submission.py").write_text(SUBMISSION)
    (code / "thresholds.json").write_text('{"t": 1.0}')
    hidden = hidden_competition / "private" / "hidden_test.h5"
    done = subprocess.run([world_readable_python, "-c", SCRIPT, str(code), str(hidden)], capture_output=True,
                          text=True, timeout=600, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # It read its thresholds and inputs, and its prediction came back to the (root) host intact.
    assert (out["status"], out["valid"], out["same"]) == ("ok", True, True), out
    assert "uid 65534" in out["log"]  # nobody inside its namespace, as before
    # Seen from the host: every process of the job (bwrap, and python running the student's code) is nobody.
    sandboxed_python = [p for p in out["processes"] if "/job/runner.py" in p[1]]
    assert sandboxed_python, out["processes"]
    assert all(uids == [65534, 65534, 65534] for uids, _ in out["processes"]), out["processes"]
    # The server's whole job as nobody: run on the hidden slices, scored outside the sandbox.
    assert out["job"]["run"]["status"] == "ok" and out["job"]["fields"]["status"] == "scored", out["job"]
    assert out["job"]["prediction_shape"] == [4, 240, 240]
