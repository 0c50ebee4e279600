"""IMI's robustness transforms, drawn per image and applied in one grid_sample (torch).

Jitter 16 (a random crop offset of 0..15 px), random scale (1, 0.975, 1.025, 0.95, 1.05),
rotation by a whole number of degrees in [-5, 5], jitter 8: composed into one affine map per
image (reflection padding) whose output is `size - 16 - 8` px, like cropping twice; then the
model's normalisation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))
JITTERS = (16, 8)


def random_transform(images: torch.Tensor, generator: torch.Generator,
                     jitters: tuple[int, int] = JITTERS, scales: tuple[float, ...] = SCALES,
                     angles: tuple[int, ...] = ANGLES) -> torch.Tensor:
    """Jitter, scale, rotate, jitter each image of (N, 3, S, S) independently."""
    n, _, size, _ = images.shape
    out = size - sum(jitters)
    draw = lambda high: torch.randint(high, (n,), generator=generator).float()  # noqa: E731
    shift1 = torch.stack([draw(jitters[0]), draw(jitters[0])], 1) - (jitters[0] - 1) / 2
    shift2 = torch.stack([draw(jitters[1]), draw(jitters[1])], 1) - (jitters[1] - 1) / 2
    scale = torch.tensor(scales)[torch.randint(len(scales), (n,), generator=generator)]
    angle = torch.tensor(angles, dtype=torch.float32)[
        torch.randint(len(angles), (n,), generator=generator)] * math.pi / 180
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
