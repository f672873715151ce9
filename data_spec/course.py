"""The course layout: headerless C-order memmaps, byte-compatible with the course's files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from plumbing.atomic import atomic_path

from .constants import X_DTYPE, X_ITEM_SHAPE, Y_DTYPE, Y_ITEM_SHAPE
from .errors import ArrayContractError, BadArgumentError, FileSizeError, MissingFileError

_KINDS = {"x": (X_DTYPE, X_ITEM_SHAPE), "y": (Y_DTYPE, Y_ITEM_SHAPE)}


def _kind(kind: str):
    try:
        return _KINDS[kind]
    except KeyError:
        raise BadArgumentError(f"kind must be 'x' or 'y', got {kind!r}", expected="x or y") from None


def _size_hint(size: int, kind: str) -> str | None:
    """Name the usual mistake behind a size that is not a whole number of slices.

    Only inputs can be diagnosed: any whole number of bytes per pixel is a valid
    count of uint8 mask slices, and float64 inputs are a valid float32 size.
    """
    if kind != "x":
        return None
    pixels = Y_ITEM_SHAPE[0] * Y_ITEM_SHAPE[1]
    for itemsize, name in ((2, "float16"), (1, "uint8")):
        if size % (pixels * 4 * itemsize) == 0:
            return (
                f"the size fits {size // (pixels * 4 * itemsize)} slices of {name}: inputs must be float32, "
                "with all 4 modalities"
            )
    return "is the file truncated?"


def count_slices(path, kind: str) -> int:
    """Number of slices in a raw memmap, inferred from its size.

    Raises
    ------
    MissingFileError
        No such file.
    FileSizeError
        The size is not an exact multiple of one slice's bytes.
    """
    dtype, item = _kind(kind)
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("file not found", path=path)
    item_bytes = dtype.itemsize * int(np.prod(item))
    size = path.stat().st_size
    if size % item_bytes:
        raise FileSizeError(
            f"size {size} bytes is not a whole number of slices",
            path=path,
            expected=f"a multiple of {item_bytes} bytes ({dtype.name} {item})",
            hint=_size_hint(size, kind),
        )
    return size // item_bytes


def read_course_array(path, kind: str) -> np.memmap:
    """Open a course memmap read-only; nothing is read until indexed.

    Parameters
    ----------
    path : path-like
        A ``*_x.dat`` (``kind="x"``) or ``*_y.dat`` (``kind="y"``) file.
    kind : {"x", "y"}
        Inputs (float32, (N, 240, 240, 4)) or masks (uint8, (N, 240, 240)).

    Returns
    -------
    numpy.memmap
        Shape (N, ...) with N inferred from the file size. A zero-slice file
        gives an empty in-memory array (numpy cannot map zero bytes).
    """
    dtype, item = _kind(kind)
    n = count_slices(path, kind)
    if n == 0:
        return np.zeros((0,) + item, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,) + item)


def check_array(array, kind: str, name: str = "array") -> np.ndarray:
    """Check an in-memory array against the contract and return it as a C-ordered array."""
    dtype, item = _kind(kind)
    arr = np.asarray(array)
    if arr.ndim != len(item) + 1 or arr.shape[1:] != item:
        raise ArrayContractError(
            f"{name} has shape {arr.shape}",
            expected=f"(N, {', '.join(map(str, item))})",
            hint="add a slice axis: array[None]" if arr.shape == item
            else ("slices must be the first axis" if arr.shape[:1] == item[:1] else None),
        )
    if arr.dtype != dtype:
        if kind == "y" and np.issubdtype(arr.dtype, np.bool_):
            arr = arr.astype(dtype)
        elif kind == "x" and np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(dtype)
        else:
            raise ArrayContractError(f"{name} has dtype {arr.dtype}", expected=str(dtype))
    if kind == "y" and arr.size and arr.max() > 1:
        raise ArrayContractError(
            f"{name} holds values other than 0 and 1 (max {int(arr.max())})",
            expected="0 or 1",
            hint="divide by 255" if arr.max() == 255 else None,
        )
    return np.ascontiguousarray(arr)


def write_course_array(path, array, kind: str) -> Path:
    """Atomically write an array as a course memmap (raw little-endian C-order bytes)."""
    arr = check_array(array, kind, name=os.fspath(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            # One slice at a time: a memmap input is never loaded whole.
            for i in range(arr.shape[0]):
                fh.write(np.ascontiguousarray(arr[i]).tobytes())
    return Path(path)
