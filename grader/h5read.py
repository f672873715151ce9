"""Read an HDF5 submission without letting it make the grader read anything else.

An HDF5 file can point outside itself: external links, external raw storage,
virtual datasets. Each could make the grader read the truth file on the
student's behalf, and each is refused, from the file's metadata, before a data
byte is read. As a second wall, the file is opened through h5py's file-object
driver on the descriptor already checked by :func:`grader.readers.open_submission`:
every "other file" HDF5 might try to open resolves to that same descriptor.

Compression is limited to h5py's gzip, shuffle and lzf filters, the declared
shape must be the expected one (or smaller) before reading, chunks may be no
larger than the dataset (or 8 MiB) and no more than tile it, case ids no longer
than 256 bytes, and every gzip chunk is inflated with a cap first (a
decompression bomb inflates far beyond its chunk's size).
"""
from __future__ import annotations

import math
import zlib

import h5py
import numpy as np

from data_spec.constants import H5_CASE_ID, H5_Y_PRED, Y_DTYPE
from data_spec.errors import CorruptFileError

from .checks import dtype_errors, readable, shape_errors
from .errors import BadDtypeError, IdMismatchError, MissingDatasetError, UnsafeFileError
from .readers import HDF5, Loaded

_SHUFFLE, _DEFLATE, _LZF = h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_LZF
_COMPRESSORS = frozenset((_DEFLATE, _LZF))
#: More chunks than this is a file built to make the checks slow (the default chunking gives tens).
MAX_CHUNKS = 1 << 16
#: A chunk may hold the whole dataset or this many bytes, whichever is more (h5py's own chunks are under 1 MiB).
MAX_CHUNK_BYTES = 8 << 20
#: Longest fixed-length case id read (ids are 9 characters; a longer one is a file built to exhaust memory).
MAX_ID_BYTES = 256
_SAVE_HINT = (
    "write it with data_spec.submission.write_submission(path, y_pred), or h5py's create_dataset('y_pred', data=...)"
)


def _unsafe(message, path, name, hint=_SAVE_HINT):
    return UnsafeFileError(message, path=path, where=f"dataset '{name}'", hint=hint)


def _hard_path(f, target: bytes) -> bool:
    """Whether every component of an in-file path is a hard link (no external or chained soft link)."""
    parts = [p for p in target.split(b"/") if p and p != b"."]
    group = f
    for i, part in enumerate(parts):
        links = group.id.links
        if part == b".." or not links.exists(part) or links.get_info(part).type != h5py.h5l.TYPE_HARD:
            return False
        if i < len(parts) - 1:
            group = group[part]
            if not isinstance(group, h5py.Group):
                return False
    return bool(parts)


def _resolve(f, name: str, path):
    """The dataset at root link ``name`` if it is safe to touch: (dataset or None, errors)."""
    links, key = f.id.links, name.encode()
    if not links.exists(key):
        return None, []
    kind = links.get_info(key).type
    if kind == h5py.h5l.TYPE_EXTERNAL:
        target_file, target = links.get_val(key)
        return None, [
            _unsafe(
                f"'{name}' is an external link to {target_file.decode(errors='replace')}:"
                f"{target.decode(errors='replace')} (it would make the grader read another file)",
                path, name, hint="store the array in the file itself",
            )
        ]
    if kind == h5py.h5l.TYPE_SOFT:
        target = links.get_val(key)
        if not _hard_path(f, target):
            return None, [
                _unsafe(f"'{name}' is a soft link to {target.decode(errors='replace')!r}, which leads outside plain "
                        "datasets of this file", path, name)
            ]
        obj = f[target]
    elif kind == h5py.h5l.TYPE_HARD:
        obj = f[key]
    else:
        return None, [_unsafe(f"'{name}' is a user-defined link (type {kind})", path, name)]
    if not isinstance(obj, h5py.Dataset):
        kind_name = "a group" if isinstance(obj, h5py.Group) else f"a {type(obj).__name__}"
        return None, [MissingDatasetError(f"'{name}' is {kind_name}, not a dataset", path=path, where=f"'{name}'",
                                          hint=_SAVE_HINT)]
    return obj, []


