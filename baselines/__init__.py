"""Reference baselines: the course's classical pixel classifiers, ready for the leaderboard.

>>> from baselines import make_baseline, baseline_names  # doctest: +SKIP
>>> seg = make_baseline("mlp-window3").fit(x_train, y_train)  # doctest: +SKIP
>>> seg.tune(x_val, y_val).predict(x_test)  # doctest: +SKIP

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
