"""Intervals over seeds, the Wilson interval of one seed, and the exact paired McNemar comparison
(beatdbn.metrics.intervals): known answers and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from beatdbn.exceptions import ParameterError
from beatdbn.metrics.intervals import (cluster_bootstrap_interval, left_chance, mcnemar_p, paired_comparison,
                                       summarize, t_interval, wilson_interval, within_chance)


def test_mcnemar_known_answers():
    # b=10, c=2: 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert mcnemar_p(10, 2) == pytest.approx(158 / 4096, abs=1e-12)
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # every discordant pair one way: 2 * (1/2)^6
    with pytest.raises(ParameterError, match="discordant"):
        mcnemar_p(-1, 2)


def test_t_interval_known_answer():
    low, high = t_interval([0.60, 0.62, 0.64])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, 2)
    assert (low, high) == (pytest.approx(0.62 - half), pytest.approx(0.62 + half))
    assert t_interval([0.0, 0.02]) [0] == 0.0  # clipped at 0
    with pytest.raises(ParameterError, match="2 or more seeds"):
        t_interval([0.5])


def test_wilson_known_answer_and_failures():
    low, high = wilson_interval(5, 10)  # the textbook 0.5 of 10: [0.2366, 0.7634]
    assert low == pytest.approx(0.23659, abs=1e-5) and high == pytest.approx(0.76341, abs=1e-5)
    assert wilson_interval(0, 8)[0] == 0.0 and wilson_interval(8, 8)[1] == pytest.approx(1.0)
    for bad in ((3, 0), (-1, 5), (6, 5)):
        with pytest.raises(ParameterError, match="wilson_interval"):
            wilson_interval(*bad)
    with pytest.raises(ParameterError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def test_summarize_one_and_several_seeds_and_chance():
    one = summarize([0.3], tracks=30)
    assert one.sd is None and one.method == "Wilson over 30 test tracks" and one.n == 1
    assert (one.low, one.high) == pytest.approx(wilson_interval(9, 30))
    assert within_chance(one, 1 / 3) and not left_chance(one, 1 / 3)
    three = summarize([0.62, 0.60, 0.64], tracks=132)
    assert three.mean == pytest.approx(0.62) and three.sd == pytest.approx(0.02)
    assert three.method.startswith("t over 3 seeds") and (three.low, three.high) <= (0.5703, 0.6697)
    assert not within_chance(three, 1 / 12) and left_chance(three, 1 / 12)
    # 3 seeds of 40 test tracks spread wide: the t-interval, unwidened
    wide = summarize([0.5, 0.7, 0.9], tracks=40)
    assert wide.method == "t over 3 seeds" and (wide.low, wide.high) == pytest.approx(t_interval([0.5, 0.7, 0.9]))
    # two seeds that agree exactly (9 of 11 twice): sd 0, but never an interval narrower than 22 tracks allow
    same = summarize([9 / 11, 9 / 11], tracks=11)
    assert same.sd == 0 and (same.low, same.high) == pytest.approx(wilson_interval(18, 22))
    assert same.method == "t over 2 seeds, widened to Wilson over 22 pooled test tracks"
    # 81 % against chance 8 % over two seeds: the t-interval (t = 12.7) holds chance, the pooled one does not
    far = summarize([18 / 24, 21 / 24], tracks=[24, 24])
    assert far.contains(1 / 12) and not within_chance(far, 1 / 12) and left_chance(far, 1 / 12)
    assert far.pooled == pytest.approx(wilson_interval(39, 48))
    with pytest.raises(ParameterError, match="each seed's number of test tracks"):
        summarize([0.5, 0.6], tracks=[10])
    assert not within_chance(three, None) and left_chance(three, float("nan"))
    # at chance exactly, seeds that do not move: the interval is a point, and it is chance
    flat = summarize([1 / 11] * 3, tracks=11)
    assert within_chance(flat, 1 / 11) and not left_chance(flat, 1 / 11)
    # above chance by less than one track: did not leave chance, although the interval is narrow
    near = summarize([0.10] * 40, tracks=10)  # 1 of 10 in 40 seeds: pooled 40/400, against chance 5 %
    assert not within_chance(near, 0.05) and not left_chance(near, 0.05)
    with pytest.raises(ParameterError, match="test tracks"):
        summarize([0.5])
    with pytest.raises(ParameterError, match="accuracies in"):
        summarize([])
    with pytest.raises(ParameterError, match="accuracies in"):
        summarize([1.5, 0.2])


def test_paired_comparison_pools_seeds():
    t = [0] * 6
    # seed 0: A right on 5, B on 1 (A only: 4); seed 1: A only on 6, B only on 2 of 8 tracks
    s0 = (t, [0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1])
    s1 = ([1] * 8, [1] * 6 + [0, 0], [0] * 6 + [1, 1])
    p = paired_comparison([s0, s1])
    assert (p.pairs, p.a_only, p.b_only, p.seeds) == (14, 10, 2, 2)
    assert p.difference == pytest.approx(8 / 14)
    assert p.p_value == pytest.approx(158 / 4096) and p.real
    assert p.low > 0 and p.low <= p.difference <= p.high
    assert "McNemar, 10 vs 2 of 14 pairs, 2 seeds" in p.text()
    same = paired_comparison([([0, 1], [0, 0], [0, 0])])
    assert (same.difference, same.low, same.high, same.p_value, same.real) == (0.0, 0.0, 0.0, 1.0, False)
    with pytest.raises(ParameterError, match="same test tracks"):
        paired_comparison([([0, 1], [0], [0, 1])])
    with pytest.raises(ParameterError, match="no test track"):
        paired_comparison([])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 40))
def test_mcnemar_interval_agrees_with_its_p_value(b, c, ties):
    """The interval excludes 0 exactly when p < 0.05, holds the observed difference, lies in [-1, 1], and p
    is scipy's exact binomial test."""
    n = b + c + ties
    if n == 0:
        return
    targets = np.zeros(n, dtype=int)
    pa = np.r_[np.zeros(b), np.ones(c), np.zeros(ties)].astype(int)  # ties: both right
    pb = np.r_[np.ones(b), np.zeros(c), np.zeros(ties)].astype(int)
    p = paired_comparison([(targets, pa, pb)])
    assert (p.a_only, p.b_only) == (b, c)
    assert -1.0 <= p.low <= p.difference <= p.high <= 1.0
    assert p.real == (p.p_value < 0.05)
    if b + c:
        assert p.p_value == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
    assert mcnemar_p(b, c) == mcnemar_p(c, b)
    swapped = paired_comparison([(targets, pb, pa)])
    assert swapped.low == pytest.approx(-p.high) and swapped.high == pytest.approx(-p.low)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8), st.integers(1, 200))
