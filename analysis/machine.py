"""Machine observers against people on the same units: each unit's machine score (the mean
p_correct of `interpsy observe`, the MIS) beside its human score, Spearman and Pearson
correlations with bootstrap intervals over units, the human noise ceiling (split-half
reliability, Spearman-Brown corrected), model ranking agreement (Kendall's tau) and the units
where machine and people disagree most."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.scores import main_trials

MACHINE = "machine"
KEYS = ("model", "unit_id", "condition", "difficulty")


def split_clients(responses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(people's rows, machine observers' rows)."""
    machine = responses["client"].astype(str) == MACHINE
    return responses[~machine], responses[machine]


def observer_labels(machine: pd.DataFrame) -> pd.Series:
    """Each machine row's observer as the report names it: observer (backbone), and the folder
    it was read from when rows of several `interpsy observe` runs are compared."""
    label = machine["observer"].astype(str) + machine["backbone"].astype("string").fillna(
        "").map(lambda b: f" ({b})" if b else "")
    if "machine_source" in machine and machine["machine_source"].nunique() > 1:
        label = label + " from " + machine["machine_source"].astype(str)
    return label


def _keys(*frames: pd.DataFrame) -> list[str]:
    return [k for k in KEYS if all(k in f.columns for f in frames)]


def unit_table(human: pd.DataFrame, machine: pd.DataFrame) -> pd.DataFrame:
    """One row per unit cell and machine observer (observer + backbone): the human score
    (proportion correct of scored trials, excluded participants left out) and the machine
    score (mean p_correct of its scored trials), for the cells both answered."""
    people = main_trials(human)
    bots = main_trials(machine).assign(observer_id=lambda f: observer_labels(f))
    keys = _keys(people, bots)
    h = (people.groupby(keys, observed=True)["correct"].agg(n_human="size", human_score="mean")
         .reset_index())
    m = (bots.groupby(["observer_id", *keys], observed=True)["p_correct"]
         .agg(n_machine="size", machine_score="mean").reset_index())
    return m.merge(h, on=keys, how="inner").rename(columns={"observer_id": "observer"})


def _rank_rows(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, axis=1)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair (NaN where a row is constant)."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def correlation_interval(x: np.ndarray, y: np.ndarray, n_resamples: int = 2000,
                         confidence: float = 0.95, rng: np.random.Generator | None = None
                         ) -> dict[str, float]:
    """Spearman and Pearson r of x and y with percentile bootstrap intervals over the pairs."""
    rng = rng or np.random.default_rng(0)
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = {"n_units": n}
    if n < 3:
        return {**out, **dict.fromkeys(("spearman", "spearman_low", "spearman_high", "pearson",
                                        "pearson_low", "pearson_high"), np.nan)}
    idx = rng.integers(0, n, (n_resamples, n))
    xb, yb = x[idx], y[idx]
    tail = (1 - confidence) / 2 * 100
    for name, point, draws in (
            ("spearman", stats.spearmanr(x, y).statistic,
             _pearson_rows(_rank_rows(xb), _rank_rows(yb))),
            ("pearson", _pearson_rows(x[None], y[None])[0], _pearson_rows(xb, yb))):
        low, high = (np.nanpercentile(draws, [tail, 100 - tail]) if np.isfinite(draws).any()
                     else (np.nan, np.nan))
        out.update({name: float(point), f"{name}_low": float(low), f"{name}_high": float(high)})
    return out


