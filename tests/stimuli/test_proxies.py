"""Simplified proxies (issue 17 item 2): a proxy that simplifies nothing reproduces the unit on
every layout; a hand-set Gabor unit's weights have effective rank 1 and its rank-1 proxy is
exact; `interpsy stimuli proxies` on a built set with a shifted pool measures agreement,
rank correlation and top-9 overlap in and out of distribution, on images the set never shows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analysis.load import load_dataset
from experiments.cli import main
from experiments.stimulus_set import load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set
from stimuli.layers import LayerRecorder
from stimuli.mining import normalizer
from stimuli.proxies import (
    PrototypeQuantiser,
    RankProjection,
    UnitSite,
    apply_module,
    capture_inputs,
    effective_rank,
    fit_rows,
    proxy,
    sweep,
)
from stimuli.proxy_faithfulness import split_images
from stimuli.registry import ModelSpec, get_spec, load_model
from stimuli.shifted_set import add_shifted_queries

QUICK = dict(pretrained=False, n_batches=2, n_bins=4, render=False, workers=0, progress=False)


def _images(n: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, size, size),
                                                                  dtype=np.uint8))


@pytest.mark.parametrize("model_name,layer", [("tiny-cnn", "bn2"), ("tiny-cnn", "conv3"),
                                              ("tiny-convnext", "blocks.0.fc1"),
                                              ("tiny-vit", "blocks.1.fc1")])
def test_a_proxy_that_simplifies_nothing_is_the_unit(model_name, layer):
    spec, model = get_spec(model_name), load_model(model_name, pretrained=False)
    site = UnitSite(model, spec, layer, 3)
    normalize = normalizer(spec, torch.device("cpu"))
    images = _images(12, size=spec.preprocessing.crop)
    with LayerRecorder(model, spec, [layer], channels={layer: torch.tensor([3])}) as rec, \
            torch.no_grad():
        mined = rec(model, normalize(images))[layer][:, 0].numpy()
    inputs = capture_inputs(site, images, normalize)
    np.testing.assert_allclose(apply_module(site, inputs), mined, rtol=1e-5, atol=1e-5)
    rows = fit_rows(site, capture_inputs(site, _images(12, seed=1, size=64 if "vit" not in
                                                       model_name else 224), normalize))
    full = RankProjection(rows, rows.shape[1])
    np.testing.assert_allclose(apply_module(site, inputs, full), mined, rtol=1e-4, atol=1e-4)
    one = RankProjection(rows, 1)
    assert not np.allclose(apply_module(site, inputs, one), mined, atol=1e-3)
    quantised = PrototypeQuantiser(rows, 4, seed=0)(rows)
    assert len(torch.unique(quantised, dim=0)) <= 4


class GaborNet(nn.Module):
    """One conv layer: channel 0 a hand-set Gabor on luminance, channels 1-3 random."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 9, padding=4)
        y, x = np.mgrid[-4:5, -4:5]
        gabor = np.exp(-(x**2 + y**2) / 8.0) * np.cos(2 * np.pi * x / 6.0)
        luminance = np.array([0.299, 0.587, 0.114])
        with torch.no_grad():
            self.conv.weight[0] = torch.from_numpy(luminance[:, None, None] * gabor).float()

    def forward(self, x):
        return self.conv(x)


def test_a_gabor_units_weights_have_rank_one_and_its_rank_one_proxy_is_exact():
    torch.manual_seed(0)
    model = GaborNet().eval()
    spec = ModelSpec(name="gabor", builder=GaborNet, source="test", weights="hand-set",
                     layer_patterns=("conv",))
    gabor, random = UnitSite(model, spec, "conv", 0), UnitSite(model, spec, "conv", 1)
    assert effective_rank(gabor) == 1
    assert effective_rank(random) == 3
    inputs = capture_inputs(gabor, _images(10), normalizer(spec, torch.device("cpu")))
    before = apply_module(gabor, inputs)
    with proxy(gabor, "weights", 1, None) as simplify:
        assert simplify is None
        np.testing.assert_allclose(apply_module(gabor, inputs), before, rtol=1e-5, atol=1e-5)
    with proxy(random, "weights", 1, None):
        assert not np.allclose(apply_module(random, inputs), apply_module(
            UnitSite(GaborNet().eval(), spec, "conv", 1), inputs), atol=1e-3)
    np.testing.assert_array_equal(apply_module(gabor, inputs), before)  # weights restored


