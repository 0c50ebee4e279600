"""Registry facts, relevant layers and IMI unit sampling."""
from __future__ import annotations

import pytest
from PIL import Image

from stimuli.errors import ModelError, StimuliError
from stimuli.layers import layer_widths, relevant_layers
from stimuli.registry import TOKENS, get_spec, load_model, model_names
from stimuli.sampling import parse_units, sample_units

IMI = ["googlenet", "resnet50", "resnet50-l2", "clip-resnet50", "wide_resnet50", "densenet201",
       "convnext_b", "clip-vit_b32", "vit_b32"]


def test_registry_lists_imi_models_with_facts():
    names = model_names()
    assert set(IMI) | {"efficientnet-lite0"} <= set(names)
    assert not any(n.startswith("tiny") for n in names)
    for name in IMI:
        spec = get_spec(name)
        assert spec.n_params and spec.train_size and spec.top1
    assert get_spec("convnext_b").layout("stages.2.blocks.3.mlp.fc1") == "channels_last"
    assert get_spec("convnext_b").layout("stages.2.blocks.3.conv_dw") == "channels_first"
    assert get_spec("vit_b32").layout("blocks.0.norm1") == TOKENS
    with pytest.raises(ModelError, match="unknown model"):
        get_spec("resnet5O")


def test_resnet50_relevant_layers_are_imis_112():
    spec = get_spec("resnet50")
    model = load_model("resnet50", pretrained=False)
    layers = relevant_layers(model, spec)
    # 16 blocks x (conv1, bn1, conv2, bn2, conv3, bn3, the sum before the last ReLU); no stem
    assert len(layers) == 112
    assert {"layer1.0.conv1", "layer1.0.bn3", "layer1.0.relu:input"} <= set(layers)
    assert "conv1" not in layers and "bn1" not in layers
    widths = layer_widths(model, spec, ["layer1.0.relu:input", "layer4.2.bn2"])
    assert widths == {"layer1.0.relu:input": 256, "layer4.2.bn2": 512}


def test_efficientnet_lite0_pretrained_loads_offline():
    spec = get_spec("efficientnet-lite0")
    model = load_model("efficientnet-lite0")
    layers = relevant_layers(model, spec)
    assert layers[0] == "_bn0" and "_blocks.15._bn2" in layers


def test_sampling_is_seeded_two_stage_and_distinct():
    widths = {"a": 4, "b": 1000, "c": 2}
    units = sample_units("m", widths, 6, seed=42)
    assert units == sample_units("m", widths, 6, seed=42)
    assert len({u.unit_id for u in units}) == 6
    many = sample_units("m", widths, 7, seed=0)
    assert {u.layer for u in many} == {"a", "b", "c"}  # layers uniform, not by width
    with pytest.raises(StimuliError):
        sample_units("m", widths, 1007, seed=0)
    assert parse_units("m", ["b:3"], widths)[0].channel == 3
    with pytest.raises(ModelError, match="out of range"):
        parse_units("m", ["c:2"], widths)
    with pytest.raises(StimuliError, match="LAYER:CHANNEL"):
        parse_units("m", ["c"], widths)


@pytest.mark.parametrize("name, library", [("convnext_b", "timm"), ("vit_b32", "timm"),
                                           ("clip-resnet50", "open_clip"),
                                           ("clip-vit_b32", "open_clip")])
