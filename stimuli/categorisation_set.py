"""`interpsy stimuli categories FOLDER OUT`: a categorisation stimulus set from a labelled image
folder (one subfolder per category): every image cut to a centred square at the set's size and
written at each level of each distortion (stimuli.distortions), with its own 1/f noise mask;
every random step seeded from the set's seed and the image's place. The set's format is
experiments.stimulus_set's, kind `categorisation` (torch-free)."""
from __future__ import annotations

import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from experiments.stimulus_set import CATEGORISATION_KIND, unit_key
from experiments.stimulus_set.writer import save_png, slug, write_tables
from experiments.vocabulary import DISTORTION_LEVELS
from stimuli.distortions import DISTORTIONS, distort, mean_amplitude_spectrum, pink_noise
from stimuli.errors import StimuliError
from stimuli.images import IMAGE_EXTENSIONS
from stimuli.provenance import versions

DEFAULT_NAME = "categories"


def read_labelled_folder(folder: str | Path, per_category: int | None = None, seed: int = 0,
                         allowed: tuple[str, ...] | None = None) -> dict[str, list[Path]]:
    """Category -> image files (one subfolder per category); an unbalanced folder needs
    `per_category` (that many of each, a seeded draw)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StimuliError(f"{folder}: not a folder (give a folder with one subfolder of images "
                           f"per category, e.g. {folder}/cat/*.png)")
    images: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images[sub.name] = sorted(p for p in sub.iterdir() if p.is_file()
                                  and p.suffix.lower() in IMAGE_EXTENSIONS)
    loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise StimuliError(f"{folder}: no category subfolders ({len(loose)} images lie loose "
                           f"in it); put each category's images in a subfolder named after it, "
                           f"e.g. {folder}/cat/*.png")
    empty = [c for c, paths in images.items() if not paths]
    if empty:
        raise StimuliError(f"{folder}: category folder {empty[0]!r} holds no images "
                           f"({', '.join(IMAGE_EXTENSIONS)})")
    if len(images) < 2:
        raise StimuliError(f"{folder}: only one category ({next(iter(images))}); a "
                           f"categorisation task needs at least 2")
    if allowed is not None:
        unknown = [c for c in images if c not in allowed]
        if unknown:
            raise StimuliError(f"{folder}: category {unknown[0]!r} is not one of "
                               f"{', '.join(allowed)}")
    counts = {c: len(paths) for c, paths in images.items()}
    if per_category is None:
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{c} {n}" for c, n in counts.items())
            raise StimuliError(f"{folder}: unbalanced categories ({listed} images); give "
                               f"--per-category N (at most {min(counts.values())}) to use N "
                               f"images of each, drawn with the seed")
        return images
    short = {c: n for c, n in counts.items() if n < per_category}
    if short:
        c, n = next(iter(short.items()))
        raise StimuliError(f"{folder}: --per-category {per_category} but {c!r} holds {n} images")
    rng = np.random.default_rng([seed, 0])
    return {c: sorted(paths[i] for i in rng.choice(len(paths), per_category, replace=False))
            for c, paths in images.items()}


def square(path: Path, size: int) -> np.ndarray:
    """The image's centred square at `size` x `size` (RGB floats in [0, 1])."""
    try:
        with Image.open(path) as image:
            fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    except OSError as exc:
        raise StimuliError(f"{path}: not a readable image ({exc})") from None
    return np.asarray(fitted, dtype=np.float64) / 255.0


def parse_distortions(texts: tuple[str, ...]) -> dict[str, list[str]]:
    """`NAME` (the benchmark's levels) or `NAME:L1,L2,...` per text -> name -> levels."""
    chosen: dict[str, list[str]] = {}
    for text in texts or ("original",):
        name, _, levels = text.partition(":")
        name = name.strip()
        if name not in DISTORTIONS:
            raise StimuliError(f"--distortion {text}: unknown distortion {name!r}; known: "
                               f"{', '.join(DISTORTIONS)}")
        if name in chosen:
            raise StimuliError(f"--distortion {name} is given twice")
        picked = [v.strip() for v in levels.split(",") if v.strip()] if levels else list(
            DISTORTION_LEVELS[name])
        if len(set(picked)) != len(picked):
            raise StimuliError(f"--distortion {text}: a level appears twice")
        chosen[name] = picked
    return chosen


