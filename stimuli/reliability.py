"""`interpsy stimuli check SET --reliability`: do a unit's feature visualizations reach its
activation the way its natural exemplars do (Geirhos et al. 2023, "Don't trust your eyes")?
(torch)

For each unit, at each relevant layer before the unit's and at its own module's input (what the
unit reads), every image's path is its activation vector (each channel's mean over space, as
mined); the cosine distance compares directions, which channels carry the image, not how
strongly (a visualization is meant to drive the unit harder than any natural image). The unit's natural exemplars (its
maximally activating references, every batch) give a centroid and, leaving each one out in turn,
the spread of their cosine distances to it; each visualization (its max references, plain and
diverse) is placed in that spread as the share of natural distances below its own. A layer's
score is the median over the visualizations. A unit whose score at its own module's input
exceeds OUTLIER is driven by other input channels than its natural exemplars drive, a route
they do not take, and is flagged (`fv_reliable = false` in units.csv). Earlier layers are
reported beside it in `reliability.csv` but do not flag: a visualization's low-level statistics
differ from any photograph's, so its early path departs even when its route to the unit does
not.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from experiments.stimulus_set import IMAGES_CSV, MANIFEST, UNITS_CSV, StimulusSet
from stimuli.errors import StimuliError
from stimuli.images import crop_tensor
from stimuli.layers import LayerRecorder, relevant_layers
from stimuli.mining import normalizer
from stimuli.occlusion_set import _read_rows
from stimuli.registry import INPUT_SUFFIX, get_spec, load_model
from stimuli.setwriter import write_tables

OUTLIER = 0.99  # a visualization farther out than 99% of the natural exemplars
MAX_LAYERS = 8  # earlier layers compared, evenly spaced (all when fewer)
TABLE = "reliability.csv"


def _pixels(stimulus_set: StimulusSet, paths: list[str], crop: int) -> torch.Tensor:
    return torch.stack([crop_tensor(stimulus_set.path / rel, crop, "reliability checks")
                        for rel in paths])


def earlier_layers(all_layers: list[str], layer: str, limit: int = MAX_LAYERS) -> list[str]:
    """Up to `limit` evenly spaced relevant layers before `layer` (its nearest included), then
    the input of the unit's own module: what the unit reads."""
    before = all_layers[:all_layers.index(layer)] if layer in all_layers else []
    if len(before) > limit:
        picks = np.linspace(0, len(before) - 1, limit).round().astype(int)
        before = [before[i] for i in sorted(set(picks.tolist()))]
    own = [] if layer.endswith(INPUT_SUFFIX) else [layer + INPUT_SUFFIX]
    return [name for name in before if name not in own] + own


def _cosine_distance(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1) * np.linalg.norm(centre, axis=-1)
    return 1.0 - (vectors * centre).sum(-1) / np.maximum(norms, 1e-12)


