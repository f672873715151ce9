"""Untrusted reads in worker processes: the one place that isolates them, with a time and a memory limit.

A hostile file may make a reader loop forever (a corrupted HDF5 heap can hang
libhdf5) or allocate without bound. Every such read runs in a long-lived worker
process (``pebble.ProcessPool``) set up here, once, by :func:`enter_worker`: its
address space capped (``RLIMIT_AS``), and tied to its parent (it dies with it:
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, plus a check that the parent is
still the one that started it), so a server or a command killed with ``kill -9``
(or by the OOM killer) leaves no worker spinning on a core. An overrunning task's
worker is killed and the file gets an invalid verdict with code ``timeout``; a
worker that dies or runs out of memory gives ``unreadable`` (the same message
from both pools: :func:`overran`, :func:`worker_failed`, :func:`too_big`). The
pool replaces the lost worker. Nothing hangs.

Two pools:

- :class:`IsolatedScorer`, the scoring workers of the server, the leaderboard and
  the CLI: workers load the truth once and run :func:`grader.scoring.evaluate` per
  file. ``IsolatedScorer(TRUTH)`` is a context manager: ``scorer.score(path)`` gives
  one :class:`~grader.scoring.Verdict`, ``scorer.map(paths)`` many,
  ``scorer.submit(path)`` a future.
- :func:`read_hdf5_isolated`, the HDF5 read pool of ``validate``, ``score`` and the
  leaderboard (one worker, started on first use); inside a scoring worker, already
  isolated, the file is read directly (:data:`IN_WORKER`).

:mod:`grader.scoring` imports the validator, which reads HDF5 through this module:
this module imports :mod:`grader.scoring` only inside the functions that need it,
so the two never import each other at load time.
"""
from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import signal
import sys
import threading
from typing import Callable, Optional

from pebble import ProcessPool

from data_spec.errors import BadArgumentError
from data_spec.truth import Truth, load_truth

from .errors import RecordedError, ScoringTimeout, UnreadableError

# -- the worker's set-up ----------------------------------------------------------------------------

#: True inside a worker process: there the HDF5 reader runs directly (no nested worker).
IN_WORKER = False

_PR_SET_PDEATHSIG = 1


def limit_address_space(extra_bytes: Optional[int]) -> None:
    """Cap this process's address space at what it maps now plus ``extra_bytes`` (None: no cap).

    The cap is on top of what the worker already maps (interpreter, numpy, a
    truth): the limit is on what one file may make it allocate.
    """
    if not extra_bytes:
        return
    import resource

    limit = _address_space_now() + int(extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _address_space_now() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process (SIGKILL) when its parent dies; exit now if it already has.

    A worker spinning in libhdf5 runs no Python code, so no thread of its own could
    notice: the kernel's parent-death signal does (Linux; elsewhere only the check
    below). The signal is sent when the *thread* that started the worker ends, so
    pools start their workers from a thread that lives as long as the process
    (:func:`_in_lasting_thread`). The check covers a parent that died before the
    signal was set.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def enter_worker(memory_bytes: Optional[int], parent_pid: Optional[int] = None) -> None:
    """Set up this process as an isolated worker: tied to its parent, files read directly, memory capped."""
    global IN_WORKER
    if parent_pid is not None:
        die_with_parent(parent_pid)
    IN_WORKER = True
    limit_address_space(memory_bytes)


_LASTING: dict = {}
_LASTING_LOCK = threading.Lock()


def _in_lasting_thread(fn: Callable, *args):
    """``fn(*args)`` run in a thread that lives as long as the process (see :func:`die_with_parent`).

    A pool's first workers are started by the thread that first schedules on it: a
    request's worker thread that ends later would take them with it.
    """
    with _LASTING_LOCK:
        if _LASTING.get("pid") != os.getpid():
            _LASTING.update(pid=os.getpid(),
                            executor=concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="isolation-starter"))
        executor = _LASTING["executor"]
    return executor.submit(fn, *args).result()


# -- what a student is told after any failure of an isolated read -----------------------------------

SAVE_AGAIN = "save the predictions again with numpy (np.save), h5py or as raw uint8 bytes"


def overran(limit_s: float, path=None) -> ScoringTimeout:
    """The verdict of a read stopped at its wall-clock limit (code ``timeout``)."""
    return ScoringTimeout(f"reading the file took longer than {limit_s:g} s and was stopped", path=path,
                          expected=f"a file the grader reads within {limit_s:g} s", hint=SAVE_AGAIN)


def worker_failed(exc: BaseException, path=None) -> UnreadableError:
    """The verdict of a read whose worker died, ran out of memory or could not run (code ``unreadable``)."""
    return UnreadableError(f"the file could not be read (the grader's worker failed: {type(exc).__name__})",
                           path=path, hint=SAVE_AGAIN)


