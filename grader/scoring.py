"""The one scoring path: from a submission (file or array) and the truth to a :class:`Verdict`.

``brats-kit score``, the leaderboard (and its cache) and the submission server
all call :func:`evaluate`; nothing else validates and counts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from data_spec.errors import KitError
from data_spec.truth import Truth

from .checks import as_mask
from .counts import Counts, count
from .errors import RecordedError, UnreadableError  # noqa: F401  (UnreadableError: part of this path's face)
from .validate import Validation, validate_array, validate_bytes, validate_submission

SCORED, INVALID = "scored", "invalid"
#: Error codes whose verdict depends on more than the file's bytes (which file it is, the run
#: that read it): such a verdict is never cached.
TRANSIENT_CODES = frozenset({"unsafe_file", "unreadable", "timeout"})


@dataclass(frozen=True, eq=False)
class Verdict:
    """What became of one submission: its status, every error, and its counts when scored.

    Attributes
    ----------
    status : {"scored", "invalid"}
    errors : tuple of KitError
        Every problem found (empty when scored).
    format : {"dat", "npy", "hdf5"} or None
    counts : Counts or None
        Per-slice counts when scored.
    y_pred : ndarray or None
        The validated prediction, kept for in-process use (HD95, the report);
        never part of a record.
    path : str or None
        The file, as given (never part of a record).
    mask_scores : dict or None
        Per-case values of mask scores (HD95, lesion-wise Dice and HD95, NSD), by name,
        when they were asked for (:func:`with_mask_scores`); part of the record.
    """

    status: str
    errors: tuple = ()
    format: Optional[str] = None
    counts: Optional[Counts] = None
    y_pred: Optional[np.ndarray] = None
    path: Optional[str] = None
    mask_scores: Optional[dict] = None

    @property
    def ok(self) -> bool:
        return self.status == SCORED

    @property
    def transient(self) -> bool:
        """Whether the verdict depends on more than the bytes (then it must not be cached)."""
        return any(e.code in TRANSIENT_CODES for e in self.errors)

    def error_dicts(self, *, with_path: bool = True) -> list:
        """The errors as JSON-ready dicts (``code``, ``message``, ``where``, ``expected``, ``hint``).

        ``with_path=False`` drops the file's path from them: what a cache keyed by
        content, or another person than the file's owner, may see.
        """
        out = []
        for e in self.errors:
            d = e.to_dict()
            if not with_path:
                d.pop("path", None)
                d["message"] = _path_free(d["message"], self.path)
            out.append(d)
        return out

    def record(self) -> dict:
        """The verdict as a path-free JSON record: ``status``, ``errors``, ``format``, the counts and any mask scores."""
        out = {"status": self.status, "errors": self.error_dicts(with_path=False), "format": self.format}
        if self.counts is not None:
            out.update(self.counts.to_record())
        if self.mask_scores is not None:
            out["mask_scores"] = {name: list(values) for name, values in self.mask_scores.items()}
        return out

    @classmethod
    def from_record(cls, record: dict, truth: Truth, path=None) -> "Verdict":
        """The inverse of :meth:`record` (the errors come back as :class:`~grader.errors.RecordedError`)."""
        errors = tuple(RecordedError(d) for d in record["errors"])
        scored = record["status"] == SCORED
        counts = Counts.from_record(record, truth) if scored else None
        masks = record.get("mask_scores") if scored else None
        return cls(record["status"], errors, record.get("format"), counts, None, path, masks)


def _path_free(message: str, path) -> str:
    # Records are keyed by content, so they must not name where the file was.
    if path is None:
        return message
    for p in {os.fspath(path), os.path.abspath(path)}:
        message = message.replace(p + ": ", "").replace(p, "<submission>")
    return message


def evaluate(submission, truth: Truth, *, max_bytes: Optional[int] = None) -> Verdict:
    """Validate a submission safely and count it against the truth: the kit's one scoring path.

    Parameters
    ----------
    submission : path-like or array-like
        A submission file (raw ``.dat``, ``.npy`` or HDF5, recognised by its magic
        bytes and validated without trusting it) or an in-memory (N, 240, 240) array.
    truth : Truth
        From :func:`data_spec.load_truth`. A file that is one of the truth files
        (same inode) is refused.
    max_bytes : int, optional
        Size cap of a file (see :func:`grader.validate_submission`).

    Returns
    -------
    Verdict
        Never raises for a bad submission: a file on which the validator itself
        fails unexpectedly is an invalid verdict with code ``unreadable``.
    """
    if isinstance(submission, (str, bytes, os.PathLike)):
        return _contained(lambda: validate_submission(submission, n_slices=len(truth), case_ids=truth.case_id,
                                                      truth_path=truth.files(), max_bytes=max_bytes),
                          truth, os.fsdecode(submission))
    errors = validate_array(submission, n_slices=len(truth))
    y_pred = None if errors else as_mask(np.asarray(submission))
    return verdict_of(Validation(not errors, errors, y_pred, None, None, len(truth)), truth)


def evaluate_bytes(data: bytes, truth: Truth, *, path=None) -> Verdict:
    """:func:`evaluate` of a submission already read into memory (the leaderboard reads each file once).

    ``path`` only names the file in messages; the bytes are validated by
    :func:`grader.validate.validate_bytes`, exactly as the file would be.
    """
    shown = None if path is None else os.fsdecode(path)
    return _contained(lambda: validate_bytes(data, n_slices=len(truth), case_ids=truth.case_id, path=shown),
                      truth, shown)


def _contained(validate, truth: Truth, shown) -> Verdict:
    """Run ``validate()`` and count; a validator that fails unexpectedly (a hostile file) is ``unreadable``."""
    try:
        return verdict_of(validate(), truth)
    except Exception as exc:  # noqa: BLE001 - a hostile file must never stop a run
        error = UnreadableError(f"the file could not be read ({type(exc).__name__}: {exc})", path=shown,
                                hint="save the predictions again with numpy (np.save) or as raw uint8 bytes")
        return Verdict(INVALID, (error,), None, None, None, shown)


def verdict_of(validation: Validation, truth: Truth) -> Verdict:
    """The verdict of an already validated submission: counted when valid."""
    if not validation.ok:
        return Verdict(INVALID, tuple(validation.errors), validation.format, None, None, validation.path)
    counts = count(truth, validation.y_pred)
    return Verdict(SCORED, (), validation.format, counts, validation.y_pred, validation.path)


def with_mask_scores(verdict: Verdict, truth: Truth, names) -> Verdict:
    """``verdict`` with the per-case values of the mask scores ``names`` (an invalid one, or no names: as it is).

    Computed from the validated prediction while it is in memory: counts cannot give them later.

    Examples
    --------
    >>> from data_spec.truth import Truth
    >>> y = np.zeros((2, 240, 240), np.uint8); y[0, 10:20, 10:20] = 1
    >>> truth = Truth(y, np.array(["a", "b"]), np.array([True, False]), "truth", None)
    >>> scored = with_mask_scores(evaluate(y, truth), truth, ["nsd", "hd95"])
    >>> scored.mask_scores, scored.record()["mask_scores"]["nsd"]
    ({'nsd': (1.0, 1.0), 'hd95': (0.0, 0.0)}, [1.0, 1.0])
    """
    names = [name for name in names if name]
    if not verdict.ok or not names:
        return verdict
    from dataclasses import replace

    from .metrics import mask_scores_per_slice

    per_case = mask_scores_per_slice(truth.mask, verdict.y_pred, names)
    return replace(verdict, mask_scores={name: tuple(float(v) for v in values) for name, values in per_case.items()})
