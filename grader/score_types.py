"""Score types, in the style of RAMP's ``rampwf/score_types``: each score owns its formula and bounds.

A score type knows its ``name`` (the key in ``score --json``), its ``title``,
its bounds (``minimum``, ``maximum``), the ``worst`` value it can take, how
many decimals to show (``precision``) and whether lower is better. Count-based
scores compute themselves from per-slice counts ``tp, fp, fn`` of shape
``(..., n_slices)`` (leading axes are a batch, e.g. bootstrap resamples) and
return a float for 1-D counts, a float64 array of the batch shape otherwise;
never NaN. :func:`grader.metrics.scores_from_counts` loops over
:data:`COUNT_SCORES`.

Conventions (:mod:`data_spec.constants`, ``data_spec/SPEC.md``): pixel F1 is
``F1_ALL_EMPTY`` (1.0) when truth and prediction are empty everywhere;
per-slice Dice is ``DICE_BOTH_EMPTY`` (1.0) when both masks are empty and
``DICE_ONE_EMPTY`` (0.0) when exactly one is.
"""
from __future__ import annotations

import numpy as np

from data_spec.constants import (
    DICE_BOTH_EMPTY, DICE_ONE_EMPTY, F1_ALL_EMPTY, HD95_BOTH_EMPTY, HD95_ONE_EMPTY, NSD_BOTH_EMPTY, NSD_TOLERANCE,
)
from data_spec.errors import ArrayContractError

from .confusion import confusion_counts
from .hausdorff import hd95_per_slice, mean_hd95

__all__ = [
    "ScoreType", "PixelF1", "MeanDice", "Precision", "Recall", "DiceTumourSlices", "EmptySlicesCorrect",
    "HD95", "MaskScore", "LesionDice", "LesionHD95", "NSD", "SCORE_TYPES", "COUNT_SCORES", "MASK_SCORES",
    "RANKING", "check_counts", "ratio", "dice_per_slice",
]


def check_counts(tp, fp, fn) -> list:
    """``tp, fp, fn`` as int64 arrays of one shape ``(..., n_slices)``; ArrayContractError otherwise."""
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


