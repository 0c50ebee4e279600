"""Shifted queries: each unit's and model's score with in-distribution and with shifted queries
(same references), and the gap between them with intervals (issue 17 item 1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bootstrap import (
    percentile_interval,
    two_way_draws,
    two_way_gap_draws,
    wilson_interval,
)
from analysis.scores import main_trials, unit_scores
from experiments.vocabulary import IN_DISTRIBUTION

COLUMN = "query_distribution"
CELL = ("model", "unit_id", "condition", "difficulty")  # a unit's score is compared within these
ALL_MODELS = "(all models)"


def distributions(responses: pd.DataFrame) -> list[str]:
    """The query distributions of the scored trials, `in` first."""
    if COLUMN not in responses.columns:
        return [IN_DISTRIBUTION]
    present = set(main_trials(responses)[COLUMN].dropna())
    return sorted(present, key=lambda d: (d != IN_DISTRIBUTION, d)) or [IN_DISTRIBUTION]


def scored_distribution(responses: pd.DataFrame) -> str:
    """The distribution the study's main tables score: `in` when present, else the only one."""
    return distributions(responses)[0]


def newcombe_difference(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray,
                        confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p1 - p2 of two independent proportions with Newcombe's hybrid score interval (from the
    two Wilson intervals; Newcombe 1998, method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    gap = p1 - p2
    return gap, gap - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), \
        gap + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def unit_gaps(responses: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per unit, condition, difficulty and shifted distribution: the in-distribution score, the
    shifted score and the gap (in - shifted) with a Newcombe interval; units seen with only
    one of the two are left out."""
    scores = unit_scores(responses, confidence, by=("condition", "difficulty", COLUMN))
    keys = [k for k in CELL if k in scores.columns]
    inside = scores[scores[COLUMN] == IN_DISTRIBUTION]
    rows = []
    for label in distributions(responses)[1:]:
        pair = inside.merge(scores[scores[COLUMN] == label], on=keys, suffixes=("_in", "_out"))
        if pair.empty:
            continue
        gap, low, high = newcombe_difference(
            pair["correct_in"].to_numpy(float), pair["n_in"].to_numpy(float),
            pair["correct_out"].to_numpy(float), pair["n_out"].to_numpy(float), confidence)
        rows.append(pd.DataFrame({
            **{k: pair[k] for k in keys}, COLUMN: label,
            "n_in": pair["n_in"], "score_in": pair["score_in"],
            "n_out": pair["n_out"], "score_out": pair["score_out"],
            "gap": gap, "ci_low": low, "ci_high": high}))
    columns = [*keys, COLUMN, "n_in", "score_in", "n_out", "score_out", "gap", "ci_low", "ci_high"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def model_gaps(responses: pd.DataFrame, n_resamples: int = 2_000, confidence: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """Per model (and over all models), condition, difficulty and shifted distribution: the
    mean unit score in and out of distribution and the mean of the units' gaps, each with a
    percentile interval from a crossed bootstrap over participants and units (a task holds one
    distribution, so the gap compares different participants: units alone are not enough;
    coverage in benchmarks/RESULTS_shifted.md)."""
    main = main_trials(responses)
    rng = np.random.default_rng(seed)
    keys = [k for k in ("condition", "difficulty") if k in main.columns]
    rows = []
    models = [(ALL_MODELS, main)] if main["model"].nunique() > 1 else []
    for model, frame in [*models, *main.groupby("model", sort=True)]:
        for label in distributions(responses)[1:]:
            for key, part in frame.groupby(keys, sort=True, dropna=False):
                part = part[part[COLUMN].isin([IN_DISTRIBUTION, label])]
                both = part.groupby("unit_id")[COLUMN].nunique()
                part = part[part["unit_id"].isin(both.index[both == 2])]
                if part.empty:
                    continue
                first = (part[COLUMN] == IN_DISTRIBUTION).to_numpy()
                args = (part["participant_id"].to_numpy(), part["unit_id"].to_numpy(),
                        part["correct"].to_numpy(float))
                per_unit = part.groupby(["unit_id", COLUMN])["correct"].mean().unstack()
                row = {"model": model, **dict(zip(keys, key if isinstance(key, tuple)
                                                  else (key,))),
                       COLUMN: label, "n_units": len(per_unit),
                       "n_participants": part["participant_id"].nunique()}
                for name, draws, estimate in (
                        ("score_in", two_way_draws(*(a[first] for a in args), n_resamples, rng),
                         per_unit[IN_DISTRIBUTION].mean()),
                        ("score_out", two_way_draws(*(a[~first] for a in args), n_resamples,
                                                    rng), per_unit[label].mean()),
                        ("gap", two_way_gap_draws(*args, first, n_resamples, rng),
                         (per_unit[IN_DISTRIBUTION] - per_unit[label]).mean())):
                    low, high = percentile_interval(draws, confidence)
                    row.update({name: estimate, f"{name}_low": low, f"{name}_high": high})
                rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(method="two-way (participants x units) percentile bootstrap",
                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    return out


def tables(responses: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, pd.DataFrame]:
    """The report's shifted-query tables (empty dict when every query is from one distribution)."""
    if len(distributions(responses)) < 2:
        return {}
    gaps = unit_gaps(responses)
    return {"shifted_model_gaps": model_gaps(responses, n_resamples, seed=seed),
            "shifted_unit_gaps": gaps.sort_values("gap", ascending=False, ignore_index=True)}
