"""Distribution shifts for query images (shifted queries): each a seeded function of an RGB
uint8 image and a severity 1-5, registered by name, in the spirit of ImageNet-C's corruptions.
References stay in distribution; only the queries move (PIL and numpy)."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from experiments.vocabulary import IN_DISTRIBUTION

SEVERITIES = (1, 2, 3, 4, 5)
Apply = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Shift:
    """One kind of shift: its name, what it does at each severity, and the function."""

    name: str
    description: str
    apply: Apply


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image))  # H x W x 3 uint8: RGB


def _blend(image: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    out = (1 - weight) * image.astype(np.float32) + weight * other.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius = (0.75, 1.5, 2.5, 4.0, 6.0)[severity - 1]
    return np.asarray(_pil(image).filter(ImageFilter.GaussianBlur(radius)))


def _noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sd = (0.04, 0.08, 0.12, 0.18, 0.26)[severity - 1] * 255
    noisy = image.astype(np.float32) + rng.normal(0, sd, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    keep = (0.75, 0.55, 0.4, 0.25, 0.12)[severity - 1]
    mean = np.full_like(image, int(round(image.mean())))
    return _blend(image, mean, 1 - keep)


def _hue(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    degrees = (30, 60, 90, 135, 180)[severity - 1]
    hsv = np.asarray(_pil(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    height, width = hsv.shape[:2]
    return np.asarray(Image.frombytes("HSV", (width, height), hsv.tobytes()).convert("RGB"))


def _greyscale(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    grey = np.asarray(ImageOps.grayscale(_pil(image)).convert("RGB"))
    return _blend(image, grey, (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1])


def _cutout(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    height, width = image.shape[:2]
    count, fraction = ((1, 0.15), (2, 0.18), (3, 0.2), (4, 0.22), (5, 0.25))[severity - 1]
    side = max(1, round(fraction * min(height, width)))
    for _ in range(count):
        y = int(rng.integers(0, height - side + 1))
        x = int(rng.integers(0, width - side + 1))
        out[y:y + side, x:x + side] = 128
    return out


def _edges(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    grey = ImageOps.grayscale(_pil(image)).filter(ImageFilter.GaussianBlur(1))
    lines = ImageOps.autocontrast(ImageOps.invert(grey.filter(ImageFilter.FIND_EDGES)))
    return _blend(image, np.asarray(lines.convert("RGB")), (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1])


def _stylise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    bits, size = ((6, 3), (5, 3), (4, 5), (3, 5), (2, 7))[severity - 1]
    flat = _pil(image).filter(ImageFilter.ModeFilter(size))
    return np.asarray(ImageOps.posterize(flat, bits))


SHIFTS: dict[str, Shift] = {s.name: s for s in (
    Shift("blur", "Gaussian blur, radius 0.75-6 px", _blur),
    Shift("noise", "additive Gaussian noise, SD 4-26 % of the range", _noise),
    Shift("contrast", "contrast towards the mean grey, 75-12 % kept", _contrast),
    Shift("hue", "hue rotated by 30-180 degrees", _hue),
    Shift("greyscale", "blended towards greyscale, 20-100 %", _greyscale),
    Shift("cutout", "1-5 grey squares of 15-25 % of the side at seeded places", _cutout),
    Shift("edges", "blended towards a line drawing of its edges, 20-100 %", _edges),
    Shift("stylise", "flattened (mode filter) and posterised to 6-2 bits", _stylise),
)}


def apply_shift(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`image` (H, W, 3 uint8) shifted by `name` at `severity`; the same seed gives the same
    image."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; known: {', '.join(SHIFTS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")
    return SHIFTS[name].apply(image, severity, np.random.default_rng(seed))


@dataclass(frozen=True)
class PoolShift:
    """One shift at one severity applied to every image of a pool, seeded per image: the same
    (seed, label, image index) always gives the same pixels (picklable for DataLoader workers)."""

    shift: str
    severity: int
    seed: int

    def __post_init__(self) -> None:
        if self.shift not in SHIFTS:
            raise ValueError(f"unknown shift {self.shift!r}; known: {', '.join(SHIFTS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def label(self) -> str:
        """The query distribution's name in sets, specs and datasets, e.g. `blur-3`."""
        return f"{self.shift}-{self.severity}"

    def image_seed(self, index: int) -> int:
        """The seed of image `index` of the pool."""
        digest = hashlib.sha256(f"{self.seed}:{self.label}:{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little")

    def __call__(self, image: np.ndarray, index: int) -> np.ndarray:
        return apply_shift(image, self.shift, self.severity, self.image_seed(index))

    def describe(self) -> dict:
        """What the manifest records of this shift."""
        return {"shift": self.shift, "severity": self.severity, "seed": self.seed,
                "description": SHIFTS[self.shift].description}


def parse_shift(text: str, seed: int) -> PoolShift:
    """`NAME:SEVERITY` (e.g. `blur:3`) as a PoolShift, or ValueError naming what is wrong."""
    name, _, severity = text.partition(":")
    if not severity.strip().isdigit():
        raise ValueError(f"shift {text!r}: expected NAME:SEVERITY, e.g. blur:3 (shifts: "
                         f"{', '.join(SHIFTS)}; severities 1-5)")
    return PoolShift(name.strip(), int(severity), seed)


DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def check_domain_name(name: str) -> str:
    """A user folder's distribution name: lower case, not `in` and not a shift's label."""
    if not DOMAIN_NAME.fullmatch(name) or name == IN_DISTRIBUTION or name in SHIFTS:
        raise ValueError(f"domain name {name!r}: use lower-case letters, digits and _ (starting "
                         f"with a letter), other than {IN_DISTRIBUTION!r} and the shifts' names")
    return name
