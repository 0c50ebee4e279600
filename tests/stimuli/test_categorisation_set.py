"""`interpsy stimuli categories`: a categorisation set from a labelled folder, each image at
every distortion level with its mask, seeded; unlabelled, unbalanced or unknown input refused
before anything is written."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from experiments.cli import main
from experiments.errors import StimulusSetError
from experiments.stimulus_set import load_stimulus_set
from stimuli.categorisation_set import build_categorisation_set, read_labelled_folder
from stimuli.errors import StimuliError

PHOTOS = {"cat": (data.chelsea, data.cat), "cup": (data.coffee, data.astronaut),
          "rocket": (data.rocket, data.immunohistochemistry)}


def _folder(root: Path, counts: dict[str, int] | None = None) -> Path:
    counts = counts or dict.fromkeys(PHOTOS, 2)
    for category, n in counts.items():
        (root / category).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(PHOTOS[category][i % 2]()).save(root / category / f"{i}.png")
    return root


def _pixels(stimulus_set, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(stimulus_set.image_path(image_id)), dtype=float) / 255


def test_every_image_is_written_at_every_level_with_its_mask(tmp_path):
    folder = _folder(tmp_path / "photos")
    assert main(["stimuli", "categories", str(folder), str(tmp_path / "set"), "--size", "64",
                 "--distortion", "low-pass:0,5", "--distortion", "contrast:c100,c10",
                 "--distortion", "power-equalisation", "--no-progress"]) == 0
    made = load_stimulus_set(tmp_path / "set", verify_hashes=True)
    assert made.categories == ["cat", "cup", "rocket"]
    assert made.distortion_levels() == {"low-pass": ["0", "5"], "contrast": ["c100", "c10"],
                                        "power-equalisation": ["0", "pow"]}
    assert len(made.units) == 6 and set(made.units.layer) == set(PHOTOS)
    images = made.images
    assert len(images) == 6 * (6 + 1)
    assert (images.groupby("unit_id").role.value_counts().unstack()["mask"] == 1).all()
    assert (images[images.role == "stimulus"].category
            == images[images.role == "stimulus"].unit_id.str.split("/").str[1]).all()
    unit = "categories.cat.0000"
    sharp, blurred = (_pixels(made, f"{unit}.low-pass.{level}") for level in ("0", "5"))
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.3 * np.abs(np.diff(sharp, axis=1)).mean()
    low = _pixels(made, f"{unit}.contrast.c10")
    assert low[..., 0].std() == pytest.approx(0.1 * _pixels(made, f"{unit}.contrast.c100")
                                              [..., 0].std(), rel=0.1)
    mask = _pixels(made, f"{unit}.mask")
    assert mask.min() == 0 and mask.max() == 1  # full contrast
    assert not np.array_equal(mask, _pixels(made, "categories.cat.0001.mask"))

    # the same folder and seed give the same bytes
    build_categorisation_set(folder, tmp_path / "again", made.distortion_levels(), size=64,
                             progress=False)
    again = load_stimulus_set(tmp_path / "again")
    assert list(again.images.sha256) == list(images.sha256)


def test_a_unit_missing_a_level_is_refused_by_the_reader(tmp_path):
    build_categorisation_set(_folder(tmp_path / "photos"), tmp_path / "set",
                             {"rotation": ["0", "90"]}, size=32, progress=False)
    table = pd.read_csv(tmp_path / "set" / "images.csv", dtype=str, keep_default_na=False)
    table[table.image_id != "categories.cup.0001.rotation.90"].to_csv(
        tmp_path / "set" / "images.csv", index=False)
    with pytest.raises(StimulusSetError, match="unit categories/cup/1: stimuli at"):
        load_stimulus_set(tmp_path / "set")


def test_unbalanced_folders_need_a_count_per_category(tmp_path):
    folder = _folder(tmp_path / "photos", {"cat": 2, "cup": 1, "rocket": 2})
    with pytest.raises(StimuliError, match="unbalanced categories \\(cat 2, cup 1, rocket 2 "
                                           "images\\); give --per-category N \\(at most 1\\)"):
        read_labelled_folder(folder)
    drawn = read_labelled_folder(folder, per_category=1, seed=3)
    assert {c: len(p) for c, p in drawn.items()} == {"cat": 1, "cup": 1, "rocket": 1}
    with pytest.raises(StimuliError, match="--per-category 2 but 'cup' holds 1"):
        read_labelled_folder(folder, per_category=2)


@pytest.mark.parametrize("arrange, args, message", [
    (lambda root: Image.fromarray(data.coffee()).save(root / "loose.png"), [],
     "no category subfolders \\(1 images lie loose"),
    (lambda root: _folder(root, {"cat": 2}), [], "only one category"),
    (lambda root: _folder(root), ["--distortion", "blur"], "unknown distortion 'blur'"),
    (lambda root: _folder(root), ["--distortion", "rotation:0,45"], "0, 90, 180 or 270"),
])
def test_bad_input_gets_one_clear_error_and_writes_nothing(tmp_path, arrange, args, message,
                                                           capsys):
    root = tmp_path / "photos"
    root.mkdir()
    arrange(root)
    assert main(["stimuli", "categories", str(root), str(tmp_path / "set"), "--size", "32",
                 "--no-progress", *args]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "set").exists()

