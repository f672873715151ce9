"""What a student calls: load a split, build background-free vectors, look at the data.

>>> import tempfile
>>> from cohorts.synth import write_synthetic_competition     # what `brats-kit data synth` writes
>>> competition = tempfile.mkdtemp() + "/competition"
>>> _ = write_synthetic_competition(competition, n_train=2, n_test=1)
>>> from starter import load_split, foreground_mask, balanced_index, window_vectors
>>> x, y, ids = load_split(competition, "train")
>>> x.shape, y.shape, ids.tolist()
((2, 240, 240, 4), (2, 240, 240), ['train-0000', 'train-0001'])
>>> index = balanced_index(y, foreground_mask(x), neg_ratio=2, seed=0)
>>> X, labels, index = window_vectors(x, y, size=3, index=index)   # 36 features, no background pixel
>>> X.shape[1], X.shape[0] == labels.shape[0], set(labels.tolist()) <= {0, 1}
(36, True, True)
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

    Examples
    --------
    Two slices written as course files in a temporary folder, then read back:

    >>> import tempfile
    >>> import numpy as np
    >>> from data_spec import write_course_array
    >>> from starter import load_split
    >>> folder = tempfile.TemporaryDirectory()
    >>> x = np.zeros((2, 240, 240, 4), np.float32); x[:, 60:180, 60:180] = 1.0
    >>> y = np.zeros((2, 240, 240), np.uint8); y[0, 100:110, 100:110] = 1
    >>> _ = write_course_array(f"{folder.name}/train_data_x.dat", x, "x")
    >>> _ = write_course_array(f"{folder.name}/train_data_y.dat", y, "y")
    >>> x, y, ids = load_split(folder.name, "train")
    >>> x.shape, y.shape, int(y[0].sum()), ids.tolist()
    ((2, 240, 240, 4), (2, 240, 240), 100, ['train-0000', 'train-0001'])
    >>> del x, y; folder.cleanup()
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