def _layout_errors(ds, path, name):
    """Refuse virtual datasets, external storage and filters other than shuffle then gzip or lzf."""
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        return [_unsafe(f"'{name}' is a virtual dataset (it maps data from other files)", path, name)], []
    if dcpl.get_external_count():
        files = ", ".join(dcpl.get_external(i)[0].decode(errors="replace") for i in range(dcpl.get_external_count()))
        return [_unsafe(f"'{name}' keeps its data in external file(s): {files}", path, name)], []
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED, h5py.h5d.COMPACT):
        return [_unsafe(f"'{name}' has an unknown storage layout ({layout})", path, name)], []
    filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
    codes = [f[0] for f in filters]
    compressors = [c for c in codes if c in _COMPRESSORS]
    ok = (
        set(codes) <= {_SHUFFLE, _DEFLATE, _LZF}
        and len(set(codes)) == len(codes)
        and len(compressors) <= 1
        and (not compressors or codes[-1] == compressors[0])
    )
    if not ok:
        names = " -> ".join(f[3].decode(errors="replace") or str(f[0]) for f in filters)
        return [
            UnsafeFileError(
                f"'{name}' uses the filter pipeline {names}",
                path=path, where=f"dataset '{name}'",
                expected="no compression, or optional shuffle then gzip or lzf", hint=_SAVE_HINT,
            )
        ], codes
    return [], codes


def _storage_errors(ds, codes, file_size: int, path, name):
    """Check every stored chunk lies inside the file and no gzip chunk inflates beyond its size."""
    dsid = ds.id
    item = dsid.get_type().get_size()
    dcpl = dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        if offset is not None and offset + dsid.get_storage_size() > file_size:
            return [CorruptFileError(f"'{name}' points past the end of the file", path=path, where=f"dataset '{name}'")]
        return []
    if layout != h5py.h5d.CHUNKED:
        return []
    chunk = dcpl.get_chunk()
    chunk_bytes = math.prod(chunk) * item
    # Far larger chunks than the dataset, or more chunks than tile it, only serve to make
    # the grader inflate far more than the array it reads (gigabytes from a small file).
    if chunk_bytes > max(math.prod(ds.shape) * item, MAX_CHUNK_BYTES):
        return [_unsafe(f"'{name}' has chunks of shape {chunk}, larger than the dataset {ds.shape}", path, name,
                        hint="use the default chunking")]
    n_chunks = dsid.get_num_chunks()
    tiles = math.prod(-(-s // max(c, 1)) for s, c in zip(ds.shape, chunk))
    if n_chunks > min(MAX_CHUNKS, tiles):
        return [_unsafe(f"'{name}' is split into {n_chunks} chunks ({tiles} tile it)", path, name,
                        hint="use the default chunking")]
    for i in range(n_chunks):
        info = dsid.get_chunk_info(i)
        if info.byte_offset is None or info.byte_offset + info.size > file_size:
            return [CorruptFileError(f"a chunk of '{name}' points past the end of the file", path=path,
                                     where=f"dataset '{name}', chunk {info.chunk_offset}")]
        applied = [c for j, c in enumerate(codes) if not info.filter_mask & (1 << j)]
        outer = applied[-1] if applied else None
        if outer not in _COMPRESSORS and info.size > chunk_bytes:
            return [CorruptFileError(f"an uncompressed chunk of '{name}' is larger than a chunk", path=path,
                                     where=f"dataset '{name}', chunk {info.chunk_offset}")]
        # An lzf chunk needs no check here: h5py's lzf filter caps its own output at 100 MB.
        if outer == _DEFLATE:
            _, raw = dsid.read_direct_chunk(info.chunk_offset)
            try:
                inflated = zlib.decompressobj().decompress(raw, chunk_bytes + 1)
            except zlib.error as exc:
                return [CorruptFileError(f"a gzip chunk of '{name}' is damaged ({exc})", path=path,
                                         where=f"dataset '{name}', chunk {info.chunk_offset}")]
            if len(inflated) > chunk_bytes:
                return [_unsafe(f"a gzip chunk of '{name}' inflates beyond its {chunk_bytes} bytes "
                                "(a decompression bomb)", path, name)]
    return []


def _id_errors(got, want, path) -> list:
    got, want = np.asarray(got, dtype=str), np.asarray(want, dtype=str)
    if got.shape == want.shape and np.array_equal(got, want):
        return []
    if got.shape != want.shape:
        return [IdMismatchError(f"'{H5_CASE_ID}' has {got.size} ids", path=path, where=f"dataset '{H5_CASE_ID}'",
                                expected=f"{want.size} ids, one per test slice, in test order")]
    differ = got != want
    i = int(np.argmax(differ))
    if sorted(got.tolist()) == sorted(want.tolist()):
        hint = "the same ids in another order: write the predictions in the test order (the case_id of test.h5)"
    else:
        missing = sorted(set(want.tolist()) - set(got.tolist()))
        hint = f"{len(missing)} test ids are missing (e.g. {', '.join(missing[:3])}); copy case_id from test.h5"
    return [
        IdMismatchError(
            f"{int(differ.sum())} of {want.size} case ids differ from the test ids",
            path=path,
            where=f"dataset '{H5_CASE_ID}', position {i}: {str(got[i])!r}",
            expected=f"{str(want[i])!r} (the test ids, in test order)",
            hint=hint,
        )
    ]


def _read(ds, path, name):
    try:
        arr = ds[()]
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        return None, [CorruptFileError(f"'{name}' cannot be read ({exc})", path=path, where=f"dataset '{name}'")]
    return arr, []


def _read_ids(f, file_size, n_slices, case_ids, path) -> tuple:
    ds, errors = _resolve(f, H5_CASE_ID, path)
    if ds is None:
        return None, errors
    errors, codes = _layout_errors(ds, path, H5_CASE_ID)
    if errors:
        return None, errors
    is_text = ds.dtype.kind in "SU" or h5py.check_string_dtype(ds.dtype) is not None
    if not is_text or ds.ndim != 1 or ds.dtype.itemsize > MAX_ID_BYTES:
        return None, [IdMismatchError(f"'{H5_CASE_ID}' has shape {ds.shape} and type {ds.dtype}", path=path,
                                      where=f"dataset '{H5_CASE_ID}'",
                                      expected=f"({n_slices},) strings of at most {MAX_ID_BYTES} bytes")]
    if ds.shape[0] != n_slices:
        return None, [IdMismatchError(f"'{H5_CASE_ID}' has {ds.shape[0]} ids", path=path,
                                      where=f"dataset '{H5_CASE_ID}'",
                                      expected=f"{n_slices} ids, one per test slice, in test order")]
    errors = _storage_errors(ds, codes, file_size, path, H5_CASE_ID)
    if errors:
        return None, errors
    raw, errors = _read(ds, path, H5_CASE_ID)
    if raw is None:
        return None, errors
    ids = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.tolist()])
    if case_ids is None:
        return ids, []
    return ids, _id_errors(ids, case_ids, path)


