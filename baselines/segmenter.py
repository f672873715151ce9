"""A scikit-learn compatible segmenter: slices in, tumour masks out.

:class:`PixelSegmenter` composes a feature builder (:mod:`baselines.features`),
a class-balanced sampler (:mod:`baselines.sampling`), a classifier
(:mod:`baselines.classifiers` or any scikit-learn classifier) and the
post-processing (:mod:`baselines.postprocess`). Its samples are whole slices:
``fit(X, Y)`` takes inputs (N, 240, 240, 4) and masks (N, 240, 240), and
``predict(X)`` returns masks, so ``clone``, ``cross_val_score`` and
``GridSearchCV`` work on slices as they do on rows.

>>> import numpy as np
>>> from baselines import PixelSegmenter, WindowFeatures, make_mlp
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(4, 240, 240, 4)).astype(np.float32)
>>> y = np.zeros((4, 240, 240), np.uint8); y[:, 100:130, 100:130] = 1
>>> x[..., 3][y == 1] += 3
>>> seg = PixelSegmenter(WindowFeatures(3), make_mlp()).fit(x[:2], y[:2])
>>> seg = seg.tune(x[2:3], y[2:3])      # post-processing chosen on validation
>>> masks = seg.predict(x[3:])          # uint8 (N, 240, 240)
>>> masks.shape, masks.dtype
((1, 240, 240), dtype('uint8'))
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from plumbing.progress import no_progress
from data_spec import Y_DTYPE, Y_ITEM_SHAPE, ArrayContractError
from data_spec.background import DEFAULT_FOREGROUND_RULE, check_rule
from starter.features import check_inputs, check_masks, foreground_mask

from .classifiers import make_mlp
from .features import PixelFeatures, check_features
from .postprocess import IDENTITY, postprocess, tune_postprocessing
from .sampling import BalancedSampler


def _one_blas_thread():
    """BLAS on one thread: mini-batch training multiplies small matrices, where threads cost more
    than they give (measured on 2 shared cores: 10 MLP epochs on 60k x 100 vectors, 1.6 s with one
    thread, 9.4 s with two)."""
    return threadpool_limits(limits=1, user_api="blas")


class PixelSegmenter(BaseEstimator):
    """Classify each foreground pixel of a slice as tumour or not.

    Parameters
    ----------
    features : feature builder, default ``PixelFeatures()``
        :class:`~baselines.features.PixelFeatures`, ``WindowFeatures(k)`` or
        ``MultiScaleFeatures(...)``: how a pixel becomes a vector.
    classifier : scikit-learn classifier, default ``make_mlp()``
        Trained on the sampled vectors; needs ``predict_proba`` or
        ``decision_function`` (then the logistic of it is used).
    sampler : BalancedSampler, default ``BalancedSampler()``
        Which pixels to train on (never background; bounded).
    foreground : {"all", "any"}, default "all"
        Which pixels are brain (:func:`data_spec.background.foreground_mask`):
        ``"all"`` is the course's rule, every modality above its slice minimum.
    threshold, min_size, fill_holes : default 0.5, 0, False
        The post-processing before any tuning (see
        :func:`baselines.postprocess.postprocess`); :meth:`tune` replaces it.
    random_state : int or None, default 0
        Seeds the sampler and, when not None, every ``random_state`` parameter
        of the classifier (the classifier's own values are overridden), so one
        seed makes the whole fit reproducible.

    Attributes
    ----------
    features_ : feature builder (a clone of ``features``)
    classifier_ : the fitted classifier
    postprocess_ : dict
        ``threshold``, ``min_size``, ``fill_holes`` used by :meth:`predict`.
    tuning_ : list of dict or None
        Every setting tried by :meth:`tune`, with its validation scores.
    n_train_vectors_ : int
        Vectors the classifier was trained on.
    n_features_ : int

    Notes
    -----
    Prediction classifies foreground pixels only (background is never tumour):
    ``predict_proba`` is 0 there and ``predict`` 0.
    """

    def __init__(
        self,
        features=None,
        classifier=None,
        sampler=None,
        foreground=DEFAULT_FOREGROUND_RULE,
        threshold=IDENTITY["threshold"],
        min_size=IDENTITY["min_size"],
        fill_holes=IDENTITY["fill_holes"],
        random_state=0,
    ):
        self.features = features
        self.classifier = classifier
        self.sampler = sampler
        self.foreground = foreground
        self.threshold = threshold
        self.min_size = min_size
        self.fill_holes = fill_holes
        self.random_state = random_state

    # -- training -------------------------------------------------------------------------------

    def fit(self, X, Y, progress=no_progress):
        """Train on slices ``X`` (N, 240, 240, 4) and masks ``Y`` (N, 240, 240).

        ``X`` and ``Y`` may be memmaps or lazy HDF5 arrays: they are read one
        slice at a time and only the sampled vectors are ever held.

        Returns
        -------
        self
        """
        n = check_inputs(X, "X")
        check_masks(Y, n, "Y")
        features = check_features(clone(self.features) if self.features is not None else PixelFeatures())
        sampler = clone(self.sampler) if self.sampler is not None else BalancedSampler()
        seed = 0 if self.random_state is None else self.random_state
        check_rule(self.foreground)

        fg = np.empty((n,) + Y_ITEM_SHAPE, dtype=bool)
        for i in progress(range(n), label="foreground", length=n):
            fg[i] = foreground_mask(np.asarray(X[i]), self.foreground)
        index = sampler.sample(Y, fg, seed=seed)
        vectors, labels = self._vectors(features, X, Y, index, progress)
        if len(np.unique(labels)) < 2:
            raise ArrayContractError(
                "the training masks give a single class on the foreground",
                expected="slices with tumour and non-tumour brain pixels",
                hint="check that Y is the masks of X and holds 1 on tumour",
            )
        classifier = clone(self.classifier) if self.classifier is not None else make_mlp()
        if self.random_state is not None:
            seeds = {k: self.random_state for k in classifier.get_params(deep=True) if k.endswith("random_state")}
            classifier.set_params(**seeds)
        with _one_blas_thread():
            classifier.fit(vectors, labels)

        self.features_ = features
        self.classifier_ = classifier
        self.n_features_ = vectors.shape[1]
        self.n_train_vectors_ = len(vectors)
        self.postprocess_ = {
            "threshold": float(self.threshold),
            "min_size": int(self.min_size),
            "fill_holes": bool(self.fill_holes),
        }
        self.tuning_ = None
        return self

    @staticmethod
    def _vectors(features, X, Y, index, progress):
        """Feature vectors and labels of the sampled pixels, one slice at a time."""
        chunks, labels = [], []
        slices = np.unique(index[:, 0])
        for i in progress(slices, label="training vectors", length=len(slices)):
            rows = index[index[:, 0] == i]
            chunks.append(features.transform_slice(np.asarray(X[i]), rows[:, 1], rows[:, 2]))
            labels.append(np.asarray(Y[i])[rows[:, 1], rows[:, 2]])
        if not chunks:
            raise ArrayContractError("no foreground pixel to train on", expected="slices with brain")
        return np.concatenate(chunks), np.concatenate(labels).astype(Y_DTYPE)

    # -- prediction -----------------------------------------------------------------------------

    def _proba_slice(self, xi):
        # Models saved before the rule was a parameter used "any".
        fg = foreground_mask(xi, getattr(self, "foreground", "any"))
        proba = np.zeros(Y_ITEM_SHAPE, dtype=np.float32)
        rows, cols = np.nonzero(fg)
        if len(rows):
            vectors = self.features_.transform_slice(xi, rows, cols)
            clf = self.classifier_
            if hasattr(clf, "predict_proba"):
                p = clf.predict_proba(vectors)[:, -1]  # classes_ are sorted: the last is tumour
            else:
                p = expit(clf.decision_function(vectors))
            proba[rows, cols] = p
        return proba, fg

    def predict_proba_and_foreground(self, X, progress=no_progress):
        """Tumour probabilities and the foreground of slices, both (N, 240, 240)."""
        check_is_fitted(self)
        n = check_inputs(X, "X")
        proba = np.empty((n,) + Y_ITEM_SHAPE, dtype=np.float32)
        fg = np.empty((n,) + Y_ITEM_SHAPE, dtype=bool)
        with _one_blas_thread():
            for i in progress(range(n), label="predicting", length=n):
                proba[i], fg[i] = self._proba_slice(np.asarray(X[i]))
        return proba, fg

    def predict_proba(self, X, progress=no_progress):
        """Probability of tumour per pixel, float32 (N, 240, 240); 0 on background.

        Unlike a row classifier's (n_samples, n_classes), this is one map per
        slice: the probability of the tumour class.
        """
        return self.predict_proba_and_foreground(X, progress)[0]

    def predict(self, X, progress=no_progress):
        """Tumour masks, uint8 (N, 240, 240) of 0/1, post-processed with ``postprocess_``."""
        proba, fg = self.predict_proba_and_foreground(X, progress)
        return postprocess(proba, fg, **self.postprocess_)

    # -- post-processing ------------------------------------------------------------------------

    def tune(self, X_val, Y_val, *, proba=None, foreground=None, progress=no_progress, **grid):
        """Choose the post-processing that maximises the grader's validation Dice.

        Parameters
        ----------
        X_val, Y_val : validation slices and masks (never the training ones)
        proba, foreground : arrays, optional
            Precomputed :meth:`predict_proba_and_foreground` of ``X_val``.
        progress : callable
        **grid
            ``thresholds``, ``min_sizes``, ``fill``, ``objective`` of
            :func:`baselines.postprocess.tune_postprocessing`.

        Returns
        -------
        self
            With ``postprocess_`` and ``tuning_`` set. The identity is in the
            grid, so validation Dice never drops.
        """
        check_is_fitted(self)
        n = check_inputs(X_val, "X_val")
        check_masks(Y_val, n, "Y_val")
        if proba is None or foreground is None:
            proba, foreground = self.predict_proba_and_foreground(X_val, progress)
        best, results = tune_postprocessing(proba, foreground, np.asarray(Y_val), progress=progress, **grid)
        self.postprocess_ = best
        self.tuning_ = results
        return self

    def score(self, X, Y):
        """The grader's mean per-slice Dice of ``predict(X)`` against ``Y`` (for model selection)."""
        from grader.metrics import score

        return float(score(np.asarray(Y), self.predict(X))["dice"])
