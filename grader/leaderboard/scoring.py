"""Validate and count every submission once: the cache first, then joblib for the rest.

The work goes through :class:`joblib.Parallel` without a fixed backend, so
``--jobs N`` uses local processes (loky) and a course that outgrows one machine
can run the same call inside ``joblib.parallel_config(backend="dask")`` (or
``"ray"``) to spread it over a cluster.
"""
from __future__ import annotations

import os
import stat

from joblib import Parallel, delayed

from plumbing.progress import no_progress
from data_spec import Truth, load_truth, sha256_file
from grader.counts import Counts
from grader.scoring import SCORED, evaluate

from .cache import cache_key

#: Files per joblib task: enough to amortise the dispatch, small enough for a live progress bar.
CHUNK = 16


def score_file(path, truth: Truth) -> dict:
    """The record of one submission file: :func:`grader.scoring.evaluate`, path-free, JSON-ready.

    Returns
    -------
    dict
        :meth:`grader.scoring.Verdict.record` (``status``, ``errors``, ``format``
        and, when scored, ``tp``, ``fp``, ``fn`` as lists), plus ``transient``: a
        record that depends on more than the file's bytes (``unsafe_file``: which
        file it is; ``unreadable``: the validator failed on a hostile file) is not cached.
    """
    verdict = evaluate(path, truth)
    record = verdict.record()
    record["transient"] = verdict.transient
    return record


_WORKER_TRUTH: dict = {}


def _score_chunk(paths, truth_path, truth_sha256) -> list:
    """A worker's share: the truth is read once per worker process, not shipped with every task."""
    key = (os.fspath(truth_path), truth_sha256)
    if key not in _WORKER_TRUTH:
        _WORKER_TRUTH.clear()
        _WORKER_TRUTH[key] = load_truth(truth_path)
    truth = _WORKER_TRUTH[key]
    return [score_file(p, truth) for p in paths]


def _chunks(items: list) -> list:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def _hashable(path, cap: int) -> bool:
    """A regular file within the size cap: worth hashing (anything else is refused unread)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= cap


def score_submissions(submissions, truth, cache, *, jobs: int = 1, progress=no_progress) -> dict:
    """Fill in each submission's status, errors and counts, scoring only what the cache lacks.

    Submissions that already have a status (a manifest row without its file) are left
    alone. Identical files (same sha256) are scored once. Files the validator refuses
    unread (links, devices, files over its size cap) are validated but neither hashed
    nor cached.

    Parameters
    ----------
    submissions : list of Submission
    truth : Truth
        With its ``path`` (workers load it again).
    cache : ScoreCache
    jobs : int
        joblib ``n_jobs`` (-1: all cores). Results keep the input order.
    progress : callable

    Returns
    -------
    dict
        ``scored`` (files scored now), ``cached`` (answered by the cache).
    """
    from grader.readers import default_max_bytes

    pending = [s for s in submissions if s.status is None]
    cap = default_max_bytes(len(truth))
    # What the validator refuses before reading (links, devices, oversized files) is never hashed or cached.
    refused = [s for s in pending if not _hashable(s.path, cap)]
    for sub in refused:
        _apply(sub, score_file(sub.path, truth), truth)
    todo = [s for s in pending if _hashable(s.path, cap)]
    # Hashing stays in this process: it is bound by reading the files, not by the CPU.
    for sub in progress(todo, label="hashing submissions", length=len(todo)):
        sub.sha256 = sha256_file(sub.path)
    keys = {id(s): cache_key(s.sha256, truth.sha256) for s in todo}
    records, missing = {}, {}
    for sub in todo:
        key = keys[id(sub)]
        record = cache.get(key, len(truth))
        if record is not None:
            records[key] = record
        elif key not in missing:
            missing[key] = sub.path
    cached = sum(1 for s in todo if keys[id(s)] in records)
    items = list(missing.items())
    if items:
        if jobs == 1:
            results = (score_file(p, truth) for _, p in items)
            results = progress(results, label="scoring submissions", length=len(items))
        else:
            chunks = _chunks(items)
            run = Parallel(n_jobs=jobs, return_as="generator")(
                delayed(_score_chunk)([p for _, p in chunk], truth.path, truth.sha256) for chunk in chunks
            )
            results = (r for chunk in progress(run, label="scoring submissions", length=len(chunks)) for r in chunk)
        for (key, _), record in zip(items, results):
            records[key] = record
            if not record.pop("transient", False):
                cache.put(key, record)
    for sub in todo:
        _apply(sub, records[keys[id(sub)]], truth)
    return {"scored": len(items) + len(refused), "cached": cached}


def _apply(sub, record: dict, truth: Truth) -> None:
    sub.status = record["status"]
    sub.errors = [dict(e) for e in record["errors"]]
    if sub.status == SCORED:
        sub.counts = Counts.from_record(record, truth)
