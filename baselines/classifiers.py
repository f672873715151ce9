"""The classifiers of the baselines, as scikit-learn estimators on feature vectors.

- :func:`make_svm`: an RBF SVM made practical: a Nystroem kernel approximation
  then a linear SVM trained by SGD (modified Huber loss, the smoothed hinge,
  which gives ``predict_proba``). An exact ``SVC`` trained on 20-40k pixels
  needs minutes to predict one test set, and liblinear on millions of rows
  needs gigabytes; this predicts the whole test set in seconds.
- :func:`make_mlp`: scikit-learn's ``MLPClassifier`` with early stopping.
- :class:`ClusterClassifier`: the clustering lesson: GMM or KMeans fitted
  without labels, each cluster then mapped to tumour or not by the labels.
- :class:`ThresholdClassifier`: one feature above a learned cut (the FLAIR
  floor every other baseline must beat).

SVM, MLP and clustering scale their inputs (``StandardScaler``) inside the
pipeline, so the scaling learned on training vectors is the one applied later.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import precision_recall_curve
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y


def make_svm(n_components: int = 400, gamma=None, alpha: float = 1e-4, random_state=0) -> Pipeline:
    """Scaling, Nystroem RBF features, linear SVM by SGD.

    Parameters
    ----------
    n_components : int
        Landmark pixels of the kernel approximation (prediction cost grows with it).
    gamma : float or None
        RBF width on the scaled features; None is ``1 / n_features``.
    alpha : float
        L2 regularisation of the linear SVM (larger: smoother boundary, less over-fitting).
    random_state : int
    """
    return make_pipeline(
        StandardScaler(),
        Nystroem(kernel="rbf", gamma=gamma, n_components=n_components, random_state=random_state),
        SGDClassifier(
            loss="modified_huber", alpha=alpha, max_iter=50, tol=1e-4, average=True, random_state=random_state
        ),
    )


def make_mlp(hidden=(64, 32), alpha: float = 1e-4, max_iter: int = 200, random_state=0) -> Pipeline:
    """Scaling, then a multi-layer perceptron stopped early on a held-out tenth of its vectors.

    Parameters
    ----------
    hidden : tuple of int
        Units per hidden layer.
    alpha : float
        L2 penalty (against over-fitting).
    max_iter : int
        Epochs at most; early stopping usually ends well before.
    random_state : int
    """
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=hidden,
            alpha=alpha,
            batch_size=256,
            learning_rate_init=1e-3,
            max_iter=max_iter,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=8,
            random_state=random_state,
        ),
    )


class ClusterClassifier(ClassifierMixin, BaseEstimator):
    """Unsupervised clusters, each mapped to tumour or not by the training labels.

    The clusterer is fitted on the vectors alone (no labels); then each cluster
    gets the share of tumour among the training vectors assigned to it. The
    tumour probability of a vector is that share for its cluster (KMeans), or
    the shares weighted by the cluster posteriors (GMM). At the 0.5 cut a
    cluster is tumour when most of its training vectors are; the tuned
    post-processing threshold picks how pure a cluster must be.

    Parameters
    ----------
    clusterer : estimator with ``fit`` and ``predict``
        E.g. ``GaussianMixture(8)`` or ``KMeans(8)``.
    scale : bool, default True
        Standardise each feature first. Without it the modality with the
        widest range dominates the distances (the clustering lesson's point).

    Attributes
    ----------
    model_ : estimator
        The fitted clusterer (after the scaler when ``scale``).
    cluster_tumour_rate_ : ndarray (n_clusters,)
    classes_ : ndarray
    """

    def __init__(self, clusterer=None, scale: bool = True):
        self.clusterer = clusterer
        self.scale = scale

    def fit(self, X, y):
        from sklearn.mixture import GaussianMixture

        X, y = check_X_y(X, y, dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        self.classes_ = unique_labels(y)
        clusterer = clone(self.clusterer) if self.clusterer is not None else GaussianMixture(8, random_state=0)
        self.model_ = make_pipeline(StandardScaler(), clusterer) if self.scale else clusterer
        self.model_.fit(X)
        assigned = self.model_.predict(X)
        n_clusters = _n_clusters(self.model_)
        counts = np.bincount(assigned, minlength=n_clusters)
        tumour = np.bincount(assigned, weights=(y == self.classes_[-1]).astype(float), minlength=n_clusters)
        self.cluster_tumour_rate_ = np.divide(tumour, counts, out=np.zeros(n_clusters), where=counts > 0)
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = _check_X(self, X)
        if hasattr(self.model_, "predict_proba"):
            p = self.model_.predict_proba(X) @ self.cluster_tumour_rate_
        else:
            p = self.cluster_tumour_rate_[self.model_.predict(X)]
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def _check_X(est, X):
    X = check_array(X, dtype=np.float32)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(est).__name__} was fitted with {est.n_features_in_}")
    return X


def _n_clusters(model) -> int:
    last = model[-1] if isinstance(model, Pipeline) else model
    for name in ("n_components", "n_clusters"):
        if hasattr(last, name):
            return int(getattr(last, name))
    raise TypeError(f"cannot tell the number of clusters of {type(last).__name__}")


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Tumour where one feature is above a cut learned to maximise training F1.

    Parameters
    ----------
    feature : int, default 3
        Column of the feature vector (3 is FLAIR in pixel vectors).

    Attributes
    ----------
    threshold_ : float
        The cut.
    scale_ : float
        The feature's standard deviation; ``predict_proba`` is the logistic of
        ``(value - threshold_) / scale_``, so 0.5 at the cut and monotone, and the
        tuned post-processing threshold moves the cut.
    """

    def __init__(self, feature: int = 3):
        self.feature = feature

    def fit(self, X, y):
        X, y = check_X_y(X, y, dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        self.classes_ = unique_labels(y)
        values = X[:, self.feature]
        precision, recall, cuts = precision_recall_curve(y == self.classes_[-1], values)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=precision + recall > 0)[:-1]
        self.threshold_ = float(cuts[np.argmax(f1)]) if len(cuts) else float(values.max())
        self.scale_ = float(values.std()) or 1.0
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = _check_X(self, X)
        # the cut is inclusive; nudge so that value == threshold_ falls on the tumour side of 0.5
        p = expit((X[:, self.feature] - self.threshold_) / self.scale_ + 1e-6)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]
