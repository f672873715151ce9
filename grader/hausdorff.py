"""The 95th-percentile Hausdorff distance, per slice (surfaces and distances: :mod:`grader.surface`)."""
from __future__ import annotations

import numpy as np

from data_spec.constants import HD95_BOTH_EMPTY, HD95_ONE_EMPTY, HD_PERCENTILE

from .confusion import as_masks
from .surface import empty_case, surface_distances


def hd95_slice(t, p) -> float:
    """HD95 of two 2-D boolean masks (see :func:`hd95_per_slice` for the rule and the edge cases).

    Examples
    --------
    >>> t = np.zeros((30, 30), dtype=bool); t[10:20, 10:20] = True
    >>> hd95_slice(t, np.roll(t, 2, axis=0)), hd95_slice(t, np.zeros_like(t)) == HD95_ONE_EMPTY
    (2.0, True)
    """
    empty = empty_case(t, p, both=HD95_BOTH_EMPTY, one=HD95_ONE_EMPTY)
    if empty is not None:
        return empty
    return larger_percentile(*surface_distances(t, p))


def larger_percentile(a, b, q: float = HD_PERCENTILE) -> float:
    """``max(np.percentile(a, q), np.percentile(b, q))`` of two non-empty arrays, the same float.

    The second percentile is taken only when it could be the larger: a
    percentile never exceeds its array's maximum (numpy interpolates between
    two of its values), so when ``b``'s maximum is at most ``a``'s percentile
    it cannot win. A slice's two directions often stand so (a prediction on
    the truth: every distance 0), and each ``np.percentile`` costs about
    25 us, more than the distances of a small lesion.

    Examples
    --------
    >>> larger_percentile(np.array([0.0, 1.0, 2.0, 10.0]), np.array([1.0, 1.0]))
    8.799999999999997
    >>> larger_percentile(np.array([1.0]), np.array([0.0, 3.0]))
    2.8499999999999996
    """
    if a.max() < b.max():
        a, b = b, a
    first = np.percentile(a, q)
    if b.max() <= first:
        return float(first)
    return float(max(first, np.percentile(b, q)))


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
    0.95 and MedPy 1.0; on a real slice MedPy's can also be the larger
    (kit 50.9677, MedPy 51.0882), as the interpolation falls between other
    points of the pooled set.

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
        out[i] = hd95_slice(yt[i], yp[i])
    return out


def mean_hd95(per_slice) -> float:
    """Mean of per-slice HD95 values; ``HD95_BOTH_EMPTY`` when there are no slices."""
    per_slice = np.asarray(per_slice, dtype=float)
    return float(per_slice.mean()) if len(per_slice) else HD95_BOTH_EMPTY
