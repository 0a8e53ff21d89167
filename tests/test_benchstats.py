"""Benchmark statistics: spread, per-round ratios, and when the spread warning fires."""

import pytest

from ktlskit.benchstats import BenchStatsError, Spread, compare, ratios, spread_warning


def test_spread_is_min_median_max() -> None:
    s = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (s.n, s.min, s.median, s.max) == (4, 1.0, 2.5, 10.0)
    assert s.width == 9.0 and s.relative == pytest.approx(3.6)
    assert s.text() == "2.50 (1.00..10.00)"
    assert Spread.of([7.0]).text() == "7.00"


def test_no_samples_is_an_error() -> None:
    with pytest.raises(BenchStatsError, match="no samples"):
        Spread.of([])


def test_ratios_are_per_round_not_of_medians() -> None:
    # round 1: A fast and B fast (a quiet host); round 2: both slow. Per round A = 2 B.
    assert ratios([10.0, 2.0], [5.0, 1.0]) == [2.0, 2.0]
    c = compare("A / B", [10.0, 2.0], [5.0, 1.0])
    assert c.spread.median == 2.0 and c.spread.width == 0.0 and c.warning is None
    assert c.text() == "A / B: 2.00x (2.00..2.00 over 2 rounds)"


def test_rounds_must_pair_up_and_denominators_be_nonzero() -> None:
    with pytest.raises(BenchStatsError, match="do not pair up"):
        ratios([1.0, 2.0], [1.0])
    with pytest.raises(BenchStatsError, match="denominator is 0"):
        ratios([1.0], [0.0])


def test_warning_when_the_spread_is_wider_than_the_difference() -> None:
    # median 1.05: a 0.05 difference, but the rounds range 0.90..1.20
    c = compare("kTLS / ssl", [0.9, 1.05, 1.2], [1.0, 1.0, 1.0])
    assert c.warning is not None
    assert "0.90..1.20 (a factor 1.33 between rounds)" in c.warning
    assert "factor 1.05 between the reported 1.05 and 1" in c.warning
    assert "disagree on the direction: they do not show a difference" in c.warning


def test_warning_when_the_rounds_agree_on_the_direction_but_not_the_size() -> None:
    # kTLS faster than ssl in every round (1.03..1.31), median 1.24: a factor 1.27 of
    # spread against a factor 1.24 of difference
    c = compare("kTLS / ssl", [1.03, 1.2, 1.24, 1.3, 1.31], [1.0] * 5)
    assert c.warning is not None and "every round agrees on the direction" in c.warning


def test_no_warning_when_every_round_agrees_on_the_sign() -> None:
    # median 0.85, all rounds between 0.80 and 0.90: spread 0.10 < difference 0.15
    assert compare("kTLS / ssl", [0.8, 0.85, 0.9], [1.0, 1.0, 1.0]).warning is None


def test_no_warning_when_every_pair_is_within_a_percent_of_one() -> None:
    # a fast path before/after under -icount: the pairs straddle 1, all within 0.2%
    assert compare("after / before", [0.998, 1.0, 1.002], [1.0, 1.0, 1.0], per="pair").warning \
        is None
    # 0.995..1.012: one pair 1.2% off, so the straddle is a real "no difference shown" warning,
    # printed to three decimals (two would read "1.00..1.01 ... the reported 1.00")
    w = compare("after / before", [0.995, 1.0, 1.012], [1.0, 1.0, 1.0], per="pair").warning
    assert w is not None and "0.995..1.012" in w and "disagree on the direction" in w


def test_a_single_round_always_warns() -> None:
    w = spread_warning("x", Spread.of([2.0]))
    assert w is not None and "one round" in w


def test_fractions_carry_no_warning() -> None:
    c = compare("ktls / kernel crypto limit", [5.0, 6.0], [20.0, 20.0], reference=None)
    assert c.warning is None and c.spread.median == pytest.approx(0.275)
    assert c.to_json()["ratios"] == [0.25, 0.3]


def test_large_ratios_compare_as_factors() -> None:
    # a stall 22x..54x the key install (median 32x): far from 1 in every round, no warning
    assert compare("stall / install", [2.2, 3.2, 5.4], [0.1, 0.1, 0.1]).warning is None
    # but 0.5x..3x around a median of 1.5x says nothing
    assert compare("a / b", [0.5, 1.5, 3.0], [1.0, 1.0, 1.0]).warning is not None


def test_nonpositive_values_fall_back_to_differences() -> None:
    assert spread_warning("x", Spread.of([-1.0, 0.0, 1.0]), 0.5) is not None
