"""Write files and directories so that an interrupted run leaves nothing half-written."""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory beside ``path``; swap it in place of ``path`` on success.

    An existing ``path`` is replaced only once the new content is complete; on
    failure it is left exactly as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():  # the swap failed halfway: put the previous back
            os.replace(old / "previous", path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
