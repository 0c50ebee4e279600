"""Shifted queries in the analysis (issue 17 item 1): per unit and model the in-distribution and
shifted scores and their gap with intervals that find a planted gap; the main tables keep to
in-distribution queries; the mixed model takes query_distribution * condition; the report shows
it all."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.report import analyze, run_analysis
from analysis.scores import main_trials
from analysis.shifted import newcombe_difference
from analysis.simulate import simulate

SMALL = dict(models=2, units_per_model=24, responses_per_unit=12, trials_per_task=12,
             careless_fraction=0.0)


@pytest.fixture(scope="module")
def shifted_data():
    """A seeded study: the planted drop is found in each of its 4 model x condition cells here;
    over 30 seeds each cell's drop is found 88% of the time (benchmarks/RESULTS_shifted.md)."""
    return simulate(**SMALL, distributions={"in": 0.0, "blur-3": -1.0, "sketches": 0.0}, seed=2)


@pytest.fixture(scope="module")
def result(shifted_data):
    return run_analysis(shifted_data, n_resamples=1000, power_sims=20, mixed_rows=20_000)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:873, table II example: 56/70 vs 48/80, method 10
    gap, low, high = newcombe_difference(np.array([56.0]), np.array([70.0]), np.array([48.0]),
                                         np.array([80.0]))
    assert gap[0] == pytest.approx(0.2)
    assert (low[0], high[0]) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_the_planted_gap_is_found_and_the_null_one_is_not(result, shifted_data):
    gaps = result.tables["shifted_model_gaps"]
    truth = shifted_data.truth["units"]
    p_true = truth.pivot_table(index=["model", "unit_id", "condition"],
                               columns="query_distribution", values="p_true")
    for row in gaps.itertuples():
        if row.model == "(all models)":
            continue
        planted = p_true.xs((row.model, row.condition), level=("model", "condition"))
        expected = float((planted["in"] - planted[row.query_distribution]).mean())
        assert row.gap_low <= expected <= row.gap_high, row
        if row.query_distribution == "blur-3":
            assert row.gap_low > 0, row  # a drop of about 0.15 is told apart from none
        else:
            assert row.gap_low < 0 < row.gap_high, row
    units = result.tables["shifted_unit_gaps"]
    assert set(units.query_distribution) == {"blur-3", "sketches"}
    assert (units.ci_low <= units.gap).all() and (units.gap <= units.ci_high).all()
    assert units.gap.is_monotonic_decreasing


def test_main_scores_keep_to_in_distribution_queries(result, shifted_data):
    kept = main_trials(result.exclusions.responses)
    answered = kept.groupby("query_distribution").size()
    assert result.tables["unit_scores"].n.sum() == answered["in"]  # in-distribution answers only
    assert result.tables["model_scores"].n_responses.sum() == answered["in"]
    assert result.settings["scored_distribution"] == "in"
    assert result.settings["query_distributions"] == ["in", "blur-3", "sketches"]


def test_the_mixed_model_takes_query_distribution_times_condition(result):
    fixed = result.tables["mixed_model_fixed"].set_index("term")
    assert result.settings["mixed_factors"] == ["condition", "difficulty", "query_distribution",
                                                "condition:query_distribution"]
    shift = fixed.loc["query_distribution[blur-3]"]
    assert shift.ci_low <= -1.0 <= shift.ci_high and shift.ci_high < 0
    assert fixed.loc["query_distribution[sketches]"].ci_low < 0 < \
        fixed.loc["query_distribution[sketches]"].ci_high
    interaction = fixed.loc["condition[synthetic]:query_distribution[blur-3]"]
    assert interaction.ci_low < 0 < interaction.ci_high  # no interaction was planted


def test_a_study_without_shifted_queries_has_no_such_section(tmp_path):
    plain = simulate(**SMALL, seed=6)
    done = analyze(plain, tmp_path / "plain", n_resamples=300, power_sims=10, mixed=False)
    assert "shifted_model_gaps" not in done.tables
    assert "Shifted queries" not in (tmp_path / "plain" / "report.html").read_text()


def test_the_report_shows_the_gaps(shifted_data, tmp_path):
    analyze(shifted_data, tmp_path / "report", n_resamples=300, power_sims=10, mixed=False)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Shifted queries" in page and "Newcombe" in page
    assert (tmp_path / "report" / "figures" / "shifted.png").is_file()
    assert (tmp_path / "report" / "tables" / "shifted_unit_gaps.csv").is_file()
