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
#: 8-connectivity of components; the cross (4-neighbourhood) of the dilation.
_EIGHT = np.ones((3, 3), dtype=bool)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


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
    pred_cc, n_pred = ndimage.label(p, structure=_EIGHT)
    lesions, boxes = _merged_lesions(t, dilation)
    matched = np.zeros(n_pred + 1, dtype=bool)
    dice, hd95 = [], []
    for k, box in enumerate(boxes, start=1):
        # The lesion's dilation, on its own bounding box widened by `dilation` (not the whole slice).
        box = tuple(slice(max(b.start - dilation, 0), min(b.stop + dilation, n)) for b, n in zip(box, t.shape))
        lesion_box = lesions[box] == k
        zone = ndimage.binary_dilation(lesion_box, _CROSS, iterations=dilation) if dilation else lesion_box
        hit = np.unique(pred_cc[box][zone])
        hit = hit[hit != 0]
        matched[hit] = True
        size = np.count_nonzero(lesion_box)
        if size <= size_threshold:
            continue
        if not len(hit):
            dice.append(0.0)
            hd95.append(HD95_ONE_EMPTY)
            continue
        lesion = lesions == k
        pred = np.isin(pred_cc, hit)
        dice.append(2.0 * np.count_nonzero(lesion & pred) / (size + np.count_nonzero(pred)))
        hd95.append(hd95_slice(lesion, pred))
    n_false = n_pred - int(matched[1:].sum())
    denominator = len(dice) + n_false
    if denominator == 0:
        return _NOTHING
    return float(sum(dice) / denominator), float((sum(hd95) + n_false * HD95_ONE_EMPTY) / denominator)


def _merged_lesions(t, dilation: int):
    """Truth lesions labelled 1..n, components merged by their shared dilated component, and their boxes."""
    from scipy import ndimage

    if not t.any():
        return np.zeros(t.shape, dtype=np.int32), []
    # The truth's dilation, on the truth's bounding box widened by `dilation` + 1 pixels.
    window, _ = crop_to_both(t, t, margin=dilation + 1)
    rows, cols = np.flatnonzero(t.any(axis=1)), np.flatnonzero(t.any(axis=0))
    r0, c0 = max(rows[0] - dilation - 1, 0), max(cols[0] - dilation - 1, 0)
    grown = ndimage.binary_dilation(window, _CROSS, iterations=dilation) if dilation else window
    zones, _ = ndimage.label(grown, structure=_EIGHT)
    merged = np.where(window, zones, 0)
    lesions = np.zeros(t.shape, dtype=np.int32)
    lesions[r0:r0 + window.shape[0], c0:c0 + window.shape[1]] = merged
    boxes = [(slice(r.start + r0, r.stop + r0), slice(c.start + c0, c.stop + c0))
             for r, c in ndimage.find_objects(merged)]
    return lesions, boxes


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
