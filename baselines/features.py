"""Feature builders: one float32 vector per chosen pixel, built one slice at a time.

Three builders, from the course's first lesson to the strongest classical one:

- :class:`PixelFeatures`: the pixel's 4 modalities;
- :class:`WindowFeatures`: its ``k x k`` neighbourhood (zero-copy strides of
  :func:`starter.features.window_view`, indexed by the chosen pixels);
- :class:`MultiScaleFeatures`: a small window plus, per modality and scale,
  the filters ilastik and scikit-image's trainable segmentation use: Gaussian
  mean, gradient magnitude, Laplacian of Gaussian and local standard deviation.

Filters run on the whole slice (so a pixel sees its context, background
included: distance to the brain's edge is information) and are then indexed by
the chosen pixels. Every builder is a small scikit-learn estimator holding only
its parameters, so a segmenter's ``features`` parameter clones and tunes like
any other (``set_params(features__size=5)``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator

from data_spec import MODALITIES, N_MODALITIES, X_DTYPE, X_ITEM_SHAPE, ArrayContractError
from starter.features import PAD_MODES, check_window, window_view


def _check_slice(slice_x) -> np.ndarray:
    xi = np.asarray(slice_x, dtype=X_DTYPE)
    if xi.shape != X_ITEM_SHAPE:
        raise ArrayContractError(
            f"a slice has shape {xi.shape}", expected=f"{X_ITEM_SHAPE} (rows, columns, modalities)"
        )
    return xi


class _FeatureBuilder(BaseEstimator):
    """Common interface: ``transform_slice(slice_x, rows, cols) -> (n, n_features) float32``."""

    def transform_slice(self, slice_x, rows, cols) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        return len(self.feature_names())

    def feature_names(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError


class PixelFeatures(_FeatureBuilder):
    """The pixel's own 4 values (t1, t1ce, t2, flair): the course's first model."""

    def transform_slice(self, slice_x, rows, cols) -> np.ndarray:
        """Vectors of the pixels ``(rows[i], cols[i])`` of one (240, 240, 4) slice.

        Returns
        -------
        ndarray float32 (len(rows), 4)
        """
        xi = _check_slice(slice_x)
        return xi[rows, cols]

    def feature_names(self) -> list:
        return list(MODALITIES)


class WindowFeatures(_FeatureBuilder):
    """The ``size x size`` neighbourhood of the pixel in all modalities.

    Parameters
    ----------
    size : odd int, default 3
        Window side: 3 gives 36 features, 5 gives 100.
    pad : {"background", "edge", "reflect"}, default "background"
        How windows crossing the image edge are filled (see
        :func:`starter.features.window_view`).

    Notes
    -----
    Layout (row offset, column offset, modality), the same as
    :func:`starter.features.window_vectors`.
    """

    def __init__(self, size: int = 3, pad: str = "background"):
        self.size = size
        self.pad = pad

    def transform_slice(self, slice_x, rows, cols) -> np.ndarray:
        """Window vectors of the pixels ``(rows[i], cols[i])`` of one slice, (n, size*size*4) float32."""
        xi = _check_slice(slice_x)
        view = window_view(xi, self.size, self.pad)  # strides: only the chosen windows are copied
        return view[rows, cols].reshape(len(rows), -1)

    def feature_names(self) -> list:
        r = self.size // 2
        return [
            f"{m}[{dy - r:+d},{dx - r:+d}]" for dy in range(self.size) for dx in range(self.size) for m in MODALITIES
        ]


class MultiScaleFeatures(_FeatureBuilder):
    """A small window plus a bank of multi-scale filters per modality.

    For every modality and every ``sigma``: the Gaussian mean (the context at
    that scale), the gradient magnitude of that mean (edges), its Laplacian
    (the Laplacian of Gaussian: blobs) and the local standard deviation
    (texture), each when enabled. The full bank beats a wider raw window: on the default
    synthetic cohort (generator 2.1) ``mlp-multiscale`` leads ``mlp-window5`` by about 0.02
    Dice, while Gaussian means alone at sigma 2, 4, 8 on a 3x3 window do not
    (``benchmarks/baselines_compare.py`` measures both).

    Parameters
    ----------
    window : odd int, default 3
        Side of the raw window kept (1: the pixel alone).
    sigmas : tuple of float, default (1, 2, 4, 8)
        Scales, in pixels.
    mean, gradient, laplace, std : bool, default True
        Which filters to include.
    pad : str, default "background"
        Padding of the window (see :class:`WindowFeatures`).

    Notes
    -----
    Layout: the window first, then for each modality, for each sigma, the
    enabled filters in the order mean, gradient, laplace, std.
    With ``G`` the Gaussian filter at sigma: ``gradient`` is
    ``hypot(*numpy.gradient(G(x)))`` (central differences), ``laplace`` is
    ``scipy.ndimage.laplace(G(x))`` (5-point stencil), ``std`` is
    ``sqrt(G(x^2) - G(x)^2)``.
    """

    _FILTERS = ("mean", "gradient", "laplace", "std")

    def __init__(
        self,
        window: int = 3,
        sigmas=(1, 2, 4, 8),
        mean: bool = True,
        gradient: bool = True,
        laplace: bool = True,
        std: bool = True,
        pad: str = "background",
    ):
        self.window = window
        self.sigmas = sigmas
        self.mean = mean
        self.gradient = gradient
        self.laplace = laplace
        self.std = std
        self.pad = pad

    def _enabled(self):
        return [name for name in self._FILTERS if getattr(self, name)]

    def filter_bank(self, slice_x) -> np.ndarray:
        """The filter responses of one whole slice, (240, 240, n_filters) float32 (the window excluded)."""
        xi = _check_slice(slice_x)
        enabled = self._enabled()
        out = np.empty(xi.shape[:2] + (N_MODALITIES * len(self.sigmas) * len(enabled),), dtype=X_DTYPE)
        k = 0
        for m in range(N_MODALITIES):
            channel = np.ascontiguousarray(xi[..., m])
            square = channel * channel if self.std else None
            for sigma in self.sigmas:
                smooth = ndimage.gaussian_filter(channel, sigma)
                for name in enabled:
                    out[..., k] = _FILTER_FUNCS[name](smooth, square, sigma)
                    k += 1
        return out

    def transform_slice(self, slice_x, rows, cols) -> np.ndarray:
        """Window and filter vectors of the pixels ``(rows[i], cols[i])`` of one slice, float32."""
        xi = _check_slice(slice_x)
        window = WindowFeatures(self.window, self.pad).transform_slice(xi, rows, cols)
        if not self.sigmas or not self._enabled():
            return window
        bank = self.filter_bank(xi)[rows, cols]
        return np.concatenate([window, bank], axis=1)

    def feature_names(self) -> list:
        names = WindowFeatures(self.window, self.pad).feature_names()
        return names + [f"{name}({m}, {s:g})" for m in MODALITIES for s in self.sigmas for name in self._enabled()]


# Derivatives are taken on the Gaussian-smoothed slice by finite differences (as
# scikit-image's multiscale_basic_features does): one Gaussian per scale instead
# of one per derivative, three times faster than scipy's gaussian_* derivative
# filters and equal to them up to discretisation.
_FILTER_FUNCS = {
    "mean": lambda smooth, square, sigma: smooth,
    "gradient": lambda smooth, square, sigma: np.hypot(*np.gradient(smooth)),
    "laplace": lambda smooth, square, sigma: ndimage.laplace(smooth),
    "std": lambda smooth, square, sigma: np.sqrt(
        np.maximum(ndimage.gaussian_filter(square, sigma) - smooth * smooth, 0)
    ),
}

def check_features(features) -> _FeatureBuilder:
    """Validate a ``features`` parameter: a builder instance with ``transform_slice``."""
    if not hasattr(features, "transform_slice"):
        raise TypeError(
            f"features must be a feature builder such as PixelFeatures(), got {type(features).__name__}"
        )
    if isinstance(features, (WindowFeatures, MultiScaleFeatures)):
        size = features.size if isinstance(features, WindowFeatures) else features.window
        check_window(size, features.pad)
    return features
