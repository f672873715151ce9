"""Surfaces of 2-D masks and the distances between them: the home of HD95's, NSD's and the lesions' geometry.

A mask's surface is its pixels that have a 4-neighbour outside the mask (the
mask minus its erosion by a cross; the image edge counts as outside), found
with four array shifts on the masks' joint bounding box. Distances are
Euclidean, in pixels (1-pixel spacing), from every surface pixel of one mask to
the nearest surface pixel of the other, over the surface points only (a few
hundred per slice, where a distance transform would visit all 57,600 pixels
twice): all pairs at once for small sets, a KD-tree
(:class:`scipy.spatial.cKDTree`) for larger ones (:func:`nearest_both`).

Surfaces are **pixels**, not surfels: DeepMind's ``surface-distance`` places
its surface elements between pixels (a 2 x 2 neighbourhood code) and weighs
each by its length; Metrics Reloaded, like the kit, counts border pixels.
"""
from __future__ import annotations

import numpy as np

from data_spec.constants import NSD_BOTH_EMPTY, NSD_ONE_EMPTY, NSD_TOLERANCE
from data_spec.errors import BadArgumentError

from .confusion import as_masks

__all__ = ["surface", "crop_to_both", "surface_distances", "nearest_both", "empty_case", "nsd_slice", "nsd_per_slice"]


def surface(mask) -> np.ndarray:
    """Pixels of a 2-D boolean ``mask`` with a 4-neighbour outside it (the image edge counts as outside).

    Examples
    --------
    >>> m = np.zeros((5, 5), dtype=bool); m[1:4, 1:4] = True
    >>> surface(m).astype(int)[1:4, 1:4].tolist()
    [[1, 1, 1], [1, 0, 1], [1, 1, 1]]
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)  # np.pad costs 10x more here
    padded[1:-1, 1:-1] = mask
    interior = (padded[:-2, 1:-1] & padded[2:, 1:-1]) & (padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~interior


def crop_to_both(t, p, margin: int = 1):
    """``t`` and ``p`` cropped to their joint bounding box plus ``margin`` pixels (clipped to the image).

    With a margin of at least 1, every surface pixel of a cropped mask is a
    surface pixel of the whole mask (the crop's edge is empty margin or the
    image's own edge), so surfaces and distances are unchanged.
    """
    both = t | p
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    if not len(rows):
        return t[:0, :0], p[:0, :0]
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, both.shape[0])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, both.shape[1])
    return t[r0:r1, c0:c1], p[r0:r1, c0:c1]


def surface_distances(t, p):
    """Distances between the surfaces of two non-empty 2-D boolean masks, in pixels.

    Returns
    -------
    pred_to_truth, truth_to_pred : ndarray of float64
        For each surface pixel of ``p``, the distance to the nearest surface
        pixel of ``t``; and back.

    Examples
    --------
    >>> t = np.zeros((8, 8), dtype=bool); t[2:4, 2:4] = True
    >>> p = np.zeros((8, 8), dtype=bool); p[2:4, 3:5] = True
    >>> [d.tolist() for d in surface_distances(t, p)]
    [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]]
    """
    t, p = crop_to_both(np.asarray(t, dtype=bool), np.asarray(p, dtype=bool))
    return nearest_both(np.argwhere(surface(p)), np.argwhere(surface(t)))


#: Up to this many point pairs, all pairwise distances at once beat two KD-trees (4x at 100 x 100 points).
_ALL_PAIRS = 40_000


def nearest_both(a, b):
    """For each point of ``a`` the distance to the nearest point of ``b``, and back (non-empty integer (n, 2) sets).

    Small sets compare all pairs in one int32 matrix (both directions from the
    same matrix); larger ones query a KD-tree each way. Both take the square
    root of the same exact integer, so the values are identical either way.

    Examples
    --------
    >>> [d.tolist() for d in nearest_both(np.array([[0, 0], [3, 4]]), np.array([[0, 1]]))]
    [[1.0, 4.242640687119285], [1.0]]
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) * len(b) > _ALL_PAIRS:
        from scipy.spatial import cKDTree  # lazy: the CLI's startup never pays for it

        return cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]
    a, b = a.astype(np.int32), b.astype(np.int32)
    rows = a[:, 0, None] - b[None, :, 0]
    cols = a[:, 1, None] - b[None, :, 1]
    d2 = rows * rows
    d2 += cols * cols
    return np.sqrt(d2.min(axis=1).astype(np.float64)), np.sqrt(d2.min(axis=0).astype(np.float64))


def empty_case(t, p, *, both: float, one: float):
    """``both`` when masks ``t`` and ``p`` are both empty, ``one`` when exactly one is, else None.

    Examples
    --------
    >>> z = np.zeros((3, 3), dtype=bool)
    >>> empty_case(z, z, both=1.0, one=0.0), empty_case(~z, z, both=1.0, one=0.0), empty_case(~z, ~z, both=1.0, one=0.0)
    (1.0, 0.0, None)
    """
    has_t, has_p = bool(np.any(t)), bool(np.any(p))
    if has_t and has_p:
        return None
    return both if has_t == has_p else one


def _check_tolerance(tau) -> float:
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        tau = float("nan")
    if not np.isfinite(tau) or tau < 0:
        raise BadArgumentError(f"the NSD tolerance is {tau}", expected="a finite distance >= 0, in pixels")
    return tau


def nsd_slice(t, p, tau: float = NSD_TOLERANCE) -> float:
    """Normalised surface distance of two 2-D masks at tolerance ``tau`` (pixels).

    The share of all surface pixels of both masks that lie within ``tau``
    (distance <= tau) of the other mask's surface. ``NSD_BOTH_EMPTY`` (1.0)
    when both masks are empty, ``NSD_ONE_EMPTY`` (0.0) when exactly one is.

    Examples
    --------
    >>> t = np.zeros((20, 20), dtype=bool); t[5:10, 5:10] = True
    >>> nsd_slice(t, t), nsd_slice(t, np.roll(t, 1, axis=1)), nsd_slice(t, np.roll(t, 3, axis=1))
    (1.0, 1.0, 0.5625)
    >>> nsd_slice(t, np.zeros_like(t)), nsd_slice(np.zeros_like(t), np.zeros_like(t))
    (0.0, 1.0)
    """
    tau = _check_tolerance(tau)
    empty = empty_case(t, p, both=NSD_BOTH_EMPTY, one=NSD_ONE_EMPTY)
    if empty is not None:
        return empty
    pred_to_truth, truth_to_pred = surface_distances(t, p)
    near = np.count_nonzero(pred_to_truth <= tau) + np.count_nonzero(truth_to_pred <= tau)
    return float(near / (len(pred_to_truth) + len(truth_to_pred)))


def nsd_per_slice(y_true, y_pred, tau: float = NSD_TOLERANCE) -> np.ndarray:
    """:func:`nsd_slice` of each slice of two (N, H, W) masks, as float64 (N,).

    Examples
    --------
    >>> y = np.zeros((2, 20, 20), dtype=np.uint8); y[0, 5:10, 5:10] = 1
    >>> nsd_per_slice(y, y).tolist()
    [1.0, 1.0]
    """
    tau = _check_tolerance(tau)
    yt, yp = as_masks(y_true, y_pred)
    return np.array([nsd_slice(t, p, tau) for t, p in zip(yt, yp)], dtype=np.float64)
