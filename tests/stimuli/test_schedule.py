"""The render schedule is explicit: IMI's by name, and `--steps N` runs N steps, recorded."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from experiments.stimulus_set import MANIFEST
from stimuli.errors import StimuliError
from stimuli.registry import get_spec, load_model
from stimuli.render import Job, RenderSchedule, render_jobs
from tests.stimuli.helpers import SMALL, assert_same_render


def test_imi_is_the_named_default_and_a_cap_keeps_its_rules():
    imi = RenderSchedule.for_steps()
    assert (imi.max_steps, imi.min_steps, imi.window, imi.ema, imi.plateau) == \
        (20_000, 2_500, 2_000, 0.99, 1.1)
    assert imi.name == "imi" and RenderSchedule.for_steps(20_000).name == "imi"
    capped = RenderSchedule.for_steps(5_000)
    assert (capped.max_steps, capped.min_steps, capped.name) == (5_000, 2_500, "custom")
    short = RenderSchedule.for_steps(60)
    assert (short.max_steps, short.min_steps) == (60, 60)  # below IMI's minimum: exactly 60
    with pytest.raises(StimuliError, match="min_steps"):
        RenderSchedule.for_steps(100, min_steps=200)


def test_steps_n_runs_n_steps():
    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule.for_steps(40, size=SMALL["size"], pad=SMALL["pad"])
    result = render_jobs(model, spec, [Job("bn1", 0, 1), Job("bn1", 1, -1, n=2, alpha=1.0)],
                         schedule)
    assert [r.steps for r in result] == [40, 40]


def test_the_steps_each_image_ran_are_in_units_csv(image_folder, tmp_path):
    from stimuli.build import BuildOptions, build_stimulus_set

    out = build_stimulus_set("tiny-cnn", image_folder, tmp_path / "set",
        BuildOptions(n_units=1, seed=3,
                     pretrained=False, n_batches=2, render_steps=6, n_diverse=2,
                     max_exponent=0, binary_steps=0, workers=0, progress=False))
    with open(out / "units.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    for column in ("fv_steps_max", "fv_steps_min", "fv_steps_diverse_max",
                   "fv_steps_diverse_min"):
        assert row[column] == "6", column
    for side in ("max", "min"):  # how alike the diverse images look, between -1 and 1
        assert -1 <= float(row[f"fv_histogram_corr_{side}"]) <= 1
    parameters = json.loads((out / MANIFEST).read_text())["parameters"]
    render = parameters["render"]
    assert parameters["mining"]["batch_size"] == 16  # the CPU's mining batch (lean, as fast)
    assert (render["max_steps"], render["min_steps"], render["schedule"]) == (6, 6, "custom")
    # the arithmetic's batch sizes: one job per forward pass on the CPU, cut into passes of 2
    # images, 64 images per loop
    assert (render["forward_batch"], render["pass_images"], render["max_batch"],
            render["schedule_base"], render["channels_last"]) == (0, 2, 64, "imi", True)


def test_a_unit_renders_the_same_alone_and_in_a_group():
    from stimuli.render import DiversitySearch, UnitTarget, render_units

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule.for_steps(6, size=SMALL["size"], pad=SMALL["pad"])
    # bn3's kernels sum by batch size
    units = [UnitTarget("bn3", c, 9.0, -9.0, 10 + c) for c in range(3)]
    search = DiversitySearch(n_diverse=2, alpha=1.0)
    group = render_units(model, spec, units, schedule, search, seed=5)
    alone = render_units(model, spec, units[1:2], schedule, search, seed=5)[0]
    # one optimisation batch for all three units: each job still has a forward pass of its own
    wide = render_units(model, spec, units, RenderSchedule.for_steps(6, max_batch=256, **SMALL),
                        search, seed=5)
    for side in ("max", "min"):
        for kind in ("plain", "diverse"):
            for other in (group, wide):  # byte for byte, not only within float rounding
                assert np.array_equal(other[1].results[side][kind].images,
                                      alone.results[side][kind].images), (side, kind)


def test_diversity_as_imi_best_of_nine_sorted_and_searched_up_to_1e5():
    from stimuli.render import DiversitySearch, UnitTarget, render_units

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule.for_steps(3, size=SMALL["size"], pad=SMALL["pad"])
    # targets every render beats: the search climbs 1, 10, ... as far as IMI's 1e5
    (unit,) = render_units(model, spec, [UnitTarget("bn1", 0, -1e9, 1e9, 0)], schedule,
                           DiversitySearch(n_diverse=3, binary_steps=0))
    for side, stronger in (("max", max), ("min", min)):
        record = unit.results[side]
        assert [alpha for alpha, _ in record["tried"]] == [1.0, 10.0, 100.0, 1e3, 1e4, 1e5]
        candidates = record["plain_candidates"]
        assert len(candidates) == 9
        assert record["plain"].activations[0] == pytest.approx(stronger(candidates))
        acts = list(record["diverse"].activations)
        assert acts == sorted(acts, reverse=side == "max")  # the strongest first


def _renders_by_pass(jobs: list[Job], steps: int, cuts: dict[str, list[int]], **fixed
                     ) -> dict[str, list]:
    """Each cut's (`forward_batch=5`-style keyword) render of the jobs on tiny-cnn, checking the
    images of its first step's forward passes; all renders match the first cut's."""
    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    renders = {}
    try:
        for cut, per_step in cuts.items():
            seen.clear()
            key, value = cut.split("=")
            schedule = RenderSchedule.for_steps(steps, **{key: int(value)}, **SMALL)
            renders[cut] = render_jobs(model, spec, jobs, schedule, seed=1)
            assert seen[:len(per_step)] == per_step, cut
    finally:
        handle.remove()
    first, *others = renders.values()
    for other in others:
        for one, another in zip(first, other, strict=True):
            np.testing.assert_allclose(another.activations, one.activations, rtol=0.01)
            assert_same_render(one.images, another.images)
    return renders


def test_forward_batches_split_a_step_by_whole_jobs_and_keep_each_jobs_images():
    """A step's forward passes hold at most `forward_batch` images, whole jobs (0: one job per
    pass); the images are the same whichever way the step is cut."""
    jobs = [Job("bn1", 1, -1, n=3, alpha=1.0, seed=7), Job("bn1", 0, 1, n=2, seed=3),
            Job("bn2", 2, 1, n=3, alpha=2.0, seed=9)]
    # whole jobs: 3 + 2, then 3
    _renders_by_pass(jobs, 4, {"forward_batch=0": [3, 2, 3], "forward_batch=5": [5, 3],
                               "forward_batch=64": [8]})


@pytest.mark.parametrize("channels, stride", [(16, 2), (64, 16)])  # many or few positions
def test_a_diverse_jobs_parts_get_the_whole_penalty_gradient(channels, stride):
    """Cut into parts, each part's share of the diversity penalty (the other parts' Grams held
    fixed) gives its images the gradient the whole penalty gives them, through a convolution
    and a BatchNorm as in a model, whichever form stands for the Grams (the Gram itself, or a
    factor where positions are few) and in parts of 1 image too."""
    import torch

    from stimuli.objectives import diversity_part, diversity_penalty, gram_vectors

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, stride, 1),
                                torch.nn.BatchNorm2d(channels)).eval()
    images = torch.rand(5, 3, 48, 48)
    whole = images.clone().requires_grad_(True)
    diversity_penalty({"l": layer(whole)}, {"l": "channels_first"},
                      [(("l",), list(range(5)))]).sum().backward()
    with torch.no_grad():
        fixed = gram_vectors(layer(images), "channels_first", 5)
    for lo, hi in ((0, 2), (2, 3), (3, 5)):
        part = images[lo:hi].clone().requires_grad_(True)
        others = torch.cat([fixed[:lo], fixed[hi:]])
        diversity_part(gram_vectors(layer(part), "channels_first", 5), others, 5).backward()
        torch.testing.assert_close(part.grad, whole.grad[lo:hi], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("layout, shape", [("channels_first", (6, 48, 3, 3)),
                                           ("channels_last", (6, 3, 3, 48)),
                                           ("tokens", (6, 5, 48)), ("channels_first", (6, 48))])
def test_the_penalty_is_the_mean_pairwise_cosine_of_the_grams_in_either_form(layout, shape):
    """Where positions are few the penalty is computed from factors of the Grams (cheaper):
    the same mean pairwise cosine of the channel Gram matrices as IMI's."""
    import torch

    from stimuli.objectives import diversity_penalty, gram, gram_vectors

    features = torch.randn(*shape, dtype=torch.float64)
    if len(shape) == 4:  # a factor, not the C x C Gram itself
        assert gram_vectors(features, layout, 6).shape[1:] != (48 * 48,)
    grams = torch.nn.functional.normalize(gram(features, layout), dim=1)
    cosines = grams @ grams.T
    expected = (cosines.sum() - cosines.diagonal().sum()) / 30
    got = diversity_penalty({"l": features}, {"l": layout}, [(("l",), list(range(6)))])[0]
    torch.testing.assert_close(got, expected.float())  # the renderer sums in float32


