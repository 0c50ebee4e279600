"""The analysis follows the task type recorded in the dataset: its paired comparisons, the mixed
model's factors and reference condition, its chance level and its own tables."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import simulate
from analysis.load import Dataset
from analysis.report import analyze, run_analysis
from tests.experiments.test_tasks import YesNo


class CueTask(YesNo):
    """A test-only type: its own conditions, one factor, a paired comparison against no cue."""

    name = "cue_task"
    conditions = ("cue", "nocue")
    difficulties = ("easy", "p95")
    factors = ("condition",)
    reference_condition = "nocue"
    comparisons = (("cue", "nocue"),)


@pytest.fixture
def cue_dataset(registered):
    """A simulated study relabelled as the cue task: cue 92 %, no cue 60 %, two difficulties
    that the type does not model."""
    registered("tests.analysis.test_analysis_task_types:CueTask")
    ds = simulate(models=3, units_per_model=12, responses_per_unit=10, seed=11,
                  accuracy={"natural": 0.92, "synthetic": 0.6})
    r = ds.responses.copy()
    r["condition"] = r["condition"].map({"natural": "cue", "synthetic": "nocue"})
    r["difficulty"] = np.where(np.random.default_rng(0).random(len(r)) < 0.5, "easy", "p95")
    return Dataset(responses=r, participants=ds.participants, units=ds.units,
                   models=ds.models, settings=[{"key": "cue@1", "spec": {
                       "task": {"type": "cue_task"}, "catch_trials_per_task": 5}}])


def test_the_report_compares_the_task_types_conditions_with_its_factors(cue_dataset, tmp_path):
    result = analyze(cue_dataset, tmp_path / "report", n_resamples=200, power_sims=10,
                     rules=[])
    t = result.tables
    assert "natural_vs_synthetic" not in t
    paired = t["cue_vs_nocue"].query("model == 'all'")  # one row per difficulty
    assert len(paired) == 2 and (paired["mean_diff"] > 0.05).all() and (paired["ci_low"] > 0).all()
    terms = list(result.mixed.fixed["term"])
    assert "condition[cue]" in terms  # against the type's reference, no cue
    assert not any(term.startswith("difficulty") for term in terms)  # not one of its factors
    assert result.settings["task_type"] == "cue_task"
    html = (tmp_path / "report" / "report.html").read_text()
    assert "cue vs nocue" in html and "natural vs synthetic" not in html
    assert (tmp_path / "report" / "figures" / "cue_vs_nocue.png").stat().st_size > 1000


def test_imis_report_keeps_its_comparison_and_difficulty_effects(small):
    result = run_analysis(small, n_resamples=200, power_sims=10, mixed_rows=3000)
    assert not result.tables["natural_vs_synthetic"].empty
    assert result.settings["reference_condition"] == "natural"
    terms = set(result.mixed.fixed["term"])
    assert "condition[synthetic]" in terms
