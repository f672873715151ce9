"""Segmentation scores, computed exactly from per-slice counts.

True positives, false positives and false negatives are counted once per
slice (:func:`confusion_counts`); every score follows from those counts
(:func:`scores_from_counts`), so the leaderboard can cache three small integer
arrays per submission and resample cases without touching a mask again.
HD95, the lesion-wise Dice and HD95 and NSD need the masks themselves
(:data:`~grader.score_types.MASK_SCORES`, :func:`mask_scores_per_slice`).

Conventions (from :mod:`data_spec.constants`, stated in ``data_spec/SPEC.md``):

* pixel F1 is pooled over every test pixel; ``F1_ALL_EMPTY`` (1.0) when truth
  and prediction are empty everywhere;
* per-slice Dice is ``DICE_BOTH_EMPTY`` (1.0) when both masks are empty and
  ``DICE_ONE_EMPTY`` (0.0) when exactly one is (BraTS 2023, Metrics Reloaded);
* per-slice HD95 is ``HD95_BOTH_EMPTY`` (0) when both are empty and
  ``HD95_ONE_EMPTY`` (the 240 x 240 diagonal, 339.41 pixels) when one is;
* lesion-wise Dice and HD95 follow BraTS 2023 in 2D (:mod:`grader.lesions`);
  NSD at ``NSD_TOLERANCE`` (1 pixel) is 1 when both are empty, 0 when one is.

Every score is a plain float, never NaN.
"""
from __future__ import annotations

import numpy as np

from data_spec.errors import BadArgumentError

from .confusion import as_masks, confusion_counts  # noqa: F401  (part of the metrics' public face)
from .hausdorff import hd95_per_slice, mean_hd95  # noqa: F401

from .score_types import (  # noqa: F401  (the score types are part of the metrics' public face)
    COUNT_SCORES,
    HD95,
    MASK_SCORES,
    NSD,
    SCORE_TYPES,
    LesionDice,
    LesionHD95,
    MaskScore,
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
    "HD95", "LesionDice", "LesionHD95", "NSD", "MaskScore", "SCORE_TYPES", "MASK_SCORES", "metric_names",
    "mask_scores_per_slice",
]



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


def metric_names(metrics) -> list:
    """Score names from ``"dice,nsd"`` or a list of names: known, in display order, each once.

    Raises
    ------
    BadArgumentError
        An unknown or empty name, or no name at all.

    Examples
    --------
    >>> metric_names("nsd, dice,lesion_dice,dice")
    ['dice', 'lesion_dice', 'nsd']
    """
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    asked = [str(m).strip() for m in metrics]
    known = [st.name for st in SCORE_TYPES]
    unknown = [m for m in asked if m not in known]
    if unknown or not asked:
        shown = ", ".join(repr(m[:40]) for m in unknown[:5]) or "nothing"
        raise BadArgumentError(f"unknown metric {shown}", expected="comma-separated names among " + ",".join(known))
    return [name for name in known if name in asked]


def mask_scores_per_slice(y_true, y_pred, names, *, progress=None) -> dict:
    """Per-slice values of the mask scores among ``names``, by name (float64 arrays (N,)).

    The lesion-wise Dice and HD95 share one pass over the components.
    ``progress(iterable, label=..., length=...)`` reports the HD95 loop.
    """
    wanted = [st for st in MASK_SCORES if st.name in names]
    if wanted:  # checked and made boolean once, not once per score (each passes boolean masks through)
        y_true, y_pred = as_masks(y_true, y_pred)
    out = {}
    if any(isinstance(st, (LesionDice, LesionHD95)) for st in wanted):
        from .lesions import lesion_scores_per_slice

        out["lesion_dice"], out["lesion_hd95"] = lesion_scores_per_slice(y_true, y_pred)
    for st in wanted:
        if st.name in out:
            continue
        out[st.name] = hd95_per_slice(y_true, y_pred, progress=progress) if isinstance(st, HD95) \
            else st.per_slice(y_true, y_pred)
    return {name: out[name] for name in names if name in out}


def score(y_true, y_pred, *, hd95: bool = False, metrics=None) -> dict:
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
    metrics : str or list of str, optional
        Only these scores (:func:`metric_names`, e.g. ``"dice,lesion_dice,nsd"``),
        plus ``hd95`` if ``hd95`` is true.

    Returns
    -------
    dict
        The keys of :func:`scores_from_counts` (or only those of ``metrics``, and
        ``n_slices``), plus ``hd95`` when asked.

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
    names = None if metrics is None else metric_names(metrics)
    y_pred = checked_prediction(y_pred, np.shape(y_true))
    out = scores_from_counts(*confusion_counts(y_true, y_pred))
    if names is not None:
        names = metric_names(names + ["hd95"] * hd95)
        out = {k: v for k, v in out.items() if k in names or k == "n_slices"}
    else:
        names = ["hd95"] * hd95
    by_name = {st.name: st for st in MASK_SCORES}
    for name, per_slice in mask_scores_per_slice(y_true, y_pred, names).items():
        out[name] = by_name[name].aggregate(per_slice)
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
