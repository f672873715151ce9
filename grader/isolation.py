"""Score untrusted files in long-lived worker processes with a time and a memory limit.

A hostile file may make a reader loop forever (a corrupted HDF5 heap can hang
libhdf5) or allocate without bound. :class:`IsolatedScorer` keeps a pool of
worker processes (``pebble.ProcessPool``) that load the truth once, cap their
address space (``RLIMIT_AS``) and run :func:`grader.scoring.evaluate` per file
under a wall-clock timeout. An overrunning task's worker is killed and the file
gets an invalid verdict with code ``timeout``; a worker that dies or runs out
of memory gives ``unreadable``. The pool replaces the lost worker. Nothing hangs.

The server, the leaderboard and the CLI share it:

``IsolatedScorer(TRUTH)`` is a context manager: ``scorer.score(path)`` gives one
:class:`~grader.scoring.Verdict`, ``scorer.map(paths)`` many, ``scorer.submit(path)``
a future. Every failure of an isolated read gets the same message from both pools
(:func:`grader.sandbox.overran`, :func:`grader.sandbox.worker_failed`).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Optional

from pebble import ProcessPool

from data_spec.errors import BadArgumentError
from data_spec.truth import Truth, load_truth

from .sandbox import enter_worker, overran, too_big, worker_failed
from .scoring import INVALID, Verdict, evaluate

#: Worker state, set once by :func:`_init` (each worker is its own process).
_WORKER: dict = {}


def _init(truth_path, seed: int, memory_bytes: Optional[int], max_bytes: Optional[int]) -> None:
    truth = load_truth(truth_path, seed=seed)
    # Already isolated: the HDF5 reader runs here, not in a nested worker. The cap comes after
    # loading the truth: it is on what one file may make the worker allocate.
    enter_worker(memory_bytes)
    _WORKER.update(truth=truth, max_bytes=max_bytes)


def evaluate_record(path, truth: Truth, max_bytes: Optional[int]) -> dict:
    """The default task: :func:`~grader.scoring.evaluate` as a path-free record (cheap to send back)."""
    return evaluate(path, truth, max_bytes=max_bytes).record()


def _ready() -> bool:
    return "truth" in _WORKER


def _run(task: Callable, path) -> dict:
    try:
        return task(path, _WORKER["truth"], _WORKER["max_bytes"])
    except MemoryError:
        return {"status": INVALID, "format": None, "errors": [too_big().to_dict()]}


class IsolatedScorer:
    """A pool of scoring workers; a context manager.

    Parameters
    ----------
    truth : path-like
        The test truth (as for :func:`data_spec.load_truth`); loaded once in this
        process (to rebuild verdicts) and once in each worker.
    workers : int
        Worker processes.
    timeout : float
        Wall-clock seconds per file.
    memory_mb : int or None
        Address space a worker may add while scoring one file (None: no limit).
    max_bytes : int, optional
        Size cap of a submission (see :func:`grader.validate_submission`).
    seed : int
        As for :func:`data_spec.load_truth` (public flags of a truth without them).
    task : callable, optional
        A picklable ``task(path, truth, max_bytes) -> record`` run in the worker
        instead of :func:`evaluate_record` (for tests of the limits).
    """

    def __init__(self, truth, *, workers: int = 2, timeout: float = 20.0, memory_mb: Optional[int] = 2048,
                 max_bytes: Optional[int] = None, seed: int = 0, task: Optional[Callable] = None):
        self.truth = load_truth(truth, seed=seed)
        if self.truth.path is None:
            raise BadArgumentError("the isolated scorer needs a truth file (workers load it themselves)")
        self.timeout = float(timeout)
        self.task = task or evaluate_record
        memory = None if memory_mb is None else int(memory_mb) << 20
        # spawn: the server has threads, and a forked copy of a threaded process may deadlock.
        self._pool = ProcessPool(max_workers=max(1, int(workers)), initializer=_init,
                                 initargs=(str(self.truth.path), seed, memory, max_bytes),
                                 context=multiprocessing.get_context("spawn"))
        # Start the workers now (they load the truth once): the first file is then scored as fast as the rest.
        try:
            for ping in [self._pool.schedule(_ready, timeout=120) for _ in range(max(1, int(workers)))]:
                ping.result()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "IsolatedScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (those still running a task are killed)."""
        self._pool.stop()
        self._pool.join()

    def submit(self, path) -> concurrent.futures.Future:
        """Schedule one file; the future's result is always a :class:`Verdict` (never an exception)."""
        shown = os.fsdecode(path)
        inner = self._pool.schedule(_run, args=(self.task, shown), timeout=self.timeout)
        outer: concurrent.futures.Future = concurrent.futures.Future()

        def done(fut) -> None:
            try:
                verdict = self._verdict(fut, shown)
            except Exception as exc:  # noqa: BLE001 - the future must always complete
                verdict = Verdict(INVALID, (worker_failed(exc),), None, None, None, shown)
            outer.set_result(verdict)

        inner.add_done_callback(done)
        return outer

    def score(self, path) -> Verdict:
        """Validate and score one file in a worker."""
        return self.submit(path).result()

    def map(self, paths) -> list:
        """Verdicts of many files, in order (scored in parallel by the workers)."""
        futures = [self.submit(p) for p in paths]
        return [f.result() for f in futures]

    def _verdict(self, fut, shown: str) -> Verdict:
        try:
            record = fut.result()
        except concurrent.futures.TimeoutError:
            return Verdict(INVALID, (overran(self.timeout),), None, None, None, shown)
        except Exception as exc:  # noqa: BLE001 - a dead worker (crash, memory), or one that could not start
            return Verdict(INVALID, (worker_failed(exc),), None, None, None, shown)
        return Verdict.from_record(record, self.truth, shown)
