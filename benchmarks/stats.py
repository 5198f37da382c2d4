"""Interval estimates for the benchmark reports, following Agarwal et al. (2021, "Deep RL at the edge of the
statistical precipice"): a cell's mean with a 95 % bootstrap interval over its seeds; over several cells the
interquartile mean (IQM) with a stratified bootstrap interval (seeds resampled within each cell) and the
probability of improvement P(X > Y). Every interval is scipy.stats.bootstrap's (percentile method,
N_RESAMPLES resamples, a fixed seed), never a hand-written resampler.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0


def _interval(samples: tuple[np.ndarray, ...], statistic) -> tuple[float, float, float]:
    """(point estimate, low, high); a sample with no spread has the point itself as its interval."""
    point = float(statistic(*samples))
    if all(np.ptp(s) == 0 for s in samples) or all(len(s) < 2 for s in samples):
        return point, point, point
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(SEED),
    )
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values) -> tuple[float, float, float]:
    """A cell's mean over its seeds with a 95 % bootstrap interval."""
    return _interval((np.asarray(values, dtype=float),), np.mean)


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50 % (scipy's trim_mean, a quarter cut at each end)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def iqm_interval(cells: list) -> tuple[float, float, float]:
    """IQM over all runs of several cells, with a stratified bootstrap interval: scipy resamples each cell's
    seeds on their own (independent samples), so every resample keeps each cell's number of runs."""
    samples = tuple(np.asarray(c, dtype=float) for c in cells)
    return _interval(samples, lambda *cs: iqm(np.concatenate(cs)))


def probability_of_improvement(x_cells: list, y_cells: list) -> tuple[float, float, float]:
    """P(X > Y): for each cell the probability that a run of X beats a run of Y (ties count half, the
    Mann-Whitney statistic), averaged over cells; stratified bootstrap interval as for the IQM."""
    k = len(x_cells)
    samples = tuple(np.asarray(c, dtype=float) for c in list(x_cells) + list(y_cells))

    def statistic(*cs):
        xs, ys = cs[:k], cs[k:]
        return np.mean([((x[:, None] > y[None]) + 0.5 * (x[:, None] == y[None])).mean() for x, y in zip(xs, ys)])

    return _interval(samples, statistic)


def fmt_interval(point: float, low: float, high: float, digits: int = 2) -> str:
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
