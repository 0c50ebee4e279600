"""Ship a stimulus set without its natural images and rebuild them from the image source. Torch-free.

A set's natural images are crops of its image source, so a set whose source can be recreated
(the demo's seeded photo pool) ships as its tables, its visualizations and, per natural image,
the source file and a digest of the crop's pixels. `unpack` cuts every natural crop again, checks
its pixels against that digest and rehashes the files: PNG bytes depend on the zlib build, pixels
do not, and the tables (which images, which activations) are the shipped ones, untouched.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.stimulus_set import IMAGES_CSV, MANIFEST, UNITS_CSV, load_stimulus_set
from experiments.stimulus_set.integrity import TABLES_KEY
from experiments.stimulus_set.writer import write_natural, write_tables
from stimuli.errors import StimuliError
from stimuli.images import DEFAULT_PREPROCESSING, load_shown

NATURALS = "naturals.json"


def pixel_digest(path: str | Path) -> str:
    """sha256 of an image's RGB pixels and shape (independent of the PNG encoder)."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def pack(set_dir: str | Path, dest: str | Path) -> Path:
    """Copy a set's tables and visualizations to `dest` with `naturals.json` (source, pixels)."""
    stimulus_set = load_stimulus_set(set_dir, verify_hashes=True)
    source, target = Path(set_dir), Path(dest)
    if target.exists():
        raise StimuliError(f"{target} exists; pack into a new folder")
    images = stimulus_set.images
    for rel in [MANIFEST, UNITS_CSV, IMAGES_CSV,
                *images[images.kind == "synthetic"].path.unique()]:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)
    natural = images[images.kind == "natural"].drop_duplicates("path")
    record = {row.path: {"source": row.source, "pixels": pixel_digest(source / row.path)}
              for row in natural.itertuples(index=False)}
    (target / NATURALS).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return target


def unpack(shipped: str | Path, image_source: str | Path, out: str | Path) -> Path:
    """Rebuild a packed set in `out`, cutting its natural images from `image_source` again."""
    shipped, pool, out = Path(shipped), Path(image_source), Path(out)
    manifest = json.loads((shipped / MANIFEST).read_text())
    prep = DEFAULT_PREPROCESSING
    if manifest["dataset"]["preprocessing"] != prep.describe():
        raise StimuliError(f"{shipped}: natural images made with "
                           f"{manifest['dataset']['preprocessing']!r}; unpack knows "
                           f"{prep.describe()!r} only")
    staging = out.with_name(out.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(shipped, staging, ignore=shutil.ignore_patterns(NATURALS))
    size = int(manifest["image_size"])
    for rel, entry in json.loads((shipped / NATURALS).read_text()).items():
        source = pool / entry["source"]
        if not source.is_file():
            raise StimuliError(f"{shipped}: natural image {rel} comes from {source}, which is "
                               f"missing")
        write_natural(staging, int(Path(rel).stem), partial(load_shown, source, prep), size)
        if pixel_digest(staging / rel) != entry["pixels"]:
            raise StimuliError(f"{shipped}: {rel} cut from {source} differs from the shipped "
                               f"set's pixels (another image pool, or another Pillow resize?)")
    units, images = (_rows(staging / name) for name in (UNITS_CSV, IMAGES_CSV))
    manifest["dataset"] = {**manifest["dataset"], "source": str(pool)}
    manifest["unpacked_from"] = str(shipped)
    write_tables(staging, {k: v for k, v in manifest.items() if k != TABLES_KEY}, units, images)
    load_stimulus_set(staging, verify_images=True, verify_hashes=True)
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