def test_summary_interval_holds_the_mean_and_stays_in_0_1(values, tracks):
    if len(values) == 1:
        values = [round(values[0] * tracks) / tracks]
    s = summarize(values, tracks=tracks)
    assert 0.0 <= s.low <= s.mean + 1e-12 and s.mean - 1e-12 <= s.high <= 1.0
    assert s.contains(s.mean)


def test_cluster_bootstrap_resamples_whole_groups():
    # 40 pieces, each rendered twice and right or wrong on both renderings together
    rng = np.random.default_rng(3)
    piece_right = rng.random(40) < 0.7
    values = np.repeat(piece_right, 2).astype(float)
    groups = np.repeat(np.arange(40), 2)
    lo, hi = cluster_bootstrap_interval(values, groups)
    lo1, hi1 = cluster_bootstrap_interval(values, np.arange(80))  # as if the 80 tracks were independent
    assert lo <= values.mean() <= hi
    # groups of two identical items: the interval is that of 40 items, ~sqrt(2) wider than 80 independent ones
    assert 1.25 < (hi - lo) / (hi1 - lo1) < 1.6
    # near the binomial interval of 40 pieces
    half = 1.96 * math.sqrt(values.mean() * (1 - values.mean()) / 40)
    assert abs((hi - lo) / 2 - half) < 0.3 * half
    assert cluster_bootstrap_interval(values, groups) == (lo, hi)  # seeded
    with pytest.raises(ParameterError):
        cluster_bootstrap_interval(values, groups[:-1])
    with pytest.raises(ParameterError):
        cluster_bootstrap_interval([], [])
