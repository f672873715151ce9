"""The leaderboard's statistics: bootstrap intervals, ranks, paired tests, Holm."""
from __future__ import annotations

import numpy as np
import pytest

from grader.leaderboard.uncertainty import (
    bootstrap_dice,
    bootstrap_indices,
    bootstrap_ranks,
    holm,
    neighbour_ties,
    paired_pvalue,
    rank_interval,
    score_interval,
)
from grader.metrics import dice_per_slice, scores_from_counts


def random_counts(n_teams, n_cases, seed=0):
    rng = np.random.default_rng(seed)
    tp = rng.integers(0, 400, size=(n_teams, n_cases))
    fp = rng.integers(0, 200, size=(n_teams, n_cases))
    fn = rng.integers(0, 200, size=(n_teams, n_cases))
    tp[:, 0] = fp[:, 0] = fn[:, 0] = 0  # a tumour-free case predicted empty
    fp[0, 1], tp[0, 1], fn[0, 1] = 50, 0, 0  # a false alarm on a tumour-free case
    return tp, fp, fn


def test_holm_matches_the_textbook_example():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_paired_pvalue():
    better = np.linspace(0.6, 0.9, 10)
    assert paired_pvalue(better, better) == 1.0
    # Better on every one of 10 cases: the exact one-sided p-value is 1 / 2**10.
    assert paired_pvalue(better, better - 0.05 - np.arange(10) * 0.001) == pytest.approx(1 / 1024)
    assert paired_pvalue(better - 0.1, better) > 0.99


def test_neighbour_ties_marks_only_indistinguishable_neighbours():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.6, size=14)
    a = base + 0.3 + rng.uniform(0, 0.01, 14)
    b = base + rng.uniform(0, 0.01, 14)
    c = b + rng.normal(0, 0.01, 14)  # same as b up to noise
    p, tied = neighbour_ties(np.stack([a, b, c]))
    assert np.isnan(p[0]) and not tied[0]
    assert p[1] < 0.05 and not tied[1]
    assert tied[2]


def test_bootstrap_dice_is_scores_from_counts_of_each_resample():
    tp, fp, fn = random_counts(5, 12)
    index = bootstrap_indices(12, 50, seed=3)
    samples = bootstrap_dice(tp, fp, fn, index, max_elements=100)  # forces several team blocks
    assert samples.shape == (5, 50)
    for b in (0, 17, 49):
        expected = scores_from_counts(tp[:, index[b]], fp[:, index[b]], fn[:, index[b]])["dice"]
        np.testing.assert_allclose(samples[:, b], expected)
    # Mean Dice is the mean of per-case Dice over the resampled cases.
    np.testing.assert_allclose(samples, dice_per_slice(tp, fp, fn)[:, index].mean(-1))


def test_bootstrap_is_seeded_and_shared_by_teams():
    a = bootstrap_indices(9, 20, seed=0)
    assert np.array_equal(a, bootstrap_indices(9, 20, seed=0))
    assert not np.array_equal(a, bootstrap_indices(9, 20, seed=1))
    assert not np.array_equal(a, bootstrap_indices(9, 20, seed=0, stream=2))
    tp, fp, fn = random_counts(4, 9)
    full = bootstrap_dice(tp, fp, fn, a)
    # Adding or removing a team never changes another team's samples.
    np.testing.assert_array_equal(full[1:], bootstrap_dice(tp[1:], fp[1:], fn[1:], a))


def test_intervals_and_ranks():
    tp, fp, fn = random_counts(6, 15, seed=4)
    tp[0], fp[0], fn[0] = 500, 0, 0  # a perfect team
    samples = bootstrap_dice(tp, fp, fn, bootstrap_indices(15, 400, seed=0))
    lo, hi = score_interval(samples)
    point = np.array([scores_from_counts(tp[i], fp[i], fn[i])["dice"] for i in range(6)])
    assert np.all(lo <= hi) and np.all((lo <= point + 1e-12) & (point - 1e-12 <= hi))
    ranks = bootstrap_ranks(samples)
    assert ranks.dtype.kind == "i" and ranks.min() == 1 and ranks.max() <= 6
    assert np.all(ranks[0] == 1)
    rlo, rhi = rank_interval(ranks)
    assert (rlo[0], rhi[0]) == (1, 1)
    assert np.all(rlo <= rhi) and rlo.dtype.kind == "i"


def test_equal_scores_share_the_best_rank():
    samples = np.array([[0.5, 0.7], [0.5, 0.6], [0.4, 0.7]])
    np.testing.assert_array_equal(bootstrap_ranks(samples), [[1, 1], [1, 3], [3, 1]])
