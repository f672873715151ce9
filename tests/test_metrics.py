"""Scores from counts, compared with scikit-learn and scipy references; empty-slice conventions pinned."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist
from scipy.spatial.distance import dice as scipy_dice_dissimilarity
from sklearn.metrics import f1_score, precision_score, recall_score

from data_spec import ArrayContractError
from data_spec.constants import (
    DICE_BOTH_EMPTY,
    DICE_ONE_EMPTY,
    F1_ALL_EMPTY,
    HD95_BOTH_EMPTY,
    HD95_ONE_EMPTY,
)
from grader.metrics import (
    HD95,
    SCORE_TYPES,
    MeanDice,
    PixelF1,
    confusion_counts,
    dice_per_slice,
    hd95_per_slice,
    score,
    scores_from_counts,
)

KEYS = ("f1", "dice", "precision", "recall", "dice_tumour_slices", "empty_slices_correct")


def random_masks(rng, n, shape=(240, 240)):
    """Truth and prediction with blobs, noise and empty slices of both kinds."""
    y = np.zeros((n,) + shape, dtype=np.uint8)
    p = np.zeros_like(y)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        kind = rng.integers(5)
        if kind != 0:  # kind 0: tumour-free truth
            cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(1, max(shape) // 4)
            y[i][(rows - cy) ** 2 + (cols - cx) ** 2 < r**2] = 1
        if kind == 1:  # empty prediction
            continue
        if kind == 2:  # a shifted, noisy copy
            p[i] = np.roll(y[i], tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
        p[i] |= (rng.random(shape) < rng.choice([0.0, 0.001, 0.05])).astype(np.uint8)
    return y, p


# ---------------------------------------------------------------- counts and count-based scores


def test_counts_match_a_direct_count():
    rng = np.random.default_rng(0)
    y, p = random_masks(rng, 12)
    tp, fp, fn = confusion_counts(y, p)
    for i in range(12):
        t, q = y[i].astype(bool), p[i].astype(bool)
        assert (tp[i], fp[i], fn[i]) == ((t & q).sum(), (~t & q).sum(), (t & ~q).sum())
    assert tp.dtype == fp.dtype == fn.dtype == np.int64


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int8, np.int64, np.uint16])
def test_counts_accept_any_integer_or_bool_dtype(dtype):
    rng = np.random.default_rng(1)
    y, p = random_masks(rng, 4)
    ref = confusion_counts(y, p)
    got = confusion_counts(y.astype(dtype), p.astype(dtype))
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(25))
def test_pooled_scores_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, p = random_masks(rng, int(rng.integers(1, 8)), shape=(60, 80))  # small: sklearn is slow
    ours = score(y, p)
    yt, yp = y.ravel(), p.ravel()
    if yt.any() or yp.any():
        assert ours["f1"] == pytest.approx(f1_score(yt, yp, zero_division=0.0), abs=1e-12)
    if yp.any():
        assert ours["precision"] == pytest.approx(precision_score(yt, yp), abs=1e-12)
    if yt.any():
        assert ours["recall"] == pytest.approx(recall_score(yt, yp), abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_dice_per_slice_equals_scipy(seed):
    rng = np.random.default_rng(100 + seed)
    y, p = random_masks(rng, 10)
    dice = dice_per_slice(*confusion_counts(y, p))
    for i in range(len(y)):
        t, q = y[i].ravel().astype(bool), p[i].ravel().astype(bool)
        if t.any() or q.any():
            assert dice[i] == pytest.approx(1.0 - scipy_dice_dissimilarity(t, q), abs=1e-12)
        else:
            assert dice[i] == DICE_BOTH_EMPTY


def test_diagnostic_scores_follow_their_definition():
    rng = np.random.default_rng(7)
    y, p = random_masks(rng, 30)
    tp, fp, fn = confusion_counts(y, p)
    s = scores_from_counts(tp, fp, fn)
    dice = dice_per_slice(tp, fp, fn)
    tumour = y.reshape(30, -1).any(axis=1)
    assert 0 < tumour.sum() < 30
    assert s["dice"] == pytest.approx(dice.mean())
    assert s["dice_tumour_slices"] == pytest.approx(dice[tumour].mean())
    pred_empty = ~p.reshape(30, -1).any(axis=1)
    assert s["empty_slices_correct"] == pytest.approx(pred_empty[~tumour].mean())
    assert s["n_slices"] == 30 and isinstance(s["n_slices"], int)
    assert all(type(s[k]) is float for k in KEYS)


def test_empty_slice_conventions():
    z = np.zeros((1, 240, 240), dtype=np.uint8)
    blob = z.copy()
    blob[0, 100:110, 100:110] = 1
    both_empty = score(z, z, hd95=True)
    assert both_empty["f1"] == F1_ALL_EMPTY == 1.0
    assert both_empty["dice"] == DICE_BOTH_EMPTY == 1.0
    assert both_empty["precision"] == both_empty["recall"] == 1.0
    assert both_empty["hd95"] == HD95_BOTH_EMPTY == 0.0
    assert both_empty["empty_slices_correct"] == 1.0
    missed = score(blob, z, hd95=True)  # truth has tumour, prediction empty
    assert missed["dice"] == DICE_ONE_EMPTY == 0.0
    assert missed["f1"] == missed["precision"] == missed["recall"] == 0.0
    assert missed["hd95"] == HD95_ONE_EMPTY == pytest.approx(339.41, abs=0.01)
    invented = score(z, blob, hd95=True)  # tumour-free truth, tumour predicted
    assert invented["dice"] == 0.0 and invented["empty_slices_correct"] == 0.0
    assert invented["precision"] == invented["recall"] == invented["f1"] == 0.0
    assert invented["hd95"] == HD95_ONE_EMPTY
    assert invented["dice_tumour_slices"] == 1.0  # no tumour slice: nothing lost there
    assert missed["empty_slices_correct"] == 1.0  # no tumour-free slice: nothing lost there


def test_mixed_slices_mean_dice_uses_the_conventions():
    y = np.zeros((4, 240, 240), dtype=np.uint8)
    p = np.zeros_like(y)
    y[0, :10, :10] = p[0, :10, :10] = 1  # perfect: 1
    y[1, :10, :10] = 1  # missed: 0
    p[2, :10, :10] = 1  # invented: 0
    # slice 3 both empty: 1
    np.testing.assert_array_equal(dice_per_slice(*confusion_counts(y, p)), [1.0, 0.0, 0.0, 1.0])
    assert score(y, p)["dice"] == 0.5


def test_batched_counts_reduce_over_the_last_axis():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 50, size=(3, 7, 11))
    counts[:, :, ::3] = 0  # some both-empty slices
    tp, fp, fn = counts
    batch = scores_from_counts(tp, fp, fn)
    for b in range(7):
        one = scores_from_counts(tp[b], fp[b], fn[b])
        for key in KEYS:
            assert batch[key][b] == pytest.approx(one[key])
    assert batch["f1"].shape == (7,)
    assert batch["n_slices"] == 11


def test_scores_are_never_nan():
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(0, 5))
        tp, fp, fn = (rng.integers(0, 3, size=n) * rng.integers(0, 2, size=n) for _ in range(3))
        s = scores_from_counts(tp, fp, fn)
        assert all(math.isfinite(s[k]) and 0.0 <= s[k] <= 1.0 for k in KEYS)


def test_zero_slices_give_the_all_empty_values():
    s = scores_from_counts(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int))
    assert s["n_slices"] == 0 and s["f1"] == 1.0 and s["dice"] == 1.0


def test_bad_inputs_raise_named_errors():
    y = np.zeros((2, 240, 240), dtype=np.uint8)
    with pytest.raises(ArrayContractError):
        confusion_counts(y, y[:1])
    with pytest.raises(ArrayContractError):
        confusion_counts(y, y.astype(np.float32))
    with pytest.raises(ArrayContractError):
        scores_from_counts([1, 2], [0], [0, 0])
    with pytest.raises(ArrayContractError):
        scores_from_counts([1], [-1], [0])


# ---------------------------------------------------------------- HD95


def _surface_reference(mask):
    """Mask pixels with a 4-neighbour outside the mask or outside the image (written independently)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _directed(a, b):
    """Distances from each surface point of ``a`` to the nearest surface point of ``b`` (brute force)."""
    pa, pb = np.argwhere(_surface_reference(a)), np.argwhere(_surface_reference(b))
    return cdist(pa, pb).min(axis=1)


