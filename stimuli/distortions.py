"""The parametric distortions of Geirhos et al.'s model-vs-human experiments (NeurIPS 2018,
2021), each a seeded function of an RGB image (floats in [0, 1], H x W x 3) and a level written
as the benchmark's data write it (`c30`, `0.35`, `bw`...), registered by name with the
benchmark's levels (experiments.vocabulary.DISTORTION_LEVELS; docs/categorisation.md). Grey where the benchmark made the image grey
(luminance, copied to three channels); every result is clipped to [0, 1].

The eidolon distortions are eidolon-like, not the Eidolon toolbox's: octave bands displaced by
smooth random fields that share a common part by the coherence (`_eidolon`). False colour
inverts the two colour-opponent axes of a standard sRGB cone space; the benchmark used its own
monitor's measured gamma and cone matrices, so its images differ in detail.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from experiments.vocabulary import DISTORTION_LEVELS
from stimuli.errors import StimuliError

MEAN_GREY = 0.4423  # the benchmark's mean image grey: background and filter fill
LUMINANCE = np.array([0.2125, 0.7154, 0.0721])  # the benchmark's rgb2gray weights
NOISE_CONTRAST = 0.3  # uniform noise is added to a grey image at 30 % contrast

Apply = Callable[[np.ndarray, str, np.random.Generator, "np.ndarray | None"], np.ndarray]


class DistortionError(StimuliError, ValueError):
    """An unknown distortion or a level it does not take."""


@dataclass(frozen=True)
class Distortion:
    """One distortion: its name, the benchmark's levels, what a level means, the function."""

    name: str
    levels: tuple[str, ...]
    meaning: str
    apply: Apply
    needs_spectrum: bool = False


def grey(image: np.ndarray) -> np.ndarray:
    """The image's luminance on all three channels."""
    luminance = np.asarray(image, dtype=np.float64)[..., :3] @ LUMINANCE
    return np.repeat(luminance[..., None], 3, axis=2)


def _number(level: str, name: str, prefix: str = "") -> float:
    text = str(level).strip().lower().removeprefix(prefix)
    try:
        value = float(text)
    except ValueError:
        raise DistortionError(f"{name}: level {level!r} is not a number") from None
    if math.isnan(value) or value < 0:
        raise DistortionError(f"{name}: level {level!r} must be 0 or more")
    return value


def _colour(image, level, rng, spectrum):
    if level not in ("cr", "bw"):
        raise DistortionError(f"colour: level {level!r} is cr (colour) or bw (greyscale)")
    return image if level == "cr" else grey(image)


def _reduce_contrast(image: np.ndarray, contrast: float) -> np.ndarray:
    return (1 - contrast) / 2 + contrast * image


def _contrast(image, level, rng, spectrum):
    contrast = _number(level, "contrast", "c") / 100
    if contrast > 1:
        raise DistortionError(f"contrast: level {level!r} is above c100")
    return _reduce_contrast(grey(image), contrast)


def _low_pass(image, level, rng, spectrum):
    sigma = _number(level, "low-pass")
    flat = grey(image)[..., 0]
    if sigma > 0:
        flat = gaussian_filter(flat, sigma, mode="constant", cval=MEAN_GREY)
    return np.repeat(flat[..., None], 3, axis=2)


def _high_pass(image, level, rng, spectrum):
    flat = grey(image)[..., 0]
    if str(level).strip().lower() != "inf":
        sigma = _number(level, "high-pass")
        if sigma == 0:
            raise DistortionError("high-pass: level 0 removes the whole image; inf is unfiltered")
        flat = flat - gaussian_filter(flat, sigma, mode="constant", cval=MEAN_GREY)
        flat = flat + (MEAN_GREY - flat.mean())
    return np.repeat(flat[..., None], 3, axis=2)


def _conjugate_antisymmetric(noise: np.ndarray) -> np.ndarray:
    """`noise` made odd over the 2-D frequency grid (n(-k) = -n(k); self-paired entries 0), so
    that shifting the phases of a real image's spectrum by it keeps the image real."""
    height, width = noise.shape
    partner = noise[(-np.arange(height)) % height][:, (-np.arange(width)) % width]
    ky, kx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pky, pkx = (-ky) % height, (-kx) % width
    first = (ky * width + kx) < (pky * width + pkx)
    return np.where(first, noise, np.where((ky == pky) & (kx == pkx), 0.0, -partner))


