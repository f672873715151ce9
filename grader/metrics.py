"""Segmentation scores, computed exactly from per-slice counts.

True positives, false positives and false negatives are counted once per
slice (:func:`confusion_counts`); every score follows from those counts
(:func:`scores_from_counts`), so the leaderboard can cache three small integer
arrays per submission and resample cases without touching a mask again.
HD95 is the one score that needs the masks themselves (:func:`hd95_per_slice`).

Conventions (from :mod:`data_spec.constants`, stated in ``data_spec/SPEC.md``):

* pixel F1 is pooled over every test pixel; ``F1_ALL_EMPTY`` (1.0) when truth
  and prediction are empty everywhere;
* per-slice Dice is ``DICE_BOTH_EMPTY`` (1.0) when both masks are empty and
  ``DICE_ONE_EMPTY`` (0.0) when exactly one is (BraTS 2023, Metrics Reloaded);
* per-slice HD95 is ``HD95_BOTH_EMPTY`` (0) when both are empty and
  ``HD95_ONE_EMPTY`` (the 240 x 240 diagonal, 339.41 pixels) when one is.

Every score is a plain float, never NaN.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_spec.constants import HD95_BOTH_EMPTY, HD95_ONE_EMPTY, HD_PERCENTILE
from data_spec.errors import ArrayContractError

from .score_types import (  # noqa: F401  (the score types are part of the metrics' public face)
    COUNT_SCORES,
    HD95,
    SCORE_TYPES,
    DiceTumourSlices,
    EmptySlicesCorrect,
    MeanDice,
    PixelF1,
    Precision,
    Recall,
    ScoreType,
    check_counts,
    dice_per_slice,
)

__all__ = [
    "confusion_counts", "dice_per_slice", "scores_from_counts", "hd95_per_slice", "score",
    "ScoreType", "PixelF1", "MeanDice", "Precision", "Recall", "DiceTumourSlices", "EmptySlicesCorrect",
    "HD95", "SCORE_TYPES",
]

#: 4-connected structuring element: a surface pixel has a mask-free 4-neighbour (MedPy's connectivity=1).
_CROSS = ndimage.generate_binary_structure(2, 1)


def _as_masks(y_true, y_pred):
    """Both arrays as boolean (N, H, W) masks of the same shape (nonzero = tumour)."""
    out = []
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        arr = np.asarray(arr)
        if arr.ndim != 3:
            raise ArrayContractError(f"{name} has shape {arr.shape}", expected="(N, 240, 240)")
        if arr.dtype.kind not in "biu":
            raise ArrayContractError(
                f"{name} has dtype {arr.dtype}", expected="bool or integer 0/1 masks",
                hint="validate the submission first (grader.validate_array)",
            )
        out.append(arr if arr.dtype == np.bool_ else np.not_equal(arr, 0))
    if out[0].shape != out[1].shape:
        raise ArrayContractError(f"y_pred has shape {out[1].shape}", expected=f"the shape of y_true, {out[0].shape}")
    return out


def confusion_counts(y_true, y_pred):
    """Per-slice true positives, false positives and false negatives.

    Parameters
    ----------
    y_true, y_pred : array-like (N, H, W)
        0/1 masks of any integer or bool dtype (any nonzero value counts as tumour).

    Returns
    -------
    tp, fp, fn : ndarray of int64, shape (N,)
        Pixel counts per slice. True negatives follow as ``H * W - tp - fp - fn``.

    Raises
    ------
    ArrayContractError
        Arrays that are not 3-D, of a non-integer dtype, or of different shapes.
    """
    yt, yp = _as_masks(y_true, y_pred)
    n = len(yt)
    tp, n_true, n_pred = (np.empty(n, dtype=np.int64) for _ in range(3))
    # One slice at a time: count_nonzero without an axis is a fast popcount,
    # about 3x faster than count_nonzero(axis=...) on (29, 57600).
    for i in range(n):
        t, p = yt[i], yp[i]
        tp[i] = np.count_nonzero(t & p)
        n_true[i] = np.count_nonzero(t)
        n_pred[i] = np.count_nonzero(p)
    return tp, n_pred - tp, n_true - tp


def scores_from_counts(tp, fp, fn) -> dict:
    """Every count-based score (:data:`~grader.score_types.COUNT_SCORES`) from per-slice counts.

    Parameters
    ----------
    tp, fp, fn : array-like of int, shape (n_slices,) or (..., n_slices)
        Per-slice counts (:func:`confusion_counts`). Leading dimensions are a
        batch (e.g. bootstrap resamples of the cases): scores reduce over the
        last axis only.

    Returns
    -------
    dict
        One entry per score type, by its ``name`` (``f1``, ``dice``,
        ``precision``, ``recall``, ``dice_tumour_slices``,
        ``empty_slices_correct``; each class in :mod:`grader.score_types`
        states its formula and edge cases), plus ``n_slices`` (int). Plain
        Python floats for 1-D counts, float64 arrays of the batch shape
        otherwise. Never NaN. With zero slices every score is its all-empty value.

    Examples
    --------
    >>> s = scores_from_counts([30, 0], [10, 0], [10, 0])
    >>> round(s["f1"], 3), round(s["dice"], 3), s["n_slices"]
    (0.75, 0.875, 2)
    """
    tp, fp, fn = check_counts(tp, fp, fn)
    out = {st.name: st.from_counts(tp, fp, fn) for st in COUNT_SCORES}
    out["n_slices"] = int(tp.shape[-1])
    return out


def _surface(mask):
    """Pixels of ``mask`` with a 4-neighbour outside it (the image edge counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def _hd95_slice(t, p) -> float:
    """HD95 of two non-empty 2-D masks, cropped to their joint bounding box plus a 1-pixel margin."""
    both = t | p
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, both.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, both.shape[1])
    # The margin keeps every surface pixel of the crop a surface pixel of the image
    # (a crop edge is either empty margin or the image edge); distances are unchanged.
    t, p = t[r0:r1, c0:c1], p[r0:r1, c0:c1]
    st, sp = _surface(t), _surface(p)
    pred_to_truth = ndimage.distance_transform_edt(~st)[sp]
    truth_to_pred = ndimage.distance_transform_edt(~sp)[st]
    return float(max(np.percentile(pred_to_truth, HD_PERCENTILE), np.percentile(truth_to_pred, HD_PERCENTILE)))


