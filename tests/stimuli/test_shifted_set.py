"""`interpsy stimuli shift` (issue 17 item 1): shifted pools and domain folders add queries to a
built set with the set's own rule; references stay in distribution; a unit never gets a shifted
copy of its own images; the set stays valid and recomputable; it resumes; bad input is named and
leaves the set as it was."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from experiments.cli import main
from experiments.stimulus_set import load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set
from stimuli.images import load_shown, sample_image_pool
from stimuli.registry import get_spec
from stimuli.shifted_set import add_shifted_queries
from stimuli.shifts import PoolShift

QUICK = dict(pretrained=False, n_batches=2, n_bins=4, render=False, workers=0, progress=False)


@pytest.fixture(scope="module")
def domain_folder(tmp_path_factory):
    return sample_image_pool(tmp_path_factory.mktemp("domain") / "sketches", 20, seed=9,
                             size=160)[0].parent


@pytest.fixture(scope="module")
def shifted(image_folder, domain_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shifted") / "tiny"
    build_stimulus_set("tiny-cnn", image_folder, out, BuildOptions(n_units=2, seed=4, **QUICK))
    add_shifted_queries(out, ["blur:3", "noise:2"], {"sketches": str(domain_folder)},
                        pretrained=False, workers=0, progress=False)
    return out


def test_shifted_queries_join_the_set_with_the_sets_rule(shifted, image_folder):
    stimulus_set = load_stimulus_set(shifted, verify_images=True, verify_hashes=True,
                                     decode_images=True)
    images = stimulus_set.images
    assert set(images.distribution) == {"in", "blur-3", "noise-2", "sketches"}
    moved = images[images.distribution != "in"]
    assert set(moved.role) == {"query_max", "query_min"} and set(moved.kind) == {"natural"}
    # one max and one min query per unit, batch and distribution, as the set's own easy queries
    counts = moved.groupby(["distribution", "unit_id", "batch", "role"]).size()
    assert (counts == 1).all() and len(counts) == 3 * 2 * 2 * 2
    for (_, _, _), group in moved.groupby(["distribution", "unit_id", "batch"]):
        by_role = group.set_index("role").activation
        assert by_role["query_max"] > by_role["query_min"]
    described = stimulus_set.manifest["query_distributions"]
    assert described["blur-3"]["shift"] == "blur" and described["blur-3"]["severity"] == 3
    assert described["sketches"]["size"] == 20 and described["sketches"]["excluded"] == "none"
    # the recorded activations are the model's on the stored (shifted) PNGs
    assert main(["stimuli", "check", str(shifted), "--recompute", "200", "--random-init"]) == 0


def test_a_unit_never_gets_a_shifted_copy_of_its_own_images(shifted):
    images = load_stimulus_set(shifted, verify_images=False).images
    natural = images[images.kind == "natural"]
    for unit_id, group in natural.groupby("unit_id"):
        own = set(group[group.distribution == "in"].source)
        for label in ("blur-3", "noise-2"):
            assert not own & set(group[group.distribution == label].source), (unit_id, label)


def test_a_shifted_query_is_its_source_crop_shifted_with_the_recorded_seed(shifted, image_folder):
    stimulus_set = load_stimulus_set(shifted, verify_images=False)
    seed = stimulus_set.manifest["query_distributions"]["noise-2"]["seed"]
    row = stimulus_set.images[stimulus_set.images.distribution == "noise-2"].iloc[0]
    index = int(row.path.rsplit("/", 1)[1].split(".")[0])
    crop = np.asarray(load_shown(image_folder / row.source, get_spec("tiny-cnn").preprocessing))
    expected = PoolShift("noise", 2, seed)(crop, index)
    stored = np.asarray(Image.open(shifted / row.path).convert("RGB"))
    assert np.array_equal(stored, expected)
    assert not np.array_equal(stored, crop)


def test_adding_again_resumes_and_keeps_the_other_pools(shifted, domain_folder):
    mined = sorted((shifted / "_work" / "queries").rglob("shard-*.pt"))
    stamps = [p.stat().st_mtime_ns for p in mined]
    before = (shifted / "images.csv").read_text()
    add_shifted_queries(shifted, ["blur:3"], pretrained=False, workers=0, progress=False)
    assert [p.stat().st_mtime_ns for p in mined] == stamps
    assert (shifted / "images.csv").read_text() == before


def test_bad_input_is_named_and_the_set_is_left_as_it_was(shifted, tmp_path, capsys):
    before = (shifted / "images.csv").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (
            (["--shift", "fog:2"], "unknown shift 'fog'"),
            (["--shift", "blur:6"], "severity must be one of (1, 2, 3, 4, 5), got 6"),
            (["--shift", "blur"], "expected NAME:SEVERITY"),
            (["--domain", f"in={empty}"], "domain name 'in'"),
            (["--domain", f"cartoons={empty}"], f"image folder {empty} holds no images"),
            (["--domain", "cartoons"], "expected NAME=FOLDER"),
            ([], "name at least one --shift")):
        assert main(["stimuli", "shift", str(shifted), *args, "--random-init",
                     "--no-progress"]) == 2, args
        assert message in capsys.readouterr().err, args
    assert (shifted / "images.csv").read_text() == before
    load_stimulus_set(shifted, verify_images=True, verify_hashes=True)


def test_a_pool_too_small_for_the_rule_is_refused(image_folder, tmp_path, capsys):
    out = tmp_path / "tiny"
    build_stimulus_set("tiny-cnn", image_folder, out, BuildOptions(n_units=1, seed=4, **QUICK))
    few = sample_image_pool(tmp_path / "few", 10, seed=2, size=160)[0].parent
    assert main(["stimuli", "shift", str(out), "--domain", f"few={few}", "--random-init",
                 "--workers", "0", "--no-progress"]) == 2
    assert "few: 10 usable images" in capsys.readouterr().err