def hd95_brute_force(t, p):
    return max(np.percentile(_directed(p, t), 95), np.percentile(_directed(t, p), 95))


def hd95_medpy_definition(t, p):
    """MedPy's ``hd95``: the 95th percentile of both directed distance sets pooled.

    MedPy computes the surface as ``mask ^ binary_erosion(mask, cross)`` and the
    distances with ``distance_transform_edt`` of the other surface's complement;
    the same sets as here, pooled before the percentile instead of taking the
    larger of the two directed percentiles.
    """
    return np.percentile(np.hstack([_directed(p, t), _directed(t, p)]), 95)


def random_blobs(rng, shape):
    noise = ndimage.gaussian_filter(rng.random(shape), sigma=rng.uniform(1, 4))
    mask = noise > np.quantile(noise, rng.uniform(0.6, 0.97))
    return mask


@pytest.mark.parametrize("seed", range(20))
def test_hd95_equals_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(8, 60)), int(rng.integers(8, 60)))
    t = random_blobs(rng, shape)
    p = random_blobs(rng, shape) if seed % 3 else np.roll(t, 2, axis=1)
    got = hd95_per_slice(t[None], p[None])[0]
    assert got == pytest.approx(hd95_brute_force(t, p), abs=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_hd95_bounds_medpy_definition(seed):
    rng = np.random.default_rng(50 + seed)
    t, p = random_blobs(rng, (48, 48)), random_blobs(rng, (48, 48))
    ours = hd95_per_slice(t[None], p[None])[0]
    lower = min(np.percentile(_directed(p, t), 95), np.percentile(_directed(t, p), 95))
    medpy = hd95_medpy_definition(t, p)
    assert lower - 1e-9 <= medpy <= ours + 1e-9


def test_hd95_is_symmetric_and_known_on_squares():
    t = np.zeros((1, 240, 240), dtype=bool)
    p = t.copy()
    t[0, 100:120, 100:120] = True
    p[0, 100:120, 105:125] = True  # shifted by 5 columns
    assert hd95_per_slice(t, p)[0] == pytest.approx(5.0)
    assert hd95_per_slice(t, p)[0] == hd95_per_slice(p, t)[0]
    assert hd95_per_slice(t, t)[0] == 0.0


def test_hd95_on_the_image_edge_matches_the_reference():
    t = np.zeros((240, 240), dtype=bool)
    p = t.copy()
    t[:30, :40] = True
    p[200:, 220:] = True
    assert hd95_per_slice(t[None], p[None])[0] == pytest.approx(hd95_brute_force(t, p))


# ---------------------------------------------------------------- score classes


def test_score_types_describe_themselves_and_agree_with_score():
    rng = np.random.default_rng(11)
    y, p = random_masks(rng, 5)
    names = [st.name for st in SCORE_TYPES]
    assert names == list(KEYS) + ["hd95", "lesion_dice", "lesion_hd95", "nsd"]
    everything = score(y, p, metrics=names)
    for st in SCORE_TYPES:
        assert st.minimum <= st(y, p) <= st.maximum
        assert st(y, p) == pytest.approx(everything[st.name])
        assert isinstance(st.precision, int) and isinstance(st.is_lower_the_better, bool)
    assert HD95().is_lower_the_better and not PixelF1().is_lower_the_better
    tp, fp, fn = confusion_counts(y, p)
    assert MeanDice().from_counts(tp, fp, fn) == pytest.approx(everything["dice"])
    with pytest.raises(TypeError):
        HD95().from_counts(tp, fp, fn)
