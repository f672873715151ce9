"""Background-free training vectors: pixels and N x N windows, sampled to a memory bound.

Every function takes arrays (a numpy array, a ``numpy.memmap`` or the lazy
HDF5 arrays of :func:`data_spec.open_split`) and reads one slice at a time, so a
whole split is never loaded at once. Vectors are float32.

Window features keep the layout ``(row offset, column offset, modality)``:
for ``size=3`` feature ``(dy * 3 + dx) * 4 + m`` is modality ``m`` at offset
``(dy - 1, dx - 1)``, and the centre pixel's 4 values sit at ``4 * 4 : 4 * 5``.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from data_spec import N_MODALITIES, X_DTYPE, X_ITEM_SHAPE, Y_ITEM_SHAPE, ArrayContractError, BadArgumentError, check_choice
from data_spec.background import DEFAULT_FOREGROUND_RULE
from data_spec.background import foreground_mask as _foreground

PAD_MODES = ("background", "edge", "reflect")


def check_inputs(x, name: str = "inputs") -> int:
    """Check the shape of slices (N, 240, 240, 4) without reading them; return N.

    Raises
    ------
    ArrayContractError
        With a hint for transposed axes and for a single slice without its slice axis.
    """
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 4 or shape[1:] != X_ITEM_SHAPE:
        raise ArrayContractError(
            f"{name} has shape {shape}",
            expected=f"(N, {', '.join(map(str, X_ITEM_SHAPE))}) with modalities last",
            hint="slices must be the first axis and modalities the last"
            if len(shape) == 4 and sorted(shape[1:]) == sorted(X_ITEM_SHAPE)
            else ("add a slice axis: x[None]" if shape == X_ITEM_SHAPE else None),
        )
    return shape[0]


def check_masks(y, n: int, name: str = "masks") -> None:
    """Check that masks are (n, 240, 240), without reading them."""
    shape = tuple(getattr(y, "shape", np.shape(y)))
    if shape != (n,) + Y_ITEM_SHAPE:
        raise ArrayContractError(f"{name} has shape {shape}", expected=f"({n}, {Y_ITEM_SHAPE[0]}, {Y_ITEM_SHAPE[1]})")


def foreground_mask(x, rule: str = DEFAULT_FOREGROUND_RULE) -> np.ndarray:
    """Pixels that are not background (the contract's rule, :func:`data_spec.foreground_mask`).

    Parameters
    ----------
    x : array-like (H, W, 4) or (N, H, W, 4)
    rule : {"all", "any"}, default "all"
        ``"all"``, the course's rule (its notebook's ``slices_to_masks``): a
        pixel is foreground when every modality is above that modality's slice
        minimum. ``"any"``: when at least one is.

    Returns
    -------
    ndarray of bool, (H, W) or (N, H, W)
        A constant slice has no foreground.

    Examples
    --------
    A 20 x 20 square of brain on a background at each modality's minimum;
    one pixel is at the minimum in ``t1`` only:

    >>> import numpy as np
    >>> from starter import foreground_mask
    >>> x = np.zeros((240, 240, 4), np.float32); x[100:120, 100:120] = 1.0
    >>> x[100, 100, 0] = 0.0
    >>> int(foreground_mask(x).sum()), int(foreground_mask(x, rule="any").sum())
    (399, 400)
    """
    if len(tuple(x.shape)) != 3:
        check_inputs(x)
    return _foreground(x, rule)


def balanced_index(
    y,
    mask,
    *,
    neg_ratio: float = 1.0,
    min_negatives: int = 100,
    max_per_slice: int | None = None,
    max_vectors: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Seeded class-balanced choice of foreground pixels to train on.

    Per slice: every tumour pixel inside the foreground, plus
    ``max(neg_ratio * n_tumour, min_negatives)`` non-tumour foreground pixels
    drawn at random (so tumour-free slices are represented too). A slice over
    ``max_per_slice`` is subsampled keeping its class proportions; the total is
    then subsampled the same way to ``max_vectors``. Tumour pixels outside the
    foreground are never used (the course: never train on background).

    Parameters
    ----------
    y : array-like (N, H, W) of 0/1
    mask : array-like (N, H, W) of bool
        Usually :func:`foreground_mask` of the inputs.
    neg_ratio, min_negatives, max_per_slice, max_vectors, seed
        See above. The same arguments give the same index.

    Returns
    -------
    ndarray of int64, (n, 3)
        ``(slice, row, column)`` rows sorted in reading order.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for i in range(len(mask)):
        fg = np.asarray(mask[i], dtype=bool)
        yi = np.asarray(y[i]).astype(bool)
        pos = np.flatnonzero(fg & yi)
        neg = np.flatnonzero(fg & ~yi)
        n_neg = min(len(neg), max(math.ceil(neg_ratio * len(pos)), min_negatives))
        neg = rng.choice(neg, size=n_neg, replace=False) if n_neg < len(neg) else neg
        if max_per_slice is not None and len(pos) + len(neg) > max_per_slice:
            pos, neg = _shrink(rng, pos, neg, max_per_slice)
        flat = np.sort(np.concatenate([pos, neg]))
        chosen.append(np.column_stack([np.full(len(flat), i), *np.unravel_index(flat, fg.shape)]))
    index = np.concatenate(chosen) if chosen else np.zeros((0, 3), dtype=np.int64)
    index = index.astype(np.int64, copy=False)
    if max_vectors is not None and len(index) > max_vectors:
        labels = _labels_at(y, index)
        pos_rows, neg_rows = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
        pos_rows, neg_rows = _shrink(rng, pos_rows, neg_rows, max_vectors)
        index = index[np.sort(np.concatenate([pos_rows, neg_rows]))]
    return index


def _shrink(rng, pos, neg, budget):
    """Subsample two index sets to ``budget`` in all, keeping their proportions."""
    total = len(pos) + len(neg)
    n_pos = min(len(pos), round(budget * len(pos) / total))
    n_neg = min(len(neg), budget - n_pos)
    return (rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False))


def _groups(index):
    """Yield ``(slice, rows_of_index)`` for each slice present in a sorted index."""
    if len(index) == 0:
        return
    starts = np.flatnonzero(np.r_[True, np.diff(index[:, 0]) != 0])
    ends = np.r_[starts[1:], len(index)]
    for s, e in zip(starts, ends):
        yield int(index[s, 0]), slice(s, e)


def _labels_at(y, index) -> np.ndarray:
    out = np.empty(len(index), dtype=np.uint8)
    for i, rows in _groups(index):
        yi = np.asarray(y[i])
        out[rows] = yi[index[rows, 1], index[rows, 2]]
    return out


def _foreground_index(x) -> np.ndarray:
    parts = []
    for i in range(len(x)):
        r, c = np.nonzero(foreground_mask(x[i]))
        parts.append(np.column_stack([np.full(len(r), i), r, c]))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 3), dtype=np.int64)


def _prepare_index(x, index):
    check_inputs(x)
    if index is None:
        return _foreground_index(x)
    index = np.asarray(index, dtype=np.int64)
    if index.ndim != 2 or index.shape[1] != 3:
        raise ArrayContractError(f"index has shape {index.shape}", expected="(n, 3) rows of (slice, row, column)")
    if len(index):
        limits = np.array([len(x), X_ITEM_SHAPE[0], X_ITEM_SHAPE[1]])
        bad = (index < 0) | (index >= limits)
        if bad.any():
            k = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ArrayContractError(
                f"index row {k} is {tuple(int(v) for v in index[k])}, outside the inputs",
                where=f"index row {k}",
                expected=f"slice in [0, {len(x)}), row and column in [0, {X_ITEM_SHAPE[0]})",
            )
    if len(index) and (np.diff(index[:, 0]) < 0).any():
        index = index[np.lexsort((index[:, 2], index[:, 1], index[:, 0]))]
    return index


def pixel_vectors(x, y=None, *, index=None):
    """One 4-value vector (t1, t1ce, t2, flair) per chosen pixel.

    Parameters
    ----------
    x : array-like (N, 240, 240, 4)
    y : array-like (N, 240, 240), optional
        When given, the labels of the chosen pixels are returned too.
    index : (n, 3) int array, optional
        ``(slice, row, column)`` rows, e.g. from :func:`balanced_index`.
        Default: every foreground pixel of every slice.

    Returns
    -------
    X : ndarray float32 (n, 4)
    labels : ndarray uint8 (n,) or None
    index : ndarray int64 (n, 3)
        The pixels the rows come from, in the order of the rows.
    """
    index = _prepare_index(x, index)
    out = np.empty((len(index), N_MODALITIES), dtype=X_DTYPE)
    for i, rows in _groups(index):
        xi = np.asarray(x[i])
        out[rows] = xi[index[rows, 1], index[rows, 2]]
    return out, _labels(y, x, index), index


def check_window(size, pad: str = "background") -> None:
    """Raise :class:`~data_spec.errors.BadArgumentError` unless ``size`` is an odd positive integer
    and ``pad`` one of :data:`PAD_MODES` (the one window check of the students' and the baselines' features)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1 or size % 2 == 0:
        raise BadArgumentError(f"window size must be an odd positive integer, got {size!r}",
                               expected="1, 3, 5, 7...")
    check_choice("pad", pad, PAD_MODES)


