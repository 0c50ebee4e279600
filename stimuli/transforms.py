"""IMI's robustness transforms as torch-lucent 0.1.8 with kornia 0.4.1 computes them (torch).

Jitter 16, random scale (1, 0.975, 1.025, 0.95, 1.05), rotation by a whole number of degrees in
[-5, 5], jitter 8; every step zero-fills and keeps the image whole, so the model sees all of the
256 px parameter image (263 or 269 px when scaled up). One draw per step for the whole batch, as
lucent draws one per batch; IMI re-seeded every unit alike, so every unit saw the same sequence. kornia 0.4.1 builds its pixel-space matrices with (size - 1) normalisation
but samples with align_corners=False, so a jitter of d px moves the image by d * size / (size - 1)
px with bilinear blur; that is reproduced here because it is what IMI's stimuli went through.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALES = (1.0, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))
JITTERS = (16, 8)


class StepDraws:
    """The transform drawn at each step, from a numpy RandomState in lucent's call order (jitter
    x, y; scale; angle; jitter x, y): seeded s, it draws what lucent draws after
    `np.random.seed(s)`, whatever the batch holds."""

    def __init__(self, seed: int):
        self.state = np.random.RandomState(int(seed) % 2**32)

    def next(self) -> np.ndarray:
        """6 integers: jitter 1 (x, y), scale index, angle index, jitter 2 (x, y)."""
        highs = (JITTERS[0], JITTERS[0], len(SCALES), len(ANGLES), JITTERS[1], JITTERS[1])
        return np.array([self.state.choice(h) for h in highs])


def _to_norm(height: int, width: int) -> torch.Tensor:
    """kornia 0.4.1's pixel -> [-1, 1] map (3 x 3), built on size - 1."""
    return torch.tensor([[2.0 / (width - 1), 0.0, -1.0], [0.0, 2.0 / (height - 1), -1.0],
                         [0.0, 0.0, 1.0]])


def _warp(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """kornia 0.4.1's warp_affine, in its float32 order of operations: dst(x) = src(M^-1 x) for
    a pixel-space 2 x 3 matrix, same size, zero fill."""
    n, _, height, width = images.shape
    full = torch.cat([matrix.float(), torch.tensor([[0.0, 0.0, 1.0]])])
    norm = _to_norm(height, width)
    src_from_dst = torch.inverse(norm @ (full @ torch.inverse(norm)))[:2]
    # one image's grid serves the batch: every image moves alike, and the grid is a cost per image
    grid = F.affine_grid(src_from_dst.to(images.device, images.dtype)[None],
                         [1, 3, height, width], align_corners=False)
    return F.grid_sample(images, grid.expand(n, -1, -1, -1), mode="bilinear",
                         padding_mode="zeros", align_corners=False)


def _shift(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    return _warp(images, torch.tensor([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]]))


def _rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Counter-clockwise about the centre ((w - 1) / 2, (h - 1) / 2), as kornia."""
    height, width = images.shape[-2:]
    cx, cy = torch.tensor((width - 1) / 2), torch.tensor((height - 1) / 2)
    rad = torch.tensor(float(degrees)) * torch.tensor(math.pi) / 180.0
    cos, sin = torch.cos(rad), torch.sin(rad)
    return _warp(images, torch.stack([torch.stack([cos, sin, (1 - cos) * cx - sin * cy]),
                                      torch.stack([-sin, cos, sin * cx + (1 - cos) * cy])]))


def _scale(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resize (align_corners=True) to ceil(scale * size), zero-padded back when smaller."""
    height, width = images.shape[-2:]
    new_h, new_w = int(np.ceil(scale * height)), int(np.ceil(scale * width))
    pad_x = max(0, int(np.ceil((width - new_w) / 2)))
    pad_y = max(0, int(np.ceil((height - new_h) / 2)))
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=True)
    return F.pad(resized, [pad_y, pad_x, pad_y, pad_x])


def imi_view(images: torch.Tensor, draw: np.ndarray, crop: int | None = None) -> torch.Tensor:
    """What the model sees of (N, 3, S, S) images this step, for one draw (StepDraws.next);
    `crop` takes the centre crop x crop of the view (IMI's CLIP and ViT)."""
    view = _shift(images, int(draw[0]), int(draw[1]))
    view = _scale(view, SCALES[int(draw[2])])
    view = _rotate(view, float(ANGLES[int(draw[3])]))
    view = _shift(view, int(draw[4]), int(draw[5]))
    return view if crop is None else center_crop(view, crop)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size pixels."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top: top + size, left: left + size]
