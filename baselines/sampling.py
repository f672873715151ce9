"""The training sample: seeded, class-balanced, background-free, bounded.

No baseline ever materialises every training vector: a segmenter trains on all
tumour pixels plus a multiple of non-tumour brain pixels, capped per slice and
in total, drawn by :func:`starter.features.balanced_index` (the function the
students use).
"""
from __future__ import annotations

from sklearn.base import BaseEstimator

from starter.features import balanced_index


class BalancedSampler(BaseEstimator):
    """Which foreground pixels a segmenter trains on.

    Parameters
    ----------
    neg_ratio : float, default 2.0
        Non-tumour pixels drawn per tumour pixel of a slice.
    min_negatives : int, default 200
        Non-tumour pixels drawn at least per slice (tumour-free slices teach too).
    max_per_slice : int or None, default 2000
        Cap per slice, keeping the slice's class proportions.
    max_vectors : int or None, default 40000
        Cap on the whole sample, keeping its class proportions: the bound on
        training memory and time.

    Notes
    -----
    The sample over-represents tumour (about a third of it where the cohort has
    a few percent): classifiers trained on it over-call tumour at their default
    0.5 cut, which the post-processing's threshold, tuned on validation, corrects.
    """

    def __init__(self, neg_ratio=2.0, min_negatives=200, max_per_slice=2000, max_vectors=40000):
        self.neg_ratio = neg_ratio
        self.min_negatives = min_negatives
        self.max_per_slice = max_per_slice
        self.max_vectors = max_vectors

    def sample(self, y, mask, seed=0):
        """Seeded index of training pixels.

        Parameters
        ----------
        y : array-like (N, 240, 240) of 0/1
        mask : array-like (N, 240, 240) of bool
            The foreground (:func:`starter.features.foreground_mask`).
        seed : int

        Returns
        -------
        ndarray int64 (n, 3)
            ``(slice, row, column)`` rows in reading order, ``n <= max_vectors``.
        """
        return balanced_index(
            y,
            mask,
            neg_ratio=self.neg_ratio,
            min_negatives=self.min_negatives,
            max_per_slice=self.max_per_slice,
            max_vectors=self.max_vectors,
            seed=seed,
        )
