"""Run a code submission's ``predict`` inside a bubblewrap sandbox, under limits, and classify the outcome.

The sandbox (see :func:`sandbox_args`): new user, network, PID, IPC, UTS and
mount namespaces (``--unshare-all``: no network at all), ``--die-with-parent``,
``--new-session``, ``--clearenv`` and a minimal environment, uid/gid 65534
inside, the system and the Python environment read-only, the job's copy of the
code and its inputs read-only under ``/job``, a private size-capped tmpfs at
``/tmp``, and a seccomp filter that forbids new processes. Nothing else of the
host is visible: no truth, course, database, token, other team or home folder.

Limits: wall time (the sandbox's namespace is killed), memory (``RLIMIT_AS``),
CPU time (``RLIMIT_CPU``), threads (``RLIMIT_NPROC`` and the seccomp filter),
output size (``RLIMIT_FSIZE`` and the tmpfs size). The runner (``runner.py``)
sets them before anything of the student's is imported.

Host user: ``bwrap`` is started as the job's :class:`~grader.code.users.CodeUser` when one is
given (a server started as root: ``nobody`` by default), so the namespace's uid maps to that
unprivileged user outside, never to root; the folders it binds must then be reachable by it.

Outcomes: ``ok`` (a prediction came back) or ``failed`` with a class among
:data:`FAILURE_CLASSES`. The prediction is returned as it was written; the
caller validates and scores it with the grader's normal path.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from data_spec.constants import X_DTYPE
from data_spec.errors import ArrayContractError, check_range

from ..errors import CodeUserError, SandboxUnavailableError
from ..validate import Validation, validate_bytes
from .package import unpack_submission
from .seccomp import no_fork_filter
from .users import CodeUser, unreachable

FAILURE_CLASSES = ("timeout", "memory", "crashed", "invalid_output")
SANDBOX_UID = 65534
RUNNER = Path(__file__).with_name("runner.py")
#: How the prediction is named in validation messages (never a host path).
PREDICTION_NAME = "predict(x)"
#: The kit's packages a submission may import (their folders are bound read-only when outside the environment).
SHARED_PACKAGES = ("starter", "data_spec", "plumbing")
LOG_BYTES = 64 * 1024
_KILL_GRACE = 5.0
_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "MPLCONFIGDIR": "/tmp",
    # One BLAS thread: the limits are per job, and a pool runs one job per core.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# bwrap itself runs with this environment too: --clearenv clears only its child's, and bwrap's
# own (PID 1 inside) is readable at /proc/1/environ.


@dataclass(frozen=True)
class Limits:
    """The limits of one job (the same at home with ``code run`` and on the server).

    Parameters
    ----------
    time_limit : float
        Wall-clock seconds for the whole job (start, imports, ``predict``).
    memory_mb : int
        Address space of the sandboxed process (``RLIMIT_AS``).
    threads : int
        ``RLIMIT_NPROC`` (new processes are forbidden whatever its value).
    output_mb : int
        Largest file it may write (``RLIMIT_FSIZE``), the log included.
    tmp_mb : int
        Size of its private ``/tmp``.
    """

    time_limit: float = 300.0
    memory_mb: int = 4096
    threads: int = 64
    output_mb: int = 64
    tmp_mb: int = 256

    def __post_init__(self):
        check_range("time limit (s)", self.time_limit, 1, 24 * 3600)
        check_range("memory limit (MB)", self.memory_mb, 256, 1 << 20)
        check_range("thread limit", self.threads, 1, 4096)
        check_range("output limit (MB)", self.output_mb, 1, 1 << 16)
        check_range("tmp size (MB)", self.tmp_mb, 1, 1 << 16)

    def rlimits(self, n_slices: int) -> dict:
        """The runner's ``setrlimit`` calls; the output cap always fits a float64 prediction."""
        pred_bytes = n_slices * 240 * 240 * 8 + 2**20
        return {
            "RLIMIT_AS": self.memory_mb * 2**20,
            "RLIMIT_CPU": int(self.time_limit) + 1,
            "RLIMIT_NPROC": self.threads,
            "RLIMIT_FSIZE": max(self.output_mb * 2**20, pred_bytes),
            "RLIMIT_CORE": 0,
        }


