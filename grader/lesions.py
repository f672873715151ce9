"""Lesion-wise Dice and HD95, as BraTS 2023 defines them (rachitsaluja/BraTS-2023-Metrics), on 2-D slices.

BraTS 2023's rules, per slice here (per 3-D volume there):

1. Truth and prediction are split into connected components (8-connectivity;
   BraTS: 26 in 3-D, the same "full" connectivity).
2. Truth components that fall in one component of the truth dilated
   ``dilation`` times by a cross are merged into one lesion (BraTS: 3
   iterations of the 3-D 18-neighbourhood for gliomas).
3. Each truth lesion is matched to the union of the predicted components that
   touch its own dilation; Dice and HD95 are computed on the undilated lesion
   against that union. A lesion with no match scores Dice 0 and the worst HD95.
4. Truth lesions of at most ``size_threshold`` pixels are left out (BraTS: 50
   voxels); predicted components touching them are still matched, not false.
5. Every predicted component that touches no dilated truth lesion is a false
   positive: it adds one to the denominator, with Dice 0 and the worst HD95.
6. The slice's score is the sum over kept lesions divided by (kept lesions +
   false positives). With nothing to count (no kept lesion, no false
   positive), Dice is 1 and HD95 is 0 (BraTS replaces its 0/0 = NaN so).

The worst HD95 is ``HD95_ONE_EMPTY``, the image diagonal (339.41 pixels;
BraTS: 374, about the diagonal of its 240 x 240 x 155 volume). A submission's
score is the mean over slices, as for Dice.
"""
from __future__ import annotations

import numpy as np

from data_spec.constants import HD95_ONE_EMPTY, LESION_DILATION, LESION_SIZE_THRESHOLD
from data_spec.errors import BadArgumentError

from .confusion import as_masks
from .hausdorff import hd95_slice
from .surface import crop_to_both

__all__ = ["lesion_scores_slice", "lesion_scores_per_slice"]

#: Nothing to count in a slice (BraTS's NaN replaced): Dice 1, HD95 0.
_NOTHING = (1.0, 0.0)


def _check(dilation, size_threshold):
    for name, value in (("dilation", dilation), ("size_threshold", size_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise BadArgumentError(f"{name} is {value!r}", expected="an integer >= 0 (pixels)")


def lesion_scores_slice(t, p, *, dilation: int = LESION_DILATION, size_threshold: int = LESION_SIZE_THRESHOLD):
    """Lesion-wise Dice and HD95 of one 2-D slice (the rules are in the module's docstring).

    Parameters
    ----------
    t, p : array-like (H, W)
        Truth and prediction, nonzero = tumour.
    dilation : int
        Iterations of the cross dilation (pixels), ``LESION_DILATION`` (3) by default.
    size_threshold : int
        Truth lesions of at most this many pixels are left out, ``LESION_SIZE_THRESHOLD`` (16).

    Returns
    -------
    dice, hd95 : float

    Examples
    --------
    >>> t = np.zeros((60, 60), dtype=bool); t[10:20, 10:20] = True
    >>> lesion_scores_slice(t, t)
    (1.0, 0.0)
    >>> p = t.copy(); p[40:50, 40:50] = True          # the lesion, and a false positive far away
    >>> lesion_scores_slice(t, p)
    (0.5, 169.7056274847714)
    """
    _check(dilation, size_threshold)
    from scipy import ndimage  # lazy: the CLI's startup never pays for it

    t, p = np.asarray(t, dtype=bool), np.asarray(p, dtype=bool)
    # Everything happens within `dilation` pixels of a mask: the crop changes no component or zone.
    t, p = crop_to_both(t, p, margin=dilation + 1)
    if not t.any() and not p.any():
        return _NOTHING
    eight, cross = np.ones((3, 3), dtype=bool), ndimage.generate_binary_structure(2, 1)
    pred_cc, n_pred = ndimage.label(p, structure=eight)
    if dilation:
        zones, n_lesions = ndimage.label(ndimage.binary_dilation(t, cross, iterations=dilation), structure=eight)
    else:
        zones, n_lesions = ndimage.label(t, structure=eight)
    lesions = np.where(t, zones, 0)  # truth components merged by their shared dilated component
    matched = np.zeros(n_pred + 1, dtype=bool)
    dice, hd95 = [], []
    for k in range(1, n_lesions + 1):
        lesion = lesions == k
        zone = ndimage.binary_dilation(lesion, cross, iterations=dilation) if dilation else lesion
        hit = np.unique(pred_cc[zone])
        hit = hit[hit != 0]
        matched[hit] = True
        size = np.count_nonzero(lesion)
        if size <= size_threshold:
            continue
        if not len(hit):
            dice.append(0.0)
            hd95.append(HD95_ONE_EMPTY)
            continue
        pred = np.isin(pred_cc, hit)
        dice.append(2.0 * np.count_nonzero(lesion & pred) / (size + np.count_nonzero(pred)))
        hd95.append(hd95_slice(lesion, pred))
    n_false = n_pred - int(matched[1:].sum())
    denominator = len(dice) + n_false
    if denominator == 0:
        return _NOTHING
    return float(sum(dice) / denominator), float((sum(hd95) + n_false * HD95_ONE_EMPTY) / denominator)


def lesion_scores_per_slice(y_true, y_pred, *, dilation: int = LESION_DILATION,
                            size_threshold: int = LESION_SIZE_THRESHOLD):
    """Lesion-wise Dice and HD95 of each slice of two (N, H, W) masks.

    Returns
    -------
    dice, hd95 : ndarray of float64, shape (N,)

    Examples
    --------
    >>> y = np.zeros((2, 40, 40), dtype=np.uint8); y[0, 5:15, 5:15] = 1
    >>> [a.tolist() for a in lesion_scores_per_slice(y, y)]
    [[1.0, 1.0], [0.0, 0.0]]
    """
    _check(dilation, size_threshold)
    yt, yp = as_masks(y_true, y_pred)
    out = np.empty((2, len(yt)), dtype=np.float64)
    for i in range(len(yt)):
        out[:, i] = lesion_scores_slice(yt[i], yp[i], dilation=dilation, size_threshold=size_threshold)
    return out[0], out[1]
