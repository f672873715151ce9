"""How stable is a ranking: challengeR's analyses, from the bootstrap the board already draws.

Three analyses (Wiesenfarth et al. 2021, the challengeR toolkit), each computed on
the board's phase only (the public cases before the reveal), from the same
resamples as the intervals (:func:`~.uncertainty.bootstrap_indices`):

* **Kendall's tau** (tau-b) between the full ranking and the ranking of each
  bootstrap resample: near 1 when resampling the cases barely moves the teams.
* **Rank frequencies** (the blob plot): how often each team takes each rank,
  with its median rank and 95% interval.
* **Significance map**: for every ordered pair of the top teams, a one-sided
  Wilcoxon signed-rank test that the row team beats the column team case by case
  (:func:`~.uncertainty.paired_pvalue`), Holm-adjusted over all the pairs tested
  (challengeR's ``decision.challenge`` with ``p.adjust.method = "holm"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .uncertainty import ALPHA, holm, paired_pvalue, rank_interval

#: The significance map and blob plot show at most this many teams (the best ones): beyond that
#: neither is readable on a page, and the map's tests grow with the square of the teams.
MAX_SHOWN = 25


def kendall_tau(full, boot) -> np.ndarray:
    """Kendall's tau-b between one ranking and each of several others.

    Parameters
    ----------
    full : array (n_teams,)
        The reference ranking (ranks or scores: only their order matters).
    boot : array (n_teams, n_boot)
        One ranking per column (ties allowed).

    Returns
    -------
    ndarray (n_boot,)
        tau-b of each column against ``full`` (as ``scipy.stats.kendalltau``); NaN where
        either ranking puts every team level, as scipy's.

    Examples
    --------
    >>> kendall_tau([1, 2, 3, 4], [[1, 1], [2, 3], [3, 2], [4, 4]]).tolist()
    [1.0, 0.6666666666666666]
    """
    x = np.asarray(full, dtype=np.float64)
    y = np.asarray(boot, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"boot has shape {y.shape}, expected ({x.shape[0]}, n_boot)")
    n_boot = y.shape[1]
    score = np.zeros(n_boot)
    tied_y = np.zeros(n_boot)
    tied_x = 0
    untied = 0
    # One team against every later one: memory O(n_teams x n_boot), never the n_teams**2 pairs at once.
    for i in range(len(x) - 1):
        sx = np.sign(x[i] - x[i + 1:])
        sy = np.sign(y[i] - y[i + 1:])
        score += (sx[:, None] * sy).sum(0)
        tied_y += (sy == 0).sum(0)
        tied_x += int((sx == 0).sum())
        untied += len(sx)
    den = np.sqrt((untied - tied_x) * (untied - tied_y))
    out = np.full(n_boot, np.nan)
    np.divide(score, den, out=out, where=den > 0)
    return out


def rank_frequencies(ranks) -> np.ndarray:
    """How many resamples put each team at each rank: ``(n_teams, n_teams)``, ``[team, rank - 1]``.

    Examples
    --------
    >>> rank_frequencies([[1, 1, 2], [2, 1, 1]]).tolist()
    [[2, 1], [2, 1]]
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    n = ranks.shape[0]
    out = np.zeros((n, n), dtype=np.int64)
    for team in range(n):
        out[team] = np.bincount(ranks[team] - 1, minlength=n)[:n]
    return out


def significance_map(per_case, alpha: float = ALPHA) -> tuple:
    """All-pairs one-sided Wilcoxon signed-rank tests, Holm-adjusted over every ordered pair.

    Parameters
    ----------
    per_case : array (n_teams, n_cases)
        Per-case scores (higher is better), rows in board order.

    Returns
    -------
    p_adjusted : ndarray (n_teams, n_teams)
        ``[i, j]``: Holm-adjusted p-value that team ``i`` beats team ``j``; NaN on the diagonal.
    better : ndarray of bool (n_teams, n_teams)
        ``p_adjusted < alpha``.
    """
    per_case = np.asarray(per_case, dtype=np.float64)
    n = len(per_case)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    raw = [paired_pvalue(per_case[i], per_case[j]) for i, j in pairs]
    p = np.full((n, n), np.nan)
    for (i, j), value in zip(pairs, holm(raw)):
        p[i, j] = value
    return p, np.nan_to_num(p, nan=1.0) < alpha


@dataclass(frozen=True)
class Stability:
    """A board's ranking analysis (teams in board order, best first).

    ``tau``: per resample; ``frequencies``: :func:`rank_frequencies`; ``median``, ``low``,
    ``high``: each team's median bootstrap rank and 95% interval; ``p_map``, ``better``:
    :func:`significance_map` of the first ``shown`` teams.
    """

    labels: tuple
    tau: np.ndarray
    frequencies: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_map: np.ndarray
    better: np.ndarray
    shown: int


def analyse(labels, boot_ranks, per_case, *, max_shown: int = MAX_SHOWN) -> Stability:
    """The three analyses of a board.

    Parameters
    ----------
    labels : sequence of str
        Teams in board order (rank 1 first).
    boot_ranks : int array (n_teams, n_boot)
        Each team's rank in each resample (:func:`~.uncertainty.bootstrap_ranks`).
    per_case : array (n_teams, n_cases)
        Per-case scores, higher is better.
    """
    boot_ranks = np.asarray(boot_ranks, dtype=np.int64)
    n = len(labels)
    low, high = rank_interval(boot_ranks)
    shown = min(n, max_shown)
    p_map, better = significance_map(np.asarray(per_case)[:shown])
    return Stability(tuple(labels), kendall_tau(np.arange(1, n + 1), boot_ranks), rank_frequencies(boot_ranks),
                     np.median(boot_ranks, axis=1), low, high, p_map, better, shown)