def ratio(num, den, *, when_zero):
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

    Examples
    --------
    >>> dice_per_slice([5, 0, 0], [5, 0, 3], [0, 0, 0]).tolist()
    [0.6666666666666666, 1.0, 0.0]
    """
    tp, fp, fn = check_counts(tp, fp, fn)
    dice = ratio(2 * tp, 2 * tp + fp + fn, when_zero=DICE_BOTH_EMPTY)
    truth_empty, pred_empty = (tp + fn) == 0, (tp + fp) == 0
    dice[truth_empty != pred_empty] = DICE_ONE_EMPTY
    return dice


class ScoreType:
    """One score: its name, title, bounds, precision and formula.

    Attributes
    ----------
    name : str
        Key in :func:`grader.score`'s result and in ``score --json``.
    title : str
        Human label.
    minimum, maximum : float
        Bounds of the score.
    precision : int
        Decimals to show.
    is_lower_the_better : bool
    needs_masks : bool
        True for scores that cannot be computed from counts (HD95).
    """

    name = ""
    title = ""
    minimum = 0.0
    maximum = 1.0
    precision = 4
    is_lower_the_better = False
    needs_masks = False

    @property
    def worst(self) -> float:
        """The worst value the score can take."""
        return self.maximum if self.is_lower_the_better else self.minimum

    def from_counts(self, tp, fp, fn):
        """The score from per-slice counts (float for 1-D counts, an array for batched counts)."""
        tp, fp, fn = check_counts(tp, fp, fn)
        value = self._formula(tp, fp, fn)
        return float(value) if tp.ndim == 1 else value

    def _formula(self, tp, fp, fn):  # pragma: no cover - each subclass owns its formula
        raise NotImplementedError

    def __call__(self, y_true, y_pred) -> float:
        return self.from_counts(*confusion_counts(y_true, y_pred))

    def format(self, value) -> str:
        return f"{value:.{self.precision}f}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _pooled(tp, fp, fn):
    TP, FP, FN = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    return TP, FP, FN, (TP + FP + FN) == 0


class PixelF1(ScoreType):
    """Pixel F1 pooled over all test pixels (the course's score).

    ``2 TP / (2 TP + FP + FN)`` on the summed counts (scikit-learn's binary
    ``f1_score`` on the flattened masks); ``F1_ALL_EMPTY`` (1.0) when
    ``TP + FP + FN == 0``.
    """

    name, title = "f1", "pixel F1"

    def _formula(self, tp, fp, fn):
        TP, FP, FN, _ = _pooled(tp, fp, fn)
        return ratio(2 * TP, 2 * TP + FP + FN, when_zero=F1_ALL_EMPTY)


class MeanDice(ScoreType):
    """Mean over slices of :func:`dice_per_slice` (both empty 1, one empty 0); 1.0 with no slice."""

    name, title = "dice", "mean Dice"

    def _formula(self, tp, fp, fn):
        return ratio(dice_per_slice(tp, fp, fn).sum(-1), tp.shape[-1], when_zero=DICE_BOTH_EMPTY)


class Precision(ScoreType):
    """Pooled ``TP / (TP + FP)``: the share of predicted tumour pixels that are tumour.

    When ``TP + FP == 0``: 1.0 if truth and prediction are empty everywhere (as
    F1), else 0.0, so an empty prediction never looks perfect.
    """

    name, title = "precision", "precision"

    def _formula(self, tp, fp, fn):
        TP, FP, _, all_empty = _pooled(tp, fp, fn)
        return ratio(TP, TP + FP, when_zero=np.where(all_empty, F1_ALL_EMPTY, 0.0))


class Recall(ScoreType):
    """Pooled ``TP / (TP + FN)``: the share of tumour pixels that are predicted.

    When ``TP + FN == 0``: 1.0 if truth and prediction are empty everywhere,
    else 0.0 (a prediction on a tumour-free test set never looks perfect).
    """

    name, title = "recall", "recall"

    def _formula(self, tp, fp, fn):
        TP, _, FN, all_empty = _pooled(tp, fp, fn)
        return ratio(TP, TP + FN, when_zero=np.where(all_empty, F1_ALL_EMPTY, 0.0))


class DiceTumourSlices(ScoreType):
    """Mean Dice over the slices whose truth has tumour; 1.0 when there is none (nothing to find)."""

    name, title = "dice_tumour_slices", "Dice, tumour slices"

    def _formula(self, tp, fp, fn):
        tumour = (tp + fn) > 0
        return ratio((dice_per_slice(tp, fp, fn) * tumour).sum(-1), tumour.sum(-1), when_zero=DICE_BOTH_EMPTY)


class EmptySlicesCorrect(ScoreType):
    """Share of tumour-free truth slices predicted empty; 1.0 when every slice has tumour."""

    name, title = "empty_slices_correct", "empty slices predicted empty"

    def _formula(self, tp, fp, fn):
        tumour, pred_empty = (tp + fn) > 0, (tp + fp) == 0
        return ratio((~tumour & pred_empty).sum(-1), (~tumour).sum(-1), when_zero=1.0)


class MaskScore(ScoreType):
    """A score that needs the masks themselves: a value per slice, averaged over the slices.

    Subclasses own :meth:`per_slice`; ``empty`` is the score of zero slices
    (the value of a slice where both masks are empty).
    """

    needs_masks = True
    empty = DICE_BOTH_EMPTY

    def from_counts(self, tp, fp, fn):
        raise TypeError(f"{self.title} needs the masks, not counts: call it on (y_true, y_pred)")

    def per_slice(self, y_true, y_pred) -> np.ndarray:  # pragma: no cover - each subclass owns its formula
        raise NotImplementedError

    def aggregate(self, per_slice) -> float:
        """Mean of per-slice values; ``empty`` when there are no slices."""
        per_slice = np.asarray(per_slice, dtype=np.float64)
        return float(per_slice.mean()) if len(per_slice) else self.empty

    def __call__(self, y_true, y_pred) -> float:
        return self.aggregate(self.per_slice(y_true, y_pred))


class _Distance(MaskScore):
    """A distance in pixels: 0 at best, the image diagonal (``HD95_ONE_EMPTY``) at worst."""

    maximum = HD95_ONE_EMPTY
    precision = 2
    is_lower_the_better = True
    empty = HD95_BOTH_EMPTY


class HD95(_Distance):
    """Mean over slices of the per-slice 95th-percentile Hausdorff distance, in pixels.

    Needs the masks (:func:`grader.metrics.hd95_per_slice`), not counts.
    """

    name, title = "hd95", "HD95 (pixels)"

    def per_slice(self, y_true, y_pred) -> np.ndarray:
        return hd95_per_slice(y_true, y_pred)

    def aggregate(self, per_slice) -> float:
        return mean_hd95(per_slice)


class LesionDice(MaskScore):
    """Mean over slices of BraTS 2023's lesion-wise Dice (:mod:`grader.lesions`).

    A slice with no lesion to count and no false positive scores 1.
    """

    name, title = "lesion_dice", "lesion-wise Dice"

    def per_slice(self, y_true, y_pred) -> np.ndarray:
        from .lesions import lesion_scores_per_slice

        return lesion_scores_per_slice(y_true, y_pred)[0]


class LesionHD95(_Distance):
    """Mean over slices of BraTS 2023's lesion-wise HD95, in pixels (:mod:`grader.lesions`).

    A missed lesion or a false-positive component counts the image diagonal
    (``HD95_ONE_EMPTY``); a slice with nothing to count scores 0.
    """

    name, title = "lesion_hd95", "lesion-wise HD95 (pixels)"

    def per_slice(self, y_true, y_pred) -> np.ndarray:
        from .lesions import lesion_scores_per_slice

        return lesion_scores_per_slice(y_true, y_pred)[1]


class NSD(MaskScore):
    """Mean over slices of the normalised surface distance at tolerance ``tau`` pixels (:mod:`grader.surface`).

    Both masks empty: 1 (``NSD_BOTH_EMPTY``); exactly one empty: 0.
    """

    name, title = "nsd", "NSD, 1 px"
    empty = NSD_BOTH_EMPTY

    def __init__(self, tau: float = NSD_TOLERANCE):
        self.tau = float(tau)
        if self.tau != NSD_TOLERANCE:
            self.name, self.title = f"nsd_{self.tau:g}", f"NSD, {self.tau:g} px"

    def per_slice(self, y_true, y_pred) -> np.ndarray:
        from .surface import nsd_per_slice

        return nsd_per_slice(y_true, y_pred, self.tau)

    def __repr__(self) -> str:
        return f"NSD(tau={self.tau:g})"


#: Every score, in display order.
SCORE_TYPES = (
    PixelF1(), MeanDice(), Precision(), Recall(), DiceTumourSlices(), EmptySlicesCorrect(), HD95(),
    LesionDice(), LesionHD95(), NSD(),
)
#: The scores that follow from per-slice counts alone.
COUNT_SCORES = tuple(st for st in SCORE_TYPES if not st.needs_masks)
#: The scores that need the masks.
MASK_SCORES = tuple(st for st in SCORE_TYPES if st.needs_masks)
#: The official ranking score, declared once (RAMP's ``score_type`` of a problem): the leaderboard's
#: selection and ranking, the server's board and API, and the gradebook all read ``RANKING.name``
#: from a submission's scores and order by it (:mod:`grader.leaderboard.ranking`).
RANKING: ScoreType = next(st for st in SCORE_TYPES if isinstance(st, MeanDice))
