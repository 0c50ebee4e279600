"""Image sources (folders, file lists), the shown crop (resize 256, centre crop 224) and an
offline image pool cut from photos that installed packages ship. Torch-free (crop_tensor
imports torch when called)."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from stimuli.errors import ImageSourceError, StimuliError

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
RESIZE = 256
CROP = 224


def list_images(source: str | Path) -> list[Path]:
    """Image files of a folder (recursive, sorted; ImageNet layout works) or of a list file."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(source).parts))
        if not files:
            raise ImageSourceError(f"image folder {source} holds no images "
                                   f"({', '.join(IMAGE_EXTENSIONS)})")
        return files
    if source.is_file():
        try:
            lines = source.read_text().splitlines()
        except UnicodeDecodeError as exc:
            raise ImageSourceError(f"image list {source} is not a text file of paths") from exc
        files = [(source.parent / line.strip()) for line in lines if line.strip()
                 and not line.startswith("#")]
        if not files:
            raise ImageSourceError(f"image list {source} names no images")
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise ImageSourceError(f"image list {source}: {missing[0]} does not exist"
                                   f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
        return files
    raise ImageSourceError(f"image source {source} does not exist (give a folder or a file list)")


@dataclass(frozen=True)
class Preprocessing:
    """How a source image becomes the crop the model sees and participants are shown: shorter
    side to `resize` (`interpolation`), then the centre `crop` (torchvision's Resize +
    CenterCrop). The default is torchvision's ImageNet evaluation; CLIP and timm models differ."""

    resize: int = RESIZE
    crop: int = CROP
    interpolation: str = "bilinear"  # bilinear | bicubic

    def describe(self) -> str:
        return f"resize {self.resize} ({self.interpolation}), centre crop {self.crop}"


DEFAULT_PREPROCESSING = Preprocessing()
_PIL_FILTER = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def load_shown(path: str | Path, prep: Preprocessing = DEFAULT_PREPROCESSING) -> Image.Image:
    """The image as shown and as seen by the model: RGB, shorter side `prep.resize`, centre
    `prep.crop` (the same arithmetic as torchvision's Resize + CenterCrop on PIL images).
    Raises ImageSourceError naming the file when it is unreadable or not an image.
    """
    resize, crop = prep.resize, prep.crop
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageSourceError(f"cannot read image {path}: {exc}") from exc
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(resize * long / short)
    size = (resize, new_long) if width <= height else (new_long, resize)
    image = image.resize(size, _PIL_FILTER[prep.interpolation])
    width, height = image.size
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def _package_photos() -> list[tuple[str, np.ndarray]]:
    """Natural photos shipped by installed packages (skimage, scikit-learn, matplotlib)."""
    photos: list[tuple[str, np.ndarray]] = []
    # Each source is optional: a package that is not installed contributes no photos.
    with contextlib.suppress(ImportError):
        from skimage import data

        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                     "immunohistochemistry", "retina", "colorwheel", "camera", "brick", "grass",
                     "gravel", "moon", "coins", "clock", "cell", "page", "text"):
            try:
                photos.append((f"skimage.data.{name}", np.asarray(getattr(data, name)())))
            except Exception:  # noqa: BLE001 - a missing optional sample is skipped
                continue
    with contextlib.suppress(ImportError):
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for name, image in zip(bunch.filenames, bunch.images):
            photos.append((f"sklearn.{Path(name).name}", np.asarray(image)))
    with contextlib.suppress(ImportError, OSError, ValueError):
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        photos.append(("matplotlib.grace_hopper.jpg", np.asarray(Image.open(path).convert("RGB"))))
    rgb = []
    for name, array in photos:
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            continue
        if array.ndim == 2:
            array = np.stack([array] * 3, -1)
        rgb.append((name, array[..., :3]))
    return rgb


def sample_image_pool(out_dir: str | Path, n: int = 300, seed: int = 0, size: int = RESIZE,
                      min_scale: float = 0.1) -> list[Path]:
    """Write `n` PNGs (size x size) cut from offline package photos; return their paths.

    Each image i: source photo `i % n_photos` (so every photo is used evenly), a random box of
    `min_scale`..1 of the photo's area with aspect ratio 3/4..4/3 (RandomResizedCrop-style),
    a horizontal flip with probability 1/2 and a bicubic resize to `size` x `size`; all from `numpy.random.default_rng(seed)`. `pool.json` records every crop.
    Existing pools with the same parameters are reused.
    """
    out = Path(out_dir)
    meta_path = out / "pool.json"
    params = {"n": n, "seed": seed, "size": size, "min_scale": min_scale}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        paths = [out / item["file"] for item in meta.get("images", [])]
        if meta.get("parameters") == params and all(p.is_file() for p in paths):
            return paths
    photos = _package_photos()
    if not photos:
        raise ImageSourceError("no sample photos found (install scikit-image or scikit-learn)")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records, paths = [], []
    for i in range(n):
        name, array = photos[i % len(photos)]
        height, width = array.shape[:2]
        for _ in range(20):
            area = height * width * rng.uniform(min_scale, 1.0)
            aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
            w = int(round(np.sqrt(area * aspect)))
            h = int(round(np.sqrt(area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                break
        else:
            h = w = min(height, width)
        top = int(rng.integers(0, height - h + 1))
        left = int(rng.integers(0, width - w + 1))
        flip = bool(rng.random() < 0.5)
        image = Image.fromarray(np.ascontiguousarray(array[top:top + h, left:left + w]))
        if flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        image = image.resize((size, size), Image.BICUBIC)
        file = f"pool_{i:05d}.png"
        image.save(out / file)
        paths.append(out / file)
        records.append({"file": file, "source": name, "box": [left, top, w, h], "flip": flip})
    meta_path.write_text(json.dumps({"parameters": params, "images": records}, indent=1))
    return paths


def crop_tensor(path: str | Path, crop: int, purpose: str) -> torch.Tensor:
    """A stored set image as uint8 (3, crop, crop), refusing other sizes: `purpose` (e.g.
    "proxies") needs the model's own crops."""
    import torch

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    if pixels.shape[0] != crop:
        raise StimuliError(f"{path}: {purpose} need the model's {crop} px crops; the set "
                           f"stores {pixels.shape[0]} px images")
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


HISTOGRAM_BINS = 16


def histogram_correlation(images: np.ndarray) -> float:
    """Mean pairwise Pearson correlation of (N, H, W, 3) uint8 images' 16-bin per-channel colour
    histograms (the three channels' bins side by side): near 1 for near-identical textures, NaN
    for fewer than two images."""
    if len(images) < 2:
        return float("nan")
    edges = np.linspace(0, 256, HISTOGRAM_BINS + 1)
    rows = np.stack([np.concatenate([np.histogram(image[..., c], edges)[0] for c in range(3)])
                     for image in images]).astype(np.float64)
    corr = np.corrcoef(rows)
    return float(corr[~np.eye(len(rows), dtype=bool)].mean())
