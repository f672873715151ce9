"""Write files and directories so that an interrupted run leaves nothing half-written."""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = "", *, check=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory, so the final ``os.replace``
    is atomic on POSIX. On any exception the temporary file is removed and the
    previous ``path`` (if any) is untouched.

    Parameters
    ----------
    path : path-like
    suffix : str
        Of the temporary file (some writers pick the format from it).
    check : callable, optional
        ``check(path)`` is called before anything is written and again just
        before the rename; it raises to refuse replacing what is at ``path``
        (see :func:`data_spec.layout.check_output_file`). A refusal leaves
        ``path`` untouched and no temporary file behind.
    """
    path = Path(path)
    if check is not None:
        check(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        if check is not None:  # again: the file may have appeared while this one was being written
            check(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return write_bytes(path, text.encode("utf-8"))


_RENAME_EXCHANGE = 2  # linux/fs.h


def _renameat2_exchange():
    """libc's ``renameat2`` when the platform has it (Linux, glibc >= 2.28), else None."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes

    fn = _renameat2_exchange()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # this kernel or file system cannot: fall back to two renames
    raise OSError(err, os.strerror(err), str(a))


def _swap(tmp: Path, path: Path, parent: Path) -> None:
    """Put the complete ``tmp`` at ``path``; what was at ``path`` ends up in a ``.old`` folder, removed after."""
    if not os.path.lexists(path):
        os.replace(tmp, path)
        return
    if _exchange(tmp, path):  # one atomic step: never a moment without a site
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # Two renames: a kill between them is repaired by _recover at the next run (under the same lock).
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
    os.replace(path, old / "previous")
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old / "previous", path)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _recover(path: Path) -> None:
    """Finish what a killed run left: put back a previous site moved aside, remove stale temporaries."""
    parent = path.parent
    for entry in sorted(parent.glob(f".{glob.escape(path.name)}.*.old")):
        previous = entry / "previous"
        if previous.exists() and not os.path.lexists(path):
            os.replace(previous, path)
        shutil.rmtree(entry, ignore_errors=True)
    for entry in parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def _dir_lock(parent: Path):
    """An exclusive ``flock`` on the parent folder: runs publishing beside each other take turns."""
    import fcntl

    fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory beside ``path``; swap it in place of ``path`` on success.

    An existing ``path`` is replaced only once the new content is complete, in one
    atomic step where the platform has one (Linux ``renameat2(RENAME_EXCHANGE)``):
    a reader, or a kill at any moment, sees the old or the new folder, never none.
    Runs on the same ``path`` take turns (an ``flock`` on the parent folder), and
    each run first repairs what a killed run left (a previous folder moved aside
    is put back; stale ``.<name>.*.tmp`` folders are removed). On failure
    ``path`` is left exactly as it was.
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _dir_lock(parent):
        _recover(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
        try:
            yield tmp
            os.chmod(tmp, 0o755)
            _swap(tmp, path, parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
