"""Shifted queries (issue 17 item 1, first step): every shift is seeded, keeps the image's shape,
moves it further from the original as its severity grows, and refuses bad input by name."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from skimage import data

from stimuli.shifts import SEVERITIES, SHIFTS, apply_shift


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[::4, ::4])  # 128 x 128 RGB


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_a_shift_is_seeded_and_grows_with_its_severity(photo, name):
    shifted = [apply_shift(photo, name, s, seed=3) for s in SEVERITIES]
    for image in shifted:
        assert image.shape == photo.shape and image.dtype == np.uint8
    assert np.array_equal(shifted[2], apply_shift(photo, name, 3, seed=3))
    distance = [np.abs(image.astype(float) - photo).mean() for image in shifted]
    assert distance[0] > 0.5, distance  # the weakest shift still moves the image
    assert all(b >= a * 0.98 for a, b in itertools.pairwise(distance)), distance
    assert distance[-1] > 1.5 * distance[0], distance


def test_random_shifts_differ_by_seed(photo):
    for name in ("noise", "cutout"):
        assert not np.array_equal(apply_shift(photo, name, 3, seed=1),
                                  apply_shift(photo, name, 3, seed=2))


def test_bad_input_is_named(photo):
    with pytest.raises(ValueError, match="unknown shift 'fog'; known: blur, noise"):
        apply_shift(photo, "fog", 1, 0)
    with pytest.raises(ValueError, match=r"severity must be one of \(1, 2, 3, 4, 5\), got 6"):
        apply_shift(photo, "blur", 6, 0)
    with pytest.raises(ValueError, match="expected an RGB uint8 image"):
        apply_shift(photo.astype(float), "blur", 1, 0)
