"""Write a submission in any of the formats the grader reads (the course's raw bytes, .npy, HDF5)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from plumbing.atomic import atomic_path

from .constants import CASE_ID_DTYPE, H5_CASE_ID, H5_Y_PRED, SPEC_VERSION, Y_DTYPE
from .course import check_array, write_course_array
from .errors import ArrayContractError

H5_SUFFIXES = (".h5", ".hdf5")


def _as_masks(y_pred) -> np.ndarray:
    """0/1 predictions of any bool, integer or float dtype as a checked uint8 (N, 240, 240) array."""
    arr = np.asarray(y_pred)
    if arr.dtype.kind in "iuf" and arr.dtype != Y_DTYPE:
        if arr.size and not np.isin(arr, (0, 1)).all():
            bad = arr[~np.isin(arr, (0, 1))]
            raise ArrayContractError(
                f"predictions hold values other than 0 and 1 (e.g. {bad.flat[0]!r})",
                expected="0 or 1",
                hint="threshold probabilities first, e.g. (proba >= 0.5)" if arr.dtype.kind == "f" else None,
            )
        arr = arr.astype(Y_DTYPE)
    return check_array(arr, "y", "predictions")


def _as_ids(case_id, n: int) -> np.ndarray:
    """Case ids as ``CASE_ID_DTYPE``, refusing what it cannot hold (numpy would truncate or raise)."""
    ids = np.asarray(case_id)
    if ids.shape != (n,):
        raise ArrayContractError(f"case_id has shape {ids.shape}", expected=f"({n},): one id per slice")
    text = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in ids.tolist()]
    bad = [t for t in text if not t.isascii() or len(t) > CASE_ID_DTYPE.itemsize]
    if bad:
        raise ArrayContractError(f"case_id {bad[0]!r} does not fit", expected=f"ASCII ids of at most "
                                 f"{CASE_ID_DTYPE.itemsize} characters", hint="copy case_id from test.h5")
    return np.asarray(text).astype(CASE_ID_DTYPE)


def write_submission(path, y_pred, case_id=None) -> Path:
    """Atomically write (N, 240, 240) 0/1 predictions as a submission.

    Parameters
    ----------
    path : path-like
        ``.npy``: a numpy file; ``.h5`` / ``.hdf5``: an HDF5 file with dataset
        ``y_pred`` (and ``case_id``); any other name (the course's
        ``test_data_ypred.dat``): the raw uint8 bytes, C order, no header.
    y_pred : array-like (N, 240, 240)
        bool, integer or float masks holding only 0 and 1; written as uint8.
    case_id : sequence of str, optional
        The test ids, in test order. Stored in HDF5 (the grader checks them);
        the raw and .npy formats are positional and have no room for them, so
        there they are only checked to be one per slice.

    Returns
    -------
    Path

    Raises
    ------
    ArrayContractError
        Wrong shape, or values other than 0/1 (with a hint).
    """
    path = Path(path)
    arr = _as_masks(y_pred)
    suffix = path.suffix.lower()
    ids = None if case_id is None else _as_ids(case_id, len(arr))
    if suffix == ".npy":
        with atomic_path(path, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
    elif suffix in H5_SUFFIXES:
        with atomic_path(path, suffix=".h5") as tmp:
            with h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as f:
                f.attrs["spec_version"] = SPEC_VERSION
                chunks = (1,) + arr.shape[1:] if len(arr) else None
                # Uncompressed, like the truth's masks: small, and the grader reads it without
                # having to inflate every chunk under a cap first.
                f.create_dataset(H5_Y_PRED, data=arr, chunks=chunks, track_times=False)
                if ids is not None:
                    f.create_dataset(H5_CASE_ID, data=ids, track_times=False)
    else:
        write_course_array(path, arr, "y")
    return path
