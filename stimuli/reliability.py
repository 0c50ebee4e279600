"""`interpsy stimuli check SET --reliability`: do a unit's feature visualizations reach its
activation the way its natural exemplars do (Geirhos et al. 2023, "Don't trust your eyes")?
(torch)

What reaches the unit: at a layer before it, each image's path is its gradient x input
attribution per channel (the channel's input times the unit's gradient, summed over space), so
a channel the unit cannot read (another channel of a norm layer, of a depthwise convolution)
carries nothing and a convolution's input channels count by their weights. The cosine distance
compares directions (which channels carry the image, not how strongly: a visualization is meant
to drive the unit harder than any natural image). The unit's natural exemplars (its maximally
activating references, every batch) give a centroid and, leaving each one out, the spread of
their distances to it; each visualization is placed in that spread as the share of natural
distances below its own, and a layer's statistic is the median share over the unit's
visualizations (plain and diverse max references).

The deciding layer is the nearest to the unit where at least two channels reach it (its own
module's input, else the nearest of up to ROUTE_DEPTH earlier relevant layers); where only one
channel reaches the unit at every one of them, there is no other route, and the unit is
reliable. The threshold comes from a null: NULL_DRAWS times, as many natural exemplars as the
unit has visualizations (at most half of them) play the visualizations against the rest, and
the unit is flagged (`fv_reliable = false` in units.csv) when its statistic is above all but
a share ALPHA of those draws. Earlier layers are reported in `reliability.csv` but do not
decide: a visualization's low-level statistics differ from any photograph's, so its early path
departs even when its route to the unit does not.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from experiments.stimulus_set import IMAGES_CSV, MANIFEST, UNITS_CSV, StimulusSet
from experiments.stimulus_set.writer import write_tables
from stimuli.errors import StimuliError
from stimuli.images import crop_tensor
from stimuli.layers import LayerRecorder, reduce_activation, relevant_layers
from stimuli.mining import normalizer
from stimuli.occlusion_set import _read_rows
from stimuli.registry import INPUT_SUFFIX, get_spec, load_model

ALPHA = 0.01  # flagged when fewer than 1 % of the null draws lie as far out
NULL_DRAWS = 400
ROUTE_DEPTH = 3  # earlier relevant layers tried for the deciding one, nearest first
MAX_LAYERS = 8  # earlier layers reported, evenly spaced (all when fewer)
REACH = 1e-6  # a channel reaches the unit when its attribution exceeds this share of the largest
TABLE = "reliability.csv"


def _pixels(stimulus_set: StimulusSet, paths: list[str], crop: int) -> torch.Tensor:
    return torch.stack([crop_tensor(stimulus_set.path / rel, crop, "reliability checks")
                        for rel in paths])


def route_layers(all_layers: list[str], layer: str) -> list[str]:
    """The candidates for the deciding layer, nearest first: the input of the unit's own module,
    then up to ROUTE_DEPTH relevant layers before it."""
    before = all_layers[:all_layers.index(layer)] if layer in all_layers else []
    own = [] if layer.endswith(INPUT_SUFFIX) else [layer + INPUT_SUFFIX]
    return own + [name for name in reversed(before[-ROUTE_DEPTH:]) if name not in own]


def earlier_layers(all_layers: list[str], layer: str, limit: int = MAX_LAYERS) -> list[str]:
    """Up to `limit` evenly spaced relevant layers before `layer` (its nearest included), in
    depth order, then the route candidates (route_layers) not among them."""
    before = all_layers[:all_layers.index(layer)] if layer in all_layers else []
    if len(before) > limit:
        picks = np.linspace(0, len(before) - 1, limit).round().astype(int)
        before = [before[i] for i in sorted(set(picks.tolist()))]
    route = route_layers(all_layers, layer)
    return [name for name in before if name not in route] + list(reversed(route))


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


def null_p_value(natural: np.ndarray, statistic: float, n_synthetic: int,
                 draws: int = NULL_DRAWS, seed: int = 0) -> float:
    """The share of null draws whose median percentile is at least `statistic`: each draw
    lets min(n_synthetic, n // 2) natural paths stand in for the visualizations against the
    other natural paths (add-one, so never 0)."""
    rng = np.random.default_rng(seed)
    n = len(natural)
    m = max(1, min(n_synthetic, n // 2))
    above = 0
    for _ in range(draws):
        order = rng.permutation(n)
        fake, rest = natural[order[:m]], natural[order[m:]]
        above += float(np.median(path_percentiles(rest, fake))) >= statistic
    return (above + 1) / (draws + 1)


def attributions(model, spec, pixels: torch.Tensor, layer: str, channel: int,
                 at: list[str], device: str = "cpu") -> dict[str, np.ndarray]:
    """Per layer of `at`, each image's (N, C) gradient x input of the unit (layer, channel),
    averaged over space (tokens) as activations are."""
    normalize = normalizer(spec, torch.device(device))
    wanted = list(dict.fromkeys([*at, layer]))
    with LayerRecorder(model, spec, wanted, keep="full") as recorder:
        x = normalize(pixels.to(device)).requires_grad_(True)
        out = recorder(model, x)
        unit = reduce_activation(out[layer], spec.layout(layer))[:, channel]
        grads = torch.autograd.grad(unit.sum(), [out[name] for name in at], allow_unused=True)
    result = {}
    for name, grad in zip(at, grads):
        product = (out[name] * grad).detach() if grad is not None else torch.zeros_like(out[name])
        result[name] = reduce_activation(product, spec.layout(name)).cpu().numpy().astype(
            np.float64)
    return result


def reaching(vectors: np.ndarray) -> np.ndarray:
    """The channels whose attribution is ever above REACH of the largest."""
    size = np.abs(vectors).max(0)
    return size > REACH * max(float(size.max()), 1e-30)


def path_scores(model, spec, natural: torch.Tensor, synthetic: torch.Tensor, layer: str,
                channel: int, at: list[str], device: str = "cpu") -> dict[str, dict]:
    """Per layer of `at`: the channels reaching the unit, each visualization's (`synthetic`,
    uint8 images) percentile among the natural exemplars (`natural`) and, where at least two
    channels reach, the null's p-value of their median."""
    paths = {name: attributions(model, spec, pixels, layer, channel, at, device)
             for name, pixels in (("natural", natural), ("synthetic", synthetic))}
    scores = {}
    for name in at:
        keep = reaching(np.concatenate([paths["natural"][name], paths["synthetic"][name]]))
        entry = {"channels": int(keep.sum())}
        if keep.sum() >= 2:
            nat, syn = paths["natural"][name][:, keep], paths["synthetic"][name][:, keep]
            shares = path_percentiles(nat, syn)
            entry.update(shares=shares, p_value=null_p_value(nat, float(np.median(shares)),
                                                             len(syn)))
        scores[name] = entry
    return scores


