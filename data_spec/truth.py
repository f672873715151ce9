"""The test truth, loaded once: masks, ids, public flags, sha256 and where it came from.

Every reader of the hidden truth goes through :func:`load_truth`: ``brats-kit
score``, the leaderboard, ``baseline compare``, the plots and the submission
server alike, so the truth is checked the same way everywhere.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .constants import COURSE_Y, PRIVATE_DIR, SLICE_SHAPE, TEST, TRUTH_H5, Y_DTYPE, public_mask
from .errors import BadTruthError, LayoutError
from .hdf5 import sha256_array, sha256_file
from .layout import Split, find_truth, open_hidden, open_truth

#: ``Truth.public_source`` when the truth file itself holds the public flags.
FLAGS_FROM_TRUTH = "truth"


@dataclass(frozen=True, eq=False)
class Truth:
    """The test truth, loaded and checked.

    Attributes
    ----------
    y : ndarray of uint8 (N, 240, 240)
        The masks, 0/1, C-contiguous (``mask`` views them as bool without a copy).
    case_id : ndarray of str (N,)
    public : ndarray of bool (N,)
        Which cases are on the public leaderboard. Always set: when the file holds
        no flags (a course ``test_data_y.dat``) they are derived from the truth's
        sha256 (see :func:`load_truth`) and ``public_source`` says so.
    public_source : str
        ``"truth"`` when the file holds the flags, else how they were derived.
    sha256 : str
        Hash of the truth file's bytes (of the masks, for an in-memory truth). Part
        of every score cache key; never written to a public file. Computed when
        first asked for (scoring one file against a truth with flags never needs it).
    path : Path or None
        The truth file (None for an in-memory truth).
    """

    y: np.ndarray
    case_id: np.ndarray
    public: np.ndarray
    public_source: str
    digest: Optional[str]
    path: Optional[Path] = None

    @functools.cached_property
    def sha256(self) -> str:
        if self.digest is not None:
            return self.digest
        return sha256_file(self.path) if self.path is not None else sha256_array(self.y)

    def __len__(self) -> int:
        return len(self.case_id)

    @property
    def mask(self) -> np.ndarray:
        """The masks as bool (a view: counting never converts them again)."""
        return self.y.view(bool)

    @property
    def has_flags(self) -> bool:
        """Whether the truth file itself says which cases are public."""
        return self.public_source == FLAGS_FROM_TRUTH

    @property
    def directory(self) -> Optional[Path]:
        """The competition directory: the truth's directory, or its parent when under ``private/``."""
        if self.path is None:
            return None
        parent = self.path.parent
        return parent.parent if parent.name == PRIVATE_DIR else parent

    def files(self) -> tuple:
        """The truth file and its sibling truth files: a submission may be none of them."""
        if self.path is None:
            return ()
        siblings = (self.path.parent / TRUTH_H5, self.path.parent / COURSE_Y[TEST])
        return (self.path,) + tuple(p for p in siblings if p != self.path)


def load_truth(truth, *, seed: int = 0) -> Truth:
    """Load the test truth: a path (file, ``private/`` or competition directory), a Split, or a Truth.

    Parameters
    ----------
    truth : path-like, Split or Truth
        ``private/test_truth.h5``, the course's ``test_data_y.dat``, a directory
        holding either (see :func:`data_spec.find_truth`), an opened split with
        masks, or an already loaded :class:`Truth` (returned as it is).
    seed : int
        Only for a truth without public flags: they are derived with
        :func:`data_spec.public_mask` from ``seed`` plus the truth's sha256, so
        nobody without the truth can recompute which cases are public, even
        knowing the seed.

    Returns
    -------
    Truth

    Raises
    ------
    MissingFileError, LayoutError, CorruptFileError
        No truth found, or a file in neither layout.
    BadTruthError
        Masks that are not (N, 240, 240) of 0/1 values.

    Examples
    --------
    >>> import numpy as np
    >>> from data_spec import Split, load_truth
    >>> y = np.zeros((3, 240, 240), dtype=np.uint8); y[0, 100:110, 100:110] = 1
    >>> truth = load_truth(Split(None, y, np.array(["a", "b", "c"]), None, "course", None))
    >>> len(truth), int(truth.mask.sum()), truth.has_flags
    (3, 100, False)
    """
    if isinstance(truth, Truth):
        return truth
    if isinstance(truth, Split):
        split = truth
        path = Path(split.path) if split.path is not None and Path(split.path).is_file() else None
    else:
        path = find_truth(truth)
        split = open_truth(path)
    if split.y is None:
        raise LayoutError("this split holds no masks", path=path, hint="pass the test truth, not the test inputs")
    y = np.asarray(split.y)
    if y.ndim != 3 or y.shape[1:] != SLICE_SHAPE or y.dtype.kind not in "biu":
        raise BadTruthError(f"truth masks have shape {y.shape} and dtype {y.dtype}", path=path,
                            expected="(N, 240, 240) uint8")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise BadTruthError("truth masks hold values other than 0 and 1", path=path, expected="0 or 1",
                            hint="a BraTS label map? The whole tumour is (labels > 0)")
    y = np.ascontiguousarray(y, dtype=Y_DTYPE)
    n = len(y)
    digest = None
    if split.public is not None:
        public, source = np.asarray(split.public, dtype=bool), FLAGS_FROM_TRUTH
    else:
        digest = sha256_file(path) if path is not None else sha256_array(y)
        public = public_mask(n, seed + int(digest[:16], 16))
        source = (f"derived with data_spec.public_mask({n}, seed={seed} + the truth's sha256): "
                  "the truth file has no public flags")
    case_id = np.asarray(split.case_id, dtype=str)
    return Truth(y, case_id, public, source, digest, Path(path) if path is not None else None)


def load_hidden_truth(path) -> Truth:
    """The :class:`Truth` of the code track's hidden test slices (``private/hidden_test.h5``).

    Parameters
    ----------
    path : path-like
        The file, a ``private/`` folder or a competition directory (see
        :func:`data_spec.layout.find_hidden`).

    Returns
    -------
    Truth
        Masks, ``hidden-NNNN`` case ids and the public flags the file holds; the
        inputs come from :func:`data_spec.layout.open_hidden`.
    """
    return load_truth(open_hidden(path))


def truth_for(truth, split: Split) -> Truth:
    """:func:`load_truth`, checked to match ``split`` (the test inputs): same case ids, same order.

    Raises
    ------
    LayoutError
        A truth for other cases than the split's.
    """
    truth = load_truth(truth)
    ids = np.asarray(split.case_id, dtype=str)
    if len(truth) != len(ids) or (truth.case_id != ids).any():
        raise LayoutError(
            "the truth does not match the test split", path=truth.path,
            expected=f"{len(ids)} cases with the test split's case ids, in the same order",
        )
    return truth
