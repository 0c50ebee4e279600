"""A `lucent` engine: render CNN channels one at a time through torch-lucent, for comparison.

Works with torch-lucent 0.1.8 + kornia 0.4.1 on torch 2.14 (checked on CPU). The adapter:
- maps layer names to lucent's (`layer1.0.bn1` -> `layer1_0_bn1`); only channels-first module
  outputs are supported (lucent cannot reach `:input` points, channels-last or token layers);
- removes the forward hooks lucent's `hook_model` puts on *every* module and never removes;
- passes the model's own normalisation (lucent's default assumes torchvision's ImageNet one) and
  IMI's transforms built from lucent's own (jitter 16, scale, rotate +-5 degrees, jitter 8, then
  the centre 224 px for the models IMI crops);
- lucent places parameters on `cuda:0` whenever CUDA is available, so the model must be there.
The final activation is measured with this package's hooks on the centre 224 crop.
"""
from __future__ import annotations

import numpy as np
import torch

from stimuli.errors import ModelError, StimuliError
from stimuli.layers import LayerRecorder
from stimuli.mining import normalizer
from stimuli.objectives import unit_activations
from stimuli.registry import CHANNELS_FIRST, INPUT_SUFFIX, ModelSpec
from stimuli.render import JobResult
from stimuli.transforms import ANGLES, SCALES, center_crop


def lucent_layer(layer: str) -> str:
    """lucent's name for a module path."""
    return layer.replace(".", "_")


def render_lucent(model: torch.nn.Module, spec: ModelSpec, layer: str, channel: int,
                  sign: int = 1, steps: int = 512, size: int = 224, pad: int = 16,
                  lr: float = 0.05, seed: int = 0, n: int = 1, alpha: float = 0.0) -> JobResult:
    """n visualizations of (layer, channel) with diversity weight alpha through lucent's
    render_vis, set up as IMI's code sets it up; returns a JobResult."""
    try:
        from lucent.optvis import objectives, param, render, transform
    except ImportError as exc:
        raise StimuliError("the lucent engine needs torch-lucent: pip install "
                           "'interpsy[lucent]'") from exc
    if layer.endswith(INPUT_SUFFIX) or spec.layout(layer) != CHANNELS_FIRST:
        raise ModelError(f"the lucent engine renders channels-first module outputs only, not "
                         f"{layer!r} ({spec.layout(layer)})")
    device = next(iter(model.parameters())).device
    if torch.cuda.is_available() and device != torch.device("cuda:0"):
        raise StimuliError(f"lucent renders on cuda:0 whenever CUDA is available; the model is "
                           f"on {device}: load it with device='cuda:0' (--device cuda)")
    torch.manual_seed(seed)
    np.random.seed(seed)
    normalize = normalizer(spec, device)
    objective = objectives.channel(lucent_layer(layer), channel)
    if sign < 0:
        objective = -objective
    if alpha:
        objective = objective - alpha * objectives.diversity(lucent_layer(layer))
    transforms = [transform.jitter(16), transform.random_scale(list(SCALES)),
                  transform.random_rotate(list(ANGLES)), transform.jitter(8)]
    if spec.crop_view:
        transforms.append(lambda x: center_crop(x, size))
    transforms.append(lambda x: normalize(x * 255.0))
    before = {id(m): set(m._forward_hooks) for m in model.modules()}
    try:
        images = render.render_vis(
            model, objective, param_f=lambda: param.image(size + 2 * pad, batch=n),
            optimizer=lambda params: torch.optim.Adam(params, lr=lr), transforms=transforms,
            thresholds=(steps,), preprocess=False, progress=False, show_image=False)
    finally:
        for module in model.modules():
            for key in set(module._forward_hooks) - before.get(id(module), set()):
                del module._forward_hooks[key]
    image = torch.from_numpy(images[-1]).permute(0, 3, 1, 2).to(device)
    image = center_crop(image, size)
    with LayerRecorder(model, spec, [layer], keep="full") as recorder, torch.no_grad():
        outputs = recorder(model, normalize(image * 255.0))
        act = unit_activations(outputs, {layer: spec.layout(layer)}, [layer] * n,
                               torch.tensor([channel] * n, device=device)).cpu().numpy()
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return JobResult(pixels, act.astype(np.float64), steps, alpha)
