"""Validate a submission: the same code for the student's check and the instructor's grader.

A student checks a file with :func:`check_submission` (``brats-kit validate``); a
model's output can be checked in memory first:

>>> import numpy as np
>>> masks = np.zeros((4, 240, 240), np.uint8); masks[:, 100:140, 100:140] = 1
>>> validate_array(masks, n_slices=4)
[]
>>> [e.code for e in validate_array(masks * np.float32(0.9), n_slices=4)]
['bad_dtype', 'bad_values']
>>> [e.code for e in validate_array(masks[:3], n_slices=4)]
['wrong_shape']
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from data_spec.constants import TEST, Y_ITEM_BYTES
from data_spec.errors import FileSizeError, KitError
from data_spec.layout import open_split

from .checks import as_mask, dtype_errors, readable, shape_errors, value_errors
from .errors import InvalidSubmissionError
from .h5read import read_hdf5
from .readers import DAT, HDF5, NPY, foreign_error, open_submission, read_dat, read_npy, sniff


@dataclass
class Validation:
    """The outcome of validating one submission.

    Attributes
    ----------
    ok : bool
        True when there is no error.
    errors : list of KitError
        Every problem found (``.code``, ``.where``, ``.expected``, ``.hint``;
        ``.to_dict()`` for JSON).
    y_pred : ndarray of uint8 (N, 240, 240) or None
        The predictions, C-ordered, when valid.
    format : {"dat", "npy", "hdf5"} or None
        The container recognised from the magic bytes (None if not read).
    path : str or None
    n_slices : int
        The number of test slices expected.
    case_id : ndarray of str or None
        The ids stored in an HDF5 submission.
    """

    ok: bool
    errors: list = field(default_factory=list)
    y_pred: Optional[np.ndarray] = None
    format: Optional[str] = None
    path: Optional[str] = None
    n_slices: Optional[int] = None
    case_id: Optional[np.ndarray] = None

    def to_dict(self) -> dict:
        """``status`` ("valid" or "invalid"), ``errors``, ``format``, ``n_slices``, ``path``: JSON-ready."""
        return {
            "status": "valid" if self.ok else "invalid",
            "errors": [e.to_dict() for e in self.errors],
            "format": self.format,
            "n_slices": self.n_slices,
            "path": self.path,
        }

    def raise_if_invalid(self) -> "Validation":
        """Raise :class:`~grader.errors.InvalidSubmissionError` (holding every error) unless valid."""
        if not self.ok:
            raise InvalidSubmissionError(self.errors, path=self.path)
        return self


def validate_array(y_pred, *, n_slices: int) -> list:
    """Every problem of an in-memory prediction array (e.g. a model's output), as a list of errors.

    Checks the shape (``wrong_shape``), the dtype (``bad_dtype``: bool, any
    integer, or floats that are all exactly 0.0 or 1.0), and the values
    (``bad_values``, ``nan``), with where the first offender is and a hint.
    An empty list means the array is a valid submission.
    """
    arr = np.asarray(y_pred)
    errors = shape_errors(arr.shape, n_slices) + dtype_errors(arr.dtype)
    if readable(arr.shape, arr.dtype, n_slices):
        errors += value_errors(arr)
    return errors


def _as_paths(truth_path):
    if truth_path is None:
        return ()
    if isinstance(truth_path, (str, bytes, os.PathLike)):
        return (truth_path,)
    return tuple(truth_path)


def _read_hdf5(fh, size: int, n_slices: int, case_ids, shown: str):
    """libhdf5 is not ours and a corrupted file can make it spin forever: read in a worker with limits.

    The bytes are read once here, from the descriptor already checked, and sent to
    the worker (see :func:`grader.isolation.read_hdf5_isolated`); inside a worker
    the file is read directly.
    """
    from . import isolation

    if isolation.IN_WORKER:
        return read_hdf5(fh, size, n_slices, case_ids=case_ids, path=shown)
    fh.seek(0)
    data = fh.read(size)
    return isolation.read_hdf5_isolated(data, n_slices, case_ids=case_ids, path=shown)


def validate_submission(
    path,
    *,
    n_slices: int,
    case_ids=None,
    truth_path=None,
    max_bytes: Optional[int] = None,
) -> Validation:
    """Validate a submission file, safely, reporting every problem at once.

    Parameters
    ----------
    path : path-like
        The course's raw ``test_data_ypred.dat``, a ``.npy`` or an HDF5 file,
        recognised by its magic bytes (the name does not matter).
    n_slices : int
        Number of test slices.
    case_ids : sequence of str, optional
        Test ids, in test order; an HDF5 ``case_id`` dataset must equal them.
    truth_path : path-like or sequence of path-like, optional
        Truth file(s): a submission that is one of them (same inode) is refused.
    max_bytes : int, optional
        Size cap, checked before opening (default: 8 bytes per expected pixel
        plus 1 MiB, at most 4 GiB).

    Returns
    -------
    Validation
        Never raises for a bad submission: every problem is in ``errors``.
    """
    shown = os.fsdecode(path)
    try:
        fh, size = open_submission(path, n_slices=n_slices, truth_paths=_as_paths(truth_path), max_bytes=max_bytes)
    except KitError as exc:
        return Validation(False, [exc], None, None, shown, n_slices)
    with fh:
        return _validate_open(fh, size, n_slices, case_ids, shown)


def validate_bytes(data: bytes, *, n_slices: int, case_ids=None, path=None) -> Validation:
    """Validate a submission already read into memory, exactly as :func:`validate_submission` would.

    The leaderboard reads each file once (through :func:`grader.readers.open_submission`),
    hashes those bytes and validates the same bytes: a file rewritten meanwhile
    cannot get another content's verdict. ``path`` only names the file in messages.
    """
    shown = None if path is None else os.fsdecode(path)
    if not data:
        return Validation(False, [FileSizeError("is empty", path=shown, where="file size")], None, None, shown,
                          n_slices)
    with io.BytesIO(data) as fh:  # shares the bytes: no copy
        return _validate_open(fh, len(data), n_slices, case_ids, shown)


def _validate_open(fh, size: int, n_slices: int, case_ids, shown) -> Validation:
    """Validate from an open, verified file object of ``size`` bytes."""
    kind = sniff(fh, size)
    if kind == NPY:
        loaded = read_npy(fh, size, n_slices, path=shown)
    elif kind == HDF5:
        loaded = _read_hdf5(fh, size, n_slices, case_ids, shown)
    elif kind == DAT or size == n_slices * Y_ITEM_BYTES:
        # The course's raw bytes have no magic; a foreign magic is only named
        # when the size is not that of a raw submission anyway.
        loaded = read_dat(fh, size, n_slices, path=shown)
    else:
        return Validation(False, [foreign_error(kind, shown)], None, None, shown, n_slices)
    errors = list(loaded.errors)
    if loaded.array is not None:
        errors += value_errors(loaded.array)
    for error in errors:
        if error.path is None:
            error.path = shown
    ok = not errors
    y_pred = as_mask(loaded.array) if ok else None
    return Validation(ok, errors, y_pred, loaded.format, shown, n_slices, loaded.case_id)


def check_submission(path, data, *, max_bytes: Optional[int] = None) -> Validation:
    """A student's check: validate ``path`` against the public test inputs of competition ``data``.

    Only the test split's slice count and case ids are used (its inputs are
    not read); the validation is the grader's own.

    Parameters
    ----------
    path : path-like
        The submission.
    data : path-like
        The competition directory given to students (``test.h5`` or
        ``test_data_x.dat``), or the test split file itself.
    """
    test = open_split(data, TEST)
    return validate_submission(path, n_slices=len(test), case_ids=test.case_id, max_bytes=max_bytes)