def test_pass_images_cut_each_job_and_keep_its_images():
    """`pass_images` cuts a job's forward pass into passes of at most that many images (the
    CPU's lean default); the images stay those of one pass per job within float rounding."""
    jobs = [Job("bn1", 1, -1, n=5, alpha=1.0, seed=7), Job("bn2", 0, 1, n=4, seed=3),
            Job("bn2", 2, 1, n=2, alpha=2.0, seed=9)]
    # cut: every step, the diverse job's parts after the first are seen without gradient
    _renders_by_pass(jobs, 6, {"pass_images=0": [5, 4, 2] * 2,
                               "pass_images=2": [1, 2, 2, 1, 2, 2, 2, 2] * 2})


def test_the_diversity_layer_is_where_the_diverse_images_grams_are_compared():
    """`diversity_layers`: the penalty compares the images' Gram matrices at that layer; the
    unit's own layer (()) is IMI's. Pushed apart at bn1, the images' bn1 Grams end less alike
    than when pushed apart at the unit's bn3."""
    import torch

    from stimuli.layers import LayerRecorder
    from stimuli.objectives import diversity_penalty

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    schedule = RenderSchedule.for_steps(12, **SMALL)
    renders = {layer: render_jobs(model, spec, [Job("bn3", 1, 1, n=4, alpha=50.0, seed=7,
                                                    diversity_layers=layer)], schedule,
                                      seed=1)[0]
               for layer in ((), ("bn3",), ("bn1",))}
    np.testing.assert_array_equal(renders[("bn3",)].images, renders[()].images)
    assert not np.array_equal(renders[("bn1",)].images, renders[()].images)

    def likeness(images: np.ndarray, layer: str) -> float:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad(), LayerRecorder(model, spec, [layer], keep="full") as recorder:
            outputs = recorder(model, x)
        return float(diversity_penalty(outputs, {layer: spec.layout(layer)},
                                       [((layer,), list(range(len(images))))])[0])

    assert likeness(renders[("bn1",)].images, "bn1") < likeness(renders[()].images, "bn1")


