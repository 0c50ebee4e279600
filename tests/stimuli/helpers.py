"""Helpers shared by the stimuli tests: units per tiny model, brute-force activations, JPEGs."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Units per tiny model, one model per activation layout (channels-first, channels-last, tokens).
UNITS = {
    "tiny-cnn": [("bn1", 3), ("block:input", 0), ("bn3", 30), ("conv2", 5)],
    "tiny-convnext": [("blocks.0.norm", 2), ("blocks.1", 7), ("blocks.1.fc1", 20)],
    "tiny-vit": [("blocks.0.fc1", 1), ("blocks.1.norm2", 4)],
}

# Renderer cases, one per activation layout (and a `:input` point): model, layer, channel, layout.
LAYOUT_CASES = [("tiny-cnn", "bn2", 1, "channels_first"),
                ("tiny-cnn", "block:input", 1, "channels_first"),
                ("tiny-convnext", "blocks.0.fc1", 1, "channels_last"),
                ("tiny-vit", "blocks.1.fc1", 5, "tokens")]  # its channel 2 starts near its top
SMALL = {"size": 64, "pad": 12}  # 88 px parameters; the model sees 88 to 93 px views

# JPEG copies of the pool: landscape, portrait, near-square, downscaled and upscaled sizes.
JPEG_SIZES = [(320, 240), (200, 300), (257, 256), (500, 375), (180, 100), (256, 256)]


def write_jpegs(files: list[str], root: Path) -> list[str]:
    """The images as JPEGs (quality 90) of the JPEG_SIZES in turn, every 7th one greyscale."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(files):
        image = Image.open(path).convert("L" if i % 7 == 3 else "RGB")
        target = root / f"img_{i:03d}.jpg"
        image.resize(JPEG_SIZES[i % len(JPEG_SIZES)], Image.BICUBIC).save(target, quality=90)
        out.append(str(target))
    return out


def shown_crops(files: list[str], prep=None) -> torch.Tensor:
    """uint8 (N, 3, 224, 224) PIL crops (`stimuli.images.load_shown`) of the files."""
    import torch

    from stimuli.images import DEFAULT_PREPROCESSING, load_shown

    return torch.stack([torch.from_numpy(np.asarray(load_shown(f, prep or DEFAULT_PREPROCESSING))
                                         .copy()).permute(2, 0, 1) for f in files])


def brute_force(model, spec, units, files) -> np.ndarray:
    """(images, units) float32 activations from plain CPU forwards of all images (PIL crops)."""
    import torch

    from stimuli.layers import LayerRecorder
    from stimuli.mining import normalizer

    layers = list(dict.fromkeys(u.layer for u in units))
    with LayerRecorder(model, spec, layers, keep="reduced", stop_early=False) as rec, \
            torch.no_grad():
        out = rec(model, normalizer(spec, torch.device("cpu"))(
            shown_crops(files, spec.preprocessing)))
    return np.stack([out[u.layer][:, u.channel].numpy() for u in units], 1)


def assert_same_extremes(indices: np.ndarray, values: np.ndarray, reference: np.ndarray,
                         largest: bool, atol: float) -> None:
    """Mined top-k (or bottom-k) of one unit agree with a reference activation column.

    Images whose reference activation is more than `atol` beyond the reference k-th value must
    all be picked, and every picked one must lie within `atol` of that k-th value or beyond it:
    only near-ties at the cut (within the stated tolerance) may swap. Picked values match the
    reference to `atol`.
    """
    k = len(indices)
    signed = reference if largest else -reference
    kth = np.sort(signed)[::-1][k - 1]
    must = set(np.flatnonzero(signed > kth + atol).tolist())
    allowed = set(np.flatnonzero(signed >= kth - atol).tolist())
    picked = {int(i) for i in indices}
    assert must <= picked, f"missed clear extremes {sorted(must - picked)}"
    assert picked <= allowed, f"picked non-extremes {sorted(picked - allowed)}"
    np.testing.assert_allclose(values, reference[np.asarray(indices)], rtol=0, atol=atol)


def assert_mined_like(result, reference: np.ndarray, rel_atol: float, rows: slice = slice(None)
                      ) -> None:
    """Every unit's top-k, bottom-k and stored activations agree with the reference columns,
    within `rel_atol` of each unit's largest absolute activation."""
    stored = result.activation_block(slice(None))[rows]
    for u in range(reference.shape[1]):
        atol = rel_atol * float(np.abs(reference[:, u]).max())
        assert_same_extremes(result.top_indices[u], result.top_values[u], reference[:, u],
                             True, atol)
        assert_same_extremes(result.bottom_indices[u], result.bottom_values[u], reference[:, u],
                             False, atol)
        np.testing.assert_allclose(stored[:, u], reference[:, u], rtol=0, atol=atol)


def check_renderer_moves(model, spec, layer: str, channel: int, device: str) -> None:
    """20 batched steps raise (max), lower (min) and, with diversity, raise a unit's objective."""
    from stimuli.render import Job, RenderSchedule, render_jobs

    # Four images per job: one image's 20 steps on a random tiny ViT may go either way.
    jobs = [Job(layer, channel, 1, n=4), Job(layer, channel, -1, n=4),
            Job(layer, channel, 1, n=4, alpha=0.01, seed=1)]
    start = render_jobs(model, spec, jobs, RenderSchedule.for_steps(1, lr=0.0, **SMALL), device,
                        seed=0)
    end = render_jobs(model, spec, jobs, RenderSchedule(max_steps=20, min_steps=20, **SMALL),
                      device, seed=0)
    assert end[0].activations.mean() > start[0].activations.mean() + 1e-3
    assert end[1].activations.mean() < start[1].activations.mean() - 1e-3
    assert end[2].activations.mean() > start[2].activations.mean()
    assert end[0].images.shape == (4, 64, 64, 3) and end[0].images.dtype == np.uint8
    assert end[2].images.shape == (4, 64, 64, 3)


def assert_same_render(a: np.ndarray, b: np.ndarray) -> None:
    """Two renders of one job agree: the same seeds and draws, and only float rounding apart.
    The model's kernels sum in a batch-size-dependent order (tiny-cnn's bn3 differs by 3.6e-7
    between a batch of 1 and of 4 on the CPU), which Adam's sign-like first steps can carry to
    a grey level here and there; a seed or draw that depended on the batch moves every pixel."""
    assert a.shape == b.shape
    difference = np.abs(a.astype(int) - b.astype(int))
    assert difference.max() <= 2 and (difference == 0).mean() > 0.999, \
        (difference.max(), (difference == 0).mean())
