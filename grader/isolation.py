"""Score untrusted files in long-lived worker processes with a time and a memory limit.

A hostile file may make a reader loop forever (a corrupted HDF5 heap can hang
libhdf5) or allocate without bound. :class:`IsolatedScorer` keeps a pool of
worker processes (``pebble.ProcessPool``) that load the truth once, cap their
address space (``RLIMIT_AS``) and run :func:`grader.scoring.evaluate` per file
under a wall-clock timeout. An overrunning task's worker is killed and the file
gets an invalid verdict with code ``timeout``; a worker that dies or runs out
of memory gives ``unreadable``. The pool replaces the lost worker. Nothing hangs.

The server, the leaderboard and the CLI share it:

>>> with IsolatedScorer("competition/private") as scorer:     # doctest: +SKIP
...     verdict = scorer.score("team1/test_data_ypred.dat")
...     verdicts = scorer.map(paths)
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Optional

from pebble import ProcessExpired, ProcessPool

from data_spec.errors import KitError
from data_spec.truth import Truth, load_truth

from .counts import Counts
from .scoring import INVALID, SCORED, UnreadableError, Verdict, evaluate

#: Worker state, set once by :func:`_init` (each worker is its own process).
_WORKER: dict = {}


class RecordedError(KitError):
    """An error sent back by a worker: it prints and serialises exactly as the worker made it."""

    def __init__(self, d: dict):
        self._dict = dict(d)
        super().__init__(d["message"], code=d["code"])
        for key in ("where", "expected", "hint"):
            setattr(self, key, d.get(key))

    def __str__(self) -> str:
        return self._dict["message"]

    def to_dict(self) -> dict:
        return dict(self._dict)


def verdict_from_record(record: dict, truth: Truth, path=None) -> Verdict:
    """A worker's record (see :meth:`Verdict.record`) back as a :class:`Verdict` (without ``y_pred``)."""
    errors = tuple(RecordedError(d) for d in record["errors"])
    counts = Counts.from_record(record, truth) if record["status"] == SCORED else None
    return Verdict(record["status"], errors, record.get("format"), counts, None, path)


class ScoringTimeout(KitError):
    """The file took longer than the time limit to validate and score."""

    code = "timeout"


def _address_space_now() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _init(truth_path, seed: int, memory_bytes: Optional[int], max_bytes: Optional[int]) -> None:
    global IN_WORKER
    IN_WORKER = True  # already isolated: the HDF5 reader runs here, not in a nested worker
    truth = load_truth(truth_path, seed=seed)
    if memory_bytes:
        import resource

        # On top of what the worker already maps (interpreter, numpy, the truth): the
        # limit is on what one file may make it allocate.
        limit = _address_space_now() + int(memory_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
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
        return {"status": INVALID, "format": None, "errors": [UnreadableError(
            "the file needs more memory than a submission may use", hint="check the file's shape and dtype").to_dict()]}


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
            raise KitError("the isolated scorer needs a truth file (workers load it themselves)", code="bad_option")
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
                error = UnreadableError(f"the file could not be read ({type(exc).__name__}: {exc})")
                verdict = Verdict(INVALID, (error,), None, None, None, shown)
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
            error = ScoringTimeout(f"validation took longer than {self.timeout:g} s and was stopped",
                                   expected=f"a file the grader reads within {self.timeout:g} s",
                                   hint="save the predictions again with numpy (np.save) or as raw uint8 bytes")
            return Verdict(INVALID, (error,), None, None, None, shown)
        except (ProcessExpired, MemoryError, concurrent.futures.CancelledError) as exc:
            error = UnreadableError(f"the file could not be read (the grader's worker failed: {type(exc).__name__})",
                                    hint="save the predictions again with numpy (np.save) or as raw uint8 bytes")
            return Verdict(INVALID, (error,), None, None, None, shown)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker that could not start
            error = UnreadableError(f"the file could not be read ({type(exc).__name__}: {exc})")
            return Verdict(INVALID, (error,), None, None, None, shown)
        return verdict_from_record(record, self.truth, shown)


# --- Reading one untrusted HDF5 file in a worker (validate, score, leaderboard) -----------------

#: Wall-clock seconds and extra address space (MiB) allowed to read one HDF5 submission in a worker;
#: ``BRATS_KIT_READ_TIMEOUT`` / ``BRATS_KIT_READ_MEMORY_MB`` override them (e.g. on a slow machine).
READ_TIMEOUT_S = 20.0
READ_MEMORY_MB = 2048

#: True inside a worker process: there the reader runs directly (no nested worker).
IN_WORKER = False

_READER: dict = {}


def _reader_init(memory_bytes: Optional[int]) -> None:
    global IN_WORKER
    IN_WORKER = True
    if memory_bytes:
        import resource

        limit = _address_space_now() + int(memory_bytes)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _read_hdf5_task(data: bytes, n_slices: int, case_ids, path) -> tuple:
    import io

    from .h5read import read_hdf5

    try:
        loaded = read_hdf5(io.BytesIO(data), len(data), n_slices, case_ids=case_ids, path=path)
    except MemoryError:
        return None, None, [UnreadableError("the file needs more memory than a submission may use", path=path,
                                            hint="check the file's shape and dtype").to_dict()], None
    return loaded.format, loaded.array, [e.to_dict() for e in loaded.errors], loaded.case_id


def _limits() -> tuple:
    timeout = float(os.environ.get("BRATS_KIT_READ_TIMEOUT", READ_TIMEOUT_S))
    memory = os.environ.get("BRATS_KIT_READ_MEMORY_MB", READ_MEMORY_MB)
    return timeout, (None if memory in (None, "", "0") else int(memory) << 20)


def _reader_pool() -> ProcessPool:
    """The process's reader pool (one long-lived worker), started on first use."""
    import atexit
    import threading

    pid = os.getpid()
    if _READER.get("pid") != pid or _READER.get("pool") is None or not _READER["pool"].active:
        _, memory = _limits()
        # fork is cheap (the CLI is single-threaded); a threaded process (the server) spawns.
        method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
            else "spawn"
        pool = ProcessPool(max_workers=1, initializer=_reader_init, initargs=(memory,),
                           context=multiprocessing.get_context(method))
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
        error = ScoringTimeout(f"reading the HDF5 file took longer than {timeout:g} s and was stopped", path=path,
                               expected=f"a file the grader reads within {timeout:g} s",
                               hint="save the predictions again with h5py or numpy (np.save)")
        return Loaded(HDF5, errors=[error])
    except Exception as exc:  # noqa: BLE001 - a dead worker (crash, memory) is the file's verdict
        error = UnreadableError(f"the file could not be read (the grader's worker failed: {type(exc).__name__})",
                                path=path, hint="save the predictions again with h5py or numpy (np.save)")
        return Loaded(HDF5, errors=[error])
    return Loaded(fmt, array, [RecordedError(e) for e in errors], ids)
