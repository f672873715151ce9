"""Code submissions in the real bubblewrap sandbox: a benign model works, every attack gets nothing."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

from data_spec.submission import write_submission
from grader.code import Limits, run_code, sandbox_problem
from grader.errors import SandboxUnavailableError

from conftest import make_slices

PROBLEM = sandbox_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox on this machine: {PROBLEM}")

ZEROS = "import numpy as np\n"


def make_code(root: Path, body: str, files=None) -> Path:
    folder = root / ("code-" + secrets.token_hex(4))
    folder.mkdir()
    (folder / "submission.py").write_text(textwrap.dedent(body))
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def runner_processes() -> set:
    """Host processes that are sandboxed runners or bwrap instances started with this interpreter.

    Another checkout's test run on the same machine starts its own with its own interpreter: not ours.
    """
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info["cmdline"] or []
        if "/job/runner.py" in " ".join(argv) and sys.executable in argv:
            found.add(proc.info["pid"])
    return found


@pytest.fixture
def x():
    return make_slices(3, seed=5)[0]


@pytest.fixture
def no_leftovers():
    before = runner_processes()
    yield
    assert runner_processes() - before == set()


def test_benign_submission_gives_the_same_file_as_bare_predict(tmp_path, x):
    code = make_code(tmp_path, """
        import json, pathlib
        import numpy as np
        from starter import foreground_mask

        THRESHOLD = json.loads(pathlib.Path("thresholds.json").read_text())["flair"]

        def predict(x):
            return ((x[..., 3] > THRESHOLD) & foreground_mask(x)).astype(np.uint8)
        """, files={"thresholds.json": '{"flair": 1.2}'})
    run = run_code(code, x)
    assert run.status == "ok", run
    from starter import foreground_mask

    bare = ((x[..., 3] > 1.2) & foreground_mask(x)).astype(np.uint8)
    write_submission(tmp_path / "sandboxed.dat", run.prediction)
    write_submission(tmp_path / "bare.dat", bare)
    assert (tmp_path / "sandboxed.dat").read_bytes() == (tmp_path / "bare.dat").read_bytes()


def test_skops_model_beside_the_code_loads(tmp_path, x):
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    _, y = make_slices(3, seed=5)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x.reshape(-1, 4)[::50], y.reshape(-1)[::50])
    code = make_code(tmp_path, """
        import numpy as np
        import skops.io as sio

        model = sio.load("model.skops", trusted=sio.get_untrusted_types(file="model.skops"))

        def predict(x):
            return model.predict(x.reshape(-1, 4)).reshape(x.shape[:3]).astype(np.uint8)
        """)
    sio.dump(model, code / "model.skops")
    run = run_code(code, x)
    assert run.status == "ok", (run, run.log)
    np.testing.assert_array_equal(run.prediction, model.predict(x.reshape(-1, 4)).reshape(3, 240, 240))


def test_network_is_unreachable(tmp_path, x):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    code = make_code(tmp_path, f"""
        import socket
        import numpy as np

        def predict(x):
            for addr in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
                try:
                    socket.create_connection(addr, timeout=2)
                    print("CONNECTED", addr)
                except OSError as exc:
                    print("refused", type(exc).__name__)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("CONNECTED dns")
            except OSError as exc:
                print("refused", type(exc).__name__)
            return np.zeros(x.shape[:3], np.uint8)
        """)
    run = run_code(code, x)
    thread = threading.Thread(target=accept)
    thread.start()
    thread.join()
    server.close()
    assert run.status == "ok" and "refused" in run.log
    assert "CONNECTED" not in run.log and not accepted


def test_secrets_on_the_host_are_out_of_reach(tmp_path, x, monkeypatch):
    marker = "SECRET-" + secrets.token_hex(8)
    course = tmp_path / "course"
    (course / "private").mkdir(parents=True)
    paths = [course / "private" / "test_truth.h5", course / "course.db", course / "private" / "tokens.csv"]
    home_file = Path("/root") / f"brats-secret-{secrets.token_hex(4)}.txt"
    tmp_file = Path("/tmp") / f"brats-secret-{secrets.token_hex(4)}.txt"
    if os.access("/root", os.W_OK):
        paths.append(home_file)
    paths.append(tmp_file)
    for path in paths:
        path.write_text(marker)
    monkeypatch.setenv("BRATS_SECRET_TOKEN", marker)
    try:
        code = make_code(tmp_path, f"""
            import os
            import numpy as np

            def predict(x):
                for path in {[str(p) for p in paths]!r} + ["/proc/1/environ", "/proc/self/environ"]:
                    try:
                        print("read", path, open(path, "rb").read())
                    except OSError as exc:
                        print("denied", path, type(exc).__name__)
                print("env", dict(os.environ))
                for folder in ["/", "/root", "/tmp", "/job", {str(tmp_path)!r}]:
                    try:
                        print("list", folder, os.listdir(folder))
                    except OSError as exc:
                        print("denied", folder, type(exc).__name__)
                return np.zeros(x.shape[:3], np.uint8)
            """)
        run = run_code(code, x)
    finally:
        home_file.unlink(missing_ok=True)
        tmp_file.unlink(missing_ok=True)
    assert run.status == "ok" and "denied" in run.log
    assert marker not in run.log and "BRATS_SECRET_TOKEN" not in run.log
    listings = [line for line in run.log.splitlines() if line.startswith("list ")]
    assert len(listings) >= 3 and not any(tmp_file.name in line or "course" in line for line in listings)


def test_writes_outside_its_tmpfs_fail_and_tmp_is_private(tmp_path, x):
    targets = ["/job/code/planted.py", "/job/planted", "/planted", "/usr/planted", str(tmp_path / "planted"),
               "/root/planted", "/dev/planted", "/dev/shm/planted", "/proc/planted", "/etc/planted"]
    code = make_code(tmp_path, f"""
        import numpy as np

        def predict(x):
            for path in {targets!r}:
                try:
                    open(path, "w").write("x")
                    print("WROTE", path)
                except OSError as exc:
                    print("denied", type(exc).__name__)
            open("/tmp/scratch", "w").write("allowed")
            return np.zeros(x.shape[:3], np.uint8)
        """)
    run = run_code(code, x)
    assert run.status == "ok", run
    assert "WROTE" not in run.log
    assert not (tmp_path / "planted").exists() and not Path("/root/planted").exists()
    assert not Path("/planted").exists() and not (code / "planted.py").exists()


def test_other_processes_are_invisible(tmp_path, x):
    code = make_code(tmp_path, """
        import os
        import numpy as np

        def predict(x):
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            print("pids", len(pids), "uid", os.getuid())
            for p in pids:
                try:
                    print("cmd", open(f"/proc/{p}/cmdline", "rb").read())
                except OSError:
                    pass
            return np.zeros(x.shape[:3], np.uint8)
        """)
    run = run_code(code, x)
    assert run.status == "ok"
    assert "pytest" not in run.log and str(os.getpid()) not in run.log.split("uid")[0]
    count = int(run.log.split("pids ")[1].split()[0])
    assert count <= 3  # bwrap's init, the runner, and nothing of the host
    assert "uid 65534" in run.log


@pytest.mark.parametrize("body, limits, failure", [
    ("np.ones(1 << 36, np.uint8)", {}, "memory"),
    ("[bytearray(1 << 26) for _ in range(10 ** 6)]", {}, "memory"),
    ("[None for _ in iter(int, 1)]", {"time_limit": 3}, "timeout"),
    ("__import__('time').sleep(600)", {"time_limit": 2}, "timeout"),
    ("open('/tmp/big', 'wb').write(b'x' * (1 << 30))", {}, "invalid_output"),
    ("[print('x' * 10 ** 6) for _ in range(10 ** 6)]", {}, "invalid_output"),
    ("np.zeros((20000, 240, 240), np.uint8)", {"memory_mb": 8192}, "invalid_output"),
])
def test_bombs_end_in_their_class_with_no_process_left(tmp_path, x, no_leftovers, body, limits, failure):
    code = make_code(tmp_path, f"""
        import numpy as np

        def predict(x):
            return {body}
        """)
    run = run_code(code, x, limits=Limits(**limits))
    assert (run.status, run.failure) == ("failed", failure), (run, run.log[-500:])


def test_fork_bomb_gets_no_process(tmp_path, x, no_leftovers):
    code = make_code(tmp_path, """
        import os, subprocess
        import numpy as np

        def predict(x):
            for spawn in (os.fork, lambda: subprocess.Popen(["/bin/true"])):
                try:
                    spawn()
                    print("SPAWNED")
                    os._exit(0)
                except OSError as exc:
                    print("refused", type(exc).__name__)
            while True:
                os.fork()
        """)
    run = run_code(code, x)
    assert (run.status, run.failure, run.error_type) == ("failed", "crashed", "PermissionError"), run
    assert "SPAWNED" not in run.log and "refused" in run.log


def test_crash_reports_the_exception_type_only(tmp_path, x):
    marker = secrets.token_hex(8)
    code = make_code(tmp_path, f"""
        def predict(x):
            raise KeyError("slice 3 looks like {marker}")
        """)
    run = run_code(code, x)
    assert (run.status, run.failure, run.error_type) == ("failed", "crashed", "KeyError")
    public = run.public()
    assert marker not in str(public) and "log" not in public
    assert marker in run.log and marker in str(run.public(show_log=True))


@pytest.mark.parametrize("body, failure", [
    ("import os; os._exit(0)", "invalid_output"),
    ("import os; os._exit(7)", "crashed"),
    ("return np.array([object()])", "invalid_output"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "crashed"),
])
def test_broken_outputs_are_classified(tmp_path, x, body, failure):
    code = make_code(tmp_path, f"""
        import numpy as np

        def predict(x):
            {body}
            return x
        """)
    run = run_code(code, x)
    assert (run.status, run.failure) == ("failed", failure), (run, run.log)


def test_no_bwrap_refuses_to_run(tmp_path, x, monkeypatch):
    from grader.code import bwrap

    bwrap.sandbox_problem.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))
    try:
        with pytest.raises(SandboxUnavailableError, match="bwrap"):
            run_code(make_code(tmp_path, "def predict(x):\n    return x\n"), x)
    finally:
        monkeypatch.undo()
        bwrap.sandbox_problem.cache_clear()


def test_an_environment_under_the_hosts_tmp_stays_visible_over_the_private_tmp(tmp_path, x, monkeypatch):
    # A CI clone (and its .venv) under /tmp: the sandbox's own /tmp must not hide what is bound there.
    import grader.code.bwrap as bwrap

    shared = Path(tempfile.mkdtemp(prefix="brats-env-", dir="/tmp"))
    try:
        (shared / "threshold.txt").write_text("1")
        shared.chmod(0o755)
        (shared / "threshold.txt").chmod(0o644)
        original = bwrap._bind_paths
        monkeypatch.setattr(bwrap, "_bind_paths", lambda: original() + ["--ro-bind", str(shared), str(shared)])
        code = make_code(tmp_path, f"""
            import numpy as np
            VALUE = int(open({str(shared / 'threshold.txt')!r}).read())
            def predict(x):
                return np.full(x.shape[:3], VALUE, np.uint8)
        """)
        run = run_code(code, x)
        assert run.status == "ok", run.public(show_log=True)
        assert run.prediction.min() == 1
    finally:
        shutil.rmtree(shared, ignore_errors=True)