def test_several_diversity_layers_average_their_penalties_and_render_their_own_images():
    """`diversity_layers` ("unit": the unit's own): the penalty is the mean of each layer's mean
    pairwise Gram cosine, so the images differ from either layer's alone; ("unit",) and the
    unit's layer by name are IMI's default."""
    import torch

    from stimuli.layers import LayerRecorder
    from stimuli.objectives import diversity_penalty

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    layouts = {layer: spec.layout(layer) for layer in ("bn1", "bn3")}
    with torch.no_grad(), LayerRecorder(model, spec, ["bn1", "bn3"], keep="full") as recorder:
        outputs = recorder(model, torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    rows = [0, 1, 2, 3]
    each = [float(diversity_penalty(outputs, layouts, [((layer,), rows)])[0])
            for layer in ("bn1", "bn3")]
    both = float(diversity_penalty(outputs, layouts, [(("bn3", "bn1"), rows)])[0])
    assert both == pytest.approx(sum(each) / 2, rel=1e-6) and each[0] != pytest.approx(each[1])
    assert Job("bn3", 1, 1, n=4, alpha=1.0, diversity_layers=("unit", "bn1")).gram_layers == (
        "bn3", "bn1")
    schedule = RenderSchedule.for_steps(12, **SMALL)
    renders = {layers: render_jobs(model, spec, [Job("bn3", 1, 1, n=4, alpha=50.0, seed=7,
                                                     diversity_layers=layers)],
                                   schedule, seed=1)[0].images
               for layers in ((), ("unit",), ("bn3",), ("bn1",), ("unit", "bn1"))}
    np.testing.assert_array_equal(renders[("unit",)], renders[()])
    np.testing.assert_array_equal(renders[("bn3",)], renders[()])
    for alone in ((), ("bn1",)):
        assert not np.array_equal(renders[("unit", "bn1")], renders[alone])


def test_a_diverse_job_cut_into_passes_keeps_its_images_with_several_diversity_layers():
    # seed 2: tiny-cnn's ReLUs carry some seeds' float rounding to whole grey levels within
    # six steps (seed 7 here, seeds 1 and 3 with the unit's layer alone), a property of the
    # model and not of the cut: the first steps' gradients agree within 5e-9 at every seed
    jobs = [Job("bn3", 1, -1, n=5, alpha=1.0, seed=2, diversity_layers=("unit", "bn1")),
            Job("bn2", 0, 1, n=2, seed=3)]
    _renders_by_pass(jobs, 6, {"pass_images=0": [5, 2] * 2,
                               "pass_images=2": [1, 2, 2, 1, 2, 2] * 2})


def test_a_diverse_job_cut_into_passes_keeps_its_images_with_another_diversity_layer():
    jobs = [Job("bn3", 1, -1, n=5, alpha=1.0, seed=7, diversity_layers=("bn1",)),
            Job("bn2", 0, 1, n=2, seed=3)]
    # the diverse job's parts after the first seen without gradient at bn1, then all with it
    _renders_by_pass(jobs, 6, {"pass_images=0": [5, 2] * 2,
                               "pass_images=2": [1, 2, 2, 1, 2, 2] * 2})


def test_the_cpu_passes_are_lean_by_default_and_one_knob_at_a_time():
    from stimuli.render import CPU_PASS_IMAGES, schedule_for

    cpu = schedule_for("cpu", None, None, None, None, 64, None, "cpu")
    assert (cpu.forward_batch, cpu.pass_images, cpu.channels_last) == (0, CPU_PASS_IMAGES, True)
    gpu = schedule_for("cpu", None, None, None, None, 64, None, "cuda")
    assert (gpu.forward_batch, gpu.pass_images, gpu.channels_last) == (64, 0, False)
    assert not schedule_for("cpu", None, None, None, None, 64, None, "cpu",
                            channels_last=False).channels_last
    assert schedule_for("cpu", None, None, None, None, 64, 0, "cpu", 0).pass_images == 0
    assert schedule_for("cpu", None, None, None, None, 64, 8, "cpu").pass_images == 0
    with pytest.raises(StimuliError, match="set one of them"):
        RenderSchedule.for_steps(10, forward_batch=8, pass_images=3)


def test_channels_last_feeds_the_model_channels_last_and_keeps_the_images():
    """`channels_last` (the CPU's default: its convolutions run faster so) runs the model on
    channels-last inputs and weights, hands the model back as it was, and changes the images
    only by float rounding."""
    import torch

    spec = get_spec("tiny-cnn")
    model = load_model("tiny-cnn", pretrained=False)
    layouts: list[bool] = []
    handle = model.register_forward_pre_hook(lambda module, args: layouts.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    jobs = [Job("bn3", 1, -1, n=5, alpha=1.0, seed=7), Job("bn2", 0, 1, n=2, seed=3)]
    try:
        renders = {on: render_jobs(model, spec, jobs, RenderSchedule.for_steps(
            6, pass_images=2, channels_last=on, **SMALL), seed=1) for on in (False, True)}
    finally:
        handle.remove()
    half = len(layouts) // 2  # each render's step passes, then its final pass
    assert not any(layouts[:6]) and all(layouts[half:])
    assert all(p.is_contiguous() for p in model.parameters())
    for plain, fast in zip(renders[False], renders[True], strict=True):
        np.testing.assert_allclose(fast.activations, plain.activations, rtol=0.01)
        assert_same_render(plain.images, fast.images)


def test_a_forward_batch_below_a_diverse_job_is_refused():
    with pytest.raises(StimuliError, match="forward batch 4 .* 8 diverse images"):
        RenderSchedule.for_steps(10, forward_batch=4).check_jobs([Job("bn1", 0, 1, n=8,
                                                                     alpha=1.0)])


def test_the_cpu_schedule_is_named_and_recorded():
    cpu = RenderSchedule.cpu()
    assert cpu.name == "cpu" and cpu.max_steps == 512 and cpu.lr == 0.05
    assert cpu.min_steps < cpu.max_steps  # a plateau may end it early
    assert RenderSchedule.for_steps(512).name == "custom"


def test_histogram_correlation_tells_look_alike_textures_from_varied_images():
    from stimuli.images import histogram_correlation

    rng = np.random.default_rng(0)
    grey = rng.normal(128, 20, (4, 32, 32, 3)).clip(0, 255).astype(np.uint8)
    assert histogram_correlation(grey) > 0.9
    varied = np.stack([rng.normal(mean, 20, (32, 32, 3)).clip(0, 255).astype(np.uint8)
                       for mean in (40, 100, 160, 220)])
    assert histogram_correlation(varied) < 0.1
    assert np.isnan(histogram_correlation(grey[:1]))
