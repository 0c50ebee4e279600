"""Similarity backbones: image -> unit-norm embedding, whose dot products are the similarities
a machine observer compares (torch).

- `dreamsim[:TYPE]`: DreamSim (the `dreamsim` package) with weights from a local folder; a
  missing file is named with where to put it, nothing is downloaded.
- `lpips:NAME`: LPIPS-style unit-normalised feature maps of a registered model at several
  layers (uniform layer weights; no learned LPIPS weights are downloaded).
- `model:NAME` (or a registered model's NAME): the penultimate features of a registered model
  (the input of its last linear layer; its output when it has none), e.g. the offline
  `efficientnet-lite0`, so everything runs without a network; or, for the classifier observer,
  its ImageNet class probabilities (`ClassifierBackbone`).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stimuli.errors import StimuliError
from stimuli.observers.rules import DREAMSIM_ALPHA
from stimuli.registry import CHANNELS_FIRST, INPUT_SUFFIX, get_spec, load_model

IMAGENET_CLASSES = 1000
LPIPS_LAYERS = 5  # layers an LPIPS-style backbone compares, evenly spaced over the relevant
LPIPS_GRID = 7  # side of the grid each layer's normalised map is pooled to

# The files `dreamsim(cache_dir=...)` looks for, per DreamSim type (dreamsim 0.2), and the
# archive that holds them.
DREAMSIM_FILES = {
    "ensemble": ("dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar",
                 "clip_vitb16_pretrain.pth.tar", "ensemble_lora"),
    "dino_vitb16": ("dino_vitb16_pretrain.pth", "dino_vitb16_single_lora"),
    "open_clip_vitb32": ("open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora"),
    "clip_vitb32": ("clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora"),
}
DREAMSIM_ARCHIVE = ("https://github.com/ssundaram21/dreamsim/releases/download/"
                    "v0.2.0-checkpoints/dreamsim_{type}_checkpoint.zip")


def dreamsim_cache() -> Path:
    """Where DreamSim's weights are looked for: $INTERPSY_DREAMSIM_CACHE, else
    ~/.cache/interpsy/dreamsim."""
    default = Path.home() / ".cache" / "interpsy" / "dreamsim"
    return Path(os.environ.get("INTERPSY_DREAMSIM_CACHE", default))


class Backbone(ABC):
    """Turns uint8 images (N, 3, H, W) into unit-norm embeddings (N, D) on its device."""

    name: str
    default_alpha: float | None = None  # the alpha published for this backbone, if any

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)

    @abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Raw features of uint8 images already on the device."""

    def facts(self) -> dict:
        """What identifies the embeddings (for the cache and the output's records)."""
        return {"backbone": self.name}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm float32 embeddings of uint8 images."""
        out = self.features(images.to(self.device)).flatten(1).float()
        return F.normalize(out, dim=1).cpu()


class ModelBackbone(Backbone):
    """A registered model's penultimate features (random weights with pretrained=False)."""

    def __init__(self, model: str, device: str = "cpu", pretrained: bool = True,
                 weights_path: str | None = None):
        super().__init__(device)
        self.spec = get_spec(model)
        self.pretrained = pretrained
        self.weights_path = weights_path
        self.name = f"model:{model}" + ("" if pretrained else ":random-init")
        self.model = load_model(model, pretrained, weights_path, device)
        linear = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        self._head = linear[-1] if linear else None
        mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self._normalise = lambda x: (x.float() - mean) / std
        if self._head is not None and not self._head_runs():
            self._head = None  # e.g. CLIP's attention pool uses its Linear's weights directly

    def _head_runs(self) -> bool:
        """Whether the last Linear module is called in a forward (a grey probe image)."""
        calls: list[bool] = []
        handle = self._head.register_forward_hook(lambda m, args, out: calls.append(True))
        side = self.spec.preprocessing.crop
        try:
            with torch.no_grad():
                self.model(torch.zeros(1, 3, side, side, device=self.device))
        finally:
            handle.remove()
        return bool(calls)

    def facts(self) -> dict:
        return {"backbone": self.name, "model": self.spec.name, "weights": self.spec.weights,
                "pretrained": self.pretrained, "weights_path": self.weights_path,
                "features": "input of the last linear layer" if self._head is not None
                else "model output"}

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float input at the model's crop size from uint8 images."""
        crop = self.spec.preprocessing.crop
        x = self._normalise(images)
        if x.shape[-1] != crop or x.shape[-2] != crop:
            x = F.interpolate(x, size=(crop, crop), mode="bilinear", align_corners=False)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.model_input(images)
        if self._head is None:
            return self.model(x)
        captured: list[torch.Tensor] = []
        handle = self._head.register_forward_hook(lambda m, args, out: captured.append(args[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        return captured[-1]


class LpipsBackbone(ModelBackbone):
    """LPIPS-style features of a registered model (Zhang et al. 2018, uniform layer weights):
    at LPIPS_LAYERS evenly spaced relevant layers, each position's channel vector is unit-norm,
    the maps are average-pooled to LPIPS_GRID x LPIPS_GRID and renormalised per position, and
    each layer is scaled by 1 / grid side. Every embedding then has the same norm, so its
    cosine similarity is 1 - d / (2 x layers), d the LPIPS distance of the pooled maps: one
    embedding per image serves the pairwise distance."""

    def __init__(self, model: str, device: str = "cpu", pretrained: bool = True,
                 weights_path: str | None = None):
        super().__init__(model, device, pretrained, weights_path)
        from stimuli.layers import relevant_layers

        self.name = f"lpips:{model}" + ("" if pretrained else ":random-init")
        every = [layer for layer in relevant_layers(self.model, self.spec)
                 if not layer.endswith(INPUT_SUFFIX)]
        picks = torch.linspace(0, len(every) - 1, min(LPIPS_LAYERS, len(every))).round().long()
        self.layers = list(dict.fromkeys(every[int(i)] for i in picks))

    def facts(self) -> dict:
        return {**super().facts(), "backbone": self.name, "layers": self.layers,
                "grid": LPIPS_GRID, "features": "LPIPS-style unit-normalised maps"}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        from stimuli.layers import LayerRecorder

        with LayerRecorder(self.model, self.spec, self.layers, keep="full") as recorder:
            out = recorder(self.model, self.model_input(images))
        parts = []
        for layer in self.layers:
            maps = _channels_first(out[layer].float(), self.spec.layout(layer))
            maps = F.normalize(maps, dim=1)
            maps = F.normalize(F.adaptive_avg_pool2d(maps, LPIPS_GRID), dim=1)
            parts.append(maps.flatten(1) / LPIPS_GRID)
        return torch.cat(parts, 1)


def _channels_first(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(N, C, H, W) from a layer output in any layout (tokens as a 1-pixel-wide map)."""
    if x.dim() == 2:
        return x[:, :, None, None]
    if layout == CHANNELS_FIRST:
        return x
    if x.dim() == 3:  # tokens (N, T, C)
        return x.transpose(1, 2)[..., None]
    return x.permute(0, 3, 1, 2)


class DreamSimBackbone(Backbone):
    """DreamSim's embedding (its perceptual distance is 1 - the cosine similarity)."""

    default_alpha = DREAMSIM_ALPHA

    def __init__(self, kind: str = "ensemble", device: str = "cpu", cache: Path | None = None):
        super().__init__(device)
        if kind not in DREAMSIM_FILES:
            raise StimuliError(f"unknown DreamSim type {kind!r}; known: "
                               f"{', '.join(DREAMSIM_FILES)}")
        self.kind = kind
        self.name = "dreamsim" if kind == "ensemble" else f"dreamsim:{kind}"
        self.cache = Path(cache) if cache is not None else dreamsim_cache()
        missing = [name for name in DREAMSIM_FILES[kind] if not (self.cache / name).exists()]
        if missing:
            raise StimuliError(
                f"DreamSim ({kind}) weights missing in {self.cache}: {', '.join(missing)}; "
                f"download {DREAMSIM_ARCHIVE.format(type=kind)} and unzip it into that folder "
                f"(or set INTERPSY_DREAMSIM_CACHE to the folder that holds them)")
        try:
            from dreamsim import dreamsim
        except ImportError as exc:
            raise StimuliError(f"the DreamSim backbone needs the `dreamsim` package ({exc}): "
                               f"pip install dreamsim") from None
        self.model, _ = dreamsim(pretrained=True, device=str(self.device),
                                 cache_dir=str(self.cache), dreamsim_type=kind)

    def facts(self) -> dict:
        return {"backbone": self.name, "dreamsim_type": self.kind, "cache": str(self.cache)}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[-1] != 224 or x.shape[-2] != 224:
            x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
        return self.model.embed(x.clamp(0, 1))


class ClassifierBackbone(ModelBackbone):
    """A registered ImageNet classifier's class probabilities (softmax of its 1,000 outputs)
    in place of an embedding: what a categorising observer reads."""

    def __init__(self, model: str, device: str = "cpu", pretrained: bool = True,
                 weights_path: str | None = None):
        super().__init__(model, device, pretrained, weights_path)
        side = self.spec.preprocessing.crop
        with torch.no_grad():
            width = self.model(torch.zeros(1, 3, side, side, device=self.device)).shape[-1]
        if width != IMAGENET_CLASSES:
            raise StimuliError(f"{model} is not an ImageNet-1k classifier (its output has "
                               f"{width} values, not {IMAGENET_CLASSES}); the classifier "
                               f"observer needs one, e.g. efficientnet-lite0")

    def facts(self) -> dict:
        return {**super().facts(), "features": "class probabilities (softmax of the output)"}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.model_input(images))

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, 1000), float32."""
        return torch.softmax(self.features(images.to(self.device)).float(), dim=1).cpu()


def get_backbone(name: str, device: str = "cpu", pretrained: bool = True,
                 weights_path: str | None = None, output: str = "features") -> Backbone:
    """The backbone `name` names: `dreamsim`, `dreamsim:TYPE`, `lpips:NAME`, `model:NAME` or a
    model NAME; with output `probabilities` a registered model's class probabilities."""
    if output == "probabilities":
        if name.startswith(("dreamsim", "lpips:")):
            raise StimuliError(f"--backbone {name}: the classifier observer reads an ImageNet "
                               f"classifier's class probabilities; name a registered model, "
                               f"e.g. efficientnet-lite0")
        return ClassifierBackbone(name.removeprefix("model:"), device, pretrained, weights_path)
    if name == "dreamsim" or name.startswith("dreamsim:"):
        return DreamSimBackbone(name.partition(":")[2] or "ensemble", device)
    if name.startswith("lpips:"):
        return LpipsBackbone(name.removeprefix("lpips:"), device, pretrained, weights_path)
    model = name.removeprefix("model:")
    return ModelBackbone(model, device, pretrained, weights_path)