def hd95_per_slice(y_true, y_pred, *, progress=None) -> np.ndarray:
    """95th-percentile Hausdorff distance of each slice, in pixels.

    The surface of a mask is its pixels that have a 4-neighbour outside the mask
    (mask minus its erosion by a cross; the image edge counts as outside). For
    each slice, the Euclidean distance (1-pixel spacing) from every predicted
    surface pixel to the nearest true surface pixel, and back, gives two sets;
    HD95 is the larger of their two 95th percentiles (numpy's linear
    interpolation). This is the "larger of the two directed 95th percentiles"
    rule of BraTS 2023's ``compute_robust_hausdorff``. MedPy's ``hd95`` and the
    current official BraTS evaluation (panoptica) instead take the 95th
    percentile of the two sets pooled, which can differ either way: for truth
    {(10, 10), (20, 20)} and prediction {(10, 10), (20, 21)} the kit gives
    0.95 and MedPy 1.0.

    Edge cases: ``HD95_BOTH_EMPTY`` (0.0) when both masks are empty;
    ``HD95_ONE_EMPTY`` (the 240 x 240 diagonal, 339.41) when exactly one is.

    Parameters
    ----------
    y_true, y_pred : array-like (N, H, W)
        0/1 masks (any nonzero value counts as tumour).
    progress : callable, optional
        ``progress(iterable, label=..., length=...)``, as in :mod:`plumbing.progress`.

    Returns
    -------
    ndarray of float64, shape (N,)
    """
    yt, yp = _as_masks(y_true, y_pred)
    out = np.empty(len(yt), dtype=np.float64)
    slices = range(len(yt))
    if progress is not None:
        slices = progress(slices, label="HD95", length=len(yt))
    for i in slices:
        t, p = yt[i], yp[i]
        has_t, has_p = bool(t.any()), bool(p.any())
        if not has_t and not has_p:
            out[i] = HD95_BOTH_EMPTY
        elif has_t != has_p:
            out[i] = HD95_ONE_EMPTY
        else:
            out[i] = _hd95_slice(t, p)
    return out


def mean_hd95(per_slice) -> float:
    """Mean of per-slice HD95 values; ``HD95_BOTH_EMPTY`` when there are no slices."""
    per_slice = np.asarray(per_slice, dtype=float)
    return float(per_slice.mean()) if len(per_slice) else HD95_BOTH_EMPTY


def score(y_true, y_pred, *, hd95: bool = False) -> dict:
    """All scores of a prediction, as in ``brats-kit score --json``: the student's validation.

    ``y_pred`` is checked with the submission validator's own rules, so an
    array is accepted exactly when the same array saved as a ``.npy`` file
    would be: bool, any integer, or floats that are all exactly 0.0 or 1.0.

    Parameters
    ----------
    y_true, y_pred : array-like (N, H, W)
        0/1 masks (the truth of any integer or bool dtype).
    hd95 : bool
        Also compute ``hd95``, the mean over slices of :func:`hd95_per_slice`
        (``HD95_BOTH_EMPTY`` with zero slices).

    Returns
    -------
    dict
        The keys of :func:`scores_from_counts`, plus ``hd95`` when asked.

    Raises
    ------
    ArrayContractError
        ``y_pred`` is not a valid prediction: the grader's named error
        (``wrong_shape``, ``bad_dtype``, ``bad_values``, ``nan``), or
        :class:`~grader.errors.InvalidSubmissionError` holding several.

    Examples
    --------
    >>> import numpy as np
    >>> from grader import score
    >>> y_true = np.zeros((2, 240, 240), dtype=np.uint8); y_true[0, 100:120, 100:120] = 1
    >>> y_pred = np.zeros((2, 240, 240)); y_pred[0, 100:120, 105:125] = 1   # float 0/1 is accepted
    >>> s = score(y_true, y_pred)
    >>> round(s["f1"], 3), round(s["dice"], 3)
    (0.75, 0.875)
    >>> score(y_true, 255 * y_pred)
    Traceback (most recent call last):
    ...
    grader.errors.InvalidSubmissionError: invalid submission (2 problems: bad_dtype, bad_values)...
    """
    y_pred = checked_prediction(y_pred, np.shape(y_true))
    out = scores_from_counts(*confusion_counts(y_true, y_pred))
    if hd95:
        out["hd95"] = mean_hd95(hd95_per_slice(y_true, y_pred))
    return out


def checked_prediction(y_pred, shape) -> np.ndarray:
    """``y_pred`` as a uint8 0/1 array of ``shape``, or the validator's named error(s).

    The dtype and value rules are those of a submission file (:mod:`grader.checks`).
    """
    from .checks import as_mask, dtype_errors, value_errors
    from .errors import InvalidSubmissionError, WrongShapeError

    arr = np.asarray(y_pred)
    if arr.shape != tuple(shape):
        raise WrongShapeError(f"y_pred has shape {arr.shape}", expected=f"the shape of y_true, {tuple(shape)}")
    errors = dtype_errors(arr.dtype)
    if not errors:
        errors = value_errors(arr)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InvalidSubmissionError(errors)
    return as_mask(arr)
