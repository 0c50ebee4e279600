"""Scores recover simulated truth; summaries count the right rows."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import (
    accuracy_by_confidence,
    apply_exclusions,
    main_trials,
    model_scores,
    participant_summary,
    rt_summary,
    simulate,
    unit_scores,
)


def test_unit_scores_use_only_main_non_catch_included_rows(small):
    flagged = apply_exclusions(small.responses, small.participants).responses
    units = unit_scores(flagged)
    expected = main_trials(flagged)
    assert units["n"].sum() == len(expected)
    assert not units["unit_id"].str.startswith(("catch/", "practice/")).any()
    row = units.iloc[0]
    rows = expected[(expected["unit_id"] == row["unit_id"])
                    & (expected["condition"] == row["condition"])]
    assert row["score"] == pytest.approx(rows["correct"].mean())
    assert row["ci_low"] <= row["score"] <= row["ci_high"]


def test_model_scores_recover_simulated_model_differences():
    offsets = {"googlenet": -0.8, "convnext_b": 0.8}
    ds = simulate(units_per_model=84, responses_per_unit=30, careless_fraction=0.0,
                  model_offsets=offsets, participant_sd=0.0, seed=21)
    ms = model_scores(unit_scores(ds.responses), n_resamples=2000, seed=0)
    merged = ms.merge(ds.truth["models"], on=["model", "condition"])
    covered = (merged["ci_low"] <= merged["score_population"]) & (
        merged["score_population"] <= merged["ci_high"])
    assert covered.mean() >= 0.8
    nat = merged[merged["condition"] == "natural"].set_index("model")
    assert nat.loc["convnext_b", "ci_low"] > nat.loc["googlenet", "ci_high"]
    assert ms.attrs["n_resamples"] == 2000 and ms.attrs["seed"] == 0


def test_participant_summary_is_mean_plus_minus_two_sem(small):
    ps = participant_summary(small.responses, by=("condition",))
    main = main_trials(small.responses)
    per = main.groupby(["condition", "participant_id"])["correct"].mean()
    nat = per.loc["natural"]
    row = ps.set_index("condition").loc["natural"]
    sem = nat.std(ddof=1) / np.sqrt(len(nat))
    assert row["score"] == pytest.approx(nat.mean())
    assert row["low_2sem"] == pytest.approx(nat.mean() - 2 * sem)
    assert row["high_2sem"] == pytest.approx(nat.mean() + 2 * sem)


def test_accuracy_rises_with_confidence(small):
    acc = accuracy_by_confidence(small.responses, n_resamples=500)
    pooled = acc[acc["model"] == "all"]
    for _, f in pooled.groupby("condition"):
        assert f.sort_values("confidence")["accuracy"].is_monotonic_increasing
        assert f["share"].sum() == pytest.approx(1.0)
    for _, f in acc.groupby(["model", "condition"]):
        assert f["share"].sum() == pytest.approx(1.0)


def test_accuracy_by_confidence_is_the_mean_of_unit_accuracies_with_a_bca_interval(small):
    """IMI: per confidence level the units' proportions correct are averaged (not the trials
    pooled) and scipy's BCa bootstrap over units gives the interval."""
    from scipy import stats as sps

    acc = accuracy_by_confidence(small.responses, n_resamples=2000, seed=1)
    main = main_trials(small.responses)
    cell = main[(main["condition"] == "synthetic") & (main["confidence"] == 1)]
    per_unit = cell.groupby("unit_id")["correct"].mean()
    row = acc[(acc["model"] == "all") & (acc["condition"] == "synthetic")
              & (acc["confidence"] == 1)].iloc[0]
    assert row["accuracy"] == pytest.approx(per_unit.mean())
    assert row["pooled_accuracy"] == pytest.approx(cell["correct"].mean())
    assert row["accuracy"] != pytest.approx(row["pooled_accuracy"], abs=1e-3)
    ref = sps.bootstrap((per_unit.to_numpy(float),), np.mean, n_resamples=2000,
                        method="BCa", random_state=1).confidence_interval
    assert row["ci_low"] == pytest.approx(ref.low, abs=0.01)
    assert row["ci_high"] == pytest.approx(ref.high, abs=0.01)
    assert row["n_units"] == len(per_unit) and row["n_trials"] == len(cell)


def test_rt_summary_medians(small):
    flagged = apply_exclusions(small.responses, small.participants).responses
    rt = rt_summary(flagged, by=("condition",))
    main = main_trials(flagged)
    expected = main.groupby("condition")["rt_ms"].median()
    got = rt.set_index("condition")["median_ms"]
    assert np.allclose(got.loc[expected.index], expected)
    assert (rt["median_wrong_ms"] > rt["median_correct_ms"]).all()
