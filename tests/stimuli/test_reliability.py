"""Feature-visualization reliability (issue 17 item 4): images that drive the planted shortcut
unit through the checkerboard detector are flagged at that layer, while images that drive it
the way its natural exemplars do are not; the path percentile is a plain share."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stimuli.layers import relevant_layers
from stimuli.registry import get_spec, load_model
from stimuli.reliability import OUTLIER, earlier_layers, path_percentiles, path_scores


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


def test_a_planted_shortcut_is_flagged_and_an_ordinary_route_is_not(calibration):
    spec, model, layers = calibration
    assert layers == ["detectors", "controls", "checker", "mixtures", "shortcuts:input"]
    natural = _stripes(40, seed=0)
    shortcut = path_scores(model, spec, natural, _checkers(9, seed=1), layers)
    ordinary = path_scores(model, spec, natural, _stripes(9, seed=2), layers)
    assert np.median(shortcut["shortcuts:input"]) > OUTLIER  # the route through the checker
    assert "checker" not in shortcut  # one channel has no direction to compare
    assert all(np.median(v) <= OUTLIER for v in ordinary.values())


def test_check_reliability_flags_the_shortcut_unit_in_a_set(image_folder, tmp_path, capsys):
    """A built set whose visualizations are what an optimiser finds (checkerboards for the
    shortcut unit, stripes for the plain edge unit): the check flags only the shortcut, writes
    its columns and table, and the set stays valid."""
    import csv
    import json

    from PIL import Image

    from experiments.cli import main
    from experiments.stimulus_set import load_stimulus_set
    from stimuli.occlusion_set import _read_rows
    from stimuli.setwriter import write_tables

    out = tmp_path / "set"
    assert main(["stimuli", "build", "calibration-net", str(image_folder), str(out),
                 "--unit", "shortcuts:0", "--unit", "shortcuts:1", "--n-batches", "2",
                 "--n-bins", "4", "--no-render", "--workers", "0", "--no-progress"]) == 0
    assert main(["stimuli", "check", str(out), "--reliability"]) == 2
    assert "no feature visualizations to check" in capsys.readouterr().err
    rows = _read_rows(out / "images.csv")
    for channel, pictures in ((0, _checkers(3, 5)), (1, _stripes(3, 6))):
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
    units = {r["unit_id"]: r for r in csv.DictReader(open(out / "units.csv"))}
    assert units["calibration-net/shortcuts/0"]["fv_reliable"] == "false"
    assert units["calibration-net/shortcuts/1"]["fv_reliable"] == "true"
    assert units["calibration-net/shortcuts/0"]["fv_path_layer"] == "shortcuts:input"
    assert (out / "reliability.csv").is_file()
    stimulus_set = load_stimulus_set(out, verify_hashes=True)
    assert stimulus_set.manifest["reliability"]["flagged"] == ["calibration-net/shortcuts/0"]
