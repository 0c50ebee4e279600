"""Shared fixtures: a small offline image folder and tiny models."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


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
