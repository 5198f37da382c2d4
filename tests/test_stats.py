"""benchmarks/stats.py: the interval estimates of the reports, on cases whose answer is known."""

import numpy as np
import pytest

from benchmarks.stats import iqm, iqm_interval, mean_interval, probability_of_improvement


def test_mean_interval_holds_the_mean_and_collapses_without_spread():
    point, low, high = mean_interval([0.5, 0.48, 0.81, 0.47, 0.40])
    assert point == pytest.approx(0.532) and 0.40 <= low < point < high <= 0.81
    assert mean_interval([1.0] * 5) == (1.0, 1.0, 1.0)
    assert mean_interval([0.2, 0.4, 0.6]) == mean_interval([0.2, 0.4, 0.6])  # a fixed seed: the same interval


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([0, 1, 2, 3, 4, 5, 6, 100]) == pytest.approx(np.mean([2, 3, 4, 5]))
    point, low, high = iqm_interval([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert (point, low, high) == (0.5, 0.5, 0.5)  # stratified: every resample keeps four runs of each cell


def test_probability_of_improvement():
    assert probability_of_improvement([[2.0, 3.0]], [[0.0, 1.0]])[0] == 1.0
    assert probability_of_improvement([[1.0, 1.0]], [[1.0, 1.0]]) == (0.5, 0.5, 0.5)  # ties count half
    # two cells averaged: one always better (1), one a coin (x beats y in 1 of 4 pairs, ties none: 0.25)
    point, low, high = probability_of_improvement([[5.0, 6.0], [0.0, 2.0]], [[1.0, 2.0], [1.0, 3.0]])
    assert point == pytest.approx((1.0 + 0.25) / 2) and low <= point <= high