def deciding_layer(scores: dict[str, dict], route: list[str]) -> str | None:
    """The nearest route layer where at least two channels reach the unit; None: one route."""
    return next((name for name in route if scores.get(name, {}).get("channels", 0) >= 2), None)


def unit_paths(stimulus_set: StimulusSet, model, spec, unit, layers: list[str],
               route: list[str], device: str) -> list[dict]:
    """One row per layer compared: channels reaching the unit, the median and largest
    percentile of the unit's visualizations' paths among its natural exemplars', the null's
    p-value, and whether the layer decides (and flags)."""
    images = stimulus_set.images
    mine = images[(images.unit_id == unit.unit_id) & (images.role == "reference_max")]
    natural = list(dict.fromkeys(mine[(mine.kind == "natural")
                                      & (mine.distribution == "in")].path))
    synthetic = list(dict.fromkeys(mine[mine.kind == "synthetic"].path))
    if not synthetic:
        return []
    crop = spec.preprocessing.crop
    scores = path_scores(model, spec, _pixels(stimulus_set, natural, crop),
                         _pixels(stimulus_set, synthetic, crop), unit.layer, int(unit.channel),
                         layers, device)
    decides = deciding_layer(scores, route)
    rows = []
    for name in layers:
        entry = scores[name]
        shares = entry.get("shares")
        rows.append({"unit_id": unit.unit_id, "layer_compared": name,
                     "channels_reaching": entry["channels"], "n_natural": len(natural),
                     "n_visualizations": len(synthetic),
                     "fv_path_percentile": float(np.median(shares)) if shares is not None
                     else np.nan,
                     "fv_path_max": float(shares.max()) if shares is not None else np.nan,
                     "p_value": entry.get("p_value", np.nan), "decides": name == decides})
    if decides is None:  # one channel at most at every route layer: no other route
        rows.append({"unit_id": unit.unit_id, "layer_compared": "",
                     "channels_reaching": max(scores[name]["channels"] for name in route),
                     "n_natural": len(natural), "n_visualizations": len(synthetic),
                     "fv_path_percentile": np.nan, "fv_path_max": np.nan, "p_value": np.nan,
                     "decides": True})
    return rows


