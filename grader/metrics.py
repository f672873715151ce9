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

from data_spec.constants import (
    DICE_BOTH_EMPTY,
    DICE_ONE_EMPTY,
    F1_ALL_EMPTY,
    HD95_BOTH_EMPTY,
    HD95_ONE_EMPTY,
    HD_PERCENTILE,
)
from data_spec.errors import ArrayContractError

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


def _counts(tp, fp, fn):
    arrays = [np.asarray(a) for a in (tp, fp, fn)]
    for name, a in zip(("tp", "fp", "fn"), arrays):
        if a.ndim < 1 or a.dtype.kind not in "iu":
            raise ArrayContractError(
                f"{name} has shape {a.shape} and dtype {a.dtype}", expected="integer counts (..., n_slices)"
            )
        if a.size and a.min() < 0:
            raise ArrayContractError(f"{name} holds negative counts", expected="counts >= 0")
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
        raise ArrayContractError(
            f"tp, fp and fn have shapes {arrays[0].shape}, {arrays[1].shape}, {arrays[2].shape}", expected="one shape"
        )
    return [a.astype(np.int64, copy=False) for a in arrays]


def _ratio(num, den, *, when_zero):
    """``num / den`` as float64, ``when_zero`` (scalar or array) where ``den == 0``; never warns."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.array(np.broadcast_to(when_zero, num.shape), dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def dice_per_slice(tp, fp, fn) -> np.ndarray:
    """Dice of each slice, ``2 tp / (2 tp + fp + fn)``.

    Edge cases: ``DICE_BOTH_EMPTY`` (1.0) when truth and prediction are both
    empty (``tp + fp + fn == 0``), ``DICE_ONE_EMPTY`` (0.0) when exactly one is.

    Parameters
    ----------
    tp, fp, fn : array-like of int, shape (..., n_slices)

    Returns
    -------
    ndarray of float64, same shape
    """
    tp, fp, fn = _counts(tp, fp, fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn, when_zero=DICE_BOTH_EMPTY)
    truth_empty, pred_empty = (tp + fn) == 0, (tp + fp) == 0
    dice[truth_empty != pred_empty] = DICE_ONE_EMPTY
    return dice


def scores_from_counts(tp, fp, fn) -> dict:
    """Every count-based score from per-slice counts.

    Parameters
    ----------
    tp, fp, fn : array-like of int, shape (n_slices,) or (..., n_slices)
        Per-slice counts (:func:`confusion_counts`). Leading dimensions are a
        batch (e.g. bootstrap resamples of the cases): scores reduce over the
        last axis only.

    Returns
    -------
    dict
        ``f1``
            Pixel F1 pooled over all slices, ``2 TP / (2 TP + FP + FN)`` on the
            summed counts (scikit-learn's binary ``f1_score`` on the flattened
            masks). ``F1_ALL_EMPTY`` (1.0) when ``TP + FP + FN == 0``.
        ``dice``
            Mean over slices of :func:`dice_per_slice` (both empty 1, one empty 0).
        ``precision``, ``recall``
            Pooled ``TP / (TP + FP)`` and ``TP / (TP + FN)``. When the
            denominator is 0 they are 1.0 if truth and prediction are empty
            everywhere (as F1), else 0.0: an empty prediction, or a prediction
            on a tumour-free test set, never looks perfect.
        ``dice_tumour_slices``
            Mean Dice over the slices whose truth has tumour; 1.0 when there is
            no such slice (nothing to find, nothing lost).
        ``empty_slices_correct``
            Share of tumour-free truth slices predicted empty; 1.0 when every
            slice has tumour.
        ``n_slices``
            Number of slices (int).

        Plain Python floats for 1-D counts, float64 arrays of the batch shape
        otherwise. Never NaN. With zero slices every score is its all-empty value.
    """
    tp, fp, fn = _counts(tp, fp, fn)
    TP, FP, FN = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    all_empty = (TP + FP + FN) == 0
    dice = dice_per_slice(tp, fp, fn)
    n = tp.shape[-1]
    tumour = (tp + fn) > 0
    pred_empty = (tp + fp) == 0
    out = {
        "f1": _ratio(2 * TP, 2 * TP + FP + FN, when_zero=F1_ALL_EMPTY),
        "dice": _ratio(dice.sum(-1), n, when_zero=DICE_BOTH_EMPTY),
        "precision": _ratio(TP, TP + FP, when_zero=np.where(all_empty, F1_ALL_EMPTY, 0.0)),
        "recall": _ratio(TP, TP + FN, when_zero=np.where(all_empty, F1_ALL_EMPTY, 0.0)),
        "dice_tumour_slices": _ratio((dice * tumour).sum(-1), tumour.sum(-1), when_zero=DICE_BOTH_EMPTY),
        "empty_slices_correct": _ratio((~tumour & pred_empty).sum(-1), (~tumour).sum(-1), when_zero=1.0),
    }
    if tp.ndim == 1:
        out = {key: float(value) for key, value in out.items()}
    out["n_slices"] = int(n)
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
    interpolation). This is the symmetric "max of the directed percentiles"
    convention (BraTS, Metrics Reloaded); MedPy's ``hd95`` instead takes the
    95th percentile of the two sets pooled, which lies between the two
    directed percentiles and so never exceeds this value.

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
    """All scores of a prediction, as in ``brats-kit score --json``.

    Parameters
    ----------
    y_true, y_pred : array-like (N, 240, 240)
        0/1 masks.
    hd95 : bool
        Also compute ``hd95``, the mean over slices of :func:`hd95_per_slice`
        (``HD95_BOTH_EMPTY`` with zero slices).

    Returns
    -------
    dict
        The keys of :func:`scores_from_counts`, plus ``hd95`` when asked.
    """
    out = scores_from_counts(*confusion_counts(y_true, y_pred))
    if hd95:
        out["hd95"] = mean_hd95(hd95_per_slice(y_true, y_pred))
    return out


class ScoreType:
    """One score, in the style of RAMP's ``score_types``.

    Attributes
    ----------
    name : str
        Key in :func:`score`'s result and in ``score --json``.
    title : str
        Human label.
    minimum, maximum : float
        Bounds of the score.
    precision : int
        Decimals to show.
    is_lower_the_better : bool
    """

    name = ""
    title = ""
    minimum = 0.0
    maximum = 1.0
    precision = 4
    is_lower_the_better = False

    @property
    def worst(self) -> float:
        return self.maximum if self.is_lower_the_better else self.minimum

    def from_counts(self, tp, fp, fn):
        """The score from per-slice counts (float, or an array for batched counts)."""
        return scores_from_counts(tp, fp, fn)[self.name]

    def __call__(self, y_true, y_pred) -> float:
        return float(self.from_counts(*confusion_counts(y_true, y_pred)))

    def format(self, value) -> str:
        return f"{value:.{self.precision}f}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PixelF1(ScoreType):
    """Pixel F1 pooled over all test pixels (the course's score)."""

    name, title = "f1", "pixel F1"


class MeanDice(ScoreType):
    """Mean over slices of per-slice Dice (both empty 1, one empty 0)."""

    name, title = "dice", "mean Dice"


class Precision(ScoreType):
    """Pooled precision: the share of predicted tumour pixels that are tumour."""

    name, title = "precision", "precision"


class Recall(ScoreType):
    """Pooled recall: the share of tumour pixels that are predicted."""

    name, title = "recall", "recall"


class DiceTumourSlices(ScoreType):
    """Mean Dice over the slices whose truth has tumour."""

    name, title = "dice_tumour_slices", "Dice, tumour slices"


class EmptySlicesCorrect(ScoreType):
    """Share of tumour-free slices predicted empty."""

    name, title = "empty_slices_correct", "empty slices predicted empty"


class HD95(ScoreType):
    """Mean over slices of the per-slice 95th-percentile Hausdorff distance, in pixels."""

    name, title = "hd95", "HD95 (pixels)"
    maximum = HD95_ONE_EMPTY
    precision = 2
    is_lower_the_better = True

    def from_counts(self, tp, fp, fn):
        raise TypeError("HD95 needs the masks, not counts: call it on (y_true, y_pred)")

    def __call__(self, y_true, y_pred) -> float:
        return score(y_true, y_pred, hd95=True)["hd95"]


#: Every score, in display order.
SCORE_TYPES = (PixelF1(), MeanDice(), Precision(), Recall(), DiceTumourSlices(), EmptySlicesCorrect(), HD95())
