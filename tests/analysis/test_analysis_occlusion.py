"""The occlusion task's reference rows: the paper's centre and variance baselines answered from
the stored occluders, their accuracy beside the people's, and Cohen's kappa per condition."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.tasks.occlusion.analysis import (
    agreement,
    baseline_choices,
    baseline_scores,
    published_comparison,
)


def _occluder(y: int, x: int, variance: float, size: int = 90, side: int = 224) -> str:
    return json.dumps({"y": y, "x": x, "size": size, "side": side, "variance": variance})


def _rows() -> pd.DataFrame:
    corner, centre = _occluder(0, 0, 900.0), _occluder(67, 67, 50.0)
    return pd.DataFrame({
        "condition": ["natural"] * 4 + ["none"] * 4,
        "occluder_a": [corner, centre, corner, None, corner, centre, centre, corner],
        "occluder_b": [centre, corner, centre, centre, centre, corner, corner, centre],
        "correct_choice": ["a", "b", "a", "a", "b", "a", "b", "a"],
        "choice": ["a", "b", "a", "a", "b", "a", "b", "b"],
        "correct": [True, True, True, True, True, True, True, False],
    })


def test_the_baselines_pick_what_the_paper_says():
    choices = baseline_choices(_rows())
    # centre: the occluder farther from the centre hides less; variance: the calmer patch
    assert list(choices.centre[:3]) == ["a", "b", "a"]
    assert list(choices.variance[:3]) == ["b", "a", "b"]
    assert (choices.centre[3], choices.variance[3]) == ("a", "a")  # unoccluded base wins both
    scores = baseline_scores(_rows()).set_index("condition")
    assert scores.loc["all", "n_trials"] == 8 and scores.loc["all", "people"] == 7 / 8
    assert scores.loc["natural", "centre"] == 1.0 and scores.loc["natural", "variance"] == 0.25


def test_kappa_is_cohens_on_the_same_trials():
    table = agreement(_rows()).set_index(["condition", "baseline"])
    # natural: people = a b a a, centre = a b a a: perfect agreement
    assert table.loc[("natural", "centre"), "kappa"] == pytest.approx(1.0)
    # none: people = b a b b, centre = a b b a -> p_o = 1/4, p_e = (3/4*2/4 + 1/4*2/4) = 1/2
    assert table.loc[("none", "centre"), "kappa"] == pytest.approx((0.25 - 0.5) / (1 - 0.5))
    assert table.loc[("none", "centre"), "n_trials"] == 4
    assert np.isfinite(table.loc[("none", "centre"), "se"])


def test_each_condition_is_set_beside_the_papers_result():
    """Mean +- 2 SEM over participants per condition against the paper's MTurk numbers."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(40):
        for condition, accuracy in (("none", 0.6), ("synthetic", 0.9)):
            for correct in rng.random(18) < accuracy:
                rows.append({"participant_id": f"P{p}", "condition": condition,
                             "phase": "main", "is_catch": False, "correct": bool(correct),
                             "model": "m", "difficulty": "easy"})
    table = published_comparison(pd.DataFrame(rows)).set_index("condition")
    assert table.loc["none", "inside"] and not table.loc["synthetic", "inside"]
    assert table.loc["synthetic", "difference"] == pytest.approx(0.9 - 0.67, abs=0.04)
    assert table.loc["natural", "n_participants"] == 0 and not table.loc["natural", "inside"]


# The cited version's own words (ICML 2021 XAI workshop, arXiv:2106.12447v1, abstract)
WORKSHOP_TEXT = ("feature visualizations 67 \u00b1 4 %; no visualizations 60 \u00b1 3 %; other "
                 "visualizations (e.g. natural dataset samples) 66 \u00b1 3 % to 67 \u00b1 3 %")


def test_the_published_table_holds_exactly_what_the_cited_text_prints():
    """Values per condition only where the text gives one; never a range's midpoint."""
    import re

    table = published_comparison(pd.DataFrame(columns=["participant_id", "condition", "phase",
                                                       "is_catch", "correct"]))
    table = table.set_index("condition")
    named = dict(re.findall(r"(feature visualizations|no visualizations) (\d+ \u00b1 \d+) %",
                            WORKSHOP_TEXT))
    printed = {"synthetic": named["feature visualizations"], "none": named["no visualizations"]}
    for condition in ("synthetic", "none"):
        mean, pm = table.loc[condition, ["published", "published_pm"]]
        assert f"{mean * 100:.0f} \u00b1 {pm * 100:.0f}" == printed[condition]
    assert table.loc["synthetic", "published"] == 0.67 and table.loc["none", "published"] == 0.60
    for condition in ("natural", "mixed", "blurred"):
        assert np.isnan(table.loc[condition, "published"])
        assert "66 \u00b1 3 % to 67 \u00b1 3 %" in table.loc[condition, "published_as_printed"]
    assert (table["version"].str.contains("arXiv:2106.12447v1")).all()


def test_a_baseline_that_cannot_decide_earns_half_and_stays_out_of_the_agreement():
    """Occluders at mirrored positions are equally far from the centre: a tie, not `b`."""
    left, right = _occluder(67, 0, 400.0), _occluder(67, 134, 100.0)
    rows = pd.DataFrame({"condition": ["natural"] * 4,
                         "occluder_a": [left, right, left, right],
                         "occluder_b": [right, left, right, left],
                         "correct_choice": ["a", "b", "b", "a"], "choice": ["a", "b", "a", "b"],
                         "correct": [True, True, False, False]})
    choices = baseline_choices(rows)
    assert set(choices.centre) == {"tie"} and choices.centre_correct.eq(0.5).all()
    assert list(choices.variance) == ["b", "a", "b", "a"]  # the calmer patch still decides
    kappa = agreement(rows).set_index("baseline")
    assert kappa.loc["centre", "n_trials"] == 0 and kappa.loc["centre", "ties"] == 4
    assert kappa.loc["variance", "n_trials"] == 4
    assert baseline_scores(rows).set_index("condition").loc["all", "centre"] == 0.5