def check_reliability(stimulus_set: StimulusSet, pretrained: bool = True,
                      weights_path: str | None = None, device: str = "cpu",
                      progress: bool = True) -> pd.DataFrame:
    """Compare every unit's visualizations' paths with its natural exemplars'; write
    reliability.csv and the units.csv columns (fv_path_percentile and fv_path_layer at the
    unit's input, fv_reliable); return the per unit x layer table."""
    if not (stimulus_set.images.kind == "synthetic").any():
        raise StimuliError(f"{stimulus_set.path}: no feature visualizations to check (built "
                           f"with --no-render?)")
    name = stimulus_set.manifest["model"]
    model = load_model(name, pretrained=pretrained, weights_path=weights_path, device=device)
    table = reliability_table(stimulus_set, model, list(stimulus_set.units.unit_id), device,
                              progress)
    _write(stimulus_set, table)
    return table


def reliability_table(stimulus_set: StimulusSet, model, unit_ids: list[str],
                      device: str = "cpu", progress: bool = False) -> pd.DataFrame:
    """The per unit x layer table of these units (`outlier`: the unit is flagged there)."""
    from tqdm.auto import tqdm

    spec = get_spec(stimulus_set.manifest["model"])
    every = relevant_layers(model, spec)
    rows: list[dict] = []
    units = [u for u in stimulus_set.units.itertuples(index=False) if u.unit_id in unit_ids]
    for unit in tqdm(units, desc="visualization paths", unit="unit", disable=not progress):
        layers = earlier_layers(every, unit.layer)
        rows += unit_paths(stimulus_set, model, spec, unit, layers,
                           route_layers(every, unit.layer), device)
    table = pd.DataFrame(rows, columns=["unit_id", "layer_compared", "channels_reaching",
                                        "n_natural", "n_visualizations", "fv_path_percentile",
                                        "fv_path_max", "p_value", "decides"])
    table["decides"] = table["decides"].astype(bool)
    table["outlier"] = table["decides"] & (table["p_value"] < ALPHA)
    return table


def _write(stimulus_set: StimulusSet, table: pd.DataFrame) -> None:
    """reliability.csv, the units.csv columns and the manifest's record (hashes updated)."""
    out = stimulus_set.path
    table.to_csv(out / TABLE, index=False)
    worst = table[table["decides"]].set_index("unit_id")
    units = _read_rows(out / UNITS_CSV)
    for row in units:
        found = row["unit_id"] in worst.index
        value = worst.fv_path_percentile[row["unit_id"]] if found else np.nan
        row["fv_path_percentile"] = "" if np.isnan(value) else f"{value:.4f}"
        row["fv_path_layer"] = worst.layer_compared[row["unit_id"]] if found else ""
        row["fv_reliable"] = (str(not bool(worst.outlier[row["unit_id"]])).lower()
                              if found else "")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["reliability"] = {"method": "cosine distance of each layer's per-channel gradient "
                                         "x input of the unit to the natural exemplars' "
                                         "centroid (leave-one-out), at the nearest layer two or "
                                         "more channels reach the unit from; flagged against a "
                                         "null of natural exemplars",
                               "alpha": ALPHA, "null_draws": NULL_DRAWS,
                               "route_depth": ROUTE_DEPTH, "max_layers": MAX_LAYERS, "table": TABLE,
                               "flagged": sorted(worst.index[worst.outlier])}
    write_tables(out, manifest, units, _read_rows(out / IMAGES_CSV))
