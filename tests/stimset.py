"""Write small but complete stimulus sets (the format of docs/architecture.md) for tests, without torch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from experiments.stimulus_set import OCCLUDER_COLUMNS, sha256_file, unit_key

PERCENTILES = {"p99": 0.99, "p95": 0.95, "p85": 0.85}


def _save(root: Path, rel: str, rng: np.random.Generator, size: int, level: float) -> str:
    pixels = np.clip(rng.normal(level * 255, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return sha256_file(path)


def make_stimulus_set(root: str | Path, name: str = "toy", model: str = "toynet",
                      n_units: int = 12, n_batches: int = 2, refs: int = 9,
                      synthetic: bool = True, difficulties: tuple[str, ...] = ("easy",),
                      image_size: int = 32, seed: int = 0, layers: tuple[str, ...] = ("conv1", "conv2"),
                      unbeaten: tuple[int, ...] = (), occlusion: bool = False,
                      shifted: tuple[str, ...] = ()) -> Path:
    """A valid stimulus set folder: units, natural (and synthetic) references, queries, PNGs;
    with `occlusion`, the occlusion task's images too (as `interpsy stimuli occlusion` adds);
    `shifted` names query distributions whose queries it adds (as `interpsy stimuli shift`)."""
    rng = np.random.default_rng(seed)
    where = Path(root) / name
    where.mkdir(parents=True, exist_ok=True)
    units, images = [], []
    for u in range(n_units):
        layer, channel = layers[u % len(layers)], u
        unit_id = unit_key(model, layer, channel)
        units.append({"unit_id": unit_id, "model": model, "layer": layer, "channel": channel,
                      "reduction": "mean", "layer_position": layers.index(layer) / max(1, len(layers) - 1),
                      "fv_activation": 10.0 + u, "top_natural_activation": 8.0 + u,
                      "fv_beats_natural": (u not in unbeaten) if synthetic else ""})

        def add(kind: str, role: str, batch: int, rank: int, level: float, difficulty: str = "",
                occluder: tuple = (), distribution: str = "in"):
            image_id = f"{model}.{layer}.{channel}.{kind[0]}.b{batch}.{role}.{difficulty or 'r'}{rank}"
            if distribution != "in":
                image_id += f".{distribution}"
            rel = f"images/{layer}/{channel}/{image_id}.png"
            digest = _save(where, rel, rng, image_size, level)
            images.append({"image_id": image_id, "unit_id": unit_id, "kind": kind, "role": role,
                           "batch": batch, "rank": rank, "activation": round(level * 10, 4),
                           "path": rel, "sha256": digest, "difficulty": difficulty,
                           "distribution": distribution,
                           **dict(zip(OCCLUDER_COLUMNS, occluder))})

        for batch in range(n_batches):
            for rank in range(refs):
                add("natural", "reference_max", batch, rank, 0.9 - rank * 0.01)
                add("natural", "reference_min", batch, rank, 0.1 + rank * 0.01)
            add("natural", "query_max", batch, 0, 0.8, "easy")
            add("natural", "query_min", batch, 0, 0.2, "easy")
            for difficulty in difficulties:
                if difficulty != "easy":
                    q = PERCENTILES[difficulty]
                    add("natural", "query_max", batch, 0, q, difficulty)
                    add("natural", "query_min", batch, 0, 1 - q, difficulty)
            for label in shifted:
                for difficulty in dict.fromkeys(("easy", *difficulties)):
                    q = PERCENTILES.get(difficulty, 0.8)
                    add("natural", "query_max", batch, 0, q - 0.05, difficulty, (), label)
                    add("natural", "query_min", batch, 0, 1.05 - q, difficulty, (), label)
            if occlusion:
                side = int(image_size * 0.4)  # max: a corner; min: the centre
                add("occlusion", "occluded_max", batch, 0, 0.75, occluder=(0, 0, side, 50.0))
                middle = (image_size - side) // 2
                add("occlusion", "occluded_min", batch, 0, 0.3,
                    occluder=(middle, middle, side, 900.0))
                for rank in range(refs):
                    add("occlusion", "reference_blurred", batch, rank, 0.7 - rank * 0.01)
        if synthetic:  # an unbeaten unit's diverse max references stay below its natural top
            for rank in range(refs):
                add("synthetic", "reference_max", 0, rank,
                    0.5 if u in unbeaten and rank else 0.9995 - rank * 1e-4)
                add("synthetic", "reference_min", 0, rank, 0.0005 + rank * 1e-4)
        # what a real set's writer derives from the images
        own = [i for i in images if i["unit_id"] == unit_id]
        natural = [i["activation"] for i in own if i["kind"] == "natural"]
        units[-1].update(top_natural_activation=max(natural), bottom_natural_activation=min(natural))
        if synthetic:
            units[-1]["fv_activation"] = next(i["activation"] for i in own if i["kind"] == "synthetic"
                                              and i["role"] == "reference_max" and i["rank"] == 0)
    pd.DataFrame(units).to_csv(where / "units.csv", index=False)
    pd.DataFrame(images).to_csv(where / "images.csv", index=False)
    manifest = {"name": name, "model": model, "weights": "random-init-test",
                "layers": list(layers), "units": [u["unit_id"] for u in units],
                "dataset": {"name": "generated", "size": len(images), "split": "test"},
                "parameters": {"n_batches": n_batches, "references": refs},
                "versions": {"interpsy": "test"}, "seed": seed,
                "created_at": "2026-01-01T00:00:00Z", "image_size": image_size,
                "query_distributions": {label: {"shift": label} for label in shifted}}
    (where / "stimuli.json").write_text(json.dumps(manifest, indent=2))
    return where


def toml_value(value) -> str:
    """A TOML literal for strings, numbers, booleans, lists and inline tables."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_spec(path: str | Path, sets: list[Path], **overrides) -> Path:
    """Write an experiment spec TOML with small defaults that fit make_stimulus_set's sets."""
    values = {"name": "toy-exp", "version": "1", "seed": 7, "conditions": ["natural", "synthetic"],
              "main_trials_per_task": 6, "catch_trials_per_task": 2, "responses_per_unit": 3}
    # Every test client shares one address: the per-network cap is tested where it is set.
    sections = {"practice": {"trials": 2}, "recruitment": {"max_sessions_per_network": 0}}
    for key, value in overrides.items():
        if isinstance(value, dict):
            sections.setdefault(key, {}).update(value)
        else:
            values[key] = value
    lines = [f"{k} = {toml_value(v)}" for k, v in values.items()]
    lines.append(f"stimulus_sets = {toml_value([str(s) for s in sets])}")
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    file = Path(path)
    file.write_text("\n".join(lines) + "\n")
    return file


