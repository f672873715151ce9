"""The live board's rebuild at course scale: 200 teams x 5 submissions of 29 slices, 2,000 bootstrap resamples.

The server rebuilds the board in a background thread at most once per
``board_interval_s`` (default 10 s). A rebuild ranks the counts the server stored at
upload (:func:`brats_kit.server.board.build_board`: one query, bootstrap, figures);
the old path, measured in the same run as the reference, exported the store as hard
links and ran the whole offline leaderboard on it (re-hash every file, its warm score
cache answering the rest). Both are steady state (the old path's cache warm, the
baselines' too) and must write the same site. Target: at least 5x faster than the
old path's 6.7 s of issue 19.

    python benchmarks/live_board.py [--teams 200] [--per-team 5] [--cases 29] [--bootstrap 2000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

from brats_kit.server.baselines import attach_baselines, baselines_of
from brats_kit.server.board import DEFAULT_INTERVAL_S, TITLE, board_page, build_board, export_for_board
from brats_kit.server.course import Course, init_course
from brats_kit.server.db import Team
from brats_kit.server.service import CourseService, Principal
from cohorts.classroom import make_class
from grader.isolation import IsolatedScorer
from grader.leaderboard import build_leaderboard
from grader.leaderboard.build import SITE_FILES
from sqlalchemy import select

#: The steady-state rebuild issue 19 measured on main (export, re-hash, warm-cache leaderboard).
OLD_S = 6.7


def old_path(course, work: Path, bootstrap: int) -> None:
    """The rebuild before issue 19: export the store as hard links, then the whole offline leaderboard."""
    export_for_board(course, work / "submissions")
    build_leaderboard(work / "submissions", course.config.truth, work / "old-site", bootstrap=bootstrap, jobs=1,
                      baselines=baselines_of(course), cache=work / "old-cache", title=TITLE, **board_page(course))


def timed(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--per-team", type=int, default=5)
    ap.add_argument("--cases", type=int, default=29)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each path (the best is shown)")
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

        work = course.private / "board"
        build_board(course, bootstrap=10)  # imports (matplotlib, scipy.stats) and the baselines' cache, untimed
        export_for_board(course, work / "submissions")
        old_path(course, work, 10)  # the old path's score cache, filled once, untimed
        old = min(timed(lambda: old_path(course, work, args.bootstrap)) for _ in range(args.repeat))
        old_site = {name: (work / "old-site" / name).read_bytes() for name in SITE_FILES}
        new = min(timed(lambda: build_board(course, bootstrap=args.bootstrap)) for _ in range(args.repeat))
        done = build_board(course, bootstrap=args.bootstrap)
        same = all((work / "site" / name).read_bytes() == old_site[name] for name in SITE_FILES)
        print(f"old path (export + re-hash + warm-cache leaderboard): {old:6.2f} s   issue 19's figure {OLD_S} s")
        print(f"steady-state rebuild from the stored counts:          {new:6.2f} s   "
              f"{old / new:.1f}x faster than the old path in this run; target {OLD_S / 5:.2f} s (5x {OLD_S} s): "
              f"ratio {new / (OLD_S / 5):.2f}; the interval {DEFAULT_INTERVAL_S:.0f} s: "
              f"ratio {new / DEFAULT_INTERVAL_S:.3f}")
        print(f"site: {done['summary'].teams_ranked} teams ranked, {done['summary'].submissions} submissions, "
              f"index.html {(work / 'site' / 'index.html').stat().st_size / 1e3:.0f} kB; "
              f"byte-identical to the old path's: {same}")
        course.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
