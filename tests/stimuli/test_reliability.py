"""Feature-visualization reliability (issues 17 and 27): images that drive the planted shortcut
unit through the checkerboard detector are flagged at that layer, while images that drive it
the way its natural exemplars do, and its twin without the shortcut, are not; only channels
that reach the unit are compared; the flag is calibrated against a null of natural exemplars."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stimuli.layers import relevant_layers
from stimuli.registry import get_spec, load_model
from stimuli.reliability import (
    ALPHA,
    deciding_layer,
    earlier_layers,
    null_p_value,
    path_percentiles,
    path_scores,
    route_layers,
)


def _stripes(n: int, seed: int, period: float = 8.0) -> torch.Tensor:
    """Vertical stripes at jittered period and phase, with a little noise: what the edge
    detector's natural exemplars look like."""
    rng = np.random.default_rng(seed)
    x = np.arange(224)[None, :]
    out = []
    for _ in range(n):
        wave = np.cos(2 * np.pi * (x + rng.uniform(0, 8)) / (period * rng.uniform(0.9, 1.1)))
        image = 0.5 + 0.35 * np.repeat(wave, 224, 0)[..., None] + rng.normal(0, 0.05, (224, 224, 3))
        out.append(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def _checkers(n: int, seed: int) -> torch.Tensor:
    """Fine checkerboards: what a visualization of the shortcut unit finds."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:224, 0:224]
    out = []
    for _ in range(n):
        dx, dy = rng.integers(0, 4, 2)
        board = np.cos(2 * np.pi * (x + dx) / 4) * np.cos(2 * np.pi * (y + dy) / 4)
        image = 0.5 + 0.4 * board[..., None] + rng.normal(0, 0.03, (224, 224, 3))
        out.append(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def test_the_path_percentile_is_the_share_of_nearer_natural_paths():
    natural = np.array([[1.0, 0.0], [0.9, 0.1], [1.0, 0.1], [0.95, 0.05]])
    assert path_percentiles(natural, np.array([[1.0, 0.05]])) < 0.5
    assert path_percentiles(natural, np.array([[0.0, 1.0]])) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def calibration():
    spec = get_spec("calibration-net")
    model = load_model("calibration-net")
    layers = earlier_layers(relevant_layers(model, spec), "shortcuts")
    return spec, model, layers


def test_a_planted_shortcut_is_flagged_and_an_ordinary_route_and_the_twin_are_not(calibration):
    spec, model, layers = calibration
    assert layers == ["detectors", "controls", "checker", "mixtures", "shortcuts:input"]
    natural = _stripes(40, seed=0)
    shortcut = path_scores(model, spec, natural, _checkers(9, seed=1), "shortcuts", 0, layers)
    ordinary = path_scores(model, spec, natural, _stripes(9, seed=2), "shortcuts", 0, layers)
    twin = path_scores(model, spec, natural, _checkers(9, seed=1), "shortcuts", 1, layers)
    # what reaches the units: the edge and the checkerboard channel; the twin's edge alone
    assert shortcut["shortcuts:input"]["channels"] == 2
    assert twin["shortcuts:input"]["channels"] == 1 and twin["mixtures"]["channels"] == 0
    assert shortcut["shortcuts:input"]["p_value"] < ALPHA  # the route through the checker
    assert ordinary["shortcuts:input"]["p_value"] >= ALPHA
    route = route_layers(relevant_layers(model, spec), "shortcuts")
    assert deciding_layer(shortcut, route) == "shortcuts:input"
    assert deciding_layer(twin, route) is None  # one route only: nothing to flag


def test_a_norm_layer_unit_is_compared_where_more_than_its_own_channel_reaches_it():
    """efficientnet-lite0's `_blocks.13._bn1` unit c reads channel c of a depthwise convolution,
    which reads channel c of `_bn0`: the 191 other channels at its input cannot reach it (they
    made every lite0 unit an outlier); the check decides at the previous block's output."""
    spec = get_spec("efficientnet-lite0")
    model = load_model("efficientnet-lite0", pretrained=False)
    every = relevant_layers(model, spec)
    route = route_layers(every, "_blocks.13._bn1")
    assert route[:2] == ["_blocks.13._bn1:input", "_blocks.13._bn0"]
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 3, 224, 224),
                                                                 dtype=np.uint8))
    scores = path_scores(model, spec, images[:4], images[4:], "_blocks.13._bn1", 5, route)
    assert scores["_blocks.13._bn1:input"]["channels"] == 1
    assert scores["_blocks.13._bn0"]["channels"] == 1
    decides = deciding_layer(scores, route)
    assert decides == route[2] and scores[decides]["channels"] > 2


