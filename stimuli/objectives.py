"""Unit objectives for the three activation layouts and the Gram-matrix diversity term (torch).

The activation of a unit is the same reduction used for mining: the mean of its channel over
space (channels-first or channels-last) or over all tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stimuli.layers import reduce_activation
from stimuli.registry import CHANNELS_FIRST


def unit_activations(outputs: dict[str, torch.Tensor], layouts: dict[str, str],
                     layers: list[str], channels: torch.Tensor) -> torch.Tensor:
    """Activation of image i's unit (layers[i], channels[i]) on image i: shape (N,)."""
    result = torch.zeros(len(layers), device=channels.device)
    for layer in dict.fromkeys(layers):
        rows = torch.tensor([i for i, l in enumerate(layers) if l == layer], device=channels.device)
        means = reduce_activation(outputs[layer][rows], layouts[layer])
        result = result.index_put((rows,), means.gather(1, channels[rows, None]).squeeze(1))
    return result


def gram(features: torch.Tensor, layout: str) -> torch.Tensor:
    """Per-image channel Gram matrices, flattened: (N, C*C)."""
    if features.dim() == 2:
        features = features[:, :, None] if layout == CHANNELS_FIRST else features[:, None, :]
    if layout == CHANNELS_FIRST:
        flat = features.flatten(2)  # (N, C, HW)
        g = flat @ flat.transpose(1, 2) / flat.shape[2]
    else:
        flat = features.flatten(1, -2)  # (N, T, C)
        g = flat.transpose(1, 2) @ flat / flat.shape[1]
    return g.flatten(1)


def normalized_grams(features: torch.Tensor, layout: str) -> torch.Tensor:
    """Each image's Gram matrix, flattened and scaled to unit length: (N, C*C)."""
    return F.normalize(gram(features.float(), layout), dim=1)


def diversity_penalty(outputs: dict[str, torch.Tensor], layouts: dict[str, str],
                      groups: list[tuple[str, list[int]]]) -> torch.Tensor:
    """Per group (layer, image rows): mean pairwise cosine similarity of the Gram matrices."""
    penalties = []
    for layer, rows in groups:
        if len(rows) < 2:
            penalties.append(torch.zeros((), device=outputs[layer].device))
            continue
        index = torch.tensor(rows, device=outputs[layer].device)
        g = normalized_grams(outputs[layer][index], layouts[layer])
        sim = g @ g.T
        n = len(rows)
        penalties.append((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))
    return torch.stack(penalties) if penalties else torch.zeros(0)


def diversity_part(grams: torch.Tensor, others: torch.Tensor, n: int) -> torch.Tensor:
    """A term whose gradient through `grams` (the normalized Grams of part of a job of n
    images; `others`, without gradient: the sum of the rest's) is the job's whole penalty's."""
    inside = grams.sum(0)
    # the penalty counts each pair twice (i, j and j, i): twice each image's share of the
    # pairs that reach outside the part, the pairs inside it once each way
    within = (inside @ inside - (grams * grams).sum()) / 2
    return 2 * (inside @ others + within) / (n * (n - 1))
