"""Accuracy and trial-by-trial error consistency of observers who classified the same images:
Geirhos et al., "Beyond accuracy" (NeurIPS 2020) and the model-vs-human benchmark ("Partial
success in closing the gap between human and machine vision", NeurIPS 2021).

The trial table has one row per answer: `dataset`, `observer`, `kind` (`human` or `machine`),
`condition` (the distortion level), `image` (the image's own name, the same for every observer
who saw it), `correct`, and for shape bias `response` and `category`.

Error consistency of observers a and b in one condition, on the n images both classified there:
observed consistency c_obs is the share of images both got right or both got wrong; expected
consistency c_exp = p_a p_b + (1 - p_a)(1 - p_b) from their accuracies on those images; kappa =
(c_obs - c_exp) / (1 - c_exp), and 1 when c_obs = 1 (the benchmark's rule; c_exp = 1 implies it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

TRIAL_COLUMNS = ("dataset", "observer", "kind", "condition", "image", "correct")
KINDS = ("human", "machine")
ACCURACY_COLUMNS = ("observer", "condition", "n", "accuracy", "n_correct", "ci_low", "ci_high",
                    "dataset", "kind")
PAIR_COLUMNS = ("observer_a", "observer_b", "condition", "n", "observed", "expected",
                "error_consistency", "dataset", "pair", "accuracy_a", "accuracy_b")
SUMMARY_METRICS = {"accuracy_difference": True, "observed_consistency": False,
                   "error_consistency": False}  # metric -> lower is better (for its rank)
PEOPLE_ROW = "people (mean)"  # the benchmark summary's row of the people as a group
# Cue-conflict images are named <shape><i>-<texture><j>.png (Geirhos et al., ICLR 2019).
CUE_CONFLICT = re.compile(r"^(?P<shape>[a-z]+)\d+-(?P<texture>[a-z]+)\d+\.\w+$")


def trials_of(responses: pd.DataFrame) -> pd.DataFrame:
    """The trial table of categorisation responses: main, non-catch trials; the observer is
    the `participant_id` (a machine observer's names it and its model); the image is `unit_id`.
    An interpsy categorisation study's rows (with `distortion` and `level`) are grouped by
    distortion (as `dataset`) and level (as `condition`); other rows by experiment and
    condition."""
    rows = responses[(responses["phase"] == "main") & ~responses["is_catch"].astype(bool)]
    if {"distortion", "level"} <= set(rows.columns) and rows["level"].notna().all():
        rows = rows.assign(experiment=rows["distortion"], condition=rows["level"],
                           choice=rows["choice"], correct_choice=rows["category"])
    machine = rows["client"].astype(str) == "machine"
    return pd.DataFrame({
        "dataset": rows["experiment"].astype(str),
        "observer": rows["participant_id"].astype(str),
        "kind": np.where(machine, "machine", "human"),
        "condition": rows["condition"].astype(str), "image": rows["unit_id"].astype(str),
        "correct": rows["correct"].astype(bool), "response": rows["choice"].astype(str),
        "category": rows["correct_choice"].astype(str)}).reset_index(drop=True)


def observer_order(trials: pd.DataFrame) -> list[str]:
    """People first, then machines, each by name."""
    kinds = trials.drop_duplicates("observer").set_index("observer")["kind"]
    return sorted(kinds.index, key=lambda o: (KINDS.index(kinds[o]), str(o)))


def condition_order(values: pd.Series | list) -> list[str]:
    """The conditions in the order of their number (c30 -> 30, 0.05, inf), the rest by name."""
    def key(value: str) -> tuple[int, float, str]:
        found = re.search(r"-?(\d+(\.\d*)?|\.\d+|inf)", value)
        return (0, float(found.group(0)), value) if found else (1, 0.0, value)
    return sorted({str(v) for v in values}, key=key)


def accuracy(trials: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per dataset, observer and condition with its Wilson 95% interval."""
    groups = trials.groupby(["dataset", "observer", "condition"], sort=False)["correct"]
    out = groups.agg(n="size", n_correct="sum").reset_index()
    out["n_correct"] = out["n_correct"].astype(int)
    out["accuracy"] = out["n_correct"] / out["n"]
    low, high = proportion_confint(out["n_correct"], out["n"], alpha=0.05, method="wilson")
    out["ci_low"], out["ci_high"] = np.asarray(low), np.asarray(high)
    out["kind"] = out["observer"].map(trials.drop_duplicates("observer")
                                      .set_index("observer")["kind"])
    order = {o: i for i, o in enumerate(observer_order(trials))}
    levels = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    out = out.sort_values(["dataset", "observer", "condition"],
                          key=lambda s: s.map(order) if s.name == "observer"
                          else s.map(levels) if s.name == "condition" else s)
    return out[list(ACCURACY_COLUMNS)].reset_index(drop=True)


def _cell_pairs(cell: pd.DataFrame, observers: list[str]) -> pd.DataFrame:
    """Every pair's n, observed and expected consistency and kappa in one condition."""
    wide = (cell.drop_duplicates(["observer", "image"])
            .pivot(index="image", columns="observer", values="correct"))
    wide = wide[[o for o in observers if o in wide.columns]]
    seen = wide.notna().to_numpy(dtype=float)
    right = wide.fillna(False).astype(bool).to_numpy(dtype=float) * seen
    wrong = seen - right
    n = seen.T @ seen
    agree = right.T @ right + wrong.T @ wrong
    right_a = right.T @ seen  # [i, j]: images both saw that i got right
    a, b = np.triu_indices(len(wide.columns), 1)
    n_ab = n[a, b]
    keep = n_ab > 0
    a, b, n_ab = a[keep], b[keep], n_ab[keep]
    observed = agree[a, b] / n_ab
    p_a, p_b = right_a[a, b] / n_ab, right_a[b, a] / n_ab
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(observed == 1.0, 1.0, (observed - expected) / (1 - expected))
    names = np.asarray(wide.columns, dtype=object)
    return pd.DataFrame({"observer_a": names[a], "observer_b": names[b], "n": n_ab.astype(int),
                         "observed": observed, "expected": expected,
                         "error_consistency": kappa, "accuracy_a": p_a, "accuracy_b": p_b})


def error_consistency(trials: pd.DataFrame) -> pd.DataFrame:
    """Error consistency of every pair of observers per dataset and condition, on the images
    both classified there (an observer's later answers to an image it saw again are left out)."""
    observers = observer_order(trials)
    kinds = trials.drop_duplicates("observer").set_index("observer")["kind"]
    frames = []
    for (dataset, condition), cell in trials.groupby(["dataset", "condition"], sort=False):
        pairs = _cell_pairs(cell, observers)
        frames.append(pairs.assign(condition=condition, dataset=dataset))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(PAIR_COLUMNS))
    out["pair"] = out["observer_a"].map(kinds) + "-" + out["observer_b"].map(kinds)
    levels = {c: i for i, c in enumerate(condition_order(out["condition"]))}
    out = out.sort_values(["dataset", "condition"], kind="stable",
                          key=lambda s: s.map(levels) if s.name == "condition" else s)
    return out[list(PAIR_COLUMNS)].reset_index(drop=True)


