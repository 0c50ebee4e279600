"""Simplified proxies of a unit (Friedman et al., ICML 2024): the unit recomputed from a
simplified version of its module's input (a rank-k projection, a k-prototype quantiser) or of its
own weights (a rank-k truncated SVD), each fitted on images disjoint from the stimulus set's
(torch).

The unit's module is the module whose output holds the unit (its layer); its input is what the
layer reads (the previous layer's activations). A proxy changes only that input (or the unit's
weight slice) and the forward runs on to the unit, whose activation is reduced as in mining.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stimuli.errors import StimuliError
from stimuli.layers import StopForward, reduce_activation, resolve_module, select_channels
from stimuli.registry import CHANNELS_FIRST, INPUT_SUFFIX, ModelSpec

MAX_FIT_ROWS = 20_000  # channel vectors a proxy is fitted on (positions subsampled, seeded)
MAX_PROTOTYPES = 256  # the prototypes sweep stops here (k-means has no lossless k)
KINDS = ("rank", "prototypes", "weights")


@dataclass
class UnitSite:
    """A unit: its model, layer, channel and the module computing it."""

    model: nn.Module
    spec: ModelSpec
    layer: str
    channel: int

    def __post_init__(self) -> None:
        if self.layer.endswith(INPUT_SUFFIX):
            raise StimuliError(f"layer {self.layer}: a unit read at a module's input has no "
                               f"module of its own to simplify")
        self.module = resolve_module(self.model, self.layer, self.spec)
        self.layout = self.spec.layout(self.layer)

    def input_axis(self, x: torch.Tensor) -> int:
        """The channel axis of the module's input."""
        if x.dim() == 4 and (isinstance(self.module, nn.Conv2d)
                             or self.layout == CHANNELS_FIRST):
            return 1
        return x.dim() - 1


def _channel_rows(x: torch.Tensor, axis: int) -> torch.Tensor:
    """(positions, channels) view of an input whose channels lie on `axis`."""
    return x.movedim(axis, -1).reshape(-1, x.shape[axis])


