"""Occlusion stimuli (Zimmermann, Borowski et al., NeurIPS 2021): a square occluder filled with
the mean colour of the patch it covers, slid over a base image; the unit's activation at every
position; the occlusions that keep it highest and lower it most; and references blurred except
for the window that drives the unit most. Composable pieces: positions, occlude, keep_window, scan."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from stimuli.layers import LayerRecorder
from stimuli.registry import ModelSpec


@dataclass(frozen=True)
class OcclusionConfig:
    """The occluder (side as a share of the image side: 0.4 is 90 px on 224), its stride, the
    blur of the blurred references (their own window stride) and the forward batch size."""

    fraction: float = 0.4
    stride: int = 2
    blur_sigma: float = 8.0
    blur_stride: int = 8
    batch_size: int = 128

    def size(self, image_size: int) -> int:
        """The occluder's side in pixels on an image of `image_size`."""
        return max(1, round(self.fraction * image_size))

    def record(self) -> dict:
        return asdict(self)


def positions(image_size: int, size: int, stride: int) -> np.ndarray:
    """Top-left corners (y, x) of every occluder position, row by row: shape (ny * nx, 2)."""
    steps = np.arange(0, image_size - size + 1, stride)
    if steps[-1] != image_size - size:  # the last row and column reach the border
        steps = np.append(steps, image_size - size)
    ys, xs = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([ys.ravel(), xs.ravel()], axis=1)


def occlude(image: torch.Tensor, corners: np.ndarray, size: int) -> torch.Tensor:
    """Copies of a (3, H, W) float image, each with one square filled with its mean colour."""
    out = image.unsqueeze(0).repeat(len(corners), 1, 1, 1)
    for i, (y, x) in enumerate(corners):
        patch = out[i, :, y:y + size, x:x + size]
        patch[:] = patch.mean(dim=(1, 2), keepdim=True)
    return out


def keep_window(image: torch.Tensor, blurred: torch.Tensor, corners: np.ndarray, size: int
                ) -> torch.Tensor:
    """Copies of `blurred`, each with the unblurred `image` inside one window."""
    out = blurred.unsqueeze(0).repeat(len(corners), 1, 1, 1)
    for i, (y, x) in enumerate(corners):
        out[i, :, y:y + size, x:x + size] = image[:, y:y + size, x:x + size]
    return out


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur of a (3, H, W) float image (kernel of about 6 sigma, odd)."""
    kernel = int(2 * round(3 * sigma) + 1)
    return gaussian_blur(image.unsqueeze(0), [kernel, kernel], [sigma, sigma])[0]


class UnitProbe:
    """The activation of one unit (the mining reduction) for batches of shown images in [0, 1]."""

    def __init__(self, model: torch.nn.Module, spec: ModelSpec, layer: str, channel: int,
                 normalize, device: torch.device):
        self.model, self.spec, self.layer = model, spec, layer
        self.channel = torch.tensor([channel], device=device)
        self.normalize, self.device = normalize, device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = self.normalize((images.to(self.device) * 255.0).round())
        with LayerRecorder(self.model, self.spec, [self.layer],
                           channels={self.layer: self.channel}) as recorder:
            return recorder(self.model, x)[self.layer][:, 0].float().cpu().numpy()


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def scan(probe: UnitProbe, corners: np.ndarray, batch_size: int,
         variant: Callable[[np.ndarray], torch.Tensor]) -> np.ndarray:
    """The unit's activation on `variant(corners)` for every corner, `batch_size` at a time:
    shape (len(corners),)."""
    return np.concatenate([probe(variant(corners[part]))
                           for part in _chunks(len(corners), batch_size)])


@dataclass(frozen=True)
class Occlusions:
    """One base image's result: every position's activation, the chosen ones and the images."""

    corners: np.ndarray  # (P, 2) top-left y, x
    activations: np.ndarray  # (P,)
    base_activation: float
    best: int  # index of the occlusion that keeps the activation highest
    worst: int  # ... that lowers it most
    best_image: np.ndarray  # (H, W, 3) uint8
    worst_image: np.ndarray


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (image.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def occlusions_of(probe: UnitProbe, pixels: np.ndarray, cfg: OcclusionConfig) -> Occlusions:
    """Slide the occluder over one base image (H, W, 3 uint8) and pick the extreme positions."""
    image = from_uint8(pixels)
    side = image.shape[-1]
    size = cfg.size(side)
    corners = positions(side, size, cfg.stride)
    acts = scan(probe, corners, cfg.batch_size, lambda part: occlude(image, part, size))
    best, worst = int(np.argmax(acts)), int(np.argmin(acts))
    base_act = float(probe(image[None])[0])
    shown = occlude(image, corners[[best, worst]], size)
    return Occlusions(corners, acts.astype(np.float32), base_act, best, worst,
                      to_uint8(shown[0]), to_uint8(shown[1]))


def blurred_reference(probe: UnitProbe, pixels: np.ndarray, cfg: OcclusionConfig
                      ) -> tuple[np.ndarray, float, tuple[int, int]]:
    """A reference blurred except the window (the occluder's size) that drives the unit most:
    (image, its activation, the window's top-left corner)."""
    image = from_uint8(pixels)
    side = image.shape[-1]
    size = cfg.size(side)
    corners = positions(side, size, cfg.blur_stride)
    blurred = blur(image, cfg.blur_sigma)
    acts = scan(probe, corners, cfg.batch_size,
                lambda part: keep_window(image, blurred, part, size))
    top = int(np.argmax(acts))
    shown = keep_window(image, blurred, corners[[top]], size)[0]
    return to_uint8(shown), float(acts[top]), (int(corners[top, 0]), int(corners[top, 1]))

