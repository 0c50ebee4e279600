"""A real set with the pretrained EfficientNet-Lite0 on 40 offline images (short render)."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.stimulus_set import load_stimulus_set
from stimuli.build import BuildOptions, build_stimulus_set


@pytest.mark.slow
def test_build_real_set_with_pretrained_lite0(image_folder, tmp_path):
    out = build_stimulus_set("efficientnet-lite0", image_folder, tmp_path / "lite0",
        BuildOptions(units=["_blocks.8._bn0:5", "_blocks.12._bn1:40"], n_batches=2,
                     render_steps=5, n_diverse=2, alpha=0.1, workers=0, progress=False))
    stimulus_set = load_stimulus_set(out, verify_images=True, verify_hashes=True)
    units = stimulus_set.units
    assert list(units.layer) == ["_blocks.8._bn0", "_blocks.12._bn1"]
    assert (units.top_natural_activation > units.bottom_natural_activation.astype(float)).all()
    synthetic = stimulus_set.images[stimulus_set.images.kind == "synthetic"]
    acts = synthetic.groupby("role").activation.mean()
    assert acts["reference_max"] > acts["reference_min"]  # max renders beat min renders
    assert np.isfinite(units.fv_activation.astype(float)).all()