def correlations(table: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per observer and condition, over all units and per model: Spearman and Pearson r of
    machine and human unit scores with bootstrap intervals over units."""
    rng = np.random.default_rng(seed)
    rows = []
    for (observer, condition), group in table.groupby(["observer", "condition"], observed=True):
        scopes = [("all", group), *group.groupby("model", observed=True)]
        for model, part in scopes:
            rows.append({"observer": observer, "condition": condition, "model": model,
                         **correlation_interval(part["machine_score"], part["human_score"],
                                                n_resamples, rng=rng)})
    return pd.DataFrame(rows)


def _halves(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random split of each unit's trials into two halves (alternating in random order)."""
    n = len(codes)
    shuffled = rng.permutation(n)
    rows = shuffled[np.argsort(codes[shuffled], kind="stable")]
    grouped = codes[rows]
    starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
    position = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    half = np.empty(n, dtype=bool)
    half[rows] = position % 2 == 0
    return half


def _reliability(codes: np.ndarray, correct: np.ndarray, n_splits: int,
                 rng: np.random.Generator) -> float:
    """Mean Spearman-Brown corrected split-half Spearman r of the unit scores (codes: unit)."""
    values = _split_values(codes, correct, n_splits, rng)
    return float(np.nanmean(values)) if values else np.nan


def _split_values(codes: np.ndarray, correct: np.ndarray, n_splits: int,
                  rng: np.random.Generator) -> list[float]:
    """The Spearman-Brown corrected split-half Spearman r of each of `n_splits` splits where
    both halves rank 3 or more units that differ."""
    n_units = int(codes.max()) + 1 if len(codes) else 0
    values = []
    for _ in range(n_splits):
        half = _halves(codes, rng)
        scores = []
        for mask in (half, ~half):
            sums = np.bincount(codes[mask], correct[mask], n_units)
            counts = np.bincount(codes[mask], minlength=n_units)
            with np.errstate(invalid="ignore", divide="ignore"):
                scores.append(sums / counts)
        ok = np.isfinite(scores[0]) & np.isfinite(scores[1])
        # a half whose units all score alike has no rank order: no r (scipy would warn)
        if ok.sum() >= 3 and np.ptp(scores[0][ok]) > 0 and np.ptp(scores[1][ok]) > 0:
            r = stats.spearmanr(scores[0][ok], scores[1][ok]).statistic
            values.append(2 * r / (1 + r) if 1 + r > 1e-12 else np.nan)  # r = -1: undefined
    return values


def noise_ceiling(human: pd.DataFrame, n_splits: int = 20, n_resamples: int = 500,
                  seed: int = 0) -> pd.DataFrame:
    """Per condition: the human split-half reliability (Spearman-Brown), with a percentile
    bootstrap interval over units and the ceiling it sets on a correlation with the human
    scores (its square root). Each bootstrap draw resamples units with all their trials and
    takes one random split; the draws' spread is then narrowed by the split-to-split variance
    the mean over `n_splits` splits no longer has (measured: benchmarks/coverage_machine.py)."""
    rng = np.random.default_rng(seed)
    rows = []
    people = main_trials(human)
    for condition, part in people.groupby("condition", observed=True):
        codes = part.groupby(_keys(part)[:2], observed=True).ngroup().to_numpy()
        correct = part["correct"].to_numpy(float)
        n_units = int(codes.max()) + 1
        splits = np.array(_split_values(codes, correct, max(n_splits, 2), rng))
        splits = splits[np.isfinite(splits)]
        base = {"condition": condition, "n_units": n_units,
                "trials_per_unit": len(part) / n_units}
        if len(splits) == 0:
            rows.append({**base, "reliability": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                         "ceiling_r": np.nan, "note": "no split-half reliability: fewer than 3 "
                         "units with 2 or more trials, or every unit scored alike"})
            continue
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=n_units)
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        draws = []
        for _ in range(n_resamples):
            chosen = rng.integers(0, n_units, n_units)
            rows_b = np.concatenate([order[starts[i]:starts[i] + sizes[i]] for i in chosen])
            codes_b = np.repeat(np.arange(n_units), sizes[chosen])
            draws.append(_reliability(codes_b, correct[rows_b], 1, rng))
        point = float(np.mean(splits))
        draws = np.asarray(draws, dtype=float)
        split_var = np.var(splits, ddof=1) if len(splits) > 1 else 0.0
        total = np.nanvar(draws) if np.isfinite(draws).any() else 0.0
        keep = max(total - split_var * (1 - 1 / len(splits)), 0.0)
        centre = np.nanmean(draws)
        shrink = np.sqrt(keep / total) if total > 0 else 1.0
        adjusted = centre + (draws - centre) * shrink
        low, high = (np.nanpercentile(adjusted, [2.5, 97.5]) if np.isfinite(adjusted).any()
                     else (np.nan, np.nan))
        # a reliability lies in [0, 1]: Spearman-Brown of a negative split-half r does not
        note = ("the halves disagree (mean Spearman-Brown value below 0): the human unit "
                "scores are not reliable at this many trials per unit" if point < 0 else
                "interval clipped to [0, 1]" if low < 0 or high > 1 else "")
        rows.append({**base, "reliability": point if point >= 0 else np.nan,
                     "ci_low": float(np.clip(low, 0, 1)), "ci_high": float(np.clip(high, 0, 1)),
                     "ceiling_r": np.sqrt(point) if point > 0 else np.nan, "note": note})
    return pd.DataFrame(rows)


