"""Built sets pass load_stimulus_set with hashes; CLI; resume; bad inputs give one clear error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.errors import InterpsyError
from experiments.stimulus_set import load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set
from stimuli.errors import ImageSourceError, ModelError

QUICK = dict(pretrained=False, n_batches=2, render_steps=4, n_diverse=2, max_exponent=1,
             binary_steps=1, workers=0, progress=False)


@pytest.fixture(scope="module")
def built(image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sets") / "tiny"
    return build_stimulus_set("tiny-cnn", image_folder, out,
        BuildOptions(n_units=2, seed=3, **QUICK))


def test_built_set_passes_check(built):
    stimulus_set = load_stimulus_set(built, verify_images=True, verify_hashes=True)
    assert len(stimulus_set.units) == 2
    images = stimulus_set.images
    natural = images[images.kind == "natural"]
    assert set(natural.batch) == {0, 1}
    synthetic = images[images.kind == "synthetic"]
    assert len(synthetic) == 2 * 2 * 3  # units x sides x (1 plain + 2 diverse)
    assert set(synthetic[synthetic.role == "reference_max"]["rank"]) == {0, 1, 2}
    assert stimulus_set.manifest["seed"] == 3
    mining = stimulus_set.manifest["parameters"]["mining"]
    assert (mining["precision"], mining["channels_last"], mining["decode"]) == ("float32", True,
                                                                                 "pil")
    assert stimulus_set.units.top_natural_activation.notna().all()
    assert main(["stimuli", "check", str(built)]) == 0


def test_build_resumes_without_redoing_work(built, image_folder):
    before = (built / "images.csv").read_text()
    render_files = sorted((built / "_work" / "render").iterdir())
    stamps = [p.stat().st_mtime_ns for p in render_files]
    build_stimulus_set("tiny-cnn", image_folder, built, BuildOptions(n_units=2, seed=3, **QUICK))
    assert [p.stat().st_mtime_ns for p in render_files] == stamps
    assert (built / "images.csv").read_text() == before


def test_cli_build_with_shards_and_percentiles(image_folder, tmp_path):
    out = str(tmp_path / "set")
    common = ["--random-init", "--workers", "0", "--no-progress"]
    assert main(["stimuli", "sample", "tiny-vit", out, "--n-units", "2", "--random-init"]) == 0
    for i in range(2):
        assert main(["stimuli", "mine", "tiny-vit", str(image_folder), out, "--n-batches", "1",
                     "--n-bins", "4", "--shard", f"{i}/2", *common]) == 0
    for i in range(2):
        assert main(["stimuli", "render", "tiny-vit", out, "--steps", "3", "--n-diverse", "2",
                     "--alpha", "0.1", "--shard", f"{i}/2", "--random-init",
                     "--no-progress"]) == 0
    assert main(["stimuli", "build", "tiny-vit", str(image_folder), out, "--n-batches", "1",
                 "--n-bins", "4", "--steps", "3", "--n-diverse", "2", "--alpha", "0.1",
                 "--difficulty", "p85", *common]) == 0
    stimulus_set = load_stimulus_set(out, verify_hashes=True)
    assert set(stimulus_set.images.difficulty) == {"", "easy", "p85"}
    assert stimulus_set.manifest["parameters"]["difficulties"] == ["easy", "p85"]
    recorded = stimulus_set.manifest["parameters"]
    assert recorded["command"].startswith(f"interpsy stimuli build tiny-vit {image_folder} ")
    assert "--steps 3" in recorded["command"] and recorded["device"] == "cpu"
    # the same set built in one go: its visualizations are byte for byte the sharded ones
    whole = str(tmp_path / "whole")
    assert main(["stimuli", "build", "tiny-vit", str(image_folder), whole, "--n-units", "2",
                 "--n-batches", "1", "--n-bins", "4", "--steps", "3", "--n-diverse", "2",
                 "--alpha", "0.1", "--difficulty", "p85", *common]) == 0

    def synthetic(folder):
        images = load_stimulus_set(folder).images
        rows = images[images.kind == "synthetic"].sort_values("image_id")
        return list(zip(rows.image_id, rows.sha256, strict=True))

    assert synthetic(whole) == synthetic(out)


def _error(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_give_one_clear_line(image_folder, tmp_path, capsys):
    out = str(tmp_path / "x")
    assert "unknown model 'nope'" in _error(["stimuli", "build", "nope", str(image_folder), out],
                                            capsys)
    assert "unknown layer 'conv9'" in _error(["stimuli", "sample", "tiny-cnn", out, "--unit",
                                              "conv9:0"], capsys)
    assert "channel 99 out of range" in _error(["stimuli", "sample", "tiny-cnn", out, "--unit",
                                                "bn1:99"], capsys)
    few = _error(["stimuli", "build", "tiny-cnn", str(image_folder), str(tmp_path / "few"),
                  "--random-init", "--unit", "bn1:0"], capsys)  # 48 images, 20 batches
    assert "48 images are too few for 20 batches" in few and "--n-batches 2 fits" in few
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no images" in _error(["stimuli", "mine", "tiny-cnn", str(empty), out,
                                        "--random-init", "--unit", "bn1:0"], capsys)
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in sorted(image_folder.rglob("*.png"))[:5]:
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "zz_broken.jpg").write_bytes(b"this is not a jpeg")
    msg = _error(["stimuli", "mine", "tiny-cnn", str(bad), str(tmp_path / "y"), "--random-init",
                  "--unit", "bn1:0", "--workers", "0", "--n-batches", "1", "--n-bins", "2",
                  "--no-progress"], capsys)
    assert "cannot read image" in msg and "zz_broken.jpg" in msg
    assert "not a folder" in _error(["stimuli", "check", str(tmp_path / "missing")], capsys)


def test_skip_unreadable_and_missing_weights(image_folder, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in sorted(image_folder.rglob("*.png"))[:8]:
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "broken.png").write_bytes(b"\x89PNG broken")
    out = build_stimulus_set("tiny-cnn", bad, tmp_path / "s",
        BuildOptions(units=["bn1:0"], render=False,
                     n_bins=2, skip_unreadable=True, **{**QUICK, "n_batches": 1}))
    manifest = json.loads((out / "stimuli.json").read_text())
    assert manifest["dataset"]["unreadable_skipped"] == 1
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    from stimuli.registry import load_model

    with pytest.raises(ModelError, match=r"resnet50-0676ba61\.pth not found; place it at"):
        load_model("resnet50")


def test_errors_are_interpsy_errors():
    assert issubclass(ModelError, InterpsyError) and issubclass(ImageSourceError, InterpsyError)


def test_check_and_help_do_not_import_torch():
    code = ("import sys; import stimuli.cli, stimuli.registry, stimuli.images, stimuli.sampling, "
            "stimuli.batching, experiments.stimulus_set.writer; from experiments.cli import main; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_wrong_weights_file_is_one_line(image_folder, tmp_path, capsys):
    import torch
    import torchvision

    wrong = tmp_path / "resnet18.pth"  # another architecture's checkpoint
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    err = _error(["stimuli", "build", "resnet50", str(image_folder), str(tmp_path / "out"),
                  "--n-units", "2", "--weights", str(wrong)], capsys)
    assert f"resnet50: weights file {wrong} does not fit the model" in err
    assert "missing keys" in err and "is [64, 64, 3, 3] in the file but [64, 64, 1, 1]" in err
    assert len(err) < 600


def test_layers_restricts_sampling_to_matching_layers(tmp_path, capsys):
    out = tmp_path / "late"
    assert main(["stimuli", "sample", "tiny-cnn", str(out), "--n-units", "5", "--layers",
                 r"bn[23]|conv3"]) == 0
    meta = json.loads((out / "_work" / "units.json").read_text())
    layers = {u["layer"] for u in meta["units"]}
    assert layers and layers <= {"bn2", "bn3", "conv3"}, layers
    assert meta["sampling"]["layers"] == r"bn[23]|conv3"
    assert "matches none of tiny-cnn's" in _error(
        ["stimuli", "sample", "tiny-cnn", str(tmp_path / "none"), "--n-units", "2", "--layers",
         "layer9"], capsys)


def test_a_resumed_build_says_what_it_reuses_and_refuses_changed_settings(image_folder, tmp_path,
                                                                          capsys):
    out = str(tmp_path / "resumed")
    args = ["stimuli", "build", "tiny-cnn", str(image_folder), out, "--unit", "bn1:0",
            "--n-batches", "1", "--n-bins", "4", "--n-diverse", "2", "--alpha", "0.1",
            "--random-init"]
    assert main([*args, "--steps", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*args, "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 rendered units or started groups in" in err and "max_steps 2 -> 3" in err
    assert "delete" in err and "render" in err and err.count("\n") == 1
    assert main([*args, "--n-batches", "2", "--steps", "2", "--no-progress"]) == 2
    assert "finished mining shards" in capsys.readouterr().err
    assert main([*args, "--steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "reusing the finished mining of 48 images" in err and "reusing 1 rendered units" in err
    # the CPU mines and renders in channels-last by default, and --no-channels-last changes both
    manifest = json.loads((Path(out) / "stimuli.json").read_text())["parameters"]
    assert manifest["mining"]["channels_last"] is manifest["render"]["channels_last"] is True
    assert main([*args, "--steps", "2", "--no-channels-last", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "finished mining shards" in err and "channels_last True -> False" in err
    # a render saved before passes were cut and channels-last came (neither recorded) ran
    # whole jobs in the default memory format
    settings = Path(out) / "_work" / "render" / "settings.json"
    recorded = json.loads(settings.read_text())
    assert (recorded.pop("pass_images"), recorded.pop("channels_last")) == (2, True)  # the CPU's
    settings.write_text(json.dumps(recorded))
    assert main([*args, "--steps", "2", "--no-progress"]) == 2
    assert "pass_images 0 -> 2" in capsys.readouterr().err
    assert main([*args, "--steps", "2", "--pass-images", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "rendered units" in err and "channels_last False -> True" in err
    # and its mining, from before the CPU mined channels-last, ran in the default format too
    mined = Path(out) / "_work" / "mining" / "settings.json"
    recorded = json.loads(mined.read_text())
    assert recorded.pop("channels_last") is True
    mined.write_text(json.dumps(recorded))
    assert main([*args, "--steps", "2", "--pass-images", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "finished mining shards" in err and "channels_last False -> True" in err
    assert main([*args, "--steps", "2", "--pass-images", "0", "--no-channels-last",
                 "--no-progress"]) == 0
    # a group stopped inside its alpha search (a checkpoint, no unit file yet) counts as started
    render = Path(out) / "_work" / "render"
    (render / "unit-00000.npz").rename(render / "group-00000.search.pkl")
    assert main([*args, "--steps", "2", "--no-channels-last", "--no-progress"]) == 2
    assert "1 rendered units or started groups" in capsys.readouterr().err
    # the mining batch is a setting of its stage; builds from before it was recorded used 64
    mining = Path(out) / "_work" / "mining" / "settings.json"
    assert json.loads(mining.read_text())["batch_size"] == 16  # the CPU default
    assert main([*args, "--steps", "2", "--batch-size", "32", "--no-progress"]) == 2
    assert "batch_size 16 -> 32" in capsys.readouterr().err
    # the diversity layer is a render setting too (a build without it compared each unit's own)
    assert main([*args, "--steps", "2", "--pass-images", "0", "--no-channels-last",
                 "--diversity-layer", "bn2", "--no-progress"]) == 2
    assert "diversity_layer None -> 'bn2'" in capsys.readouterr().err


def test_the_diversity_layer_is_checked_before_mining_and_recorded(image_folder, tmp_path,
                                                                    capsys):
    args = ["stimuli", "build", "tiny-cnn", str(image_folder), str(tmp_path / "d"), "--unit",
            "bn3:0", "--n-batches", "1", "--n-bins", "4", "--n-diverse", "2", "--alpha", "1",
            "--steps", "2", "--random-init", "--no-progress"]
    assert "unknown layer 'conv9'" in _error([*args, "--diversity-layer", "conv9"], capsys)
    # a module outside the registry's layers: its activation layout would be a guess
    assert "diversity layer 'relu' is not one of tiny-cnn's relevant layers" in _error(
        [*args, "--diversity-layer", "relu"], capsys)
    assert not (tmp_path / "d" / "_work" / "mining").exists()
    assert main([*args, "--diversity-layer", "bn1"]) == 0
    render = json.loads((tmp_path / "d" / "stimuli.json").read_text())["parameters"]["render"]
    assert render["diversity_layer"] == "bn1"
    # several layers (each unit's own named "unit"): recorded as the list, checked each
    assert "unknown layer 'conv9'" in _error(
        [*args, "--diversity-layer", "unit", "--diversity-layer", "conv9"], capsys)
    both = [a if a != str(tmp_path / "d") else str(tmp_path / "f") for a in args]
    assert main([*both, "--diversity-layer", "unit", "--diversity-layer", "bn1"]) == 0
    render = json.loads((tmp_path / "f" / "stimuli.json").read_text())["parameters"]["render"]
    assert render["diversity_layer"] == ["unit", "bn1"]
    assert main([*both, "--diversity-layer", "bn1"]) == 2
    assert "diversity_layer ['unit', 'bn1'] -> 'bn1'" in capsys.readouterr().err
    # `stimuli render` checks it too, before it renders anything
    assert "diversity layer 'relu' is not one of" in _error(
        ["stimuli", "render", "tiny-cnn", str(tmp_path / "d"), "--diversity-layer", "relu",
         "--random-init", "--no-progress"], capsys)
    # the build renders with it: the same build without it (or with an empty one) differs
    other = [a if a != str(tmp_path / "d") else str(tmp_path / "e") for a in args]
    assert main([*other, "--diversity-layer", ""]) == 0
    again = json.loads((tmp_path / "e" / "stimuli.json").read_text())["parameters"]["render"]
    assert again["diversity_layer"] is None

    def diverse(folder):
        images = load_stimulus_set(folder).images
        return sorted(images[(images.kind == "synthetic") & (images["rank"] > 0)].sha256)

    assert diverse(tmp_path / "d") != diverse(tmp_path / "e")


def test_the_build_shows_its_eta_from_the_first_step(image_folder, tmp_path, capsys):
    """The step budget of all units (each alpha search at its longest) carries an ETA before
    the first unit is finished, and is filled when the build ends early."""
    import re

    from stimuli.build import step_budget
    from stimuli.render import DiversitySearch, RenderSchedule

    assert main(["stimuli", "build", "tiny-cnn", str(image_folder), str(tmp_path / "eta"),
                 "--unit", "bn1:0", "--unit", "bn1:1", "--n-batches", "1", "--n-bins", "4",
                 "--steps", "6", "--n-diverse", "2", "--random-init", "--progress"]) == 0
    err = capsys.readouterr().err.replace("\r", "\n")
    total = step_budget(2, RenderSchedule.for_steps(6, None, None, None),
                        DiversitySearch(n_diverse=2))
    assert total == 13 * 6  # 13 rounds of one batch each, 6 steps
    with_eta = re.search(rf"step budget \(ETA at most\):.*\| [1-9]\d*/{total} \[\S+<\d", err)
    first_unit = re.search(r"rendering tiny-cnn:.*\| [12]/2", err)  # one group of both
    assert with_eta and first_unit and with_eta.start() < first_unit.start()
    assert f"{total}/{total}" in err
