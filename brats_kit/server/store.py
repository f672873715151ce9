"""The content-addressed submission store: ``store/<sha256[:2]>/<sha256>``, written durably.

An upload is streamed into ``store/tmp/`` while its sha256 is computed and the
size cap enforced, scored, fsynced and moved to its address (the directory is
fsynced after the rename); the database row is committed after that, so an
acknowledged submission always has its file. A refused upload's file is removed
again (:meth:`Store.staged`). A server killed mid-upload leaves at most a
temporary file, which :meth:`Store.recover` removes at startup (no receipt was
ever given for it). A stored file the database does not know (a server killed
between the rename and the commit, or a database restored from a backup older
than the store, whose receipts were given) is never deleted: it is moved to
``store/quarantine/`` and reported, and ``server audit --adopt`` records it again.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

_SHA = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(Exception):
    """The upload went over the size cap (raised while streaming)."""


class StorageFull(Exception):
    """The store's disk or quota is full (ENOSPC, EDQUOT): the upload was not kept."""


#: The errors of a full disk or a used-up disk quota.
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def _disk_full_as_storage_full():
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL:
            raise StorageFull(os.strerror(exc.errno)) from exc
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Upload:
    """A file being received: write chunks, :meth:`finish`, then :meth:`Store.commit` (fsync) or :meth:`discard`."""

    def __init__(self, tmp_dir: Path, cap: int):
        with _disk_full_as_storage_full():
            fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tmp", dir=tmp_dir)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.cap = cap

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise TooLarge(self.size)
        self._hash.update(chunk)
        with _disk_full_as_storage_full():
            self._fh.write(chunk)

    def finish(self) -> str:
        """The whole file is written (readable by the scorer, not yet durable); return its sha256 (hex)."""
        with _disk_full_as_storage_full():
            self._fh.flush()
        return self._hash.hexdigest()

    def sync(self) -> None:
        """Make the file durable (fsync) and close it."""
        with _disk_full_as_storage_full():
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Store:
    """Files addressed by their sha256 under ``root``; ``root/tmp`` holds uploads in progress."""

    def __init__(self, root):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.quarantine = self.root / "quarantine"
        self._lock = threading.Lock()
        self._inflight: collections.Counter = collections.Counter()
        #: Shared with servers in other processes (replicas): a refused upload's file is left in place (another
        #: may be recording the same bytes) and a file stored again is touched (see recover).
        self.shared = False

    @contextlib.contextmanager
    def staged(self, sha256: str, is_referenced: Callable[[str], bool]):
        """While a file is moved into the store and its row committed, outside the database lock.

        The file goes in before the transaction, so the course's write lock is held for
        the database alone (not for an fsync, a rename and a directory fsync). If the
        block fails (a quota refusal found in the transaction, an error), the file is
        removed again unless a row or another upload in progress in this process has
        the same content. A crash in between leaves an unreferenced file, which
        :meth:`recover` moves to ``quarantine/``.
        """
        with self._lock:
            self._inflight[sha256] += 1
        kept = False
        try:
            yield
            kept = True
        finally:
            with self._lock:
                self._inflight[sha256] -= 1
                if not self._inflight[sha256]:
                    del self._inflight[sha256]
                    if not kept and not self.shared and not is_referenced(sha256):
                        with contextlib.suppress(FileNotFoundError):
                            self.path(sha256).unlink()

    def create(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)

    def path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def upload(self, cap: int) -> Upload:
        return Upload(self.tmp, cap)

    def commit(self, upload: Upload, sha256: str) -> Path:
        """Move a finished upload to its address (durably); identical content is stored once.

        A full disk raises :class:`StorageFull`; the caller removes what was moved in (:meth:`staged`).
        """
        dest = self.path(sha256)
        if self._holds(dest):  # the same bytes are stored once
            upload.discard()
            return dest
        upload.sync()
        with _disk_full_as_storage_full():
            dest.parent.mkdir(exist_ok=True, mode=0o700)
            os.chmod(upload.path, 0o600)
            os.replace(upload.path, dest)
            _fsync_dir(dest.parent)
        return dest

    def _holds(self, dest: Path) -> bool:
        """Whether ``dest`` is stored already. Shared, it is touched too, so that a replica starting now sees a
        file in use (it tidies only old ones, see :meth:`recover`); gone meanwhile (quarantined): not held."""
        if not self.shared:
            return dest.exists()
        try:
            os.utime(dest)
        except FileNotFoundError:
            return False
        return True

    def files(self) -> dict:
        """``sha256 -> path`` of every stored file."""
        out = {}
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2 and sub.name != "tmp":
                for f in sub.iterdir():
                    if _SHA.match(f.name):
                        out[f.name] = f
        return out

    def temporary_files(self) -> list:
        return sorted(self.tmp.iterdir()) if self.tmp.is_dir() else []

    def quarantined(self) -> dict:
        """``sha256 -> path`` of the files moved aside by :meth:`recover` (waiting for ``server audit --adopt``)."""
        if not self.quarantine.is_dir():
            return {}
        return {f.name: f for f in sorted(self.quarantine.iterdir()) if _SHA.match(f.name)}

    def recover(self, referenced: set, older_than: Optional[float] = None) -> tuple:
        """Tidy the store at startup: ``(removed, quarantined)``.

        Temporary files (uploads never acknowledged) are removed; stored files the
        database does not reference are moved (durably) to ``quarantine/``, never deleted.
        ``older_than`` (seconds): only files not modified for that long (a store shared with
        running servers, whose uploads in progress are younger).
        """
        removed, moved = [], []
        cutoff = None if older_than is None else time.time() - older_than

        def aged(f: Path) -> bool:
            try:
                return cutoff is None or f.stat().st_mtime < cutoff
            except FileNotFoundError:  # finished (moved or removed) by its own server meanwhile
                return False

        for f in self.temporary_files():
            if aged(f):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                    removed.append(f)
        for sha, f in self.files().items():
            if sha not in referenced and aged(f):
                self.quarantine.mkdir(exist_ok=True, mode=0o700)
                dest = self.quarantine / sha
                os.replace(f, dest)
                _fsync_dir(self.quarantine)
                _fsync_dir(f.parent)
                moved.append(dest)
        return removed, moved

    def release(self, sha256: str) -> Path:
        """Move a quarantined file back to its address once its content is checked; return the address."""
        src = self.quarantine / sha256
        if not _SHA.match(sha256) or not src.is_file() or src.is_symlink():
            raise FileNotFoundError(f"no quarantined file {sha256}")
        if sha256_file(src) != sha256:
            raise ValueError(f"the quarantined file {sha256} does not match its name")
        dest = self.path(sha256)
        dest.parent.mkdir(exist_ok=True, mode=0o700)
        os.replace(src, dest)
        _fsync_dir(dest.parent)
        _fsync_dir(self.quarantine)
        return dest


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
