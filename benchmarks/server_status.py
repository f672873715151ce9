"""The instructor's status (``GET /api/v1/admin/status``, ``server status``, the dashboard) at course scale.

``CourseService.status()`` reads the teams, every team's uploads per status (all
time, today, last) and the reveal in three queries whatever the number of teams.
The reference is the per-team form it replaced (three queries per team), run here
on the same database: its figure is printed beside ours, with the ratio.

    python benchmarks/server_status.py [--teams 200] [--per-team 5] [--repeat 20]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import event, func, insert, select

from brats_kit.server.course import Course, init_course
from brats_kit.server.db import Submission, Team
from brats_kit.server.service import CourseService
from data_spec import write_competition

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def per_team_status(service: CourseService, day: str) -> list:
    """The reference: three queries per team (the form ``status()`` had before issue 19)."""
    out = []
    with service.course.sessions() as s:
        for t in s.scalars(select(Team).order_by(Team.name)):
            counts = dict(s.execute(select(Submission.status, func.count()).where(Submission.team_id == t.id)
                                    .group_by(Submission.status)).all())
            last = s.scalar(select(func.max(Submission.submitted_at)).where(Submission.team_id == t.id))
            today = dict(s.execute(select(Submission.status, func.count()).where(
                Submission.team_id == t.id, Submission.day == day).group_by(Submission.status)).all())
            out.append((t.name, counts, today, last))
    return out


def timed(fn, repeat: int, engine) -> tuple:
    """Mean seconds per call and statements per call."""
    statements = []

    def count(*_):
        statements.append(1)

    fn()  # warm: compiled statement cache, connection pool
    event.listen(engine, "before_cursor_execute", count)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    elapsed = (time.perf_counter() - start) / repeat
    event.remove(engine, "before_cursor_execute", count)
    return elapsed, len(statements) // repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--per-team", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="server-status-bench-"))
    try:
        rng = np.random.default_rng(0)
        y = (rng.random((6, 240, 240)) < 0.01).astype(np.uint8)
        x = rng.random((6, 240, 240, 4), dtype=np.float32)
        write_competition(tmp / "competition", train={"x": x, "y": y, "case_id": [f"tr{i}" for i in range(6)]},
                          test={"x": x, "y": y, "case_id": [f"te{i}" for i in range(6)],
                                "public": np.arange(6) % 2 == 0},
                          attrs={"generator": "benchmarks/server_status.py", "seed": 0},
                          manifest={"generator": "benchmarks/server_status.py"})
        roster = tmp / "roster.csv"
        roster.write_text("student_id,name,email,team\n" + "".join(
            f"s{i},Student {i},s{i}@example.org,team{i:04d}\n" for i in range(args.teams)), encoding="utf-8")
        init_course(tmp / "course", competition=tmp / "competition", roster=roster, clock=lambda: NOW)
        with Course(tmp / "course") as course:
            with course.engine.begin() as conn:
                ids = list(conn.scalars(select(Team.id)))
                conn.execute(insert(Submission.__table__), [
                    dict(team_id=t, sha256=f"{t:032x}{k:032x}", bytes=1, submitted_at=NOW, day="2026-11-02",
                         status="scored" if k % 2 == 0 else "invalid", format="npy", errors=[], final=False)
                    for t in ids for k in range(args.per_team)])
            service = CourseService(course, clock=lambda: NOW)
            ours, ours_n = timed(service.status, args.repeat, course.engine)
            ref, ref_n = timed(lambda: per_team_status(service, "2026-11-02"), args.repeat, course.engine)
        print(f"status() of {args.teams} teams x {args.per_team} uploads (SQLite):")
        print(f"  ours       {ours * 1000:8.1f} ms  {ours_n:5d} statements")
        print(f"  reference  {ref * 1000:8.1f} ms  {ref_n:5d} statements (three queries per team)")
        print(f"  ratio      {ref / ours:8.1f}x faster")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
