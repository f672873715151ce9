"""The live board's rebuild at course scale: 200 teams x 5 submissions of 29 slices, 2,000 bootstrap resamples.

The server rebuilds the board in a background thread at most once per
``board_interval_s`` (default 10 s). A steady-state rebuild (every file already in
the board's score cache: hard-link export, hashing, bootstrap, figures) should take
well under that interval, so that the thread is idle most of the time; the first
build after start (cold cache) scores every file once, single-process, like
``brats-kit leaderboard --jobs 1``. Prints each time beside its reference.

    python benchmarks/live_board.py [--teams 200] [--per-team 5] [--cases 29] [--bootstrap 2000]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

from brats_kit.server.baselines import attach_baselines
from brats_kit.server.board import DEFAULT_INTERVAL_S, build_board
from brats_kit.server.course import Course, init_course
from brats_kit.server.db import Team
from brats_kit.server.service import CourseService, Principal
from cohorts.classroom import make_class
from grader.isolation import IsolatedScorer
from sqlalchemy import select

#: The single-process cold build of ``benchmarks/leaderboard_scale.py`` (1,000 files) budgets 30 s with 2 jobs.
COLD_REFERENCE_S = 60.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--per-team", type=int, default=5)
    ap.add_argument("--cases", type=int, default=29)
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="live-board-bench-"))
    try:
        c = make_class(tmp / "class", n_teams=args.teams, per_team=(args.per_team, args.per_team),
                       n_cases=args.cases, invalid_every=0, manifest_every=0, n_baselines=2)
        teams = sorted(p.name for p in Path(c["submissions"]).iterdir() if p.is_dir())
        roster = tmp / "roster.csv"
        roster.write_text("student_id,name,email,team\n" + "".join(
            f"s{i},Student {i},s{i}@example.org,{t}\n" for i, t in enumerate(teams)), encoding="utf-8")
        competition = Path(c["truth"]).parent.parent if Path(c["truth"]).parent.name == "private" \
            else Path(c["truth"]).parent
        init_course(tmp / "course", competition=competition, roster=roster, per_day=10_000, workers=2)
        course = Course(tmp / "course")
        clock_now = [None]
        service = CourseService(course, clock=lambda: clock_now[0])
        start = time.perf_counter()
        with IsolatedScorer(course.config.truth, workers=2, timeout=60) as scorer, course.sessions() as s:
            ids = dict(s.execute(select(Team.name, Team.id)).all())
            files = sorted((f.stat().st_mtime, t, f) for t in teams for f in (Path(c["submissions"]) / t).iterdir())
            for mtime, team, f in files:
                from datetime import datetime

                clock_now[0] = datetime.fromtimestamp(int(mtime), tz=timezone.utc)
                upload = course.store.upload(10**9)
                upload.write(f.read_bytes())
                sha = upload.finish()
                verdict = scorer.submit(upload.path).result()
                service.record(Principal(ids[team], team), sha256=sha, size=upload.size, verdict=verdict,
                               commit_file=lambda: course.store.commit(upload, sha))
                upload.discard()
        print(f"course of {len(teams)} teams, {len(files)} submissions of {args.cases} slices recorded through "
              f"the server's scorer in {time.perf_counter() - start:.1f} s ({tmp})")
        attach_baselines(course, c["baselines"])

        build_board(course, bootstrap=10)  # imports (matplotlib, scipy.stats) and the cold cache, untimed
        shutil.rmtree(course.private / "board" / "cache")
        t0 = time.perf_counter()
        build_board(course, bootstrap=args.bootstrap)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = build_board(course, bootstrap=args.bootstrap)
        warm = time.perf_counter() - t0
        print(f"first build (cold score cache, 1 process): {cold:6.1f} s   reference {COLD_REFERENCE_S:.0f} s   "
              f"ratio {cold / COLD_REFERENCE_S:.2f}")
        print(f"steady-state rebuild (warm cache):         {warm:6.1f} s   reference {DEFAULT_INTERVAL_S:.0f} s "
              f"(the rebuild interval)   ratio {warm / DEFAULT_INTERVAL_S:.2f}")
        print(f"site: {done['summary'].teams_ranked} teams ranked, {done['summary'].submissions} submissions, "
              f"index.html {(course.private / 'board' / 'site' / 'index.html').stat().st_size / 1e3:.0f} kB")
        course.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
