"""Which submission of a team is on the board.

The team's chosen finals when the manifest names some (the best public score
among them), otherwise its best public score over all its valid submissions
within the quota. Ties go to the earlier submission (then the file name). The
private cases never take part, so the selection is the same before and after the
reveal, and the private board's "move" reflects the cases alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from grader.score_types import RANKING

from .collect import Submission

FINAL, BEST_PUBLIC, FINAL_FALLBACK = "final", "best public", "best public (no valid final)"


@dataclass
class Selection:
    """A team's board entry: the submission and why it was chosen."""

    team: str
    submission: Submission
    reason: str


def _public_key(sub: Submission, ranking) -> tuple:
    score = sub.scores["public"][ranking.name]
    return (score if ranking.is_lower_the_better else -score, sub.submitted_at, sub.name)


def select_submissions(submissions, ranking=RANKING) -> dict:
    """Pick each team's submission.

    Parameters
    ----------
    submissions : iterable of Submission
        Scored ones must carry ``scores["public"]`` with the ranking score
        (by default the official one, :data:`grader.score_types.RANKING`).
    ranking : ScoreType
        The score the competition ranks by (lower-is-better ones select the lowest).

    Returns
    -------
    dict
        Team -> :class:`Selection`, for every team with a valid submission within the
        quota, in team order.
    """
    by_team: dict = {}
    for sub in submissions:
        by_team.setdefault(sub.team, []).append(sub)
    out = {}
    for team in sorted(by_team):
        subs = by_team[team]
        valid = [s for s in subs if s.valid]
        if not valid:
            continue
        finals = [s for s in valid if s.final]
        if finals:
            reason, pool = FINAL, finals
        else:
            named = any(s.final for s in subs)
            reason, pool = (FINAL_FALLBACK if named else BEST_PUBLIC), valid
        out[team] = Selection(team, min(pool, key=lambda s: _public_key(s, ranking)), reason)
    return out