def _phase_scrambling(image, level, rng, spectrum):
    width = _number(level, "phase-scrambling")
    if width > 180:
        raise DistortionError(f"phase-scrambling: level {level!r} is above 180 degrees")
    flat = grey(image)[..., 0]
    noise = _conjugate_antisymmetric(rng.uniform(-width, width, flat.shape) * np.pi / 180)
    scrambled = np.real(np.fft.ifft2(np.fft.fft2(flat) * np.exp(1j * noise)))
    return np.repeat(scrambled[..., None], 3, axis=2)


def mean_amplitude_spectrum(images: Sequence[np.ndarray]) -> np.ndarray:
    """The mean Fourier amplitude of the images' luminance (power equalisation's target)."""
    shapes = {np.shape(i)[:2] for i in images}
    if len(shapes) != 1:
        raise DistortionError(f"power-equalisation needs images of one size, got {shapes}")
    return np.mean([np.abs(np.fft.fft2(grey(i)[..., 0])) for i in images], axis=0)


def _power_equalisation(image, level, rng, spectrum):
    if level not in ("0", "pow"):
        raise DistortionError(f"power-equalisation: level {level!r} is 0 (original) or pow")
    flat = grey(image)[..., 0]
    if level == "pow":
        if spectrum is None or spectrum.shape != flat.shape:
            raise DistortionError("power-equalisation: give the mean amplitude spectrum of the "
                                  "set's images (mean_amplitude_spectrum), of the image's size")
        flat = np.real(np.fft.ifft2(spectrum * np.exp(1j * np.angle(np.fft.fft2(flat)))))
    return np.repeat(flat[..., None], 3, axis=2)


def _rotation(image, level, rng, spectrum):
    degrees = _number(level, "rotation")
    if degrees % 90 or degrees >= 360:
        raise DistortionError(f"rotation: level {level!r} is 0, 90, 180 or 270")
    return np.rot90(grey(image), k=-int(degrees) // 90, axes=(0, 1))


# sRGB (linear) -> LMS cone responses (sRGB -> XYZ, then Hunt-Pointer-Estevez)
_RGB_TO_LMS = np.array([[0.38971, 0.68898, -0.07868], [-0.22981, 1.18340, 0.04641],
                        [0.0, 0.0, 1.0]]) @ np.array([[0.4124, 0.3576, 0.1805],
                                                      [0.2126, 0.7152, 0.0722],
                                                      [0.0193, 0.1192, 0.9505]])
# LMS -> opponent axes: luminance L+M, red-green L-M, blue-yellow S-(L+M)
_LMS_TO_OPPONENT = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, -1.0, 1.0]])


def _linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def _false_colour(image, level, rng, spectrum):
    text = str(level).strip().lower()
    if text not in ("true", "false"):
        raise DistortionError(f"false-colour: level {level!r} is true (original) or false")
    if text == "true":
        return np.asarray(image, dtype=np.float64)
    to_opponent = _LMS_TO_OPPONENT @ _RGB_TO_LMS
    opponent = _linear(np.asarray(image, dtype=np.float64)) @ to_opponent.T
    opponent[..., 1:] *= -1
    return _srgb(opponent @ np.linalg.inv(to_opponent).T)


def _uniform_noise(image, level, rng, spectrum):
    width = _number(level, "uniform-noise")
    flat = _reduce_contrast(grey(image)[..., 0], NOISE_CONTRAST)
    flat = flat + rng.uniform(-width, width, flat.shape)
    return np.repeat(flat[..., None], 3, axis=2)


