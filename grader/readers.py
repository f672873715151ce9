"""Open a submission without being fooled, recognise its container, read raw bytes and .npy.

Order of defence: ``os.lstat`` first (refuse symlinks, anything but a regular
file, the truth file itself, and sizes over the cap, before opening), then
open with ``O_NOFOLLOW | O_NONBLOCK`` and check that the descriptor is the
file inspected. The container is recognised by its magic bytes, never by the
file name; a header's declared shape and dtype are checked before a single
data byte is read, and only data no larger than the expected array is read.
Pickles are never loaded. HDF5 lives in :mod:`grader.h5read`.
"""
from __future__ import annotations

import io
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from numpy.lib import format as npy_format

from data_spec.constants import HEIGHT, SUBMISSION_FILE, WIDTH, Y_DTYPE, Y_ITEM_BYTES
from data_spec.errors import CorruptFileError, FileSizeError, MissingFileError

from .checks import dtype_errors, expected_shape, readable, shape_errors
from .errors import TooLargeError, UnknownFormatError, UnsafeFileError

#: Refuse any submission larger than this, whatever the test size (4 GiB).
ABSOLUTE_MAX_BYTES = 4 << 30
#: Default cap: this many times the expected uint8 bytes (an int64 or float64 array is 8 times) ...
SIZE_FACTOR = 8
#: ... plus this much for headers and HDF5 metadata.
SIZE_SLACK = 1 << 20

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = npy_format.MAGIC_PREFIX

DAT, NPY, HDF5 = "dat", "npy", "hdf5"
FORMATS = (DAT, NPY, HDF5)


@dataclass
class Loaded:
    """What a reader found: the data (when safe to read) and every problem met on the way."""

    format: Optional[str]
    array: Optional[np.ndarray] = None
    errors: list = field(default_factory=list)
    case_id: Optional[np.ndarray] = None


