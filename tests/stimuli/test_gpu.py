"""The real CUDA path: mining with autocast + channels-last (and nvJPEG decoding) agrees with the
CPU float32 run, the batched renderer moves every layout's objective, a CLI build on cuda gives a
set that passes the hash check. Marked `gpu`; skipped where torch sees no CUDA device."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from experiments.cli import main
from experiments.stimulus_set import load_stimulus_set
from stimuli.mining import (
    MiningConfig,
    image_batches,
    merge_shards,
    mine_shard,
    percentile_picks,
    precision,
)
from stimuli.registry import get_spec
from tests.stimuli.helpers import (
    LAYOUT_CASES,
    UNITS,
    assert_mined_like,
    brute_force,
    check_renderer_moves,
    shown_crops,
)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (torch.cuda.is_available() is False)")]

# Tolerance of a mined activation against the CPU float32 run, as a fraction of the unit's
# largest |activation|: bfloat16 autocast (8 mantissa bits, 0.4 % per rounding) plus TF32
# convolutions and, with nvJPEG, a decoder whose IDCT and chroma upsampling differ from
# libjpeg-turbo's by a few grey levels. The CPU bfloat16 run stays within 0.5 %.
CUDA_ATOL = 0.03
# nvJPEG + GPU resize against PIL: mean absolute difference in grey levels (0..255).
DECODE_MEAN_ATOL = 2.0


@pytest.mark.parametrize("decode", ["pil", "torchvision"])
@pytest.mark.parametrize("name", list(UNITS))
def test_cuda_mining_matches_cpu(name, decode, brute, image_files, jpeg_files, tmp_path):
    spec, cpu_model, units, reference = brute[name]
    files = image_files
    if decode == "torchvision":
        files = jpeg_files
        reference = brute_force(cpu_model, spec, units, files)
    model = copy.deepcopy(cpu_model).to("cuda")
    cfg = MiningConfig(k=6, batch_size=16, workers=1, device="cuda", decode=decode)
    dtype, channels_last = precision(cfg, torch.device("cuda"))
    assert dtype in (torch.bfloat16, torch.float16) and channels_last
    mine_shard(model, spec, "random", units, files, tmp_path, cfg, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())
    result = merge_shards(tmp_path, 1, [u.unit_id for u in units], files)
    assert_mined_like(result, reference, CUDA_ATOL)  # stored: the pinned, deferred copy
    picks = percentile_picks(result, {"p85": 85.0}, window=4)
    assert picks["p85"]["min"][0].shape == (len(units), 4)


def test_nvjpeg_crops_match_pil(jpeg_files, image_files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files = jpeg_files[:12] + image_files[:2] + [str(bad)]
    cfg = MiningConfig(batch_size=8, workers=0, device="cuda", decode="torchvision")
    batches = list(image_batches(files, 0, cfg, torch.device("cuda")))
    assert all(b[0].device.type == "cuda" and b[0].dtype == torch.uint8 for b in batches)
    images = torch.cat([b[0] for b in batches]).cpu()
    errors = [e for b in batches for e in b[2]]
    assert [bool(e) for e in errors] == [i == len(files) - 1 for i in range(len(files))]
    want = shown_crops(files[:-1])
    diff = (images[:-1].int() - want.int()).abs().float()
    assert float(diff.mean()) < DECODE_MEAN_ATOL, float(diff.mean())
    assert torch.equal(images[12:14], want[12:14])  # PNGs take the PIL path in the workers


@pytest.mark.parametrize("name,layer,channel,layout", LAYOUT_CASES)
def test_cuda_renderer_moves_objective(name, layer, channel, layout, brute):
    spec, cpu_model, _, _ = brute[name]
    assert spec.layout(layer) == layout
    check_renderer_moves(copy.deepcopy(cpu_model).to("cuda"), spec, layer, channel, "cuda")


def test_cli_build_on_cuda_passes_hash_check(jpeg_files, tmp_path):
    out = tmp_path / "cuda-set"
    args = ["stimuli", "build", "tiny-cnn", str(Path(jpeg_files[0]).parent), str(out),
            "--random-init", "--device", "cuda", "--decode", "torchvision", "--n-units", "2",
            "--n-batches", "2", "--n-bins", "10", "--steps", "4", "--n-diverse", "2",
            "--alpha", "0.1", "--workers", "1", "--batch-size", "16", "--no-progress"]
    assert main(args) == 0
    stimulus_set = load_stimulus_set(out, verify_images=True, verify_hashes=True)
    assert len(stimulus_set.units) == 2
    assert set(stimulus_set.images.kind) == {"natural", "synthetic"}
    mining = stimulus_set.manifest["parameters"]["mining"]
    assert mining["precision"] in ("bfloat16", "float16") and mining["channels_last"]
    assert mining["decode"] == "torchvision"
    assert stimulus_set.manifest["model"] == get_spec("tiny-cnn").name
    assert main(["stimuli", "check", str(out)]) == 0
