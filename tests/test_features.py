"""Background-free vectors, checked against naive per-pixel loops."""
from __future__ import annotations

import numpy as np
import pytest

import data_spec as ds
from conftest import make_slices
from starter import (
    balanced_index,
    foreground_mask,
    load_split,
    pixel_vectors,
    scatter,
    window_vectors,
    window_view,
)


@pytest.fixture(scope="module")
def slices():
    return make_slices(3, seed=5)


def naive_window(xi, r, c, size, pad):
    """The window around (r, c) built pixel by pixel."""
    h = size // 2
    out = np.empty((size, size, 4), np.float32)
    mins = xi.min(axis=(0, 1))
    for dy in range(size):
        for dx in range(size):
            rr, cc = r + dy - h, c + dx - h
            inside = 0 <= rr < 240 and 0 <= cc < 240
            if inside:
                out[dy, dx] = xi[rr, cc]
            elif pad == "background":
                out[dy, dx] = mins
            elif pad == "edge":
                out[dy, dx] = xi[min(max(rr, 0), 239), min(max(cc, 0), 239)]
            else:  # reflect about the edge pixel
                rr = -rr if rr < 0 else (2 * 239 - rr if rr > 239 else rr)
                cc = -cc if cc < 0 else (2 * 239 - cc if cc > 239 else cc)
                out[dy, dx] = xi[rr, cc]
    return out.reshape(-1)


def test_foreground_is_above_the_slice_minimum(slices):
    x, _ = slices
    mask = foreground_mask(x)
    for i in range(len(x)):
        for r, c in [(0, 0), (120, 120), (60, 200), (239, 239)]:
            expected = any(x[i, r, c, m] > x[i, :, :, m].min() for m in range(4))
            assert mask[i, r, c] == expected
    assert np.array_equal(foreground_mask(x[1]), mask[1])
    const = np.zeros((1, 240, 240, 4), np.float32)
    assert not foreground_mask(const).any()


def test_pixel_vectors_match_a_naive_loop(slices):
    x, y = slices
    X, labels, index = pixel_vectors(x, y)
    mask = foreground_mask(x)
    assert len(X) == mask.sum() and X.dtype == np.float32
    rng = np.random.default_rng(0)
    for k in rng.choice(len(X), 50, replace=False):
        i, r, c = index[k]
        assert mask[i, r, c]
        assert np.array_equal(X[k], x[i, r, c]) and labels[k] == y[i, r, c]


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("pad", ["background", "edge", "reflect"])
def test_window_vectors_match_a_naive_loop_including_edges(slices, size, pad):
    x, y = slices
    # Pixels at every edge and corner, plus a few inside.
    index = np.array([[0, 0, 0], [0, 0, 239], [1, 239, 0], [1, 239, 239], [2, 0, 120], [2, 120, 1], [2, 130, 130]])
    X, labels, out_index = window_vectors(x, y, size=size, index=index, pad=pad)
    assert X.shape == (len(index), size * size * 4)
    for k, (i, r, c) in enumerate(out_index):
        assert np.array_equal(X[k], naive_window(x[i], r, c, size, pad)), (size, pad, (i, r, c))
        assert labels[k] == y[i, r, c]


def test_window_centre_is_the_pixel_vector(slices):
    x, y = slices
    index = balanced_index(y, foreground_mask(x), seed=1)
    Xw, _, _ = window_vectors(x, size=3, index=index)
    Xp, _, _ = pixel_vectors(x, index=index)
    assert np.array_equal(Xw[:, 16:20], Xp)


def test_window_view_is_zero_copy():
    x, _ = make_slices(1)
    view = window_view(x[0], 5)
    assert view.shape == (240, 240, 5, 5, 4)
    assert not view.flags.owndata and not view.flags.writeable
    assert view.base is not None and view.nbytes > 10 * x[0].nbytes  # strides, not copies
    with pytest.raises(ValueError):
        window_view(x[0], 4)


