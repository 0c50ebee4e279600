"""Scaling trends: Spearman with bootstrap CI, slopes with TOST, power by simulation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import (
    model_scores,
    power_analysis,
    scaling_slopes,
    simulate,
    spearman_trend,
    tost_slope,
    unit_scores,
)


def _scores(ds):
    return model_scores(unit_scores(ds.responses), n_resamples=500, seed=0)


def test_scale_effect_is_detected_and_not_called_equivalent():
    ds = simulate(models=9, units_per_model=40, responses_per_unit=10, careless_fraction=0.0,
                  conditions=("natural",), scale_slope=0.8, seed=2)
    ms = _scores(ds)
    sp = spearman_trend(ms, ds.models, scales=("parameters",), n_resamples=2000).iloc[0]
    assert sp["rho"] > 0.8 and sp["ci_low"] > 0
    sl = scaling_slopes(ms, ds.models, scales=("parameters",)).iloc[0]
    assert sl["slope"] > 0.05 and sl["ci_low"] > 0 and not sl["equivalent"]


def test_no_scale_effect_is_shown_equivalent_with_enough_data():
    ds = simulate(models=9, units_per_model=84, responses_per_unit=30, careless_fraction=0.0,
                  conditions=("natural",), scale_slope=0.0, seed=5)
    ms = _scores(ds)
    sl = scaling_slopes(ms, ds.models, scales=("parameters",), margin=0.05).iloc[0]
    assert sl["ci90_low"] > -0.05 and sl["ci90_high"] < 0.05
    assert sl["equivalent"] and sl["p_tost"] < 0.05
    sp = spearman_trend(ms, ds.models, n_resamples=1000)
    assert set(sp["scale"]) == {"parameters", "train_images", "top1"}
    # the simulated models share one training set: no rho for train_images
    assert np.isnan(sp.set_index("scale").loc["train_images", "rho"])
    ok = sp.dropna(subset=["rho"])
    assert len(ok) == 2 and (ok["ci_low"] <= ok["ci_high"]).all()


def test_tost_by_hand():
    res = tost_slope(0.01, 0.01, df=7, margin=0.05)
    from scipy import stats

    expected = max(stats.t.sf((0.01 + 0.05) / 0.01, 7), stats.t.cdf((0.01 - 0.05) / 0.01, 7))
    assert res["p_tost"] == pytest.approx(expected) and res["equivalent"]
    assert not tost_slope(0.04, 0.02, df=7, margin=0.05)["equivalent"]


def test_power_grows_with_units_and_is_alpha_under_the_null():
    power = power_analysis(difference=0.08, n_units=(10, 80), responses_per_unit=(20,),
                           n_sims=300, seed=1)
    assert power["power"].iloc[1] > power["power"].iloc[0]
    assert power["power"].iloc[1] > 0.8
    null = power_analysis(difference=0.0, n_units=(40,), responses_per_unit=(20,), n_sims=600,
                          seed=2, test="welch")
    assert null["power"].iloc[0] == pytest.approx(0.05, abs=0.03)


def test_power_with_participants_shared_across_units():
    """Sessions of 40 units share one participant effect: model means spread more, so a test
    on unit scores rejects a true null far more often than with one participant per response."""
    common = {"difference": 0.0, "n_units": (40,), "responses_per_unit": (20,), "unit_sd": 0.5,
              "participant_sd": 1.0, "n_sims": 400, "test": "welch"}
    alone = power_analysis(seed=3, **common)
    one_each = power_analysis(seed=4, trials_per_participant=1, **common)
    shared = power_analysis(seed=5, trials_per_participant=40, **common)
    assert alone["power"].iloc[0] == pytest.approx(0.05, abs=0.035)
    assert one_each["power"].iloc[0] == pytest.approx(0.05, abs=0.035)
    assert shared["power"].iloc[0] > 0.25
    assert shared.attrs["trials_per_participant"] == 40
    with pytest.raises(ValueError):
        power_analysis(trials_per_participant=0, n_sims=10)


def test_tost_calls_a_slope_at_the_margin_equivalent_alpha_of_the_time():
    """Type I error of the equivalence claim: true slope exactly at the margin, nine models with
    normal scatter around the line (scaling_slopes' own model); 'equivalent' in ~5% of datasets."""
    from analysis import imi_models

    models = imi_models()
    x = np.log10(models["parameters"].to_numpy(float))
    rng = np.random.default_rng(12)
    calls = []
    for _ in range(1000):
        score = 0.8 + 0.05 * (x - x.mean()) + rng.normal(0, 0.004, len(x))
        ms = pd.DataFrame({"model": models["model"], "condition": "natural",
                           "difficulty": "easy", "score": score})
        row = scaling_slopes(ms, models, scales=("parameters",), margin=0.05).iloc[0]
        calls.append(row["equivalent"])
    assert np.mean(calls) == pytest.approx(0.05, abs=0.02)  # MC SE 0.7%


def test_a_spearman_over_fewer_than_five_models_gives_no_interval():
    """A percentile bootstrap over 4 models claims more than the data hold: a note instead."""
    from analysis import imi_models

    scores = pd.DataFrame({"model": ["googlenet", "resnet50", "densenet201", "convnext_b"],
                           "condition": "natural", "score": [0.9, 0.85, 0.8, 0.7]})
    row = spearman_trend(scores, imi_models(), scales=("parameters",), n_resamples=500).iloc[0]
    assert np.isfinite(row["rho"]) and np.isnan(row["p"]) and np.isnan(row["ci_low"])
    assert "too few models (n = 4 < 5)" in row["note"]