def default_max_bytes(n_slices: int) -> int:
    """The size cap for ``n_slices`` slices: 8 bytes per pixel plus 1 MiB, at most 4 GiB."""
    return min(SIZE_FACTOR * int(n_slices) * Y_ITEM_BYTES + SIZE_SLACK, ABSOLUTE_MAX_BYTES)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_submission(path, *, n_slices: int, truth_paths=(), max_bytes: Optional[int] = None):
    """Inspect ``path`` and open it for reading, or raise the one error that stops everything.

    Returns
    -------
    (file object, size in bytes)
        A binary file object on a verified regular file.

    Raises
    ------
    MissingFileError, UnsafeFileError, TooLargeError, FileSizeError
    """
    path = os.fsdecode(path)
    cap = default_max_bytes(n_slices) if max_bytes is None else int(max_bytes)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFileError(
            "no submission file here", path=path, hint=f"the course's submission file is {SUBMISSION_FILE}"
        ) from None
    except OSError as exc:
        raise UnsafeFileError(f"cannot be inspected ({exc.strerror})", path=path) from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise UnsafeFileError(
            "is a symbolic link", path=path, expected="a regular file",
            hint="submit the file itself: a link can point at files the grader must not read",
        )
    if stat.S_ISDIR(mode):
        raise UnsafeFileError(
            "is a directory", path=path, expected="a regular file",
            hint=f"submit the file inside it, e.g. {SUBMISSION_FILE}",
        )
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise UnsafeFileError(f"is {kind}, not a regular file", path=path, expected="a regular file")
    for truth in truth_paths:
        try:
            truth_st = os.stat(truth)
        except OSError:
            continue
        if _same_file(st, truth_st):
            raise UnsafeFileError(
                "is the truth file itself (same inode: a hard link or the very file)",
                path=path, expected="your own predictions",
            )
    if st.st_size > cap:
        raise TooLargeError(
            f"is {st.st_size} bytes, over the size cap",
            path=path,
            expected=f"at most {cap} bytes for {n_slices} slices",
            hint=f"a uint8 submission of {n_slices} slices is {n_slices * Y_ITEM_BYTES} bytes",
        )
    if st.st_size == 0:
        raise FileSizeError(
            "is empty", path=path, where="file size",
            expected=f"{n_slices * Y_ITEM_BYTES} bytes of raw uint8, or a .npy or HDF5 file",
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnsafeFileError(f"cannot be opened safely ({exc.strerror})", path=path) from None
    fst = os.fstat(fd)
    if not (stat.S_ISREG(fst.st_mode) and _same_file(st, fst) and fst.st_size <= cap):
        os.close(fd)
        raise UnsafeFileError("changed while it was being checked", path=path, expected="a file that stays put")
    return os.fdopen(fd, "rb"), fst.st_size


# Containers recognised only to name them: (magic, offset, description, hint).
_SAVE_HINT = "save one array with np.save(path, y_pred) or data_spec.submission.write_submission(path, y_pred)"
_FOREIGN = (
    (b"PK\x03\x04", 0, "a zip archive (np.savez writes one)", _SAVE_HINT),
    (b"\x1f\x8b", 0, "a gzip-compressed file", "decompress it first, or submit it uncompressed"),
    (b"BZh", 0, "a bzip2-compressed file", "decompress it first"),
    (b"\xfd7zXZ\x00", 0, "an xz-compressed file", "decompress it first"),
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image", "submit the predicted masks as an array, not a picture of them"),
    (b"n+1\x00", 344, "a NIfTI volume", _SAVE_HINT),
    (b"ni1\x00", 344, "a NIfTI header", _SAVE_HINT),
)
_TEXT = frozenset(b"0123456789+-.,;eE \t\r\nTrueFalsnaNI[]()")


def _pread(fh, size: int, offset: int) -> bytes:
    if isinstance(fh, io.BytesIO):  # bytes already read once (the leaderboard): no second descriptor
        return bytes(fh.getbuffer()[offset : offset + size])
    return os.pread(fh.fileno(), size, offset)


def sniff(fh, size: int):
    """The container, from magic bytes: ``"hdf5"``, ``"npy"``, ``"dat"``, or (name, hint) of a foreign one.

    Raw course bytes have no magic: anything unrecognised is ``"dat"``. HDF5 is
    also found after a user block (signature at 512, 1024, 2048... bytes).
    """
    head = _pread(fh, 64, 0)
    if head.startswith(HDF5_SIGNATURE):
        return HDF5
    if head.startswith(NPY_MAGIC):
        return NPY
    offset = 512
    while offset + len(HDF5_SIGNATURE) <= size:
        if _pread(fh, len(HDF5_SIGNATURE), offset) == HDF5_SIGNATURE:
            return HDF5
        offset *= 2
    for magic, at, name, hint in _FOREIGN:
        if _pread(fh, len(magic), at) == magic:
            return name, hint
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle (the grader never unpickles)", _SAVE_HINT
    if head and set(head) <= _TEXT:
        return "a text file", "np.savetxt writes text: use y_pred.astype(np.uint8).tofile(path) or np.save"
    return DAT


def foreign_error(kind, path) -> UnknownFormatError:
    name, hint = kind
    return UnknownFormatError(
        f"is {name}",
        path=path,
        where="magic bytes",
        expected=f"raw uint8 bytes ({SUBMISSION_FILE}), a .npy file or an HDF5 file",
        hint=hint,
    )


def _dat_size_hint(size: int, n: int) -> str:
    if size % Y_ITEM_BYTES:
        return "not a whole number of 240 x 240 slices: an interrupted copy, or a header before the data?"
    k = size // Y_ITEM_BYTES
    if n and k == 8 * n:
        return (
            f"the size fits {n} slices of 8-byte values (int64 from predict(), or float64): "
            "write y_pred.astype(np.uint8).tofile(path)"
        )
    if n and k == 4 * n:
        return (
            f"the size fits {n} slices of float32 (you saved probabilities: threshold them) or int32: "
            "write (proba >= 0.5).astype(np.uint8).tofile(path)"
        )
    if n and k == 2 * n:
        return f"the size fits {n} slices of 2-byte values: write y_pred.astype(np.uint8).tofile(path)"
    return f"it holds {k} slices; predict every one of the {n} test slices, in their order"


def read_dat(fh, size: int, n_slices: int, path=None) -> Loaded:
    """The course's raw submission: uint8, C order, exactly N x 240 x 240 bytes, no header."""
    want = expected_shape(n_slices)
    nbytes = math.prod(want) * Y_DTYPE.itemsize
    if size != nbytes:
        return Loaded(
            DAT,
            errors=[
                FileSizeError(
                    f"is {size} bytes of raw data",
                    path=path,
                    where="file size",
                    expected=f"{nbytes} bytes ({n_slices} x {HEIGHT} x {WIDTH} uint8)",
                    hint=_dat_size_hint(size, n_slices),
                )
            ],
        )
    arr = _read_exact(fh, 0, Y_DTYPE, math.prod(want))
    if arr is None:
        return Loaded(DAT, errors=[CorruptFileError("became shorter while being read", path=path)])
    return Loaded(DAT, arr.reshape(want))


def _read_exact(fh, offset: int, dtype, count: int) -> Optional[np.ndarray]:
    """Exactly ``count`` items of ``dtype`` from ``offset`` into a fresh array, or None if the file is short."""
    out = np.empty(count, dtype=dtype)
    view = memoryview(out.view(np.uint8)) if count else memoryview(b"")
    fh.seek(offset)
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:])
        if not got:
            return None
        done += got
    return out


