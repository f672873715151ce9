"""Deadline rush (issue 24): thousands of teams hand in during a contest's last minutes, on replicas.

5,000 teams (tokens made in bulk by ``brats_kit.server.course.init_course``, the library behind
``server init``), each handing in 3 valid files in the last 10 minutes before the deadline, on a
throw-away PostgreSQL cluster (fsync on) served by 2 ``brats-kit server run`` processes (with
``--replica`` when the command has it), loopback only. Uploads are spread round robin over the
replicas, so one team's files reach both. Arrivals rise towards the deadline (density 2t/T over the
window: half of them in its last 29%), each team's uploads in order, the next one sent when the
previous is answered and its own moment has come; at most ``--clients`` uploads are in flight.

The contest's clock is the servers' real one: the course's deadline is set ``--lead`` seconds plus
``--minutes`` after the course is made, so the replicas, unmodified, live through the contest's
last minutes (the tests fake time by passing ``clock=`` to the app; a ``server run`` process takes
none). Replicas slower to start than the lead leave a shorter window, into which the same uploads
are squeezed (the window run is printed). Its quota day follows a fixed offset chosen so that no
midnight falls within the run.

With ``--per-day 2`` (the default) every team's third file must be refused (429), so the quotas are
checked both ways. Reports: accepted uploads, refusals, late ones (answered ``deadline_passed``:
the servers fell behind), uploads whose connection broke before any answer, lost receipts (a receipt whose row or stored file is missing), rows
without a receipt, quota errors (an answer the quota rule did not allow; a team over its quota in
the database), ``server audit``, p50/p99 latency, how late the clients sent (p99), CPU per request
(replicas with their workers, PostgreSQL) and the load average. Bounded: uploads not sent by
``--grace`` seconds after the deadline are counted, not waited for.

    python benchmarks/deadline_rush.py [--teams 5000] [--minutes 10] [--replicas 2] [--json]

Reference (issue 24): 0 lost, quotas exact, p99 reported. This machine has 2 cores shared by the
clients, both replicas and PostgreSQL.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import heapq
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replicas import (Replicas, RoundRobin, check_course, percentile_ms, postmaster_pid,  # noqa: E402
                      tree_cpu_seconds)
from server_load import N_CASES, prediction, upload  # noqa: E402


def contest_zone(now: datetime) -> timezone:
    """A whole-hour offset at which ``now`` is between 08:00 and 16:59 local: no quota day ends during a run.

    Examples
    --------
    >>> zone = contest_zone(datetime(2026, 12, 4, 23, 30, tzinfo=timezone.utc))
    >>> datetime(2026, 12, 4, 23, 30, tzinfo=timezone.utc).astimezone(zone).hour
    12
    """
    hours = (12 - now.hour + 12) % 24 - 12  # -12 .. 11
    return timezone(timedelta(hours=hours))


def schedule(teams: int, uploads: int, window_s: float, seed: int = 0) -> np.ndarray:
    """Seconds after the window opens at which each team means to hand in each file: ``(teams, uploads)``, sorted per team.

    Density ``2t / window²``: a rush that grows until the deadline.

    Examples
    --------
    >>> s = schedule(1000, 3, 600.0)
    >>> s.shape, bool((s >= 0).all() and (s < 600).all()), bool((np.diff(s, axis=1) >= 0).all())
    ((1000, 3), True, True)
    >>> bool((s > 300).mean() > 0.7)  # three quarters in the second half
    True
    """
    rng = np.random.default_rng(seed)
    return np.sort(window_s * np.sqrt(rng.random((teams, uploads))), axis=1)


def make_course(tmp: Path, competition: Path, teams: int, *, db: str, per_day: int, board_interval=None) -> tuple:
    """A course of ``teams`` teams on ``db``, tokens made by the library in one transaction: ``(course, tokens, s)``."""
    from brats_kit.server.course import init_course, read_tokens

    roster = tmp / "roster.csv"
    roster.write_text("student_id,name,email,team\n" + "".join(
        f"s{i},Student {i},s{i}@example.org,t{i:05d}\n" for i in range(teams)))
    course = tmp / "course"
    extra = {} if board_interval is None else {"board_interval_s": board_interval}
    t0 = time.perf_counter()
    info = init_course(course, competition=competition, roster=roster, db=db, per_day=per_day,
                       max_invalid_per_day=0, extra=extra)
    return course, read_tokens(info["tokens"]), time.perf_counter() - t0


def set_deadline(course: Path, deadline: datetime) -> None:
    """Move the course's deadline (``private/course.json``; read when a server starts), and its quota day's zone."""
    from plumbing.atomic import write_text

    path = course / "private" / "course.json"
    config = json.loads(path.read_text())
    config["deadline"] = deadline.isoformat()
    offset = int(deadline.utcoffset().total_seconds()) // 60
    config["timezone"] = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


class Rush:
    """The clients: each team's files sent in order at their moments, round robin over the replicas."""

    def __init__(self, urls: list, tokens: dict, y: np.ndarray, plan: np.ndarray, start: float, stop_at: float,
                 clients: int):
        self.rr, self.tokens, self.y, self.plan = RoundRobin(urls), tokens, y, plan
        self.names = sorted(tokens)
        self.start, self.stop_at, self.clients = start, stop_at, clients
        self.heap = [(start + float(plan[t, 0]), t, 0) for t in range(len(self.names))]
        heapq.heapify(self.heap)
        self.cv = threading.Condition()
        self.pending = len(self.names) * plan.shape[1]  # uploads not yet answered (or given up)
        #: (team, k, seconds behind its moment, status, code, receipt id, sha256, latency, answered at (monotonic))
        self.results: list = []

    def send(self, due: float, t: int, k: int) -> None:
        sent = time.monotonic()
        try:
            status, body, latency = upload(self.rr.connection(), self.tokens[self.names[t]],
                                           prediction(self.y, t, k))
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except ValueError:
                    body = {}
            code = body.get("error", {}).get("code") if status != 201 else None
            row = (t, k, sent - due, status, code, body.get("id"), body.get("sha256"), latency, time.monotonic())
        except Exception as exc:  # noqa: BLE001 - a transport failure is counted, never fatal to the run
            row = (t, k, sent - due, None, f"{type(exc).__name__}: {exc}"[:300], None, None, time.monotonic() - sent,
                   time.monotonic())
        with self.cv:
            self.results.append(row)
            self.pending -= 1
            if k + 1 < self.plan.shape[1]:  # the team's next file: at its moment, never before this answer
                heapq.heappush(self.heap, (max(self.start + float(self.plan[t, k + 1]), time.monotonic()), t, k + 1))
            self.cv.notify()

    def run(self) -> int:
        """Send everything (or until ``stop_at``); returns how many uploads were never sent."""
        with concurrent.futures.ThreadPoolExecutor(self.clients) as pool:
            while True:
                with self.cv:
                    item = None
                    while self.pending and time.monotonic() < self.stop_at:
                        now = time.monotonic()
                        if self.heap and self.heap[0][0] <= now:
                            item = heapq.heappop(self.heap)
                            break
                        self.cv.wait(min(self.heap[0][0] - now if self.heap else 1.0, 1.0))
                if item is None:
                    break
                pool.submit(self.send, *item)
        return len(self.names) * self.plan.shape[1] - len(self.results)


