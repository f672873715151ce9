"""Find, open and write a competition directory in either layout.

A competition directory holds what a student receives::

    DIR/train_data_x.dat  train_data_y.dat  test_data_x.dat     (course layout)
    DIR/train.h5  test.h5                                        (canonical layout)

and, apart, what only the instructor keeps::

    DIR/private/test_data_y.dat  DIR/private/test_truth.h5  DIR/private/manifest.json
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from plumbing.atomic import write_text
from plumbing.jsonio import json_default

from .constants import (
    COURSE_X,
    COURSE_Y,
    H5_FILES,
    HIDDEN,
    HIDDEN_H5,
    MANIFEST_FILE,
    PRIVATE_DIR,
    SPLITS,
    SUBMISSION_FILE,
    TEST,
    TRAIN,
    TRUTH_H5,
    case_ids,
)
from .course import read_course_array, write_course_array
from .errors import BadArgumentError, KitError, LayoutError, MissingFileError, OverwriteError  # noqa: F401
from .hdf5 import is_hdf5, read_split_h5, sha256_file, write_split_h5

COURSE = "course"
HDF5 = "hdf5"
LAYOUTS = (COURSE, HDF5)

#: The names a competition builder writes: the inputs, the masks, the truth and the manifest.
#: No other command writes a file of these names, whatever ``--force`` says.
CONTRACT_FILES = frozenset(
    list(H5_FILES.values()) + list(COURSE_X.values()) + list(COURSE_Y.values()) + [TRUTH_H5, MANIFEST_FILE, HIDDEN_H5]
)


@dataclass
class Split:
    """One split of a competition, opened lazily.

    Attributes
    ----------
    x : array-like (N, 240, 240, 4) float32 or None
        A ``numpy.memmap`` (course layout) or :class:`~data_spec.hdf5.LazyH5Array`.
    y : array-like (N, 240, 240) uint8 or None
        Masks, when the layout holds them.
    case_id : ndarray of str (N,)
    public : ndarray of bool (N,) or None
        Leaderboard phase of each case (truth files only).
    layout : {"course", "hdf5"}
    path : Path
        The file (HDF5) or the directory (course) it was read from.
    attrs : dict
        Provenance attributes (HDF5 only).

    Unpacks as ``x, y, case_id = split``.
    """

    x: object
    y: object
    case_id: np.ndarray
    public: Optional[np.ndarray]
    layout: str
    path: Path
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_id)

    def __iter__(self):
        return iter((self.x, self.y, self.case_id))


def detect_layout(directory, split: str) -> str:
    """Which layout ``directory`` holds ``split`` in; HDF5 wins when both are present."""
    directory = Path(directory)
    if (directory / H5_FILES[split]).is_file():
        return HDF5
    if (directory / COURSE_X[split]).is_file():
        return COURSE
    raise LayoutError(
        f"no {split} split here",
        path=directory,
        expected=f"{H5_FILES[split]} (canonical) or {COURSE_X[split]} (course layout)",
        hint="run 'brats-kit data synth --out DIR' to build the synthetic competition"
        if not directory.exists() or not any(directory.iterdir())
        else None,
    )


def open_split(path, split: str = TRAIN, layout: str = "auto", *, verify: bool = False) -> Split:
    """Open one split of a competition, lazily, from either layout.

    Parameters
    ----------
    path : path-like
        A competition directory, or one split file (``.h5`` or ``*_x.dat``).
    split : {"train", "test"}
    layout : {"auto", "course", "hdf5"}
        ``auto`` picks the canonical HDF5 file when present.
    verify : bool
        Recompute and check the HDF5 checksums (reads everything).
    """
    if split not in SPLITS:
        raise BadArgumentError(f"split must be one of {SPLITS}, got {split!r}", expected=" or ".join(SPLITS))
    path = Path(path)
    if not path.exists():
        raise MissingFileError("no such file or directory", path=path)
    if path.is_file():
        if is_hdf5(path):
            return _open_h5(path, verify)
        directory, x_file = path.parent, path
        layout = COURSE
        # A course file names its split: test_data_x.dat holds test cases whatever was asked.
        split = next((s for s, name in COURSE_X.items() if name == path.name), split)
    else:
        directory = path
        layout = detect_layout(path, split) if layout == "auto" else layout
        if layout not in LAYOUTS:
            raise BadArgumentError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
        if layout == HDF5:
            return _open_h5(path / H5_FILES[split], verify)
        x_file = path / COURSE_X[split]
    x = read_course_array(x_file, "x")
    y_file = directory / COURSE_Y[split]
    y = read_course_array(y_file, "y") if y_file.is_file() else None
    if y is not None and len(y) != len(x):
        raise LayoutError(
            f"{y_file.name} has {len(y)} slices but {x_file.name} has {len(x)}", path=directory
        )
    return Split(x, y, case_ids(split, len(x)), None, COURSE, directory)


def _open_h5(path: Path, verify: bool) -> Split:
    d = read_split_h5(path, verify=verify)
    return Split(d["x"], d["y"], d["case_id"], d["public"], HDF5, path, d["attrs"])


def find_truth(path) -> Path:
    """Locate the test truth: a file, a ``private/`` directory, or a competition directory."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (
        path / TRUTH_H5,
        path / PRIVATE_DIR / TRUTH_H5,
        path / COURSE_Y[TEST],
        path / PRIVATE_DIR / COURSE_Y[TEST],
    ):
        if candidate.is_file():
            return candidate
    raise MissingFileError(
        "no test truth found",
        path=path,
        expected=f"{TRUTH_H5} or {COURSE_Y[TEST]}, here or under {PRIVATE_DIR}/",
    )


