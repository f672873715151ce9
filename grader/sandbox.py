"""Reading one untrusted HDF5 file in a worker process with a time and a memory limit.

libhdf5 is not ours: a corrupted file can make it spin forever or allocate
without bound. :func:`read_hdf5_isolated` hands the file's bytes to one
long-lived worker (``pebble.ProcessPool``) whose address space is capped
(``RLIMIT_AS``) and whose task is killed past a wall-clock limit; the reader's
outcome comes back as a :class:`~grader.readers.Loaded`. ``validate``,
``score`` and the leaderboard read HDF5 submissions through it; inside a
scoring worker (:mod:`grader.isolation`, already isolated) the file is read
directly.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Optional

from pebble import ProcessPool

from .errors import RecordedError, ScoringTimeout, UnreadableError


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


#: Wall-clock seconds and extra address space (MiB) allowed to read one HDF5 submission in a worker;
#: ``BRATS_KIT_READ_TIMEOUT`` / ``BRATS_KIT_READ_MEMORY_MB`` override them (e.g. on a slow machine).
READ_TIMEOUT_S = 20.0
READ_MEMORY_MB = 2048

#: True inside a worker process: there the reader runs directly (no nested worker).
IN_WORKER = False

_READER: dict = {}

#: What a student is told after any failure of an isolated read.
SAVE_AGAIN = "save the predictions again with numpy (np.save), h5py or as raw uint8 bytes"


# One message per failure, whichever worker (this module's reader, :mod:`grader.isolation`'s scorer) saw it.
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


def enter_worker(memory_bytes: Optional[int]) -> None:
    """Mark this process as an isolated worker (files are then read directly) and cap its memory."""
    global IN_WORKER
    IN_WORKER = True
    limit_address_space(memory_bytes)


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
        pool = ProcessPool(max_workers=1, initializer=enter_worker, initargs=(memory,),
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
        return Loaded(HDF5, errors=[overran(timeout, path)])
    except Exception as exc:  # noqa: BLE001 - a dead worker (crash, memory) is the file's verdict
        return Loaded(HDF5, errors=[worker_failed(exc, path)])
    return Loaded(fmt, array, [RecordedError(e) for e in errors], ids)