CATEGORY_PHOTOS = {"cat": "chelsea", "cup": "coffee", "rocket": "rocket", "moon": "moon"}
CATEGORY_LEVELS = {"contrast": ["c100", "c30", "c10", "c05"], "rotation": ["0", "90"]}


def make_categorisation_set(root: Path, per_category: int = 6, size: int = 32) -> Path:
    """A categorisation set (`interpsy stimuli categories`) of four categories, each
    `per_category` crops of one skimage photo, at CATEGORY_LEVELS."""
    from PIL import Image
    from skimage import data

    from stimuli.categorisation_set import build_categorisation_set

    for category, photo in CATEGORY_PHOTOS.items():
        folder = root / "photos" / category
        folder.mkdir(parents=True)
        picture = getattr(data, photo)()
        for i in range(per_category):
            Image.fromarray(picture[i * 10:, i * 10:]).save(folder / f"{i}.png")
    return build_categorisation_set(root / "photos", root / "set", CATEGORY_LEVELS, size=size,
                                    progress=False)


def check_presentation(responses, stimulus_ms: float, mask_ms: float) -> None:
    """Categorisation answers as stored: each part's frames are its measured duration in frames
    of the measured period, and the timing flag is set exactly where a part was off its plan
    by more than half a frame plus 2 ms."""
    period = responses.frame_ms
    assert (responses.stimulus_frames == (responses.stimulus_ms / period).round()).all()
    assert (responses.mask_frames == (responses.mask_ms / period).round()).all()
    late = (responses.stimulus_ms - stimulus_ms).abs() > period / 2 + 2
    late |= (responses.mask_ms - mask_ms).abs() > period / 2 + 2
    assert (responses.timing_flag.notna() == late).all()
