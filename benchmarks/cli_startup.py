"""Whole-process time of ``brats-kit --help`` and ``brats-kit score FILE --truth T``, beside their targets.

Targets (issue 22): ``score`` on one 29-slice course submission at most 0.25 s
(0.73 s before, 0.46 s of it importing ``grader.metrics``' dependencies),
``--help`` under 0.15 s. Each figure is the median of ``--repeat`` fresh
processes (the installed ``brats-kit`` entry point of this interpreter's
environment), so imports are paid every time, as a student or a script pays them.

Run: ``python benchmarks/cli_startup.py [--repeat 15]``
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_spec import write_course_array
from data_spec.submission import write_submission
from grader_speed import _masks as disc_masks  # the grader benchmark's masks (a sibling script in benchmarks/)

TARGETS = {"brats-kit --help": 0.15, "brats-kit score FILE --truth T": 0.25}


def _median_s(argv, repeat: int) -> float:
    subprocess.run(argv, check=True, capture_output=True)  # warm the disk cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("brats-kit"))
    y, p = disc_masks(29, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = tmp / "test_data_y.dat"
        write_course_array(truth, y, "y")
        sub = write_submission(tmp / "test_data_ypred.dat", p)
        runs = {
            "brats-kit --help": [exe, "--help"],
            "brats-kit score FILE --truth T": [exe, "score", str(sub), "--truth", str(truth)],
        }
        print(f"{'command':<34}{'median':>9}{'target':>9}{'ratio':>8}   ({args.repeat} processes each)")
        for label, argv in runs.items():
            seconds = _median_s(argv, args.repeat)
            target = TARGETS[label]
            print(f"{label:<34}{seconds:>8.3f}s{target:>8.2f}s{seconds / target:>8.2f}")


if __name__ == "__main__":
    main()
