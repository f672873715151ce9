"""Several ``brats-kit server run`` processes serving one course, for the load benchmarks (issue 24).

Not a benchmark itself: the harness that ``server_load.py --replicas`` and ``deadline_rush.py``
share. Each replica is the plain command line, ``brats-kit server run COURSE --port P``, with
``--replica`` added only when ``server run --help`` lists it (the replica mode of issue 24 is built
elsewhere; N plain processes on one PostgreSQL course already run today). Uploads are spread over
the replicas by the clients (round robin per upload, so one team's files reach different
processes), CPU is read from ``/proc`` (each replica with its scoring workers and board children,
and PostgreSQL's server processes), and :func:`check_course` counts the database's rows against the
receipts the clients were given.
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import httpx
from urllib3 import HTTPConnectionPool

BRATS_KIT = str(Path(sys.executable).parent / "brats-kit")
API = "/api/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_flag() -> list:
    """``["--replica"]`` when this installation's ``server run`` has the flag, else ``[]``."""
    out = subprocess.run([BRATS_KIT, "server", "run", "--help"], capture_output=True, text=True, check=True).stdout
    return ["--replica"] if "--replica" in out.split() else []


def start_server(course: Path, log: Path, extra: tuple = ()):
    """One ``brats-kit server run`` on a free loopback port, once it answers: ``(process, url, seconds)``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as fh:  # the child keeps its own descriptor
        proc = subprocess.Popen([BRATS_KIT, "server", "run", str(course), "--port", str(port), *extra],
                                stdout=fh, stderr=fh)
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}{API}/competition", timeout=2).status_code == 200:
                return proc, url, time.monotonic() - t0
        except httpx.TransportError:
            pass
        if time.monotonic() - t0 > 120:
            proc.kill()
            raise SystemExit(f"server did not answer within 120 s: {log.read_text()[-2000:]}")
        time.sleep(0.1)


class Replicas:
    """``n`` server processes on one course (started one after the other: each startup's clean-up of
    the store runs before any upload); a context manager that stops them with SIGINT."""

    def __init__(self, course: Path, n: int, log_dir: Path, *, replica: Optional[bool] = None):
        self.flag = replica_flag() if replica is None else (["--replica"] if replica else [])
        self.procs, self.urls, self.startup_s = [], [], []
        try:
            for i in range(n):
                proc, url, seconds = start_server(course, log_dir / f"replica-{i}.log", tuple(self.flag))
                self.procs.append(proc)
                self.urls.append(url)
                self.startup_s.append(seconds)
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> "Replicas":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RoundRobin:
    """Keep-alive connections to each replica, one set per client thread; each request goes to the next one."""

    def __init__(self, urls: list):
        self.urls = list(urls)
        self._next = itertools.count()
        self._local = threading.local()

    def connection(self) -> HTTPConnectionPool:
        pools = getattr(self._local, "pools", None)
        if pools is None:
            pools = self._local.pools = [None] * len(self.urls)
        i = next(self._next) % len(self.urls)
        if pools[i] is None:
            parts = urlsplit(self.urls[i])
            pools[i] = HTTPConnectionPool(parts.hostname, parts.port, maxsize=1, timeout=60, retries=False)
        return pools[i]


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str):
    """``(ppid, user + system seconds of the process and of its reaped children)`` from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counted from the state.
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / _TICK


def tree_cpu_seconds(roots) -> float:
    """CPU seconds used so far by the processes ``roots`` and all their descendants, from ``/proc``.

    A child that ended and was waited for is in its parent's ``cutime``/``cstime`` (the live
    board's child, PostgreSQL's backends of closed connections); a live one in its own times:
    each second is counted once.

    Examples
    --------
    >>> busy = sum(range(2_000_000))
    >>> tree_cpu_seconds([os.getpid()]) > 0
    True
    """
    table = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                table[int(pid)] = _stat(pid)
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass  # ended meanwhile
    children: dict = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, [int(r) for r in roots], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def postmaster_pid(cluster) -> Optional[int]:
    """The PostgreSQL server's pid of a throw-away cluster (tests/test_server_support.PostgresCluster)."""
    try:
        return int((Path(cluster.data) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def course_rows(course: Path) -> list:
    """``(id, team, sha256, status, day)`` of every submission of the course."""
    from sqlalchemy import select

    from brats_kit.server.course import Course
    from brats_kit.server.db import Submission, Team

    with Course(course) as c, c.sessions() as s:
        return [tuple(r) for r in s.execute(select(Submission.id, Team.name, Submission.sha256, Submission.status,
                                                   Submission.day).join(Team, Team.id == Submission.team_id))]


def check_course(course: Path, receipts: dict, *, per_day: int, max_invalid: Optional[int] = None,
                 expected: Optional[dict] = None, audit: bool = True) -> dict:
    """Count the course's rows against the receipts the clients were given.

    ``receipts`` maps a receipt's submission id to ``(team, sha256)``; ``expected`` optionally maps a
    team to the number of receipts it must hold (quotas exact both ways: never more than allowed,
    never fewer than the uploads made within them). Returns the counts (all 0 when correct) and
    whether ``server audit`` passed (None when not run: ``audit=False``).
    """
    import json

    from brats_kit.server.store import Store

    rows = course_rows(course)
    by_id = {r[0]: r for r in rows}
    store = Store(course / "store")
    lost = [i for i, (team, sha) in receipts.items()
            if i not in by_id or by_id[i][1] != team or by_id[i][2] != sha or not store.path(sha).is_file()]
    per_team_day: dict = {}
    per_team: dict = {}
    for _, team, _, status, day in rows:
        per_team_day[(team, day, status)] = per_team_day.get((team, day, status), 0) + 1
        per_team[team] = per_team.get(team, 0) + 1
    over = {k: v for k, v in per_team_day.items()
            if (k[2] == "scored" and v > per_day) or (max_invalid is not None and k[2] == "invalid" and v > max_invalid)}
    wrong_count = {t: (per_team.get(t, 0), n) for t, n in (expected or {}).items() if per_team.get(t, 0) != n}
    audit_ok = None
    if audit:
        done = subprocess.run([BRATS_KIT, "server", "audit", str(course), "--json"], capture_output=True, text=True)
        try:
            audit_ok = done.returncode == 0 and json.loads(done.stdout)["ok"]
        except (ValueError, KeyError):
            audit_ok = False
    return {"rows": len(rows), "receipts": len(receipts), "lost": len(lost),
            "unreceipted_rows": len(set(by_id) - set(receipts)), "quota_exceeded": len(over),
            "teams_with_wrong_count": len(wrong_count), "audit_ok": audit_ok}


def percentile_ms(values, q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds (NaN for none).

    Examples
    --------
    >>> percentile_ms([0.1, 0.2, 0.3], 50)
    200.0
    """
    import numpy as np

    return 1000 * float(np.percentile(values, q)) if len(values) else float("nan")