def open_truth(path) -> Split:
    """Open the test truth (HDF5 truth file or the course's ``test_data_y.dat``).

    The result has ``y``, ``case_id`` and, for the HDF5 truth, ``public``;
    ``x`` is None. A course truth file has positional ids and no phase flags.
    """
    path = find_truth(path)
    if path.name in COURSE_X.values() or path.name == H5_FILES[TRAIN]:
        raise LayoutError(
            "this is not a truth file", path=path,
            expected=f"{TRUTH_H5} or {COURSE_Y[TEST]}", hint="the truth lives under private/",
        )
    if is_hdf5(path):
        split = _open_h5(path, verify=False)
        if split.y is None:
            raise LayoutError("this HDF5 file holds no masks 'y'", path=path, hint="pass the truth file, not test.h5")
        return split
    y = read_course_array(path, "y")
    return Split(None, y, case_ids(TEST, len(y)), None, COURSE, path)


def find_hidden(path) -> Path:
    """Locate the hidden test slices: the file, a ``private/`` folder, or a competition directory."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (path / HIDDEN_H5, path / PRIVATE_DIR / HIDDEN_H5):
        if candidate.is_file():
            return candidate
    raise MissingFileError(
        "no hidden test slices found", path=path, expected=f"{HIDDEN_H5}, here or under {PRIVATE_DIR}/",
        hint="build the competition with 'brats-kit data synth --hidden-test K' (or 'data prepare ... --hidden-test K')",
    )


def open_hidden(path) -> Split:
    """Open the code track's hidden test slices lazily: ``x``, ``y``, ``case_id``, ``public``.

    Only the grader reads them: ``x`` goes into a code submission's sandbox, ``y``
    never does (its :class:`~data_spec.truth.Truth` comes from :func:`data_spec.truth.load_hidden_truth`).
    """
    path = find_hidden(path)
    split = _open_h5(path, verify=False)
    if split.x is None or split.y is None or split.public is None or split.attrs.get("split") != HIDDEN:
        raise LayoutError("not a hidden test file", path=path, expected="inputs x, masks y, case ids and public "
                          f"flags, split attribute {HIDDEN!r}")
    return split


# -- what a command may write where ---------------------------------------------------------------


def is_competition(directory) -> bool:
    """Whether ``directory`` holds a competition: any file of the contract, or a ``private/`` folder."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    names = set(os.listdir(directory))
    return bool(names & CONTRACT_FILES) or (directory / PRIVATE_DIR).is_dir()


