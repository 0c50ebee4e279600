"""Both engines raise the same unit's activation comparably (lucent through its own loop)."""
from __future__ import annotations

import pytest

from stimuli.errors import ModelError
from stimuli.registry import get_spec, load_model
from stimuli.render import Job, RenderSchedule, render_jobs

pytest.importorskip("lucent")


def test_lucent_and_own_engine_raise_the_same_unit():
    from stimuli.lucent_engine import render_lucent

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    layer, channel, steps = "bn3", 4, 25
    small = {"size": 96, "pad": 16}
    start = render_jobs(model, spec, [Job(layer, channel, 1)], RenderSchedule.for_steps(1, lr=0.0, **small))
    own = render_jobs(model, spec, [Job(layer, channel, 1)],
                      RenderSchedule(max_steps=steps, min_steps=steps, **small))[0]
    hooks_before = sum(len(m._forward_hooks) for m in model.modules())
    theirs = render_lucent(model, spec, layer, channel, steps=steps, **small)
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks_before
    base = float(start[0].activations[0])
    gain_own, gain_lucent = own.activations[0] - base, theirs.activations[0] - base
    assert gain_own > 0 and gain_lucent > 0
    assert 0.33 < gain_own / gain_lucent < 3.0
    low = render_lucent(model, spec, layer, channel, sign=-1, steps=steps, **small)
    assert low.activations[0] < base


def test_lucent_refuses_token_layers():
    from stimuli.lucent_engine import render_lucent

    with pytest.raises(ModelError, match="channels-first"):
        render_lucent(load_model("tiny-vit", pretrained=False), get_spec("tiny-vit"),
                      "blocks.0.fc1", 0, steps=1)
