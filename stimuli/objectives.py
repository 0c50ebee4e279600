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


def _positions_by_channels(features: torch.Tensor, layout: str) -> torch.Tensor:
    """Each image's activations as (N, P, C): positions (or tokens) by channels."""
    if features.dim() == 2:
        return features[:, None, :]
    if layout == CHANNELS_FIRST:
        return features.flatten(2).transpose(1, 2)
    return features.flatten(1, -2)


def normalized_grams(features: torch.Tensor, layout: str) -> torch.Tensor:
    """Each image's Gram matrix, flattened and scaled to unit length: (N, C*C)."""
    return F.normalize(gram(features.float(), layout), dim=1)


def gram_vectors(features: torch.Tensor, layout: str, n: int) -> torch.Tensor:
    """Each image's unit-length Gram matrix G in the cheaper exact form for a job of n images:
    flattened, (N, C*C), or, where positions are few, a factor A with G = A^T A, (N, P, C)."""
    channels = features.shape[1] if layout == CHANNELS_FIRST else features.shape[-1]
    positions = features[0].numel() // channels
    # per job: n Grams (C*C*P each) and n^2 dot products of C*C, against n^2 P x P products
    if n * positions ** 2 >= channels * (positions + n):
        return normalized_grams(features, layout)
    flat = _positions_by_channels(features.float(), layout)
    kernels = flat @ flat.transpose(1, 2)  # P x P, the same Frobenius norm as the Gram's
    norms = kernels.flatten(1).norm(dim=1).clamp_min(1e-12)
    return flat / norms.sqrt()[:, None, None]


def similarities(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) cosines between the Grams that two sets of gram_vectors stand for."""
    if a.dim() == 2:
        return a @ b.T
    # <A^T A, B^T B> = |A B^T|^2, from one product of all the factors' rows
    cross = a.flatten(0, 1) @ b.flatten(0, 1).T
    return cross.unflatten(0, a.shape[:2]).unflatten(2, b.shape[:2]).pow(2).sum((1, 3))


def _distinct_pairs(sim: torch.Tensor) -> torch.Tensor:
    """The sum of a square similarity matrix over its distinct pairs, both ways (i != j)."""
    return sim.sum() - sim.diagonal().sum()


def diversity_penalty(outputs: dict[str, torch.Tensor], layouts: dict[str, str],
                      groups: list[tuple[tuple[str, ...], list[int]]]) -> torch.Tensor:
    """Per group (layers, image rows): the mean over the layers of the mean pairwise cosine
    similarity of the images' Gram matrices there."""
    penalties = []
    for layers, rows in groups:
        device = outputs[layers[0]].device
        if len(rows) < 2:
            penalties.append(torch.zeros((), device=device))
            continue
        index, n, total = torch.tensor(rows, device=device), len(rows), 0
        for layer in layers:
            sim = similarities(*[gram_vectors(outputs[layer][index], layouts[layer], n)] * 2)
            total = total + _distinct_pairs(sim) / (n * (n - 1))
        penalties.append(total / len(layers))
    return torch.stack(penalties) if penalties else torch.zeros(0)


def diversity_part(vectors: torch.Tensor, others: torch.Tensor, n: int) -> torch.Tensor:
    """A term whose gradient through `vectors` (gram_vectors of part of a job of n images;
    `others`, without gradient: the rest's) is the job's whole penalty's."""
    # the penalty counts each pair twice (i, j and j, i): twice each image's share of the
    # pairs that reach outside the part, the pairs inside it once each way
    if vectors.dim() == 2:  # flattened Grams: the outside pairs through the others' sum
        inside = vectors.sum(0)
        outside = inside @ others.sum(0)
        within = (inside @ inside - (vectors * vectors).sum()) / 2
    else:
        outside = similarities(vectors, others).sum()
        within = _distinct_pairs(similarities(vectors, vectors)) / 2
    return 2 * (outside + within) / (n * (n - 1))
