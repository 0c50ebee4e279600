"""IMI's robustness transforms as torch-lucent 0.1.8 with kornia 0.4.1 computes them (torch).

Jitter 16, random scale (1, 0.975, 1.025, 0.95, 1.05), rotation by a whole number of degrees in
[-5, 5], jitter 8; every step zero-fills and keeps the image whole, so the model sees all of the
256 px parameter image (263 or 269 px when scaled up). One draw per job and step, as lucent
draws one per batch. kornia 0.4.1 builds its pixel-space matrices with (size - 1) normalisation
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


class JobDraws:
    """Each job's transform draws from a numpy RandomState of its own, in lucent's call order
    (jitter x, y; scale; angle; jitter x, y): a job seeded s draws what lucent draws after
    `np.random.seed(s)`, and never depends on the other jobs of its batch."""

    def __init__(self, seeds: list[int]):
        self.states = [np.random.RandomState(int(s) % 2**32) for s in seeds]

    def next(self) -> np.ndarray:
        """(jobs, 6) integers: jitter 1 (x, y), scale index, angle index, jitter 2 (x, y)."""
        highs = (JITTERS[0], JITTERS[0], len(SCALES), len(ANGLES), JITTERS[1], JITTERS[1])
        return np.array([[state.choice(h) for h in highs] for state in self.states])


def _to_norm(height: int, width: int) -> torch.Tensor:
    """kornia 0.4.1's pixel -> [-1, 1] map (3 x 3), built on size - 1."""
    return torch.tensor([[2.0 / (width - 1), 0.0, -1.0], [0.0, 2.0 / (height - 1), -1.0],
                         [0.0, 0.0, 1.0]], dtype=torch.float64)


def _warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """kornia 0.4.1's warp_affine: dst(x) = src(M^-1 x) for pixel-space (n, 2, 3) matrices, same
    size, zero fill."""
    n, _, height, width = images.shape
    full = torch.cat([matrices.double(), torch.tensor([[[0.0, 0.0, 1.0]]],
                                                      dtype=torch.float64).expand(n, 1, 3)], 1)
    norm = _to_norm(height, width)
    src_from_dst = torch.linalg.inv(norm @ full @ torch.linalg.inv(norm))[:, :2]
    grid = F.affine_grid(src_from_dst.to(images.device, images.dtype), [n, 3, height, width],
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _shift(images: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    matrices = torch.zeros(len(images), 2, 3, dtype=torch.float64)
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, :, 2] = torch.as_tensor(shifts, dtype=torch.float64)
    return _warp(images, matrices)


def _rotate(images: torch.Tensor, degrees: np.ndarray) -> torch.Tensor:
    """Counter-clockwise about the centre ((w - 1) / 2, (h - 1) / 2), as kornia."""
    height, width = images.shape[-2:]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    rad = torch.as_tensor(degrees, dtype=torch.float64) * math.pi / 180
    cos, sin = torch.cos(rad), torch.sin(rad)
    matrices = torch.stack([torch.stack([cos, sin, (1 - cos) * cx - sin * cy], 1),
                            torch.stack([-sin, cos, sin * cx + (1 - cos) * cy], 1)], 1)
    return _warp(images, matrices)


def _scale(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resize (align_corners=True) to ceil(scale * size), zero-padded back when smaller."""
    height, width = images.shape[-2:]
    new_h, new_w = int(np.ceil(scale * height)), int(np.ceil(scale * width))
    pad_x = max(0, int(np.ceil((width - new_w) / 2)))
    pad_y = max(0, int(np.ceil((height - new_h) / 2)))
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=True)
    return F.pad(resized, [pad_y, pad_x, pad_y, pad_x])


def imi_view(images: torch.Tensor, draws: np.ndarray, job_of_row: list[int],
             crop: int | None = None) -> list[tuple[list[int], torch.Tensor]]:
    """What the model sees of (N, 3, S, S) images this step: [(rows, views)], one entry per view
    size (a job's images share its draw, so they stay together). `draws` is JobDraws.next();
    `crop` takes the centre crop x crop of every view (IMI's CLIP and ViT)."""
    picks = draws[job_of_row]
    shifted = _shift(images, picks[:, 0:2])
    by_size: dict[int, tuple[list[int], list[torch.Tensor]]] = {}  # one forward pass per size
    for scale_index in sorted(set(picks[:, 2].tolist())):
        rows = [r for r in range(len(images)) if picks[r, 2] == scale_index]
        view = _scale(shifted[rows], SCALES[scale_index])
        view = _rotate(view, np.asarray(ANGLES)[picks[rows, 3]])
        view = _shift(view, picks[rows, 4:6])
        if crop is not None:
            view = center_crop(view, crop)
        entry = by_size.setdefault(view.shape[-1], ([], []))
        entry[0].extend(rows)
        entry[1].append(view)
    return [(rows, torch.cat(views)) for rows, views in by_size.values()]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size pixels."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top: top + size, left: left + size]
