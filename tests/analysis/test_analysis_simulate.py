"""Simulated datasets: schema, balance, reproducibility, recorded truth."""
from __future__ import annotations

import pandas as pd

from analysis import simulate
from experiments.study.schema import PARTICIPANT_COLUMNS, RESPONSE_COLUMNS, UNIT_COLUMNS


def test_simulated_tables_follow_the_schema_and_design(small):
    r = small.responses
    assert list(r.columns) == list(RESPONSE_COLUMNS)
    assert list(small.participants.columns) == list(PARTICIPANT_COLUMNS)
    assert list(small.units.columns) == list(UNIT_COLUMNS)
    main = r[(r["phase"] == "main") & ~r["is_catch"]]
    per_unit = main.groupby(["unit_id", "condition"]).size()
    assert (per_unit == 10).all() and len(per_unit) == 9 * 20 * 2
    assert not main.groupby("session_id")["unit_id"].apply(lambda s: s.duplicated().any()).any()
    assert (r[r["is_catch"]].groupby("session_id").size() == 5).all()
    assert not r.duplicated(["session_id", "trial_index"]).any()
    assert (r["correct"] == (r["choice"] == r["correct_choice"])).all()
    assert r["confidence"].between(1, 3).all()
    # practice comes first in each session and ends with an all-correct block
    first = r.groupby("session_id").head(5)
    assert (first["phase"] == "practice").all()


def test_same_seed_same_data_and_truth_recorded():
    a = simulate(models=2, units_per_model=10, responses_per_unit=4, seed=9)
    b = simulate(models=2, units_per_model=10, responses_per_unit=4, seed=9)
    c = simulate(models=2, units_per_model=10, responses_per_unit=4, seed=10)
    pd.testing.assert_frame_equal(a.responses, b.responses)
    assert not a.responses["correct"].equals(c.responses["correct"])
    assert a.truth["params"]["seed"] == 9
    truth = a.truth["models"]
    assert set(truth.columns) >= {"model", "condition", "score_population", "score_sample"}
    assert truth.set_index("condition").loc["natural", "score_population"].iloc[0] == \
        __import__("pytest").approx(0.85, abs=1e-6)


def test_careless_participants_answer_near_chance():
    ds = simulate(models=3, units_per_model=40, responses_per_unit=10, careless_fraction=0.2,
                  seed=12)
    r = ds.responses
    main = r[(r["phase"] == "main") & ~r["is_catch"]]
    acc = main.groupby("participant_id")["correct"].mean()
    careless = acc[acc.index.isin(ds.truth["careless"])]
    attentive = acc[~acc.index.isin(ds.truth["careless"])]
    assert len(careless) > 3
    assert abs(careless.mean() - 0.5) < 0.08 and attentive.mean() > 0.7


def test_unit_effects_shared_across_conditions_when_the_correlation_is_one():
    """corr = 1 (one effect per unit, a singular covariance) works; outside (-1, 1] is an error."""
    import pytest

    ds = simulate(models=2, units_per_model=30, responses_per_unit=2, condition_unit_corr=1.0,
                  unit_sd=1.0, seed=2)
    truth = ds.truth["units"].pivot_table(index="unit_id", columns="condition", values="p_true")
    # the same unit effect on top of each condition's intercept: the ranking of units agrees
    assert (truth["natural"].rank() == truth["synthetic"].rank()).all()
    with pytest.raises(ValueError, match="condition_unit_corr"):
        simulate(models=2, units_per_model=5, responses_per_unit=2, condition_unit_corr=1.5)


def test_the_package_gives_the_simulate_function_whatever_was_imported_first():
    """`from analysis import simulate` after another module imported analysis.simulate (the
    scaling module does) must still be the function, as the benchmarks and docs use it."""
    import subprocess
    import sys

    code = ("import analysis.scaling\nfrom analysis import simulate, mixed_model\n"
            "assert callable(simulate), simulate\nassert callable(mixed_model)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_simulated_tasks_are_filled_as_the_design_fills_them():
    """The simulation allocates units with the design's own rule: every task is full (no short
    last task), no unit twice in a task, each unit's count within 1 of responses_per_unit."""
    ds = simulate(models=2, units_per_model=10, responses_per_unit=3, trials_per_task=4,
                  catch_per_task=0, seed=4)
    main = ds.responses[(ds.responses["phase"] == "main") & ~ds.responses["is_catch"]]
    assert (main.groupby("session_id").size() == 4).all()
    assert not main.duplicated(["session_id", "unit_id"]).any()
    counts = main.groupby(["unit_id", "condition"]).size()
    assert counts.between(3, 4).all() and len(counts) == 2 * 10 * 2
    # the units table's target is each unit's planned answers, as a built study records it
    planned = ds.units[ds.units.role == "main"].set_index("unit_id")["target_responses"]
    assert planned.to_dict() == main.groupby("unit_id").size().to_dict()


def test_simulated_answer_keys_are_balanced_within_each_block_as_the_design_balances_them():
    """Like a planned task, each session's main block holds each answer key n // 2 or
    n // 2 + 1 times (the task type's balanced keys), not a coin flip per trial."""
    ds = simulate(models=2, units_per_model=20, responses_per_unit=4, trials_per_task=9,
                  catch_per_task=2, seed=5)
    main = ds.responses[ds.responses["phase"] == "main"]
    keys = main.groupby("session_id")["correct_choice"].value_counts().unstack(fill_value=0)
    assert (keys.max(axis=1) - keys.min(axis=1) <= 1).all()
