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
    FORMATS,
    BoardScores,
    NotRevealedError,
    make_gradebook,
    parse_scale,
    read_roster,
    write_gradebook,
    DEFAULT_ASSIGNMENT,
)
from data_spec.errors import KitError
from grader.leaderboard.select import select_submissions

from .course import ROSTER_CSV
from .db import Team
from .service import CourseService


def baseline_scores(truth_path, baselines) -> dict:
    """Private Dice of each reference submission in ``baselines`` (``DIR/<baseline>/<file>``)."""
    from grader.leaderboard.cache import ScoreCache
    from grader.leaderboard.collect import collect_baselines, load_board_truth
    from grader.leaderboard.scoring import score_submissions
    from grader.metrics import scores_from_counts

    truth = load_board_truth(truth_path)
    bases = collect_baselines(baselines)
    store = ScoreCache(truth.path.parent / ".leaderboard-cache")
    score_submissions(bases, truth, store)
    store.save()
    private = ~truth.public
    out = {}
    for b in bases:
        if not b.valid:
            raise KitError(f"baseline {b.team!r} is invalid: {b.errors[0]['message']}", code="invalid_baseline",
                           path=b.path)
        c = b.counts
        out[b.team] = float(scores_from_counts(c.tp[None, private], c.fp[None, private], c.fn[None, private])["dice"][0])
    return out


def course_scores(service: CourseService, baselines=None) -> BoardScores:
    """Every team's selected private Dice (None without a valid submission), after the reveal."""
    if not service.revealed():
        raise NotRevealedError("the results are not revealed: grades come from the private cases only",
                               hint="brats-kit server reveal COURSE (after the deadline)")
    with service.course.sessions() as s:
        entries = [e for e, _ in service.board_entries(s)]
        teams = list(s.scalars(select(Team.name).order_by(Team.name)))
    selected = select_submissions(entries)
    scores = {t: (selected[t].submission.scores["private"]["dice"] if t in selected else None) for t in teams}
    bases = baseline_scores(service.course.config.truth, baselines) if baselines is not None else {}
    return BoardScores(scores, bases, True, f"course {service.course.root}")


def course_grades(service: CourseService, out, *, fmt: str, scale: Optional[str] = None, baselines=None,
                  assignment: str = DEFAULT_ASSIGNMENT, force: bool = False) -> dict:
    """Write the course's gradebook (``fmt``: moodle, canvas or csv) and its README beside ``out``."""
    if fmt not in FORMATS:
        raise KitError(f"unknown gradebook format {fmt!r}", code="bad_option", expected=" or ".join(FORMATS))
    parsed = parse_scale(scale)
    roster = read_roster(service.course.private / ROSTER_CSV)
    book = make_gradebook(roster, course_scores(service, baselines), parsed)
    return write_gradebook(out, book, fmt, assignment=assignment, source=f"course {Path(service.course.root).name}",
                           force=force)
