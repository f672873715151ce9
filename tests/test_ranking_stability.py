"""The "ranking stability" page: Kendall's tau, rank frequencies, the all-pairs significance map."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import kendalltau, wilcoxon

from cohorts.classroom import write_truth
from grader.leaderboard import SITE_FILES, build_leaderboard
from grader.leaderboard.stability import analyse, kendall_tau, rank_frequencies, significance_map
from grader.leaderboard.uncertainty import bootstrap_ranks


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9).flatmap(lambda n: st.tuples(
    st.permutations(range(1, n + 1)), st.lists(st.lists(st.integers(1, n), min_size=n, max_size=n),
                                                min_size=1, max_size=6))))
def test_kendall_tau_is_scipys_tau_b(case):
    full, boots = case
    boot = np.array(boots).T  # (n_teams, n_boot), ties allowed
    ours = kendall_tau(full, boot)
    for b in range(boot.shape[1]):
        expected = kendalltau(full, boot[:, b]).statistic
        if np.isnan(expected):
            assert np.isnan(ours[b])
        else:
            assert ours[b] == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_of_the_same_and_the_reversed_ranking():
    full = np.arange(1, 6)
    np.testing.assert_allclose(kendall_tau(full, np.stack([full, full[::-1]], axis=1)), [1.0, -1.0])


def test_rank_frequencies_count_each_teams_ranks():
    ranks = np.array([[1, 1, 2, 1], [2, 3, 1, 2], [3, 2, 3, 2]])
    freq = rank_frequencies(ranks)
    assert freq.tolist() == [[3, 1, 0], [1, 2, 1], [0, 2, 2]]
    assert (freq.sum(1) == 4).all()


def test_significance_map_is_holm_over_every_ordered_pair_by_hand():
    # a beats b and c on each of 10 cases, b beats c on 8 of them (no tied |differences|: exact p-values).
    c = np.linspace(0.30, 0.48, 10)
    b = c + np.where(np.arange(10) < 8, 0.01 * (np.arange(10) + 1), -0.0015 * (np.arange(10) + 1))
    a = b + 0.2 + 0.001 * np.arange(10)
    raw = {(i, j): wilcoxon(x - y, alternative="greater").pvalue
           for (i, x), (j, y) in ((p, q) for p in enumerate((a, b, c)) for q in enumerate((a, b, c))) if i != j}
    assert raw[0, 1] == pytest.approx(1 / 1024)
    # Holm by hand over the 6 ordered pairs: sort, multiply by 6, 5, 4..., running maximum, cap at 1.
    order = sorted(raw, key=raw.get)
    expected, running = {}, 0.0
    for k, pair in enumerate(order):
        running = max(running, (6 - k) * raw[pair])
        expected[pair] = min(1.0, running)
    p, better = significance_map(np.stack([a, b, c]))
    assert np.isnan(np.diag(p)).all()
    for (i, j), value in expected.items():
        assert p[i, j] == pytest.approx(value)
    assert better.tolist() == [[False, True, True], [False, False, expected[1, 2] < 0.05], [False, False, False]]
    assert expected[0, 1] == pytest.approx(6 / 1024)  # the hand computation's first step


def test_analyse_shows_at_most_the_best_teams_in_the_map():
    rng = np.random.default_rng(0)
    per_case = rng.uniform(size=(6, 8))
    ranks = bootstrap_ranks(rng.uniform(size=(6, 30)))
    stab = analyse([f"t{i}" for i in range(6)], ranks, per_case, max_shown=4)
    assert stab.shown == 4 and stab.p_map.shape == (4, 4)
    assert stab.tau.shape == (30,) and stab.frequencies.shape == (6, 6)
    assert (stab.low <= stab.median).all() and (stab.median <= stab.high).all()


@pytest.fixture(scope="module")
def klass(small_class):
    return small_class


def _site(c, out, truth=None, **kw):
    build_leaderboard(c["submissions"], truth or c["truth"], out, bootstrap=100, baselines=c["baselines"],
                      cache=out.parent / (out.name + "-cache"), **kw)
    return {name: (out / name).read_bytes() for name in SITE_FILES}


def test_the_page_exists_is_linked_and_readable_on_a_phone(klass):
    site = _site(klass, klass["root"] / "public")
    page = site["stability.html"].decode()
    assert 'href="stability.html"' in site["index.html"].decode()
    assert 'href="index.html"' in page
    assert 'name="viewport" content="width=device-width' in page
    assert "<script" not in page and "Kendall" in page and "Significance map" in page
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', page)) == 3
    # Every ranked team is in the table, in board order.
    csv_teams = [line.split(",")[3] for line in site["leaderboard.csv"].decode().splitlines()[1:]
                 if ",team," in line]
    assert [t for t in re.findall(r"<tr><td class=\"num\">\d+</td><td>([^<]*)</td>", page)] == csv_teams


def test_no_private_case_shapes_the_page_before_the_reveal(klass, tmp_path):
    before = _site(klass, tmp_path / "a")["stability.html"]
    y, public = klass["y"].copy(), klass["public"]
    y[~public] = np.roll(y[~public], 41, axis=2)
    y[np.flatnonzero(~public)[0], 20:60, 20:60] = 1
    other = write_truth(tmp_path / "other", y, public)
    assert _site(klass, tmp_path / "b", truth=other)["stability.html"] == before
    # The test can fail: after the reveal the private cases decide the page.
    revealed = _site(klass, tmp_path / "c", reveal=True)["stability.html"]
    assert _site(klass, tmp_path / "d", truth=other, reveal=True)["stability.html"] != revealed
    assert "private test cases" in revealed.decode()


def test_without_a_bootstrap_the_page_says_so(klass, tmp_path):
    build_leaderboard(klass["submissions"], klass["truth"], tmp_path / "z", bootstrap=0, cache=tmp_path / "zc")
    page = (tmp_path / "z" / "stability.html").read_text()
    assert "Nothing to analyse" in page and "<img" not in page
