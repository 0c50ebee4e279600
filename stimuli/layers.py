"""Relevant layers, layer widths and forward hooks that record unit activations (torch)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from stimuli.errors import ModelError
from stimuli.registry import CHANNELS_FIRST, INPUT_SUFFIX, ModelSpec


class StopForward(Exception):
    """Raised by a hook once every requested layer has been seen, to skip the rest of a forward."""


def relevant_layers(model: nn.Module, spec: ModelSpec) -> list[str]:
    """The model's relevant layers for unit sampling, in module (depth) order."""
    names: list[str] = []
    for name, _ in model.named_modules():
        if not name:
            continue
        if spec.is_relevant(name):
            names.append(name)
        elif spec.is_relevant(name + INPUT_SUFFIX):
            names.append(name + INPUT_SUFFIX)
    return names


def layer_depths(relevant: list[str]) -> dict[str, float]:
    """Each relevant layer's relative depth: its index among them, 0 (first) to 1 (last)."""
    return {layer: i / max(1, len(relevant) - 1) for i, layer in enumerate(relevant)}


def resolve_module(model: nn.Module, layer: str, spec: ModelSpec | None = None) -> nn.Module:
    """The module behind a layer name; ModelError naming the model's layers when unknown."""
    module_name = layer.removesuffix(INPUT_SUFFIX)
    modules = dict(model.named_modules())
    if not module_name or module_name not in modules:
        hint = ""
        if spec is not None:
            known = relevant_layers(model, spec)
            hint = f"; relevant layers are e.g. {', '.join(known[:5])} ({len(known)} in all)"
        raise ModelError(f"unknown layer {layer!r} for model {spec.name if spec else ''}{hint}")
    return modules[module_name]


def reduce_activation(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Mean over space (or tokens): (N, C, ...) channels-first or (N, ..., C) -> (N, C) float32.

    Accumulates in float32 (also under autocast) and reads any memory format without a copy.
    """
    if x.dim() == 2:
        return x.float()
    if layout == CHANNELS_FIRST:
        return x.mean(tuple(range(2, x.dim())), dtype=torch.float32)
    return x.mean(tuple(range(1, x.dim() - 1)), dtype=torch.float32)


def select_channels(x: torch.Tensor, layout: str, channels: torch.Tensor) -> torch.Tensor:
    """The given channels of a layer output, in the same layout."""
    dim = 1 if layout == CHANNELS_FIRST or x.dim() == 2 else x.dim() - 1
    return x.index_select(dim, channels)


def channel_count(x: torch.Tensor, layout: str) -> int:
    """Number of channels of a layer output under a layout."""
    return int(x.shape[1] if layout == CHANNELS_FIRST or x.dim() == 2 else x.shape[-1])


class LayerRecorder:
    """Forward hooks on the requested layers only; per forward it keeps each layer's output.

    `keep` chooses what is kept: "reduced" (N, C) float32 means, or "full" tensors (with grad).
    A layer ending in `:input` keeps the input of the module's last call in the forward.
    With `stop_early`, the forward is cut short once all (non-`:input`) layers were seen.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec, layers: Iterable[str],
                 keep: str = "reduced", channels: dict[str, torch.Tensor] | None = None,
                 stop_early: bool = True):
        self.spec = spec
        self.layers = list(dict.fromkeys(layers))
        self.keep = keep
        self.channels = channels or {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.stop_early = stop_early and not any(l.endswith(INPUT_SUFFIX) for l in self.layers)
        self._handles = []
        for layer in self.layers:
            module = resolve_module(model, layer, spec)
            if layer.endswith(INPUT_SUFFIX):
                handle = module.register_forward_pre_hook(self._make_hook(layer, True))
            else:
                handle = module.register_forward_hook(self._make_hook(layer, False))
            self._handles.append(handle)

    def _make_hook(self, layer: str, is_input: bool) -> Callable:
        layout = self.spec.layout(layer)

        def hook(module, inputs, output=None):
            x = inputs[0] if is_input else output
            if isinstance(x, (tuple, list)):
                x = x[0]
            if self.keep == "reduced":
                x = self._reduce(x, layer, layout)
            self.outputs[layer] = x
            if self.stop_early and len(self.outputs) == len(self.layers):
                raise StopForward

        if is_input:
            return lambda module, inputs: hook(module, inputs)
        return hook

    def _reduce(self, x: torch.Tensor, layer: str, layout: str) -> torch.Tensor:
        """(N, C') float32 means of the layer's requested channels (all channels if none given).

        Channels-first outputs are cut to the requested channels before the mean, which then
        reads only their planes (the same sums, bit for bit); other layouts are reduced first,
        as the renderer's objective does, so mined and rendered activations agree exactly.
        """
        channels = self.channels.get(layer)
        if channels is not None and (layout == CHANNELS_FIRST or x.dim() == 2):
            return reduce_activation(select_channels(x, layout, channels), layout)
        x = reduce_activation(x, layout)
        return x if channels is None else x.index_select(1, channels)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run one forward pass and return {layer: kept tensor}."""
        self.outputs = {}
        with contextlib.suppress(StopForward):  # raised after the deepest needed layer
            model(x)
        missing = [l for l in self.layers if l not in self.outputs]
        if missing:
            raise ModelError(f"layer(s) {', '.join(missing)} produced no output in the forward pass")
        return self.outputs

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> LayerRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def layer_widths(model: nn.Module, spec: ModelSpec, layers: list[str] | None = None,
                 image_size: int = 224) -> dict[str, int]:
    """Channel count of each layer, from one probe forward on a grey image."""
    layers = layers if layers is not None else relevant_layers(model, spec)
    device = next(iter(model.parameters())).device
    with LayerRecorder(model, spec, layers, keep="full", stop_early=False) as recorder, \
            torch.no_grad():
        outputs = recorder(model, torch.zeros(1, 3, image_size, image_size, device=device))
    return {layer: channel_count(outputs[layer], spec.layout(layer)) for layer in layers}


UNIT_LAYER = "unit"  # a diversity layer's name for each unit's own layer


def check_diversity_layers(model: nn.Module, spec: ModelSpec, layers: tuple[str, ...]) -> None:
    """ModelError unless each of `layers` but UNIT_LAYER (each unit's own) is one of the model's
    relevant layers (whose activation layout the registry knows) and a forward reaches it."""
    named = [layer for layer in layers if layer != UNIT_LAYER]
    for layer in named:
        resolve_module(model, layer, spec)
        if not spec.is_relevant(layer):
            known = relevant_layers(model, spec)
            raise ModelError(f"diversity layer {layer!r} is not one of {spec.name}'s relevant "
                             f"layers (its activation layout would be a guess): e.g. "
                             f"{', '.join(known[:5])} ({len(known)} in all)")
    if named:
        layer_widths(model, spec, named, spec.preprocessing.crop)
