"""Occlusion stimuli (Zimmermann, Borowski et al. 2021): the occluder's positions and fill, the
activation map, the chosen occlusions and blurred references, and `interpsy stimuli occlusion`
on a built set (valid, recomputable, resumable)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.cli import main
from experiments.stimulus_set import OCCLUDER_COLUMNS, load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set
from stimuli.occlusion import (
    OcclusionConfig,
    blurred_reference,
    occlude,
    occlusions_of,
    positions,
    to_uint8,
)
from stimuli.occlusion_set import add_occlusion

QUICK = dict(pretrained=False, n_batches=2, render_steps=4, n_diverse=2, max_exponent=1,
             binary_steps=1, workers=0, progress=False)
FAST = OcclusionConfig(stride=16, blur_stride=32, blur_sigma=4.0)


def test_the_papers_occluder_slides_over_every_position():
    assert OcclusionConfig().size(224) == 90  # 40 % of the side
    corners = positions(224, 90, 2)
    assert len(corners) == 68 * 68 and corners.max() == 224 - 90
    assert (corners[1] - corners[0]).tolist() == [0, 2]
    odd = positions(100, 30, 16)  # the last row and column still reach the border
    assert sorted(set(odd[:, 0].tolist())) == [0, 16, 32, 48, 64, 70]


def test_the_occluder_is_the_mean_colour_of_the_patch_it_covers():
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = occlude(image, np.array([[8, 16], [40, 0]]), 20)
    for k, (y, x) in enumerate([(8, 16), (40, 0)]):
        patch = out[k, :, y:y + 20, x:x + 20]
        expected = image[:, y:y + 20, x:x + 20].mean(dim=(1, 2))
        assert torch.allclose(patch, expected[:, None, None].expand_as(patch))
        outside = torch.ones(64, 64, dtype=torch.bool)
        outside[y:y + 20, x:x + 20] = False
        assert torch.equal(out[k][:, outside], image[:, outside])


class BrightSpot:
    """A 'unit' that responds to the brightness of a fixed region (a known mechanism)."""

    def __init__(self, y0: int, y1: int, x0: int, x1: int):
        self.region = (slice(y0, y1), slice(x0, x1))

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return images[:, :, self.region[0], self.region[1]].mean(dim=(1, 2, 3)).numpy()


def test_the_extreme_occlusions_are_found_where_the_mechanism_says():
    pixels = np.full((64, 64, 3), 30, np.uint8)
    pixels[10:22, 40:52] = 250  # the bright spot the unit looks at
    unit = BrightSpot(10, 22, 40, 52)
    cfg = OcclusionConfig(fraction=0.25, stride=2)
    found = occlusions_of(unit, pixels, cfg)
    size = cfg.size(64)
    worst_y, worst_x = found.corners[found.worst]
    covered = (min(worst_y + size, 22) - max(worst_y, 10)) * (min(worst_x + size, 52)
                                                               - max(worst_x, 40))
    assert covered >= 0.8 * 12 * 12  # the worst occluder sits on the spot
    assert found.activations[found.worst] < 0.7 * found.base_activation  # mean fill: dimmer
    best_y, best_x = found.corners[found.best]
    assert best_y >= 22 or best_x + size <= 40  # the best occluder leaves the spot alone
    assert found.activations[found.best] == pytest.approx(found.base_activation, abs=1e-6)
    # every position's activation is the unit's on that occluded image (brute force)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
    for k in (0, len(found.corners) // 2, found.worst):
        again = unit(occlude(image, found.corners[[k]], size))[0]
        assert found.activations[k] == pytest.approx(again, abs=1e-6)
    # the stored images are the chosen occlusions
    for index, stored in ((found.worst, found.worst_image), (found.best, found.best_image)):
        shown = occlude(image, found.corners[[index]], size)[0]
        assert np.array_equal(stored, to_uint8(shown))
    assert (found.best_image[10:22, 40:52] == 250).all()


def test_a_blurred_reference_keeps_the_driving_window_sharp():
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    pixels[40:52, 8:20] = 255
    cfg = OcclusionConfig(fraction=0.25, blur_stride=4, blur_sigma=3.0)
    image, activation, (y, x) = blurred_reference(BrightSpot(40, 52, 8, 20), pixels, cfg)
    size = cfg.size(64)
    assert y <= 40 and y + size >= 52 and x <= 8 and x + size >= 20
    assert np.array_equal(image[y:y + size, x:x + size], pixels[y:y + size, x:x + size])
    assert np.abs(image.astype(int) - pixels.astype(int))[:y].mean() > 20  # the rest is blurred
    assert activation == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def occluded(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("occ") / "tiny"
    build_stimulus_set("tiny-cnn", image_folder, out, BuildOptions(n_units=2, seed=5, **QUICK))
    add_occlusion(out, FAST, pretrained=False, progress=False)
    return out


def test_occlusion_images_join_a_built_set_and_recompute(occluded):
    stimulus_set = load_stimulus_set(occluded, verify_images=True, verify_hashes=True)
    images = stimulus_set.images
    occ = images[images.kind == "occlusion"]
    natural = images[images.kind == "natural"]
    per_batch = occ.groupby(["unit_id", "batch"]).role.value_counts().unstack(fill_value=0)
    n_batches = natural.groupby("unit_id").batch.nunique().sum()
    assert len(per_batch) == n_batches
    assert (per_batch[["occluded_max", "occluded_min"]] == 1).all().all()
    assert stimulus_set.manifest["occlusion"]["unsafe_catch"] == []
    n_refs = len(natural[natural.role == "reference_max"])
    assert per_batch.reference_blurred.sum() == n_refs
    chosen = occ[occ.role.isin(["occluded_max", "occluded_min"])]
    assert (chosen.occluder_size.astype(int) == FAST.size(stimulus_set.image_size)).all()
    for column in OCCLUDER_COLUMNS:
        assert column in images.columns
    manifest = stimulus_set.manifest["occlusion"]
    assert manifest["stride"] == 16 and manifest["fraction"] == 0.4
    files = sorted((occluded / "occlusion").glob("*.npz"))
    assert len(files) == len(stimulus_set.units)
    for file in files:
        maps = np.load(file)
        assert maps["activations"].shape == (len(maps["batch"]), len(maps["corners"]))
    # the recorded activations are the model's on the stored PNGs
    assert main(["stimuli", "check", str(occluded), "--recompute", "64", "--random-init"]) == 0


def test_occluded_max_is_the_highest_position_and_min_the_lowest(occluded):
    stimulus_set = load_stimulus_set(occluded, verify_images=False)
    images = stimulus_set.images
    for npz in sorted((occluded / "occlusion").glob("*.npz")):
        maps = np.load(npz)
        unit_rows = images[(images.kind == "occlusion")
                           & images.image_id.str.startswith(npz.stem + ".o.")]
        for k, batch in enumerate(maps["batch"]):
            rows = unit_rows[unit_rows.batch == batch].set_index("role")
            assert float(rows.activation["occluded_max"]) == pytest.approx(
                maps["activations"][k].max(), rel=1e-5, abs=1e-6)
            assert float(rows.activation["occluded_min"]) == pytest.approx(
                maps["activations"][k].min(), rel=1e-5, abs=1e-6)


def test_occlusion_resumes_and_the_command_reports_bad_input(occluded, tmp_path, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in (occluded / "occlusion").glob("*.npz")}
    before = (occluded / "images.csv").read_text()
    add_occlusion(occluded, FAST, pretrained=False, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (occluded / "images.csv").read_text() == before
    assert main(["stimuli", "occlusion", str(occluded), "--fraction", "1.0", "--random-init",
                 "--no-progress"]) == 2
    assert "the occluder would cover the whole image" in capsys.readouterr().err
    assert main(["stimuli", "occlusion", str(tmp_path / "nothing"), "--random-init"]) == 2
    assert "not a folder" in capsys.readouterr().err