def judge(results: list, names: list, per_day: int, deadline_at: float, slack: float = 0.5) -> dict:
    """Each answer against the rules, in each team's order: ``{receipts, expected, quota_errors, early, ...}``.

    Before the deadline a team's valid file is accepted while it holds fewer than ``per_day``
    receipts and refused with ``quota_exceeded`` after. ``deadline_passed`` is late, not an error,
    unless its answer came more than ``slack`` seconds before ``deadline_at`` (``early``).

    Examples
    --------
    >>> r = [(0, 0, 0, 201, None, 1, "a", .1, 1.0), (0, 1, 0, 201, None, 2, "b", .1, 2.0),
    ...      (0, 2, 0, 429, "quota_exceeded", None, None, .1, 3.0)]
    >>> j = judge(r, ["t0"], per_day=2, deadline_at=10.0)
    >>> j["quota_errors"], j["expected"], j["receipts"]
    (0, {'t0': 2}, {1: ('t0', 'a'), 2: ('t0', 'b')})
    >>> judge(r, ["t0"], per_day=3, deadline_at=10.0)["quota_errors"]  # the third was refused under the quota
    1
    >>> late = [(0, 0, 0, 403, "deadline_passed", None, None, .1, 9.0)]
    >>> judge(late, ["t0"], 2, deadline_at=10.0)["early"], judge(late, ["t0"], 2, deadline_at=9.2)["late"]
    (1, 1)
    >>> judge([(0, 1, 0, None, "ProtocolError: reset", None, None, .1, 9.0)], ["t0"], 2, 10.0)["broken"]
    [('t0', 1, 'ProtocolError: reset')]
    """
    by_team: dict = {}
    for row in sorted(results, key=lambda r: (r[0], r[1])):
        by_team.setdefault(row[0], []).append(row)
    receipts, expected, errors, late, early, other, broken = {}, {}, 0, 0, 0, {}, []
    for t, rows in by_team.items():
        held = 0
        for _, k, _, status, code, sid, sha, _, answered in rows:
            if code == "deadline_passed":
                late += 1
                early += answered < deadline_at - slack
                continue
            if status == 201:
                errors += held >= per_day
                held += 1
                receipts[sid] = (names[t], sha)
            elif status == 429 and code == "quota_exceeded":
                errors += held < per_day
            elif status is None:  # no HTTP answer: the connection broke (its row, if any, has no receipt)
                broken.append((names[t], k, code))
            else:
                other[f"{status} {code}"] = other.get(f"{status} {code}", 0) + 1
        expected[names[t]] = held
    return {"receipts": receipts, "expected": expected, "quota_errors": errors, "late": late, "early": early,
            "other": other, "broken": broken}


