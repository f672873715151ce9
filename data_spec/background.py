"""The course's background rule, part of the contract: background is each modality's slice minimum."""
from __future__ import annotations

import numpy as np


def foreground_mask(x) -> np.ndarray:
    """Pixels that are not background.

    Background is, per slice and per modality, the slice's minimum (the course
    data set background pixels to exactly that value); a pixel is foreground
    when any modality is above its minimum.

    Parameters
    ----------
    x : array-like (H, W, C) or (N, H, W, C)
        Modalities last. A stack is processed one slice at a time, so a
        memory-mapped or lazy split is never loaded whole.

    Returns
    -------
    ndarray of bool, (H, W) or (N, H, W)
        A constant slice (all pixels equal) has no foreground.
    """
    shape = tuple(x.shape)
    if len(shape) == 3:
        xi = np.asarray(x)
        return (xi > xi.min(axis=(0, 1))).any(axis=-1)
    out = np.empty(shape[:3], dtype=bool)
    for i in range(shape[0]):
        out[i] = foreground_mask(x[i])
    return out