def private_folder(path) -> Optional[Path]:
    """The competition's ``private/`` folder that ``path`` lies in (links followed), or None.

    A folder named ``private`` counts when it holds a truth or a manifest, or
    when the folder above it holds a competition.
    """
    path = Path(path).absolute()
    # Resolve what exists (a link to private/ is private/ too); the name itself may not exist yet.
    resolved = path.parent.resolve() / path.name
    for candidate in (path, resolved):
        for folder in [candidate] + list(candidate.parents):
            if folder.name != PRIVATE_DIR or not folder.is_dir():
                continue
            names = set(os.listdir(folder))
            if names & {TRUTH_H5, COURSE_Y[TEST], MANIFEST_FILE} or is_competition(folder.parent):
                return folder
    return None


def check_output_file(path, *, what: str, recognise: Callable[[Path], bool], force: bool = False) -> Path:
    """Refuse to write ``what`` at ``path`` unless it replaces nothing it should not.

    The rule of every command that writes a file (models, submissions, figures):

    - never inside a competition's ``private/`` folder, ``--force`` or not;
    - never a file named like one of the contract's (:data:`CONTRACT_FILES`) that
      exists or would land in a competition directory, ``--force`` or not: the
      course's truth ``test_data_y.dat`` is one letter away from the submission;
    - an existing file is replaced only when ``recognise(path)`` says the same
      command wrote it for the same purpose (a model file, a submission...), or
      with ``force``; a link, a device or a folder is never replaced.

    Parameters
    ----------
    path : path-like
    what : str
        What the command writes ("a model file", "a submission"), for the message.
    recognise : callable
        ``recognise(path) -> bool`` for an existing regular file; it must not
        raise on a hostile file.
    force : bool

    Returns
    -------
    Path

    Raises
    ------
    OverwriteError
    """
    path = Path(path)
    private = private_folder(path)
    if private is not None:
        raise OverwriteError(
            f"is inside the competition's private folder {private}",
            path=path,
            expected=f"{what} written anywhere but a competition's private/ folder",
            hint="only 'brats-kit data synth' and 'data prepare' write there; choose another path",
        )
    exists = os.path.lexists(path)
    if path.name in CONTRACT_FILES and (exists or is_competition(path.parent)):
        raise OverwriteError(
            f"is named like the competition's own {path.name}",
            path=path,
            expected=f"{what} with another name",
            hint=f"a submission is {SUBMISSION_FILE} (or .npy / .h5); the contract's files are never replaced "
            "by this command, --force or not",
        )
    if not exists:
        return path
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        raise OverwriteError("is a folder", path=path, expected=f"the name of {what} to write")
    if not stat.S_ISREG(st.st_mode):
        raise OverwriteError(
            "exists and is not a regular file (a link, a FIFO or a device)", path=path,
            expected=f"a new file or {what} to replace", hint="choose another path",
        )
    if force or recognise(path):
        return path
    raise OverwriteError(
        f"exists and is not {what}: it would be replaced",
        path=path,
        expected=f"a new file, or {what} written earlier by this command",
        hint="choose another path, or pass --force to replace it",
    )


def check_competition_out(out, *, force: bool = False) -> Path:
    """Refuse to build a competition where it would replace one, or inside another's ``private/``.

    Students may already hold the public files of an existing competition:
    rebuilding it replaces its hidden truth, so that takes ``force``. A folder
    holding other files is fine (only the contract's names are written), as is
    an empty or missing one.

    Raises
    ------
    OverwriteError
    """
    out = Path(out)
    private = private_folder(out)
    if private is not None:
        raise OverwriteError(
            f"is inside the private folder {private} of a competition",
            path=out, expected="a competition directory of its own", hint="choose another --out",
        )
    if os.path.lexists(out) and not out.is_dir():
        raise OverwriteError("exists and is not a folder", path=out, expected="a competition directory")
    if not force and is_competition(out):
        present = sorted((set(os.listdir(out)) & CONTRACT_FILES) | ({f"{PRIVATE_DIR}/"} if (out / PRIVATE_DIR).is_dir() else set()))
        raise OverwriteError(
            f"already holds a competition ({', '.join(present)}); building here would replace its test truth, "
            "and students may hold its public files",
            path=out,
            expected="a new or empty directory",
            hint="choose another --out, or pass --force to replace that competition",
        )
    return out


