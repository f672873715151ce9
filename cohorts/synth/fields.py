"""Smooth random fields: the building block of every deformation, bias field and texture.

A field is a sum of a few random plane waves, so it can be evaluated at any
set of points (a slice's 240 x 240 grid, or a coarse grid of the whole brain)
without ever building a 3D volume.
"""
from __future__ import annotations

import numpy as np


class SmoothField:
    """Random smooth field R^3 -> R^k: a sum of ``n_modes`` plane waves.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_out : int
        Number of output components.
    n_modes : int
    wavelength : (float, float)
        Range of the waves' wavelengths, in mm (sets the smoothness).
    amplitude : float
        Standard deviation of each component over space.
    """

    def __init__(self, rng, n_out: int = 1, n_modes: int = 6, wavelength=(40.0, 120.0), amplitude: float = 1.0):
        direction = rng.normal(size=(n_modes, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        self.freq = (direction * (2 * np.pi / rng.uniform(*wavelength, size=(n_modes, 1)))).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, size=n_modes).astype(np.float32)
        # Var(sin) = 1/2 for a random phase: this scaling gives each component std ``amplitude``.
        self.coef = (rng.normal(size=(n_modes, n_out)) * amplitude * np.sqrt(2.0 / n_modes)).astype(np.float32)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Values at world points (n, 3): (n, n_out) float32."""
        return np.sin(points @ self.freq.T + self.phase) @ self.coef
