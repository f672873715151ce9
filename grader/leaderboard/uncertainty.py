"""How sure is a ranking: case-level bootstrap intervals and paired tests between neighbours.

Methods (stated on every page's footnote, see :data:`METHOD_NOTE`):

* **Bootstrap over cases** (Efron): ``B`` resamples of the board's test cases,
  drawn with replacement from a seeded generator, the same resamples for every
  team (so ranks are comparable within a resample). Each team's Dice is recomputed
  from its per-case counts on every resample; the 2.5th and 97.5th percentiles
  give its 95% score interval. Teams are ranked within each resample (ties share
  the best rank, "min" method) and the 2.5th/97.5th percentiles of those ranks
  (lower/higher order statistics, so bounds are whole ranks) give the rank interval.
* **Ties** (as challengeR's significance maps, Wiesenfarth et al. 2021): each team
  is compared with the team ranked just above it by a one-sided Wilcoxon
  signed-rank test on the paired per-case Dice (exact null distribution, or the
  normal approximation when differences tie); the p-values of these comparisons
  are Holm-adjusted, and a team whose adjusted p-value is not below 0.05 is marked
  as tied with the team above (no significant difference).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import ndtr
from scipy.stats import rankdata

ALPHA = 0.05
LEVEL = 0.95

METHOD_NOTE = (
    "Intervals: case-level bootstrap ({b} resamples of the {n} {phase} test cases, seed {seed}, shared by all "
    "teams); 95% percentile intervals of each team's Dice and of its rank (teams ranked within each resample, "
    "equal scores sharing the best rank). Ties (=): one-sided Wilcoxon signed-rank test of each team's "
    "per-case Dice against the team ranked just above (zero differences dropped; exact null distribution, normal "
    "approximation with tie correction when differences tie), Holm-adjusted over the {m} neighbour comparisons; "
    "adjusted p >= 0.05 means no significant difference. Method as in challengeR: Wiesenfarth M. et al. "
    "(2021) Methods and open-source toolkit for analyzing and visualizing challenge results, Scientific "
    "Reports 11:2369; Holm S. (1979) Scand. J. Statist. 6:65-70."
)


def bootstrap_indices(n_cases: int, n_boot: int, seed: int, stream: int = 0) -> np.ndarray:
    """Resampled case indices, shape ``(n_boot, n_cases)``, from ``default_rng([seed, stream])``.

    The indices depend only on the seed, the stream (one per board) and the
    number of cases: adding a team never changes another team's resamples.
    """
    rng = np.random.default_rng([seed, stream])
    return rng.integers(0, n_cases, size=(n_boot, n_cases))


def bootstrap_dice(tp, fp, fn, index, *, max_elements: int = 4_000_000) -> np.ndarray:
    """Mean Dice of every team on every resample, from per-case counts.

    Parameters
    ----------
    tp, fp, fn : int arrays (n_teams, n_cases)
    index : int array (n_boot, n_cases)
        From :func:`bootstrap_indices`.
    max_elements : int
        Teams are processed in blocks holding about this many resampled counts (memory bound).

    Returns
    -------
    ndarray (n_teams, n_boot)
        ``grader.metrics.scores_from_counts(...)["dice"]`` of each resample.
    """
    from grader.metrics import dice_per_slice

    # Mean Dice is a mean of per-case Dice: a resample's score is the mean of the resampled cases' Dice,
    # so each case's Dice is computed once (not once per resample), with the same sums as MeanDice.
    return bootstrap_mean(dice_per_slice(tp, fp, fn), index, max_elements=max_elements)


def bootstrap_mean(per_case, index, *, max_elements: int = 4_000_000) -> np.ndarray:
    """Mean of each row's per-case values on every resample: ``(n_teams, n_boot)``.

    Any score that is a mean of per-case values (Dice, HD95, lesion-wise scores, NSD) is
    resampled so. Teams are processed in blocks of about ``max_elements`` resampled values.
    """
    per_case = np.asarray(per_case, dtype=np.float64)
    n_teams, n_cases = per_case.shape
    out = np.empty((n_teams, len(index)), dtype=np.float64)
    block = max(1, max_elements // max(1, index.size))
    for start in range(0, n_teams, block):
        sl = slice(start, start + block)
        out[sl] = per_case[sl][:, index].sum(-1) / n_cases
    return out


def score_interval(samples: np.ndarray, level: float = LEVEL) -> tuple:
    """Percentile interval over the last axis: ``(low, high)`` arrays."""
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [q, 100 - q], axis=-1)
    return lo, hi


def bootstrap_ranks(samples: np.ndarray) -> np.ndarray:
    """Rank of each team in each resample (1 = best Dice; equal Dice share the best rank)."""
    return rankdata(-samples, method="min", axis=0).astype(np.int64)


def rank_interval(ranks: np.ndarray, level: float = LEVEL) -> tuple:
    """Whole-rank interval over the last axis: the lower and higher order statistics."""
    q = (1 - level) / 2
    lo = np.quantile(ranks, q, axis=-1, method="lower")
    hi = np.quantile(ranks, 1 - q, axis=-1, method="higher")
    return lo.astype(np.int64), hi.astype(np.int64)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


@functools.lru_cache(maxsize=64)
def _signed_rank_tail(n: int) -> np.ndarray:
    """``tail[w] = P(W+ >= w)`` under the null for ``n`` untied, non-zero differences (every sign equally likely)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):  # subsets of {1..k} by their sum
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.cumsum(counts[::-1])[::-1] / 2.0 ** n