def too_big(path=None) -> UnreadableError:
    """The verdict of a read that hit the worker's memory cap (code ``unreadable``)."""
    return UnreadableError("the file needs more memory than a submission may use", path=path,
                           hint="check the file's shape and dtype")


# -- the HDF5 read pool -----------------------------------------------------------------------------

#: Wall-clock seconds and extra address space (MiB) allowed to read one HDF5 submission in a worker;
#: ``BRATS_KIT_READ_TIMEOUT`` / ``BRATS_KIT_READ_MEMORY_MB`` override them (e.g. on a slow machine).
READ_TIMEOUT_S = 20.0
READ_MEMORY_MB = 2048

_READER: dict = {}


def _read_hdf5_task(data: bytes, n_slices: int, case_ids, path) -> tuple:
    import io

    from .h5read import read_hdf5

    try:
        loaded = read_hdf5(io.BytesIO(data), len(data), n_slices, case_ids=case_ids, path=path)
    except MemoryError:
        return None, None, [too_big(path).to_dict()], None
    return loaded.format, loaded.array, [e.to_dict() for e in loaded.errors], loaded.case_id


def _limits() -> tuple:
    timeout = float(os.environ.get("BRATS_KIT_READ_TIMEOUT", READ_TIMEOUT_S))
    memory = os.environ.get("BRATS_KIT_READ_MEMORY_MB", READ_MEMORY_MB)
    return timeout, (None if memory in (None, "", "0") else int(memory) << 20)


def _started() -> bool:
    return True


def _reader_pool() -> ProcessPool:
    """The process's reader pool (one long-lived worker), started on first use."""
    import atexit

    pid = os.getpid()
    if _READER.get("pid") != pid or _READER.get("pool") is None or not _READER["pool"].active:
        _, memory = _limits()
        # fork is cheap (the CLI is single-threaded); a threaded process (the server) spawns.
        method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
            else "spawn"
        pool = ProcessPool(max_workers=1, initializer=enter_worker, initargs=(memory, pid),
                           context=multiprocessing.get_context(method))
        if method == "spawn":  # a threaded process: its first worker must not be tied to a passing thread
            _in_lasting_thread(lambda: pool.schedule(_started).result())
        _READER.update(pid=pid, pool=pool)
        atexit.register(_stop_reader, pool)
    return _READER["pool"]


def _stop_reader(pool) -> None:
    pool.stop()
    pool.join(timeout=5)


def read_hdf5_isolated(data: bytes, n_slices: int, *, case_ids=None, path=None):
    """Read an HDF5 submission's bytes in a worker with a time and memory limit.

    Returns
    -------
    grader.readers.Loaded
        As :func:`grader.h5read.read_hdf5`; a read that overruns the time limit is
        refused with code ``timeout`` (the worker is killed and replaced), one that
        kills its worker or runs out of memory with code ``unreadable``.
    """
    from .readers import HDF5, Loaded

    if IN_WORKER:
        fmt, array, errors, ids = _read_hdf5_task(data, n_slices, case_ids, path)
        return Loaded(fmt, array, [RecordedError(e) for e in errors], ids)
    timeout, _ = _limits()
    future = _reader_pool().schedule(_read_hdf5_task, args=(bytes(data), n_slices, case_ids, path), timeout=timeout)
    try:
        fmt, array, errors, ids = future.result()
    except concurrent.futures.TimeoutError:
        return Loaded(HDF5, errors=[overran(timeout, path)])
    except Exception as exc:  # noqa: BLE001 - a dead worker (crash, memory) is the file's verdict
        return Loaded(HDF5, errors=[worker_failed(exc, path)])
    return Loaded(fmt, array, [RecordedError(e) for e in errors], ids)


# -- the scoring pool -------------------------------------------------------------------------------

#: Worker state, set once by :func:`_init` (each worker is its own process).
_WORKER: dict = {}


def _init(truth_path, seed: int, memory_bytes: Optional[int], max_bytes: Optional[int], parent_pid: int) -> None:
    truth = load_truth(truth_path, seed=seed)
    # Already isolated: the HDF5 reader runs here, not in a nested worker. The cap comes after
    # loading the truth: it is on what one file may make the worker allocate.
    enter_worker(memory_bytes, parent_pid)
    _WORKER.update(truth=truth, max_bytes=max_bytes)


