"""Task building invariants (hypothesis): balance, no repeats, batches, catch, a/b, determinism."""
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.errors import SpecError
from experiments.stimulus_set import load_stimulus_set
from experiments.study.design import design_frame, plan
from experiments.study.spec import parse_spec
from tests.stimset import make_stimulus_set


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("design")
    first = make_stimulus_set(root, "alpha", model="alphanet", n_units=22, n_batches=3,
                              difficulties=("easy", "p85"), image_size=8)
    second = make_stimulus_set(root, "beta", model="betanet", n_units=14, n_batches=2,
                               synthetic=True, image_size=8, seed=1)
    return [load_stimulus_set(first), load_stimulus_set(second)]


def _spec(**values):
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in values.items() if not isinstance(v, dict)]
    for section, table in ((k, v) for k, v in values.items() if isinstance(v, dict)):
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v!r}".replace("'", '"') for k, v in table.items())
    return parse_spec("\n".join(lines))


spec_values = st.fixed_dictionaries({
    "name": st.just("prop"),
    "stimulus_sets": st.just(["a", "b"]),
    "seed": st.integers(0, 2**31),
    "conditions": st.lists(st.sampled_from(["natural", "synthetic", "mixed", "none"]),
                           min_size=1, max_size=3, unique=True),
    "difficulty": st.lists(st.sampled_from(["easy", "p85"]), min_size=1, max_size=2, unique=True),
    "main_trials_per_task": st.integers(1, 8),
    "catch_trials_per_task": st.integers(0, 3),
    "responses_per_unit": st.integers(1, 7),
    "task": st.fixed_dictionaries({"references_per_side": st.integers(1, 9)}),
    "task_units": st.sampled_from(["per_set", "pooled"]),
    "practice": st.fixed_dictionaries({"trials": st.integers(0, 3)}),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=spec_values)
def test_design_invariants(sets, values):
    spec = _spec(**values)
    if spec.difficulty != ["easy"] and spec.task_units == "per_set":
        spec = spec.model_copy(update={"stimulus_sets": ["a"]})
    chosen = sets[:1] if "p85" in spec.difficulty else sets
    design = plan(spec, chosen)
    frame = design_frame(design)
    main = frame[frame.phase == "main"]
    practice_units = {u for u, r in design.unit_roles.items() if r == "practice"}
    catch_units = {u for u, r in design.unit_roles.items() if r == "catch"}
    assert not practice_units & catch_units

    for task in design.tasks:
        block = [t.unit.unit_id for t in task.main]
        assert len(block) == len(set(block)), "a unit appears twice in one task"
        assert len(block) == spec.main_trials_per_task + spec.catch_trials_per_task
        for trials in (task.main, task.practice):
            counts = Counter(t.answer_key for t in trials)
            assert abs(counts["a"] - counts["b"]) <= 1, "max query side unbalanced"
        assert {t.unit.unit_id for t in task.practice} <= practice_units
        assert len(task.practice) == spec.practice.trials
        assert all(t.is_catch == (t.unit.unit_id in catch_units) for t in task.main)

    scored = main[~main.is_catch]
    per_cell = scored.groupby(["condition", "difficulty", "unit_id"]).size()
    for (_condition, _difficulty), counts in per_cell.groupby(level=[0, 1]):
        assert counts.min() >= spec.responses_per_unit
        assert counts.max() - counts.min() <= 1
        assert counts.max() <= spec.responses_per_unit + 1
    # Where it divides, exactly the requested number.
    for group in {t.unit_group for t in design.tasks}:
        units = scored[scored.task_id.isin([t.task_key for t in design.tasks if t.unit_group == group])]
        n_units = units.unit_id.nunique()
        if (n_units * spec.responses_per_unit) % spec.main_trials_per_task == 0:
            assert set(units.groupby(["condition", "difficulty", "unit_id"]).size()) == {spec.responses_per_unit}

    # Reference batches cycle per unit: within a cell, batch uses differ by at most one.
    for _, uses in scored.groupby(["condition", "difficulty", "unit_id"]):
        batch_counts = Counter(uses.batch)
        n_batches = 3 if uses.unit_id.iloc[0].startswith("alphanet") else 2
        values_ = [batch_counts.get(b, 0) for b in range(n_batches)]
        assert max(values_) - min(values_) <= 1

    # Catch trials are obvious: the queries are among the references shown.
    for row in main[main.is_catch].itertuples():
        q_max = row.query_a if row.answer_key == "a" else row.query_b
        q_min = row.query_b if row.answer_key == "a" else row.query_a
        assert q_max in row.references_max and q_min in row.references_min

    # Normal trials never show a query among the references.
    for row in scored.itertuples():
        assert row.query_a not in row.references_max + row.references_min
    refs = scored.references_max.map(len)
    expected = spec.task.params.references_per_side
    assert set(refs[scored.condition != "none"]) <= {expected}
    assert set(refs[scored.condition == "none"]) <= {0}


def test_catch_positions_are_random(sets):
    spec = _spec(name="c", stimulus_sets=["a"], main_trials_per_task=8, catch_trials_per_task=3,
                 responses_per_unit=6, conditions=["natural"])
    design = plan(spec, sets[:1])
    positions = {tuple(t.position for t in task.main if t.is_catch) for task in design.tasks}
    assert len(design.tasks) >= 5 and len(positions) > 1


def test_same_seed_same_design_other_seed_differs(sets):
    values = dict(name="d", stimulus_sets=["a", "b"], main_trials_per_task=5, responses_per_unit=4)
    first = design_frame(plan(_spec(seed=3, **values), sets))
    again = design_frame(plan(_spec(seed=3, **values), sets))
    other = design_frame(plan(_spec(seed=4, **values), sets))
    assert first.equals(again)
    assert not first.equals(other)


def test_mixed_condition_puts_synthetic_first(sets):
    spec = _spec(name="m", stimulus_sets=["a"], conditions=["mixed"], main_trials_per_task=4,
                 responses_per_unit=1, catch_trials_per_task=0)
    trial = plan(spec, sets[:1]).tasks[0].main[0]
    kinds = [ref.split(".")[3] for ref in trial.stimulus["references_max"]]
    assert kinds == ["s"] * 4 + ["n"] * 5


@pytest.mark.parametrize("values, message", [
    (dict(main_trials_per_task=30), "has only 17 units left"),
    (dict(task={"references_per_side": 12}), "references_per_side is 12"),
    (dict(difficulty=["p95"]), "difficulty 'p95'"),
    (dict(catch={"units": ["nope/x/1"]}), "catch.units: unit 'nope/x/1' is not in the stimulus sets"),
])
def test_design_errors_are_specific(sets, values, message):
    base = dict(name="e", stimulus_sets=["a"], main_trials_per_task=5, catch_trials_per_task=0,
                responses_per_unit=2)
    base.update(values)
    if "catch" in values:
        base["catch_trials_per_task"] = 1
    with pytest.raises(SpecError, match=message):
        plan(_spec(**base), sets[:1])