def rush(tmp: Path, *, db: str, cluster=None, teams: int = 5000, minutes: float = 10.0, uploads: int = 3,
         per_day: int = 2, replicas: int = 2, clients: int = 64, lead: Optional[float] = None, cases: int = N_CASES,
         grace: float = 120.0, board_interval=None, seed: int = 0, replica: Optional[bool] = None) -> dict:
    """Run one deadline rush on ``db`` (a PostgreSQL URL; ``cluster``: its :class:`PostgresCluster`, for its CPU).

    Returns the figures and the checks (see the module doc); every check is 0 (or True) when correct.
    """
    from cohorts.classroom import make_truth, write_truth

    competition = tmp / "competition"
    y, public = make_truth(cases, seed=seed)
    write_truth(competition, y, public)
    course, tokens, init_s = make_course(tmp, competition, teams, db=db, per_day=per_day,
                                         board_interval=board_interval)
    window = 60.0 * minutes
    lead = 10.0 + 8.0 * replicas if lead is None else lead
    now = datetime.now(timezone.utc)
    deadline_at = time.monotonic() + lead + window  # the same moment on the clients' clock
    deadline = (now + timedelta(seconds=lead + window)).astimezone(contest_zone(now))
    set_deadline(course, deadline)
    logs = tmp / "logs"
    logs.mkdir()
    load0 = os.getloadavg()[0]
    with Replicas(course, replicas, logs, replica=replica) as fleet:
        # Replicas slower to start than the lead: the window that is left, the same rush squeezed into it.
        window_run = min(window, deadline_at - time.monotonic())
        if window_run <= 0:
            raise SystemExit(f"the replicas took longer than the {lead:.0f} s lead and the whole window to start")
        start = deadline_at - window_run
        plan = schedule(teams, uploads, window_run, seed)
        pg = [postmaster_pid(cluster)] if cluster is not None else []
        cpu0, pg0 = tree_cpu_seconds(fleet.pids), tree_cpu_seconds(pg)
        clients_run = Rush(fleet.urls, tokens, y, plan, start, deadline_at + grace, clients)
        t0 = time.monotonic()
        not_sent = clients_run.run()
        wall = time.monotonic() - t0
        cpu, pg_cpu = tree_cpu_seconds(fleet.pids) - cpu0, tree_cpu_seconds(pg) - pg0
        flag = " ".join(fleet.flag)
    results = clients_run.results
    verdict = judge(results, clients_run.names, per_day, deadline_at)
    check = check_course(course, verdict["receipts"], per_day=per_day, max_invalid=0, expected=verdict["expected"])
    lat = [r[7] for r in results if r[3] is not None]
    late_send = [max(0.0, r[2]) for r in results]
    n = max(1, len(results))
    return {"teams": teams, "uploads_planned": teams * uploads, "minutes": minutes, "window_s": window_run,
            "replicas": replicas,
            "flag": flag, "per_day": per_day, "clients": clients, "tokens_s": init_s, "wall_s": wall,
            "answered": len(results), "not_sent": not_sent, "accepted": sum(r[3] == 201 for r in results),
            "refused_quota": sum(r[4] == "quota_exceeded" for r in results), "late": verdict["late"],
            "refused_early": verdict["early"],
            "other_answers": verdict["other"], "no_answer": len(verdict["broken"]),
            "no_answer_examples": verdict["broken"][:5], "quota_errors": verdict["quota_errors"],
            "lost": check["lost"], "unreceipted_rows": check["unreceipted_rows"],
            "quota_exceeded": check["quota_exceeded"], "teams_with_wrong_count": check["teams_with_wrong_count"],
            "audit_ok": check["audit_ok"], "p50_ms": percentile_ms(lat, 50), "p99_ms": percentile_ms(lat, 99),
            "max_ms": 1000 * max(lat, default=float("nan")), "send_late_p99_ms": percentile_ms(late_send, 99),
            "server_cpu_ms_per_request": 1000 * cpu / n, "pg_cpu_ms_per_request": 1000 * pg_cpu / n if pg else None,
            "load": [load0, os.getloadavg()[0]], "cores": os.cpu_count()}


