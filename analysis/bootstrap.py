"""Confidence intervals: Wilson for proportions, vectorised BCa and two-way (crossed) bootstraps."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy.special import ndtr, ndtri

try:  # small matrix products are much faster single-threaded on a busy machine
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None


def _single_thread():
    """Limit BLAS to one thread when threadpoolctl is installed (optional)."""
    return threadpool_limits(1) if threadpool_limits is not None else nullcontext()


def wilson_interval(k: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes out of n (vectorised; NaN where n == 0)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = ndtri(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def _percentile_of_score(theta_b: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Fraction of bootstrap values below theta (ties count half), per row."""
    below = (theta_b < theta[:, None]).sum(axis=1)
    at_or_below = (theta_b <= theta[:, None]).sum(axis=1)
    return (below + at_or_below) / (2.0 * theta_b.shape[1])


def bca_from_distribution(theta: np.ndarray, theta_b: np.ndarray, jackknife: np.ndarray,
                          confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """BCa limits per row from estimates (g,), bootstrap draws (g, B) and jackknife values (g, n)."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    theta_b = np.atleast_2d(np.asarray(theta_b, dtype=float))
    alpha = (1 - confidence) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = ndtri(_percentile_of_score(theta_b, theta))
        low = np.empty(len(theta))
        high = np.empty(len(theta))
        for i, jk in enumerate(jackknife):
            jk = np.asarray(jk, dtype=float)
            u = jk.mean() - jk
            den = (u**2).sum()
            a = (u**3).sum() / (6 * den**1.5) if den > 0 else 0.0
            levels = []
            for z_alpha in (ndtri(alpha), ndtri(1 - alpha)):
                num = z0[i] + z_alpha
                levels.append(ndtr(z0[i] + num / (1 - a * num)))
            row = theta_b[i]
            if not np.isfinite(levels).all() or np.ptp(row) == 0:
                low[i] = high[i] = theta[i] if np.ptp(row) == 0 else np.nan
                continue
            low[i], high[i] = np.quantile(row, levels)
    return low, high


def bootstrap_mean_draws(values: np.ndarray, n_resamples: int, rng: np.random.Generator,
                         chunk: int = 2000) -> np.ndarray:
    """Means of `n_resamples` bootstrap resamples of `values` (indices drawn as scipy does)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n_resamples <= chunk:
        return values[rng.integers(0, n, (n_resamples, n))].mean(axis=1)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        out[start:stop] = values[rng.integers(0, n, (stop - start, n))].mean(axis=1)
    return out


MIN_N = 5  # below this many units (participants, layers, models) a test gives a note, not a p


def too_few(n: int, what: str) -> str:
    """'too few ...' when `n` is below MIN_N (no p-value or interval is then reported)."""
    return f"too few {what} (n = {n} < {MIN_N}): no p-value" if n < MIN_N else ""


def bca_mean(values: np.ndarray, n_resamples: int = 10_000, confidence: float = 0.95,
             rng: np.random.Generator | int | None = None) -> tuple[float, float, float]:
    """Mean of `values` with its BCa bootstrap interval: (mean, low, high)."""
    rng = np.random.default_rng(rng)
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return np.nan, np.nan, np.nan
    theta = values.mean()
    if n == 1:
        return theta, np.nan, np.nan
    draws = bootstrap_mean_draws(values, n_resamples, rng)
    jackknife = (values.sum() - values) / (n - 1)
    low, high = bca_from_distribution(np.array([theta]), draws[None, :], [jackknife], confidence)
    return float(theta), float(low[0]), float(high[0])


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaNs dropped)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return np.nan, np.nan
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return float(low), float(high)


def _resample_counts(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n) counts of how often each of n items is drawn in each of b resamples of size n."""
    idx = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)


def two_way_draws(participant: np.ndarray, unit: np.ndarray, correct: np.ndarray,
                  n_resamples: int, rng: np.random.Generator, chunk: int = 1000) -> np.ndarray:
    """Crossed (pigeonhole) bootstrap of the mean unit score: resample participants and units.

    Each resample draws counts (resampling with replacement) for participants and for units independently;
    a trial's weight is its participant's count, a unit's score is the weighted proportion
    correct, and the statistic is the unit-count-weighted mean of unit scores. Units that
    lose all their trials in a resample drop out of that resample's mean.
    """
    p_codes, p_index = np.unique(participant, return_inverse=True)
    u_codes, u_index = np.unique(unit, return_inverse=True)
    n_p, n_u = len(p_codes), len(u_codes)
    correct = np.asarray(correct, dtype=float)
    # participant x unit tables of trials and of correct answers
    trials = np.zeros((n_p, n_u))
    hits = np.zeros((n_p, n_u))
    np.add.at(trials, (p_index, u_index), 1.0)
    np.add.at(hits, (p_index, u_index), correct)
    out = np.empty(n_resamples)
    with _single_thread():
        _two_way_loop(hits, trials, n_p, n_u, out, rng, chunk)
    return out


def _two_way_loop(hits: np.ndarray, trials: np.ndarray, n_p: int, n_u: int, out: np.ndarray,
                  rng: np.random.Generator, chunk: int) -> None:
    n_resamples = len(out)
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        w_p = _resample_counts(n_p, b, rng)
        w_u = _resample_counts(n_u, b, rng)
        num = w_p @ hits
        den = w_p @ trials
        ratio = num / np.maximum(den, 1.0)  # den is a count; num is 0 where den is 0
        weights = w_u * (den > 0)
        total = weights.sum(axis=1)
        out[start:start + b] = (weights * ratio).sum(axis=1) / np.where(total > 0, total, np.nan)


def two_way_gap_draws(participant: np.ndarray, unit: np.ndarray, correct: np.ndarray,
                      first: np.ndarray, n_resamples: int, rng: np.random.Generator,
                      chunk: int = 1000) -> np.ndarray:
    """Crossed bootstrap, as `two_way_draws`, of the mean over units of a paired difference:
    each unit's proportion correct on its `first` trials minus that on the others. Units
    without trials on both sides in a resample drop out of its mean."""
    p_codes, p_index = np.unique(participant, return_inverse=True)
    u_codes, u_index = np.unique(unit, return_inverse=True)
    n_p, n_u = len(p_codes), len(u_codes)
    tables = []
    for side in (np.asarray(first, bool), ~np.asarray(first, bool)):
        trials, hits = np.zeros((n_p, n_u)), np.zeros((n_p, n_u))
        np.add.at(trials, (p_index[side], u_index[side]), 1.0)
        np.add.at(hits, (p_index[side], u_index[side]), np.asarray(correct, float)[side])
        tables.append((hits, trials))
    out = np.empty(n_resamples)
    with _single_thread():
        for start in range(0, n_resamples, chunk):
            b = min(chunk, n_resamples - start)
            w_p = _resample_counts(n_p, b, rng)
            w_u = _resample_counts(n_u, b, rng)
            (num_a, den_a), (num_b, den_b) = ((w_p @ h, w_p @ t) for h, t in tables)
            gap = num_a / np.maximum(den_a, 1.0) - num_b / np.maximum(den_b, 1.0)
            weights = w_u * ((den_a > 0) & (den_b > 0))
            total = weights.sum(axis=1)
            out[start:start + b] = (weights * gap).sum(axis=1) / np.where(total > 0, total,
                                                                           np.nan)
    return out


__all__ = [
    "bca_from_distribution",
    "bca_mean",
    "bootstrap_mean_draws",
    "percentile_interval",
    "two_way_draws",
    "two_way_gap_draws",
    "wilson_interval",
]