def write_competition(
    out,
    *,
    train: dict,
    test: dict,
    attrs: dict,
    manifest: dict | None = None,
    layouts=LAYOUTS,
    force: bool = False,
    hidden: dict | None = None,
) -> dict:
    """Write a whole competition directory: student files, then ``private/``.

    Parameters
    ----------
    out : path-like
        Competition directory (created if needed).
    train : dict
        ``x`` (N, 240, 240, 4), ``y`` (N, 240, 240), ``case_id`` (N,).
    test : dict
        The same, plus ``public`` (bool (N,)); its ``y`` goes under ``private/``.
    attrs : dict
        Provenance attributes for every HDF5 file (``generator``, ``seed``...).
    manifest : dict, optional
        Written as ``private/manifest.json`` with the checksums of every file added.
    layouts : iterable of {"course", "hdf5"}
    hidden : dict, optional
        The code track's hidden test slices: ``x``, ``y``, ``case_id``, ``public``,
        written together to ``private/hidden_test.h5`` only (whatever the layouts).
    force : bool
        Replace the competition ``out`` already holds (see
        :func:`check_competition_out`); its files of the contract that this
        build does not write (another layout) are removed, so no stale truth
        stays beside the new one.

    Returns
    -------
    dict
        Relative file name -> Path of every file written.

    All files are written to a staging folder inside ``out`` and moved into
    place only once every one is complete: an interrupted build leaves the
    previous competition as it was.

    Raises
    ------
    OverwriteError
        ``out`` holds a competition and ``force`` is not given, or lies in
        another competition's ``private/``.
    """
    out = check_competition_out(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    # Everything is written into a staging folder first and moved in at the end, so a
    # failure never leaves new files beside old ones from another build.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out))
    try:
        staged = _write_all(staging, train, test, attrs, manifest, layouts, hidden)
        written = {}
        for name, path in staged.items():
            final = out / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            written[name] = final
        for stale in [out / n for n in CONTRACT_FILES] + [out / PRIVATE_DIR / n for n in CONTRACT_FILES]:
            if stale.is_file() and stale.relative_to(out).as_posix() not in written:
                stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _write_all(out: Path, train, test, attrs, manifest, layouts, hidden=None) -> dict:
    private = out / PRIVATE_DIR
    written = {}
    if HDF5 in layouts:
        written[H5_FILES[TRAIN]] = write_split_h5(
            out / H5_FILES[TRAIN], x=train["x"], y=train["y"], case_id=train["case_id"], split=TRAIN, attrs=attrs
        )
        written[H5_FILES[TEST]] = write_split_h5(
            out / H5_FILES[TEST], x=test["x"], case_id=test["case_id"], split=TEST, attrs=attrs
        )
        written[f"{PRIVATE_DIR}/{TRUTH_H5}"] = write_split_h5(
            private / TRUTH_H5, y=test["y"], case_id=test["case_id"], public=test["public"], split=TEST, attrs=attrs
        )
    if COURSE in layouts:
        written[COURSE_X[TRAIN]] = write_course_array(out / COURSE_X[TRAIN], train["x"], "x")
        written[COURSE_Y[TRAIN]] = write_course_array(out / COURSE_Y[TRAIN], train["y"], "y")
        written[COURSE_X[TEST]] = write_course_array(out / COURSE_X[TEST], test["x"], "x")
        written[f"{PRIVATE_DIR}/{COURSE_Y[TEST]}"] = write_course_array(private / COURSE_Y[TEST], test["y"], "y")
    if hidden is not None:
        written[f"{PRIVATE_DIR}/{HIDDEN_H5}"] = write_split_h5(
            private / HIDDEN_H5, x=hidden["x"], y=hidden["y"], case_id=hidden["case_id"], public=hidden["public"],
            split=HIDDEN, attrs=attrs,
        )
    if manifest is not None:
        body = dict(manifest)
        body["files"] = {name: sha256_file(p) for name, p in sorted(written.items())}
        written[f"{PRIVATE_DIR}/{MANIFEST_FILE}"] = write_text(
            private / MANIFEST_FILE, json.dumps(body, indent=2, sort_keys=True, default=json_default) + "\n"
        )
    return written