def test_balanced_index_is_seeded_balanced_and_bounded(slices):
    x, y = slices
    mask = foreground_mask(x)
    idx = balanced_index(y, mask, neg_ratio=2, seed=3)
    assert np.array_equal(idx, balanced_index(y, mask, neg_ratio=2, seed=3))
    assert not np.array_equal(idx, balanced_index(y, mask, neg_ratio=2, seed=4))
    assert mask[idx[:, 0], idx[:, 1], idx[:, 2]].all()  # never background
    labels = y[idx[:, 0], idx[:, 1], idx[:, 2]]
    assert labels.sum() == (y.astype(bool) & mask).sum()  # every tumour pixel
    for i in range(len(x)):
        n_pos = (y[i].astype(bool) & mask[i]).sum()
        n_neg = ((idx[:, 0] == i) & (y[idx[:, 0], idx[:, 1], idx[:, 2]] == 0)).sum()
        assert n_neg == min(max(2 * n_pos, 100), (mask[i] & ~y[i].astype(bool)).sum())
    assert (np.diff(idx[:, 0]) >= 0).all()
    capped = balanced_index(y, mask, neg_ratio=2, max_per_slice=300, max_vectors=500, seed=3)
    assert len(capped) <= 500
    assert np.bincount(capped[:, 0]).max() <= 300
    capped_labels = y[capped[:, 0], capped[:, 1], capped[:, 2]]
    assert abs(capped_labels.mean() - labels.mean()) < 0.05  # proportions kept


def test_tumour_free_slices_still_give_negatives():
    x, y = make_slices(4, seed=2)
    assert not y[3].any()
    idx = balanced_index(y, foreground_mask(x), min_negatives=50, seed=0)
    assert (idx[:, 0] == 3).sum() == 50


def test_vectors_from_both_layouts_are_equal(competition):
    course = load_split(competition, "train", layout="course")
    canonical = load_split(competition, "train", layout="hdf5")
    index = balanced_index(course.y, foreground_mask(course.x), seed=0)
    a = window_vectors(course.x, course.y, size=3, index=index)
    b = window_vectors(canonical.x, canonical.y, size=3, index=index)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_unsorted_index_is_put_in_reading_order(slices):
    x, _ = slices
    index = np.array([[2, 5, 5], [0, 120, 120], [1, 3, 4]])
    _, _, out = pixel_vectors(x, index=index)
    assert out.tolist() == [[0, 120, 120], [1, 3, 4], [2, 5, 5]]


def test_scatter_inverts_indexing(slices):
    x, y = slices
    X, labels, index = pixel_vectors(x, y)
    back = scatter(labels, index, len(x), dtype=np.uint8)
    assert np.array_equal(back, y * foreground_mask(x))


def test_bad_shapes_are_named_errors():
    with pytest.raises(ds.ArrayContractError) as err:
        pixel_vectors(np.zeros((2, 4, 240, 240), np.float32))
    assert "modalities" in err.value.hint
    with pytest.raises(ds.ArrayContractError) as err:
        window_vectors(np.zeros((240, 240, 4), np.float32))
    assert "x[None]" in err.value.hint
    x, _ = make_slices(1)
    with pytest.raises(ds.ArrayContractError):
        pixel_vectors(x, np.zeros((1, 240, 241), np.uint8))


def test_index_outside_the_inputs_is_a_named_error(slices):
    x, _ = slices
    for bad in ([[0, -1, 5]], [[3, 0, 0]], [[0, 0, 240]]):
        with pytest.raises(ds.ArrayContractError) as err:
            pixel_vectors(x, index=np.array(bad))
        assert "index row 0" in str(err.value)


def test_scatter_honours_the_requested_dtype(slices):
    x, y = slices
    X, labels, index = pixel_vectors(x, y)
    out = scatter(labels.astype(np.int64), index, len(x), dtype=ds.Y_DTYPE)
    assert out.dtype == np.uint8
