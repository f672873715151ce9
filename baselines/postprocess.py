"""Post-processing of probability maps, and its tuning on the validation split.

Three steps, each one the course's advice: cut the tumour probability at a
threshold, fill holes inside the detections, remove connected components
smaller than ``min_size`` pixels (small isolated detections). Holes are filled
first so that a component's size counts its holes and the removal leaves no new
hole. Nothing keeps only the largest component: tumours can be multifocal. The
result never leaves the foreground (background pixels are never tumour).

:func:`tune_postprocessing` searches a grid, scoring each setting with the
grader's own code, and always includes the identity (threshold 0.5, nothing
filled, nothing removed), so that tuning can never lower validation Dice.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from plumbing.progress import no_progress
from data_spec import Y_DTYPE, BadArgumentError

#: The classifier's own decision: no post-processing at all.
IDENTITY = {"threshold": 0.5, "min_size": 0, "fill_holes": False}
# Up to 0.99: trained on a tumour-rich sample, classifiers over-call tumour, so the best
# cut on the real class balance is often high.
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.951, 0.05), 2).tolist()) + (0.975, 0.99)
DEFAULT_MIN_SIZES = (0, 5, 10, 20, 40, 80, 150, 300)
OBJECTIVES = ("dice", "f1")

# Connectivity within each slice, never across slices (each slice is its own image):
# components are 8-connected, so the background around them is 4-connected.
_PLANE = np.zeros((3, 3, 3), dtype=bool)
_PLANE[1] = True
_PLANE_CROSS = np.zeros((3, 3, 3), dtype=bool)
_PLANE_CROSS[1] = ndimage.generate_binary_structure(2, 1)


def _as_stack(array):
    array = np.asarray(array)
    return array[None] if array.ndim == 2 else array


def remove_small(mask, min_size: int) -> np.ndarray:
    """Drop connected components (8-connected, per slice) with fewer than ``min_size`` pixels.

    Every component at least ``min_size`` large stays, however many there are.
    """
    mask = _as_stack(mask).astype(bool)
    if min_size <= 1 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=_PLANE)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def fill_slice_holes(mask, foreground=None) -> np.ndarray:
    """Fill the holes of each slice's mask (2D), staying inside ``foreground`` when given.

    A hole is a 4-connected region of non-mask pixels that does not touch the
    slice's border (what ``scipy.ndimage.binary_fill_holes`` fills in 2D),
    found by labelling rather than by iterated dilation, which is far faster.
    """
    mask = _as_stack(mask).astype(bool)
    labels, _ = ndimage.label(~mask, structure=_PLANE_CROSS)
    border = np.unique(np.concatenate([labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]], axis=None))
    outside = np.zeros(labels.max() + 1, dtype=bool)
    outside[border] = True
    outside[0] = True  # label 0: the mask itself
    filled = mask | ~outside[labels]
    if foreground is not None:
        filled &= _as_stack(foreground).astype(bool)
    return filled


def postprocess(proba, foreground, *, threshold=0.5, min_size=0, fill_holes=False) -> np.ndarray:
    """Turn tumour probability maps into 0/1 masks.

    Parameters
    ----------
    proba : array-like (N, 240, 240) or (240, 240)
        Probability of tumour per pixel.
    foreground : array-like of bool, same shape
        Pixels that may be tumour; every other pixel is 0 in the output.
    threshold : float, default 0.5
        A pixel is tumour when ``proba > threshold`` (strictly: at 0.5 this is
        the classifier's own ``predict``).
    min_size : int, default 0
        Components (8-connected, per slice) smaller than this are removed,
        after hole filling.
    fill_holes : bool, default False
        Fill the holes of each slice's detections (within the foreground).

    Returns
    -------
    ndarray uint8, the shape of ``proba``
    """
    proba = np.asarray(proba)
    fg = np.asarray(foreground, dtype=bool)
    if fg.shape != proba.shape:
        raise ValueError(f"foreground has shape {fg.shape}, probabilities {proba.shape}")
    mask = (proba > threshold) & fg
    if fill_holes:
        mask = fill_slice_holes(mask, fg)
    mask = remove_small(mask, int(min_size))
    return mask.reshape(proba.shape).astype(Y_DTYPE)


def tune_postprocessing(
    proba,
    foreground,
    y_true,
    *,
    thresholds=DEFAULT_THRESHOLDS,
    min_sizes=DEFAULT_MIN_SIZES,
    fill=(False, True),
    objective: str = "dice",
    progress=no_progress,
):
    """Grid search of the post-processing that maximises a validation score of the grader.

    Parameters
    ----------
    proba : array-like (N, 240, 240)
        Tumour probabilities of the validation slices.
    foreground : array-like (N, 240, 240) of bool
    y_true : array-like (N, 240, 240) of 0/1
        Validation truth.
    thresholds, min_sizes, fill : sequences
        The grid; the identity (0.5, 0, False) is always added.
    objective : {"dice", "f1"}
        Which of the grader's scores to maximise (``grader.scores_from_counts``).
    progress : callable

    Returns
    -------
    best : dict
        ``threshold``, ``min_size``, ``fill_holes`` of the best setting. Ties go
        to the identity first, then to the earliest setting of the grid, so the
        validation score of ``best`` is never below the identity's.
    results : list of dict
        Every setting with the grader's ``f1`` and ``dice`` on validation; the
        identity is first.
    """
    from grader.metrics import scores_from_counts

    if objective not in OBJECTIVES:
        raise BadArgumentError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    proba = _as_stack(proba)
    fg = _as_stack(foreground).astype(bool)
    truth = _as_stack(y_true).astype(bool)
    n_true = truth.reshape(len(truth), -1).sum(axis=1)
    thresholds = _with_first(thresholds, IDENTITY["threshold"])
    min_sizes = _with_first(min_sizes, IDENTITY["min_size"])
    fill = _with_first(fill, IDENTITY["fill_holes"])

    # Per threshold and fill setting, the components are labelled once; each min_size then
    # only selects components, and the per-slice counts follow from per-component counts
    # (exactly the counts of grader.confusion_counts on the post-processed masks; tested).
    results = []
    for threshold in progress(thresholds, label="tuning post-processing", length=len(thresholds)):
        cut = (proba > threshold) & fg
        for filled in fill:
            base = fill_slice_holes(cut, fg) if filled else cut
            labels, n = ndimage.label(base, structure=_PLANE)
            size = np.bincount(labels.ravel(), minlength=n + 1)
            hits = np.bincount(labels[truth], minlength=n + 1)
            # labels grow in reading order and never cross slices: component k lies in
            # the slice whose label range holds k
            last = labels.reshape(len(labels), -1).max(axis=1)
            slice_of = np.searchsorted(np.maximum.accumulate(last), np.arange(n + 1))
            for min_size in min_sizes:
                keep = size >= min_size
                keep[0] = False
                tp = np.bincount(slice_of[keep], weights=hits[keep], minlength=len(truth)).astype(np.int64)
                pred = np.bincount(slice_of[keep], weights=size[keep], minlength=len(truth)).astype(np.int64)
                scores = scores_from_counts(tp, pred - tp, n_true - tp)
                results.append(
                    {
                        "threshold": float(threshold),
                        "min_size": int(min_size),
                        "fill_holes": bool(filled),
                        "f1": float(scores["f1"]),
                        "dice": float(scores["dice"]),
                    }
                )
    best = results[0]  # the identity
    for r in results[1:]:
        if r[objective] > best[objective]:
            best = r
    return {k: best[k] for k in IDENTITY}, results


def _with_first(values, first):
    """``values`` as a list starting with ``first`` (added when absent), without repeats."""
    out = [first]
    for v in values:
        if v not in out:
            out.append(v)
    return out
