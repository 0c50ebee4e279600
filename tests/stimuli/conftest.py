"""Shared fixtures: a small offline image folder, its JPEG copies, tiny models and their
brute-force activations."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.stimuli.helpers import UNITS, brute_force, write_jpegs


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """48 natural-looking 256 px PNGs cut from package photos (seeded), in an ImageNet-like tree."""
    from stimuli.images import sample_image_pool

    root = tmp_path_factory.mktemp("images")
    pool = sample_image_pool(root / "pool", 48, seed=1, size=160)
    for i, path in enumerate(pool):  # ImageNet layout: class folders
        target = root / "train" / f"n{i % 3:08d}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return root / "train"


@pytest.fixture(scope="session")
def image_files(image_folder) -> list[str]:
    from stimuli.images import list_images

    return [str(p) for p in list_images(image_folder)]


@pytest.fixture(scope="session")
def jpeg_files(image_files, tmp_path_factory) -> list[str]:
    """The pool as JPEGs of varied sizes (helpers.JPEG_SIZES), every 7th one greyscale."""
    return write_jpegs(image_files, tmp_path_factory.mktemp("jpegs"))


@pytest.fixture(scope="session")
def brute(image_files):
    """Per tiny model: (spec, CPU model, units, brute-force activations over image_files)."""
    from stimuli.registry import get_spec, load_model
    from stimuli.sampling import Unit

    cache = {}
    for name, specs in UNITS.items():
        spec = get_spec(name)
        model = load_model(name, pretrained=False)
        units = [Unit(name, layer, c) for layer, c in specs]
        cache[name] = (spec, model, units, brute_force(model, spec, units, image_files))
    return cache
