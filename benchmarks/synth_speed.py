"""How long does the default synthetic competition take to build?

Reference budget: 60 s for the default cohort (256 train + 29 test slices) on
2 cores, from nothing to both layouts on disk (templates loaded, patients
simulated, HDF5 and course files, truth and manifest written).

    python benchmarks/synth_speed.py [--train 256] [--test 29] [--seed 0]

Prints wall-clock time next to the budget, their ratio, and the process's CPU
time (a wall time much above the CPU time means the machine was busy).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

BUDGET_S = 60.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=29)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    from data_spec import write_competition
    from cohorts.synth import load_anatomy, synthesize

    load_anatomy()
    wall1 = time.perf_counter()
    data = synthesize(n_train=args.train, n_test=args.test, seed=args.seed)
    wall2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        written = write_competition(
            Path(tmp) / "competition", train=data["train"], test=data["test"], attrs=data["attrs"],
            manifest=data["manifest"],
        )
        size = sum(p.stat().st_size for p in written.values())
        wall3, cpu3 = time.perf_counter(), time.process_time()
    n = args.train + args.test
    total = wall3 - wall0
    print(f"synthetic competition, {args.train} train + {args.test} test slices, seed {args.seed}")
    print(f"  templates loaded      {wall1 - wall0:6.1f} s")
    print(f"  patients simulated    {wall2 - wall1:6.1f} s  ({1000 * (wall2 - wall1) / n:.0f} ms per slice)")
    print(f"  both layouts written  {wall3 - wall2:6.1f} s  ({len(written)} files, {size / 2**20:.0f} MiB)")
    print(f"  total {total:.1f} s wall ({cpu3 - cpu0:.1f} s CPU)   reference budget {BUDGET_S:.0f} s   "
          f"ratio {total / BUDGET_S:.2f}")
    return 0 if total <= BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
