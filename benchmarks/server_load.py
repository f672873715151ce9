"""Load and kill test of the submission server on loopback (issue 13's benchmark; not a timed test).

Load: 200 teams, each handing in 5 valid files, 1 invalid file and a 6th valid file that the
daily quota must refuse, as fast as the server answers (16 teams at once), against a real
``brats-kit server run`` process, once on SQLite and once on PostgreSQL (a throw-away cluster;
skipped with a message when PostgreSQL is not installed). Reports accepted uploads per second,
p50/p99 latency, and the ratio of the server's per-upload time to the bare validate + score
time (``grader.scoring.evaluate``) of the same files in the same run; checks that nothing
acknowledged is lost, nothing is counted twice and no quota is exceeded. The clients run in this
process on the same two cores (urllib3, multipart bodies as ``brats-kit submit`` sends them); their
CPU per request is printed beside the server's (its process, scoring workers and live-board child).

Kill test: SIGKILL the server at a random moment under load, restart it, check that
``server audit`` passes and every receipt the clients got is in the database and the store;
10 times.

    python benchmarks/server_load.py [--teams 200] [--kills 10] [--no-postgres]
    python benchmarks/server_load.py --hostile [--teams 200]

Hostile mode (issue 20): team000 floods the server with corrupted HDF5 files (the damaged global
heap of the tests' hanging file; on this benchmark's truth libhdf5 refuses it as corrupt in about
10 ms rather than hanging: the hanging case is tests/attacks/test_flood.py's) from 4 connections at
once, and a fifth client sends wrong tokens, while the 199 other teams hand in as above; the same
run without the flood is printed beside it (SQLite). Target: the honest teams' p99 within 2x of the quiet run, nothing
lost, quotas exact.

Reference (issue 13, 2 cores): at least 50 uploads/s, p99 under 1 s, zero lost or
double-counted submissions, quota never exceeded.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import httpx
import numpy as np
import urllib3
from urllib.parse import urlsplit
from urllib3 import HTTPConnectionPool
from urllib3.filepost import encode_multipart_formdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the throw-away PostgreSQL cluster of the server tests

from cohorts.classroom import make_truth, write_truth  # noqa: E402
from data_spec import load_truth  # noqa: E402
from grader.scoring import evaluate  # noqa: E402

BRATS_KIT = str(Path(sys.executable).parent / "brats-kit")
API = "/api/v1"
N_CASES = 29


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(course: Path, log: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fh = open(log, "ab")
    proc = subprocess.Popen([BRATS_KIT, "server", "run", str(course), "--port", str(port)], stdout=fh, stderr=fh)
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}{API}/competition", timeout=2).status_code == 200:
                return proc, url, time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def init_course(tmp: Path, competition: Path, n_teams: int, *, db=None, per_day=5, max_invalid=1,
                board_interval=None) -> tuple:
    roster = tmp / f"roster-{n_teams}.csv"
    roster.write_text("student_id,name,email,team\n" + "".join(
        f"s{i},Student {i},s{i}@example.org,team{i:03d}\n" for i in range(n_teams)))
    course = tmp / f"course-{time.monotonic_ns()}"
    args = [BRATS_KIT, "server", "init", str(course), "--competition", str(competition), "--roster", str(roster),
            "--per-day", str(per_day), "--max-invalid-per-day", str(max_invalid), "--json"]
    if db:
        args += ["--db", db]
    subprocess.run(args, check=True, capture_output=True)
    if board_interval is not None:  # the pages' live board rebuilds in the server process
        config_path = course / "private" / "course.json"
        config = json.loads(config_path.read_text())
        config.setdefault("extra", {})["board_interval_s"] = board_interval
        config_path.write_text(json.dumps(config))
    tokens = dict(line.split(",", 1) for line in (course / "private" / "tokens.csv").read_text().split("\n")[1:] if line)
    return course, tokens


_BASES: dict = {}


def prediction(y: np.ndarray, team: int, k: int) -> bytes:
    """A distinct valid raw submission per (team, k): the truth shifted, 50 pixels flipped.

    Cheap on purpose (a copy of one of 13 precomputed shifts): the clients share the
    server's two cores, and the benchmark measures the server.
    """
    rng = np.random.default_rng([team, k])
    shift = int(rng.integers(-6, 7))
    if shift not in _BASES:
        _BASES[shift] = np.roll(y, shift, axis=2).tobytes()
    data = bytearray(_BASES[shift])
    for i in rng.integers(0, len(data), 50).tolist():
        data[i] ^= 1
    return bytes(data)


def invalid(y: np.ndarray, team: int) -> bytes:
    return (np.roll(y, team % 5, axis=1) * np.uint8(255)).tobytes()  # the classic 0/255 mistake


def connection(url: str) -> HTTPConnectionPool:
    """One keep-alive connection to the server (urllib3: a lighter client than httpx, so that the
    clients, which share the server's two cores here, take less of them)."""
    parts = urlsplit(url)
    return HTTPConnectionPool(parts.hostname, parts.port, maxsize=1, timeout=60, retries=False)


def upload(conn: HTTPConnectionPool, token: str, data: bytes) -> tuple:
    """Hand in ``data`` as the multipart field ``file`` (as ``brats-kit submit`` does): status, body, seconds."""
    body, content_type = encode_multipart_formdata({"file": ("f", data, "application/octet-stream")})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    t0 = time.perf_counter()
    r = conn.urlopen("POST", f"{API}/submissions", body=body, headers=headers, retries=False)
    elapsed = time.perf_counter() - t0
    return r.status, (json.loads(r.data) if r.status in (201, 401, 429) else r.data.decode()), elapsed


def team_session(url: str, token: str, y: np.ndarray, team: int) -> list:
    """One team: 5 valid, 1 invalid, then a 6th valid that must be refused (quota)."""
    plan = [("valid", prediction(y, team, k)) for k in range(5)]
    plan.insert(team % 6, ("invalid", invalid(y, team)))
    plan.append(("over", prediction(y, team, 5)))
    out = []
    with connection(url) as conn:
        for kind, data in plan:
            out.append((kind, data) + upload(conn, token, data))
    return out


def db_rows(course: Path) -> list:
    from brats_kit.server.course import Course
    from brats_kit.server.db import Submission
    from sqlalchemy import select

    with Course(course) as c, c.sessions() as s:
        return [(r.id, r.team_id, r.sha256, r.status, r.day) for r in s.scalars(select(Submission))]


def audit(course: Path) -> dict:
    r = subprocess.run([BRATS_KIT, "server", "audit", str(course), "--json"], capture_output=True, text=True)
    out = json.loads(r.stdout)
    out["exit"] = r.returncode
    return out


def bare_times(truth_path: Path, y: np.ndarray, tmp: Path, n: int = 40) -> list:
    truth = load_truth(truth_path)
    times = []
    for i in range(n):
        path = tmp / f"bare{i}.dat"
        path.write_bytes(prediction(y, 10_000 + i, 0))
        t0 = time.perf_counter()
        verdict = evaluate(path, truth)
        verdict.counts.scores("public")
        times.append(time.perf_counter() - t0)
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the scoring workers); NaN without psutil."""
    try:
        import psutil
    except ImportError:
        return float("nan")

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc] + proc.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def flood(url: str, token: str, hang: bytes, stop: threading.Event, counts: dict, *, wrong: bool = False) -> None:
    """The hostile team: corrupted files with its token, or anything with wrong tokens, until ``stop``."""
    with connection(url) as conn:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, body, _ = upload(conn, f"wrong-{i}" if wrong else token, b"garbage" if wrong else hang)
                code = body.get("error", {}).get("code") or body.get("status") if isinstance(body, dict) else ""
                key = f"{'wrong token' if wrong else 'corrupted file'}: {status} {code}".rstrip()
            except Exception as exc:  # noqa: BLE001 - counted, never fatal to the benchmark
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1


def load_run(label: str, tmp: Path, competition: Path, y: np.ndarray, n_teams: int, db=None, clients: int = 16,
             board_interval=None, hostile: Optional[bytes] = None) -> dict:
    """One load run; with ``hostile`` (a corrupted HDF5 file's bytes), team000 floods while the others hand in."""
    course, tokens = init_course(tmp, competition, n_teams, db=db, board_interval=board_interval)
    proc, url, startup = start_server(course, tmp / f"server-{label}.log")
    honest = range(1, n_teams) if hostile is not None or label.startswith("quiet") else range(n_teams)
    stop, flooded, threads = threading.Event(), {}, []
    try:
        if hostile is not None:
            threads = [threading.Thread(target=flood, args=(url, tokens["team000"], hostile, stop, flooded),
                                        kwargs={"wrong": k == 4}, daemon=True) for k in range(5)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # the flood is in before the class starts
        cpu0 = cpu_seconds(proc.pid)
        client0 = time.process_time()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            sessions = list(pool.map(lambda i: team_session(url, tokens[f"team{i:03d}"], y, i), honest))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        client_cpu = time.process_time() - client0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    results = [r for s in sessions for r in s]
    accepted = [r for r in results if r[2] == 201]
    lat = np.array([r[4] for r in results])
    bad_status = [(k, c, b) for k, _, c, b, _ in results
                  if (k in ("valid", "invalid") and c != 201) or (k == "over" and c != 429)]
    rows = db_rows(course)
    receipts = {r[3]["id"]: r[3]["sha256"] for r in accepted}
    by_id = {row[0]: row for row in rows}
    lost = [i for i, sha in receipts.items() if i not in by_id or by_id[i][2] != sha]
    per_team_day: dict = {}
    for _, team, _, status, day in rows:
        per_team_day[(team, day, status)] = per_team_day.get((team, day, status), 0) + 1
    over_quota = {k: v for k, v in per_team_day.items() if (k[2] == "scored" and v > 5) or (k[2] == "invalid" and v > 1)}
    result = audit(course)
    return {"label": label, "startup_s": startup, "uploads": len(results), "accepted": len(accepted), "wall_s": wall,
            "accepted_per_s": len(accepted) / wall, "requests_per_s": len(results) / wall,
            "server_cpu_ms_per_request": 1000 * cpu / len(results),
            "client_cpu_ms_per_request": 1000 * client_cpu / len(results),
            "p50_ms": 1000 * float(np.percentile(lat, 50)), "p99_ms": 1000 * float(np.percentile(lat, 99)),
            "median_accepted_ms": 1000 * float(np.median([r[4] for r in accepted])),
            "unexpected": bad_status[:5], "n_unexpected": len(bad_status), "lost": len(lost),
            "double_counted": len(rows) - len(receipts), "quota_exceeded": len(over_quota),
            "audit_ok": result["ok"] and result["exit"] == 0, "flood": flooded}


def kill_test(tmp: Path, competition: Path, y: np.ndarray, kills: int, seed: int = 0) -> list:
    course, tokens = init_course(tmp, competition, 20, per_day=100_000, max_invalid=100_000)
    rng = random.Random(seed)
    receipts: dict = {}
    lock = threading.Lock()
    out = []
    for k in range(kills):
        proc, url, startup = start_server(course, tmp / "server-kill.log")
        stop = threading.Event()

        def hammer(team: int):
            with connection(url) as conn:
                j = 0
                while not stop.is_set():
                    data = invalid(y, team) if j % 6 == 5 else prediction(y, 1000 * k + team, j)
                    j += 1
                    try:
                        code, body, _ = upload(conn, tokens[f"team{team:03d}"], data)
                    except urllib3.exceptions.HTTPError:
                        return
                    if code == 201:
                        with lock:
                            receipts[body["id"]] = body["sha256"]

        threads = [threading.Thread(target=hammer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        delay = rng.uniform(0.2, 3.0)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        # Restart: startup removes leftovers; then the audit and the receipts.
        proc, url, _ = start_server(course, tmp / "server-kill.log")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        result = audit(course)
        rows = {r[0]: r[2] for r in db_rows(course)}
        missing = [i for i, sha in receipts.items() if rows.get(i) != sha]
        from brats_kit.server.store import Store

        store = Store(course / "store")
        no_file = [i for i in receipts if not store.path(receipts[i]).is_file()]
        out.append({"kill": k + 1, "after_s": round(delay, 2), "receipts_so_far": len(receipts), "rows": len(rows),
                    "audit_ok": result["ok"] and result["exit"] == 0, "missing_receipts": len(missing),
                    "missing_files": len(no_file), "tmp_left": len(store.temporary_files()),
                    "notes": result["notes"]})
        print(f"  kill {k + 1:>2}: after {delay:.2f} s, {len(receipts)} receipts so far, audit "
              f"{'ok' if out[-1]['audit_ok'] else 'FAILED ' + str(result['problems'][:3])}, "
              f"missing receipts {len(missing)}, missing files {len(no_file)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--clients", type=int, default=16, help="Teams uploading at the same moment.")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--board-interval", type=float, default=None,
                    help="Seconds between live-board rebuilds (0: off; default: the course's default).")
    ap.add_argument("--hostile", action="store_true",
                    help="One team floods corrupted HDF5 files and wrong tokens; compared with the same run without.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="brats-server-load-"))
    if args.hostile:
        try:
            hostile_runs(tmp, args)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        competition = tmp / "competition"
        y, public = make_truth(N_CASES, seed=0)
        write_truth(competition, y, public)
        bare = bare_times(competition / "private" / "test_truth.h5", y, tmp)
        bare_ms = 1000 * float(np.median(bare))
        print(f"bare validate + score (grader.scoring.evaluate, {N_CASES} slices, raw): median {bare_ms:.1f} ms")
        runs = []
        backends = [("sqlite", None)]
        cluster = None
        if not args.no_postgres:
            from test_server_support import pg_cluster_or_reason

            cluster, reason = pg_cluster_or_reason(fsync=True)
            if cluster is None:
                print(f"PostgreSQL run skipped: {reason}")
            else:
                backends.append(("postgresql", cluster.new_database()))
        try:
            for label, db in backends:
                r = load_run(label, tmp, competition, y, args.teams, db=db, clients=args.clients,
                             board_interval=args.board_interval)
                r["ratio_to_bare"] = r["median_accepted_ms"] / bare_ms
                r["cpu_ratio_to_bare"] = r["server_cpu_ms_per_request"] / bare_ms
                runs.append(r)
                print(f"{label:>10}: {r['uploads']} uploads ({r['accepted']} accepted) in {r['wall_s']:.1f} s: "
                      f"{r['accepted_per_s']:.1f} accepted/s ({r['requests_per_s']:.1f} requests/s; target >= 50), "
                      f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms (target < 1000), "
                      f"latency/bare {r['ratio_to_bare']:.1f}x; lost {r['lost']}, double-counted "
                      f"{r['double_counted']}, quota exceeded {r['quota_exceeded']}, unexpected answers "
                      f"{r['n_unexpected']}, audit {'ok' if r['audit_ok'] else 'FAILED'} "
                      f"(server start {r['startup_s']:.1f} s); server CPU {r['server_cpu_ms_per_request']:.1f} ms "
                      f"per request, {r['cpu_ratio_to_bare']:.1f}x the bare time; clients' CPU {r['client_cpu_ms_per_request']:.1f} ms per request (server and scoring workers: "
                      f"{2000 / r['server_cpu_ms_per_request']:.0f} requests/s if it had 2 idle cores)", flush=True)
                if r["unexpected"]:
                    print(f"            first unexpected: {r['unexpected']}")
        finally:
            if cluster is not None:
                cluster.stop()
        if args.kills:
            print(f"kill test: SIGKILL under load, {args.kills} times (SQLite)", flush=True)
            kills = kill_test(tmp, competition, y, args.kills)
            ok = all(k["audit_ok"] and not k["missing_receipts"] and not k["missing_files"] for k in kills)
            print(f"kill test: {'PASSED' if ok else 'FAILED'}: {kills[-1]['receipts_so_far']} receipts, "
                  f"{sum(k['missing_receipts'] for k in kills)} missing, audit ok after "
                  f"{sum(k['audit_ok'] for k in kills)}/{len(kills)} restarts")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def hostile_runs(tmp: Path, args) -> None:
    """The quiet run and the flooded run, side by side (SQLite)."""
    from test_server_isolation import _hanging_hdf5

    competition = tmp / "competition"
    y, public = make_truth(N_CASES, seed=0)
    write_truth(competition, y, public)
    hang = tmp / "hang.h5"
    _hanging_hdf5(hang, load_truth(competition / "private"))
    runs = {}
    for label, hostile in (("quiet", None), ("flooded", hang.read_bytes())):
        r = runs[label] = load_run(label, tmp, competition, y, args.teams, clients=args.clients,
                                   board_interval=args.board_interval, hostile=hostile)
        print(f"{label:>8}: {r['uploads']} honest uploads ({r['accepted']} accepted) in {r['wall_s']:.1f} s, "
              f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; lost {r['lost']}, quota exceeded "
              f"{r['quota_exceeded']}, unexpected answers {r['n_unexpected']}, audit "
              f"{'ok' if r['audit_ok'] else 'FAILED'}; flood answers {dict(sorted(r['flood'].items()))}",
              flush=True)
        if r["unexpected"]:
            print(f"          first unexpected: {r['unexpected']}")
    q, f = runs["quiet"], runs["flooded"]
    print(f"flooded / quiet: p50 {f['p50_ms'] / q['p50_ms']:.2f}x, p99 {f['p99_ms'] / q['p99_ms']:.2f}x "
          f"(target p99 within 2x); lost {f['lost']}, quotas {'exact' if not f['quota_exceeded'] else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