def _seed(seed: int, *parts: object) -> int:
    """A stable seed for one image from the set's seed and the image's place."""
    words = [seed, *(zlib.crc32(str(p).encode()) for p in parts)]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def build_categorisation_set(folder: str | Path, out: str | Path,
                             distortions: dict[str, list[str]], size: int = 224,
                             seed: int = 0, name: str = DEFAULT_NAME,
                             per_category: int | None = None, progress: bool = True,
                             command: str = "") -> Path:
    """Write the categorisation set of a labelled folder into `out` (a new or empty folder)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StimuliError(f"{out}: exists and is not empty; give a new folder")
    if size < 16:
        raise StimuliError(f"--size {size}: too small (16 px at least)")
    images = read_labelled_folder(folder, per_category, seed)
    for distortion, levels in distortions.items():  # refused before anything is written
        for level in levels:
            distort(np.full((4, 4, 3), 0.5), distortion, level, 0,
                    spectrum=np.ones((4, 4)) if DISTORTIONS[distortion].needs_spectrum
                    else None)
    items = [(category, number, path) for category, paths in images.items()
             for number, path in enumerate(paths)]
    from tqdm.auto import tqdm

    pictures = [square(path, size) for _, _, path in
                tqdm(items, disable=not progress, desc="reading images", unit="image")]
    spectrum = (mean_amplitude_spectrum(pictures)
                if any(DISTORTIONS[d].needs_spectrum for d in distortions) else None)
    out.mkdir(parents=True, exist_ok=True)
    units, rows = [], []
    model = slug(name)
    for (category, number, path), picture in tqdm(
            list(zip(items, pictures, strict=True)), disable=not progress,
            desc=f"writing {len(items)} images x {sum(map(len, distortions.values()))} levels",
            unit="image"):
        unit_id = unit_key(model, category, number)
        units.append({"unit_id": unit_id, "model": model, "layer": category, "channel": number,
                      "source": str(path.relative_to(folder))})
        base = f"{model}.{category}.{number:04d}"
        for distortion, levels in distortions.items():
            for index, level in enumerate(levels):
                shown = distort(picture, distortion, level,
                                _seed(seed, category, number, distortion, level), spectrum)
                rel = f"images/{CATEGORISATION_KIND}/{distortion}/{level}/{category}/{number:04d}.png"
                save_png(_to_uint8(shown), out / rel)
                rows.append(_row(f"{base}.{distortion}.{level}", unit_id, "stimulus", index,
                                 rel, category, distortion, level))
        rel = f"images/{CATEGORISATION_KIND}/mask/{category}/{number:04d}.png"
        save_png(_to_uint8(pink_noise(size, np.random.default_rng(
            _seed(seed, category, number, "mask")))), out / rel)
        rows.append(_row(f"{base}.mask", unit_id, "mask", 0, rel, category, "", ""))
    manifest = {
        "model": model, "weights": None, "layers": list(images), "units": [u["unit_id"]
                                                                            for u in units],
        "dataset": {"folder": str(Path(folder).resolve()), "per_category": per_category,
                    "counts": {c: len(p) for c, p in images.items()}},
        "parameters": {"size": size, "crop": "centred square, Lanczos",
                       "mask": "grey 1/f noise, full contrast, one per image",
                       "seeds": "numpy SeedSequence of the set's seed and the CRC32s of "
                                "category, number, distortion and level (or 'mask')"},
        "versions": versions(), "seed": seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "categorisation", "name": name, "image_size": size,
        "categories": list(images), "distortions": distortions,
        "command": command or " ".join(sys.argv)}
    return write_tables(out, manifest, units, rows)


def _row(image_id: str, unit_id: str, role: str, batch: int, path: str, category: str,
         distortion: str, level: str) -> dict:
    return {"image_id": image_id, "unit_id": unit_id, "kind": CATEGORISATION_KIND,
            "role": role, "batch": batch, "rank": 0, "activation": "", "path": path,
            "difficulty": "", "distribution": "", "category": category,
            "distortion": distortion, "level": level}
