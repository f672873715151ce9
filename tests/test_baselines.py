"""The baselines: features, sampler, post-processing, the segmenter's estimator contract, model files."""
from __future__ import annotations

import copy

import joblib
import numpy as np
import pytest
from scipy import ndimage
from sklearn.base import clone
from sklearn.utils.validation import NotFittedError

import data_spec as ds
from baselines import (
    BASELINES,
    BalancedSampler,
    ClusterClassifier,
    IncompatibleModelError,
    MultiScaleFeatures,
    NotAModelError,
    PixelFeatures,
    PixelSegmenter,
    ThresholdClassifier,
    UnknownBaselineError,
    WindowFeatures,
    load_model,
    make_baseline,
    make_mlp,
    postprocess,
    save_model,
    tune_postprocessing,
)
from baselines.postprocess import IDENTITY, fill_slice_holes, remove_small
from baselines.train import Rows, split_by_patient
from conftest import make_slices
from starter import foreground_mask


@pytest.fixture(scope="module")
def data():
    x, y = make_slices(8, seed=3)
    xv, yv = make_slices(4, seed=4)
    return x, y, xv, yv


def small(seg: PixelSegmenter) -> PixelSegmenter:
    """The same model on a small sample, for fast tests."""
    return seg.set_params(sampler=BalancedSampler(neg_ratio=1.0, min_negatives=50, max_per_slice=300, max_vectors=2000))


@pytest.fixture(scope="module")
def fitted(data):
    x, y, _, _ = data
    seg = PixelSegmenter(WindowFeatures(3), make_mlp(hidden=(16,), max_iter=30), random_state=0)
    return small(seg).fit(x, y)


# -- features -------------------------------------------------------------------------------------


def naive_window(xi, r, c, size):
    h, mins = size // 2, xi.min(axis=(0, 1))
    out = []
    for dy in range(-h, h + 1):
        for dx in range(-h, h + 1):
            rr, cc = r + dy, c + dx
            inside = 0 <= rr < xi.shape[0] and 0 <= cc < xi.shape[1]
            out.extend(xi[rr, cc] if inside else mins)
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_window_features_match_a_naive_loop(size):
    x, _ = make_slices(1, seed=7)
    rows = np.array([0, 0, 239, 120, 5, 239])
    cols = np.array([0, 239, 239, 120, 7, 3])
    got = WindowFeatures(size).transform_slice(x[0], rows, cols)
    assert got.dtype == np.float32 and got.shape == (6, size * size * 4)
    for k, (r, c) in enumerate(zip(rows, cols)):
        np.testing.assert_array_equal(got[k], naive_window(x[0], r, c, size))
    assert len(WindowFeatures(size).feature_names()) == size * size * 4


def test_pixel_features_are_the_four_modalities():
    x, _ = make_slices(1, seed=8)
    got = PixelFeatures().transform_slice(x[0], np.array([3, 100]), np.array([4, 120]))
    np.testing.assert_array_equal(got, x[0][[3, 100], [4, 120]])
    assert PixelFeatures().feature_names() == list(ds.MODALITIES)


def test_multiscale_features_match_naive_stencils_per_pixel():
    x, _ = make_slices(1, seed=9)
    xi = x[0]
    builder = MultiScaleFeatures(window=3, sigmas=(1, 4))
    rows, cols = np.array([120, 60, 1, 200]), np.array([110, 70, 238, 5])
    got = builder.transform_slice(xi, rows, cols)
    names = builder.feature_names()
    assert got.dtype == np.float32 and got.shape == (4, len(names)) == (4, 36 + 4 * 2 * 4)
    np.testing.assert_array_equal(got[:, :36], WindowFeatures(3).transform_slice(xi, rows, cols))
    for m, modality in enumerate(ds.MODALITIES):
        ch = xi[..., m].astype(np.float64)
        for s in (1, 4):
            g = ndimage.gaussian_filter(ch, s)
            g2 = ndimage.gaussian_filter(ch * ch, s)
            for k, (r, c) in enumerate(zip(rows, cols)):
                dy, dx = (g[r + 1, c] - g[r - 1, c]) / 2, (g[r, c + 1] - g[r, c - 1]) / 2
                expected = {
                    "mean": g[r, c],
                    "gradient": np.hypot(dy, dx),
                    "laplace": g[r + 1, c] + g[r - 1, c] + g[r, c + 1] + g[r, c - 1] - 4 * g[r, c],
                    "std": np.sqrt(max(g2[r, c] - g[r, c] ** 2, 0)),
                }
                for kind, value in expected.items():
                    col = names.index(f"{kind}({modality}, {s:g})")
                    assert got[k, col] == pytest.approx(value, rel=1e-3, abs=1e-3), (kind, modality, s, r, c)


