"""Grade a submission against the hidden truth: validate, count once, score, report.

>>> from grader import grade
>>> grade("test_data_ypred.dat", "competition/private")      # doctest: +SKIP
{'status': 'scored', 'errors': [], 'f1': 0.81, 'dice': 0.77, ...}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from plumbing.progress import no_progress
from data_spec.constants import COURSE_Y, PRIVATE_DIR, SLICE_SHAPE, TEST, TRUTH_H5
from data_spec.errors import KitError, LayoutError
from data_spec.layout import Split, find_truth, open_split, open_truth

from .checks import as_mask
from .errors import BadTruthError, NoPhaseFlagsError
from .metrics import confusion_counts, hd95_per_slice, mean_hd95, scores_from_counts
from .validate import Validation, validate_array, validate_submission


@dataclass
class Truth:
    """The test truth, loaded: masks in memory, ids, phase flags, where it came from.

    Attributes
    ----------
    y : ndarray of uint8 (N, 240, 240)
    case_id : ndarray of str (N,)
    public : ndarray of bool (N,) or None
        Which cases are on the public leaderboard (None for a course truth file).
    path : Path or None
        The truth file.
    """

    y: np.ndarray
    case_id: np.ndarray
    public: Optional[np.ndarray]
    path: Optional[Path]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def directory(self) -> Optional[Path]:
        """The competition directory: the truth's directory, or its parent when under ``private/``."""
        if self.path is None:
            return None
        parent = self.path.parent
        return parent.parent if parent.name == PRIVATE_DIR else parent

    def files(self) -> tuple:
        """The truth file and its sibling truth files: a submission may be none of them."""
        if self.path is None:
            return ()
        siblings = (self.path.parent / TRUTH_H5, self.path.parent / COURSE_Y[TEST])
        return (self.path,) + tuple(p for p in siblings if p != self.path)


def load_truth(truth) -> Truth:
    """Load the test truth: a path (file, ``private/`` or competition directory), a Split, or a Truth.

    Raises
    ------
    MissingFileError, LayoutError, CorruptFileError
        No truth found, or a file in neither layout.
    BadTruthError
        Masks that are not (N, 240, 240) of 0/1 values.
    """
    if isinstance(truth, Truth):
        return truth
    if isinstance(truth, Split):
        split = truth
        path = Path(split.path) if split.path is not None and Path(split.path).is_file() else None
    else:
        path = find_truth(truth)
        split = open_truth(path)
    if split.y is None:
        raise LayoutError("this split holds no masks", path=path, hint="pass the test truth, not the test inputs")
    y = np.asarray(split.y)
    if y.ndim != 3 or y.shape[1:] != SLICE_SHAPE or y.dtype.kind not in "biu":
        raise BadTruthError(f"truth masks have shape {y.shape} and dtype {y.dtype}", path=path,
                            expected="(N, 240, 240) uint8")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise BadTruthError("truth masks hold values other than 0 and 1", path=path, expected="0 or 1",
                            hint="a BraTS label map? The whole tumour is (labels > 0)")
    public = None if split.public is None else np.asarray(split.public, dtype=bool)
    return Truth(as_mask(y), np.asarray(split.case_id, dtype=str), public, Path(path) if path else None)


def _validate(submission, truth: Truth, max_bytes=None) -> Validation:
    if isinstance(submission, (str, bytes, os.PathLike)):
        return validate_submission(
            submission, n_slices=len(truth), case_ids=truth.case_id, truth_path=truth.files(), max_bytes=max_bytes
        )
    errors = validate_array(submission, n_slices=len(truth))
    y_pred = None if errors else as_mask(np.asarray(submission))
    return Validation(not errors, errors, y_pred, None, None, len(truth))


