"""The server's one call into the grader: the isolated scorer, and what a receipt shows of a verdict."""
from __future__ import annotations

import hashlib

from data_spec.truth import load_truth
from grader.isolation import IsolatedScorer
from grader.readers import default_max_bytes


def open_truth_info(truth_path) -> dict:
    """:func:`truth_info` of the truth at ``truth_path`` (refused now if the grader cannot read it)."""
    return truth_info(load_truth(truth_path))


def truth_info(truth) -> dict:
    """What the server tells clients about the test set (public facts only) and the size cap."""
    return {"n_slices": len(truth), "case_ids": [str(c) for c in truth.case_id],
            "max_bytes": default_max_bytes(len(truth))}


def course_mask_scores(config) -> tuple:
    """The mask scores a course's uploads store per case: its ranking score's, when it is one (else none).

    Only what the course ranks by: one mask score adds 14 to 24 ms to an upload's 3 ms of validation
    and counting (29 slices), all four 51 ms (``benchmarks/upload_mask_scores.py``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> course_mask_scores(SimpleNamespace(ranking="dice")), course_mask_scores(SimpleNamespace(ranking="nsd"))
    ((), ('nsd',))
    """
    from grader.leaderboard.ranking import masks_for, ranking_type

    return masks_for(ranking_type(config.ranking))


def lacks_mask_scores(stored, names) -> bool:
    """Whether a scored row's stored ``mask_scores`` miss one of ``names`` (recorded before they were stored).

    Examples
    --------
    >>> lacks_mask_scores(None, ("nsd",)), lacks_mask_scores({"nsd": [1.0]}, ("nsd",)), lacks_mask_scores(None, ())
    (True, False, False)
    """
    return any(name not in (stored or {}) for name in names)


def make_scorer(config) -> IsolatedScorer:
    """The course's scoring workers: validation, counts and the mask scores it ranks by (:func:`course_mask_scores`)."""
    return IsolatedScorer(config.truth, workers=config.workers, timeout=config.timeout_s,
                          memory_mb=config.memory_mb, max_bytes=config.max_bytes, metrics=course_mask_scores(config))


def score_files(config, paths: dict, scorer=None) -> dict:
    """``sha256 -> row columns`` (:func:`verdict_fields`) of stored files ``paths`` (``sha256 -> path``), scored again.

    In ``scorer``'s workers, else in the course's own (started and stopped here).
    """
    own = scorer is None
    scorer = make_scorer(config) if own else scorer
    try:
        futures = {sha: scorer.submit(path) for sha, path in sorted(paths.items())}
        return {sha: verdict_fields(f.result()) for sha, f in futures.items()}
    finally:
        if own:
            scorer.close()


def _floats(scores: dict) -> dict:
    return {k: (int(v) if k.startswith("n_") else float(v)) for k, v in scores.items()}


def verdict_fields(verdict) -> dict:
    """Columns of a submission row: status, format, errors (path-free), public and private scores, counts
    and the per-case mask scores the scoring worker computed (:attr:`grader.scoring.Verdict.mask_scores`)."""
    out = {"status": verdict.status, "format": verdict.format, "errors": verdict.error_dicts(with_path=False),
           "public": None, "private": None, "counts": None, "mask_scores": None}
    if verdict.counts is not None:
        out["public"] = _floats(verdict.counts.scores("public"))
        out["private"] = _floats(verdict.counts.scores("private"))
        out["counts"] = verdict.counts.to_record()
        if verdict.mask_scores is not None:
            out["mask_scores"] = {name: [float(v) for v in values] for name, values in verdict.mask_scores.items()}
    return out


def truth_version(sha256: str) -> str:
    """What a team may see of a truth's identity: a digest of its sha256, never the sha256 itself.

    A truth file without public flags derives them from its own sha256
    (:func:`data_spec.load_truth`), so showing that sha256 on a receipt would let a team
    recompute which cases are public. This label tells truths apart and reveals nothing.

    Examples
    --------
    >>> v = truth_version("ab" * 32)
    >>> len(v), v == truth_version("ab" * 32), v == truth_version("cd" * 32), "ab" * 8 in v
    (16, True, False, False)
    """
    return hashlib.sha256(b"brats-kit truth version\0" + sha256.encode("ascii")).hexdigest()[:16]


def superseded_view(superseded, *, revealed: bool):
    """What a receipt shows of the grade a rescore replaced (None if never re-scored): private scores after the reveal.

    Examples
    --------
    >>> old = {"status": "scored", "public": {"dice": 0.8}, "private": {"dice": 0.7}, "truth_sha256": "ab" * 32}
    >>> sorted(superseded_view(old, revealed=False)), superseded_view(old, revealed=True)["private"]
    (['public', 'status', 'truth_version'], {'dice': 0.7})
    >>> superseded_view(None, revealed=True) is None
    True
    """
    if superseded is None:
        return None
    out = {"status": superseded.get("status"), "public": superseded.get("public"),
           "truth_version": truth_version(superseded["truth_sha256"]) if superseded.get("truth_sha256") else None}
    if revealed:
        out["private"] = superseded.get("private")
    return out