def window_view(slice_x, size: int = 3, pad: str = "background") -> np.ndarray:
    """All ``size x size`` windows of one slice as a read-only view, (H, W, size, size, 4).

    Only the padded slice is allocated; the windows themselves are strides over
    it (no copy). Pixels beyond the image edge are filled according to ``pad``:

    - ``"background"`` (default): the slice's minimum of each modality, i.e. the
      background value, since outside the field of view there is no brain;
    - ``"edge"``: the nearest edge pixel repeated;
    - ``"reflect"``: mirrored about the edge pixel.
    """
    check_window(size, pad)
    xi = np.asarray(slice_x, dtype=X_DTYPE)
    r = size // 2
    widths = ((r, r), (r, r), (0, 0))
    if pad == "background":
        padded = np.empty((xi.shape[0] + 2 * r, xi.shape[1] + 2 * r, xi.shape[2]), dtype=xi.dtype)
        padded[...] = xi.min(axis=(0, 1))
        padded[r : r + xi.shape[0], r : r + xi.shape[1]] = xi
    else:
        padded = np.pad(xi, widths, mode=pad)
    windows = sliding_window_view(padded, (size, size), axis=(0, 1))  # (H, W, C, size, size)
    return windows.transpose(0, 1, 3, 4, 2)


def window_vectors(x, y=None, *, size: int = 3, index=None, pad: str = "background"):
    """One ``size * size * 4`` vector per chosen pixel: its neighbourhood in all modalities.

    Parameters
    ----------
    x : array-like (N, 240, 240, 4)
    y : array-like (N, 240, 240), optional
    size : odd int
        Window side (3 gives 36 features, 5 gives 100).
    index : (n, 3) int array, optional
        Pixels to build vectors for; default every foreground pixel. Pass
        :func:`balanced_index` to bound memory: only the chosen windows are
        ever copied.
    pad : {"background", "edge", "reflect"}
        How windows that cross the image edge are filled (see :func:`window_view`).

    Returns
    -------
    X : ndarray float32 (n, size * size * 4)
        Layout (row offset, column offset, modality), see the module docstring.
    labels : ndarray uint8 (n,) or None
    index : ndarray int64 (n, 3)

    Examples
    --------
    One slice with a 20 x 20 square of brain, a 4 x 4 tumour in its corner:
    a vector for each of the 400 brain pixels, with 3 x 3 x 4 = 36 values.

    >>> import numpy as np
    >>> from starter import window_vectors
    >>> x = np.zeros((1, 240, 240, 4), np.float32); x[0, 100:120, 100:120] = 1.0
    >>> y = np.zeros((1, 240, 240), np.uint8); y[0, 100:104, 100:104] = 1
    >>> X, labels, index = window_vectors(x, y, size=3)
    >>> X.shape, int(labels.sum()), index[0].tolist()
    ((400, 36), 16, [0, 100, 100])
    """
    index = _prepare_index(x, index)
    out = np.empty((len(index), size * size * N_MODALITIES), dtype=X_DTYPE)
    for i, rows in _groups(index):
        view = window_view(x[i], size, pad)
        out[rows] = view[index[rows, 1], index[rows, 2]].reshape(-1, out.shape[1])
    return out, _labels(y, x, index), index


def _labels(y, x, index):
    if y is None:
        return None
    check_masks(y, len(x))
    return _labels_at(y, index)


def scatter(values, index, n_slices: int, fill=0, dtype=None) -> np.ndarray:
    """Put per-pixel values back into (n_slices, 240, 240) images (the inverse of indexing).

    Pixels not in ``index`` get ``fill``: the way to turn predictions on
    foreground vectors back into masks.
    """
    values = np.asarray(values)
    out = np.full((n_slices,) + Y_ITEM_SHAPE, fill, dtype=values.dtype if dtype is None else dtype)
    index = np.asarray(index, dtype=np.int64)
    out[index[:, 0], index[:, 1], index[:, 2]] = values
    return out
