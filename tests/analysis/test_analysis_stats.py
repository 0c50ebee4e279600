"""Tests between models and conditions, and the mixed model, recover simulated effects."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import (
    brunner_munzel,
    brunner_munzel_pairs,
    conover_posthoc,
    kruskal_models,
    mixed_model,
    paired_conditions,
    simulate,
    unit_scores,
)
from analysis.stats import between_model_slope


@pytest.fixture(scope="module")
def effects():
    """GoogLeNet much worse than the rest; synthetic worse than natural."""
    ds = simulate(units_per_model=60, responses_per_unit=20, careless_fraction=0.0,
                  model_offsets={"googlenet": -1.2},
                  accuracy={"natural": 0.85, "synthetic": 0.70}, seed=8)
    return ds, unit_scores(ds.responses)


def test_conover_by_hand_on_a_small_example():
    groups = {"a": np.array([1.0, 2, 3, 4]), "b": np.array([5.0, 6, 7, 8]),
              "c": np.array([2.5, 3.5, 9, 10])}
    out = conover_posthoc(groups).set_index(["group_a", "group_b"])
    pooled = np.concatenate(list(groups.values()))
    ranks = stats.rankdata(pooled)
    n, k = 12, 3
    h = stats.kruskal(*groups.values()).statistic
    s2 = (np.sum(ranks**2) - n * (n + 1) ** 2 / 4) / (n - 1)
    t = (ranks[:4].mean() - ranks[4:8].mean()) / np.sqrt(s2 * (n - 1 - h) / (n - k) * 0.5)
    assert out.loc[("a", "b"), "t"] == pytest.approx(t)
    assert out.loc[("a", "b"), "p"] == pytest.approx(2 * stats.t.sf(abs(t), n - k))
    assert (out["p_holm"] >= out["p"] - 1e-15).all()
    smallest = out["p"].idxmin()
    assert out.loc[smallest, "p_holm"] == pytest.approx(min(1, 3 * out.loc[smallest, "p"]))


def test_kruskal_and_posthoc_find_the_worse_model(effects):
    _, units = effects
    kw, ph = kruskal_models(units)
    assert (kw["p"] < 1e-3).all()
    nat = ph[ph["condition"] == "natural"]
    with_g = nat[(nat["group_a"] == "googlenet") | (nat["group_b"] == "googlenet")]
    without = nat.drop(with_g.index)
    assert (with_g["p_holm"] < 0.05).mean() >= 0.85
    assert (without["p_holm"] < 0.05).mean() <= 0.1


def test_brunner_munzel_matches_scipy_and_orients_effect():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(1, 1, 50)
    res = brunner_munzel(a, b)
    ref = stats.brunnermunzel(a, b)
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    assert res["p_a_less_b"] > 0.7
    assert brunner_munzel(b, a)["p_a_less_b"] == pytest.approx(1 - res["p_a_less_b"])


def test_brunner_munzel_pairs_as_imi_and_holm_on_request(effects):
    """IMI: unadjusted p, the normal approximation above 50 units per group (60 here)."""
    _, units = effects
    bm = brunner_munzel_pairs(units)
    assert len(bm) == 2 * 36 and "p_holm" not in bm.columns
    # pairs in IMI's model order: GoogLeNet first
    g = bm[(bm["condition"] == "natural") & (bm["model_a"] == "googlenet")
           & (bm["model_b"] == "convnext_b")].iloc[0]
    a = units[(units["condition"] == "natural") & (units["model"] == "googlenet")]["score"]
    b = units[(units["condition"] == "natural") & (units["model"] == "convnext_b")]["score"]
    assert g["p"] == pytest.approx(stats.brunnermunzel(a, b, distribution="normal").pvalue)
    assert g["distribution"] == "normal" and g["p"] < 0.01 and g["p_a_less_b"] > 0.7
    holm = brunner_munzel_pairs(units, holm=True)
    assert (holm["p_holm"] >= holm["p"] - 1e-15).all()


@pytest.mark.parametrize("n_a, n_b, distribution", [(50, 80, "t"), (51, 80, "normal"),
                                                    (80, 51, "normal"), (80, 50, "t")])
def test_brunner_munzel_uses_imis_distribution_rule(n_a, n_b, distribution):
    rng = np.random.default_rng(n_a + n_b)
    a, b = rng.normal(0, 1, n_a), rng.normal(0.3, 1, n_b)
    res = brunner_munzel(a, b)
    assert res["distribution"] == distribution
    assert res["p"] == pytest.approx(stats.brunnermunzel(a, b, distribution=distribution).pvalue)


def test_kruskal_effect_sizes_carry_their_own_definitions(effects):
    _, units = effects
    kw, _ = kruskal_models(units)
    row = kw[kw["condition"] == "natural"].iloc[0]
    n, k = row["n_units"], row["n_models"]
    assert row["epsilon_squared"] == pytest.approx(row["H"] / (n - 1))
    assert row["eta_squared_h"] == pytest.approx((row["H"] - k + 1) / (n - k))


def test_too_few_units_give_a_note_instead_of_a_p_value():
    units = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "condition": "natural",
                          "unit_id": [f"u{i}" for i in range(9)],
                          "score": [0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.4, 0.5, 0.9]})
    kw, ph = kruskal_models(units)
    assert np.isnan(kw["p"].iloc[0]) and "too few units" in kw["note"].iloc[0]
    assert ph["p"].isna().all() and ph["note"].str.contains("too few").all()
    bm = brunner_munzel_pairs(units)
    assert bm["p"].isna().all() and bm["note"].str.contains("too few").all()
    paired = paired_conditions(pd.concat([units, units.assign(condition="synthetic",
                                                              score=units["score"] - 0.1)]),
                               n_resamples=200)
    per_model = paired[paired["model"] != "all"]
    assert per_model["p"].isna().all() and per_model["note"].str.contains("too few").all()
    assert paired.set_index("model").loc["all", "note"] == ""  # 9 units


def test_depth_correlates_layer_means_as_imi_does():
    """Units averaged per layer first, then Spearman over layers (n = layers)."""
    from analysis.stats import depth_correlation

    rng = np.random.default_rng(2)
    rows, table = [], []
    for layer in range(8):
        for c in range(1 + layer % 3):
            uid = f"m/l{layer}/{c}"
            rows.append({"model": "m", "unit_id": uid, "condition": "natural",
                         "score": 0.6 + 0.03 * layer + rng.normal(0, 0.05)})
            table.append({"unit_id": uid, "layer_position": layer / 7})
    units, table = pd.DataFrame(rows), pd.DataFrame(table)
    out = depth_correlation(units, table).iloc[0]
    means = units.assign(depth=units["unit_id"].map(table.set_index("unit_id")["layer_position"]))
    means = means.groupby("depth")["score"].mean()
    expected = stats.spearmanr(means.index, means.to_numpy())
    assert out["n_layers"] == 8 and out["spearman_rho"] == pytest.approx(expected.statistic)
    assert out["p"] == pytest.approx(expected.pvalue) and out["level"] == "layer"
    per_unit = depth_correlation(units, table, level="unit").iloc[0]
    assert per_unit["n_units"] == len(units) and per_unit["level"] == "unit"


def test_paired_natural_vs_synthetic_recovers_difference(effects):
    ds, units = effects
    out = paired_conditions(units, n_resamples=2000).set_index("model")
    truth = ds.truth["units"].pivot_table(index="unit_id", columns="condition", values="p_true")
    true_diff = (truth["natural"] - truth["synthetic"]).mean()
    row = out.loc["all"]
    assert row["ci_low"] <= true_diff <= row["ci_high"]
    assert row["p"] < 1e-10 and row["n_units"] == 9 * 60


def test_mixed_model_recovers_condition_and_scale_effects():
    ds = simulate(models=6, units_per_model=40, responses_per_unit=12, careless_fraction=0.0,
                  accuracy={"natural": 0.85, "synthetic": 0.7}, scale_slope=0.6,
                  unit_sd=0.6, participant_sd=0.5, seed=4)
    res = mixed_model(ds.responses, ds.models, max_rows=4000, seed=1)
    fixed = res.fixed.set_index("term")
    mu = ds.truth["params"]["mu"]
    assert fixed.loc["condition[synthetic]", "estimate"] == pytest.approx(
        mu["synthetic"] - mu["natural"], abs=0.25)
    slope = res.slope()
    assert slope is not None and slope["ci_low"] > 0
    assert slope["estimate"] == pytest.approx(0.6, abs=0.3)
    variance = res.variance.set_index("component")["sd"]
    assert variance["unit"] == pytest.approx(0.6, abs=0.25)
    assert res.n_used <= 4000 < res.n_rows and "seed 1" in res.notes[0]


def test_between_model_slope_is_ols_with_a_t_interval_on_models_minus_2_df():
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    x = pd.Series(np.linspace(6.5, 9, 9), index=[f"m{i}" for i in range(9)])
    logits = pd.Series(1.0 + 0.2 * x.to_numpy() + rng.normal(0, 0.3, 9), index=x.index[::-1])
    logits = logits.sort_index()
    out = between_model_slope(logits, x)
    ols = sm.OLS(logits.to_numpy(), sm.add_constant(x.reindex(logits.index).to_numpy())).fit()
    assert out["estimate"] == pytest.approx(ols.params[1])
    assert out["sd"] == pytest.approx(ols.bse[1])
    assert out["df"] == 7 and out["n_models"] == 9
    assert [out["ci_low"], out["ci_high"]] == pytest.approx(list(ols.conf_int()[1]))
    assert out["residual_sd"] == pytest.approx(np.sqrt(ols.scale))
    assert np.isnan(between_model_slope(logits.iloc[:2], x)["ci_low"])


def test_scale_slope_interval_covers_zero_where_the_vb_interval_does_not():
    """Null data (no scale effect) with between-model deviations (sd 0.2 logit): the
    mean-field VB interval excludes the true slope 0, the between-model t interval does not
    (seed 3; over seeds 0-11 the VB interval missed 0 in 5 of 12, the t interval in 1)."""
    ds = simulate(units_per_model=40, responses_per_unit=20, careless_fraction=0.0,
                  model_sd=0.2, scale_slope=0.0, seed=3)
    res = mixed_model(ds.responses, ds.models, seed=1, engine="vb")
    table = res.scale_slopes[res.scale_slopes["scale"] == "parameters"].set_index("interval")
    vb, between = table.loc["VB posterior (mean-field)"], table.loc["between-model t"]
    joint = table.loc["joint Gaussian at the VB means"]
    assert between["used"] and not vb["used"] and not joint["used"]
    assert not vb["ci_low"] < 0 < vb["ci_high"]  # the old, too narrow interval
    assert joint["sd"] > 1.5 * vb["sd"] and joint["estimate"] == vb["estimate"]
    assert between["ci_low"] < 0 < between["ci_high"]
    assert between["df"] == 7 and between["n_models"] == 9
    assert between["sd"] > 2 * vb["sd"]
    slope = res.slope()
    assert slope["interval"] == "between-model t"
    assert slope["ci_low"] == pytest.approx(between["ci_low"])
    assert slope["ci_high"] == pytest.approx(between["ci_high"])
    assert any(n.startswith("log10_scale: between-model") for n in res.notes)
    note = next(n for n in res.notes if "mean-field VB interval" in n)
    assert f"[{vb['ci_low']:.3f}, {vb['ci_high']:.3f}] is narrower here" in note


def test_two_models_keep_the_vb_slope_interval_and_say_so():
    ds = simulate(models=2, units_per_model=20, responses_per_unit=6, careless_fraction=0.0,
                  conditions=("natural",), seed=6)
    res = mixed_model(ds.responses, ds.models, seed=0, engine="vb")
    assert list(res.scale_slopes["interval"]) == ["VB posterior (mean-field)",
                                                  "joint Gaussian at the VB means"]
    assert res.slope()["interval"] == "joint Gaussian at the VB means"
    assert "fewer than 3 models" in res.notes[-1]


def test_joint_fixed_sd_is_the_fixed_block_of_the_inverse_joint_precision():
    """The sparse Schur complement equals the dense inverse of the whole joint precision."""
    from scipy.special import expit

    from analysis.stats import FE_PRIOR_SD, _cell_columns, _design, _fit_vb, _joint_fixed_sd

    ds = simulate(models=3, units_per_model=12, responses_per_unit=4, careless_fraction=0.0,
                  seed=11)
    r = ds.responses
    data = r[(r["phase"] == "main") & ~r["is_catch"]].reset_index(drop=True)
    cond, names = _cell_columns(data, "natural")
    design = _design(data, [np.ones(len(data))] + cond, ["intercept"] + names,
                     [("participant", "participant_id"), ("unit", "unit_id")])
    fit = _fit_vb(design, "L-BFGS-B", 0)
    x, z = design.exog, design.exog_vc.toarray()
    full = np.hstack([x, z])
    w = expit(full @ np.r_[fit.fe_mean, fit.vc_mean])
    w = w * (1 - w)
    prior = np.r_[np.full(x.shape[1], FE_PRIOR_SD**-2), np.exp(-2 * fit.vcp_mean[design.ident])]
    precision = full.T @ (full * w[:, None]) + np.diag(prior)
    dense = np.sqrt(np.diag(np.linalg.inv(precision))[:x.shape[1]])
    assert _joint_fixed_sd(design, fit) == pytest.approx(dense, rel=1e-8)
    assert (dense > fit.fe_sd).all()  # mean-field VB's SDs are smaller


def test_condition_and_difficulty_sds_match_the_spread_of_estimates_over_datasets():
    """Over 16 simulated datasets the stated SD of the between-participant effects matches the
    SD of the estimates (mean-field VB's was 2-3x too small) and the intervals cover."""
    true = {"condition[synthetic]": None, "difficulty[p95]": -0.8}
    estimates, sds, sds_vb, covered = [], [], [], []
    for seed in range(16):
        ds = simulate(models=["resnet50", "googlenet", "vit_b32", "convnext_b"],
                      units_per_model=20, responses_per_unit=6, careless_fraction=0.0,
                      seed=100 + seed, difficulties={"easy": 0.0, "p95": -0.8})
        mu = ds.truth["params"]["mu"]
        true["condition[synthetic]"] = mu["synthetic"] - mu["natural"]
        fixed = (mixed_model(ds.responses, None, seed=seed, engine="vb").fixed
                 .set_index("term").loc[list(true)])
        estimates.append(fixed["estimate"].to_numpy())
        sds.append(fixed["sd"].to_numpy())
        sds_vb.append(fixed["sd_vb"].to_numpy())
        t = np.array(list(true.values()))
        covered.append((fixed["ci_low"].to_numpy() <= t) & (t <= fixed["ci_high"].to_numpy()))
    spread = np.std(estimates, axis=0, ddof=1)
    ratio = np.sqrt(np.mean(np.square(sds), axis=0)) / spread
    ratio_vb = np.sqrt(np.mean(np.square(sds_vb), axis=0)) / spread
    # the stated SD over the SD of 16 estimates: 99% of ratios fall here when the stated SD is
    # right (the sample SD's chi-square spread on 15 df); VB's was 0.3-0.5
    low, high = np.sqrt(15 / stats.chi2.ppf([0.995, 0.005], 15))
    assert ((ratio > low) & (ratio < high)).all(), (ratio, low, high)
    assert (ratio_vb < 0.8 * ratio).all(), (ratio_vb, ratio)
    assert (np.mean(covered, axis=0) >= 12 / 16).all()
