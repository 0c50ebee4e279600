"""Scaling trends: score against model scale (Spearman with bootstrap CI, slope, TOST) and power."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from analysis.bootstrap import too_few
from analysis.load import attach_model_metadata
from analysis.simulate import logit_for_accuracy

SCALES = ("parameters", "train_images", "top1")
# How each scale variable enters a slope: log10 for counts (per 10x), linear per 10 points of top-1.
TRANSFORMS = {"parameters": ("log10", "per 10x parameters"),
              "train_images": ("log10", "per 10x training images"),
              "top1": ("per10", "per +10 points ImageNet top-1")}
DEFAULT_MARGIN = 0.05  # proportion correct per unit of the transformed scale (5 points per 10x)


def transform_scale(values: np.ndarray, scale: str) -> np.ndarray:
    """The x of a slope: log10 of counts, top-1 in units of 10 points."""
    kind = TRANSFORMS.get(scale, ("log10", ""))[0]
    values = np.asarray(values, dtype=float)
    return np.log10(values) if kind == "log10" else values / 10.0


def _row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row of (B, k) arrays (NaN where a row is constant)."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)


def spearman_trend(model_scores: pd.DataFrame, models: pd.DataFrame,
                   scales: Sequence[str] = SCALES, n_resamples: int = 10_000,
                   seed: int = 0, confidence: float = 0.95,
                   strata: Sequence[str] = ("condition", "difficulty")) -> pd.DataFrame:
    """Spearman's rho of model score vs each scale variable, with a percentile bootstrap CI
    over models (resamples with fewer than 3 distinct models are dropped)."""
    frame = attach_model_metadata(model_scores, models, tuple(scales))
    keys = [s for s in strata if s in frame.columns]
    rng = np.random.default_rng(seed)
    rows = []
    for key, f in frame.groupby(keys, observed=True, dropna=False) if keys else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        for scale in scales:
            g = f.dropna(subset=[scale, "score"])
            k = len(g)
            row = {**dict(zip(keys, key)), "scale": scale, "n_models": k,
                   "n_distinct": int(g[scale].nunique())}
            x, y = g[scale].to_numpy(float), g["score"].to_numpy(float)
            if k < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
                rows.append({**row, "rho": np.nan, "p": np.nan, "ci_low": np.nan,
                             "ci_high": np.nan, "n_resamples_used": 0})
                continue
            res = stats.spearmanr(x, y)
            note = too_few(k, "models")
            if note:  # a bootstrap over fewer than 5 models says more than the data can
                rows.append({**row, "rho": res.statistic, "p": np.nan, "ci_low": np.nan,
                             "ci_high": np.nan, "n_resamples_used": 0, "note": note})
                continue
            idx = rng.integers(0, k, (n_resamples, k))
            distinct = 1 + (np.diff(np.sort(idx, axis=1), axis=1) != 0).sum(axis=1) >= 3
            rho_b = _row_spearman(x[idx[distinct]], y[idx[distinct]])
            rho_b = rho_b[np.isfinite(rho_b)]
            alpha = (1 - confidence) / 2
            low, high = (np.quantile(rho_b, [alpha, 1 - alpha]) if len(rho_b)
                         else (np.nan, np.nan))
            rows.append({**row, "rho": res.statistic, "p": res.pvalue, "ci_low": low,
                         "ci_high": high, "n_resamples_used": len(rho_b)})
    out = pd.DataFrame(rows)
    out.attrs.update(method="percentile bootstrap over models", n_resamples=n_resamples,
                     seed=seed)
    return out


def tost_slope(slope: float, se: float, df: float, margin: float, alpha: float = 0.05
               ) -> dict[str, float | bool]:
    """Two one-sided tests that |slope| < margin: p = max of the two one-sided p-values."""
    if not (np.isfinite(slope) and np.isfinite(se) and se > 0):
        return {"p_tost": np.nan, "equivalent": False}
    p_lower = stats.t.sf((slope + margin) / se, df)   # H0: slope <= -margin
    p_upper = stats.t.cdf((slope - margin) / se, df)  # H0: slope >= +margin
    p = max(p_lower, p_upper)
    return {"p_tost": float(p), "equivalent": bool(p < alpha)}


def scaling_slopes(model_scores: pd.DataFrame, models: pd.DataFrame,
                   scales: Sequence[str] = SCALES, margin: float = DEFAULT_MARGIN,
                   alpha: float = 0.05,
                   strata: Sequence[str] = ("condition", "difficulty")) -> pd.DataFrame:
    """Least-squares slope of model score on transformed scale (one point per model), its 95 %
    CI (t, df = models - 2), and a TOST equivalence test against +-`margin`."""
    frame = attach_model_metadata(model_scores, models, tuple(scales))
    keys = [s for s in strata if s in frame.columns]
    rows = []
    for key, f in frame.groupby(keys, observed=True, dropna=False) if keys else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        for scale in scales:
            g = f.dropna(subset=[scale, "score"])
            row = {**dict(zip(keys, key)), "scale": scale, "unit": TRANSFORMS.get(
                scale, ("log10", "per 10x"))[1], "n_models": len(g),
                   "n_distinct": int(g[scale].nunique()), "margin": margin}
            x = transform_scale(g[scale].to_numpy(float), scale)
            if len(g) < 3 or np.ptp(x) == 0:
                rows.append({**row, "slope": np.nan})
                continue
            res = stats.linregress(x, g["score"].to_numpy(float))
            df = len(g) - 2
            tcrit = stats.t.ppf(0.975, df)
            rows.append({**row, "slope": res.slope, "se": res.stderr,
                         "ci_low": res.slope - tcrit * res.stderr,
                         "ci_high": res.slope + tcrit * res.stderr, "p": res.pvalue,
                         "ci90_low": res.slope - stats.t.ppf(1 - alpha, df) * res.stderr,
                         "ci90_high": res.slope + stats.t.ppf(1 - alpha, df) * res.stderr,
                         **tost_slope(res.slope, res.stderr, df, margin, alpha)})
    out = pd.DataFrame(rows)
    out.attrs.update(margin=margin, alpha=alpha)
    return out


def _unit_scores_sim(mu: float, n: int, r: int, unit_sd: float, participant_sd: float,
                     n_sims: int, per_participant: int | None, rng: np.random.Generator
                     ) -> np.ndarray:
    """(n_sims, n) simulated unit scores of one model, r responses per unit.

    per_participant None: every response from a new participant. Otherwise the n x r responses
    are cut into sessions of `per_participant` distinct units (the last one shorter), one
    participant per session (units in cyclic order, r rounds: close to the real task lists'
    least-used-first fill, with every session but the last full).
    """
    u = rng.normal(mu, unit_sd, (n_sims, 1, n))
    if per_participant is None:
        b = rng.normal(0, participant_sd, (n_sims, r, n))
    else:
        k = max(1, min(int(per_participant), n))
        session = np.arange(r * n) // k
        b = rng.normal(0, participant_sd, (n_sims, int(session[-1]) + 1))[:, session]
        b = b.reshape(n_sims, r, n)
    correct = rng.random((n_sims, r, n)) < expit(u + b)
    return correct.sum(axis=1) / r


def power_analysis(difference: float = 0.05, n_units: Sequence[int] = (20, 40, 84, 150),
                   responses_per_unit: Sequence[int] = (10, 20, 30, 50),
                   base_accuracy: float = 0.8, unit_sd: float = 0.8,
                   participant_sd: float = 0.4, alpha: float = 0.05, n_sims: int = 500,
                   test: str = "brunnermunzel", seed: int = 0,
                   trials_per_participant: int | None = None) -> pd.DataFrame:
    """Power to detect a `difference` in mean unit accuracy between two models, by simulation.

    Each simulated study draws `n` units per model (logit unit effects with sd `unit_sd`) and
    `r` responses per unit, then compares the two models' unit scores with `test`
    ('brunnermunzel' as in IMI, or 'welch' t-test) at level `alpha`. Participants (logit effect
    sd `participant_sd`) answer one response each when `trials_per_participant` is None, or
    `trials_per_participant` distinct units of one model each, as in real sessions (their
    effect is then shared by the units they answer, which widens the spread of model means).
    """
    if test not in ("brunnermunzel", "welch"):
        raise ValueError("test must be 'brunnermunzel' or 'welch'")
    if trials_per_participant is not None and trials_per_participant < 1:
        raise ValueError("trials_per_participant must be >= 1 or None")
    total_sd = float(np.hypot(unit_sd, participant_sd))
    mu_a = logit_for_accuracy(base_accuracy, total_sd)
    mu_b = logit_for_accuracy(base_accuracy + difference, total_sd)
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_units:
        for r in responses_per_unit:
            scores = [_unit_scores_sim(mu, n, r, unit_sd, participant_sd, n_sims,
                                       trials_per_participant, rng) for mu in (mu_a, mu_b)]
            with np.errstate(invalid="ignore", divide="ignore"):
                if test == "welch":
                    p = stats.ttest_ind(scores[0], scores[1], axis=1, equal_var=False).pvalue
                else:
                    p = stats.brunnermunzel(scores[0], scores[1], axis=1).pvalue
            p = np.nan_to_num(p, nan=1.0)
            power = float((p < alpha).mean())
            rows.append({"n_units": n, "responses_per_unit": r, "difference": difference,
                         "power": power, "mc_se": np.sqrt(power * (1 - power) / n_sims)})
    out = pd.DataFrame(rows)
    out.attrs.update(test=test, alpha=alpha, n_sims=n_sims, seed=seed,
                     base_accuracy=base_accuracy, unit_sd=unit_sd, participant_sd=participant_sd,
                     trials_per_participant=trials_per_participant)
    return out


__all__ = [
    "DEFAULT_MARGIN",
    "SCALES",
    "power_analysis",
    "scaling_slopes",
    "spearman_trend",
    "tost_slope",
    "transform_scale",
]
