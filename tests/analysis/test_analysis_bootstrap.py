"""Intervals: Wilson, BCa (against scipy), two-way bootstrap, and coverage on simulated data."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import bca_mean, model_scores, simulate, two_way_scores, unit_scores, wilson_interval


def test_wilson_known_values():
    low, high = wilson_interval(8, 10)
    # Wilson 95 % interval for 8/10 (Newcombe 1998, method 3): 0.4902 to 0.9433
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson_interval(np.array([0, 10]), np.array([10, 10]))
    assert low[0] == pytest.approx(0.0, abs=1e-12) and high[0] == pytest.approx(0.2775, abs=1e-4)
    assert high[1] == pytest.approx(1.0) and low[1] == pytest.approx(0.7225, abs=1e-4)


def test_bca_matches_scipy_bootstrap_exactly_with_the_same_draws():
    data = np.random.default_rng(5).exponential(1.0, 25)
    mean, low, high = bca_mean(data, n_resamples=3000, rng=np.random.default_rng(42))
    ref = stats.bootstrap((data,), np.mean, n_resamples=3000, method="BCa",
                          rng=np.random.default_rng(42))
    assert mean == pytest.approx(data.mean())
    assert low == pytest.approx(ref.confidence_interval.low, rel=1e-9)
    assert high == pytest.approx(ref.confidence_interval.high, rel=1e-9)


def test_bca_close_to_scipy_with_independent_draws():
    data = np.random.default_rng(6).beta(8, 2, 60)
    _, low, high = bca_mean(data, n_resamples=20000, rng=1)
    ref = stats.bootstrap((data,), np.mean, n_resamples=20000, method="BCa", rng=2)
    width = high - low
    assert abs(low - ref.confidence_interval.low) < 0.05 * width
    assert abs(high - ref.confidence_interval.high) < 0.05 * width


def test_bca_degenerate_inputs():
    assert np.isnan(bca_mean(np.array([]))[0])
    assert bca_mean(np.array([0.7, 0.7, 0.7]), 500, rng=0) == pytest.approx((0.7, 0.7, 0.7))


def _coverage_run(seed, participant_sd):
    ds = simulate(models=1, conditions=("natural",), units_per_model=40, responses_per_unit=20,
                  catch_per_task=0, careless_fraction=0.0, participant_sd=participant_sd,
                  seed=seed)
    return ds, unit_scores(ds.responses), float(ds.truth["models"]["score_population"].iloc[0])


def test_bca_over_units_has_near_nominal_coverage():
    hits = 0
    reps = 150
    for seed in range(reps):
        _, units, truth = _coverage_run(seed, participant_sd=0.0)
        row = model_scores(units, n_resamples=1000, seed=seed).iloc[0]
        hits += row["ci_low"] <= truth <= row["ci_high"]
    # 95 % nominal; binomial SE with 150 runs is 1.8 points
    assert 0.88 <= hits / reps <= 0.995


@pytest.mark.slow
def test_two_way_bootstrap_covers_when_participants_differ():
    """With strong participant effects, units share participants, so the one-way interval is
    too narrow; the two-way interval keeps (at least) nominal coverage."""
    reps = 120
    one_way = two_way = 0
    for seed in range(reps):
        ds, units, truth = _coverage_run(1000 + seed, participant_sd=1.5)
        a = model_scores(units, n_resamples=1000, seed=seed).iloc[0]
        b = two_way_scores(ds.responses, n_resamples=1000, seed=seed).iloc[0]
        one_way += a["ci_low"] <= truth <= a["ci_high"]
        two_way += b["ci_low"] <= truth <= b["ci_high"]
    assert two_way / reps >= 0.9
    assert two_way >= one_way


def test_two_way_interval_is_wider_than_one_way_with_participant_effects():
    ds = simulate(models=2, conditions=("natural",), units_per_model=60, responses_per_unit=20,
                  catch_per_task=0, careless_fraction=0.0, participant_sd=1.5, seed=11)
    units = unit_scores(ds.responses)
    a = model_scores(units, n_resamples=2000, seed=0)
    b = two_way_scores(ds.responses, n_resamples=2000, seed=0)
    assert ((b["ci_high"] - b["ci_low"]) > (a["ci_high"] - a["ci_low"])).all()
    assert np.allclose(a["score"], b["score"])