def paired_pvalue(better, worse) -> float:
    """One-sided Wilcoxon signed-rank p-value that ``better`` beats ``worse`` case by case.

    Zero differences are dropped (Wilcoxon's convention); when every difference is
    zero there is no evidence either way and the p-value is 1. The null
    distribution is exact when the absolute differences have no ties (and at most
    50 remain), else the normal approximation with tie correction (no continuity
    correction): scipy's own choice there, a permutation test, costs a thousand
    times more. The statistic and both distributions are scipy's
    (``scipy.stats.wilcoxon(d, alternative="greater")``), computed here without its
    per-call overhead: the board tests every pair of teams at each rebuild.

    Examples
    --------
    >>> from scipy.stats import wilcoxon
    >>> b, w = [0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.82, 0.6, 0.67, 0.94]
    >>> d = np.subtract(b, w)
    >>> bool(paired_pvalue(b, w) == wilcoxon(d, alternative="greater", method="exact").pvalue)
    True
    >>> paired_pvalue([0.5, 0.5], [0.5, 0.5])
    1.0
    """
    d = np.asarray(better, dtype=np.float64) - np.asarray(worse, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    n = d.size
    magnitude = np.abs(d)
    w_plus = float(rankdata(magnitude)[d > 0].sum())
    if n <= 50 and np.unique(magnitude).size == n:
        return float(_signed_rank_tail(n)[int(round(w_plus))])
    _, ties = np.unique(magnitude, return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float((ties ** 3 - ties).sum()) / 48.0
    return float(ndtr(-(w_plus - n * (n + 1) / 4.0) / math.sqrt(variance)))


def neighbour_ties(per_case, alpha: float = ALPHA) -> tuple:
    """Which teams are not significantly worse than the team ranked just above.

    Parameters
    ----------
    per_case : array (n_teams, n_cases)
        Per-case Dice, rows in rank order (best first).

    Returns
    -------
    p_adjusted : ndarray (n_teams,)
        Holm-adjusted p-value against the team above (NaN for the first).
    tied : ndarray of bool (n_teams,)
        True when ``p_adjusted >= alpha`` (False for the first).
    """
    per_case = np.asarray(per_case, dtype=np.float64)
    n = len(per_case)
    raw = [paired_pvalue(per_case[i - 1], per_case[i]) for i in range(1, n)]
    adjusted = np.concatenate([[np.nan], holm(raw)]) if n else np.zeros(0)
    tied = np.zeros(n, dtype=bool)
    tied[1:] = adjusted[1:] >= alpha
    return adjusted, tied
