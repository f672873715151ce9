"""The named baselines: what ``brats-kit baseline list`` shows and ``train NAME`` builds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from data_spec import KitError

from .classifiers import ClusterClassifier, ThresholdClassifier, make_mlp, make_svm
from .features import MultiScaleFeatures, PixelFeatures, WindowFeatures
from .sampling import BalancedSampler
from .segmenter import PixelSegmenter


class UnknownBaselineError(KitError, ValueError):
    """A baseline name that is not in the registry."""

    code = "unknown_baseline"


@dataclass(frozen=True)
class Baseline:
    """A named recipe: ``make(seed)`` returns an unfitted :class:`PixelSegmenter`."""

    name: str
    summary: str
    make: Callable[[int], PixelSegmenter]


# SVM prediction cost grows with the Nystroem landmarks and the training cost with the
# sample, both bounded here; MLPs take more vectors since SGD epochs are cheap.
_SVM_SAMPLE = BalancedSampler(neg_ratio=2.0, max_per_slice=1200, max_vectors=40000)
#: Nystroem landmarks: prediction time is about linear in them. 800 took 9.3 s for the
#: 29-slice test set with the 2 cores nearly idle, 11.6 s under a little load (cohort 3.1);
#: 600 leave a margin under the 10 s budget.
_SVM_LANDMARKS = 600
_MLP_SAMPLE = BalancedSampler(neg_ratio=2.0, max_per_slice=2000, max_vectors=60000)
_CLUSTER_SAMPLE = BalancedSampler(neg_ratio=3.0, max_per_slice=1000, max_vectors=30000)


def _segmenter(features, classifier, sampler, seed):
    return PixelSegmenter(features=features, classifier=classifier, sampler=clone(sampler), random_state=seed)


BASELINES = {
    b.name: b
    for b in [
        Baseline(
            "flair-threshold",
            "the floor: tumour where FLAIR is above a cut learned on training pixels",
            lambda seed: _segmenter(PixelFeatures(), ThresholdClassifier(feature=3), _MLP_SAMPLE, seed),
        ),
        Baseline(
            "svm-pixel",
            "RBF SVM (Nystroem + SGD linear SVM) on the 4 modalities of each pixel",
            lambda seed: _segmenter(PixelFeatures(), make_svm(n_components=_SVM_LANDMARKS, random_state=seed), _SVM_SAMPLE, seed),
        ),
        Baseline(
            "mlp-pixel",
            "neural network (MLP, early stopping) on the 4 modalities of each pixel",
            lambda seed: _segmenter(PixelFeatures(), make_mlp(random_state=seed), _MLP_SAMPLE, seed),
        ),
        Baseline(
            "svm-window3",
            "RBF SVM (Nystroem + SGD) on the 3x3 neighbourhood, 36 features",
            lambda seed: _segmenter(WindowFeatures(3), make_svm(n_components=_SVM_LANDMARKS, random_state=seed), _SVM_SAMPLE, seed),
        ),
        Baseline(
            "mlp-window3",
            "MLP on the 3x3 neighbourhood, 36 features",
            lambda seed: _segmenter(WindowFeatures(3), make_mlp(random_state=seed), _MLP_SAMPLE, seed),
        ),
        Baseline(
            "mlp-window5",
            "MLP on the 5x5 neighbourhood, 100 features",
            lambda seed: _segmenter(WindowFeatures(5), make_mlp(random_state=seed), _MLP_SAMPLE, seed),
        ),
        Baseline(
            "gmm",
            "unsupervised: Gaussian mixture (8 components) on scaled pixel vectors, clusters mapped by the labels",
            lambda seed: _segmenter(
                PixelFeatures(),
                ClusterClassifier(GaussianMixture(8, covariance_type="full", random_state=seed), scale=True),
                _CLUSTER_SAMPLE,
                seed,
            ),
        ),
        Baseline(
            "kmeans",
            "unsupervised: k-means (8 clusters) on scaled pixel vectors, clusters mapped by the labels",
            lambda seed: _segmenter(
                PixelFeatures(),
                ClusterClassifier(KMeans(8, n_init=4, random_state=seed), scale=True),
                _CLUSTER_SAMPLE,
                seed,
            ),
        ),
        Baseline(
            "mlp-multiscale",
            "MLP on a 3x3 window plus multi-scale filters (Gaussian means, gradients, LoG, local std)",
            lambda seed: _segmenter(
                MultiScaleFeatures(window=3, sigmas=(1, 2, 4, 8)),
                make_mlp(hidden=(64, 32), random_state=seed),
                _MLP_SAMPLE,
                seed,
            ),
        ),
    ]
}


def baseline_names() -> list:
    """Names in the order of ``brats-kit baseline list`` (from the floor to the strongest)."""
    return list(BASELINES)


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise UnknownBaselineError(
            f"no baseline named {name!r}",
            expected="one of " + ", ".join(BASELINES),
            hint="'brats-kit baseline list' shows them",
        ) from None


def make_baseline(name: str, seed: int = 0) -> PixelSegmenter:
    """An unfitted segmenter for a named baseline."""
    return get_baseline(name).make(seed)