def _from_rows(rows: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """The inverse of `_channel_rows` for a tensor shaped like `like`."""
    moved = like.movedim(axis, -1).shape
    return rows.reshape(moved).movedim(-1, axis)


def capture_inputs(site: UnitSite, images: torch.Tensor, normalize: Callable,
                   batch_size: int = 64) -> torch.Tensor:
    """The unit module's input (its first call in the forward, float32 on the CPU) for uint8
    images (N, 3, H, W); the forward stops there."""
    seen: list[torch.Tensor] = []

    def pre(module, inputs):
        seen.append(inputs[0].detach().float().cpu().clone())
        raise StopForward

    handle = site.module.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            for first in range(0, len(images), batch_size):
                with contextlib.suppress(StopForward):
                    site.model(normalize(images[first:first + batch_size]))
    finally:
        handle.remove()
    if len(seen) * batch_size < len(images):
        raise StimuliError(f"layer {site.layer} was not reached in the forward pass")
    return torch.cat(seen)


def apply_module(site: UnitSite, inputs: torch.Tensor,
                 simplify: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 batch_size: int = 64) -> np.ndarray:
    """The unit's activation (mean over space or tokens, as mined) from its module's inputs,
    each input's channel vectors replaced by `simplify(rows)` first when given."""
    channel = torch.tensor([site.channel])
    device = next(site.module.parameters(), torch.empty(0)).device
    out = []
    with torch.no_grad():
        for first in range(0, len(inputs), batch_size):
            x = inputs[first:first + batch_size].to(device)
            if simplify is not None:
                axis = site.input_axis(x)
                x = _from_rows(simplify(_channel_rows(x, axis)), x, axis)
            y = site.module(x)
            y = y[0] if isinstance(y, (tuple, list)) else y
            out.append(reduce_activation(select_channels(y, site.layout, channel.to(y.device)),
                                         site.layout)[:, 0].cpu())
    return torch.cat(out).numpy().astype(np.float64)


def fit_rows(site: UnitSite, inputs: torch.Tensor, max_rows: int = MAX_FIT_ROWS,
             seed: int = 0) -> torch.Tensor:
    """Channel rows (positions x channels) of the module's inputs to fit a proxy on, at most
    `max_rows` of them (a seeded subsample of the positions)."""
    table = _channel_rows(inputs, site.input_axis(inputs))
    if len(table) > max_rows:
        keep = np.random.default_rng(seed).choice(len(table), max_rows, replace=False)
        table = table[torch.from_numpy(np.sort(keep))]
    return table


class RankProjection:
    """The input's channel vectors projected onto their top-k principal components."""

    kind = "rank"

    def __init__(self, rows: torch.Tensor, k: int):
        self.k = k
        self.mean = rows.mean(0)
        _, _, vh = torch.linalg.svd(rows - self.mean, full_matrices=False)
        self.basis = vh[:k].T  # channels x k

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        mean, basis = self.mean.to(rows.device), self.basis.to(rows.device)
        return mean + (rows - mean) @ basis @ basis.T


class PrototypeQuantiser:
    """Each channel vector replaced by the nearest of k prototypes (k-means, seeded)."""

    kind = "prototypes"

    def __init__(self, rows: torch.Tensor, k: int, seed: int):
        from scipy.cluster.vq import kmeans2

        self.k = k
        data = rows.double().numpy()
        centroids, _ = kmeans2(data, min(k, len(data)), minit="++", seed=seed, iter=20)
        self.prototypes = torch.from_numpy(centroids).float()

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        prototypes = self.prototypes.to(rows.device)
        return prototypes[torch.cdist(rows, prototypes).argmin(1)]


def weight_matrix(site: UnitSite) -> torch.Tensor:
    """The unit's own weights as (inputs, kernel positions): a Conv2d's slice or a Linear's row."""
    weight = getattr(site.module, "weight", None)
    if not isinstance(site.module, (nn.Conv2d, nn.Linear)) or weight is None:
        raise StimuliError(f"layer {site.layer} is a {type(site.module).__name__}: the weights "
                           f"proxy needs a Conv2d or Linear unit")
    row = weight.detach()[site.channel]
    return row.reshape(row.shape[0], -1) if row.dim() > 1 else row[None]


def weight_rank(site: UnitSite) -> int:
    """The rank of the unit's full weight matrix."""
    return int(min(weight_matrix(site).shape))


def effective_rank(site: UnitSite, tolerance: float = 1e-6) -> int:
    """Singular values of the unit's weight matrix above `tolerance` x the largest."""
    values = torch.linalg.svdvals(weight_matrix(site).double())
    return int((values > tolerance * values[0]).sum())


@contextlib.contextmanager
def truncated_weights(site: UnitSite, k: int):
    """Inside the block the unit's weights are their rank-k truncated SVD; restored after."""
    weight = site.module.weight
    original = weight.detach()[site.channel].clone()
    u, s, vh = torch.linalg.svd(weight_matrix(site).double(), full_matrices=False)
    low = (u[:, :k] * s[:k]) @ vh[:k]
    with torch.no_grad():
        weight[site.channel] = low.reshape(original.shape).to(weight.dtype)
    try:
        yield
    finally:
        with torch.no_grad():
            weight[site.channel] = original


def make_proxy(kind: str, k: int, rows: torch.Tensor | None, seed: int = 0):
    """The input simplification of `kind` at `k` fitted on `rows` (None for `weights`, which
    changes the unit's weights instead: `truncated_weights`)."""
    if kind == "weights":
        return None
    if kind == "rank":
        return RankProjection(rows, k)
    if kind == "prototypes":
        return PrototypeQuantiser(rows, k, seed)
    raise StimuliError(f"unknown proxy {kind!r}; use {', '.join(KINDS)}")


@contextlib.contextmanager
def proxy(site: UnitSite, kind: str, k: int, rows: torch.Tensor | None, seed: int = 0):
    """Inside the block the unit is its proxy of `kind` at `k`: yields the input
    simplification for `apply_module` (None for `weights`, whose weights are truncated)."""
    if kind == "weights":
        with truncated_weights(site, k):
            yield None
    else:
        yield make_proxy(kind, k, rows, seed)


def full_size(site: UnitSite, kind: str, rows: torch.Tensor) -> int:
    """The largest k of a sweep: where the proxy is no simplification (the input's channels;
    the weights' rank), or MAX_PROTOTYPES prototypes."""
    if kind == "weights":
        return weight_rank(site)
    if kind == "rank":
        return int(rows.shape[1])
    return min(len(rows), MAX_PROTOTYPES)


def sweep(full: int, requested: list[int] | None = None) -> list[int]:
    """The k of a sweep: powers of two below `full`, then `full` (or `requested`, capped)."""
    if requested:
        return sorted({min(k, full) for k in requested if k >= 1})
    ks, k = [], 1
    while k < full:
        ks.append(k)
        k *= 2
    return ks + [full]