def test_multiscale_derivatives_approximate_gaussian_derivative_filters():
    x, _ = make_slices(1, seed=9)
    builder = MultiScaleFeatures(window=1, sigmas=(4,), mean=False, std=False)
    rows, cols = np.nonzero(foreground_mask(x[0]))
    got = builder.transform_slice(x[0], rows, cols)[:, 4:]
    flair = x[0][..., 3].astype(np.float64)
    grad = ndimage.gaussian_gradient_magnitude(flair, 4)[rows, cols]
    log = ndimage.gaussian_laplace(flair, 4)[rows, cols]
    names = builder.feature_names()[4:]
    assert np.corrcoef(got[:, names.index("gradient(flair, 4)")], grad)[0, 1] > 0.99
    assert np.corrcoef(got[:, names.index("laplace(flair, 4)")], log)[0, 1] > 0.99


def test_multiscale_filters_can_be_switched_off():
    x, _ = make_slices(1, seed=9)
    only_mean = MultiScaleFeatures(window=1, sigmas=(2, 4, 8), gradient=False, laplace=False, std=False)
    got = only_mean.transform_slice(x[0], np.array([100]), np.array([100]))
    assert got.shape == (1, 4 + 4 * 3)
    assert MultiScaleFeatures(window=5, sigmas=()).transform_slice(x[0], [1], [1]).shape == (1, 100)


def test_features_reject_a_wrong_slice():
    with pytest.raises(ds.ArrayContractError):
        PixelFeatures().transform_slice(np.zeros((4, 240, 240), np.float32), [0], [0])
    with pytest.raises(ValueError, match="odd"):
        PixelSegmenter(WindowFeatures(4)).fit(*make_slices(2, seed=1))


# -- sampler -------------------------------------------------------------------------------------


def test_sampler_is_background_free_bounded_and_seeded():
    x, y = make_slices(8, seed=11)
    fg = foreground_mask(x)
    index = BalancedSampler(neg_ratio=2, min_negatives=50, max_per_slice=400, max_vectors=None).sample(y, fg, seed=3)
    assert fg[index[:, 0], index[:, 1], index[:, 2]].all()
    per_slice = np.bincount(index[:, 0], minlength=8)
    assert per_slice.max() <= 400 and (per_slice > 0).all()
    capped = BalancedSampler(neg_ratio=2, max_per_slice=400, max_vectors=1000).sample(y, fg, seed=3)
    assert len(capped) == 1000
    labels = y[capped[:, 0], capped[:, 1], capped[:, 2]]
    assert 0.2 < labels.mean() < 0.5  # tumour kept at about a third: balanced, not the cohort's few percent
    again = BalancedSampler(neg_ratio=2, max_per_slice=400, max_vectors=1000).sample(y, fg, seed=3)
    np.testing.assert_array_equal(capped, again)


def test_sampler_takes_every_tumour_pixel_when_uncapped():
    x, y = make_slices(4, seed=12)
    fg = foreground_mask(x)
    index = BalancedSampler(neg_ratio=1, max_per_slice=None, max_vectors=None).sample(y, fg, seed=0)
    assert y[index[:, 0], index[:, 1], index[:, 2]].sum() == (y.astype(bool) & fg).sum()


# -- post-processing ------------------------------------------------------------------------------


def disc(cy, cx, r):
    rows, cols = np.mgrid[:240, :240]
    return (rows - cy) ** 2 + (cols - cx) ** 2 < r**2


def test_two_separate_tumours_both_survive_and_specks_go():
    proba = np.zeros((1, 240, 240), np.float32)
    proba[0][disc(60, 60, 10)] = 0.9   # one focus
    proba[0][disc(180, 170, 6)] = 0.8  # a second, smaller focus: multifocal, must stay
    proba[0, 120, 20:23] = 0.9         # a 3-pixel speck
    fg = np.ones_like(proba, dtype=bool)
    out = postprocess(proba, fg, threshold=0.5, min_size=20)
    assert out.dtype == np.uint8
    _, n = ndimage.label(out[0])
    assert n == 2
    assert out[0][disc(60, 60, 10)].all() and out[0][disc(180, 170, 6)].all()
    assert out[0, 120, 20:23].sum() == 0
    assert postprocess(proba, fg, min_size=0)[0, 120, 20:23].sum() == 3


