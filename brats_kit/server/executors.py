"""Where code jobs run: a local pool of worker processes, or a Dask distributed cluster.

Both run :func:`execute`, the one job function: the sandboxed ``predict`` on the hidden
test inputs (:func:`grader.code.grade_code`), its prediction validated and scored
outside the sandbox by the grader's scoring path, and the result as plain data (JSON-ready
but for the valid prediction's ``.npy`` bytes, which the server keeps in its store). The
server's own process never runs a job, so file uploads keep their latency.
"""
from __future__ import annotations

import io
from concurrent.futures import Future
from typing import Optional

from .grading import verdict_fields


def execute(archive: str, hidden: str, limits: dict, user: Optional[str] = None, metrics: tuple = ()) -> dict:
    """Run one code job and return its outcome (what :class:`~.jobs.JobRunner` records).

    Parameters
    ----------
    archive : str
        The stored ``.zip`` (or folder) of the submission.
    hidden : str
        The hidden test slices (``private/hidden_test.h5``); only their inputs enter the sandbox.
    limits : dict
        Keyword arguments of :class:`grader.code.Limits`.
    user : str, optional
        The host user the sandbox is started as (resolved where the job runs: a Dask worker's
        machine has its own uids); default: ``nobody`` when the worker is root.
    metrics : tuple of str
        The mask scores stored per case (:func:`~.grading.course_mask_scores`: the course's ranking
        score when it is one), as a file upload's worker stores them; none for a course ranked by Dice.

    Returns
    -------
    dict
        ``run``: the sandbox's record (the log included: the server decides who sees it);
        ``fields``: the submission row's columns (:func:`~.grading.verdict_fields`), or
        None when the run failed; ``prediction``: the valid prediction as ``.npy`` bytes (uint8
        masks of the hidden slices, kept in the store for the offline code board), else None.
    """
    import numpy as np

    from data_spec.layout import open_hidden
    from data_spec.truth import load_hidden_truth
    from grader.code import Limits, code_user, grade_code

    from grader.scoring import with_mask_scores

    x = np.asarray(open_hidden(hidden).x)
    truth = load_hidden_truth(hidden)
    run, verdict = grade_code(archive, x, truth, limits=Limits(**limits), user=code_user(user))
    if verdict is not None and metrics:
        verdict = with_mask_scores(verdict, truth, tuple(metrics))
    record = run.public(show_log=True)
    record.pop("validation", None)
    prediction = None
    if run.prediction is not None:
        buffer = io.BytesIO()
        np.save(buffer, run.prediction, allow_pickle=False)
        prediction = buffer.getvalue()
    return {"run": record, "fields": None if verdict is None else verdict_fields(verdict), "prediction": prediction}


class LocalExecutor:
    """A pool of ``workers`` processes (pebble): a worker killed mid-job fails that job only.

    Each job also has a wall-clock cap (its time limit plus a margin): a worker stuck
    beyond it is killed and the job ends as a server failure.
    """

    def __init__(self, workers: int = 1):
        from pebble import ProcessPool

        self.workers = workers
        self._pool = ProcessPool(max_workers=workers)

    def submit(self, fn, *args, timeout: Optional[float] = None) -> Future:
        return self._pool.schedule(fn, args=args, timeout=timeout)

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=30)


class DaskExecutor:
    """The same jobs on a Dask distributed cluster (``tcp://HOST:8786``); each worker runs the same sandbox.

    ``workers`` is how many jobs are handed to the cluster at once (default: its worker
    threads when connected). A worker lost mid-job is Dask's to reschedule; a job the
    cluster gives up on (``KilledWorker``) ends as a server failure, retried once.
    """

    def __init__(self, address: str, workers: Optional[int] = None):
        from distributed import Client

        self.address = address
        self._client = Client(address, timeout=30, set_as_default=False)
        self.workers = workers or max(1, sum(self._client.nthreads().values()))

    def submit(self, fn, *args, timeout: Optional[float] = None) -> Future:
        future: Future = Future()
        task = self._client.submit(fn, *args, pure=False)

        def done(task):
            try:
                future.set_result(task.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the runner, which classifies it
                future.set_exception(exc)

        task.add_done_callback(done)
        return future

    def close(self) -> None:
        self._client.close()


def make_executor(executor: Optional[str], workers: int):
    """``None`` or ``"local"``: a local pool of ``workers``; ``tcp://HOST:PORT``: a Dask cluster."""
    if executor in (None, "", "local"):
        return LocalExecutor(workers)
    if executor.startswith("tcp://"):
        return DaskExecutor(executor)
    from data_spec.errors import BadArgumentError

    raise BadArgumentError(f"unknown executor {executor!r}", expected="local, or tcp://HOST:PORT (a Dask scheduler)")