def _summarised(pairs: pd.DataFrame, exclude: Mapping[str, set[str]]) -> pd.DataFrame:
    """The rows whose condition the benchmark keeps (compared as numbers where both are)."""
    def same(a: str, b: str) -> bool:
        try:
            return float(a) == float(b)
        except ValueError:
            return a.lower() == b.lower()
    dropped = [any(same(str(c), x) for x in exclude.get(str(d), ()))
               for d, c in zip(pairs["dataset"], pairs["condition"], strict=True)]
    return pairs[~np.asarray(dropped, dtype=bool)]


def benchmark_summary(pairs: pd.DataFrame, exclude: Mapping[str, set[str]] | None = None
                      ) -> pd.DataFrame:
    """The benchmark's three metrics per observer against the people: squared accuracy
    difference, observed consistency and error consistency of each (observer, person) pair per
    condition, averaged over conditions, then people, then datasets (a person against the other
    people), with each metric's rank among the machines (among the people when there are no
    machines; ties share their mean rank) and the ranks' mean; `people (mean)` is the people
    as a group (each dataset's people averaged, then the datasets), the benchmark's human row.
    A person's row pools the datasets where the same observer name answered."""
    kept = _summarised(pairs, exclude or {})
    both = pd.concat([
        kept.rename(columns={"observer_a": "observer", "observer_b": "person",
                             "accuracy_a": "acc", "accuracy_b": "acc_person"}),
        kept.rename(columns={"observer_b": "observer", "observer_a": "person",
                             "accuracy_b": "acc", "accuracy_a": "acc_person"})])
    people = set(pairs.loc[pairs["pair"].str.startswith("human"), "observer_a"]) | set(
        pairs.loc[pairs["pair"].str.endswith("human"), "observer_b"])
    both = both[both["person"].isin(people)]
    both = both.assign(accuracy_difference=(both["acc"] - both["acc_person"]) ** 2,
                       observed_consistency=both["observed"])
    metrics = list(SUMMARY_METRICS)
    per_person = both.groupby(["observer", "dataset", "person"])[metrics].mean()
    per_dataset = per_person.groupby(["observer", "dataset"])[metrics].mean()
    out = per_dataset.groupby("observer")[metrics].mean()
    out["n_datasets"] = per_dataset.groupby("observer").size()
    out = out.reset_index()
    out.insert(1, "kind", np.where(out["observer"].isin(people), "human", "machine"))
    humans = per_dataset[per_dataset.index.get_level_values("observer").isin(people)]
    if not humans.empty:  # the benchmark's human row: people per dataset, then datasets
        pooled = humans.groupby("dataset")[metrics].mean()
        out = pd.concat([out, pd.DataFrame([{"observer": PEOPLE_ROW, "kind": "human",
                                             **pooled.mean().to_dict(),
                                             "n_datasets": len(pooled)}])], ignore_index=True)
    ranked = out["kind"] == ("machine" if (out["kind"] == "machine").any() else "human")
    for metric, lower_better in SUMMARY_METRICS.items():
        out[f"rank_{metric}"] = out.loc[ranked, metric].rank(ascending=lower_better)
    out["mean_rank"] = out[[f"rank_{m}" for m in metrics]].mean(axis=1)
    return out.sort_values(["mean_rank", "kind", "observer"]).reset_index(drop=True)


def shape_bias(trials: pd.DataFrame) -> pd.DataFrame:
    """Per observer on cue-conflict images (shape and texture categories differ): the share of
    shape answers among the answers that name the shape or the texture category."""
    names = trials["image"].astype(str).str.extract(CUE_CONFLICT)
    cue = trials.assign(texture_category=names["texture"])
    cue = cue[cue["texture_category"].notna() & (cue["category"] != cue["texture_category"])]
    columns = ["observer", "kind", "n", "shape", "texture", "shape_bias"]
    if cue.empty:
        return pd.DataFrame(columns=columns)
    cue = cue.assign(n=1, shape=cue["response"] == cue["category"],
                     texture=cue["response"] == cue["texture_category"])
    out = cue.groupby(["observer", "kind"])[["n", "shape", "texture"]].sum().reset_index()
    decided = out["shape"] + out["texture"]
    out["shape_bias"] = out["shape"] / decided.where(decided > 0)
    return out[columns].sort_values("shape_bias", ascending=False).reset_index(drop=True)
