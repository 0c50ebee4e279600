"""Calibration units (issue 17 item 3): each hand-set detector responds most to what its
construction says, its weights have rank 1 (the random controls' do not), a mixture is max(A,
m x B), `interpsy stimuli build` works on the model like on any other, and a pretrained
similarity observer (MIS) scores the random controls near chance and the detectors high."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.cli import main
from experiments.stimulus_set import load_stimulus_set
from experiments.study.calibration_units import MIXING, N_CONTROLS, calibration_units
from stimuli.layers import LayerRecorder, layer_widths
from stimuli.mining import normalizer
from stimuli.proxies import UnitSite, effective_rank
from stimuli.registry import get_spec, load_model

NAME = "calibration-net"


def _probe(kind: str) -> np.ndarray:
    y, x = np.mgrid[0:224, 0:224]
    image = np.full((224, 224, 3), 0.5)
    stripes = {"vertical": x, "horizontal": y, "diagonal": (x + y) / np.sqrt(2),
               "other diagonal": (x - y) / np.sqrt(2)}
    if kind in stripes:
        image[:] = (0.5 + 0.5 * np.sign(np.cos(2 * np.pi * stripes[kind] / 8)))[..., None]
    elif kind == "fine":
        image[:] = (0.5 + 0.5 * np.sign(np.cos(2 * np.pi * x / 3)))[..., None]
    elif kind == "red":
        image[:] = (0.9, 0.1, 0.1)
    elif kind == "blue":
        image[:] = (0.1, 0.1, 0.9)
    return np.rint(image * 255).astype(np.uint8)


PROBES = ("grey", "vertical", "horizontal", "diagonal", "other diagonal", "fine", "red", "blue")
EXPECTED = {0: "vertical", 1: "diagonal", 2: "horizontal", 3: "other diagonal", 4: "red",
            5: "blue", 7: "fine"}


@pytest.fixture(scope="module")
def responses():
    spec, model = get_spec(NAME), load_model(NAME, pretrained=True)
    images = torch.from_numpy(np.stack([_probe(k) for k in PROBES])).permute(0, 3, 1, 2)
    with LayerRecorder(model, spec, ["detectors", "mixtures"]) as recorder, torch.no_grad():
        out = recorder(model, normalizer(spec, torch.device("cpu"))(images))
    return {layer: value.numpy() for layer, value in out.items()}


def test_each_detector_responds_most_to_what_it_was_built_for(responses):
    detectors = responses["detectors"]
    for channel, probe in EXPECTED.items():
        assert PROBES[int(detectors[:, channel].argmax())] == probe, channel
    assert (detectors[PROBES.index("grey"), :8] < 0.01).all()  # grey: (almost) nothing


def test_a_mixture_is_the_max_of_its_two_detectors(responses):
    detectors, mixtures = responses["detectors"], responses["mixtures"]
    np.testing.assert_allclose(mixtures[:, 0], detectors[:, 0], rtol=1e-5)
    red = PROBES.index("red")
    assert mixtures[red, -1] == pytest.approx(detectors[red, 4], rel=1e-5)
    assert (np.diff(mixtures[red]) > 0).all()  # the red blob weighs more as m grows


def test_the_hand_set_weights_have_rank_one_and_the_controls_do_not():
    spec, model = get_spec(NAME), load_model(NAME)
    ranks = [effective_rank(UnitSite(model, spec, "detectors.conv", c)) for c in range(8)]
    ranks += [effective_rank(UnitSite(model, spec, "controls.conv", c))
              for c in range(N_CONTROLS)]
    assert ranks == [1] * 8 + [3] * N_CONTROLS


def test_the_construction_table_names_every_unit():
    spec, model = get_spec(NAME), load_model(NAME)
    widths = layer_widths(model, spec)
    units = calibration_units()
    assert widths == {"detectors": 8, "controls": N_CONTROLS, "checker": 1,
                      "mixtures": len(MIXING), "shortcuts": 2}
    assert [(u.layer, u.channel) for u in units] == [
        (layer, c) for layer, width in widths.items() for c in range(width)]
    assert {u.kind for u in units} == {"detector", "control", "mixture", "shortcut"}


def test_a_stimulus_set_is_built_from_calibration_units(image_folder, tmp_path):
    out = tmp_path / "calibration"
    assert main(["stimuli", "build", NAME, str(image_folder), str(out), "--unit", "detectors:0",
                 "--unit", "controls:1", "--unit", "mixtures:2", "--n-batches", "2",
                 "--n-bins", "4", "--no-render", "--workers", "0", "--no-progress"]) == 0
    stimulus_set = load_stimulus_set(out, verify_hashes=True)
    assert set(stimulus_set.units.layer) == {"detectors", "controls", "mixtures"}
    assert stimulus_set.manifest["weights"].startswith("hand-set")
    facts = stimulus_set.units.set_index("unit_id")
    assert facts.construction["calibration-net/detectors/0"] == "edge 0 deg"
    assert facts.construction_kind["calibration-net/controls/1"] == "control"
    assert facts.mixing["calibration-net/mixtures/2"] == "0.5"
    assert facts.known_order["calibration-net/mixtures/2"] == "0.75"
    assert main(["stimuli", "check", str(out), "--recompute", "40"]) == 0


@pytest.mark.slow
def test_mis_scores_the_random_controls_near_chance_and_the_detectors_high(tmp_path):
    from stimuli.images import sample_image_pool

    pool = tmp_path / "pool"
    sample_image_pool(pool, 480, seed=3, size=160)
    units = [f"controls:{c}" for c in range(N_CONTROLS)] + ["detectors:0", "detectors:4"]
    out = tmp_path / "set"
    assert main(["stimuli", "build", NAME, str(pool), str(out), *[a for u in units
                                                                   for a in ("--unit", u)],
                 "--n-batches", "6", "--no-render", "--workers", "0", "--no-progress"]) == 0
    assert main(["observe", str(out), "--backbone", "efficientnet-lite0", "--alpha", "8",
                 "--tasks-per-unit", "24", "--out", str(tmp_path / "mis")]) == 0
    answers = pd.read_parquet(tmp_path / "mis" / "responses.parquet")
    score = answers.groupby(answers.unit_id.str.split("/").str[1]).p_correct.mean()
    assert abs(score["controls"] - 0.5) < 0.07, score
    assert score["detectors"] > 0.75, score
