"""What a student calls: load a split, build background-free vectors, look at the data.

>>> from starter import load_split, foreground_mask, balanced_index, window_vectors
>>> x, y, ids = load_split("competition", "train")
>>> index = balanced_index(y, foreground_mask(x), neg_ratio=2, seed=0)
>>> X, labels, index = window_vectors(x, y, size=3, index=index)
"""
from data_spec import Split, open_split

from .features import (
    PAD_MODES,
    balanced_index,
    check_inputs,
    check_masks,
    foreground_mask,
    pixel_vectors,
    scatter,
    window_vectors,
    window_view,
)


def load_split(path, split: str = "train", layout: str = "auto") -> Split:
    """Open a split of a competition directory (either layout), lazily.

    Parameters
    ----------
    path : path-like
        The competition directory (or one split file, ``.h5`` or ``*_x.dat``).
    split : {"train", "test"}
    layout : {"auto", "course", "hdf5"}

    Returns
    -------
    data_spec.Split
        ``x`` (N, 240, 240, 4) float32, ``y`` (N, 240, 240) uint8 or None for the
        test inputs, ``case_id`` (N,). Unpacks as ``x, y, case_id``. The arrays
        are memory-mapped or lazy: index them, or ``numpy.asarray`` to load.
    """
    return open_split(path, split, layout)


__all__ = [
    "PAD_MODES",
    "balanced_index",
    "check_inputs",
    "check_masks",
    "foreground_mask",
    "load_split",
    "pixel_vectors",
    "scatter",
    "window_vectors",
    "window_view",
]