def model_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Per observer and condition: Kendall's tau between the models' mean human and machine
    unit scores (do both rank the models alike?)."""
    rows = []
    for (observer, condition), group in table.groupby(["observer", "condition"], observed=True):
        models = group.groupby("model", observed=True)[["human_score", "machine_score"]].mean()
        tau = (stats.kendalltau(models["machine_score"], models["human_score"])
               if len(models) >= 3 else None)
        rows.append({"observer": observer, "condition": condition, "n_models": len(models),
                     "kendall_tau": tau.statistic if tau else np.nan,
                     "p": tau.pvalue if tau else np.nan,
                     "human_order": ", ".join(models["human_score"].sort_values(
                         ascending=False).index.astype(str)),
                     "machine_order": ", ".join(models["machine_score"].sort_values(
                         ascending=False).index.astype(str))})
    return pd.DataFrame(rows)


def disagreements(table: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """The k unit cells per observer where the machine's and people's percentile ranks differ
    most (units to look at)."""
    out = []
    for _, group in table.groupby(["observer", "condition"], observed=True):
        g = group.assign(human_rank=group["human_score"].rank(pct=True),
                         machine_rank=group["machine_score"].rank(pct=True))
        g["rank_gap"] = g["machine_rank"] - g["human_rank"]
        out.append(g.reindex(g["rank_gap"].abs().sort_values(ascending=False).index).head(k))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def machine_vs_human(human: pd.DataFrame, machine: pd.DataFrame, n_resamples: int = 2000,
                     seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every table of the comparison (empty tables when no unit was answered by both)."""
    table = unit_table(human, machine)
    if table.empty:
        return {"machine_units": table}
    return {"machine_units": table,
            "machine_correlations": correlations(table, n_resamples, seed),
            "machine_noise_ceiling": noise_ceiling(
                human[human["unit_id"].isin(table["unit_id"])], seed=seed + 1),
            "machine_model_ranking": model_ranking(table),
            "machine_disagreements": disagreements(table)}


def selection_groups(unit_scores: pd.DataFrame, units: pd.DataFrame | None,
                     n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Units chosen by a machine score (`[select_units]`, the MIS paper's interventional
    design): per condition and selection group, the people's mean unit score with a BCa
    interval over units and the mean machine score; then the easiest against the hardest group
    (Brunner-Munzel on unit scores). Empty when no unit was chosen by score."""
    from analysis.bootstrap import bca_mean
    from analysis.stats import brunner_munzel

    if units is None or "selection_group" not in units or units["selection_group"].isna().all():
        return pd.DataFrame()
    groups = units.dropna(subset=["selection_group"]).drop_duplicates("unit_id").set_index(
        "unit_id")[["selection_group", "machine_score"]]
    scored = unit_scores.join(groups, on="unit_id", how="inner")
    rng = np.random.default_rng(seed)
    rows = []
    for condition, part in scored.groupby("condition", observed=True):
        by_group = {g: f for g, f in part.groupby("selection_group", observed=True)}
        for group, frame in by_group.items():
            mean, low, high = bca_mean(frame["score"].to_numpy(float), n_resamples, 0.95, rng)
            rows.append({"condition": condition, "group": group, "n_units": len(frame),
                         "human_score": mean, "ci_low": low, "ci_high": high,
                         "machine_score": frame["machine_score"].mean()})
        if {"easiest", "hardest"} <= set(by_group) and min(
                len(by_group["easiest"]), len(by_group["hardest"])) >= 2:
            test = brunner_munzel(by_group["hardest"]["score"], by_group["easiest"]["score"])
            rows.append({"condition": condition, "group": "easiest vs hardest",
                         "n_units": test["n_a"] + test["n_b"],
                         "human_score": by_group["easiest"]["score"].mean()
                         - by_group["hardest"]["score"].mean(),
                         "brunner_munzel_p": test["p"],
                         "p_easiest_higher": test["p_a_less_b"]})
    return pd.DataFrame(rows)