def test_the_null_keeps_naturals_against_naturals_and_flags_a_far_set():
    rng = np.random.default_rng(1)
    natural = rng.normal([1.0, 0.3, 0.2], 0.1, (45, 3))
    same = rng.normal([1.0, 0.3, 0.2], 0.1, (9, 3))
    far = rng.normal([0.2, 0.3, 1.0], 0.1, (9, 3))
    assert null_p_value(natural, float(np.median(path_percentiles(natural, same))), 9) > 0.05
    assert null_p_value(natural, float(np.median(path_percentiles(natural, far))), 9) < ALPHA


def test_check_reliability_flags_the_shortcut_unit_in_a_set(image_folder, tmp_path, capsys):
    """A built set whose visualizations are what an optimiser finds (checkerboards for the
    shortcut unit, stripes for the plain edge unit): the check flags only the shortcut, writes
    its columns and table, and the set stays valid."""
    import csv
    import json

    from PIL import Image

    from experiments.cli import main
    from experiments.stimulus_set import load_stimulus_set
    from experiments.stimulus_set.writer import write_tables
    from stimuli.occlusion_set import _read_rows

    out = tmp_path / "set"
    assert main(["stimuli", "build", "calibration-net", str(image_folder), str(out),
                 "--unit", "shortcuts:0", "--unit", "shortcuts:1", "--n-batches", "3",
                 "--n-bins", "8", "--no-render", "--workers", "0", "--no-progress"]) == 0
    assert main(["stimuli", "check", str(out), "--reliability"]) == 2
    assert "no feature visualizations to check" in capsys.readouterr().err
    rows = _read_rows(out / "images.csv")
    # 21 natural exemplars against 9 visualizations: enough for the null to flag at 1 %
    for channel, pictures in ((0, _checkers(9, 5)), (1, _stripes(9, 6))):
        for side in ("max", "min"):
            for rank, picture in enumerate(pictures):
                rel = f"images/synthetic/s{channel}/{side}{rank}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture.permute(1, 2, 0).numpy()).save(out / rel)
                rows.append({"image_id": f"s{channel}.{side}{rank}",
                             "unit_id": f"calibration-net/shortcuts/{channel}",
                             "kind": "synthetic", "role": f"reference_{side}", "batch": 0,
                             "rank": rank, "activation": "", "path": rel, "difficulty": ""})
    write_tables(out, json.loads((out / "stimuli.json").read_text()),
                 _read_rows(out / "units.csv"), rows)
    assert main(["stimuli", "check", str(out), "--reliability"]) == 0
    said = capsys.readouterr().out
    assert "1 of 2 units reached by a route" in said and "shortcuts/0" in said
    units = {r["unit_id"]: r for r in csv.DictReader((out / "units.csv").read_text().splitlines())}
    assert units["calibration-net/shortcuts/0"]["fv_reliable"] == "false"
    assert units["calibration-net/shortcuts/1"]["fv_reliable"] == "true"
    assert units["calibration-net/shortcuts/0"]["fv_path_layer"] == "shortcuts:input"
    assert (out / "reliability.csv").is_file()
    stimulus_set = load_stimulus_set(out, verify_hashes=True)
    assert stimulus_set.manifest["reliability"]["flagged"] == ["calibration-net/shortcuts/0"]
