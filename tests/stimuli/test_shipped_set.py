"""A set packed without its natural images unpacks against its image source into the same set;
another image source, or a missing file, is refused with the image named."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from experiments.stimulus_set import load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set
from stimuli.errors import StimuliError
from stimuli.shipped_set import NATURALS, pack, unpack


@pytest.fixture(scope="module")
def packed(image_folder, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shipped")
    built = build_stimulus_set("tiny-cnn", image_folder, root / "set",
        BuildOptions(n_units=2, seed=3,
                     pretrained=False, n_batches=2, render_steps=3, n_diverse=2,
                     max_exponent=0, binary_steps=0, workers=0, progress=False))
    return built, pack(built, root / "packed")


def _table(stimulus_set):
    columns = ["image_id", "unit_id", "kind", "role", "rank", "activation", "path", "source"]
    return stimulus_set.images[columns].sort_values("image_id").reset_index(drop=True)


def test_pack_leaves_out_the_natural_images_and_unpack_restores_the_set(packed, image_folder,
                                                                          tmp_path):
    built, shipped = packed
    assert not (shipped / "images" / "natural").exists()
    assert len(json.loads((shipped / NATURALS).read_text())) > 0
    out = unpack(shipped, image_folder, tmp_path / "unpacked")
    original = load_stimulus_set(built)
    restored = load_stimulus_set(out, verify_images=True, verify_hashes=True)
    assert _table(restored).equals(_table(original))
    assert restored.units.equals(original.units)
    for row in restored.images.drop_duplicates("path").itertuples():
        assert (out / row.path).read_bytes() == (built / row.path).read_bytes(), row.path
    assert restored.manifest["dataset"]["source"] == str(image_folder)


def test_another_image_source_is_refused_and_nothing_is_left_behind(packed, image_folder,
                                                                   tmp_path):
    _, shipped = packed
    entry = next(iter(json.loads((shipped / NATURALS).read_text()).values()))
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    photo = other / entry["source"]
    Image.open(photo).transpose(Image.FLIP_LEFT_RIGHT).save(photo)
    with pytest.raises(StimuliError, match="differs from the shipped set's pixels"):
        unpack(shipped, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    photo.unlink()
    with pytest.raises(StimuliError, match="which is missing"):
        unpack(shipped, other, tmp_path / "out")
    with pytest.raises(StimuliError, match="exists"):
        pack(packed[0], shipped)