@dataclass
class SandboxRun:
    """What one sandboxed job gave.

    Attributes
    ----------
    status : {"ok", "failed"}
    failure : str or None
        One of :data:`FAILURE_CLASSES` when failed.
    error_type : str or None
        For ``crashed``: the exception's type name (or the signal's name); never its message.
    detail : str
        One line for the student, free of the program's own output.
    log : str
        The program's output (its last 64 KiB): for the instructor only.
    seconds : float
    validation : Validation or None
        When ``ok``: the grader's validation of the array ``predict`` returned
        (its errors are the student's, e.g. probabilities instead of 0/1).
    """

    status: str
    failure: Optional[str] = None
    error_type: Optional[str] = None
    detail: str = ""
    log: str = field(default="", repr=False)
    seconds: float = 0.0
    validation: Optional[Validation] = field(default=None, repr=False)

    @property
    def prediction(self) -> Optional[np.ndarray]:
        """The uint8 (n, 240, 240) masks when ``predict`` returned a valid prediction, else None."""
        return self.validation.y_pred if self.validation is not None and self.validation.ok else None
    def public(self, *, show_log: bool = False) -> dict:
        """The JSON-ready record a student may see (the log only when the instructor chose to show it)."""
        out = {k: getattr(self, k) for k in ("status", "failure", "error_type", "detail", "seconds")}
        if self.validation is not None:
            out["validation"] = self.validation.to_dict()
        if show_log:
            out["log"] = self.log
        return out


def _user_site() -> Optional[str]:
    import site

    return site.getusersitepackages() if site.ENABLE_USER_SITE else None


def _bind_paths() -> list:
    """Read-only bind arguments for the system, the Python environment and the kit's shared packages."""
    args, bound = [], []

    def bind(path):
        real = os.path.realpath(path)
        if os.path.isdir(real) and not any(real == b or real.startswith(b.rstrip("/") + "/") for b in bound):
            bound.append(real)
            args.extend(["--ro-bind", real, real])
            if path != real and os.path.isabs(path) and not os.path.islink(path):
                args.extend(["--ro-bind", real, path])

    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args.extend(["--symlink", os.readlink(top), top])
        elif os.path.isdir(top):
            bind(top)
    if os.path.isfile("/etc/ld.so.cache"):
        args.extend(["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"])
    for prefix in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        bind(prefix)
    for entry in sys.path:  # site folders outside the prefixes (added by a .pth), never the user's own
        if os.path.basename(entry) in ("site-packages", "dist-packages") and entry != _user_site():
            bind(entry)
    if sys.prefix != os.path.realpath(sys.prefix):  # a venv reached through a link: its own path too
        args.extend(["--symlink", os.path.realpath(sys.prefix), sys.prefix])
    for name in SHARED_PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            bind(location)
    return args


def bound_sources(args: list) -> list:
    """The host paths a ``bwrap`` command line binds (what its user must be able to reach)."""
    return [args[i + 1] for i, a in enumerate(args[:-2]) if a in ("--ro-bind", "--bind")]


def _cannot_reach(user: CodeUser, blocked: str) -> str:
    return f"the code user {user.name!r} cannot reach {blocked}"


def _user_error(user: CodeUser, problem: str) -> CodeUserError:
    return CodeUserError(problem, where="the sandbox's bind mounts",
                         expected=f"the Python environment, the kit and the job folder readable by {user.name!r}",
                         hint="install the kit in a virtual environment every user can read (e.g. "
                              "'python3 -m venv /opt/brats-kit' with a Python outside /root), or 'chmod o+rx' "
                              "the folders on that path; --code-user root runs student code as root "
                              "(not recommended)")


def _check_reachable(args: list, user: Optional[CodeUser]) -> None:
    blocked = unreachable(bound_sources(args), user)
    if blocked:
        raise _user_error(user, _cannot_reach(user, blocked))


def sandbox_args(job: Path, limits: Limits, seccomp_fd: Optional[int], status_fd: int) -> list:
    """The ``bwrap`` command line of one job (everything but the command it runs)."""
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--cap-drop", "ALL", "--hostname", "sandbox",
        "--json-status-fd", str(status_fd),
    ]
    for key, value in _ENV.items():
        args += ["--setenv", key, value]
    # The private /tmp first, the environment's binds after it: a Python environment or the kit under
    # the host's /tmp (a CI clone) stays visible on top of the tmpfs instead of being hidden by it.
    args += ["--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/tmp"]
    args += _bind_paths()
    args += [
        # bwrap's /dev is a writable tmpfs without a size (and /dev/shm in it): read-only, or it is a
        # way round the memory limit and the tmpfs size.
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        "--dir", "/job",
        "--ro-bind", str(job / "code"), "/job/code",
        "--ro-bind", str(job / "x.npy"), "/job/x.npy",
        "--ro-bind", str(RUNNER), "/job/runner.py",
        "--remount-ro", "/",
        "--chdir", "/job/code",
    ]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args