def evaluate_record(path, truth: Truth, max_bytes: Optional[int], metrics=()) -> dict:
    """The default task: :func:`~grader.scoring.evaluate` as a path-free record (cheap to send back).

    ``metrics``: mask scores whose per-case values the record also holds (:func:`~grader.scoring.with_mask_scores`),
    computed here while the prediction is in the worker's memory.
    """
    from .scoring import evaluate, with_mask_scores

    return with_mask_scores(evaluate(path, truth, max_bytes=max_bytes), truth, metrics).record()


def mask_score_names(metrics=None) -> tuple:
    """The mask scores a scorer computes: ``metrics`` (names), or every one (None).

    Examples
    --------
    >>> mask_score_names()
    ('hd95', 'lesion_dice', 'lesion_hd95', 'nsd')
    >>> mask_score_names(["nsd"]), mask_score_names(())
    (('nsd',), ())
    """
    from .score_types import MASK_SCORES

    known = tuple(st.name for st in MASK_SCORES)
    if metrics is None:
        return known
    names = tuple(str(m) for m in metrics)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadArgumentError(f"not a mask score: {unknown[0][:40]!r}", expected="any of " + ", ".join(known))
    return names


def _ready() -> bool:
    return "truth" in _WORKER


def _invalid(error, shown: Optional[str] = None):
    from .scoring import INVALID, Verdict

    return Verdict(INVALID, (error,), None, None, None, shown)


def _run(task: Callable, path) -> dict:
    try:
        return task(path, _WORKER["truth"], _WORKER["max_bytes"])
    except MemoryError:
        from .scoring import INVALID  # loaded already: the task imported it

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
    metrics : sequence of str, optional
        The mask scores each valid file's verdict carries per case (``Verdict.mask_scores``),
        e.g. a course's ranking score (the server's :func:`~brats_kit.server.grading.make_scorer`);
        None: every one (:func:`mask_score_names`). By default none: counts only, the cheap
        upload (each mask score costs tens of ms per 29 slices, see ``benchmarks/upload_mask_scores.py``).
    """

    def __init__(self, truth, *, workers: int = 2, timeout: float = 20.0, memory_mb: Optional[int] = 2048,
                 max_bytes: Optional[int] = None, seed: int = 0, task: Optional[Callable] = None, metrics=()):
        self.truth = load_truth(truth, seed=seed)
        if self.truth.path is None:
            raise BadArgumentError("the isolated scorer needs a truth file (workers load it themselves)")
        self.timeout = float(timeout)
        self.metrics = mask_score_names(metrics)
        self.task = task or functools.partial(evaluate_record, metrics=self.metrics)
        memory = None if memory_mb is None else int(memory_mb) << 20
        # spawn: the server has threads, and a forked copy of a threaded process may deadlock.
        self._pool = ProcessPool(max_workers=max(1, int(workers)), initializer=_init,
                                 initargs=(str(self.truth.path), seed, memory, max_bytes, os.getpid()),
                                 context=multiprocessing.get_context("spawn"))
        # Start the workers now (they load the truth once): the first file is then scored as fast as the rest.
        try:
            _in_lasting_thread(self._start, max(1, int(workers)))
        except BaseException:
            self.close()
            raise

    def _start(self, workers: int) -> None:
        for ping in [self._pool.schedule(_ready, timeout=120) for _ in range(workers)]:
            ping.result()

    def __enter__(self) -> "IsolatedScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (those still running a task are killed)."""
        self._pool.stop()
        self._pool.join()

    def submit(self, path) -> concurrent.futures.Future:
        """Schedule one file; the future's result is always a :class:`~grader.scoring.Verdict` (never an exception)."""
        shown = os.fsdecode(path)
        inner = self._pool.schedule(_run, args=(self.task, shown), timeout=self.timeout)
        outer: concurrent.futures.Future = concurrent.futures.Future()

        def done(fut) -> None:
            try:
                verdict = self._verdict(fut, shown)
            except Exception as exc:  # noqa: BLE001 - the future must always complete
                verdict = _invalid(worker_failed(exc), shown)
            outer.set_result(verdict)

        inner.add_done_callback(done)
        return outer

    def score(self, path):
        """Validate and score one file in a worker: its :class:`~grader.scoring.Verdict`."""
        return self.submit(path).result()

    def map(self, paths) -> list:
        """Verdicts of many files, in order (scored in parallel by the workers)."""
        futures = [self.submit(p) for p in paths]
        return [f.result() for f in futures]

    def _verdict(self, fut, shown: str):
        from .scoring import Verdict

        try:
            record = fut.result()
        except concurrent.futures.TimeoutError:
            return _invalid(overran(self.timeout), shown)
        except Exception as exc:  # noqa: BLE001 - a dead worker (crash, memory), or one that could not start
            return _invalid(worker_failed(exc), shown)
        return Verdict.from_record(record, self.truth, shown)
