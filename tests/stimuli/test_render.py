"""The renderer raises (max) or lowers (min) each layout's objective; search and early stop."""
from __future__ import annotations

import numpy as np
import pytest

from stimuli.registry import get_spec, load_model
from stimuli.render import Job, JobResult, RenderSchedule, _advance, _Search, render_jobs
from tests.stimuli.helpers import LAYOUT_CASES, SMALL, assert_same_render, check_renderer_moves


@pytest.mark.parametrize("name,layer,channel,layout", LAYOUT_CASES)
def test_renderer_moves_objective(name, layer, channel, layout):
    spec = get_spec(name)
    assert spec.layout(layer) == layout
    check_renderer_moves(load_model(name, pretrained=False), spec, layer, channel, "cpu")


def test_early_stop_on_plateau():
    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule(max_steps=200, min_steps=10, window=6, plateau=10.0, **SMALL)
    result = render_jobs(model, spec, [Job("bn1", 0, 1)], schedule)[0]
    # IMI's check first runs once more than max(min_steps, window) smoothed norms are in, and
    # the (loose) plateau test passes there
    assert result.steps == 11


def test_batched_equals_one_at_a_time():
    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule(max_steps=5, min_steps=5, **SMALL)
    jobs = [Job("bn1", 1, -1, n=2, alpha=1.0, seed=7), Job("bn1", 0, 1, seed=3),
            Job("bn1", 2, 1, seed=9)]
    batched = render_jobs(model, spec, jobs, schedule, seed=1)
    for job, together in zip(jobs, batched, strict=True):
        alone = render_jobs(model, spec, [job], schedule, seed=1)[0]
        assert_same_render(alone.images, together.images)


def _result(acts, alpha):
    return JobResult(np.zeros((len(acts), 1, 1, 3), np.uint8), np.array(acts), 1, alpha)


def test_alpha_search_exponential_then_binary():
    s = _Search("max", 0, target=5.0, alpha=1.0)
    _advance(s, _result([6, 7], 1.0), False, 4, 2)   # 1 beats -> 10
    assert s.alpha == 10.0
    _advance(s, _result([4, 7], 10.0), False, 4, 2)  # 10 fails -> binary (1 + 10) / 2
    assert s.alpha == 5.5 and s.phase == "binary"
    _advance(s, _result([6, 6], 5.5), False, 4, 2)   # 5.5 beats -> (5.5 + 10) / 2
    assert s.alpha == 7.75
    _advance(s, _result([1, 6], 7.75), False, 4, 2)
    assert s.done and s.best.alpha == 5.5
    m = _Search("min", 0, target=-5.0, alpha=1.0)
    _advance(m, _result([-4, -6], 1.0), False, 4, 1)  # weakest (-4) does not beat -5
    assert m.alpha == 0.5 and m.lo == 0.0
    _advance(m, _result([-4, -6], 0.5), False, 4, 1)
    assert m.done and m.best is None


def test_when_no_weight_beats_the_exemplars_the_non_diverse_renders_stand_in():
    """IMI's fallback: the diverse set is the strongest non-diverse renders, alpha 0 (before,
    the last failing diverse batch was kept)."""
    from stimuli.render import DiversitySearch, UnitTarget, render_units

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule(max_steps=3, min_steps=3, **SMALL)
    search = DiversitySearch(n_diverse=3, alpha=1.0, n_plain=4)
    visual = render_units(model, spec, [UnitTarget("bn1", 0, 1e9, -1e9, 0)], schedule, search,
                          seed=2)[0]
    for side in ("max", "min"):
        record = visual.results[side]
        assert not record["beats"] and record["fallback_non_diverse"]
        assert record["alpha"] == 0.0 and len(record["diverse"].images) == 3
        assert_same_render(record["diverse"].images[:1], record["plain"].images)
        acts = record["diverse"].activations
        assert list(acts) == sorted(acts, reverse=side == "max")
    reachable = render_units(model, spec, [UnitTarget("bn1", 0, -1e9, 1e9, 0)], schedule,
                             search, seed=2)[0]
    assert reachable.results["max"]["beats"] and reachable.results["max"]["alpha"] == 1.0
    assert not reachable.results["max"]["fallback_non_diverse"]


def test_non_diverse_stand_ins_that_beat_the_exemplars_are_said_to_beat_them():
    """When no diversity weight beats the exemplars but the strongest non-diverse renders do,
    the set shows images that beat them: `beats` says so (units.csv's fv_beats_natural is
    checked against the images shown, and a build failed on the contradiction)."""
    from stimuli.render import DiversitySearch, UnitTarget, render_units

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule(max_steps=6, min_steps=6, **SMALL)
    search = DiversitySearch(n_diverse=3, alpha=1e6, n_plain=4)  # a weight no image survives
    probe = render_units(model, spec, [UnitTarget("bn1", 0, 1e9, -1e9, 0)], schedule, search,
                         seed=2)[0]
    plain, diverse = probe.results["max"]["plain_candidates"], probe.results["max"]["tried"]
    weakest_plain = sorted(plain, reverse=True)[2]  # the third strongest stand-in
    visual = render_units(model, spec, [UnitTarget("bn1", 0, weakest_plain - 1e-6, -1e9, 0)],
                          schedule, search, seed=2)[0]
    record = visual.results["max"]
    assert record["fallback_non_diverse"], diverse  # no diverse batch beat the target
    assert record["beats"] and record["alpha"] == 0.0
    assert record["diverse"].activations.min() > weakest_plain - 1e-6
