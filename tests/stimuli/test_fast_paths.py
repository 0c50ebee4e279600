"""The CUDA-oriented mining paths, run on the CPU: torchvision JPEG decoding, bfloat16 autocast
and channels-last. They are the same code the GPU runs, with device="cpu"."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stimuli.errors import StimuliError
from stimuli.mining import (
    MiningConfig,
    image_batches,
    merge_shards,
    mine_shard,
    percentile_picks,
    precision,
)
from tests.stimuli.helpers import UNITS, assert_mined_like, brute_force, shown_crops

CPU = torch.device("cpu")
# bfloat16 keeps 8 mantissa bits (relative step 2**-8 = 0.4 %); on the tiny models the largest
# error seen is 0.5 % of a unit's largest |activation|, so 2 % leaves a 4x margin.
BF16_ATOL = 0.02
# torchvision and PIL crops differ by at most one grey level in a few pixels.
DECODE_ATOL = 0.002


def _batches(files: list[str], decode: str, batch_size: int = 5):
    cfg = MiningConfig(batch_size=batch_size, workers=0, decode=decode)
    batches = list(image_batches(files, 0, cfg, CPU))
    images = torch.cat([b[0] for b in batches])
    indices = torch.cat([b[1] for b in batches]).tolist()
    return images, indices, [e for b in batches for e in b[2]]


def test_torchvision_decode_gives_the_pil_crops(jpeg_files, image_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    # JPEGs of six sizes (one greyscale), two PNGs (PIL path) and a broken JPEG in one batch
    files = jpeg_files[:7] + image_files[:2] + [str(bad)] + jpeg_files[7:10]
    got, indices, errors = _batches(files, "torchvision")
    want, want_indices, want_errors = _batches(files, "pil")
    assert got.shape == want.shape == (len(files), 3, 224, 224) and got.dtype == torch.uint8
    assert indices == want_indices == list(range(len(files)))
    assert [bool(e) for e in errors] == [i == 9 for i in range(len(files))]
    assert "cannot read image" in errors[9] and "broken.jpg" in errors[9] and want_errors[9]
    good = [i for i in range(len(files)) if i != 9]
    diff = (got[good].int() - want[good].int()).abs()
    assert int(diff.max()) <= 1 and float(diff.float().mean()) < 0.01
    assert torch.equal(got[7:9], shown_crops(files[7:9]))  # PNGs: the PIL crop itself


def test_torchvision_decode_mining_matches_pil(brute, jpeg_files, tmp_path):
    spec, model, units, _ = brute["tiny-cnn"]
    reference = brute_force(model, spec, units, jpeg_files)
    bad = tmp_path / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xdb truncated")
    files = jpeg_files + [str(bad)]
    cfg = MiningConfig(k=6, batch_size=10, workers=1, decode="torchvision", skip_unreadable=True)
    mine_shard(model, spec, "random", units, files, tmp_path / "w", cfg, progress=False)
    result = merge_shards(tmp_path / "w", 1, [u.unit_id for u in units], files)
    assert result.bad == [len(jpeg_files)]
    assert np.isnan(result.activation_block(slice(None))[-1]).all()
    assert_mined_like(result, reference, DECODE_ATOL, rows=slice(None, -1))


@pytest.mark.parametrize("name", list(UNITS))
def test_the_cpus_default_channels_last_mining_matches_the_default_format(name, brute,
                                                                         image_files, tmp_path):
    spec, model, units, reference = brute[name]
    mine_shard(model, spec, "random", units, image_files, tmp_path,
               MiningConfig(k=6, batch_size=7, workers=0), progress=False)
    assert all(p.is_contiguous() for p in model.parameters())  # memory format restored
    # float32 in either layout: the same exemplars, values within float rounding
    assert_mined_like(merge_shards(tmp_path, 1, [u.unit_id for u in units], image_files),
                      reference, 1e-5)


@pytest.mark.parametrize("name", list(UNITS))
def test_autocast_channels_last_mining_matches_float32(name, brute, image_files, tmp_path):
    spec, model, units, reference = brute[name]
    cfg = MiningConfig(k=6, batch_size=16, workers=0, autocast=True, channels_last=True)
    assert precision(cfg, CPU) == (torch.bfloat16, True)
    mine_shard(model, spec, "random", units, image_files, tmp_path, cfg, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())  # memory format restored
    result = merge_shards(tmp_path, 1, [u.unit_id for u in units], image_files)
    assert_mined_like(result, reference, BF16_ATOL)
    picks = percentile_picks(result, {"p85": 85.0}, window=4)
    assert picks["p85"]["max"][0].shape == (len(units), 4)
    with pytest.raises(StimuliError, match="other settings"):  # float32 must not resume bf16
        mine_shard(model, spec, "random", units, image_files, tmp_path,
                   MiningConfig(k=6, batch_size=16, workers=0), progress=False)


def test_mining_config_decoders_and_precision():
    assert MiningConfig(decode="gpu").decode == "torchvision"
    assert MiningConfig(decode="cpu").decode == "pil"
    with pytest.raises(StimuliError, match="decode='nvjpeg'"):
        MiningConfig(decode="nvjpeg")
    assert precision(MiningConfig(), CPU) == (None, True)  # channels-last: faster on CPUs too
    assert precision(MiningConfig(autocast=True, autocast_dtype="float16", channels_last=False),
                     CPU) == (torch.float16, False)
