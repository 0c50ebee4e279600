"""An analysis' result reads like a statsmodels result: its main tables as attributes and a
plain-text `summary()` with the numbers a methods section quotes."""
from __future__ import annotations

import pytest

from analysis.report import run_analysis
from analysis.simulate import simulate


@pytest.fixture(scope="module")
def result():
    dataset = simulate(models=2, units_per_model=8, responses_per_unit=4, trials_per_task=8,
                       seed=1)
    return run_analysis(dataset, n_resamples=100, power_sims=5, mixed=False)


def test_the_main_tables_are_attributes(result):
    assert result.model_scores is result.tables["model_scores"]
    assert result.unit_scores is result.tables["unit_scores"]
    assert result.excluded is result.tables["excluded_participants"]
    assert result.chance == 0.5 and result.task_type == "imi_2afc"
    with pytest.raises(AttributeError, match="no_such_table"):
        result.no_such_table  # noqa: B018


def test_the_summary_quotes_each_score_with_its_interval_and_the_exclusions(result):
    text = result.summary()
    first = result.model_scores.iloc[0]
    assert f"{first['score']:.3f} [{first['ci_low']:.3f}, {first['ci_high']:.3f}]" in text
    kept = int((~result.exclusions.participants["excluded"]).sum())
    total = len(result.exclusions.participants)
    assert f"participants: {kept} of {total} kept" in text
    assert "task type: imi_2afc (chance 0.5)" in text
    assert "mixed model: not fitted" in text


def test_analyze_writes_the_summary_beside_the_report(tmp_path):
    from analysis.report import analyze

    dataset = simulate(models=2, units_per_model=6, responses_per_unit=3, trials_per_task=6,
                       seed=2)
    result = analyze(dataset, tmp_path / "out", n_resamples=50, power_sims=5, mixed=False)
    assert (tmp_path / "out" / "summary.txt").read_text() == result.summary() + "\n"