def path_percentiles(natural: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Each synthetic path's share of natural paths nearer their centroid than it (natural
    distances leave their own image out of the centroid)."""
    n = len(natural)
    total = natural.sum(0)
    own = _cosine_distance(natural, (total[None] - natural) / max(n - 1, 1))
    theirs = _cosine_distance(synthetic, total / n)
    return (own[None, :] < theirs[:, None]).mean(1)


def path_scores(model, spec, natural: torch.Tensor, synthetic: torch.Tensor,
                layers: list[str], device: str = "cpu") -> dict[str, np.ndarray]:
    """Per layer, each visualization's (`synthetic`, uint8 images) share of natural exemplars
    (`natural`) whose path there lies nearer their centroid than its own."""
    normalize = normalizer(spec, torch.device(device))
    paths = {}
    with LayerRecorder(model, spec, layers) as recorder, torch.no_grad():
        for name, pixels in (("natural", natural), ("synthetic", synthetic)):
            out = recorder(model, normalize(pixels.to(device)))
            paths[name] = {layer: out[layer].cpu().numpy().astype(np.float64) for layer in layers}
    return {layer: path_percentiles(paths["natural"][layer], paths["synthetic"][layer])
            for layer in layers if paths["natural"][layer].shape[1] > 1}  # one channel: no route


def unit_paths(stimulus_set: StimulusSet, model, spec, unit, layers: list[str],
               device: str) -> list[dict]:
    """One row per earlier layer: the median percentile of the unit's visualizations' paths
    among its natural exemplars', and the largest."""
    images = stimulus_set.images
    mine = images[(images.unit_id == unit.unit_id) & (images.role == "reference_max")]
    natural = mine[(mine.kind == "natural") & (mine.distribution == "in")].path.tolist()
    synthetic = mine[mine.kind == "synthetic"].path.tolist()
    if not synthetic:
        return []
    crop = spec.preprocessing.crop
    scores = path_scores(model, spec, _pixels(stimulus_set, natural, crop),
                         _pixels(stimulus_set, synthetic, crop), layers, device)
    return [{"unit_id": unit.unit_id, "layer_compared": layer, "n_natural": len(natural),
             "n_visualizations": len(synthetic),
             "fv_path_percentile": float(np.median(shares)), "fv_path_max": float(shares.max())}
            for layer, shares in scores.items()]


def check_reliability(stimulus_set: StimulusSet, pretrained: bool = True,
                      weights_path: str | None = None, device: str = "cpu",
                      progress: bool = True) -> pd.DataFrame:
    """Compare every unit's visualizations' paths with its natural exemplars'; write
    reliability.csv and the units.csv columns (fv_path_percentile and fv_path_layer at the
    unit's input, fv_reliable); return the per unit x layer table."""
    from tqdm.auto import tqdm

    if not (stimulus_set.images.kind == "synthetic").any():
        raise StimuliError(f"{stimulus_set.path}: no feature visualizations to check (built "
                           f"with --no-render?)")
    name = stimulus_set.manifest["model"]
    spec = get_spec(name)
    model = load_model(name, pretrained=pretrained, weights_path=weights_path, device=device)
    every = relevant_layers(model, spec)
    rows: list[dict] = []
    units = list(stimulus_set.units.itertuples(index=False))
    for unit in tqdm(units, desc="visualization paths", unit="unit", disable=not progress):
        layers = earlier_layers(every, unit.layer)
        if layers:
            rows += unit_paths(stimulus_set, model, spec, unit, layers, device)
    table = pd.DataFrame(rows, columns=["unit_id", "layer_compared", "n_natural",
                                        "n_visualizations", "fv_path_percentile",
                                        "fv_path_max"])
    table["decides"] = table["layer_compared"].str.endswith(INPUT_SUFFIX)
    table["outlier"] = table["decides"] & (table["fv_path_percentile"] > OUTLIER)
    _write(stimulus_set, table)
    return table


def _write(stimulus_set: StimulusSet, table: pd.DataFrame) -> None:
    """reliability.csv, the units.csv columns and the manifest's record (hashes updated)."""
    out = stimulus_set.path
    table.to_csv(out / TABLE, index=False)
    worst = table[table["decides"]].set_index("unit_id")
    units = _read_rows(out / UNITS_CSV)
    for row in units:
        found = row["unit_id"] in worst.index
        row["fv_path_percentile"] = (f"{worst.fv_path_percentile[row['unit_id']]:.4f}"
                                     if found else "")
        row["fv_path_layer"] = worst.layer_compared[row["unit_id"]] if found else ""
        row["fv_reliable"] = (str(not bool(worst.outlier[row["unit_id"]])).lower()
                              if found else "")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["reliability"] = {"method": "cosine distance of each layer's channel means to the "
                                         "natural exemplars' centroid (leave-one-out)",
                               "outlier": OUTLIER, "max_layers": MAX_LAYERS, "table": TABLE,
                               "flagged": sorted(worst.index[worst.outlier])}
    write_tables(out, manifest, units, _read_rows(out / IMAGES_CSV))
