"""Calibration units in the analysis (issue 17 item 3): the psychometric fit recovers a planted
resolution (m50) per explanation type with an interval that holds it, and the order check gives
rho near 1 to a score that follows the construction and near 0 to one that does not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import fit_psychometric, order_agreement, psychometric, psychometric_p
from experiments.study.calibration_units import calibration_units

PLANTED = {"natural": 0.6, "synthetic": 0.3}  # m50 per explanation type


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for condition, m50 in PLANTED.items():
        for person in range(60):
            for unit in calibration_units():
                p = {"detector": 0.92, "control": 0.5}.get(
                    unit.kind, float(psychometric_p(unit.mixing or 0.0, m50, 0.08, 0.05)))
                for _ in range(4):
                    rows.append({"participant_id": f"{condition}-{person}",
                                 "condition": condition, "unit_id": unit.unit_id,
                                 "phase": "main", "is_catch": False,
                                 "correct": bool(rng.random() < p)})
    return pd.DataFrame(rows)


def test_the_fit_recovers_a_noiseless_curve():
    m = np.repeat(np.linspace(0, 1, 11), 4000)
    p = psychometric_p(m, 0.45, 0.1, 0.03)
    correct = np.random.default_rng(0).random(len(m)) < p
    m50, width, lapse = fit_psychometric(m, correct)
    assert m50 == pytest.approx(0.45, abs=0.02) and width == pytest.approx(0.1, abs=0.02)
    assert lapse == pytest.approx(0.03, abs=0.015)


def test_the_resolution_of_each_explanation_type_is_recovered(answers):
    table = psychometric(answers, n_resamples=100).set_index("condition")
    for condition, m50 in PLANTED.items():
        row = table.loc[condition]
        assert row.m50_low <= m50 <= row.m50_high, row
    assert table.loc["synthetic", "m50_high"] < table.loc["natural", "m50_low"]
    assert table.loc["natural", "p_correct_m0"] > table.loc["natural", "p_correct_m1"]


def test_a_score_that_follows_the_construction_orders_the_units(answers):
    known = {u.unit_id: u.known_order for u in calibration_units() if u.known_order is not None}
    rng = np.random.default_rng(1)
    faithful = pd.DataFrame({"unit_id": list(known), "source": "faithful",
                             "condition": "natural",
                             "score": [0.5 + 0.45 * v + rng.normal(0, 0.01) for v in
                                       known.values()]})
    shuffled = faithful.assign(source="shuffled", score=rng.permutation(faithful.score))
    table = order_agreement(pd.concat([faithful, shuffled]), n_resamples=300).set_index("source")
    assert table.loc["faithful", "spearman_rho"] > 0.85  # ties among the detectors
    assert table.loc["faithful", "ci_low"] > 0.6
    assert table.loc["shuffled", "ci_low"] < 0.3


def test_the_report_shows_calibration_units(answers, tmp_path):
    from analysis.load import Dataset
    from analysis.report import analyze
    from analysis.simulate import simulate
    from experiments.study.schema import coerce

    base = simulate(models=2, units_per_model=12, responses_per_unit=6, trials_per_task=12,
                    careless_fraction=0.0, seed=2)
    template = base.responses[base.responses.phase == "main"].iloc[0]
    extra = answers.assign(**{c: template[c] for c in base.responses.columns
                              if c not in answers.columns})
    extra = extra.assign(model="calibration-net",
                         layer=extra.unit_id.str.split("/").str[1],
                         channel=extra.unit_id.str.split("/").str[2].astype(int),
                         session_id="S" + extra.participant_id, task_id="C" + extra.condition,
                         trial_index=extra.groupby("participant_id").cumcount(),
                         correct_choice=np.where(np.arange(len(extra)) % 2, "a", "b"))
    extra["choice"] = np.where(extra.correct, extra.correct_choice,
                               np.where(extra.correct_choice == "a", "b", "a"))
    responses = coerce(pd.concat([base.responses, extra], ignore_index=True), "responses")
    dataset = Dataset(responses=responses, participants=None, units=None, trials=None,
                      models=base.models, source="test")
    result = analyze(dataset, tmp_path, n_resamples=100, power_sims=10, mixed=False)
    order = result.tables["calibration_order"].set_index(["source", "condition"])
    assert order.loc[("people", "natural"), "spearman_rho"] > 0.5
    page = (tmp_path / "report.html").read_text()
    assert "Calibration units" in page and (tmp_path / "figures" / "calibration.png").is_file()


def test_practice_rows_and_excluded_people_stay_out_of_the_fit(answers):
    clean = psychometric(answers.assign(excluded=False), n_resamples=20)
    mixtures = answers[answers.unit_id.str.contains("/mixtures/")]
    practice = mixtures.assign(phase="practice", correct=False)
    careless = mixtures.assign(participant_id="careless-" + mixtures.participant_id,
                               correct=False)
    noisy = pd.concat([answers.assign(excluded=False), practice.assign(excluded=False),
                       careless.assign(excluded=True)], ignore_index=True)
    pd.testing.assert_frame_equal(psychometric(noisy, n_resamples=20), clean)


def test_an_explanation_at_chance_everywhere_has_its_resolution_at_the_smallest_knob():
    m = np.repeat(np.linspace(0, 1, 5), 5)  # five people at chance, as a small demo gets
    correct = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0])
    m50, _, _ = fit_psychometric(m, correct)
    assert 0 <= m50 < 0.1


def test_a_flat_curve_gets_no_resolution():
    """The calibration demo's synthetic condition once gave 2, 2, 3, 2, 2 of 4 correct over
    the five knobs: the fit put m50 at the largest knob (the best resolution there is) with a
    lapse of 0.4 and an endless width, where the explanation resolved nothing. A curve as flat
    at another accuracy (3 of 4 everywhere) fits every m50 alike too. Neither gets an m50."""
    import warnings

    from analysis.calibration import flat_test

    m = np.repeat(np.linspace(0, 1, 5), 4)
    rows = []
    for condition, correct in (("chance", [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0,
                                           1, 1, 0, 0]),
                               ("flat", [1, 1, 1, 0] * 5)):
        rows += [{"participant_id": f"{condition}-{i % 4}", "condition": condition,
                  "unit_id": f"calibration-net/mixtures/{int(k * 4)}", "phase": "main",
                  "is_catch": False, "correct": bool(c)} for i, (k, c) in enumerate(zip(m, correct))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the user's screen either
        table = psychometric(pd.DataFrame(rows), n_resamples=20).set_index("condition")
    for condition in ("chance", "flat"):
        row = table.loc[condition]
        assert np.isnan(row.m50) and np.isnan(row.m50_low) and row.flat_p > 0.05, row
        assert row.note.startswith("not resolved"), row.note
    steep = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    assert flat_test(m, steep, fit_psychometric(m, steep)) < 0.05  # a real fall is resolved


def test_the_order_table_says_how_many_query_pairs_a_unit_score_rests_on():
    """At the demo's 5 batches a unit's score rests on 5 query pairs: the table gives their
    number and a unit's standard error over them (repeats of one pair count once)."""
    from analysis.calibration import unit_resolution

    values = {"u1": [1, 0, 1, 1, 0], "u2": [0.5, 0.5, 1, 0, 1]}
    rows = pd.DataFrame([{"source": "people", "condition": "natural", "unit_id": unit,
                          "query_a": f"{unit}-{i}a", "query_b": f"{unit}-{i}b", "correct": v}
                         for unit, vs in values.items() for i, v in enumerate(vs)
                         for _ in range(2)])  # every pair shown twice
    table = unit_resolution(rows, "correct").set_index(["source", "condition"])
    expected = np.median([np.std(v, ddof=1) / np.sqrt(5) for v in values.values()])
    assert table.loc[("people", "natural"), "pairs_per_unit"] == 5
    assert table.loc[("people", "natural"), "unit_se"] == pytest.approx(expected)
