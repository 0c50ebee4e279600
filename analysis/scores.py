"""Scores: per-unit proportion correct, per-model means with bootstrap intervals, confidence, RTs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.bootstrap import bca_mean, percentile_interval, two_way_draws, wilson_interval

GROUP = ("model", "condition")


def main_trials(responses: pd.DataFrame, include_excluded: bool = False,
                calibration: bool = False) -> pd.DataFrame:
    """Scored rows: phase == 'main', not catch, not a calibration trial mixed into the study
    (with `calibration`: those too) and (if flagged) not excluded."""
    mask = (responses["phase"] == "main") & ~responses["is_catch"].astype(bool)
    if not calibration and "is_calibration" in responses.columns:
        mask &= ~responses["is_calibration"].fillna(False).astype(bool)
    if not include_excluded and "excluded" in responses.columns:
        mask &= ~responses["excluded"].astype(bool)
    return responses[mask.fillna(False).astype(bool)]


def unit_scores(responses: pd.DataFrame, confidence: float = 0.95,
                by: Sequence[str] = ("condition", "difficulty")) -> pd.DataFrame:
    """Per unit (and condition, difficulty): n, correct, proportion correct and a Wilson interval."""
    main = main_trials(responses)
    keys = ["model", "unit_id", *[b for b in by if b in main.columns]]
    extra = [c for c in ("layer", "channel") if c in main.columns]
    g = main.groupby(keys, observed=True, sort=True, dropna=False)
    out = g["correct"].agg(n="size", correct="sum").reset_index()
    for c in extra:
        out[c] = g[c].first().to_numpy()
    out["score"] = out["correct"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["correct"].to_numpy(float),
                                                    out["n"].to_numpy(float), confidence)
    out["mean_confidence"] = g["confidence"].mean().to_numpy(float) if "confidence" in main else np.nan
    out["median_rt_ms"] = g["rt_ms"].median().to_numpy(float) if "rt_ms" in main else np.nan
    return out


def _group_keys(frame: pd.DataFrame, by: Sequence[str]) -> list[str]:
    return [b for b in by if b in frame.columns]


def model_scores(units: pd.DataFrame, n_resamples: int = 10_000, confidence: float = 0.95,
                 seed: int = 0, by: Sequence[str] = ("model", "condition", "difficulty"),
                 progress: bool = False) -> pd.DataFrame:
    """Per model x condition: mean of unit scores with a BCa bootstrap interval over units (IMI)."""
    keys = _group_keys(units, by)
    rng = np.random.default_rng(seed)
    rows = []
    groups = list(units.groupby(keys, observed=True, sort=True, dropna=False))
    for key, frame in tqdm(groups, desc="BCa bootstrap over units", disable=not progress,
                           leave=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = bca_mean(frame["score"].to_numpy(float), n_resamples, confidence, rng)
        rows.append({**dict(zip(keys, key)), "n_units": len(frame),
                     "n_responses": int(frame["n"].sum()), "score": mean,
                     "ci_low": low, "ci_high": high, "sd_units": frame["score"].std(ddof=1)})
    out = pd.DataFrame(rows)
    out.attrs.update(method="BCa bootstrap over units", n_resamples=n_resamples,
                     confidence=confidence, seed=seed)
    return out


def two_way_scores(responses: pd.DataFrame, n_resamples: int = 2_000, confidence: float = 0.95,
                   seed: int = 0, by: Sequence[str] = ("model", "condition", "difficulty"),
                   progress: bool = False) -> pd.DataFrame:
    """Per model x condition: mean unit score with a percentile interval from a crossed
    bootstrap over participants and units (accounts for participants seeing many units)."""
    main = main_trials(responses)
    keys = _group_keys(main, by)
    rng = np.random.default_rng(seed)
    rows = []
    groups = list(main.groupby(keys, observed=True, sort=True, dropna=False))
    for key, frame in tqdm(groups, desc="two-way bootstrap", disable=not progress, leave=False):
        key = key if isinstance(key, tuple) else (key,)
        per_unit = frame.groupby("unit_id", observed=True)["correct"].mean()
        draws = two_way_draws(frame["participant_id"].to_numpy(), frame["unit_id"].to_numpy(),
                              frame["correct"].to_numpy(), n_resamples, rng)
        low, high = percentile_interval(draws, confidence)
        rows.append({**dict(zip(keys, key)), "n_units": len(per_unit),
                     "n_participants": frame["participant_id"].nunique(),
                     "score": per_unit.mean(), "ci_low": low, "ci_high": high,
                     "se_boot": float(np.nanstd(draws, ddof=1))})
    out = pd.DataFrame(rows)
    out.attrs.update(method="two-way (participants x units) percentile bootstrap",
                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out


def participant_scores(responses: pd.DataFrame,
                       by: Sequence[str] = ("model", "condition", "difficulty")) -> pd.DataFrame:
    """Per participant (within model x condition): number of trials and proportion correct."""
    main = main_trials(responses)
    keys = _group_keys(main, by) + ["participant_id"]
    return (main.groupby(keys, observed=True, sort=True, dropna=False)["correct"]
            .agg(n="size", score="mean").reset_index())


def participant_summary(responses: pd.DataFrame,
                        by: Sequence[str] = ("model", "condition", "difficulty")) -> pd.DataFrame:
    """Mean +- 2 SEM over participants (Borowski et al.'s convention)."""
    per = participant_scores(responses, by)
    keys = _group_keys(per, by)
    g = per.groupby(keys, observed=True, sort=True, dropna=False)["score"]
    out = g.agg(n_participants="size", score="mean", sd="std").reset_index()
    out["sem"] = out["sd"] / np.sqrt(out["n_participants"])
    out["low_2sem"] = out["score"] - 2 * out["sem"]
    out["high_2sem"] = out["score"] + 2 * out["sem"]
    return out


def accuracy_by_confidence(responses: pd.DataFrame,
                           by: Sequence[str] = ("condition", "difficulty"),
                           confidence: float = 0.95, n_resamples: int = 10_000,
                           seed: int = 0) -> pd.DataFrame:
    """Accuracy per confidence level as IMI computes it: the mean of unit accuracies among the
    trials answered at that level, with a BCa interval over units; per model and over all
    models (model "all"). share: the level's share of the trials; pooled_accuracy: correct
    over trials (trials taken as independent, not IMI's)."""
    main = main_trials(responses)
    main = main[main["confidence"].notna()]
    keys = _group_keys(main, by)
    rng = np.random.default_rng(seed)
    rows = []
    for model, frame in [("all", main), *main.groupby("model", observed=True, sort=True)]:
        cells = frame.groupby(keys + ["confidence"], observed=True, sort=True, dropna=False)
        for key, cell in cells:
            key = key if isinstance(key, tuple) else (key,)
            per_unit = cell.groupby("unit_id", observed=True)["correct"].mean().to_numpy(float)
            mean, low, high = bca_mean(per_unit, n_resamples, confidence, rng)
            rows.append({"model": model, **dict(zip(keys + ["confidence"], key)),
                         "n_trials": len(cell), "n_units": len(per_unit), "accuracy": mean,
                         "ci_low": low, "ci_high": high,
                         "pooled_accuracy": float(cell["correct"].mean())})
    out = pd.DataFrame(rows)
    if not out.empty:
        cell = out.groupby(["model", *keys], observed=True, dropna=False)["n_trials"]
        out.insert(out.columns.get_loc("n_units"), "share", out["n_trials"] / cell.transform("sum"))
    out.attrs.update(method="mean of unit accuracies, BCa bootstrap over units",
                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out


def rt_summary(responses: pd.DataFrame,
               by: Sequence[str] = ("model", "condition", "difficulty")) -> pd.DataFrame:
    """Reaction times (ms) per group: median, IQR, mean of log RT, split by correct and wrong."""
    main = main_trials(responses)
    main = main[main["rt_ms"].notna() & (main["rt_ms"] > 0)]
    keys = _group_keys(main, by)
    rt = main["rt_ms"].astype(float)
    frame = main.assign(log_rt=np.log(rt), rt=rt)
    g = frame.groupby(keys, observed=True, sort=True, dropna=False)
    out = g["rt"].agg(n="size", median_ms="median",
                      q25_ms=lambda s: s.quantile(0.25), q75_ms=lambda s: s.quantile(0.75),
                      mean_ms="mean").reset_index()
    out["geo_mean_ms"] = np.exp(g["log_rt"].mean().to_numpy())
    split = (frame.groupby(keys + ["correct"], observed=True, dropna=False)["rt"].median()
             .unstack("correct"))
    out["median_correct_ms"] = split.get(True, pd.Series(np.nan, index=split.index)).to_numpy()
    out["median_wrong_ms"] = split.get(False, pd.Series(np.nan, index=split.index)).to_numpy()
    return out


__all__ = [
    "accuracy_by_confidence",
    "main_trials",
    "model_scores",
    "participant_scores",
    "participant_summary",
    "rt_summary",
    "two_way_scores",
    "unit_scores",
]
