"""Validate and count every submission once: each file opened once, hashed and validated from the same bytes.

Each file is opened once by :func:`grader.readers.open_submission` (``O_NOFOLLOW |
O_NONBLOCK``, ``fstat`` on the descriptor: a regular file within the size cap,
not the truth), read once up to the cap, hashed, and, unless the cache knows
that hash, validated from those very bytes: the cache key is the hash of what was
validated, so a file rewritten meanwhile can never poison it. Every per-file
failure (a vanished file, no read permission, a FIFO or link swapped in, a
device) is that file's invalid verdict; HDF5 is read in an isolated worker
(:mod:`grader.isolation`), so a file that hangs libhdf5 gets ``timeout``.

The work goes through :class:`joblib.Parallel` without a fixed backend, so
``--jobs N`` uses local processes (loky) and a course that outgrows one machine
can run the same call inside ``joblib.parallel_config(backend="dask")`` (or
``"ray"``) to spread it over a cluster.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
from joblib import Parallel, delayed

from plumbing.progress import no_progress
from data_spec import KitError, Truth, load_truth
from grader.counts import Counts
from grader.readers import default_max_bytes, open_submission
from grader.scoring import INVALID, SCORED, UnreadableError, Verdict, evaluate_bytes, with_mask_scores

from .cache import cache_key

#: Files per joblib task: enough to amortise the dispatch, small enough for a live progress bar.
CHUNK = 16


def read_once(path, truth: Truth, cap: int) -> tuple:
    """Open ``path`` once and read its bytes, or the error that refuses it.

    Returns
    -------
    (bytes or None, KitError or None)
    """
    try:
        fh, size = open_submission(path, n_slices=len(truth), truth_paths=truth.files(), max_bytes=cap)
    except KitError as exc:
        return None, exc
    except OSError as exc:  # anything the checks did not foresee is still this file's verdict
        return None, UnreadableError(f"could not be opened ({exc.strerror or exc})", path=os.fsdecode(path))
    try:
        with fh:
            data = fh.read(size)
            grown = fh.read(1)
    except OSError as exc:
        return None, UnreadableError(f"could not be read ({exc.strerror or exc})", path=os.fsdecode(path))
    if len(data) != size or grown:
        from data_spec.errors import UnsafeFileError

        return None, UnsafeFileError("changed while it was being read", path=os.fsdecode(path),
                                     expected="a file that stays put")
    return data, None


def score_bytes(data: bytes, truth: Truth, path=None) -> Verdict:
    """The verdict of a submission's bytes: :func:`grader.scoring.evaluate_bytes`."""
    return evaluate_bytes(data, truth, path=path)


def score_file(path, truth: Truth, known=frozenset(), metrics=()) -> tuple:
    """Read one submission once, hash it, and score it unless its hash is in ``known``.

    ``metrics`` names mask scores (:data:`grader.score_types.MASK_SCORES`) to compute from the
    validated masks while they are in memory: their per-case values go into the record's
    ``mask_scores`` (counts cannot give them later).

    Returns
    -------
    sha256 : str or None
        Of the bytes read (None when the file was refused unread).
    record : dict or None
        :meth:`grader.scoring.Verdict.record` plus ``transient`` (a refusal that
        depends on more than the bytes: never cached); None when the hash is known.
    """
    shown = os.fsdecode(path)
    data, refused = read_once(path, truth, default_max_bytes(len(truth)))
    if refused is not None:
        record = Verdict(INVALID, (refused,), None, None, None, shown).record()
        record["transient"] = True
        return None, record
    sha = hashlib.sha256(data).hexdigest()
    if sha in known:
        return sha, None
    verdict = with_mask_scores(score_bytes(data, truth, shown), truth, metrics)
    record = verdict.record()
    record["transient"] = verdict.transient
    return sha, record


_WORKER_TRUTH: dict = {}


