"""`interpsy stimuli occlusion SET`: add the occlusion task's images to a built stimulus set,
resumably (torch).

For every unit and natural batch, the base image is the top image of IMI's fair batch (its
max reference of rank 0); the batch's other nine images (max references 1-8 and the easy max
query, `occlusion_references`) are the trial's natural references. Written as kind `occlusion`:
`occluded_max` / `occluded_min` (the occlusions that keep the activation highest / lower it
most) and `reference_blurred` (each natural reference blurred except its most driving window).
Every position's activation is kept in `occlusion/<unit>.npz` for baselines and simulated
observers; the chosen occluders' corners are columns of images.csv. A catch trial shows the
unoccluded base beside `occluded_min`; `unsafe_catch` in the manifest lists the batches where
the unit does not respond more to the base (none expected: the worst occlusion is a minimum).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from experiments.stimulus_set import (
    IMAGES_CSV,
    MANIFEST,
    OCCLUDER_COLUMNS,
    OCCLUSION_ROLES,
    UNITS_CSV,
    load_stimulus_set,
    occlusion_split,
)
from experiments.stimulus_set import (
    OCCLUSION_KIND as KIND,
)
from experiments.stimulus_set.writer import save_png, unit_slug, write_tables
from experiments.vocabulary import IN_DISTRIBUTION
from stimuli.build import WORK, _device_record, _save_json
from stimuli.errors import StimuliError
from stimuli.mining import normalizer
from stimuli.occlusion import OcclusionConfig, UnitProbe, blurred_reference, occlusions_of
from stimuli.registry import get_spec, load_model

SHORT = {"occluded_max": "omax", "occluded_min": "omin", "reference_blurred": "rblur"}
MAPS = "occlusion"
FORMAT = 3  # in the resume stamp: work files of another layout are redone


def occlusion_image_id(slug: str, role: str, batch: int, rank: int = 0) -> str:
    """`{unit}.o.b{batch:02d}.{omax|omin}` or `... .rblur{rank}`."""
    suffix = f"{SHORT[role]}{rank}" if role == "reference_blurred" else SHORT[role]
    return f"{slug}.o.b{batch:02d}.{suffix}"


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def _row(image_id: str, unit_id: str, role: str, batch: int, rank: int, activation: float,
         path: str, corner: tuple[int, int], size: int, variance: float | str = "") -> dict:
    row = {"image_id": image_id, "unit_id": unit_id, "kind": KIND, "role": role, "batch": batch,
           "rank": rank, "activation": f"{activation:.9g}", "path": path, "difficulty": ""}
    if variance != "":
        variance = f"{variance:.6g}"
    row.update(dict(zip(OCCLUDER_COLUMNS, (*corner, size, variance))))
    return row


def patch_variance(pixels: np.ndarray, corner: tuple[int, int], size: int) -> float:
    """Variance of the pixels under an occluder (grey levels, mean over the channels)."""
    y, x = corner
    patch = pixels[y:y + size, x:x + size].astype(np.float64)
    return float(patch.reshape(-1, patch.shape[-1]).var(axis=0).mean())


def _unit_rows(stimulus_set, unit, probe: UnitProbe, cfg: OcclusionConfig, out: Path
               ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The occlusion rows of one unit (PNGs written) and its activation maps."""
    images = stimulus_set.images
    slug = unit_slug(unit.model, unit.layer, int(unit.channel))
    rows, maps = [], {"batch": [], "base_activation": [], "activations": [], "corners": None}
    natural = images[(images.unit_id == unit.unit_id) & (images.kind == "natural")
                     & (images.distribution == IN_DISTRIBUTION)]
    for batch in stimulus_set.natural_batches(unit.unit_id):
        group = natural[natural.batch == batch]
        base, references = occlusion_split(
            list(group[group.role == "reference_max"].sort_values("rank").itertuples()),
            list(group[(group.role == "query_max")
                       & (group.difficulty == "easy")].itertuples()))
        if base is None or int(base.rank) != 0:
            raise StimuliError(f"{stimulus_set.path}: unit {unit.unit_id} batch {batch} has no "
                               f"max reference of rank 0 to occlude")
        base_pixels = _pixels(stimulus_set.path / base.path)
        found = occlusions_of(probe, base_pixels, cfg)
        size = cfg.size(found.best_image.shape[0])
        for role, picture, index in (("occluded_max", found.best_image, found.best),
                                     ("occluded_min", found.worst_image, found.worst)):
            image_id = occlusion_image_id(slug, role, int(batch))
            rel = f"images/{KIND}/{slug}/b{int(batch):02d}.{SHORT[role]}.png"
            save_png(picture, out / rel)
            corner = (int(found.corners[index][0]), int(found.corners[index][1]))
            rows.append(_row(image_id, unit.unit_id, role, int(batch), 0,
                             float(found.activations[index]), rel, corner, size,
                             patch_variance(base_pixels, corner, size)))
        for rank, reference in enumerate(references):
            picture, activation, corner = blurred_reference(
                probe, _pixels(stimulus_set.path / reference.path), cfg)
            image_id = occlusion_image_id(slug, "reference_blurred", int(batch), rank)
            rel = f"images/{KIND}/{slug}/b{int(batch):02d}.rblur{rank}.png"
            save_png(picture, out / rel)
            rows.append(_row(image_id, unit.unit_id, "reference_blurred", int(batch), rank,
                             activation, rel, corner, size))
        maps["batch"].append(int(batch))
        maps["base_activation"].append(found.base_activation)
        maps["activations"].append(found.activations)
        maps["corners"] = found.corners
    return rows, {k: np.asarray(v) for k, v in maps.items()}


