"""Simulated participants on calibration units (issue 17 items 3 and 5): their answers follow
the units' construction: chance on the random controls, near ceiling on the detectors, and on
the mixtures a psychometric function whose resolution `interpsy analyze` recovers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import fit_psychometric
from experiments.simulated_participants import (
    PLANTED_LAPSE,
    PLANTED_M50,
    Observer,
    construction_p_correct,
)
from experiments.study.calibration_units import calibration_units
from experiments.tasks import get_task

KNOWN = construction_p_correct(["natural", "synthetic"])
OPTIONS = get_task("imi_2afc").words()["options"]
UNITS = {u.unit_id: u for u in calibration_units()}


def _answers(unit_id: str, condition: str, n: int, seed: int = 0) -> np.ndarray:
    """n answers of one attentive simulated participant to trials of one unit."""
    observer = Observer(seed=seed, known=KNOWN)
    trial = {"stimulus": {"query_a": "qa", "query_b": "qb"}}
    activation = {"qa": 2.0, "qb": 1.0}  # query a is the right answer
    return np.array([observer.choose(trial, OPTIONS, activation, {}, condition, {"qa": unit_id})[0] == "a"
                     for _ in range(n)])


def test_controls_are_answered_at_chance_and_detectors_near_ceiling():
    for unit in calibration_units():
        correct = _answers(unit.unit_id, "natural", 4000).mean()
        if unit.kind == "control":
            assert correct == pytest.approx(0.5, abs=0.03), unit
        elif unit.kind == "detector":
            assert correct == pytest.approx(1 - PLANTED_LAPSE, abs=0.015), unit
    shortcut = "calibration-net/shortcuts/0"
    assert _answers(shortcut, "natural", 4000).mean() > 0.93
    assert _answers(shortcut, "synthetic", 4000).mean() == pytest.approx(0.5, abs=0.03)


def test_the_planted_resolution_is_recovered_from_their_answers():
    mixtures = [u for u in UNITS.values() if u.kind == "mixture"]
    for condition, planted in PLANTED_M50.items():
        if condition not in ("natural", "synthetic"):
            continue
        rows = [(u.mixing, c) for i, u in enumerate(mixtures)
                for c in _answers(u.unit_id, condition, 1500, seed=i)]
        m, correct = np.array(rows, dtype=float).T
        m50, _, _ = fit_psychometric(m, correct)
        assert m50 == pytest.approx(planted, abs=0.07), condition


def test_confidence_rises_with_the_evidence():
    observer = Observer(seed=1, known=KNOWN)
    trial = {"stimulus": {"query_a": "qa", "query_b": "qb"}}
    answers = pd.DataFrame([observer.choose(trial, OPTIONS, {"qa": 2.0, "qb": 1.0}, {},
                                            "natural", {"qa": unit}) for unit in
                            ["calibration-net/detectors/0"] * 500
                            + ["calibration-net/controls/0"] * 500], columns=["choice", "conf"])
    detector, control = answers.conf[:500].mean(), answers.conf[500:].mean()
    assert detector > control + 0.5


def test_with_three_options_the_highest_query_wins_and_chance_is_a_third():
    """A 3-AFC trial: the attentive participant picks the query the unit responds to most; the
    careless one spreads over all three options."""
    options = get_task("imi_3afc").words()["options"]
    trial = {"stimulus": {"query_a": "qa", "query_b": "qb", "query_c": "qc"}}
    activation = {"qa": 0.0, "qb": 0.0, "qc": 5.0}
    attentive = Observer(seed=2)
    picks = [attentive.choose(trial, options, activation, {}, "natural", {})[0]
             for _ in range(300)]
    assert picks.count("c") > 290
    careless = Observer(seed=3, careless=True)
    picks = pd.Series([careless.choose(trial, options, activation, {}, "natural", {})[0]
                       for _ in range(3000)])
    assert set(picks) == {"a", "b", "c"}
    assert picks.value_counts(normalize=True).min() > 0.3