def read_hdf5(fh, size: int, n_slices: int, case_ids=None, path=None) -> Loaded:
    """An HDF5 submission: dataset ``y_pred`` (N, 240, 240), optional ``case_id`` matching the test ids."""
    fh.seek(0)
    try:
        f = h5py.File(fh, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, ValueError, KeyError... on garbage
        return Loaded(HDF5, errors=[CorruptFileError(f"is not a readable HDF5 file ({type(exc).__name__}: {exc})",
                                                     path=path, hint=_SAVE_HINT)])
    with f:
        try:
            return _read_file(f, size, n_slices, case_ids, path)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            # A damaged object header or B-tree: the file is corrupt, whatever the step.
            return Loaded(HDF5, errors=[CorruptFileError(f"has damaged HDF5 metadata ({type(exc).__name__}: {exc})",
                                                         path=path, hint=_SAVE_HINT)])


def _read_file(f, size, n_slices, case_ids, path) -> Loaded:
    ds, errors = _resolve(f, H5_Y_PRED, path)
    array = None
    if ds is None and not errors:
        names = sorted(f.keys())
        errors.append(
            MissingDatasetError(
                f"has no dataset '{H5_Y_PRED}'" + (f" (found: {', '.join(names[:8])})" if names else " (it is empty)"),
                path=path, where="file root", expected=f"dataset '{H5_Y_PRED}' (N, 240, 240), optional '{H5_CASE_ID}'",
                hint=(f"rename '{names[0]}' to '{H5_Y_PRED}'" if len(names) == 1 and names[0] != H5_CASE_ID
                      else _SAVE_HINT),
            )
        )
    if ds is not None:
        layout_errors, codes = _layout_errors(ds, path, H5_Y_PRED)
        errors += layout_errors
        if not layout_errors:
            dtype = ds.dtype
            errors += shape_errors(ds.shape, n_slices, where=f"dataset '{H5_Y_PRED}'")
            if dtype.kind == "O":
                errors.append(BadDtypeError(f"'{H5_Y_PRED}' holds variable-length or reference data", path=path,
                                            where=f"dataset '{H5_Y_PRED}'", expected=f"{Y_DTYPE} 0/1", hint=_SAVE_HINT))
            else:
                errors += dtype_errors(dtype, where=f"dataset '{H5_Y_PRED}'")
            if ds.shape is not None and readable(ds.shape, dtype, n_slices):
                storage = _storage_errors(ds, codes, size, path, H5_Y_PRED)
                errors += storage
                if not storage:
                    array, read_errors = _read(ds, path, H5_Y_PRED)
                    errors += read_errors
                    if array is not None and array.dtype == np.bool_:
                        array = array.view(Y_DTYPE)  # an enum byte other than 0/1 shows as a bad value
    ids, id_errors = _read_ids(f, size, n_slices, case_ids, path)
    errors += id_errors
    return Loaded(HDF5, array, errors, ids)
