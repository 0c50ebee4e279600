"""`stimuli check --recompute`: load the set's model, recompute the activation of a seeded sample
of its images from the stored PNGs and compare with images.csv (an image swapped after the set
was written, with every hash updated, still shows here)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from experiments.stimulus_set import StimulusSet
from stimuli.errors import StimuliError
from stimuli.layers import LayerRecorder
from stimuli.mining import normalizer
from stimuli.registry import get_spec, load_model

# Allowed difference, as a share of the unit's natural activation range: natural PNGs are the
# model's exact crops; a visualization's PNG is its float image rounded to 8 bits.
TOLERANCE = {"natural": 1e-3, "synthetic": 0.05, "occlusion": 1e-3}


def _sample(stimulus_set: StimulusSet, n: int, seed: int):
    """Up to n images with a recorded activation, shared out over the kinds the set holds
    (synthetic, occlusion, natural) as evenly as each kind's images allow."""
    known = stimulus_set.images[stimulus_set.images.activation.notna()]
    parts = [p for p in (known[known.kind == kind] for kind in ("synthetic", "occlusion",
                                                                  "natural")) if len(p)]
    chosen, left = [], n
    for k, part in enumerate(parts):
        take = min(len(part), left // (len(parts) - k))
        chosen.append(part.sample(n=take, random_state=seed))
        left -= take
    return [row for frame in chosen for row in frame.itertuples(index=False)]


def recompute(stimulus_set: StimulusSet, sample: int = 64, seed: int = 0,
              pretrained: bool = True, weights_path: str | None = None,
              device: str = "cpu") -> tuple[int, list[str]]:
    """(images compared, problems): recorded activations the model does not reproduce."""
    name = stimulus_set.manifest["model"]
    spec = get_spec(name)
    crop = spec.preprocessing.crop
    if stimulus_set.image_size != crop:
        raise StimuliError(f"{stimulus_set.path}: --recompute needs the model's {crop} px crops; "
                           f"this set stores {stimulus_set.image_size} px images")
    model = load_model(name, pretrained, weights_path, device)
    normalize = normalizer(spec, torch.device(device))
    units = stimulus_set.units.set_index("unit_id")
    images = stimulus_set.images
    natural = images[images.kind == "natural"].groupby("unit_id").activation
    spans = natural.max() - natural.min()
    problems = []
    rows = _sample(stimulus_set, sample, seed)
    for row in rows:
        unit = units.loc[row.unit_id]
        pixels = np.asarray(Image.open(stimulus_set.path / row.path).convert("RGB"))
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].to(device)
        channel = torch.tensor([int(unit.channel)], device=device)
        with LayerRecorder(model, spec, [unit.layer], channels={unit.layer: channel}) as recorder, \
                torch.no_grad():
            value = float(recorder(model, normalize(x))[unit.layer][0, 0])
        allowed = TOLERANCE[row.kind] * max(float(spans.get(row.unit_id, 0.0)), 1e-6) + 1e-6
        if abs(value - float(row.activation)) > allowed:
            problems.append(f"image {row.image_id}: the model gives {value:.5g}, images.csv says "
                            f"{float(row.activation):.5g} (file or activation changed?)")
    return len(rows), problems