def unsafe_catch(images, rows: list[dict]) -> list[str]:
    """Batches whose worst occlusion does not lower the unit below the unoccluded base (the
    mined activation of the batch's max reference of rank 0)."""
    bases = images[(images.kind == "natural") & (images.role == "reference_max")
                   & (images["rank"] == 0)].set_index(["unit_id", "batch"]).activation
    return [f"{r['unit_id']} batch {r['batch']}" for r in rows if r["role"] == "occluded_min"
            and float(r["activation"]) >= float(bases.get((r["unit_id"], int(r["batch"])),
                                                          np.inf))]


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def add_occlusion(set_dir: str | Path, cfg: OcclusionConfig | None = None,
                  pretrained: bool = True, weights_path: str | None = None, device: str = "cpu",
                  progress: bool = True, command: str = "") -> Path:
    """Add (or redo) the occlusion images of every unit of a set; an interrupted run resumes
    from `_work/occlusion/`. Returns the set folder, valid as before."""
    cfg = cfg or OcclusionConfig()
    out = Path(set_dir)
    stimulus_set = load_stimulus_set(out, verify_hashes=False)
    size = stimulus_set.image_size
    if cfg.size(size) >= size:
        raise StimuliError(f"--fraction {cfg.fraction}: the occluder would cover the whole image")
    name = stimulus_set.manifest["model"]
    spec = get_spec(name)
    model = load_model(name, pretrained=pretrained, weights_path=weights_path, device=device)
    normalize = normalizer(spec, torch.device(device))
    work = out / WORK / MAPS
    work.mkdir(parents=True, exist_ok=True)
    settings = {**cfg.record(), "pretrained": pretrained, "weights_path": weights_path,
                "format": FORMAT}
    stamp = work / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        for done in work.glob("*.json"):
            done.unlink()  # other settings: start over
    _save_json(stamp, settings)
    from tqdm.auto import tqdm

    rows: list[dict] = []
    units = list(stimulus_set.units.itertuples(index=False))
    for unit in tqdm(units, disable=not progress, desc=f"occluding {name}", unit="unit"):
        slug = unit_slug(unit.model, unit.layer, int(unit.channel))
        done = work / f"{slug}.json"
        if done.is_file():
            rows.extend(json.loads(done.read_text()))
            continue
        probe = UnitProbe(model, spec, unit.layer, int(unit.channel), normalize,
                          torch.device(device))
        unit_rows, maps = _unit_rows(stimulus_set, unit, probe, cfg, out)
        (out / MAPS).mkdir(exist_ok=True)
        np.savez_compressed(out / MAPS / f"{slug}.npz", **maps)
        _save_json(done, unit_rows)  # last: the unit counts as done only with its files
        rows.extend(unit_rows)
    kept = [r for r in _read_rows(out / IMAGES_CSV) if r["kind"] != KIND]
    for row in kept:
        row.update({c: row.get(c, "") for c in OCCLUDER_COLUMNS})
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["occlusion"] = {**cfg.record(), "maps": f"{MAPS}/<unit>.npz",
                             "device": _device_record(device), "command": command or " ".join(sys.argv),
                             "roles": list(OCCLUSION_ROLES), "unsafe_catch": unsafe_catch(stimulus_set.images, rows)}
    write_tables(out, manifest, _read_rows(out / UNITS_CSV), kept + rows)
    return out
