"""The course's tracks: each is ranked on its own truth, on its own board.

``file``: prediction files for the test slices, ranked on the test truth (always there).
``code``: code run in the sandbox on the hidden slices (``server init --code``), ranked on
the hidden truth and its own public flags. A submission row's track is read from its
stored format: two sets of cases never meet in one ranking.
"""
from __future__ import annotations

import os
from typing import Optional

from data_spec.errors import BadArgumentError

FILE, CODE = "file", "code"
TRACKS = (FILE, CODE)


def track_of(fmt: Optional[str]) -> str:
    """The track of a submission row stored with format ``fmt``.

    Examples
    --------
    >>> track_of("code"), track_of("dat"), track_of(None)
    ('code', 'file', 'file')
    """
    return CODE if fmt == CODE else FILE


def check_track(track: str) -> str:
    """``track`` if it names a track; a named error otherwise.

    Examples
    --------
    >>> check_track("code")
    'code'
    >>> check_track("both")
    Traceback (most recent call last):
    ...
    data_spec.errors.BadArgumentError: track 'both'; expected file or code
    """
    if track not in TRACKS:
        raise BadArgumentError(f"track {track!r}", expected=" or ".join(TRACKS))
    return track


def hidden_truth_of(config) -> Optional[str]:
    """The hidden slices' file of a course with the code track (``extra.code.hidden``), else None."""
    return ((config.extra or {}).get("code") or {}).get("hidden")


#: The truth of each course and track this process ranked, keyed by file and its change time:
#: a rebuild process (and a server, for its API and gradebooks) loads it once, not per rebuild.
_TRUTHS: dict = {}


def board_truth(path, track: str = FILE):
    """The truth ``track`` is ranked on, loaded once per process.

    ``file``: the course's test truth (:func:`~grader.leaderboard.collect.load_board_truth`);
    ``code``: the hidden slices' (:func:`data_spec.truth.load_hidden_truth`, their own public flags).
    """
    from data_spec.layout import find_hidden, find_truth
    from data_spec.truth import load_hidden_truth
    from grader.leaderboard.collect import load_board_truth

    found = find_hidden(path) if track == CODE else find_truth(path)
    st = os.stat(found)
    key = (track, os.fspath(found), st.st_mtime_ns, st.st_size)
    if key not in _TRUTHS:
        _TRUTHS[key] = (load_hidden_truth if track == CODE else load_board_truth)(found)
    return _TRUTHS[key]
