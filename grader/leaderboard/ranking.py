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

from data_spec.errors import BadArgumentError
from grader.score_types import RANKING, SCORE_TYPES, ScoreType

from .collect import Submission
from .select import select_submissions

#: The scores a competition may rank by: each is the mean over cases of a per-case value, so the
#: bootstrap, the paired tests and the stability page apply to it as to Dice (pooled scores such as
#: pixel F1 have no per-case value to resample or pair).
RANKABLE = ("dice", "hd95", "lesion_dice", "lesion_hd95", "nsd")


def rule(ranking: ScoreType = RANKING) -> str:
    """The rule sentence a board shows, for its ranking score."""
    return (f"rank by {ranking.title} (per case{', lower is better' if ranking.is_lower_the_better else ''}) on "
            "the phase's cases; each team's chosen finals (the best public among them) or its best public "
            "submission; ties go to the earlier submission")


#: The rule sentence every board and API response shows.
RULE = rule(RANKING)


def ranking_type(name=None) -> ScoreType:
    """The score type a competition ranks by: ``name`` among :data:`RANKABLE`, or the official one.

    Examples
    --------
    >>> ranking_type().name, ranking_type("lesion_hd95").is_lower_the_better
    ('dice', True)
    """
    if name is None:
        return RANKING
    text = str(name).strip()
    if text not in RANKABLE:
        raise BadArgumentError(f"cannot rank by {text[:40]!r}", expected="one of " + ", ".join(RANKABLE),
                               hint="pooled scores (f1, precision, recall) have no per-case value to rank on")
    return next(st for st in SCORE_TYPES if st.name == text)


def masks_for(ranking: ScoreType = RANKING) -> tuple:
    """The mask scores whose per-case values ranking by ``ranking`` needs: its own, for a mask score; else none.

    Examples
    --------
    >>> masks_for(ranking_type("nsd")), masks_for(ranking_type("dice"))
    (('nsd',), ())
    """
    return (ranking.name,) if ranking.needs_masks else ()


def score_of(sub: Submission, phase: str, ranking: ScoreType = RANKING) -> float:
    """The ranking score (the official one by default) of a scored submission on ``phase``."""
    return sub.scores[phase][ranking.name]


def order_key(sub: Submission, phase: str, name: str, ranking: ScoreType = RANKING) -> tuple:
    """Best first, then the earlier submission, then ``name``: the one tie rule."""
    score = score_of(sub, phase, ranking)
    return (score if ranking.is_lower_the_better else -score, sub.submitted_at, name)


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


def _ordered(selections: list, phase: str, ranking: ScoreType) -> list:
    return sorted(selections, key=lambda sel: order_key(sel.submission, phase, sel.team, ranking))


def rank_teams(submissions, phase: str, ranking: ScoreType = RANKING) -> list:
    """Select each team's submission and rank the teams on ``phase``, best first.

    Parameters
    ----------
    submissions : iterable of Submission
        Every submission of every team; scored ones carry ``scores["public"]`` (and
        ``scores[phase]``) holding the official score.
    phase : {"public", "private"}
        The private board also gets each team's public rank.
    ranking : ScoreType
        The score ranked by (:func:`ranking_type`); by default the official one.

    Returns
    -------
    list of Ranked
    """
    selections = list(select_submissions(submissions, ranking).values())
    ranked = [Ranked(sel.team, sel.submission, sel.reason, i)
              for i, sel in enumerate(_ordered(selections, phase, ranking), start=1)]
    if phase != "public":
        public = {sel.team: i for i, sel in enumerate(_ordered(selections, "public", ranking), start=1)}
        for r in ranked:
            r.public_rank = public[r.team]
    return ranked
