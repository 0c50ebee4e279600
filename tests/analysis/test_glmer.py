"""The mixed model through lme4's glmer: the same numbers as glmer called by hand, intervals
that cover the simulated truth, and the named fallback when R is missing."""
from __future__ import annotations

import html
import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis import glmm, simulate
from analysis.scores import main_trials
from analysis.stats import mixed_model

pytestmark = pytest.mark.skipif(not glmm.available(),
                                reason=f"needs R and lme4: {glmm.INSTALL_HINT}")


def test_the_fit_is_glmers_own_on_the_same_rows(tmp_path):
    """Our design (one intercept per model, treatment-coded condition) against a formula
    written by hand in R: the same estimates, SEs and SDs."""
    ds = simulate(models=3, units_per_model=15, responses_per_unit=8, careless_fraction=0.0,
                  seed=21)
    res = mixed_model(ds.responses, ds.models, seed=0, engine="glmer")
    rows = main_trials(ds.responses)
    rows[["correct", "participant_id", "unit_id", "model", "condition"]].assign(
        correct=rows["correct"].astype(int)).to_csv(tmp_path / "d.csv", index=False)
    script = f"""
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{tmp_path / 'd.csv'}")
d$condition <- relevel(factor(d$condition), "natural")
d$uc <- paste(d$unit_id, d$condition)
f <- glmer(correct ~ 0 + model + condition + (1 | participant_id) + (1 | unit_id) + (1 | uc),
           data = d, family = binomial)
cat(fixef(f)[["conditionsynthetic"]], sqrt(diag(vcov(f)))[["conditionsynthetic"]],
    getME(f, "theta")[["uc.(Intercept)"]], getME(f, "theta")[["unit_id.(Intercept)"]], "\\n")
"""
    done = subprocess.run([glmm.rscript(), "-e", script], capture_output=True, text=True,
                          check=True)
    estimate, se, sd_uc, sd_unit = map(float, done.stdout.split())
    fixed = res.fixed.set_index("term").loc["condition[synthetic]"]
    variance = res.variance.set_index("component")["sd"]
    assert fixed["estimate"] == pytest.approx(estimate, abs=2e-3)
    assert fixed["sd"] == pytest.approx(se, rel=0.02)
    assert variance["unit:condition"] == pytest.approx(sd_uc, abs=0.01)
    assert variance["unit"] == pytest.approx(sd_unit, abs=0.01)
    assert res.engine == "glmer" and res.n_used == res.n_rows == len(rows)
    assert res.method.startswith("lme4 ") and "Laplace" in res.method


@pytest.mark.slow
def test_intervals_cover_the_simulated_condition_effect_slope_and_unit_condition_sd():
    """Twelve small IMI-shaped datasets (100 participants each): each interval covers its
    simulated value in at least 9 of 12 (a broken engine covers far less: the old VB fit's
    unit:condition SD interval none). The benchmark measures the rates at larger sizes and at
    this one: benchmarks/coverage_glmer.py, RESULTS_analysis.md."""
    covered = {"condition": [], "slope": [], "unit:condition": []}
    for seed in range(12):
        ds = simulate(models=["googlenet", "resnet50", "densenet201", "convnext_b", "vit_b32"],
                      units_per_model=20, responses_per_unit=10, careless_fraction=0.0,
                      scale_slope=0.3, model_sd=0.1, seed=300 + seed)
        res = mixed_model(ds.responses, ds.models, seed=seed, engine="glmer")
        mu = ds.truth["params"]["mu"]
        fixed = res.fixed.set_index("term")
        sd = res.variance.set_index("component").loc["unit:condition"]
        truth = {"condition": (fixed.loc["condition[synthetic]"], mu["synthetic"] - mu["natural"]),
                 "slope": (fixed.loc["log10_scale"], 0.3)}
        for name, (row, value) in truth.items():
            covered[name].append(row["ci_low"] <= value <= row["ci_high"])
        covered["unit:condition"].append(sd["sd_low"] <= 0.8 * np.sqrt(0.4) <= sd["sd_high"])
    assert all(sum(v) >= 9 for v in covered.values()), {k: sum(v) for k, v in covered.items()}


def test_without_r_the_named_fallback_runs_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    glmm.lme4_version.cache_clear()
    try:
        ds = simulate(models=2, units_per_model=10, responses_per_unit=6,
                      careless_fraction=0.0, seed=5)
        res = mixed_model(ds.responses, ds.models, seed=0)
        assert res.engine == "vb" and "lme4 not found" in res.notes[0]
        with pytest.raises(Exception, match="needs lme4"):
            mixed_model(ds.responses, ds.models, seed=0, engine="glmer")
    finally:
        glmm.lme4_version.cache_clear()


def test_the_variance_table_has_intervals_and_the_boundary_has_no_upper_limit():
    from analysis.stats import _glmer_variance

    table = _glmer_variance(pd.DataFrame({"component": ["unit", "model"], "sd": [0.5, 1e-6],
                                          "se": [0.05, np.nan]}), 1.96)
    unit, model = table.iloc[0], table.iloc[1]
    assert unit["sd_low"] == pytest.approx(0.5 / np.exp(1.96 * 0.1))
    assert unit["sd_high"] == pytest.approx(0.5 * np.exp(1.96 * 0.1))
    assert model["sd_low"] == 0 and np.isnan(model["sd_high"])
    assert model["interval"] == "at the boundary"


def test_a_pilot_glmer_refuses_still_gets_its_report():
    """glmer refuses a grouping factor with one level (one unit here): the report says why the
    mixed model is missing and every other table is there."""
    from analysis.load import Dataset
    from analysis.report import render_html, run_analysis

    ds = simulate(models=2, units_per_model=6, responses_per_unit=6, careless_fraction=0.0,
                  seed=9)
    one_unit = ds.responses.assign(unit_id="model1/layer1/0")
    dataset = Dataset(responses=one_unit, participants=ds.participants, models=ds.models)
    result = run_analysis(dataset, n_resamples=200, power_sims=20)
    assert result.mixed is None and "lme4's glmer failed" in result.settings["mixed_not_fitted"]
    assert not result.tables["model_scores"].empty
    result.figures = {}
    assert "not fitted: lme4's glmer failed" in html.unescape(render_html(result, dataset))
