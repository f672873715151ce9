"""The 95th-percentile Hausdorff distance, per slice: the one score that needs the masks themselves."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_spec.constants import HD95_BOTH_EMPTY, HD95_ONE_EMPTY, HD_PERCENTILE

from .confusion import as_masks

#: 4-connected structuring element: a surface pixel has a mask-free 4-neighbour (MedPy's connectivity=1).
_CROSS = ndimage.generate_binary_structure(2, 1)


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
    yt, yp = as_masks(y_true, y_pred)
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