def _score_chunk(paths, truth_path, truth_sha256, known, metrics=()) -> list:
    """A worker's share: the truth is read once per worker process, not shipped with every task."""
    key = (os.fspath(truth_path), truth_sha256)
    if key not in _WORKER_TRUTH:
        _WORKER_TRUTH.clear()
        _WORKER_TRUTH[key] = load_truth(truth_path)
    truth = _WORKER_TRUTH[key]
    return [score_file(p, truth, known, metrics) for p in paths]


def _chunks(items: list) -> list:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def score_submissions(submissions, truth, cache, *, jobs: int = 1, metrics=(), progress=no_progress) -> dict:
    """Fill in each submission's status, errors and counts, scoring only what the cache lacks.

    Submissions that already have a status (a manifest row without its file) are left
    alone. Files refused unread (links, devices, FIFOs, vanished, unreadable, over the
    size cap) get their invalid verdict and are neither hashed nor cached.

    Parameters
    ----------
    submissions : list of Submission
    truth : Truth
        With its ``path`` (workers load it again).
    cache : ScoreCache
    jobs : int
        joblib ``n_jobs`` (-1: all cores). Results keep the input order.
    metrics : sequence of str
        Mask scores to store per case with each valid file's counts; a cached record that
        lacks one of them is scored again (keeping the mask scores it had).
    progress : callable

    Returns
    -------
    dict
        ``scored`` (files validated now, or refused), ``cached`` (answered by the cache).
    """
    pending = [s for s in submissions if s.status is None]
    # The hashes this truth and scorer have cached: a worker that reads one of them stops there.
    suffix = cache_key("", truth.sha256)
    metrics = tuple(metrics)
    known = {k[: -len(suffix)] for k in cache.entries
             if k.endswith(suffix) and _complete(cache.get(k, len(truth)), metrics, len(truth))}
    fresh: dict = {}  # hash -> record, scored by this run
    cached = refused = 0

    def take(sub, sha, record) -> None:
        nonlocal cached, refused
        sub.sha256 = sha
        if sha is None:
            refused += 1
        elif record is None:
            record = fresh.get(sha) or cache.get(cache_key(sha, truth.sha256), len(truth))
            cached += sha not in fresh
        else:
            transient = record.pop("transient", False)
            earlier = cache.get(cache_key(sha, truth.sha256), len(truth))
            if record.get("mask_scores") and earlier and earlier.get("mask_scores"):
                record["mask_scores"] = {**earlier["mask_scores"], **record["mask_scores"]}
            if not transient:
                cache.put(cache_key(sha, truth.sha256), record)
            fresh.setdefault(sha, record)
        record.pop("transient", None)
        _apply(sub, record, truth)

    if jobs == 1:
        for sub in progress(pending, label="scoring submissions", length=len(pending)):
            # Files identical to one already scored in this run are read and hashed, not scored again.
            take(sub, *score_file(sub.path, truth, known | fresh.keys(), metrics))
    else:
        chunks = _chunks(pending)
        frozen = frozenset(known)
        run = Parallel(n_jobs=jobs, return_as="generator")(
            delayed(_score_chunk)([s.path for s in chunk], truth.path, truth.sha256, frozen, metrics)
            for chunk in chunks
        )
        for chunk, results in zip(chunks, progress(run, label="scoring submissions", length=len(chunks))):
            for sub, (sha, record) in zip(chunk, results):
                take(sub, sha, record)
    return {"scored": len(fresh) + refused, "cached": cached}


def _complete(record, metrics: tuple, n_cases: int) -> bool:
    """Whether a cached record answers for a file: it exists and, when valid, holds every mask score asked."""
    if record is None:
        return False
    if record["status"] != SCORED or not metrics:
        return True
    held = record.get("mask_scores")
    return isinstance(held, dict) and all(
        isinstance(held.get(name), list) and len(held[name]) == n_cases for name in metrics)


def _apply(sub, record: dict, truth: Truth) -> None:
    sub.status = record["status"]
    sub.errors = [dict(e) for e in record["errors"]]
    if sub.status == SCORED:
        sub.counts = Counts.from_record(record, truth)
        sub.mask_scores = {name: np.asarray(values, dtype=np.float64)
                           for name, values in (record.get("mask_scores") or {}).items()}
