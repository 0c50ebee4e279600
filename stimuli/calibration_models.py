"""Calibration units with known mechanisms (issue 17 item 3): a small hand-set model whose
units do what their construction says, shipped with interpsy (no download; torch).

Layer `detectors` (ReLU of one 15x15 convolution on the normalised image; a unit's activation is
its mean over space, as for any model):
- channels 0-3: oriented edges, a Gabor on luminance at 0, 45, 90 and 135 degrees;
- channels 4-5: colour-opponent blobs, red minus green and blue minus yellow;
- channel 6: centre-surround, a difference of Gaussians on luminance (bright spots);
- channel 7: a fine texture detector, a Gabor at a high spatial frequency.
Each hand-set kernel is an outer product of a colour vector and a spatial profile, so its
weights have rank 1.

Layer `controls` (negative controls): seeded random-initialised convolution channels, their
spatial mean z read out as cos(2 pi z / CONTROL_PERIOD). A plain random filter and ReLU
responds to colour and contrast, which images share visibly (MIS 0.76-0.98,
benchmarks/RESULTS_shifted.md); the readout wraps z a hundred times and more over the range
natural images span, so the images that drive a control most share nothing visible. (No ReLU:
the images it would map to z = 0 would all share one activation.)

Layer `mixtures`: polysemantic units, max(A, m x B) of two detectors, A the vertical edge
(channel 0) and B the red-green blob (channel 4), at the mixing knob m of MIXING (channel i: m =
MIXING[i]); m = 0 is the pure edge detector; m scales B's response before the max.

Layer `checker`: ReLU of a fine checkerboard filter on luminance, a pattern natural images
rarely hold. Layer `shortcuts`: channel 0 is the vertical edge detector plus SHORTCUT_GAIN x the
checkerboard detector, a planted shortcut: its natural exemplars are vertical edges, while a
visualization finds the checkerboard, a route the exemplars do not take (the reliability
check's positive case); channel 1 is the edge detector alone (its negative case).

What each unit is by construction: experiments.study.calibration_units (torch-free).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from experiments.study.calibration_units import (
    CONTROL_PERIOD,
    DETECTORS,
    MIXED,
    MIXING,
    N_CONTROLS,
    SHORTCUT_GAIN,
)

SIZE = 15  # kernel side
LUMINANCE = (0.299, 0.587, 0.114)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    half = SIZE // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    return y, x


def gabor(theta_deg: float, wavelength: float, sigma: float) -> np.ndarray:
    """A cosine Gabor (zero mean) at orientation `theta_deg` (0 = vertical stripes)."""
    y, x = _grid()
    theta = np.deg2rad(theta_deg)
    along = x * np.cos(theta) + y * np.sin(theta)
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * np.cos(2 * np.pi * along / wavelength)
    return g - g.mean()


def gaussian(sigma: float) -> np.ndarray:
    """A normalised Gaussian blob."""
    y, x = _grid()
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return g / g.sum()


class FourierConv(nn.Conv2d):
    """nn.Conv2d(3, C, SIZE, padding=SIZE // 2, bias=False) computed with FFTs: the same sums
    to float rounding and cheaper on a CPU than direct 15 x 15 sums."""

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight.shape[1], weight.shape[0], SIZE, padding=SIZE // 2, bias=False)
        with torch.no_grad():
            self.weight.copy_(weight.float())
        self._kernel: tuple[tuple, torch.Tensor] | None = None  # (key, conjugate spectrum)

    def _kernel_spectrum(self, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The kernel's conjugate spectrum at `shape`, kept while the weights stay the same (a
        render calls this every step)."""
        key = (shape, device, self.weight._version)
        if self._kernel is not None and self._kernel[0] == key and not self.weight.requires_grad:
            return self._kernel[1]
        half = SIZE // 2
        kernel = torch.zeros(self.weight.shape[:2] + shape, device=device, dtype=torch.float32)
        kernel[..., :SIZE, :SIZE] = self.weight
        kernel = torch.roll(kernel, (-half, -half), (-2, -1))  # tap (half, half) at the origin
        spectrum = torch.fft.rfft2(kernel).conj()
        if not self.weight.requires_grad:
            self._kernel = (key, spectrum)
        return spectrum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # zero-padding at the far end to H + SIZE - 1 leaves no wrap-around inside the output
        shape = (height + SIZE - 1, width + SIZE - 1)
        spectrum = torch.fft.rfft2(x.float(), s=shape)
        kernel = self._kernel_spectrum(shape, x.device)
        product = sum(spectrum[:, c, None] * kernel[None, :, c] for c in range(spectrum.shape[1]))
        return torch.fft.irfft2(product, s=shape)[..., :height, :width]


def _unit_norm(kernel: np.ndarray) -> np.ndarray:
    return kernel / np.linalg.norm(kernel)


def hand_set_kernels() -> list[np.ndarray]:
    """The 3 x SIZE x SIZE kernel of each hand-set detector (DETECTORS order), colour x space."""
    lum = np.array(LUMINANCE)
    profiles = [(lum, gabor(angle, 8.0, 3.0)) for angle in (0, 45, 90, 135)]
    profiles += [(np.array([1.0, -1.0, 0.0]), gaussian(3.0)),  # red minus green
                 (np.array([-0.5, -0.5, 1.0]), gaussian(3.0)),  # blue minus yellow
                 (lum, gaussian(1.5) - gaussian(4.0)),  # centre-surround
                 (lum, gabor(0, 3.0, 2.5))]  # fine texture
    assert len(profiles) == len(DETECTORS)
    return [_unit_norm(np.einsum("c,yx->cyx", vector, profile)) for vector, profile in profiles]


class Detectors(nn.Module):
    """One hand-set convolution and a ReLU."""

    def __init__(self):
        super().__init__()
        kernels = hand_set_kernels()
        self.conv = FourierConv(torch.from_numpy(np.stack(kernels)))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Controls(nn.Module):
    """Seeded random convolution channels, their spatial mean z read out as cos(2 pi z /
    period) (one value per image: an N x C x 1 x 1 map)."""

    def __init__(self, seed: int = 0, period: float = CONTROL_PERIOD):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        random = torch.randn(N_CONTROLS, 3, SIZE, SIZE, generator=generator)
        self.conv = FourierConv(random / random.flatten(1).norm(dim=1)[:, None, None, None])
        self.period = period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x).mean((2, 3), keepdim=True)
        return torch.cos(2 * math.pi * z / self.period)