def test_missing_hub_weights_name_the_repo_the_library_itself_uses(name, library, tmp_path,
                                                                   monkeypatch):
    """Offline, a missing checkpoint's error names the Hugging Face cache folder of the repo that
    timm / open_clip's own pretrained configs point at (so a copied cache is found)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    if library == "timm":
        import timm

        arch = get_spec(name).weights.removeprefix("timm ")
        repo = timm.models.get_pretrained_cfg(arch).hf_hub_id
    else:
        import open_clip

        arch, tag = get_spec(name).weights.removeprefix("open_clip ").split()
        repo = open_clip.get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/")
    with pytest.raises(ModelError) as error:
        load_model(name, pretrained=True)
    folder = tmp_path / ("models--" + repo.replace("/", "--")) / "snapshots"
    assert str(folder) in str(error.value)


def test_densenet_and_clip_resnet_layers_as_imi():
    densenet = relevant_layers(load_model("densenet201", pretrained=False),
                               get_spec("densenet201"))
    assert "features.conv0" not in densenet and "features.norm0" not in densenet
    assert {"features.transition1.norm", "features.transition1.conv"} <= set(densenet)
    clip = relevant_layers(load_model("clip-resnet50", pretrained=False),
                           get_spec("clip-resnet50"))
    assert not {"bn1", "bn2", "bn3"} & set(clip) and "layer1.0.bn1" in clip


def test_inceptionv1_is_lucents_with_weights_from_a_local_file(tmp_path, monkeypatch):
    import torch

    spec = get_spec("inceptionv1")
    model = load_model("inceptionv1", pretrained=False)
    layers = relevant_layers(model, spec)
    assert layers and all(l.startswith("mixed") and l.endswith("_pre_relu_conv") for l in layers)
    assert "mixed4a_3x3_pre_relu_conv" in layers
    weights = tmp_path / "inception5h.pth"
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, weights)
    loaded = load_model("inceptionv1", weights_path=str(weights))
    assert torch.equal(loaded.state_dict()["mixed3a_1x1_pre_relu_conv.bias"],
                       model.state_dict()["mixed3a_1x1_pre_relu_conv.bias"] + 1)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelError, match=r"inception5h\.pth not found; place it at"):
        load_model("inceptionv1")


def test_every_deviation_from_imi_is_named(capsys):
    from experiments.cli import main

    assert main(["stimuli", "models"]) == 0
    out = capsys.readouterr().out
    for name in ("googlenet", "vit_b32", "inceptionv1"):
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert "deviates from IMI:" in line, line
    assert "CenterCrop(229)" in next(l for l in out.splitlines() if l.startswith("inceptionv1 "))
    for name in ("clip-resnet50", "clip-vit_b32"):  # CLIP: IMI's 224 px view
        assert "deviates" not in next(l for l in out.splitlines() if l.startswith(name + " "))


def test_clip_and_vit_are_mined_with_their_own_preprocessing(image_folder, tmp_path):
    import numpy as np

    from experiments.stimulus_set import load_stimulus_set
    from stimuli.build import BuildOptions, build_stimulus_set
    from stimuli.images import Preprocessing, load_shown

    assert get_spec("clip-resnet50").preprocessing == Preprocessing(224, 224, "bicubic")
    assert get_spec("vit_b32").preprocessing == Preprocessing(248, 224, "bicubic")
    out = build_stimulus_set("tiny-vit", image_folder, tmp_path / "set",
        BuildOptions(n_units=1, seed=3,
                     pretrained=False, n_batches=1, n_bins=4, render=False, workers=0,
                     progress=False))
    stimulus_set = load_stimulus_set(out)
    assert "resize 248 (bicubic)" in stimulus_set.manifest["dataset"]["preprocessing"]
    row = stimulus_set.images[stimulus_set.images.kind == "natural"].iloc[0]
    source = next(p for p in image_folder.rglob(row.source))
    shown = np.asarray(Image.open(out / row.path))
    assert np.array_equal(shown, np.asarray(load_shown(source, get_spec("tiny-vit").preprocessing)))
    assert not np.array_equal(shown, np.asarray(load_shown(source)))  # not the ImageNet default


def test_stimuli_layers_lists_what_a_build_can_sample(capsys):
    """The layer names, relative depths and unit counts that sampling uses, before any build."""
    from experiments.cli import main
    from stimuli.layers import layer_widths, relevant_layers

    assert main(["stimuli", "layers", "resnet50"]) == 0
    out = capsys.readouterr().out.splitlines()
    model = load_model("resnet50", pretrained=False)
    relevant = relevant_layers(model, get_spec("resnet50"))
    widths = layer_widths(model, get_spec("resnet50"), relevant)
    rows = [line.split() for line in out[1:-1]]
    assert [r[-1] for r in rows] == relevant
    assert [int(r[1]) for r in rows] == [widths[x] for x in relevant]
    assert float(rows[0][0]) == 0.0 and float(rows[-1][0]) == 1.0
    assert out[-1].startswith(f"{len(relevant)} of {len(relevant)} relevant layers, "
                              f"{sum(widths.values())} units")
    assert main(["stimuli", "layers", "resnet50", "--layers", r"layer4\..*"]) == 0
    assert all("layer4." in line for line in capsys.readouterr().out.splitlines()[1:-1])
    assert main(["stimuli", "layers", "resnet50", "--layers", "nothing"]) == 2
    assert "matches none of resnet50's" in capsys.readouterr().err
