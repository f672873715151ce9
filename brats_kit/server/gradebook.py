"""``server grades``: the course's gradebook, from the server's own data, after the reveal.

Each team's selected submission (its finals, the best public among them; otherwise
its best public) is chosen by the offline leaderboard's rule, so the grades match
the revealed board and ``brats-kit leaderboard --reveal --roster`` on an export.
The roster is the course's ``private/roster.csv``. Baselines (the default scale's
reference points) are scored on the private cases through the leaderboard's cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from sqlalchemy import select

from grader.leaderboard.gradebook import (
    BoardScores,
    check_format,
    NotRevealedError,
    make_gradebook,
    parse_scale,
    read_roster,
    write_gradebook,
    DEFAULT_ASSIGNMENT,
    gradable,
)
from grader.leaderboard.ranking import masks_for, score_of
from grader.score_types import RANKING

from .course import ROSTER_CSV
from .db import Team
from .service import CourseService, rank_recorded
from .tracks import CODE, FILE, board_truth, check_track, hidden_truth_of

#: What each track's gradebook is ranked on, said in its README.
TRACK_NOTES = {FILE: "track: file (prediction files, ranked on the test slices)",
               CODE: "track: code (code run in the sandbox, ranked on the hidden test slices)"}


def baseline_scores(truth_path, baselines, ranking=RANKING) -> dict:
    """Private ``ranking`` score (Dice by default) of each reference submission in ``baselines`` (``DIR/<baseline>/<file>``)."""
    from grader.leaderboard.build import baseline_scores as scores_of, phase_scores, score_baselines

    truth = board_truth(truth_path)  # loaded once per process
    bases = score_baselines(baselines, truth, truth.path.parent / ".leaderboard-cache", masks_for(ranking))
    if not ranking.needs_masks:
        return scores_of(bases, "private")
    phase_scores(bases, {"private": ~truth.public}, ranking)
    return {b.team: score_of(b, "private", ranking) for b in bases}


def course_scores(service: CourseService, baselines=None, track: str = FILE) -> BoardScores:
    """Every team's selected private Dice of ``track`` in full precision (None without one), after the reveal.

    The rows of the one ranking (:func:`~grader.leaderboard.ranking.rank_teams`) ``track``'s board shows.
    The code track has no baselines: they are files of the test slices, not of the hidden ones.

    Raises
    ------
    BadArgumentError
        ``track`` is not a track, or ``code`` on a course without the code track.
    """
    if check_track(track) == CODE and not hidden_truth_of(service.course.config):
        from data_spec.errors import BadArgumentError

        raise BadArgumentError("track 'code'", expected="a course with the code track (server init --code)")
    if not service.revealed():
        raise NotRevealedError("the results are not revealed: grades come from the private cases only",
                               hint="brats-kit server reveal COURSE (after the deadline)")
    ranking = gradable(service.config.ranking)
    with service.course.sessions() as s:
        entries = [e for e, _ in service.board_entries(s, track=track)]
        teams = list(s.scalars(select(Team.name).order_by(Team.name)))
    scores = dict.fromkeys(teams)
    ranked = rank_recorded(entries, "private", service.track_truth(track), ranking)
    scores.update({r.team: score_of(r.submission, "private", ranking) for r in ranked})
    use = baselines is not None and track == FILE
    bases = baseline_scores(service.course.config.truth, baselines, ranking) if use else {}
    return BoardScores(scores, bases, True, f"course {service.course.root}")


def course_scale(text: Optional[str], scores: BoardScores) -> tuple:
    """``(scale, notes)``: ``--scale`` read; the default on a course without baselines falls back to a stated scale.

    The default (``linear`` or ``linear:MARKS``) puts its reference points on the course's
    baselines (``server init --baselines``); without them the marks run linearly from
    Dice 0 to Dice 1, and a note (in the README) says so.

    Examples
    --------
    >>> scale, notes = course_scale("linear:20", BoardScores({"a": 0.8}, {}, True))
    >>> scale.text, notes[0].startswith("no baselines")
    ('linear:0..1:20', True)
    >>> course_scale("linear:20", BoardScores({"a": 0.8}, {"flair-threshold": 0.6}, True))[0].text
    'linear:20'
    """
    scale = parse_scale(text)
    if scale.kind != "linear" or scores.baselines or len(scale.text.split(":")) > 2:
        return scale, []
    fallback = parse_scale(f"linear:0..1:{scale.full:g}")
    return fallback, [f"no baselines on this course (server init --baselines): the default scale fell back to "
                      f"'{fallback.text}' (Dice 0 = 0 marks, Dice 1 = {scale.full:g}); give --scale to choose another"]


def course_gradebook(service: CourseService, scale: Optional[str] = None, baselines=None, *, zeros: bool = False,
                     track: str = FILE):
    """The course's :class:`~grader.leaderboard.gradebook.Gradebook` of ``track``: the roster joined to its board."""
    roster = read_roster(service.course.private / ROSTER_CSV)
    scores = course_scores(service, baselines, track)
    parsed, notes = course_scale(scale, scores)
    book = make_gradebook(roster, scores, parsed, zeros=zeros)
    book.notes[:0] = notes
    book.notes.append(TRACK_NOTES[track])
    return book


def course_grades(service: CourseService, out, *, fmt: str, scale: Optional[str] = None, baselines=None,
                  assignment: str = DEFAULT_ASSIGNMENT, force: bool = False, zeros: bool = False,
                  track: str = FILE) -> dict:
    """Write the course's gradebook (``fmt``: moodle, canvas or csv) and its README beside ``out``.

    ``baselines``: reference submissions for the scale (the command passes the course's own,
    :func:`~.baselines.baselines_of`, when not given).
    """
    check_format(fmt)
    parse_scale(scale)  # a bad scale is refused before anything is read
    book = course_gradebook(service, scale, baselines, zeros=zeros, track=track)
    info = write_gradebook(out, book, fmt, assignment=assignment, source=f"course {Path(service.course.root).name}",
                           force=force)
    return dict(info, track=track)
