"""Machine vs human (issue 16 item 3): the unit table joins the very cells both answered, the
correlation and noise-ceiling intervals cover their truth at about the nominal rate on simulated
data (a small check here; benchmarks/coverage_machine.py runs the larger one), the model ranking
and the disagreements name what a reader looks for."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from analysis.machine import (
    _reliability,
    correlation_interval,
    machine_vs_human,
    noise_ceiling,
    split_clients,
)


def simulate_units(rng: np.random.Generator, n_units: int, trials: int, models: int = 3,
                   machine_noise: float = 0.6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """People answer each unit `trials` times with its true p; the machine's unit score is a
    noisy function of the same truth (seeded)."""
    truth = rng.normal(1.0, 0.8, n_units)
    unit_ids = [f"m{u % models}/l/{u}" for u in range(n_units)]
    model = [f"m{u % models}" for u in range(n_units)]
    base = {"phase": "main", "is_catch": False, "condition": "natural", "difficulty": "easy"}
    human = pd.DataFrame({
        **base, "client": "web", "model": np.repeat(model, trials),
        "unit_id": np.repeat(unit_ids, trials),
        "participant_id": [f"P{i}" for i in range(n_units * trials)],
        "correct": rng.random(n_units * trials) < np.repeat(expit(truth), trials)})
    machine = pd.DataFrame({
        **base, "client": "machine", "model": model, "unit_id": unit_ids, "observer": "mis",
        "backbone": "b", "p_correct": expit(truth + rng.normal(0, machine_noise, n_units)),
        "correct": True, "participant_id": "M"})
    return human, machine


def _scores(human: pd.DataFrame) -> np.ndarray:
    return human.groupby("unit_id", sort=False)["correct"].mean().to_numpy()


def test_the_unit_table_joins_the_cells_both_answered_and_reports_every_table():
    rng = np.random.default_rng(0)
    human, machine = simulate_units(rng, 60, 20)
    both = pd.concat([human, machine[machine.unit_id != "m0/l/0"]], ignore_index=True)
    people, bots = split_clients(both)
    tables = machine_vs_human(people, bots, n_resamples=300)
    units = tables["machine_units"]
    assert len(units) == 59 and units["n_human"].eq(20).all()
    assert units["observer"].unique().tolist() == ["mis (b)"]
    corr = tables["machine_correlations"].set_index("model").loc["all"]
    assert 0.3 < corr["spearman"] < 0.9 and corr["spearman_low"] < corr["spearman"]
    assert set(tables["machine_correlations"]["model"]) == {"all", "m0", "m1", "m2"}
    ceiling = tables["machine_noise_ceiling"].iloc[0]
    assert 0 < ceiling["ci_low"] < ceiling["reliability"] < ceiling["ci_high"] < 1
    ranking = tables["machine_model_ranking"].iloc[0]
    assert ranking["n_models"] == 3 and -1 <= ranking["kendall_tau"] <= 1
    gaps = tables["machine_disagreements"]
    assert len(gaps) == 20 and gaps["rank_gap"].abs().is_monotonic_decreasing


def test_the_correlation_interval_covers_the_population_value():
    rng = np.random.default_rng(1)
    big_h, big_m = simulate_units(rng, 100_000, 20)
    truth = stats.spearmanr(big_m["p_correct"], _scores(big_h)).statistic
    covered = []
    for _ in range(150):
        human, machine = simulate_units(rng, 80, 20)
        found = correlation_interval(machine["p_correct"], _scores(human), 1000, rng=rng)
        covered.append(found["spearman_low"] <= truth <= found["spearman_high"])
    assert 0.89 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_the_noise_ceiling_interval_covers_the_population_reliability():
    rng = np.random.default_rng(2)
    big, _ = simulate_units(rng, 40_000, 20)
    codes = big.groupby("unit_id", sort=False).ngroup().to_numpy()
    truth = _reliability(codes, big["correct"].to_numpy(float), 5, rng)
    covered = []
    for seed in range(40):
        human, _ = simulate_units(rng, 80, 20)
        row = noise_ceiling(human, n_splits=10, n_resamples=200, seed=seed).iloc[0]
        covered.append(row["ci_low"] <= truth <= row["ci_high"])
    assert np.mean(covered) >= 0.85, np.mean(covered)


def test_no_shared_units_gives_an_empty_comparison_not_an_error():
    rng = np.random.default_rng(3)
    human, machine = simulate_units(rng, 10, 5)
    tables = machine_vs_human(human, machine.assign(unit_id="other"))
    assert list(tables) == ["machine_units"] and tables["machine_units"].empty


def test_too_few_units_give_no_correlation():
    assert np.isnan(correlation_interval(np.arange(2), np.arange(2))["spearman"])


def test_analyze_compares_a_machine_observer_with_the_people(small, small_folder, tmp_path,
                                                             capsys):
    """`interpsy analyze HUMAN --machine DIR`: the report gains the comparison; the people's
    scores are unchanged by the machine's rows."""
    from analysis.cli import analyze  # noqa: F401  (the command is reached through main)
    from analysis.load import Dataset
    from experiments.cli import main

    rng = np.random.default_rng(4)
    people = small.responses
    truth = people.groupby("unit_id")["correct"].mean()
    machine = people.assign(client="machine", observer="mis", backbone="b",
                            participant_id="M-mis-b")
    machine["p_correct"] = expit(4 * (machine["unit_id"].map(truth) - 0.5)
                                 + rng.normal(0, 0.3, len(machine)))
    Dataset(responses=machine).save(tmp_path / "machine")
    assert main(["analyze", str(small_folder), "--bootstrap", "100", "--mixed-rows", "2000",
                 "--out", str(tmp_path / "both"), "--machine", str(tmp_path / "machine")]) == 0
    html = (tmp_path / "both" / "report.html").read_text()
    assert "Machine observers vs people" in html and "machine_vs_human.png" in html
    corr = pd.read_csv(tmp_path / "both" / "tables" / "machine_correlations.csv")
    overall = corr[(corr.model == "all")]
    assert (overall["spearman"] > 0.5).all() and (overall["n_units"] > 100).all()
    # the people's analysis holds the people only
    flags = pd.read_csv(tmp_path / "both" / "tables" / "participant_flags.csv")
    assert set(flags.participant_id) == set(people.participant_id)
    scores = pd.read_csv(tmp_path / "both" / "tables" / "unit_scores.csv")
    kept = pd.read_csv(tmp_path / "both" / "tables" / "excluded_participants.csv")
    human = people[~people.participant_id.isin(kept.participant_id)
                   & (people.phase == "main") & ~people.is_catch]
    assert scores["n"].sum() == len(human)
    assert main(["analyze", str(small_folder), "--out", str(tmp_path / "x"), "--machine",
                 str(small_folder)]) == 2
    assert "no machine observer's rows" in capsys.readouterr().err


