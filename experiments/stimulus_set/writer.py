"""Write a stimulus set folder (stimuli.json, units.csv, images.csv, PNGs): the image ids, the
file paths, the tables and, last, the manifest with the tables' hashes. Torch-free; `stimuli`
renders and mines the images and hands them here.

image_id scheme (slash-free, unique within a set):
  natural:   `{model}.{layer}.c{channel}.n.b{batch:02d}.{rmax|rmin}{rank}` for references and
             `{model}.{layer}.c{channel}.n.b{batch:02d}.{qmax|qmin}.{difficulty}` for queries;
  synthetic: `{model}.{layer}.c{channel}.s.{rmax|rmin}{rank}` (rank 0 = the non-diverse image).
`:` in layer names is written as `-`. Natural PNGs are stored once per source image
(`images/natural/{index:07d}.png`) and shared by all rows that use it; synthetic ones under
`images/synthetic/{model}.{layer}.c{channel}/{max|min}{rank}.png`.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.stimulus_set.integrity import TABLES_KEY, sha256_file, table_hashes
from experiments.stimulus_set.reader import (
    IMAGE_COLUMNS,
    IMAGES_CSV,
    MANIFEST,
    UNIT_COLUMNS,
    UNITS_CSV,
)

ROLE_SHORT = {"reference_max": "rmax", "reference_min": "rmin", "query_max": "qmax",
              "query_min": "qmin"}


def slug(text: str) -> str:
    """A file- and id-safe form of a model or layer name."""
    return text.replace("/", "_").replace(":", "-").replace(" ", "_")


def unit_slug(model: str, layer: str, channel: int) -> str:
    return f"{slug(model)}.{slug(layer)}.c{channel}"


def image_id(model: str, layer: str, channel: int, kind: str, role: str, batch: int, rank: int,
             difficulty: str = "") -> str:
    """The image_id of one row (see the module docstring)."""
    base = unit_slug(model, layer, channel)
    short = ROLE_SHORT[role]
    if kind == "synthetic":
        return f"{base}.s.{short}{rank}"
    if role.startswith("query"):
        return f"{base}.n.b{batch:02d}.{short}.{difficulty or 'easy'}"
    return f"{base}.n.b{batch:02d}.{short}{rank}"


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an (H, W, 3) uint8 array as PNG (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", optimize=False)


def write_natural(out: Path, index: int, shown: Callable[[], Image.Image], size: int) -> str:
    """Save the shown crop of pool image `index` once (`shown()` loads it, only when the file
    is not written yet); return its relative path."""
    rel = f"images/natural/{index:07d}.png"
    target = out / rel
    if not target.is_file():
        image = shown()
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(target)
    return rel


def write_tables(out: Path, manifest: dict, units: list[dict], images: list[dict]) -> Path:
    """Write units.csv, images.csv (hashing every file) and, last, the manifest."""
    hashes: dict[str, str] = {}
    for row in images:
        if row["path"] not in hashes:
            hashes[row["path"]] = sha256_file(out / row["path"])
        row["sha256"] = hashes[row["path"]]
    for name, columns, rows in ((UNITS_CSV, UNIT_COLUMNS, units), (IMAGES_CSV, IMAGE_COLUMNS, images)):
        extra = [c for c in (rows[0] if rows else {}) if c not in columns]
        with open(out / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns) + extra, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    manifest = {**manifest, TABLES_KEY: table_hashes(out, (UNITS_CSV, IMAGES_CSV))}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    tmp.replace(out / MANIFEST)
    return out