def correct(r: dict) -> bool:
    """0 lost, quotas exact, audit ok, every HTTP answer by the rules (late ones apart), every upload sent.

    An upload whose connection broke before any answer (``no_answer``) is reported, not failed: the
    client holds no receipt, and a row recorded for it would fail the count (a row without a receipt).
    """
    return (r["lost"] == 0 and r["unreceipted_rows"] == 0 and r["quota_errors"] == 0 and r["quota_exceeded"] == 0
            and r["refused_early"] == 0
            and r["teams_with_wrong_count"] == 0 and r["audit_ok"] and not r["other_answers"] and r["not_sent"] == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teams", type=int, default=5000)
    ap.add_argument("--minutes", type=float, default=10.0, help="Length of the rush before the deadline.")
    ap.add_argument("--uploads", type=int, default=3, help="Files each team hands in.")
    ap.add_argument("--per-day", type=int, default=2, help="The course's daily quota (2: each third file refused).")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--clients", type=int, default=64, help="Uploads in flight at most.")
    ap.add_argument("--lead", type=float, default=None, help="Seconds from the course's creation to the window "
                                                               "(default 10 + 8 per replica).")
    ap.add_argument("--grace", type=float, default=120.0, help="Seconds after the deadline before giving up.")
    ap.add_argument("--board-interval", type=float, default=None,
                    help="Seconds between live-board rebuilds (0: off; default: the course's default).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for name in ("teams", "uploads", "per_day", "replicas", "clients"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.minutes <= 24 * 60:
        ap.error("--minutes must be above 0 and at most 1440")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_server_support import pg_cluster_or_reason

    tmp = Path(tempfile.mkdtemp(prefix="brats-rush-"))
    cluster, reason = pg_cluster_or_reason(fsync=True)
    if cluster is None:
        raise SystemExit(f"the rush needs PostgreSQL: {reason}")
    try:
        r = rush(tmp, db=cluster.new_database(), cluster=cluster, teams=args.teams, minutes=args.minutes,
                 uploads=args.uploads, per_day=args.per_day, replicas=args.replicas, clients=args.clients,
                 lead=args.lead, grace=args.grace, board_interval=args.board_interval)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ok = correct(r)
    if args.json:
        print(json.dumps({**r, "ok": ok}, indent=2))
    else:
        pg = "" if r["pg_cpu_ms_per_request"] is None else f" + PostgreSQL {r['pg_cpu_ms_per_request']:.1f}"
        print(f"deadline rush: {r['teams']} teams x {args.uploads} files in the last {r['minutes']:g} min, "
              f"{r['replicas']} replicas{(' (' + r['flag'] + ')') if r['flag'] else ''} on PostgreSQL, quota "
              f"{r['per_day']}/day, {r['clients']} clients; {r['cores']} cores, load {r['load'][0]:.1f} -> "
              f"{r['load'][1]:.1f}; tokens for {r['teams']} teams made in {r['tokens_s']:.1f} s")
        print(f"  answered {r['answered']} of {r['uploads_planned']} (not sent {r['not_sent']}): "
              f"{r['accepted']} accepted, {r['refused_quota']} refused by the quota, {r['late']} late "
              f"(deadline_passed; {r['refused_early']} of them before the deadline), other {r['other_answers'] or 0}; "
              f"window {r['window_s']:.0f} s; no HTTP answer (connection broken) {r['no_answer']}")
        for team, k, what in r["no_answer_examples"]:
            print(f"    no answer: {team}'s file {k + 1}: {what}")
        print(f"  latency p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; clients "
              f"behind their schedule p99 {r['send_late_p99_ms']:.0f} ms; CPU {r['server_cpu_ms_per_request']:.1f}"
              f"{pg} ms per request")
        print(f"  lost {r['lost']}, rows without a receipt {r['unreceipted_rows']}, quota errors "
              f"{r['quota_errors']}, teams over quota {r['quota_exceeded']}, teams with a wrong count "
              f"{r['teams_with_wrong_count']}, audit {'ok' if r['audit_ok'] else 'FAILED'}: "
              f"{'PASSED' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
