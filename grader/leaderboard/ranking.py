"""The one ranking: each team's selected submission, ordered by the official score, ties to the earlier.

The offline site, the server's live board, ``/api/v1/leaderboard`` and both
gradebooks rank through :func:`rank_teams`, so a team holds one rank everywhere.
The rule, stated once (:data:`RULE`): the score is :data:`grader.score_types.RANKING`
on the phase's cases; a team's entry is its chosen finals (the best public among
them) or its best public submission (:func:`~.select.select_submissions`); equal
scores go to the earlier submission, then to the team's name. Ranks are therefore
1, 2, 3... with no two teams sharing one; the ``tied`` column of the site says
which neighbours the bootstrap cannot tell apart.

Examples
--------
>>> from datetime import datetime, timezone
>>> from grader.leaderboard.collect import Submission
>>> def sub(team, hour, dice):
...     s = Submission(team, "a.dat", None, datetime(2026, 12, 1, hour, tzinfo=timezone.utc), status="scored")
...     s.scores = {"public": {"dice": dice}, "private": {"dice": dice}}
...     return s
>>> [(r.rank, r.team) for r in rank_teams([sub("late", 10, 0.8), sub("early", 9, 0.8), sub("best", 11, 0.9)],
...                                      "public")]
[(1, 'best'), (2, 'early'), (3, 'late')]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from grader.score_types import RANKING

from .collect import Submission
from .select import select_submissions

#: The rule sentence every board and API response shows.
RULE = (f"rank by {RANKING.title} (per case) on the phase's cases; each team's chosen finals (the best public "
        "among them) or its best public submission; ties go to the earlier submission")


def score_of(sub: Submission, phase: str) -> float:
    """The official score of a scored submission on ``phase`` ("public" or "private")."""
    return sub.scores[phase][RANKING.name]


def order_key(sub: Submission, phase: str, name: str) -> tuple:
    """Best first, then the earlier submission, then ``name``: the one tie rule."""
    score = score_of(sub, phase)
    return (score if RANKING.is_lower_the_better else -score, sub.submitted_at, name)


@dataclass
class Ranked:
    """One team on a board: its selected submission, why, its rank and (after the reveal) its public rank."""

    team: str
    submission: Submission
    reason: str
    rank: int
    public_rank: Optional[int] = None

    @property
    def move(self) -> Optional[int]:
        return None if self.public_rank is None else self.public_rank - self.rank


def _ordered(selections: list, phase: str) -> list:
    return sorted(selections, key=lambda sel: order_key(sel.submission, phase, sel.team))


def rank_teams(submissions, phase: str) -> list:
    """Select each team's submission and rank the teams on ``phase``, best first.

    Parameters
    ----------
    submissions : iterable of Submission
        Every submission of every team; scored ones carry ``scores["public"]`` (and
        ``scores[phase]``) holding the official score.
    phase : {"public", "private"}
        The private board also gets each team's public rank.

    Returns
    -------
    list of Ranked
    """
    selections = list(select_submissions(submissions).values())
    ranked = [Ranked(sel.team, sel.submission, sel.reason, i)
              for i, sel in enumerate(_ordered(selections, phase), start=1)]
    if phase != "public":
        public = {sel.team: i for i, sel in enumerate(_ordered(selections, "public"), start=1)}
        for r in ranked:
            r.public_rank = public[r.team]
    return ranked