def test_units_chosen_by_machine_score_are_compared_by_group():
    """The interventional design: people's unit scores per selection group, and the easiest
    against the hardest group."""
    from analysis.machine import selection_groups

    rng = np.random.default_rng(5)
    groups = ["easiest"] * 15 + ["hardest"] * 15 + ["random"] * 10
    truth = {"easiest": 0.85, "hardest": 0.6, "random": 0.72}
    units = pd.DataFrame({"unit_id": [f"u{i}" for i in range(40)], "selection_group": groups,
                          "machine_score": [0.9] * 15 + [0.55] * 15 + [0.7] * 10})
    unit_scores = pd.DataFrame({"unit_id": units.unit_id, "condition": "natural",
                                "score": [rng.binomial(30, truth[g]) / 30 for g in groups]})
    table = selection_groups(unit_scores, units, n_resamples=500).set_index("group")
    assert table.loc["easiest", "ci_low"] > table.loc["hardest", "ci_high"]
    contrast = table.loc["easiest vs hardest"]
    assert contrast["brunner_munzel_p"] < 0.001 and contrast["p_easiest_higher"] > 0.9
    assert contrast["human_score"] == pytest.approx(0.25, abs=0.06)
    assert selection_groups(unit_scores, units.assign(selection_group=None)).empty


def test_two_runs_of_one_observer_stay_apart():
    """Two `interpsy observe` folders of the same observer and backbone (e.g. other alphas) are
    two rows of the comparison, not one average."""
    from analysis.machine import observer_labels, unit_table

    rng = np.random.default_rng(6)
    human, machine = simulate_units(rng, 12, 10)
    both = pd.concat([machine.assign(machine_source="alpha-1"),
                      machine.assign(machine_source="alpha-8", p_correct=0.9)])
    assert set(observer_labels(both)) == {"mis (b) from alpha-1", "mis (b) from alpha-8"}
    table = unit_table(human, both)
    assert len(table) == 24
    assert table.groupby("observer").machine_score.mean()["mis (b) from alpha-8"] == 0.9
    assert set(observer_labels(machine)) == {"mis (b)"}


def test_one_response_per_unit_gives_no_reliability_and_no_crash():
    """A pilot with one answer per unit: no split halves exist; the table says so."""
    rng = np.random.default_rng(4)
    human, machine = simulate_units(rng, 30, 1)
    tables = machine_vs_human(human, machine, n_resamples=200, seed=0)
    ceiling = tables["machine_noise_ceiling"].iloc[0]
    assert np.isnan(ceiling["reliability"]) and "no split-half reliability" in ceiling["note"]
    assert not tables["machine_correlations"].empty


def test_a_reliability_is_never_printed_outside_zero_to_one():
    """Units at chance answered twice: the split halves anticorrelate and Spearman-Brown
    averages to -1.65 here (seed 13); that is reported as unreliable, not as a reliability."""
    rng = np.random.default_rng(13)
    human = pd.DataFrame({"unit_id": np.repeat([f"m/l/{u}" for u in range(20)], 2),
                          "correct": rng.random(40) < 0.5}).assign(
        model="m", phase="main", is_catch=False, condition="natural", difficulty="easy",
        client="web", participant_id=lambda f: "P" + f.index.astype(str))
    row = noise_ceiling(human, n_splits=10, n_resamples=100, seed=0).iloc[0]
    assert np.isnan(row["reliability"]) and "not reliable" in row["note"]
    for value in (row["ci_low"], row["ci_high"]):
        assert np.isnan(value) or 0 <= value <= 1
    assert np.isnan(row["ceiling_r"])


def test_halves_without_spread_give_no_reliability_and_no_warnings():
    """Every unit answered correctly every time (the calibration demo's detectors, ten people):
    the halves' scores are constant, no Spearman r exists; the table says so without numpy's
    "Mean of empty slice" or scipy's constant-input warning on the user's screen."""
    import warnings

    human = pd.DataFrame({"unit_id": np.repeat([f"m/l/{u}" for u in range(12)], 4),
                          "correct": True}).assign(
        model="m", phase="main", is_catch=False, condition="natural", difficulty="easy",
        client="web", participant_id=lambda f: "P" + f.index.astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = noise_ceiling(human, n_splits=10, n_resamples=100, seed=0).iloc[0]
    assert np.isnan(row["reliability"]) and np.isnan(row["ceiling_r"])
    assert row["note"], row
