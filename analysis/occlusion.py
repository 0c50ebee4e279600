"""The occlusion task's reference rows (Zimmermann, Borowski et al. 2021): the paper's simple
baselines, answered from the stored stimuli, their accuracy, and Cohen's kappa between each
condition's answers and each baseline's.

Baselines (each picks the image it predicts the unit responds to more strongly):
- `centre`: the image whose occluder lies farther from the image centre (hides less of the
  object, which tends to sit in the middle);
- `variance`: the image whose occluder covers the patch of lower pixel variance (hides less
  structure).
An unoccluded image (the base, in catch trials) counts as occluded nowhere: both pick it.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import cohens_kappa

BASELINES = ("centre", "variance")


def _occluder(text: object) -> dict | None:
    return None if text is None or pd.isna(text) else json.loads(str(text))


def _centre_distance(occluder: dict | None) -> float:
    if occluder is None:
        return np.inf
    middle = occluder["side"] / 2
    cy, cx = occluder["y"] + occluder["size"] / 2, occluder["x"] + occluder["size"] / 2
    return float(np.hypot(cy - middle, cx - middle))


def _covered_variance(occluder: dict | None) -> float:
    return -np.inf if occluder is None else float(occluder["variance"])


def baseline_choices(responses: pd.DataFrame) -> pd.DataFrame:
    """Per response row: each baseline's choice (`a` / `b`) and whether it is correct."""
    a = responses["occluder_a"].map(_occluder)
    b = responses["occluder_b"].map(_occluder)
    out = pd.DataFrame(index=responses.index)
    farther_a = a.map(_centre_distance) > b.map(_centre_distance)
    out["centre"] = np.where(farther_a, "a", "b")
    calmer_a = a.map(_covered_variance) < b.map(_covered_variance)
    out["variance"] = np.where(calmer_a, "a", "b")
    for name in BASELINES:
        out[f"{name}_correct"] = out[name] == responses["correct_choice"].astype(str)
    return out


def baseline_scores(responses: pd.DataFrame) -> pd.DataFrame:
    """Each baseline's proportion correct on the scored trials, per condition and overall, with
    the people's proportion correct on the same trials beside it."""
    choices = baseline_choices(responses)
    frame = responses.assign(**{f"{n}_correct": choices[f"{n}_correct"] for n in BASELINES})
    rows = []
    groups = [("all", frame), *((c, g) for c, g in frame.groupby("condition", sort=True))]
    for condition, group in groups:
        row = {"condition": condition, "n_trials": len(group),
               "people": float(group["correct"].mean()) if len(group) else np.nan}
        for name in BASELINES:
            row[name] = float(group[f"{name}_correct"].mean()) if len(group) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def agreement(responses: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa between the people's answers (`a`/`b`) in each condition and each
    baseline's, over the same trials, with its standard error and 95 % interval."""
    choices = baseline_choices(responses)
    rows = []
    for condition, group in responses.groupby("condition", sort=True):
        for name in BASELINES:
            table = pd.crosstab(group["choice"].astype(str), choices.loc[group.index, name])
            table = table.reindex(index=["a", "b"], columns=["a", "b"], fill_value=0)
            row = {"condition": condition, "baseline": name, "n_trials": len(group),
                   "kappa": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan}
            if len(group) >= 2:
                with np.errstate(all="ignore"):  # one answer only: kappa is undefined (NaN)
                    result = cohens_kappa(table.to_numpy())
                row.update(kappa=float(result.kappa), se=float(result.std_kappa),
                           ci_low=float(result.kappa_low), ci_high=float(result.kappa_upp))
            rows.append(row)
    return pd.DataFrame(rows)