def test_holes_are_filled_per_slice_inside_the_foreground():
    ring = disc(100, 100, 20) & ~disc(100, 100, 8)
    mask = np.stack([ring, np.zeros_like(ring), ring])
    filled = fill_slice_holes(mask)
    np.testing.assert_array_equal(filled[0], disc(100, 100, 20))
    assert not filled[1].any()
    fg = np.ones_like(mask)
    fg[2][disc(100, 100, 3)] = False
    np.testing.assert_array_equal(fill_slice_holes(mask, fg)[2], disc(100, 100, 20) & ~disc(100, 100, 3))
    # per slice: components are never joined across slices
    stacked = np.zeros((2, 240, 240), bool)
    stacked[:, 50:54, 50:54] = True
    assert remove_small(stacked, 17).sum() == 0 and remove_small(stacked, 16).sum() == 32


def test_prediction_never_leaves_the_foreground():
    proba = np.ones((1, 240, 240), np.float32)
    fg = disc(120, 120, 50)[None]
    out = postprocess(proba, fg, threshold=0.2, fill_holes=True)
    np.testing.assert_array_equal(out.astype(bool), fg)


@pytest.mark.parametrize("seed", range(4))
def test_tuning_never_lowers_validation_dice(seed):
    from grader.metrics import score

    rng = np.random.default_rng(seed)
    y = np.zeros((5, 240, 240), np.uint8)
    y[0][disc(100, 100, 15)] = 1
    y[1][disc(60, 150, 9)] = 1
    y[1][disc(160, 60, 12)] = 1
    proba = np.clip(y * 0.6 + rng.uniform(0, 0.55, y.shape), 0, 1).astype(np.float32)
    fg = np.ones(y.shape, bool)
    best, results = tune_postprocessing(proba, fg, y, thresholds=(0.4, 0.55, 0.7), min_sizes=(0, 30))
    assert {k: results[0][k] for k in IDENTITY} == IDENTITY
    identity = score(y, postprocess(proba, fg, **IDENTITY))["dice"]
    assert results[0]["dice"] == pytest.approx(identity)
    tuned = score(y, postprocess(proba, fg, **best))["dice"]
    assert tuned >= identity
    assert tuned == pytest.approx(max(r["dice"] for r in results))
    assert len(results) == 4 * 2 * 2  # 0.5 added to the thresholds, both fill settings


def test_tuning_scores_are_the_graders_on_the_post_processed_masks():
    from grader.metrics import score

    rng = np.random.default_rng(5)
    y = np.zeros((4, 240, 240), np.uint8)
    y[0][disc(100, 100, 15) & ~disc(100, 100, 4)] = 1
    y[2][disc(60, 150, 9) | disc(160, 60, 12)] = 1
    noise = ndimage.gaussian_filter(rng.uniform(0, 1, y.shape), (0, 1.5, 1.5))
    proba = np.clip(0.5 * y + noise, 0, 1).astype(np.float32)
    fg = np.zeros(y.shape, bool)
    fg[:, 20:220, 30:230] = True
    fg[1, 100:110, 100:110] = False  # a background hole inside the brain is never filled
    _, results = tune_postprocessing(proba, fg, y, thresholds=(0.45, 0.55, 0.6), min_sizes=(0, 3, 30, 200))
    for r in results:
        expected = score(y, postprocess(proba, fg, **{k: r[k] for k in IDENTITY}))
        assert (r["dice"], r["f1"]) == pytest.approx((expected["dice"], expected["f1"]), abs=1e-12), r


def test_fill_holes_matches_scipy_per_slice():
    rng = np.random.default_rng(2)
    mask = ndimage.binary_dilation(rng.uniform(size=(3, 240, 240)) < 0.02, iterations=2) | (
        rng.uniform(size=(3, 240, 240)) < 0.3
    )
    expected = np.stack([ndimage.binary_fill_holes(m) for m in mask])
    np.testing.assert_array_equal(fill_slice_holes(mask), expected)


def test_tuning_keeps_the_identity_when_nothing_beats_it():
    y = np.zeros((2, 240, 240), np.uint8)
    y[0][disc(100, 100, 15)] = 1
    proba = y.astype(np.float32)  # perfect already
    best, _ = tune_postprocessing(proba, np.ones(y.shape, bool), y)
    assert best == IDENTITY


# -- classifiers ----------------------------------------------------------------------------------


