"""Fourier image parameterisation with decorrelated colour (Olah et al. 2017; lucid) (torch)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Square root of the colour correlation of ImageNet (lucid's constants), columns normalised.
COLOR_CORRELATION_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02],
                                         [0.27, 0.00, -0.05],
                                         [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
FFT_MAGIC = 4.0  # lucid's constant: lower spectrum scale, less saturation


def rfft2d_freqs(height: int, width: int) -> np.ndarray:
    """Frequency magnitude of each rfft2 coefficient."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)
    return np.sqrt(fx * fx + fy * fy)


class FourierImage(nn.Module):
    """A batch of images parameterised by their (1/f-scaled) spectra; forward gives RGB in [0, 1].
    `seeds` with `counts`: the first counts[0] images come from seeds[0], and so on."""

    def __init__(self, n: int, size: int = 256, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True, seeds: list[int] | None = None,
                 counts: list[int] | None = None, device: torch.device | str = "cpu"):
        super().__init__()
        self.size = size
        self.decorrelate = decorrelate
        freqs = rfft2d_freqs(size, size)
        scale = 1.0 / np.maximum(freqs, 1.0 / size) ** decay_power
        shape = (3,) + freqs.shape + (2,)
        seeds = seeds if seeds is not None else list(range(n))
        counts = counts if counts is not None else [1] * len(seeds)
        if sum(counts) != n:
            raise ValueError(f"{n} images but counts {counts} add up to {sum(counts)}")
        # counts[i] images from seed i, drawn as lucent draws a batch after torch.manual_seed
        init = torch.cat([torch.randn((c,) + shape, generator=torch.Generator().manual_seed(int(s)))
                          for s, c in zip(seeds, counts)]) * sd
        self.spectrum = nn.Parameter(init.to(device))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32,
                                                   device=device)[None, None, :, :, None])
        self.register_buffer("color", torch.tensor(COLOR_CORRELATION.T, device=device))

    def forward(self, rows: slice | None = None) -> torch.Tensor:
        """The images (those of `rows` only, when given)."""
        chosen = self.spectrum if rows is None else self.spectrum[rows]
        spectrum = torch.view_as_complex((chosen * self.scale).contiguous())
        image = torch.fft.irfftn(spectrum, s=(self.size, self.size), norm="ortho") / FFT_MAGIC
        if self.decorrelate:
            image = torch.einsum("nchw,cd->ndhw", image, self.color)
        return torch.sigmoid(image)
