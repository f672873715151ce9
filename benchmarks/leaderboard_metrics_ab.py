"""A first ``--metrics`` leaderboard run on 1,000 files, this tree against an earlier one, turn about.

Target (issue 22): the first (cold-cache) run of ``brats-kit leaderboard --metrics
lesion_dice,lesion_hd95,nsd`` on 1,000 submissions within the plain board's 30 s.
On a machine shared with other work one run's seconds say little; this script
times the same run under both source trees alternately (one fresh process and
one empty cache each, on the same class), so that each pair of runs sees about
the same load, and prints each pair's ratios and their medians: the figures that
survive the load, with the CPU seconds of each run's processes (user + system;
those of the joblib workers only as far as the run reaps them: exact with
``--jobs 1``), which a busy machine inflates far less than the wall clock.
The earlier tree is any checkout of the project, e.g.::

    git archive <commit> | tar -x -C /tmp/before
    python benchmarks/leaderboard_metrics_ab.py --before /tmp/before [--rounds 3] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cohorts.classroom import make_class

BUDGET_S = 30.0
HERE = Path(__file__).resolve().parent.parent

#: One timed run in a fresh process: imports first (not timed), then the build on an empty cache.
_RUN = """
import sys, time
from grader.leaderboard import build_leaderboard
sub, truth, base, out, cache, metrics, jobs = sys.argv[1:8]
start = time.perf_counter()
build_leaderboard(sub, truth, out, bootstrap=2000, jobs=int(jobs), baselines=base, cache=cache, per_day=3,
                  metrics=metrics)
print(time.perf_counter() - start)
"""


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(tree: Path, c: dict, work: Path, metrics: str, jobs: int) -> tuple:
    """Wall seconds of one cold ``--metrics`` build under the source tree ``tree`` (its own site and cache),
    and the CPU seconds of its processes (the run's and its reaped workers': imports included)."""
    out, cache = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cpu = _children_cpu()
    done = subprocess.run([sys.executable, "-c", _RUN, str(c["submissions"]), str(c["truth"]), str(c["baselines"]),
                           str(out / "site"), str(cache), metrics, str(jobs)],
                          env=env, cwd=work, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    cpu = _children_cpu() - cpu
    shutil.rmtree(cache, ignore_errors=True)
    return float(done.stdout.split()[-1]), cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="an earlier source tree of the project")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--per-team", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--metrics", default="lesion_dice,lesion_hd95,nsd")
    args = ap.parse_args(argv)
    if not (args.before / "grader" / "leaderboard").is_dir():
        ap.error(f"{args.before} is not a source tree of the project (no grader/leaderboard/)")
    work = Path(tempfile.mkdtemp(prefix="leaderboard-ab-"))
    try:
        c = make_class(work / "class", n_teams=args.teams, per_team=(args.per_team, args.per_team), n_cases=29,
                       invalid_every=0, manifest_every=4, n_baselines=2)
        print(f"{c['n_files']} submissions, {args.teams} teams, 29 cases; --metrics {args.metrics}, "
              f"--jobs {args.jobs}, a fresh process and an empty cache per run")
        print(f"{'round':<7}{'before s':>10}{'after s':>10}{'ratio':>7}{'before CPU s':>14}{'after CPU s':>13}"
              f"{'ratio':>7}   load (1, 5, 15 min)")
        wall, cpu, afters = [], [], []
        for r in range(1, args.rounds + 1):
            # Alternate which tree goes first, so that a load change within a round favours neither.
            order = [("before", args.before), ("after", HERE)][:: 1 if r % 2 else -1]
            runs = {name: timed_run(tree, c, work, args.metrics, args.jobs) for name, tree in order}
            (bw, bc), (aw, ac) = runs["before"], runs["after"]
            wall.append(aw / bw)
            cpu.append(ac / bc)
            afters.append(aw)
            print(f"{r:<7}{bw:>10.2f}{aw:>10.2f}{wall[-1]:>7.2f}{bc:>14.2f}{ac:>13.2f}{cpu[-1]:>7.2f}   {_load()}")
        print(f"median after/before: wall {statistics.median(wall):.2f}, CPU {statistics.median(cpu):.2f} "
              f"({1 / statistics.median(cpu):.2f}x less CPU); after: median {statistics.median(afters):.2f} s "
              f"against the {BUDGET_S:.0f} s target ({statistics.median(afters) / BUDGET_S:.2f})")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
