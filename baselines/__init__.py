"""Reference baselines: the course's classical pixel classifiers, ready for the leaderboard.

>>> import numpy as np
>>> from baselines import make_baseline, baseline_names
>>> from grader import score
>>> "mlp-window3" in baseline_names()
True
>>> rng = np.random.default_rng(0)                        # four tiny slices, a bright FLAIR lesion on each
>>> x = rng.normal(size=(4, 240, 240, 4)).astype(np.float32)
>>> y = np.zeros((4, 240, 240), np.uint8); y[:, 100:130, 100:130] = 1
>>> x[..., 3][y == 1] += 3
>>> seg = make_baseline("flair-threshold").fit(x[:2], y[:2])   # train on two slices
>>> masks = seg.tune(x[2:3], y[2:3]).predict(x[3:])           # post-processing tuned on a third
>>> masks.shape, masks.dtype
((1, 240, 240), dtype('uint8'))
>>> score(y[3:], masks)["dice"] > 0.9
True

Modules: :mod:`~baselines.features` (pixel, window and multi-scale vectors),
:mod:`~baselines.sampling` (the bounded class-balanced sample),
:mod:`~baselines.classifiers` (SVM, MLP, clustering, threshold),
:mod:`~baselines.segmenter` (the scikit-learn segmenter),
:mod:`~baselines.postprocess` (threshold, small components, holes; tuning),
:mod:`~baselines.registry` (the named baselines), :mod:`~baselines.model_file`,
:mod:`~baselines.train` and :mod:`~baselines.compare` (what the CLI runs).
"""
from .classifiers import ClusterClassifier, ThresholdClassifier, make_mlp, make_svm
from .features import MultiScaleFeatures, PixelFeatures, WindowFeatures
from .model_file import IncompatibleModelError, NotAModelError, load_model, save_model
from .postprocess import IDENTITY, postprocess, tune_postprocessing
from .registry import BASELINES, UnknownBaselineError, baseline_names, get_baseline, make_baseline
from .sampling import BalancedSampler
from .segmenter import PixelSegmenter

__all__ = [
    "BASELINES",
    "BalancedSampler",
    "ClusterClassifier",
    "IDENTITY",
    "IncompatibleModelError",
    "MultiScaleFeatures",
    "NotAModelError",
    "PixelFeatures",
    "PixelSegmenter",
    "ThresholdClassifier",
    "UnknownBaselineError",
    "WindowFeatures",
    "baseline_names",
    "get_baseline",
    "load_model",
    "make_baseline",
    "make_mlp",
    "make_svm",
    "postprocess",
    "save_model",
    "tune_postprocessing",
]