def test_cluster_classifier_maps_clusters_by_the_labels():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.3, (300, 2)), rng.normal(5, 0.3, (100, 2))]).astype(np.float32)
    y = np.r_[np.zeros(300), np.ones(100)].astype(int)
    y[:10] = 1  # a few mislabelled pixels do not flip a cluster
    clf = ClusterClassifier(KMeans(2, n_init=2, random_state=0)).fit(X, y)
    assert sorted(np.round(clf.cluster_tumour_rate_, 3)) == [round(10 / 300, 3), 1.0]
    np.testing.assert_array_equal(clf.predict(X[10:]), y[10:])
    assert clf.predict_proba(X).shape == (400, 2)


def test_threshold_classifier_learns_the_cut():
    values = np.arange(100, dtype=np.float32)
    X = np.column_stack([np.zeros(100), values]).astype(np.float32)
    y = (values >= 70).astype(int)
    clf = ThresholdClassifier(feature=1).fit(X, y)
    assert clf.threshold_ == 70
    np.testing.assert_array_equal(clf.predict(X), y)


# -- the segmenter's estimator contract -----------------------------------------------------------


def test_segmenter_clone_and_params():
    seg = PixelSegmenter(WindowFeatures(3), make_mlp(), threshold=0.6)
    params = seg.get_params()
    assert params["threshold"] == 0.6 and params["features__size"] == 3
    twin = clone(seg)
    assert twin is not seg and twin.get_params()["features__size"] == 3
    twin.set_params(features__size=5, classifier__mlpclassifier__alpha=1e-2)
    assert seg.features.size == 3 and twin.features.size == 5
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((1, 240, 240, 4), np.float32))


def test_fit_predict_shapes_dtypes_and_foreground_only(fitted, data):
    _, _, xv, _ = data
    proba = fitted.predict_proba(xv)
    masks = fitted.predict(xv)
    assert proba.shape == masks.shape == (4, 240, 240)
    assert proba.dtype == np.float32 and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1}
    background = ~foreground_mask(xv)
    assert (proba[background] == 0).all() and (masks[background] == 0).all()
    assert fitted.n_features_ == 36 and 0 < fitted.n_train_vectors_ <= 2000
    assert fitted.postprocess_ == IDENTITY


def test_fit_is_deterministic_with_a_seed(fitted, data):
    x, y, xv, _ = data
    again = clone(fitted).fit(x, y)
    np.testing.assert_array_equal(again.predict_proba(xv), fitted.predict_proba(xv))
    other = clone(fitted).set_params(random_state=1).fit(x, y)
    assert not np.array_equal(other.predict_proba(xv), fitted.predict_proba(xv))


def test_fit_reads_lazy_arrays(data):
    x, y, xv, _ = data
    rows = np.arange(len(x))
    seg = small(PixelSegmenter(PixelFeatures(), ThresholdClassifier()))
    a = clone(seg).fit(Rows(x, rows), Rows(y, rows)).predict(xv)
    b = clone(seg).fit(x, y).predict(xv)
    np.testing.assert_array_equal(a, b)


def test_fit_rejects_bad_inputs(data):
    x, y, _, _ = data
    seg = small(PixelSegmenter(PixelFeatures(), ThresholdClassifier()))
    with pytest.raises(ds.ArrayContractError):
        seg.fit(x[0], y[0])
    with pytest.raises(ds.ArrayContractError):
        seg.fit(x, y[:3])
    with pytest.raises(ds.ArrayContractError, match="single class"):
        seg.fit(x, np.zeros_like(y))


def test_model_selection_on_slices_uses_the_graders_dice(data):
    from sklearn.model_selection import GridSearchCV

    x, y, _, _ = data
    seg = small(PixelSegmenter(PixelFeatures(), ThresholdClassifier()))
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    from grader import score

    folds = list(KFold(2).split(x))
    search = GridSearchCV(seg, {"min_size": [0, 50]}, cv=folds).fit(x, y)
    assert search.best_params_["min_size"] in (0, 50)
    assert search.best_estimator_.postprocess_["min_size"] == search.best_params_["min_size"]
    # each fold's score is the grader's Dice of that fold's predictions, recomputed here
    for k, (train, test) in enumerate(folds):
        fold = clone(seg).set_params(**search.best_params_).fit(x[train], y[train])
        expected = score(y[test], fold.predict(x[test]))["dice"]
        assert search.cv_results_[f"split{k}_test_score"][search.best_index_] == pytest.approx(expected)


