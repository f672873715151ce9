"""Validate and count every submission once: the cache first, then joblib for the rest.

The work goes through :class:`joblib.Parallel` without a fixed backend, so
``--jobs N`` uses local processes (loky) and a course that outgrows one machine
can run the same call inside ``joblib.parallel_config(backend="dask")`` (or
``"ray"``) to spread it over a cluster.
"""
from __future__ import annotations

import os
import stat

import numpy as np
from joblib import Parallel, delayed

from plumbing.progress import no_progress
from data_spec import sha256_file

from .cache import cache_key
from .collect import INVALID, SCORED

#: Files per joblib task: enough to amortise the dispatch, small enough for a live progress bar.
CHUNK = 16


def _path_free(message: str, path) -> str:
    # Cached records are keyed by content, so they must not name where the file was.
    for p in {os.fspath(path), os.path.abspath(path)}:
        message = message.replace(p + ": ", "").replace(p, "<submission>")
    return message


def score_file(path, truth_y: np.ndarray, case_id, truth_files=()) -> dict:
    """Validate one submission against the truth and count, per case, tp, fp and fn.

    Parameters
    ----------
    path : path-like
    truth_y : bool array (N, 240, 240)
    case_id : str array (N,)
    truth_files : tuple of path-like
        The truth file(s): a submission that is one of them (a hard link) is refused.

    Returns
    -------
    dict
        ``status`` ("scored" or "invalid"), ``errors`` (list of ``{"code", "message"}``,
        messages without the file's path), ``format``, and when scored ``tp``, ``fp``,
        ``fn`` as lists of ints (one per test case). A record that depends on more
        than the file's bytes (``unsafe_file``: which file it is; ``unreadable``: an
        unexpected exception of the validator on a hostile file) carries
        ``"transient": True`` and is not cached.
    """
    from grader.metrics import confusion_counts
    from grader.validate import validate_submission

    try:
        v = validate_submission(path, n_slices=len(truth_y), case_ids=case_id, truth_path=truth_files)
        if not v.ok:
            errors = []
            for e in v.errors:
                d = e.to_dict() if hasattr(e, "to_dict") else {"code": "invalid", "message": str(e)}
                errors.append({"code": str(d.get("code", "invalid")), "message": _path_free(str(d["message"]), path)})
            transient = any(e["code"] == "unsafe_file" for e in errors)
            return {"status": INVALID, "errors": errors, "format": v.format, "transient": transient}
        tp, fp, fn = confusion_counts(truth_y, v.y_pred)
    except Exception as exc:  # noqa: BLE001 - a hostile file must not stop the leaderboard
        return {
            "status": INVALID,
            "errors": [{"code": "unreadable", "message": _path_free(f"{type(exc).__name__}: {exc}", path)}],
            "format": None,
            "transient": True,
        }
    return {
        "status": SCORED,
        "errors": [],
        "format": v.format,
        "tp": np.asarray(tp, dtype=np.int64).tolist(),
        "fp": np.asarray(fp, dtype=np.int64).tolist(),
        "fn": np.asarray(fn, dtype=np.int64).tolist(),
    }


_WORKER_TRUTH: dict = {}


def _score_chunk(paths, truth_path, truth_sha256) -> list:
    """A worker's share: the truth is read once per worker process, not shipped with every task."""
    key = (os.fspath(truth_path), truth_sha256)
    if key not in _WORKER_TRUTH:
        from .collect import read_truth_masks

        _WORKER_TRUTH.clear()
        _WORKER_TRUTH[key] = read_truth_masks(truth_path)
    y, case_id, _, files = _WORKER_TRUTH[key]
    return [score_file(p, y, case_id, files) for p in paths]


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
        _apply(sub, score_file(sub.path, truth.y, truth.case_id, truth.files))
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
            results = (score_file(p, truth.y, truth.case_id, truth.files) for _, p in items)
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
        _apply(sub, records[keys[id(sub)]])
    return {"scored": len(items) + len(refused), "cached": cached}


def _apply(sub, record: dict) -> None:
    sub.status = record["status"]
    sub.errors = [dict(e) for e in record["errors"]]
    if sub.status == SCORED:
        sub.tp, sub.fp, sub.fn = (np.asarray(record[k], dtype=np.int64) for k in ("tp", "fp", "fn"))
