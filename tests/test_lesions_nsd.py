"""Lesion-wise Dice and HD95 (BraTS 2023 in 2D) and NSD: hand-made cases, slow references, MedPy and DeepMind."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from data_spec import BadArgumentError
from data_spec.constants import HD95_ONE_EMPTY, HD_PERCENTILE, LESION_DILATION, LESION_SIZE_THRESHOLD
from grader.hausdorff import hd95_slice
from grader.lesions import lesion_scores_per_slice, lesion_scores_slice
from grader.metrics import NSD, LesionDice, LesionHD95, metric_names, score
from grader.surface import nsd_per_slice, nsd_slice, surface

WORST = HD95_ONE_EMPTY
#: DeepMind's surface-distance 0.1 calls scipy's deprecated namespaces; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance.*")


def _square(shape, r0, c0, size):
    m = np.zeros(shape, dtype=bool)
    m[r0:r0 + size, c0:c0 + size] = True
    return m


# ---------------------------------------------------------------- slow references, written from the definitions


def _brute_surface(m):
    """Pixels with a 4-neighbour outside the mask, one pixel at a time (outside the image is outside)."""
    out = np.zeros_like(m)
    h, w = m.shape
    for r, c in zip(*np.nonzero(m)):
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if not (0 <= rr < h and 0 <= cc < w) or not m[rr, cc]:
                out[r, c] = True
    return out


def _brute_distances(a, b):
    """For each surface pixel of a, the distance to the nearest surface pixel of b (all pairs)."""
    pa, pb = np.argwhere(_brute_surface(a)), np.argwhere(_brute_surface(b))
    return np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min(axis=1)


def _brute_nsd(t, p, tau):
    if not t.any() and not p.any():
        return 1.0
    if t.any() != p.any():
        return 0.0
    a, b = _brute_distances(p, t), _brute_distances(t, p)
    return ((a <= tau).sum() + (b <= tau).sum()) / (len(a) + len(b))


def _brute_hd95(t, p):
    if not t.any() and not p.any():
        return 0.0
    if t.any() != p.any():
        return WORST
    return max(np.percentile(_brute_distances(p, t), HD_PERCENTILE),
               np.percentile(_brute_distances(t, p), HD_PERCENTILE))


def _brats_reference(t, p, dilation=LESION_DILATION, threshold=LESION_SIZE_THRESHOLD):
    """BraTS 2023's get_lesion_wise_score + get_lesion_wise_results, step by step on the whole 2-D slice.

    The course's adaptations: 8-connectivity, a cross dilation, a size threshold in pixels, and the
    image diagonal as the worst HD95 (BraTS: 26-connectivity, an 18-neighbourhood, 50 voxels, 374).
    """
    eight, cross = np.ones((3, 3), bool), ndimage.generate_binary_structure(2, 1)
    gt_cc, _ = ndimage.label(t, eight)
    pred_cc, n_pred = ndimage.label(p, eight)
    dil = ndimage.binary_dilation(t, cross, iterations=dilation) if dilation else t.copy()
    dil_cc, n_dil = ndimage.label(dil, eight)
    combined = np.zeros_like(dil_cc)
    for comp in range(1, n_dil + 1):  # get_gt_seg_combined_by_dilation
        part = (dil_cc == comp) * gt_cc
        combined[part > 0] = comp
    tp, pairs = [], []
    for comp in range(1, combined.max() + 1):
        gt_tmp = combined == comp
        zone = ndimage.binary_dilation(gt_tmp, cross, iterations=dilation) if dilation else gt_tmp
        hits = np.unique(pred_cc[zone])
        hits = hits[hits != 0]
        tp.extend(hits.tolist())
        pred_tmp = np.isin(pred_cc, hits)
        dice = 2.0 * (gt_tmp & pred_tmp).sum() / (gt_tmp.sum() + pred_tmp.sum())
        hd = _brute_hd95(gt_tmp, pred_tmp) if pred_tmp.any() else WORST
        pairs.append((gt_tmp.sum(), dice, hd))
    fp = [c for c in range(1, n_pred + 1) if c not in tp]
    kept = [(d, h) for size, d, h in pairs if size > threshold]
    if len(kept) + len(fp) == 0:
        return 1.0, 0.0  # BraTS's NaN replaced
    n = len(kept) + len(fp)
    return sum(d for d, _ in kept) / n, (sum(h for _, h in kept) + len(fp) * WORST) / n


# ---------------------------------------------------------------- lesion-wise: hand-made cases


SHAPE = (64, 64)


def test_one_lesion_is_its_dice_and_hd95():
    t = _square(SHAPE, 10, 10, 10)
    p = _square(SHAPE, 11, 10, 10)
    dice, hd = lesion_scores_slice(t, p)
    assert dice == pytest.approx(0.9) and hd == pytest.approx(hd95_slice(t, p))


def test_a_split_prediction_is_one_match_not_a_false_positive():
    t = _square(SHAPE, 10, 10, 10)
    p = t.copy()
    p[:, 15] = False  # two predicted components, both on the lesion
    assert ndimage.label(p, np.ones((3, 3)))[1] == 2
    dice, hd = lesion_scores_slice(t, p)
    assert dice == pytest.approx(2 * 90 / 190) and hd == pytest.approx(hd95_slice(t, p))


def test_truth_lesions_within_the_dilation_merge_into_one():
    t = _square(SHAPE, 10, 10, 10) | _square(SHAPE, 10, 24, 10)  # a gap of 4 columns: the dilations meet
    p = _square(SHAPE, 10, 10, 10)  # only the first is predicted
    dice, hd = lesion_scores_slice(t, p)
    assert dice == pytest.approx(2 * 100 / 300)  # one merged lesion of 200 pixels, no miss
    assert hd == pytest.approx(hd95_slice(t, p))
    far = _square(SHAPE, 10, 10, 10) | _square(SHAPE, 40, 40, 10)  # far apart: two lesions, one missed
    assert lesion_scores_slice(far, p) == pytest.approx((0.5, WORST / 2))
    # with no dilation, the near pair are two lesions too
    assert lesion_scores_slice(t, p, dilation=0) == pytest.approx((0.5, WORST / 2))


def test_a_false_positive_adds_a_zero_to_the_denominator():
    t = _square(SHAPE, 10, 10, 10)
    p = t | _square(SHAPE, 45, 45, 5)
    assert lesion_scores_slice(t, p) == pytest.approx((0.5, WORST / 2))
    near = t | _square(SHAPE, 10, 22, 3)  # 2 pixels from the lesion: inside its dilation, matched
    dice, _ = lesion_scores_slice(t, near)
    assert dice == pytest.approx(2 * 100 / 209)


def test_empty_truth_empty_prediction_and_both_empty():
    t, empty = _square(SHAPE, 10, 10, 10), np.zeros(SHAPE, dtype=bool)
    assert lesion_scores_slice(empty, t) == (0.0, WORST)  # false positives only
    two = t | _square(SHAPE, 40, 40, 5)
    assert lesion_scores_slice(empty, two) == (0.0, WORST)
    assert lesion_scores_slice(t, empty) == (0.0, WORST)  # a missed lesion
    assert lesion_scores_slice(empty, empty) == (1.0, 0.0)  # nothing to count


def test_lesions_at_or_below_the_threshold_are_left_out_but_still_match():
    small = _square(SHAPE, 10, 10, 4)  # 16 pixels = LESION_SIZE_THRESHOLD
    assert LESION_SIZE_THRESHOLD == 16
    empty = np.zeros(SHAPE, dtype=bool)
    assert lesion_scores_slice(small, empty) == (1.0, 0.0)  # missed, but not counted
    assert lesion_scores_slice(small, small) == (1.0, 0.0)  # found: its component is not a false positive
    bigger = small.copy()
    bigger[14, 10] = True  # 17 pixels: counted
    assert lesion_scores_slice(bigger, empty) == (0.0, WORST)
    assert lesion_scores_slice(small, empty, size_threshold=0) == (0.0, WORST)


def test_a_prediction_bridging_two_lesions_matches_both_and_is_no_false_positive():
    t = _square(SHAPE, 10, 10, 8) | _square(SHAPE, 10, 40, 8)  # 22 px apart: two lesions, not merged
    bridge = np.zeros(SHAPE, dtype=bool)
    bridge[12:16, 8:50] = True
    far = _square(SHAPE, 50, 50, 3)
    dice, hd = lesion_scores_slice(t, bridge | far)
    assert (dice, hd) == _brats_reference(t, bridge | far)
    # two matched lesions (each against the whole bridge) and one false positive
    assert dice == pytest.approx(2 * (2 * 32 / (64 + 168)) / 3)


def test_the_crop_never_changes_a_score_at_the_image_edge():
    t = _square((240, 240), 0, 0, 12) | _square((240, 240), 228, 228, 12)
    p = _square((240, 240), 2, 0, 12) | _square((240, 240), 235, 0, 5)
    assert lesion_scores_slice(t, p) == pytest.approx(_brats_reference(t, p))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_bad_dilation_or_threshold_is_a_named_error(bad):
    t = _square(SHAPE, 10, 10, 10)
    with pytest.raises(BadArgumentError):
        lesion_scores_slice(t, t, dilation=bad)
    with pytest.raises(BadArgumentError):
        lesion_scores_per_slice(t[None], t[None], size_threshold=bad)


def test_a_submission_scores_the_mean_over_slices():
    y = np.stack([_square(SHAPE, 10, 10, 10), np.zeros(SHAPE, bool), _square(SHAPE, 10, 10, 10)]).astype(np.uint8)
    p = np.stack([_square(SHAPE, 10, 10, 10), np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)]).astype(np.uint8)
    assert LesionDice()(y, p) == pytest.approx((1 + 1 + 0) / 3)
    assert LesionHD95()(y, p) == pytest.approx((0 + 0 + WORST) / 3)
    assert LesionDice()(y[:0], p[:0]) == 1.0 and LesionHD95()(y[:0], p[:0]) == 0.0


small_masks = arrays(np.bool_, (24, 24), elements=st.booleans())


def _blobs(draw_mask):
    """Blobby masks: random pixels grown by a dilation, so that components and holes of several sizes appear."""
    return ndimage.binary_dilation(draw_mask, iterations=1)


@settings(max_examples=60, deadline=None)
@given(t=small_masks, p=small_masks, sparse=st.integers(0, 3))
def test_lesion_scores_follow_the_brats_reference(t, p, sparse):
    # thin the random pixels, then grow them: a mix of lesions, touching pieces and isolated false positives
    rng = np.random.default_rng(int(t.sum()) * 31 + int(p.sum()))
    keep = rng.random(t.shape) < 0.05 * (sparse + 1)
    t, p = _blobs(t & keep), _blobs(p & keep.T)
    for threshold in (0, 4, LESION_SIZE_THRESHOLD):
        for dilation in (0, 1, LESION_DILATION):
            assert lesion_scores_slice(t, p, dilation=dilation, size_threshold=threshold) == pytest.approx(
                _brats_reference(t, p, dilation, threshold)
            )


def _scene(seed, shape, density, grow, scatter):
    """A truth and a prediction: grown random blobs, a shifted copy of part of the truth, scattered pixels."""
    rng = np.random.default_rng(seed)
    t = ndimage.binary_dilation(rng.random(shape) < density, iterations=grow) if grow else rng.random(shape) < density
    p = ndimage.binary_dilation(rng.random(shape) < density, iterations=grow) if grow else rng.random(shape) < density
    p |= np.roll(t, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1)) & (rng.random(shape) < 0.9)
    return t, p | (rng.random(shape) < scatter)


_seeds = st.integers(0, 2**32 - 1)
#: Dense scenes on small slices; sparse ones (a few lesions, scattered pixels) on the course's 240 x 240,
#: where the pixel-by-pixel reference would take seconds on a dense one.
scenes = st.one_of(
    st.builds(_scene, _seeds, st.sampled_from([(40, 40), (64, 64)]), st.sampled_from([0.002, 0.01, 0.05]),
              st.integers(0, 4), st.sampled_from([0.0, 0.02])),
    st.builds(_scene, _seeds, st.just((240, 240)), st.sampled_from([0.0001, 0.0003]), st.integers(2, 8),
              st.sampled_from([0.0, 0.002])),
)


@settings(max_examples=30, deadline=None)
@given(scene=scenes, dilation=st.sampled_from([0, 1, LESION_DILATION, 6]), threshold=st.sampled_from([0, 16]))
def test_lesion_scores_are_exactly_the_brats_references_on_full_size_slices(scene, dilation, threshold):
    # Exact equality, not approx: the fast path (zones, pairs, all-pair or KD-tree distances) must change no bit
    # of the step-by-step port's result, on slices up to the course's 240 x 240 with scattered false positives
    t, p = scene
    assert lesion_scores_slice(t, p, dilation=dilation, size_threshold=threshold) == _brats_reference(
        t, p, dilation, threshold)


@settings(max_examples=40, deadline=None)
@given(mask=arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))), iterations=st.integers(0, 5))
def test_the_cross_dilation_is_scipys(mask, iterations):
    from grader.lesions import _cross_dilation

    cross = ndimage.generate_binary_structure(2, 1)
    expected = ndimage.binary_dilation(mask, cross, iterations=iterations) if iterations else mask
    assert np.array_equal(_cross_dilation(mask, iterations), expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), m=st.integers(1, 400))
def test_nearest_both_gives_the_same_distances_on_either_path(seed, n, m):
    # around the switch from all pairs to KD-trees (40,000 pairs): both paths, and the brute force, agree exactly
    from scipy.spatial import cKDTree
    from grader.surface import nearest_both

    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 240, size=(n, 2)), rng.integers(0, 240, size=(m, 2))
    a_to_b, b_to_a = nearest_both(a, b)
    all_pairs = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    assert np.array_equal(a_to_b, all_pairs.min(axis=1)) and np.array_equal(b_to_a, all_pairs.min(axis=0))
    assert np.array_equal(a_to_b, cKDTree(b).query(a)[0]) and np.array_equal(b_to_a, cKDTree(a).query(b)[0])


@settings(max_examples=60, deadline=None)
@given(a=st.lists(st.integers(0, 3000), min_size=1, max_size=60),
       b=st.lists(st.integers(0, 3000), min_size=1, max_size=60))
def test_the_larger_percentile_is_the_larger_of_both_percentiles(a, b):
    # distances are square roots of integers: ties, zeros and near-equal values, as on real slices
    from grader.hausdorff import larger_percentile

    a, b = np.sqrt(np.array(a, dtype=np.float64)), np.sqrt(np.array(b, dtype=np.float64))
    expected = float(max(np.percentile(a, HD_PERCENTILE), np.percentile(b, HD_PERCENTILE)))
    assert larger_percentile(a, b) == expected and larger_percentile(b, a) == expected


# ---------------------------------------------------------------- NSD


def test_nsd_hand_made_cases():
    t = _square(SHAPE, 10, 10, 10)
    assert nsd_slice(t, t) == 1.0
    assert nsd_slice(t, np.roll(t, 1, axis=0)) == 1.0  # every surface pixel within 1 px
    assert nsd_slice(t, np.roll(t, 1, axis=0), tau=0) < 1.0
    assert nsd_slice(t, _square(SHAPE, 40, 40, 10)) == 0.0  # far apart
    assert nsd_slice(t, np.zeros(SHAPE, bool)) == 0.0 and nsd_slice(np.zeros(SHAPE, bool), t) == 0.0
    assert nsd_slice(np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)) == 1.0
    assert NSD()(t[None], t[None]) == 1.0 and NSD()(t[None][:0], t[None][:0]) == 1.0


@pytest.mark.parametrize("tau", [-1, float("nan"), float("inf"), "x", None])
def test_nsd_refuses_a_bad_tolerance(tau):
    t = _square(SHAPE, 10, 10, 10)
    with pytest.raises(BadArgumentError):
        nsd_slice(t, t, tau)
    with pytest.raises(BadArgumentError):
        nsd_per_slice(t[None], t[None], tau)


@settings(max_examples=60, deadline=None)
@given(t=small_masks, p=small_masks, tau=st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0]))
def test_nsd_and_hd95_match_the_brute_force_references(t, p, tau):
    assert np.array_equal(surface(t), _brute_surface(t))
    assert nsd_slice(t, p, tau) == pytest.approx(_brute_nsd(t, p, tau))
    assert hd95_slice(t, p) == pytest.approx(_brute_hd95(t, p))


@settings(max_examples=40, deadline=None)
@given(t=small_masks, p=small_masks)
def test_nsd_agrees_with_deepmind_where_surfels_and_pixels_must_agree(t, p):
    sd = pytest.importorskip("surface_distance")
    t, p = _blobs(t), _blobs(p)
    if not t.any() or not p.any():
        return
    ours_large = nsd_slice(t, p, tau=100.0)
    theirs_large = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(t, p, (1.0, 1.0)), 100.0)
    assert ours_large == theirs_large == 1.0  # a tolerance beyond the image: every surface is within it
    theirs_self = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(t, t, (1.0, 1.0)), 0.0)
    assert nsd_slice(t, t, tau=0.0) == theirs_self == 1.0


def test_nsd_pixels_and_deepmind_surfels_differ_as_documented():
    sd = pytest.importorskip("surface_distance")
    t = _square(SHAPE, 10, 10, 10)
    p = np.roll(t, 2, axis=1)
    theirs = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(t, p, (1.0, 1.0)), 1.0)
    ours = nsd_slice(t, p, 1.0)
    # a 2-pixel shift: a share of pixels (ours) vs a share of contour length between pixels (DeepMind)
    assert 0 < ours < 1 and 0 < theirs < 1 and ours != pytest.approx(theirs)


# ---------------------------------------------------------------- HD95 against MedPy (the test extra)


@settings(max_examples=60, deadline=None)
@given(t=small_masks, p=small_masks)
def test_hd95_uses_medpys_surfaces_and_distances_with_the_directed_maximum(t, p):
    binary = pytest.importorskip("medpy.metric.binary")
    if not t.any() or not p.any():
        return
    # medpy's surface distances with connectivity 1 are the kit's; only the percentile rule differs
    p_to_t = getattr(binary, "__surface_distances")(p, t, None, 1)
    t_to_p = getattr(binary, "__surface_distances")(t, p, None, 1)
    assert hd95_slice(t, p) == pytest.approx(max(np.percentile(p_to_t, 95), np.percentile(t_to_p, 95)))
    assert binary.hd95(p, t) == pytest.approx(np.percentile(np.hstack((p_to_t, t_to_p)), 95))


def test_medpys_pooled_hd95_can_be_larger_or_smaller_than_the_kits():
    binary = pytest.importorskip("medpy.metric.binary")
    smaller = (np.zeros((30, 30), bool), np.zeros((30, 30), bool))
    smaller[0][10, 10] = smaller[0][20, 20] = True
    smaller[1][10, 10] = smaller[1][20, 21] = True
    assert binary.hd95(smaller[1], smaller[0]) == pytest.approx(1.0) and hd95_slice(*smaller) == pytest.approx(0.95)
    # three pixels each: the pooled percentile interpolates towards a larger distance (4.0 against 3.8)
    t, p = np.zeros((12, 12), bool), np.zeros((12, 12), bool)
    t[[0, 0, 10], [4, 9, 6]] = True
    p[[0, 1, 10], [6, 10, 2]] = True
    assert binary.hd95(p, t) == pytest.approx(4.0) and hd95_slice(t, p) == pytest.approx(3.8)


# ---------------------------------------------------------------- names and the score() entry point


def test_metric_names_are_checked_and_ordered():
    assert metric_names(["nsd", "dice"]) == ["dice", "nsd"]
    for bad in ("", "dice,", "dice;nsd", "x" * 10_000, "__class__"):
        with pytest.raises(BadArgumentError) as err:
            metric_names(bad)
        assert len(str(err.value)) < 600  # a hostile name is cut, never echoed whole


def test_score_with_metrics_returns_exactly_those():
    y = np.stack([_square((240, 240), 10, 10, 20)]).astype(np.uint8)
    out = score(y, y, metrics="lesion_hd95,dice,nsd,lesion_dice")
    assert set(out) == {"dice", "lesion_dice", "lesion_hd95", "nsd", "n_slices"}
    assert out["lesion_dice"] == 1.0 and out["lesion_hd95"] == 0.0 and out["nsd"] == 1.0
    assert set(score(y, y, metrics="nsd", hd95=True)) == {"nsd", "hd95", "n_slices"}