@dataclass
class Counts:
    """Per-slice counts of a valid submission, with the truth's ids and phase flags (what a leaderboard caches)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    case_id: np.ndarray
    public: Optional[np.ndarray]

    def scores(self, phase: str = "all") -> dict:
        """:func:`~grader.metrics.scores_from_counts` on all cases, or only the ``"public"`` or ``"private"`` ones."""
        keep = _phase_mask(self.public, phase, len(self.tp))
        return scores_from_counts(self.tp[keep], self.fp[keep], self.fn[keep])


def _phase_mask(public, phase: str, n: int) -> np.ndarray:
    if phase == "all":
        return np.ones(n, dtype=bool)
    if phase not in ("public", "private"):
        raise ValueError(f"phase must be 'all', 'public' or 'private', got {phase!r}")
    if public is None:
        raise NoPhaseFlagsError(
            "the truth file has no phase flags: it does not say which cases are public",
            expected=f"the HDF5 truth file ({PRIVATE_DIR}/{TRUTH_H5}) with its 'public' dataset",
            hint="a course test_data_y.dat has no flags; grade without --public-only, or use the HDF5 truth",
        )
    keep = public if phase == "public" else ~public
    if not keep.any():
        # Scores on zero cases are the all-empty values (1.0): a perfect score for any submission.
        raise LayoutError(f"the truth marks no test case {phase}", expected=f"at least one {phase} case",
                          hint="grade without --public-only" if phase == "public" else None)
    return keep


def counts_for(submission, truth, *, max_bytes: Optional[int] = None) -> Counts:
    """Validate a submission and count its per-slice true/false positives and false negatives.

    Parameters
    ----------
    submission : path-like or array-like
        A submission file (validated safely) or an in-memory (N, 240, 240) array.
    truth : path-like, Split or Truth
        See :func:`load_truth`.

    Returns
    -------
    Counts
        ``tp``, ``fp``, ``fn`` (int64, (N,)), ``case_id`` and ``public`` of the truth.

    Raises
    ------
    InvalidSubmissionError
        The submission is invalid; ``.errors`` holds every problem.
    """
    truth = load_truth(truth)
    validation = _validate(submission, truth, max_bytes).raise_if_invalid()
    tp, fp, fn = confusion_counts(truth.y, validation.y_pred)
    return Counts(tp, fp, fn, truth.case_id, truth.public)


def grade(
    submission,
    truth,
    *,
    hd95: bool = False,
    public_only: bool = False,
    report_dir=None,
    data=None,
    max_bytes: Optional[int] = None,
    progress=no_progress,
) -> dict:
    """Validate and score one submission: the object ``brats-kit score --json`` prints.

    Parameters
    ----------
    submission : path-like or array-like
        The submission file (raw ``.dat``, ``.npy`` or HDF5), or an array.
    truth : path-like, Split or Truth
        ``private/test_truth.h5``, the course's ``test_data_y.dat``, or a
        directory holding either (see :func:`data_spec.find_truth`).
    hd95 : bool
        Also report the mean per-slice HD95 (pixels).
    public_only : bool
        Score (and report) only the public cases. Needs the HDF5 truth's flags.
    report_dir : path-like, optional
        Write ``per_slice.csv`` and ``worst_slices.png`` there (see :mod:`grader.report`).
    data : path-like, optional
        Competition directory with the test inputs for the report's montage;
        by default the truth's competition directory is searched.
    max_bytes : int, optional
        Submission size cap (see :func:`grader.validate_submission`).
    progress : callable
        Progress reporter for the per-slice HD95 loop.

    Returns
    -------
    dict
        ``status`` "invalid" with ``errors`` (every problem); or ``status``
        "scored", ``errors`` [], ``f1``, ``dice``, ``precision``, ``recall``,
        ``dice_tumour_slices``, ``empty_slices_correct``, ``n_slices`` (the
        slices scored), ``phase`` ("all" or "public"), ``hd95`` when asked,
        ``report`` (file paths) when a report was written.

    Raises
    ------
    KitError
        A problem with the truth or the options (never with the submission):
        no truth, a corrupt truth, ``public_only`` without phase flags or without a public case.
    """
    truth = load_truth(truth)
    phase = "public" if public_only else "all"
    keep = _phase_mask(truth.public, phase, len(truth))  # before validating: an option error comes first
    validation = _validate(submission, truth, max_bytes)
    if not validation.ok:
        return {"status": "invalid", "errors": [e.to_dict() for e in validation.errors]}
    y_true, y_pred = truth.y[keep], validation.y_pred[keep]
    tp, fp, fn = confusion_counts(y_true, y_pred)
    out = {"status": "scored", "errors": []}
    out.update(scores_from_counts(tp, fp, fn))
    out["phase"] = phase
    per_slice_hd = None
    if hd95 or report_dir is not None:
        per_slice_hd = hd95_per_slice(y_true, y_pred, progress=progress)
    if hd95:
        out["hd95"] = mean_hd95(per_slice_hd)
    if report_dir is not None:
        from .report import write_report

        x, note = _test_inputs(truth, data)
        out["report"] = write_report(
            report_dir,
            case_id=truth.case_id[keep],
            public=None if truth.public is None else truth.public[keep],
            tp=tp, fp=fp, fn=fn, hd95=per_slice_hd,
            y_true=y_true, y_pred=y_pred,
            x=x, index=np.flatnonzero(keep), note=note,
        )
    return out


def _test_inputs(truth: Truth, data):
    """The test inputs matching the truth (for the montage), or None and a note saying why not."""
    explicit = data is not None
    directory = Path(data) if explicit else truth.directory
    if directory is None:
        return None, "test inputs not given: the montage shows masks only"
    try:
        split = open_split(directory, TEST)
    except (KitError, OSError) as exc:
        if explicit:
            raise
        return None, f"no test inputs found in {directory}: the montage shows masks only"
    if split.x is None or len(split) != len(truth) or not np.array_equal(split.case_id, truth.case_id):
        message = f"the test inputs in {directory} do not match the truth (slice count or case ids)"
        if explicit:
            raise LayoutError(message, path=directory)
        return None, message + ": the montage shows masks only"
    return split.x, None
