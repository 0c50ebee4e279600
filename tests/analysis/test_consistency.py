"""Accuracy and error consistency between observers (analysis.consistency): a hand-computed
case, identical and independent observers, the images both saw, the benchmark's summary and
shape bias on cue-conflict images."""
import numpy as np
import pandas as pd
import pytest

from analysis.consistency import accuracy, benchmark_summary, error_consistency, shape_bias


def _trials(answers: dict[str, list[bool]], condition="c30", dataset="contrast",
            machines=(), images=None):
    frames = []
    for observer, correct in answers.items():
        names = images[observer] if images else [f"n0{i:07d}_1.png" for i in range(len(correct))]
        frames.append(pd.DataFrame({
            "dataset": dataset, "observer": observer,
            "kind": "machine" if observer in machines else "human", "condition": condition,
            "image": names, "correct": correct}))
    return pd.concat(frames, ignore_index=True)


def test_error_consistency_equals_the_hand_computed_kappa():
    a = [True] * 6 + [False] * 4
    b = [True] * 4 + [False] * 4 + [True] * 2
    pairs = error_consistency(_trials({"subject-01": a, "subject-02": b}))
    row = pairs.iloc[0]
    # both right on 4, both wrong on 2: c_obs 0.6; p_a = p_b = 0.6: c_exp 0.36 + 0.16 = 0.52
    assert (row.observer_a, row.observer_b, row.n) == ("subject-01", "subject-02", 10)
    assert row.observed == pytest.approx(0.6)
    assert row.expected == pytest.approx(0.52)
    assert row.error_consistency == pytest.approx(0.08 / 0.48)
    assert row.pair == "human-human"


def test_identical_observers_give_one_and_independent_ones_near_zero():
    rng = np.random.default_rng(0)
    a = list(rng.random(20_000) < 0.7)
    independent = list(rng.random(20_000) < 0.7)
    pairs = error_consistency(_trials({"subject-01": a, "subject-02": a, "resnet": independent},
                                      machines=("resnet",))).set_index(["observer_a", "observer_b"])
    assert pairs.loc[("subject-01", "subject-02"), "error_consistency"] == 1.0
    independent_kappa = pairs.loc[("subject-01", "resnet"), "error_consistency"]
    assert abs(independent_kappa) < 0.03
    assert pairs.loc[("subject-01", "resnet"), "pair"] == "human-machine"
    # all right (c_exp = 1) is consistency 1, not a division by zero
    perfect = error_consistency(_trials({"a": [True] * 5, "b": [True] * 5}))
    assert perfect.error_consistency.tolist() == [1.0]


def test_only_the_images_both_saw_are_compared_and_conditions_stay_apart():
    images = {"subject-01": ["x1.png", "x2.png", "x3.png", "x4.png"],
              "subject-02": ["x3.png", "x4.png", "x5.png"]}
    trials = pd.concat([
        _trials({"subject-01": [True, False, True, False], "subject-02": [True, False, True]},
                images=images),
        _trials({"subject-01": [False], "subject-02": [False]}, condition="c05",
                images={"subject-01": ["x9.png"], "subject-02": ["x9.png"]})])
    pairs = error_consistency(trials).set_index("condition")
    assert pairs.loc["c30", "n"] == 2  # x3 and x4
    assert pairs.loc["c30", "observed"] == 1.0
    assert (pairs.loc["c30", "accuracy_a"], pairs.loc["c30", "accuracy_b"]) == (0.5, 0.5)
    assert pairs.loc["c05", "n"] == 1
    assert list(pairs.index) == ["c05", "c30"]  # ordered by level


def test_accuracy_has_wilson_intervals_per_condition():
    table = accuracy(_trials({"subject-01": [True] * 8 + [False] * 2}))
    row = table.iloc[0]
    assert (row.observer, row.condition, row.n, row.n_correct) == ("subject-01", "c30", 10, 8)
    assert row.accuracy == 0.8
    assert row.ci_low == pytest.approx(0.4902, abs=1e-4)  # Wilson 95%, 8 of 10
    assert row.ci_high == pytest.approx(0.9433, abs=1e-4)


def test_the_benchmark_summary_averages_over_conditions_then_people():
    rng = np.random.default_rng(1)
    people = {f"subject-0{i}": list(rng.random(200) < 0.8) for i in range(1, 4)}
    copy = people["subject-01"]
    trials = pd.concat([_trials({**people, "copy": copy, "coin": list(rng.random(200) < 0.5)},
                                condition=c, machines=("copy", "coin")) for c in ("c30", "c10")])
    pairs = error_consistency(trials)
    summary = benchmark_summary(pairs).set_index("observer")
    assert summary.loc["copy", "kind"] == "machine"
    # the copy of subject-01: the mean of its kappa with subject-01 (1) and with the others
    against = pairs[(pairs.observer_b == "copy") & pairs.observer_a.isin(people)]
    assert summary.loc["copy", "error_consistency"] == pytest.approx(
        against.groupby("observer_a").error_consistency.mean().mean())
    assert summary.loc["copy", "error_consistency"] > summary.loc["coin", "error_consistency"]
    # ranked among the machines: the coin is farthest from the people's 0.8, the copy closest
    assert summary.loc["coin", "rank_accuracy_difference"] == 2
    assert summary.loc["copy", "mean_rank"] == 1
    assert summary.loc["subject-02", "n_datasets"] == 1  # people against the other people
    assert np.isnan(summary.loc["subject-02", "mean_rank"])
    group = summary.loc["people (mean)"]
    assert group.error_consistency == pytest.approx(
        summary.loc[list(people), "error_consistency"].mean())
    assert group.kind == "human" and np.isnan(group.mean_rank)
    excluded = benchmark_summary(pairs, exclude={"contrast": {"c10"}}).set_index("observer")
    only_c30 = pairs[pairs.condition == "c30"]
    assert excluded.loc["coin", "observed_consistency"] == pytest.approx(
        only_c30[only_c30.observer_b == "coin"].observed.mean())


def test_shape_bias_counts_shape_among_shape_or_texture_answers():
    trials = pd.DataFrame({
        "observer": ["resnet"] * 5, "kind": "machine",
        "image": ["cat1-elephant2.png", "cat2-elephant1.png", "dog1-clock3.png",
                  "dog2-dog1.png", "car1-bear1.png"],
        "category": ["cat", "cat", "dog", "dog", "car"],
        "response": ["elephant", "elephant", "dog", "dog", "knife"]})
    row = shape_bias(trials).iloc[0]
    # dog2-dog1 is left out (same category); car1-bear1 answered neither
    assert (row["n"], row["shape"], row["texture"]) == (4, 1, 2)
    assert row.shape_bias == pytest.approx(1 / 3)
    assert shape_bias(trials.assign(image="n01440764_1.png")).empty
