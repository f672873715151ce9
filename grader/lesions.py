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
#: 8-connectivity of components (the dilation's cross is :func:`_cross_dilation`'s four shifts).
_EIGHT = np.ones((3, 3), dtype=bool)


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
    if not t.size:  # both empty
        return _NOTHING
    pred_cc, n_pred = ndimage.label(p, structure=_EIGHT)
    window, zones, n_zones = _zones(t, dilation)
    # Zone k, the dilation of lesion k, is one component of the dilated truth (a pixel's dilation is
    # connected to it, and the dilation of a union is the union of the dilations): each predicted
    # component it touches is a (zone, component) pair, all found in one pass over the window.
    tw, cc_w = t[window], pred_cc[window]
    touch = zones.astype(bool) & (cc_w != 0)
    pairs = np.unique(zones[touch].astype(np.int64) * (n_pred + 1) + cc_w[touch])
    pair_zone, pair_cc = np.divmod(pairs, n_pred + 1)
    sizes = np.bincount(zones[tw], minlength=n_zones + 1)
    dice, hd95 = [], []
    for k in range(1, n_zones + 1):
        if sizes[k] <= size_threshold:
            continue
        hit = pair_cc[pair_zone == k]
        if not len(hit):
            dice.append(0.0)
            hd95.append(HD95_ONE_EMPTY)
            continue
        lesion_w = tw & (zones == k)
        pred = pred_cc == hit[0] if len(hit) == 1 else np.isin(pred_cc, hit)
        # Every predicted pixel on the lesion lies in its zone, so in a matched component.
        overlap = np.count_nonzero(lesion_w & p[window])
        dice.append(2.0 * overlap / (sizes[k] + np.count_nonzero(pred)))
        lesion = np.zeros_like(t)
        lesion[window] = lesion_w
        hd95.append(hd95_slice(lesion, pred))
    n_false = n_pred - len(np.unique(pair_cc))
    denominator = len(dice) + n_false
    if denominator == 0:
        return _NOTHING
    return float(sum(dice) / denominator), float((sum(hd95) + n_false * HD95_ONE_EMPTY) / denominator)


def _zones(t, dilation: int):
    """The truth's window (its bounding box widened by ``dilation`` + 1) and its dilated components there.

    Returns ``(window, zones, n)``: ``zones`` labels 1..n the 8-connected components of the truth
    dilated ``dilation`` times by a cross, on ``t[window]``; truth lesion k is ``t[window] & (zones == k)``.
    """
    from scipy import ndimage

    if not t.any():
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), dtype=np.int32), 0
    rows, cols = np.flatnonzero(t.any(axis=1)), np.flatnonzero(t.any(axis=0))
    window = (slice(max(rows[0] - dilation - 1, 0), rows[-1] + dilation + 2),
              slice(max(cols[0] - dilation - 1, 0), cols[-1] + dilation + 2))
    zones, n = ndimage.label(_cross_dilation(t[window], dilation), structure=_EIGHT)
    return window, zones, n


def _cross_dilation(mask, iterations: int):
    """``mask`` dilated ``iterations`` times by a cross, outside the array counting as empty.

    Four array shifts an iteration: scipy's ``binary_dilation`` gives the same pixels, at 3-4 times
    the cost on a lesion's window.

    Examples
    --------
    >>> m = np.zeros((5, 5), dtype=bool); m[2, 2] = True
    >>> _cross_dilation(m, 2).astype(int).tolist()
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    """
    for _ in range(iterations):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


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
