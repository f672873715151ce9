"""A course's reference submissions (baselines): where the server finds them, and how they get there.

The dashboard's gradebook places marks linearly between two baselines by default
(``flair-threshold`` = 0, the best = full marks), and the live board shows them
as reference rows; both need the server to know them. They are read from the
course configuration's ``extra.baselines`` (a folder, relative to the course or
absolute) or, by default, from ``COURSE/private/baselines``, which
:func:`attach_baselines` fills (``server init --baselines DIR`` is meant to call
:func:`check_baselines` before creating the course and :func:`attach_baselines` after).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from data_spec.errors import LayoutError
from plumbing.atomic import atomic_dir, write_bytes

from .course import Course

BASELINES_DIR = "baselines"
#: Written into the folder :func:`attach_baselines` made, so that it replaces only its own output.
MARKER = ".brats-kit-baselines"


def owner_only(root: Path) -> None:
    """Make a folder under ``private/`` owner-only, as the server's startup check expects."""
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o600)


def baselines_of(course: Course) -> Optional[Path]:
    """The course's baselines folder (``extra.baselines``, else ``private/baselines``), or None when it has none."""
    given = (course.config.extra or {}).get("baselines")
    path = Path(given) if given else course.private / BASELINES_DIR
    if not path.is_absolute():
        path = course.root / path
    if not path.is_dir():
        return None
    return path if any(not p.name.startswith(".") for p in path.iterdir()) else None


def score_baselines(truth, source, cache_dir, metrics=()) -> tuple:
    """Every reference submission in ``source``, scored against ``truth``; refuse an invalid one.

    Parameters
    ----------
    truth : Truth or path-like
        The test truth (loaded, or a file, a competition's ``private/`` or the competition directory).
    source : path-like
        ``DIR/<baseline>/<file>`` or ``DIR/<baseline>.<ext>``.
    cache_dir : path-like
        The score cache (it holds private counts: keep it with the private files).
    metrics : sequence of str
        Mask scores to compute per case as well (the course's ranking score, when it is one).

    Returns
    -------
    (list of Submission, dict)
        The baselines, and their public Dice by name.
    """
    from data_spec.truth import Truth
    from grader.leaderboard.build import baseline_scores, score_baselines as score_reference
    from grader.leaderboard.collect import load_board_truth

    board_truth = truth if isinstance(truth, Truth) else load_board_truth(truth)
    bases = score_reference(Path(source), board_truth, Path(cache_dir), metrics)
    owner_only(Path(cache_dir))
    return bases, baseline_scores(bases, "public")


def check_baselines(competition, source) -> dict:
    """Refuse invalid reference submissions before a course exists (``server init --baselines``).

    Scores them against the competition's truth with a throw-away cache; returns their public Dice.
    """
    with tempfile.TemporaryDirectory(prefix="brats-kit-baselines-") as tmp:
        os.chmod(tmp, 0o700)
        return score_baselines(competition, source, Path(tmp) / "cache")[1]


def attach_baselines(course: Course, source) -> dict:
    """Score the reference submissions in ``source`` and copy them to ``COURSE/private/baselines``.

    ``source`` is laid out as the leaderboard's ``--baselines``: ``DIR/<baseline>/<file>``
    or ``DIR/<baseline>.<ext>``. Every baseline must be valid (scored against the
    course's truth); the copy is owner-only and replaces only a folder this function made.

    Returns
    -------
    dict
        ``baselines`` (name -> public Dice), ``folder``.

    Raises
    ------
    KitError
        No baseline in ``source``, an invalid one (``invalid_baseline``), or a
        ``private/baselines`` this function did not create.
    """
    out = course.private / BASELINES_DIR
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise LayoutError("the course's baselines folder was not made by brats-kit", path=out,
                          hint="move it away, or name it in course.json as extra.baselines")
    (course.private / "board").mkdir(mode=0o700, exist_ok=True)
    bases, scores = score_baselines(course.config.truth, source, course.private / "board" / "cache")
    with atomic_dir(out) as tmp:
        for b in bases:
            dest = tmp / b.name
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(b.path, dest)
            os.chmod(dest, 0o600)
        write_bytes(tmp / MARKER, b"reference submissions of this course, copied by brats-kit\n")
        os.chmod(tmp / MARKER, 0o600)
    os.chmod(out, 0o700)
    return {"baselines": scores, "folder": out}
