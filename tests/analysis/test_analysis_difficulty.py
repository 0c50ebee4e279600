"""Several query difficulties (IMI's easy and hard queries) through scores, models, plots, report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import mixed_model, simulate
from analysis.plots import plot_model_scores
from analysis.report import analyze


@pytest.fixture(scope="module")
def two_difficulties():
    """Four models, natural and synthetic, easy and p95 queries; p95 is 0.8 logit harder."""
    return simulate(models=["resnet50", "googlenet", "vit_b32", "convnext_b"],
                    units_per_model=24, responses_per_unit=8, careless_fraction=0.0, seed=3,
                    difficulties={"easy": 0.0, "p95": -0.8})


def test_simulated_difficulties_have_their_own_cells(two_difficulties):
    r = two_difficulties.responses
    main = r[(r["phase"] == "main") & ~r["is_catch"]]
    counts = main.groupby(["model", "condition", "difficulty"], observed=True).size()
    assert len(counts) == 4 * 2 * 2
    assert (counts == 24 * 8).all()  # every unit answered 8 times in every cell
    assert main.groupby("difficulty")["correct"].mean()["p95"] < \
        main.groupby("difficulty")["correct"].mean()["easy"]
    # one difficulty per task, as in a real task list
    assert (r.groupby("task_id")["difficulty"].nunique() == 1).all()


def test_report_with_two_difficulties_scores_each_cell_and_draws_every_figure(
        two_difficulties, tmp_path):
    result = analyze(two_difficulties, tmp_path, n_resamples=300, power_sims=20)
    ms = result.tables["model_scores"]
    assert set(zip(ms["condition"], ms["difficulty"])) == {
        ("natural", "easy"), ("natural", "p95"), ("synthetic", "easy"), ("synthetic", "p95")}
    assert len(ms) == 16
    paired = result.tables["natural_vs_synthetic"]
    assert set(paired["difficulty"]) == {"easy", "p95"}
    assert (paired.groupby("difficulty")["model"].apply(lambda m: "all" in set(m))).all()
    assert {"model_scores", "scale", "confidence", "depth", "natural_vs_synthetic"} <= set(
        result.figures)
    html = (tmp_path / "report.html").read_text()
    assert "easy, p95" in html


def test_mixed_model_estimates_the_difficulty_effect(two_difficulties):
    res = mixed_model(two_difficulties.responses, two_difficulties.models, seed=0)
    fixed = res.fixed.set_index("term")
    assert "difficulty[p95]" in fixed.index and "difficulty[easy]" not in fixed.index
    row = fixed.loc["difficulty[p95]"]
    # the conditional (subject-specific) effect simulated is -0.8 logit
    assert row["ci_low"] < -0.8 < row["ci_high"] or abs(row["estimate"] + 0.8) < 0.2
    assert row["ci_high"] < 0


def test_interval_lines_are_the_computed_interval_even_when_it_excludes_the_estimate():
    scores = pd.DataFrame({"model": ["m1", "m2"], "condition": ["natural", "natural"],
                           "score": [0.95, 0.8], "ci_low": [0.96, 0.7], "ci_high": [0.99, 0.9]})
    ax = plot_model_scores(scores).axes[0]
    segments = ax.collections[0].get_segments()
    spans = sorted((float(s[0][1]), float(s[1][1])) for s in segments)
    assert spans == [(0.7, 0.9), (0.96, 0.99)]


def test_scale_slopes_of_the_mixed_model_cover_every_scale_with_a_tost():
    ds = simulate(units_per_model=30, responses_per_unit=12, careless_fraction=0.0, seed=4)
    res = mixed_model(ds.responses, ds.models, seed=0, margin=0.05)
    between = res.scale_slopes[res.scale_slopes["interval"] == "between-model t"]
    assert set(between["scale"]) == {"parameters", "train_images", "top1"}
    assert between["used"].sum() == 1
    assert between.set_index("scale").loc["parameters", "used"]
    # the margin in logits moves the reference rows' mean proportion correct by the margin
    from scipy.special import expit

    eta, m = res.reference_eta, between["margin_logit"].iloc[0]
    assert len(eta) > 100 and np.allclose(between["margin_logit"], m)
    shift = (expit(eta + m / 2).mean() - expit(eta - m / 2).mean())
    assert shift == pytest.approx(0.05, rel=0.02)
    inside = (between["ci90_low"] > -between["margin_logit"]) & (
        between["ci90_high"] < between["margin_logit"])
    assert (inside == between["equivalent"]).all()
    # IMI's training-set sizes take 3 values over 9 models: the notes say what the slope is
    assert between.set_index("scale").loc["train_images", "n_distinct"] == 3
    assert any(n.startswith("train_images: only 3 distinct values") for n in res.notes)


def test_slope_of_the_fitted_scale_is_between_model_even_if_not_among_slope_scales():
    ds = simulate(units_per_model=12, responses_per_unit=6, careless_fraction=0.0, seed=5)
    res = mixed_model(ds.responses, ds.models, seed=0, slope_scales=("top1",))
    used = res.scale_slopes[res.scale_slopes["used"]].iloc[0]
    assert (used["scale"], used["interval"]) == ("parameters", "between-model t")
    assert set(res.scale_slopes["scale"]) == {"parameters", "top1"}


def test_blank_difficulty_is_the_default_one():
    """A foreign file whose difficulty column is empty is scored, not dropped as a NaN group."""
    from analysis import paired_conditions, read_trials, unit_scores

    r = simulate(models=2, units_per_model=10, responses_per_unit=4, seed=1).responses
    frame = r.astype({"difficulty": object}).assign(difficulty="")
    loaded = read_trials(frame)
    assert set(loaded["difficulty"]) == {"easy"}
    assert not paired_conditions(unit_scores(loaded), n_resamples=200).empty