def _displaced(flat: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """`flat` sampled at each pixel moved by (dy, dx), reflected at the borders."""
    ys, xs = np.indices(flat.shape, dtype=np.float64)
    return map_coordinates(flat, [ys + dy, xs + dx], order=1, mode="reflect")


def _field(shape: tuple[int, int], grain: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of unit standard deviation (white noise blurred at `grain`)."""
    field = gaussian_filter(rng.standard_normal(shape), grain, mode="wrap")
    return field / (field.std() or 1.0)


def _eidolon(image, level, rng, spectrum):
    """Eidolon-like partially coherent disarray (after Koenderink et al.'s Eidolon Factory,
    approximated): the grey image split into octave bands (differences of Gaussians), each band
    displaced by a smooth random field of `reach` px standard deviation (grain `grain` px),
    the bands' fields sharing a common part of weight `coherence` (1: one coherent warp; 0:
    each band moved on its own)."""
    parts = str(level).split("-")
    if len(parts) != 3:
        raise DistortionError(f"eidolon: level {level!r} is reach-coherence-grain, e.g. 8-3-10")
    reach, coherence, grain = (_number(p, "eidolon") for p in parts)
    coherence /= 10
    if coherence > 1 or grain <= 0:
        raise DistortionError(f"eidolon: level {level!r}: coherence is 0-10 (tenths), grain > 0")
    flat = grey(image)[..., 0]
    sigmas = [0.0] + [2.0 ** k for k in range(int(np.log2(max(flat.shape))))]
    blurred = [flat if s == 0 else gaussian_filter(flat, s, mode="reflect") for s in sigmas]
    bands = [a - b for a, b in pairwise(blurred)] + [blurred[-1]]
    common = [_field(flat.shape, grain, rng) for _ in range(2)]
    out = np.zeros_like(flat)
    for band in bands:
        own = [_field(flat.shape, grain, rng) for _ in range(2)]
        dy, dx = (reach * (coherence * c + np.sqrt(1 - coherence ** 2) * o)
                  for c, o in zip(common, own, strict=True))
        out += _displaced(band, dy, dx)
    return np.repeat(out[..., None], 3, axis=2)


_MEANINGS: dict[str, tuple[str, Apply]] = {
    "original": ("the image as it is", lambda image, level, rng, spectrum: image),
    "colour": ("cr: colour, bw: greyscale", _colour),
    "contrast": ("contrast in percent, scaled about mid-grey", _contrast),
    "low-pass": ("Gaussian filter standard deviation in pixels", _low_pass),
    "high-pass": ("the low-pass removed: its standard deviation in pixels (inf: unfiltered)",
                  _high_pass),
    "phase-scrambling": ("phase noise width in degrees", _phase_scrambling),
    "power-equalisation": ("pow: the amplitude spectrum replaced by the set's mean",
                           _power_equalisation),
    "false-colour": ("false: the colour-opponent axes inverted", _false_colour),
    "rotation": ("clockwise rotation in degrees", _rotation),
    "uniform-noise": ("width w of the noise, uniform in [-w, w], on a grey image at 30 % "
                      "contrast", _uniform_noise),
    **{name: ("eidolon-like disarray: reach (px) - coherence (tenths) - grain (px); an "
              "approximation of the Eidolon toolbox", _eidolon)
       for name in ("eidolonI", "eidolonII", "eidolonIII")},
}
DISTORTIONS: dict[str, Distortion] = {
    name: Distortion(name, levels, *_MEANINGS[name],
                     needs_spectrum=name == "power-equalisation")
    for name, levels in DISTORTION_LEVELS.items()}


def distort(image: np.ndarray, name: str, level: str, seed: int,
            spectrum: np.ndarray | None = None) -> np.ndarray:
    """`image` (floats in [0, 1] or uint8, H x W x 3) under distortion `name` at `level`,
    seeded; floats in [0, 1]."""
    if name not in DISTORTIONS:
        raise DistortionError(f"unknown distortion {name!r}; known: {', '.join(DISTORTIONS)}")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] < 3:
        raise DistortionError(f"{name}: expected an H x W x 3 image, got {array.shape}")
    if array.dtype == np.uint8:
        array = array / 255.0
    out = DISTORTIONS[name].apply(array[..., :3].astype(np.float64), str(level).strip(),
                                  np.random.default_rng(seed), spectrum)
    return np.clip(out, 0.0, 1.0)


def pink_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """A grey 1/f noise image (amplitude falling as 1/frequency, random phases) stretched to
    full contrast [0, 1], H x W x 3: the benchmark's mask."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    frequency = np.hypot(fy, fx)
    frequency[0, 0] = np.inf  # no mean: the stretch sets it
    spectrum = np.exp(2j * np.pi * rng.random((size, size))) / frequency
    noise = np.real(np.fft.ifft2(spectrum))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.repeat(noise[..., None], 3, axis=2)