def test_tune_sets_the_post_processing(fitted, data):
    _, _, xv, yv = data
    tuned = copy.deepcopy(fitted)
    tuned.tune(xv, yv, thresholds=(0.3, 0.7), min_sizes=(0, 50))
    assert tuned.tuning_[0]["dice"] <= max(r["dice"] for r in tuned.tuning_)
    best = max(tuned.tuning_, key=lambda r: r["dice"])
    assert best["dice"] == pytest.approx(tuned.score(xv, yv))
    np.testing.assert_array_equal(
        tuned.predict(xv), postprocess(fitted.predict_proba(xv), foreground_mask(xv), **tuned.postprocess_)
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a tiny sample
@pytest.mark.parametrize("name", list(BASELINES))
def test_every_named_baseline_fits_and_predicts(name, data):
    x, y, xv, _ = data
    seg = small(make_baseline(name, seed=0))
    assert isinstance(seg, PixelSegmenter) and clone(seg).get_params()["random_state"] == 0
    masks = seg.fit(x, y).predict(xv)
    assert masks.shape == (4, 240, 240) and masks.dtype == np.uint8


def test_unknown_baseline_is_a_named_error():
    with pytest.raises(UnknownBaselineError, match="baseline list"):
        make_baseline("random-forest")


def test_split_by_patient_is_disjoint_complete_and_seeded():
    ids = ds.case_ids("train", 20)
    tr, va = split_by_patient(ids, 0.2, seed=0)
    assert len(va) == 4 and not set(tr) & set(va) and sorted(np.r_[tr, va]) == list(range(20))
    np.testing.assert_array_equal(va, split_by_patient(ids, 0.2, seed=0)[1])
    groups = np.repeat(np.arange(5), 4)  # four slices per patient
    tr, va = split_by_patient(ids, 0.4, seed=1, groups=groups)
    assert not set(groups[tr]) & set(groups[va])


# -- model files ----------------------------------------------------------------------------------


def test_model_file_round_trip(fitted, data, tmp_path):
    _, _, xv, _ = data
    path = save_model(tmp_path / "m.joblib", fitted, baseline="mlp-window3", seed=0, metrics={"dice": 0.5})
    payload = load_model(path)
    assert payload["baseline"] == "mlp-window3" and payload["metrics"] == {"dice": 0.5}
    assert payload["spec_version"] == ds.SPEC_VERSION
    np.testing.assert_array_equal(payload["estimator"].predict(xv), fitted.predict(xv))
    assert not list(tmp_path.glob(".*tmp"))


def test_missing_model_file(tmp_path):
    with pytest.raises(ds.MissingFileError, match="baseline train"):
        load_model(tmp_path / "nope.joblib")


@pytest.mark.parametrize("content", [b"", b"not a model at all\n", bytes(range(256)) * 4])
def test_corrupt_model_file(tmp_path, content):
    path = tmp_path / "bad.joblib"
    path.write_bytes(content)
    with pytest.raises(NotAModelError) as info:
        load_model(path)
    assert info.value.code == "not_a_model" and isinstance(info.value, ds.CorruptFileError)


def test_joblib_file_is_never_unpickled(tmp_path):
    path = tmp_path / "list.joblib"
    joblib.dump([1, 2, 3], path)
    with pytest.raises(NotAModelError, match="pickle"):
        load_model(path)


def test_skops_file_that_is_not_a_model(tmp_path):
    import skops.io as sio

    path = tmp_path / "list.skops"
    sio.dump([1, 2, 3], path)
    with pytest.raises(NotAModelError, match="not a brats-kit model"):
        load_model(path)


def test_truncated_model_file(fitted, tmp_path):
    path = save_model(tmp_path / "m.joblib", fitted, baseline="x")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(NotAModelError):
        load_model(path)


@pytest.mark.parametrize(
    "field, value", [("spec_version", "0.9"), ("kit_version", "99.0.0"), ("sklearn_version", "0.1"), ("format_version", 99)]
)
def test_incompatible_model_file(fitted, tmp_path, field, value):
    import skops.io as sio
    from baselines.model_file import TRUSTED_TYPES

    path = save_model(tmp_path / "m.joblib", fitted, baseline="x")
    payload = sio.load(path, trusted=list(TRUSTED_TYPES))
    payload[field] = value
    sio.dump(payload, path)
    with pytest.raises(IncompatibleModelError, match="retrain") as info:
        load_model(path)
    assert info.value.code == "incompatible_model"