class Mixtures(nn.Module):
    """max(A, m x B) of two detector channels at each mixing knob m."""

    def __init__(self, a: int = MIXED[0], b: int = MIXED[1], mixing: tuple[float, ...] = MIXING):
        super().__init__()
        self.a, self.b = a, b
        self.register_buffer("mixing", torch.tensor(mixing, dtype=torch.float32))

    def forward(self, detected: torch.Tensor) -> torch.Tensor:
        a = detected[:, self.a:self.a + 1]
        b = detected[:, self.b:self.b + 1] * self.mixing.view(1, -1, 1, 1)
        return torch.maximum(a.expand_as(b), b)


def checkerboard(period: float = 4.0, sigma: float = 4.0) -> np.ndarray:
    """A windowed luminance checkerboard (zero mean, unit norm) of `period` pixels."""
    y, x = _grid()
    profile = (np.cos(np.pi * 2 * x / period) * np.cos(np.pi * 2 * y / period)
               * np.exp(-(x**2 + y**2) / (2 * sigma**2)))
    profile -= profile.mean()
    return _unit_norm(np.einsum("c,yx->cyx", np.array(LUMINANCE), profile))


class Checker(nn.Module):
    """A fine checkerboard detector and a ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = FourierConv(torch.from_numpy(checkerboard())[None])
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Shortcuts(nn.Module):
    """From [detectors, checker]: the edge detector with the planted checkerboard shortcut, and
    the edge detector alone."""

    def __init__(self, edge: int = MIXED[0], gain: float = SHORTCUT_GAIN):
        super().__init__()
        self.edge, self.gain = edge, gain

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        edge, checker = stacked[:, self.edge:self.edge + 1], stacked[:, -1:]
        return torch.cat([edge + self.gain * checker, edge], 1)


class CalibrationNet(nn.Module):
    """Detectors, their polysemantic mixtures, the checkerboard detector and the shortcut
    units; its output is every unit's mean over space (there is no classifier)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.detectors = Detectors()
        self.controls = Controls(seed)
        self.checker = Checker()
        self.mixtures = Mixtures()
        self.shortcuts = Shortcuts()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detected = self.detectors(x)
        checker = self.checker(x)
        maps = [detected, self.controls(x), checker, self.mixtures(detected),
                self.shortcuts(torch.cat([detected, checker], 1))]
        return torch.cat([m.mean((2, 3)) for m in maps], 1)
