"""The canonical layout: one HDF5 file per split, one slice per chunk, checksummed."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from plumbing.atomic import atomic_path

from .constants import (
    CASE_ID_DTYPE,
    H5_CASE_ID,
    H5_PUBLIC,
    H5_X,
    H5_Y,
    MODALITIES,
    NORMALISATION,
    SPEC_VERSION,
)
from .course import check_array
from .errors import CorruptFileError, LayoutError, MissingFileError


def sha256_array(array, chunk_slices: int = 16) -> str:
    """sha256 of an array's C-order bytes, read ``chunk_slices`` slices at a time."""
    h = hashlib.sha256()
    n = len(array)
    for start in range(0, n, chunk_slices):
        h.update(np.ascontiguousarray(array[start : start + chunk_slices]).tobytes())
    return h.hexdigest()


def sha256_file(path, block: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


class LazyH5Array:
    """Read-only, array-like view of one HDF5 dataset, read only where indexed.

    Supports ``shape``, ``dtype``, ``len``, ``[...]`` (anything h5py accepts:
    integers, slices, sorted index lists) and ``numpy.asarray``. The file is
    opened on first access and reopened after pickling, so the object can be
    sent to worker processes.
    """

    def __init__(self, path, name: str, *, shape=None, dtype=None):
        self.path = Path(path)
        self.name = name
        if shape is None or dtype is None:
            with h5py.File(self.path, "r") as f:
                shape, dtype = f[name].shape, f[name].dtype
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._file = None

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))

    def __len__(self) -> int:
        return self.shape[0]

    def _ds(self):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file[self.name]

    def __getitem__(self, key):
        if isinstance(key, list):
            key = np.asarray(key)
        if isinstance(key, np.ndarray) and key.dtype.kind in "iu" and key.ndim == 1:
            # h5py needs increasing unique indices; serve any order through a sort.
            uniq, inverse = np.unique(key, return_inverse=True)
            return self._ds()[uniq][inverse]
        return self._ds()[key]

    def __array__(self, dtype=None, copy=None):
        if self._file is not None:
            out = self._file[self.name][()]
        else:  # a whole read needs no handle kept open
            with h5py.File(self.path, "r") as f:
                out = f[self.name][()]
        return out.astype(dtype) if dtype is not None else out

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may be half torn down
            pass

    def __getstate__(self):
        return {"path": self.path, "name": self.name, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._file = None

    def __repr__(self) -> str:
        return f"LazyH5Array({str(self.path)!r}, {self.name!r}, shape={self.shape}, dtype={self.dtype})"


def _create(f, name, data, chunks, compress):
    kw = dict(compression="gzip", compression_opts=1, shuffle=True) if compress else {}
    # track_times=False: the same data must give byte-identical files.
    return f.create_dataset(name, data=data, chunks=chunks, track_times=False, **kw)


def write_split_h5(
    path,
    *,
    x=None,
    y=None,
    case_id,
    public=None,
    split: str,
    attrs: dict | None = None,
) -> Path:
    """Atomically write one split in the canonical HDF5 layout.

    Parameters
    ----------
    path : path-like
        Destination ``.h5`` file.
    x : array (N, 240, 240, 4) float32, optional
        Inputs; absent from a truth file.
    y : array (N, 240, 240) uint8, optional
        Masks; absent from the test inputs a student receives.
    case_id : sequence of str, length N
    public : bool array (N,), optional
        Leaderboard phase of each test case (truth file only).
    split : {"train", "test"}
    attrs : dict, optional
        Provenance written as file attributes (``generator``, ``seed``...).
    """
    ids = np.asarray(case_id).astype(CASE_ID_DTYPE)
    arrays = {}
    if x is not None:
        arrays[H5_X] = check_array(x, "x", "x")
    if y is not None:
        arrays[H5_Y] = check_array(y, "y", "y")
    for name, arr in arrays.items():
        if len(arr) != len(ids):
            raise LayoutError(f"{name} has {len(arr)} slices but {len(ids)} case ids were given")
    with atomic_path(path, suffix=".h5") as tmp:
        # Pinned format bounds and no timestamps: same data, same bytes.
        with h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as f:
            f.attrs["spec_version"] = SPEC_VERSION
            f.attrs["split"] = split
            f.attrs["modalities"] = ",".join(MODALITIES)
            f.attrs["normalisation"] = NORMALISATION
            for key, value in sorted((attrs or {}).items()):
                f.attrs[key] = value
            for name, arr in arrays.items():
                chunks = (1,) + arr.shape[1:] if len(arr) else None
                # Only the inputs are worth compressing (background is constant); masks stay
                # raw so that the grader reads the truth at memory speed.
                _create(f, name, arr, chunks, compress=name == H5_X)
                f.attrs[f"sha256_{name}"] = sha256_array(arr)
            _create(f, H5_CASE_ID, ids, None, compress=False)
            f.attrs[f"sha256_{H5_CASE_ID}"] = sha256_array(ids)
            if public is not None:
                pub = np.asarray(public, dtype=bool)
                if pub.shape != ids.shape:
                    raise LayoutError(f"public has shape {pub.shape}, expected ({len(ids)},)")
                _create(f, H5_PUBLIC, pub, None, compress=False)
                f.attrs[f"sha256_{H5_PUBLIC}"] = sha256_array(pub)
    return Path(path)


def read_split_h5(path, *, verify: bool = False) -> dict:
    """Open a canonical HDF5 split lazily.

    Returns
    -------
    dict
        ``x`` and ``y`` as :class:`LazyH5Array` (or None when absent),
        ``case_id`` as a str array, ``public`` as a bool array or None, and
        ``attrs`` (dict of the file attributes).

    Raises
    ------
    MissingFileError, CorruptFileError
        The file is absent, not HDF5, lacks ``case_id``, has inconsistent
        lengths, or (with ``verify=True``) an array whose sha256 differs from
        the one recorded at writing.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("file not found", path=path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CorruptFileError(f"not a readable HDF5 file ({exc})", path=path) from None
    with f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
        if H5_CASE_ID not in f:
            raise CorruptFileError(f"no '{H5_CASE_ID}' dataset", path=path, expected="datasets x, y, case_id")
        ids = f[H5_CASE_ID][()].astype(str)
        public = f[H5_PUBLIC][()].astype(bool) if H5_PUBLIC in f else None
        present = {name: (f[name].shape, f[name].dtype) for name in (H5_X, H5_Y) if name in f}
    out = {"x": None, "y": None, "case_id": ids, "public": public, "attrs": attrs}
    for name, (shape, dtype) in present.items():
        arr = LazyH5Array(path, name, shape=shape, dtype=dtype)
        if len(arr) != len(ids):
            raise CorruptFileError(
                f"dataset '{name}' has {len(arr)} slices but '{H5_CASE_ID}' has {len(ids)}", path=path
            )
        out[name] = arr
    if verify:
        verify_h5(path, out)
    return out


def verify_h5(path, opened: dict) -> None:
    """Recompute every array's sha256 and compare it with the recorded one."""
    attrs = opened["attrs"]
    arrays = {H5_X: opened["x"], H5_Y: opened["y"]}
    with h5py.File(path, "r") as f:
        arrays[H5_CASE_ID] = f[H5_CASE_ID][()]
        if H5_PUBLIC in f:
            arrays[H5_PUBLIC] = f[H5_PUBLIC][()]
    for name, arr in arrays.items():
        recorded = attrs.get(f"sha256_{name}")
        if arr is None or recorded is None:
            continue
        actual = sha256_array(arr)
        if actual != recorded:
            raise CorruptFileError(
                f"dataset '{name}' does not match its recorded sha256",
                path=path,
                expected=recorded,
                hint="the file was modified or damaged after it was written",
            )


def is_hdf5(path) -> bool:
    """True when the file starts with the HDF5 signature (at offset 0)."""
    try:
        with open(os.fspath(path), "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False
