"""The board's Wilcoxon signed-rank p-values are scipy's, computed without its per-call overhead."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wilcoxon

from grader.leaderboard.uncertainty import paired_pvalue


def scipy_pvalue(better, worse) -> float:
    d = np.asarray(better, dtype=np.float64) - np.asarray(worse, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    exact = d.size <= 50 and np.unique(np.abs(d)).size == d.size
    return float(wilcoxon(d, alternative="greater", method="exact" if exact else "approx").pvalue)


pairs = st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1), min_size=n, max_size=n)))


@settings(max_examples=300, deadline=None)
@given(pairs)
def test_the_p_value_is_scipys_exact_and_approximate_with_ties_and_zeros(pair):
    better, worse = pair
    assert abs(paired_pvalue(better, worse) - scipy_pvalue(better, worse)) < 1e-12


def test_the_exact_tail_on_a_small_case_by_hand():
    # 3 untied differences, all positive: W+ = 6, the largest of 2**3 equally likely sums.
    assert paired_pvalue([3, 2, 1], [0, 0, 0]) == 1 / 8
    assert paired_pvalue([0, 0, 0], [3, 2, 1]) == 1.0
