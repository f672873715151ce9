"""Code submissions: the sandbox's overhead per job, beside the same ``predict`` run bare, and a local pool's throughput.

Target (issue 23): under 0.2 s of overhead per job. The reference is the same
``predict`` (a FLAIR threshold inside the brain, as a student's first
submission) called bare, in this process, on the same 29 test slices; the
sandboxed job is :func:`grader.code.run_code` (copy the code and inputs into a
job folder, start bubblewrap, import numpy and the submission inside, predict,
validate the returned array), timed in the same run. Throughput: ``--jobs``
sandboxed jobs spread over a local pool of ``--workers`` processes, each calling
the same library function. Then the server's executors running its whole job
(:func:`brats_kit.server.executors.execute`: the sandbox on hidden slices, then the
validation and scoring outside): its local pool of two, and a Dask cluster of two
one-thread worker processes on loopback (``distributed.LocalCluster``), side by side.

Run: ``python benchmarks/code_jobs.py [--repeat 20] [--workers 2] [--jobs 16]``
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from grader.code import run_code, sandbox_problem
from grader_speed import _median_ms  # benchmarks/ is on the path when a script of it runs

N_TEST = 29
SUBMISSION = """
import numpy as np
from starter import foreground_mask

def predict(x):
    return ((x[..., 3] > 1.0) & foreground_mask(x)).astype(np.uint8)
"""


def _inputs(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 240, 240, 4)).astype(np.float32)
    x[:, :40] = x.min()  # a background band, as the course's slices have
    return x


def _median_s(fn, repeat: int) -> float:
    return _median_ms(fn, repeat) / 1e3


def _job(args) -> str:
    code, x = args
    return run_code(code, x).status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=16)
    args = parser.parse_args()
    problem = sandbox_problem()
    if problem:
        sys.exit(f"no sandbox on this machine: {problem}")
    x = _inputs(N_TEST)
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "submission"
        code.mkdir()
        (code / "submission.py").write_text(SUBMISSION)
        spec = importlib.util.spec_from_file_location("bare_submission", code / "submission.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        bare = _median_s(lambda: module.predict(x), args.repeat)
        run = run_code(code, x)
        assert run.status == "ok" and np.array_equal(run.prediction, module.predict(x)), run
        np.save(Path(tmp) / "x.npy", x)
        fresh = [sys.executable, "-I", "-c", "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
                 "import submission; np.save(sys.argv[3], submission.predict(np.load(sys.argv[2])))",
                 str(code), str(Path(tmp) / "x.npy"), str(Path(tmp) / "y.npy")]
        unsandboxed = _median_s(lambda: subprocess.run(fresh, check=True), args.repeat)
        sandboxed = _median_s(lambda: run_code(code, x), args.repeat)
        overhead = sandboxed - bare
        print(f"one job, {N_TEST} slices, median of {args.repeat}:")
        print(f"  predict bare (in process)   {1e3 * bare:8.1f} ms   (reference)")
        print(f"  predict in a fresh python   {1e3 * unsandboxed:8.1f} ms   (no sandbox: interpreter start, imports, "
              f"inputs through a file)")
        print(f"  predict in the sandbox      {1e3 * sandboxed:8.1f} ms   (bubblewrap's own share: "
              f"{1e3 * (sandboxed - unsandboxed):.1f} ms)")
        print(f"  overhead per job            {1e3 * overhead:8.1f} ms   (target < 200 ms: "
              f"{'met' if overhead < 0.2 else 'NOT met'})")
        for workers in sorted({1, args.workers}):
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_job, [(code, x)] * workers))  # start the workers
                t0 = time.perf_counter()
                statuses = list(pool.map(_job, [(code, x)] * args.jobs))
                elapsed = time.perf_counter() - t0
            assert set(statuses) == {"ok"}, statuses
            print(f"local pool of {workers}: {args.jobs} jobs in {elapsed:.2f} s = {args.jobs / elapsed:.1f} jobs/s")
        _executors(code, x, Path(tmp), args.jobs)


def _throughput(executor, code: Path, hidden: str, jobs: int) -> float:
    from brats_kit.server.executors import execute
    from grader.code.users import current_user_name

    limits = {"time_limit": 120.0, "memory_mb": 2048}
    # Jobs run as this process's own user: the same sandbox, and no world-readable Python needed for a figure.
    user = current_user_name()
    # Warm the workers (each probes the sandbox once).
    for f in [executor.submit(execute, str(code), hidden, limits, user) for _ in range(4)]:
        f.result()
    t0 = time.perf_counter()
    outcomes = [f.result() for f in [executor.submit(execute, str(code), hidden, limits, user) for _ in range(jobs)]]
    elapsed = time.perf_counter() - t0
    assert all(o["fields"]["status"] == "scored" for o in outcomes), outcomes[0]
    return jobs / elapsed


def _executors(code: Path, x: np.ndarray, tmp: Path, jobs: int) -> None:
    """The server's job (sandbox + scoring on hidden slices) on its local pool of 2 and on a 2-worker Dask cluster."""
    from data_spec import HIDDEN, case_ids, hidden_public_mask, public_mask, write_competition
    from brats_kit.server.executors import DaskExecutor, LocalExecutor

    y = (x[..., 3] > 1.2).astype(np.uint8)
    comp = tmp / "competition"
    write_competition(comp, train={"x": x[:2], "y": y[:2], "case_id": case_ids("train", 2)},
                      test={"x": x[:2], "y": y[:2], "case_id": case_ids("test", 2), "public": public_mask(2, 0)},
                      hidden={"x": x, "y": y, "case_id": case_ids(HIDDEN, len(x)),
                              "public": hidden_public_mask(len(x), 0)},
                      attrs={"generator": "benchmarks.code_jobs", "seed": 0}, layouts=("hdf5",))
    hidden = str(comp / "private" / "hidden_test.h5")
    local = LocalExecutor(2)
    try:
        local_rate = _throughput(local, code, hidden, jobs)
    finally:
        local.close()
    try:
        from distributed import LocalCluster
    except ImportError:
        print("server executors: Dask not installed (pip install 'brats-kit[dask]'); local pool of 2: "
              f"{local_rate:.2f} jobs/s")
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = DaskExecutor(cluster.scheduler_address)
        try:
            dask_rate = _throughput(dask, code, hidden, jobs)
        finally:
            dask.close()
    print(f"server executors, {jobs} whole jobs (sandbox on {len(x)} hidden slices + scoring):")
    print(f"  local pool of 2             {local_rate:8.2f} jobs/s   (reference)")
    print(f"  Dask cluster of 2 workers   {dask_rate:8.2f} jobs/s   (ratio {dask_rate / local_rate:.2f})")


if __name__ == "__main__":
    main()