def _seccomp_fd() -> Optional[int]:
    program = no_fork_filter()
    if program is None:
        return None
    fd = os.memfd_create("brats-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill bwrap's process group: ``--die-with-parent`` then takes the sandbox's init, and with it its namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot stop
        proc.kill()
        proc.wait()


def _reap_namespace(pid: Optional[int]) -> None:
    """Kill the sandbox's PID 1 and wait until it is gone: the kernel ends every other process of its namespace first.

    bwrap's own death reaches the sandbox through ``--die-with-parent`` asynchronously; waiting here
    means no process of the job outlives :func:`run_code`.
    """
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + _KILL_GRACE
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X"):
                    return
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        time.sleep(0.005)


def _read_tail(path: Path, limit: int) -> str:
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        return fh.read(limit).decode("utf-8", "replace")


def _json_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def _classify(exit_code: Optional[int], status: list, timed_out: bool) -> tuple:
    """(status, failure class, error type, detail) from what the job left behind."""
    if timed_out:
        return "failed", "timeout", None, "stopped at the wall-time limit"
    first = status[0] if status else None
    if first and first.get("status") == "ok":
        return "ok", None, None, ""
    if first and first.get("status") == "failed" and first.get("class") in FAILURE_CLASSES:
        kind, etype = first["class"], str(first.get("type") or "")[:100] or None
        detail = {"memory": "ran out of memory (the memory limit)",
                  "invalid_output": "wrote more than the output limit, or returned something that is not an array",
                  "crashed": f"predict raised {etype}", "timeout": "stopped at the time limit"}[kind]
        return "failed", kind, etype if kind == "crashed" else None, detail
    if exit_code is not None and exit_code > 128:
        sig = exit_code - 128
        if sig == signal.SIGXCPU:
            return "failed", "timeout", None, "stopped at the CPU-time limit"
        if sig == signal.SIGKILL:
            return "failed", "memory", None, "killed (out of memory)"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return "failed", "crashed", name, f"the process died of {name}"
    if exit_code:
        return "failed", "crashed", f"exit({exit_code})", f"the process exited with status {exit_code}"
    return "failed", "invalid_output", None, "predict returned no prediction (the process exited early)"


def _validate_prediction(path: Path, n_slices: int, cap: int):
    """The returned array, validated as a submission file by the grader's own readers (never unpickled)."""
    with open(path, "rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:  # pragma: no cover - RLIMIT_FSIZE stops the writer first
        data = b""
    return validate_bytes(data, n_slices=n_slices, path=PREDICTION_NAME)


def run_code(source, x, *, limits: Limits = Limits(), workdir=None, user: Optional[CodeUser] = None) -> SandboxRun:
    """Run a code submission's ``predict(x)`` in the sandbox and return its outcome.

    Parameters
    ----------
    source : path-like
        A folder holding ``submission.py``, or a ``.zip`` of one (checked and
        copied into the job folder first: see :func:`~grader.code.package.unpack_submission`).
    x : array-like (n, 240, 240, 4) float32
        The test inputs of this job (never the truth).
    limits : Limits
    workdir : path-like, optional
        Where the job folder is made (default: the system's temporary folder);
        it is removed afterwards.
    user : CodeUser, optional
        The unprivileged host user ``bwrap`` is started as (:func:`~grader.code.users.code_user`);
        None: this process's own user (a student's ``code run``).

    Returns
    -------
    SandboxRun
        ``ok`` with the grader's validation of the prediction, or ``failed`` with its class.

    Raises
    ------
    SandboxUnavailableError
        No sandbox can be made here: the code is never run unsandboxed.
        (:class:`~grader.errors.CodeUserError` when ``user`` cannot reach a bound folder.)
    CodePackageError
        A malformed or hostile package.
    """
    probe_sandbox(user)
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (240, 240, 4):
        raise ArrayContractError(f"inputs have shape {x.shape}", expected="(n, 240, 240, 4)")
    job = Path(tempfile.mkdtemp(prefix="brats-code-", dir=workdir))
    try:
        os.chmod(job, 0o755)
        unpack_submission(source, job / "code")
        np.save(job / "x.npy", np.ascontiguousarray(x, dtype=X_DTYPE), allow_pickle=False)
        os.chmod(job / "x.npy", 0o644)
        return _run_job(job, len(x), limits, user)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _run_job(job: Path, n_slices: int, limits: Limits, user: Optional[CodeUser]) -> SandboxRun:
    pred = os.open(job / "pred.npy", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    status = os.open(job / "status", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    bw_read, bw_write = os.pipe()
    seccomp = _seccomp_fd()
    args = sandbox_args(job, limits, seccomp, bw_write)
    try:
        _check_reachable(args, user)
    except CodeUserError:
        for fd in (pred, status, bw_read, bw_write) + ((seccomp,) if seccomp is not None else ()):
            os.close(fd)
        raise
    args += [sys.executable, "-I", "-u", "/job/runner.py", json.dumps(limits.rlimits(n_slices)), str(pred), str(status)]
    passed = (pred, status, bw_write) + ((seccomp,) if seccomp is not None else ())

    start = time.monotonic()
    timed_out = False
    with open(job / "log", "wb") as log:
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=passed, env=_ENV,
                                    **(user.popen_args() if user else {}))
        finally:
            os.close(bw_write)
        try:
            proc.wait(timeout=limits.time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_tree(proc)
    seconds = time.monotonic() - start
    with os.fdopen(bw_read, "rb") as fh:
        bw_status = _json_lines(fh.read(65536).decode("utf-8", "replace"))
    for fd in (pred, status) + ((seccomp,) if seccomp is not None else ()):
        os.close(fd)
    log_text = _read_tail(job / "log", LOG_BYTES)
    child = next((s["child-pid"] for s in bw_status if isinstance(s.get("child-pid"), int)), None)
    _reap_namespace(child)
    if child is None:
        raise SandboxUnavailableError("the sandbox could not start: " + log_text.strip()[-300:],
                                      hint="check 'bwrap --unshare-all --ro-bind / / true' works for this user")
    exit_code = next((s["exit-code"] for s in bw_status if isinstance(s.get("exit-code"), int)), proc.returncode)
    statuses = _json_lines(_read_tail(job / "status", 4096)[:4096])
    kind, failure, etype, detail = _classify(exit_code, statuses, timed_out)
    validation = None
    if kind == "ok":
        validation = _validate_prediction(job / "pred.npy", n_slices, limits.rlimits(n_slices)["RLIMIT_FSIZE"])
    return SandboxRun(kind, failure, etype, detail, log_text, round(seconds, 3), validation)


@functools.lru_cache(maxsize=8)
def sandbox_problem(user: Optional[CodeUser] = None) -> Optional[str]:
    """Why no working sandbox can be made here, or None when one can (checked once per process and user).

    It starts a real sandbox, as ``user`` when given, that imports the kit's shared packages
    and numpy, scipy, scikit-learn and skops.
    """
    if not sys.platform.startswith("linux"):
        return "bubblewrap needs Linux"
    if shutil.which("bwrap") is None:
        return "the 'bwrap' command (bubblewrap) is not installed"
    job = Path(tempfile.mkdtemp(prefix="brats-probe-"))
    try:
        os.chmod(job, 0o755)
        (job / "code").mkdir(mode=0o755)
        np.save(job / "x.npy", np.zeros((0, 240, 240, 4), X_DTYPE))
        os.chmod(job / "x.npy", 0o644)
        bw_read, bw_write = os.pipe()
        args = sandbox_args(job, Limits(time_limit=60), None, bw_write) + [
            sys.executable, "-I", "-c", "import numpy, scipy, sklearn, skops, starter"]
        blocked = unreachable(bound_sources(args), user)
        if blocked:
            os.close(bw_write)
            os.close(bw_read)
            return _cannot_reach(user, blocked)
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                  pass_fds=(bw_write,), env=_ENV, **(user.popen_args() if user else {}))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not run ({type(exc).__name__})"
        finally:
            os.close(bw_write)
            os.close(bw_read)
        if done.returncode != 0:
            return "bwrap failed: " + done.stderr.decode("utf-8", "replace").strip()[-300:]
        return None
    finally:
        shutil.rmtree(job, ignore_errors=True)


def probe_sandbox(user: Optional[CodeUser] = None) -> None:
    """Raise :class:`~grader.errors.SandboxUnavailableError` unless a working sandbox can be made here (as ``user``).

    Used by ``server init --code`` and at the server's start: the code track refuses to start
    without one. :class:`~grader.errors.CodeUserError` when ``user`` cannot reach a bound folder.
    """
    problem = sandbox_problem(user)
    if problem and user is not None and problem.startswith(_cannot_reach(user, "")):
        raise _user_error(user, problem)
    if problem:
        raise SandboxUnavailableError(f"no sandbox can be made on this machine: {problem}",
                                      hint="install bubblewrap (Debian: apt install bubblewrap) and allow "
                                      "unprivileged user namespaces")