def read_npy(fh, size: int, n_slices: int, path=None) -> Loaded:
    """A .npy file: header parsed with numpy's own readers, checked, then exactly the data read.

    Never unpickles (an object dtype is refused from its header), never
    allocates a declared shape that is not the expected one or smaller.
    """
    fh.seek(0)
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(fh)
        else:
            return Loaded(
                NPY,
                errors=[
                    UnknownFormatError(
                        f"is a .npy file of format version {version[0]}.{version[1]}",
                        path=path, where="header", expected="format version 1.0 or 2.0", hint=_SAVE_HINT,
                    )
                ],
            )
    except Exception as exc:  # noqa: BLE001 - any failure to parse an untrusted header means a corrupt file
        return Loaded(
            NPY,
            errors=[
                CorruptFileError(f"has an unreadable .npy header ({exc})", path=path, where="header", hint=_SAVE_HINT)
            ],
        )
    problem = npy_shape_problem(shape, dtype)
    if problem:
        return Loaded(NPY, errors=[CorruptFileError(f"declares {problem}", path=path, where="header", hint=_SAVE_HINT)])
    errors = shape_errors(shape, n_slices, where="the .npy header") + dtype_errors(dtype, where="the .npy header")
    if dtype.hasobject:
        return Loaded(NPY, errors=errors)  # the data is a pickle: never read
    offset = fh.tell()
    count = math.prod(shape)
    declared = count * dtype.itemsize
    if size - offset != declared:
        short = size - offset < declared
        errors.append(
            FileSizeError(
                f"holds {size - offset} bytes of data but its header declares {declared}"
                + (" (truncated)" if short else " (bytes after the array)"),
                path=path,
                where="data after the header",
                expected=f"{declared} bytes for shape {tuple(shape)} of {dtype}",
                hint="an interrupted copy or save: write it again" if short
                else "np.save called twice on one open file? Save one array per file",
            )
        )
        return Loaded(NPY, errors=errors)
    if not readable(shape, dtype, n_slices):
        return Loaded(NPY, errors=errors)
    # Bool is read as its bytes: a byte other than 0/1 is then a bad value, not a silent True.
    arr = _read_exact(fh, offset, np.dtype(Y_DTYPE) if dtype == np.bool_ else dtype, count)
    if arr is None:
        errors.append(CorruptFileError("became shorter while being read", path=path))
        return Loaded(NPY, errors=errors)
    try:
        arr = arr.reshape(shape, order="F" if fortran_order else "C")
    except (ValueError, TypeError, OverflowError) as exc:  # npy_shape_problem should have said why
        errors.append(CorruptFileError(f"declares a shape no array can have ({exc})", path=path, where="header"))
        return Loaded(NPY, errors=errors)
    return Loaded(NPY, arr, errors)


def _max_dims() -> int:
    """The most dimensions this numpy's arrays can have (32 before numpy 2, 64 since)."""
    n = 16
    while n < 1024:
        try:
            np.empty((0,) * (n + 1), dtype=np.uint8)
        except ValueError:
            return n
        n += 1
    return n


MAX_DIMS = _max_dims()


def npy_shape_problem(shape, dtype) -> Optional[str]:
    """Why a .npy header's shape can describe no array, or None.

    ``numpy.lib.format`` accepts any tuple of Python ints, so a header may say
    ``(True, 240, 240)``, have more dimensions than numpy allows, or put a zero
    beside dimensions whose product overflows: each gets a verdict here
    instead of crashing a reader later.
    """
    if not isinstance(shape, tuple):
        return f"a shape that is not a tuple ({shape!r})"
    shown = _short(shape)
    if any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        return f"a shape with entries that are not integers {shown}"
    if any(s < 0 for s in shape):
        return f"a negative shape {shown}"
    if len(shape) > MAX_DIMS:
        return f"{len(shape)} dimensions (numpy allows at most {MAX_DIMS})"
    if math.prod(s for s in shape if s) * max(dtype.itemsize, 1) > np.iinfo(np.intp).max:
        return f"a shape too large for any array {shown}"
    return None


def _short(shape) -> str:
    text = repr(shape)
    return text if len(text) <= 80 else text[:77] + "..."


def is_submission_file(path) -> bool:
    """Whether ``path`` holds a submission, recognised by its content (a command may replace it).

    Raw bytes that are whole 240 x 240 slices of 0 and 1 only, a ``.npy`` of
    (N, 240, 240) uint8 or bool masks, or an HDF5 file with a ``y_pred``
    dataset. Never raises: anything unreadable is not a submission.
    """
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= ABSOLUTE_MAX_BYTES:
            return False
        with open(path, "rb") as fh:
            kind = sniff(fh, st.st_size)
            if kind == DAT:
                if st.st_size % Y_ITEM_BYTES:
                    return False
                while block := fh.read(1 << 22):
                    if np.frombuffer(block, dtype=np.uint8).max() > 1:
                        return False
                return True
            if kind == NPY:
                fh.seek(0)
                version = npy_format.read_magic(fh)
                read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
                shape, _, dtype = read(fh)
                return (npy_shape_problem(shape, dtype) is None and len(shape) == 3
                        and shape[1:] == (HEIGHT, WIDTH) and dtype in (np.dtype(np.uint8), np.dtype(np.bool_)))
        if kind == HDF5:
            import h5py

            from data_spec.constants import H5_Y_PRED

            with h5py.File(path, "r") as f:
                return isinstance(f.get(H5_Y_PRED, getlink=True), h5py.HardLink) and isinstance(f[H5_Y_PRED], h5py.Dataset)
    except Exception:  # noqa: BLE001 - a file that cannot be read is not recognised
        return False
    return False