def test_the_sweep_runs_powers_of_two_up_to_no_simplification():
    assert sweep(40) == [1, 2, 4, 8, 16, 32, 40]
    assert sweep(1) == [1]
    assert sweep(40, [64, 3, 3]) == [3, 40]


@pytest.fixture(scope="module")
def measured(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("proxies") / "tiny"
    build_stimulus_set("tiny-cnn", image_folder, out, BuildOptions(n_units=2, seed=4, **QUICK))
    add_shifted_queries(out, ["blur:4"], pretrained=False, workers=0, progress=False)
    result = tmp_path_factory.mktemp("proxies-out")
    assert main(["stimuli", "proxies", str(out), "--out", str(result), "--fit-images", "6",
                 "--eval-images", "10", "--k", "1,4,1000", "--random-init",
                 "--no-progress"]) == 0
    return out, result


def test_proxies_are_measured_in_and_out_of_distribution(measured):
    _, result = measured
    table = pd.read_csv(result / "proxy_faithfulness.csv")
    assert set(table.distribution) == {"in", "blur-4"}
    assert set(table.metric) == {"agreement", "spearman", "top9"}
    exact = table[table.full & table.proxy.isin(["rank", "weights"])]
    assert not exact.empty and np.allclose(exact.value, 1.0)  # no simplification: the unit
    prototypes = table[table.proxy == "prototypes"]
    assert not prototypes.full.any() and prototypes.at_cap.any()  # k-means is never lossless
    summary = pd.read_csv(result / "proxy_summary.csv")
    assert {"k95", "k_full", "agreement_in", "agreement_blur-4"} <= set(summary.columns)
    reached = summary[summary.k95.notna()]
    assert (reached.k95 <= reached.k_full).all() and (reached.agreement_in >= 0.95).all()


def test_proxies_are_fitted_on_images_the_set_never_shows(measured, image_folder):
    out, _ = measured
    stimulus_set = load_stimulus_set(out, verify_images=False)
    fitting, evaluation, files = split_images(stimulus_set, str(image_folder), 6, 10, 0)
    assert not set(fitting) & set(evaluation)
    shown = set(stimulus_set.images.source)
    used = {str(Path(files[i]).relative_to(image_folder)) for i in fitting + evaluation}
    assert not used & shown


def test_bad_requests_are_named(measured, tmp_path, capsys):
    out, _ = measured
    for args, message in ((["--k", "a,b"], "--k 'a,b': expected numbers"),
                          (["--fit-images", "500"], "images the set does not show")):
        assert main(["stimuli", "proxies", str(out), "--out", str(tmp_path), *args,
                     "--random-init", "--no-progress"]) == 2, args
        assert message in capsys.readouterr().err


def test_a_proxy_answers_the_sets_trials_as_a_machine_observer(measured, tmp_path):
    out, _ = measured
    for k, folder in ((1000, "full"), (1, "one")):
        assert main(["observe", str(out), "--observer", "proxy", "--backbone", f"rank:{k}",
                     "--tasks-per-unit", "6", "--fit-images", "6", "--random-init", "--out",
                     str(tmp_path / folder)]) == 0
    full = load_dataset(tmp_path / "full").responses
    assert (full.observer == "proxy").all() and full.correct.all()  # no simplification: exact
    assert set(full.backbone) == {"proxy:rank:1000"}
    one = load_dataset(tmp_path / "one").responses
    assert set(one.backbone) == {"proxy:rank:1"} and len(one) == len(full)
    assert main(["observe", str(out), "--observer", "proxy", "--backbone", "dreamsim",
                 "--random-init", "--out", str(tmp_path / "bad")]) == 2
