"""IMI's robustness transforms, drawn per image and applied in one grid_sample (torch).

Jitter 16 (a random crop offset of 0..15 px), random scale (1, 0.975, 1.025, 0.95, 1.05),
rotation by a whole number of degrees in [-5, 5], jitter 8: composed into one affine map per
image (reflection padding) whose output is `size - 16 - 8` px, like cropping twice; then the
model's normalisation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))
JITTERS = (16, 8)


class TransformDraws:
    """Each image's random transform choices from a generator of its own, seeded by the image's
    seed: what an image goes through depends on its seed and the step, never on the other
    images of its batch (so a unit renders the same alone, in a group or in another shard)."""

    def __init__(self, seeds: list[int], jitters: tuple[int, int] = JITTERS,
                 n_scales: int = len(SCALES), n_angles: int = len(ANGLES)):
        self.generators = [np.random.default_rng([int(s), 0x7A4]) for s in seeds]
        self.highs = np.array([jitters[0], jitters[0], jitters[1], jitters[1], n_scales, n_angles])

    def next(self) -> np.ndarray:
        """(n, 6) integers: jitter 1 (x, y), jitter 2 (x, y), scale index, angle index."""
        return np.stack([g.integers(0, self.highs) for g in self.generators])


def random_transform(images: torch.Tensor, draws: np.ndarray,
                     jitters: tuple[int, int] = JITTERS, scales: tuple[float, ...] = SCALES,
                     angles: tuple[int, ...] = ANGLES) -> torch.Tensor:
    """Jitter, scale, rotate, jitter each image of (N, 3, S, S) as its row of `draws` says
    (from TransformDraws.next)."""
    n, _, size, _ = images.shape
    out = size - sum(jitters)
    picks = torch.as_tensor(draws, dtype=torch.float32)
    shift1 = picks[:, 0:2] - (jitters[0] - 1) / 2
    shift2 = picks[:, 2:4] - (jitters[1] - 1) / 2
    scale = torch.tensor(scales)[torch.as_tensor(draws[:, 4], dtype=torch.long)]
    angle = torch.tensor(angles, dtype=torch.float32)[
        torch.as_tensor(draws[:, 5], dtype=torch.long)] * math.pi / 180
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    shift = shift1 + torch.einsum("nij,nj->ni", rot, shift2)  # pixels in input space
    theta = torch.cat([rot * (out / size), (2 * shift / size).unsqueeze(2)], 2)
    grid = F.affine_grid(theta.to(images.device, images.dtype), [n, 3, out, out],
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size pixels."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top: top + size, left: left + size]
