"""Check a code submission (a folder or a ``.zip`` of one) and copy it into a job folder.

Every archive is treated as hostile: absolute paths, ``..``, links, devices,
encrypted members, duplicate names, too many files, too many bytes and
compression bombs are refused with a :class:`~grader.errors.CodePackageError`
naming the member, what was expected and a hint. Nothing is written outside the
destination, and sizes are counted on the bytes actually read, never on what the
archive declares.
"""
from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import CodePackageError

#: The module a code submission must hold, defining ``predict(x)``.
SUBMISSION_MODULE = "submission.py"
MAX_FILES = 200
MAX_BYTES = 200 * 2**20
MAX_RATIO = 200  # uncompressed / compressed, per member: beyond it a member is a bomb, not a model
MAX_DEPTH = 8
_CHUNK = 2**20


def _refuse(message, *, path=None, where=None, expected=None, hint=None):
    raise CodePackageError(message, path=path, where=where, expected=expected, hint=hint)


def _check_name(name: str, archive) -> PurePosixPath:
    """A member name as a safe relative path, or a named refusal."""
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        _refuse("member has an absolute or non-POSIX path", path=archive, where=repr(name),
                expected="relative paths inside the submission folder")
    parts = PurePosixPath(name).parts
    if any(p in ("..", "") for p in parts) or not parts:
        _refuse("member path leaves the submission folder", path=archive, where=repr(name),
                expected="no '..' in member paths")
    if len(parts) > MAX_DEPTH:
        _refuse("member is nested too deeply", path=archive, where=repr(name), expected=f"at most {MAX_DEPTH} levels")
    return PurePosixPath(*parts)


def _root_of(names) -> PurePosixPath:
    """The folder holding ``submission.py``: the top, or the one folder a zip of the folder has."""
    if PurePosixPath(SUBMISSION_MODULE) in names:
        return PurePosixPath()
    tops = {n.parts[0] for n in names} - {"__MACOSX"}  # macOS's resource forks beside the folder
    if len(tops) == 1:
        top = PurePosixPath(next(iter(tops)))
        if top / SUBMISSION_MODULE in names:
            return top
    raise CodePackageError(f"no {SUBMISSION_MODULE} at the top of the submission", expected=
                           f"{SUBMISSION_MODULE} defining predict(x)",
                           hint="zip the folder that holds submission.py (or its content)")


def _unzip(archive: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        _refuse(f"not a readable zip archive ({type(exc).__name__})", path=archive, expected="a .zip of a folder")
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            _refuse(f"archive holds {len(infos)} members", path=archive, expected=f"at most {MAX_FILES}",
                    hint="leave data and caches out: only the code and the model")
        members, seen = [], set()
        for info in infos:
            name = _check_name(info.filename.rstrip("/") if info.is_dir() else info.filename, archive)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (zipfile.writestr, Windows)
            if info.flag_bits & 0x1:
                _refuse("member is encrypted", path=archive, where=str(name), expected="no password")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _refuse("member is a link or special file", path=archive, where=str(name),
                        expected="regular files and folders only", hint="zip with 'zip -r', without --symlinks")
            if str(name).lower() in seen:
                _refuse("duplicate member", path=archive, where=str(name), expected="each path once")
            seen.add(str(name).lower())
            members.append((info, name))
        files = {name for info, name in members if not info.is_dir()}
        root = _root_of(files)
        total = 0
        for info, name in members:
            if info.is_dir():
                continue
            if not name.is_relative_to(root):
                continue  # outside the submission folder (a __MACOSX/ beside it): not copied
            target = dest / name.relative_to(root)
            budget = min(MAX_BYTES - total, MAX_RATIO * max(info.compress_size, 1) + _CHUNK)
            try:
                total += _extract(zf, info, target, budget, archive, name)
            except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                # A file and a folder of the same name, a corrupt or unsupported member, a bad CRC.
                _refuse(f"member cannot be extracted ({type(exc).__name__})", path=archive, where=str(name),
                        expected="a zip made by 'zip -r' or a file manager", hint="zip the folder again")


def _extract(zf, info, target: Path, budget: int, archive, name) -> int:
    """Copy one member, counting the bytes actually inflated (never the size the archive declares)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                _refuse("member expands beyond the size cap (a compression bomb?)", path=archive,
                        where=str(name), expected=f"at most {MAX_BYTES // 2**20} MiB in all, "
                        f"compression ratio at most {MAX_RATIO}")
            out.write(chunk)
    return written


def _copy_folder(folder: Path, dest: Path) -> None:
    names, total = [], 0
    for current, dirs, files in os.walk(folder, followlinks=False):
        rel = Path(current).relative_to(folder)
        if len(rel.parts) >= MAX_DEPTH:
            _refuse("folder is nested too deeply", path=current, expected=f"at most {MAX_DEPTH} levels")
        for entry in sorted(dirs + files):
            st = os.lstat(Path(current) / entry)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                _refuse("a link or special file in the submission", path=Path(current) / entry,
                        expected="regular files and folders only", hint="copy the file itself, not a link to it")
            total += st.st_size
            names.append(rel / entry)
            if len(names) > MAX_FILES or total > MAX_BYTES:
                _refuse("submission folder too large", path=folder,
                        expected=f"at most {MAX_FILES} files and {MAX_BYTES // 2**20} MiB",
                        hint="leave data and caches out: only the code and the model")
        dirs[:] = [d for d in dirs if stat.S_ISDIR(os.lstat(Path(current) / d).st_mode)]
    if Path(SUBMISSION_MODULE) not in names:
        _refuse(f"no {SUBMISSION_MODULE} in the folder", path=folder, expected=f"{SUBMISSION_MODULE} defining predict(x)")
    for rel in names:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a file swapped for a link after the walk is refused, not followed.
        fd = os.open(folder / rel, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src, open(dest / rel, "xb") as out:
            shutil.copyfileobj(src, out, _CHUNK)


def unpack_submission(source, dest) -> Path:
    """Check a code submission and copy it into ``dest`` (created, must not exist).

    Parameters
    ----------
    source : path-like
        A folder holding ``submission.py``, or a ``.zip`` of one (the folder
        itself or its content).
    dest : path-like
        The job's code folder.

    Returns
    -------
    Path
        ``dest``, holding ``submission.py`` at its top; files are world-readable
        (the sandbox's user reads them), folders traversable.

    Raises
    ------
    CodePackageError
        A hostile or malformed submission, naming where and what was expected.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (src / "submission.py").write_text("def predict(x):\\n    return (x[..., 3] > 1).astype('uint8')\\n")
    >>> sorted(p.name for p in unpack_submission(src, src.parent / (src.name + "-job")).iterdir())
    ['submission.py']
    """
    source, dest = Path(source), Path(dest)
    st = os.lstat(source) if os.path.lexists(source) else None
    if st is None:
        _refuse("no such file or folder", path=source, expected="a folder or a .zip holding submission.py")
    dest.mkdir(mode=0o755)
    try:
        if stat.S_ISDIR(st.st_mode):
            _copy_folder(source, dest)
        elif stat.S_ISREG(st.st_mode):
            _unzip(source, dest)
        else:
            _refuse("not a folder or a regular file", path=source, expected="a folder or a .zip holding submission.py")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    for current, dirs, files in os.walk(dest):
        os.chmod(current, 0o755)
        for name in files:
            os.chmod(Path(current) / name, 0o644)
    return dest
