"""Streaming exemplar mining: one pass over the images, exact top-k/bottom-k per unit (torch).

Hooks sit only on the layers of the requested units; a forward stops after the last of them.
Per unit the state is the exact top-k and bottom-k (`stimuli.topk`), i.e. O(units x k) memory.

Percentile queries (1st/99th, 5th/95th, 15th/85th) need the rank of every image, which no
bounded-memory one-pass method gives exactly. Trade-off chosen here: with
`store_activations=True` (default) the pass also appends each batch's unit activations to a
float32 memory-mapped file on disk (images x units x 4 bytes: 100 units x 1.28 M ImageNet images
= 512 MB, 1,000 units = 5.1 GB of disk, not RAM), and the picks are exact ranks computed from it
at the end. With `store_activations=False` RAM and disk stay O(units x k) and only easy
(extreme-rank) queries are available.

Sharding splits the *images* (`shard=(i, n)` takes a contiguous slice): every shard must run the
forward pass for its images anyway, so splitting units would not save compute. Per-shard states
carry global image indices and merge exactly (`merge_shards`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from stimuli.errors import ImageSourceError, StimuliError
from stimuli.images import CROP, RESIZE, load_shown
from stimuli.layers import LayerRecorder
from stimuli.registry import ModelSpec
from stimuli.sampling import Unit
from stimuli.topk import StreamingTopK

MINING_DIR = "mining"


@dataclass
class MiningConfig:
    """Settings of a mining pass."""

    k: int = 200
    batch_size: int = 64
    workers: int = 2
    device: str = "cpu"
    store_activations: bool = True
    checkpoint_every: int = 100
    autocast: bool | None = None  # default: on for CUDA (bfloat16), off on CPU
    channels_last: bool | None = None  # default: on for CUDA
    decode: str = "cpu"  # "cpu" (PIL in workers) or "gpu" (torchvision.io.decode_jpeg)
    skip_unreadable: bool = False


class ImageDataset(Dataset):
    """The shown crop of each file as a uint8 (3, 224, 224) tensor, its global index, an error."""

    def __init__(self, files: list[str], offset: int = 0, raw: bool = False):
        self.files = files
        self.offset = offset
        self.raw = raw

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        if self.raw:
            from torchvision.io import read_file

            return read_file(str(self.files[i])), self.offset + i, ""
        try:
            image = load_shown(self.files[i])
            tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()
            return tensor, self.offset + i, ""
        except ImageSourceError as exc:
            return torch.zeros(3, CROP, CROP, dtype=torch.uint8), self.offset + i, str(exc)


def _collate_raw(batch):
    return [b[0] for b in batch], torch.tensor([b[1] for b in batch]), [b[2] for b in batch]


def _decode_gpu(raw: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, list[str]]:
    """Batched JPEG decoding on the GPU, then resize 256 / centre crop 224 there."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    from torchvision.transforms.v2 import functional as TF

    errors = [""] * len(raw)
    try:
        decoded = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        decoded = []
        for i, data in enumerate(raw):
            try:
                decoded.append(decode_image(data, mode=ImageReadMode.RGB).to(device))
            except RuntimeError as exc:
                errors[i] = f"cannot decode image: {exc}"
                decoded.append(torch.zeros(3, CROP, CROP, dtype=torch.uint8, device=device))
    out = [TF.center_crop(TF.resize(img, RESIZE, antialias=True), [CROP, CROP]) for img in decoded]
    return torch.stack(out), errors


def normalizer(spec: ModelSpec, device: torch.device):
    """uint8 (N, 3, H, W) -> float model input with the model's mean/std."""
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255.0
    return lambda x: (x.float() - mean) / std


def fingerprint(spec: ModelSpec, weights: str, units: list[Unit], files: list[str],
                cfg: MiningConfig) -> str:
    """Hash of everything that determines a mining result (to refuse resuming a different run)."""
    payload = json.dumps({"model": spec.name, "weights": weights,
                          "units": [u.unit_id for u in units], "files": files, "k": cfg.k,
                          "store": cfg.store_activations, "decode": cfg.decode,
                          "crop": [RESIZE, CROP]})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def shard_range(n_images: int, shard: tuple[int, int]) -> tuple[int, int]:
    """The contiguous [start, stop) image range of shard i of n."""
    i, n = shard
    if not 0 <= i < n:
        raise StimuliError(f"shard {i}/{n}: need 0 <= i < n")
    return n_images * i // n, n_images * (i + 1) // n


def _shard_paths(work: Path, shard: tuple[int, int]) -> tuple[Path, Path, Path]:
    tag = f"shard-{shard[0]}-of-{shard[1]}"
    return work / f"{tag}.pt", work / f"{tag}.ckpt.pt", work / f"activations-{tag}.f32"


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def mine_shard(model: torch.nn.Module, spec: ModelSpec, weights: str, units: list[Unit],
               files: list[str], work_dir: str | Path, cfg: MiningConfig,
               shard: tuple[int, int] = (0, 1), progress: bool = True) -> Path:
    """Mine one shard of the images for all units; resumes from its checkpoint; returns its file."""
    work = Path(work_dir) / MINING_DIR
    work.mkdir(parents=True, exist_ok=True)
    done_path, ckpt_path, act_path = _shard_paths(work, shard)
    key = fingerprint(spec, weights, units, files, cfg)
    if done_path.is_file():
        if torch.load(done_path, weights_only=False)["fingerprint"] == key:
            return done_path
        raise StimuliError(f"{work} holds mining results for other settings; remove it or use "
                           f"another output folder")
    start, stop = shard_range(len(files), shard)
    n_units, n_shard = len(units), stop - start
    device = torch.device(cfg.device)
    is_cuda = device.type == "cuda"

    layers = list(dict.fromkeys(u.layer for u in units))
    channels = {layer: torch.tensor([u.channel for u in units if u.layer == layer],
                                    device=device) for layer in layers}
    grouped = [(u.layer, u.channel) for layer in layers for u in units if u.layer == layer]
    position = {key_: i for i, key_ in enumerate(grouped)}
    perm = torch.tensor([position[(u.layer, u.channel)] for u in units], device=device)

    top = StreamingTopK(n_units, cfg.k, device, largest=True)
    bottom = StreamingTopK(n_units, cfg.k, device, largest=False)
    done, bad = 0, []
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=False)
        if state["fingerprint"] != key:
            raise StimuliError(f"{work} holds a mining checkpoint for other settings; remove it "
                               f"or use another output folder")
        top = StreamingTopK.from_state(state["top"], device)
        bottom = StreamingTopK.from_state(state["bottom"], device)
        done, bad = state["done"], state["bad"]
    activations = None
    if cfg.store_activations and n_shard:
        mode = "r+" if (done and act_path.is_file()) else "w+"
        activations = np.memmap(act_path, dtype=np.float32, mode=mode, shape=(n_shard, n_units))

    raw = cfg.decode == "gpu" and is_cuda
    dataset = ImageDataset(files[start + done: stop], offset=start + done, raw=raw)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers,
                        pin_memory=is_cuda, collate_fn=_collate_raw if raw else None,
                        persistent_workers=False)
    normalize = normalizer(spec, device)
    use_autocast = is_cuda if cfg.autocast is None else cfg.autocast
    if (is_cuda if cfg.channels_last is None else cfg.channels_last):
        model = model.to(memory_format=torch.channels_last)
    recorder = LayerRecorder(model, spec, layers, keep="reduced", channels=channels)
    bar = _progress(n_shard, done, progress, f"mining {spec.name} shard {shard[0]}/{shard[1]}")
    last_save = time.monotonic()
    try:
        for step, (images, indices, errors) in enumerate(loader, 1):
            if raw:
                images, errors = _decode_gpu(images, device)
            else:
                images = images.to(device, non_blocking=True)
            errors = list(errors)
            failed = [j for j, e in enumerate(errors) if e]
            if failed:
                if not cfg.skip_unreadable:
                    raise ImageSourceError(errors[failed[0]])
                bad.extend(int(indices[j]) for j in failed)
            x = normalize(images)
            if is_cuda and cfg.channels_last is not False:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                 enabled=use_autocast):
                outputs = recorder(model, x)
            acts = torch.cat([outputs[layer] for layer in layers], 1).float()[:, perm]
            keep = torch.ones(len(acts), dtype=torch.bool)
            keep[failed] = False
            if failed:
                acts[torch.tensor(failed, device=acts.device)] = float("nan")
            if activations is not None:
                rows = slice(done, done + len(acts))
                activations[rows] = acts.cpu().numpy()
            if bool(keep.all()):
                top.update(acts.T, indices)
                bottom.update(acts.T, indices)
            elif bool(keep.any()):
                good = keep.nonzero().squeeze(1)
                top.update(acts[good.to(acts.device)].T, indices[good])
                bottom.update(acts[good.to(acts.device)].T, indices[good])
            done += len(acts)
            bar.update(len(acts))
            if step % cfg.checkpoint_every == 0 or time.monotonic() - last_save > 300:
                if activations is not None:
                    activations.flush()
                _save_atomic({"fingerprint": key, "top": top.state_dict(),
                              "bottom": bottom.state_dict(), "done": done, "bad": bad},
                             ckpt_path)
                last_save = time.monotonic()
    finally:
        recorder.close()
        bar.close()
    if activations is not None:
        activations.flush()
    _save_atomic({"fingerprint": key, "top": top.state_dict(), "bottom": bottom.state_dict(),
                  "done": done, "bad": bad, "shard": list(shard), "start": start, "stop": stop,
                  "units": [u.unit_id for u in units],
                  "activations": act_path.name if activations is not None else None},
                 done_path)
    ckpt_path.unlink(missing_ok=True)
    return done_path


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="img",
                dynamic_ncols=True)


@dataclass
class MiningResult:
    """Merged mining state of all shards: exact top/bottom-k and the optional activation store."""

    unit_ids: list[str]
    files: list[str]
    top_values: np.ndarray
    top_indices: np.ndarray
    bottom_values: np.ndarray
    bottom_indices: np.ndarray
    bad: list[int] = field(default_factory=list)
    stores: list[tuple[Path, int, int]] = field(default_factory=list)

    @property
    def n_valid(self) -> int:
        return len(self.files) - len(self.bad)

    def has_activations(self) -> bool:
        return bool(self.stores) or len(self.files) == 0

    def activation_block(self, columns: slice) -> np.ndarray:
        """All images' activations for a block of units (images x units), NaN for bad images."""
        if not self.stores:
            raise StimuliError("mining ran without store_activations; percentile queries need it")
        parts = []
        for path, start, stop in self.stores:
            store = np.memmap(path, dtype=np.float32, mode="r",
                              shape=(stop - start, len(self.unit_ids)))
            parts.append(np.asarray(store[:, columns]))
        return np.concatenate(parts, 0)


def merge_shards(work_dir: str | Path, n_shards: int, unit_ids: list[str],
                 files: list[str]) -> MiningResult:
    """Exactly merge the per-shard top/bottom-k of a finished mining run."""
    work = Path(work_dir) / MINING_DIR
    top = bottom = None
    bad: list[int] = []
    stores: list[tuple[Path, int, int]] = []
    for i in range(n_shards):
        done_path = _shard_paths(work, (i, n_shards))[0]
        if not done_path.is_file():
            raise StimuliError(f"mining shard {i}/{n_shards} has not finished ({done_path} "
                               f"missing); run `interpsy stimuli mine ... --shard {i}/{n_shards}`")
        state = torch.load(done_path, weights_only=False)
        if state["units"] != unit_ids:
            raise StimuliError(f"{done_path} was mined for other units")
        shard_top = StreamingTopK.from_state(state["top"])
        shard_bottom = StreamingTopK.from_state(state["bottom"])
        if top is None:
            top, bottom = shard_top, shard_bottom
        else:
            top.merge(shard_top)
            bottom.merge(shard_bottom)
        bad.extend(state["bad"])
        if state["activations"]:
            stores.append((work / state["activations"], state["start"], state["stop"]))
    if stores and len(stores) != n_shards:
        stores = []
    return MiningResult(unit_ids, files, top.values.numpy(), top.indices.numpy(),
                        bottom.values.numpy(), bottom.indices.numpy(), sorted(bad), stores)


def percentile_rank(percentile: float, n_valid: int) -> int:
    """0-based rank from the top of the image at a (max-side) percentile, e.g. 99 -> 1 %."""
    return int(round((100.0 - percentile) / 100.0 * (n_valid - 1)))


def percentile_picks(result: MiningResult, percentiles: dict[str, float], window: int,
                     block: int = 64) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Exact picks around percentiles: {difficulty: {"max"|"min": (indices, values) per unit}}.

    For difficulty d with max-side percentile P (99, 95, 85), the max side takes the `window`
    images at ranks r - window//2 ... of the descending order (ties by image index), where
    r = round((1 - P/100) (n - 1)); the min side does the same on the ascending order
    (the 1st/5th/15th percentile). Returns index and value arrays of shape (units, window).
    """
    n_units = len(result.unit_ids)
    out = {d: {"max": (np.zeros((n_units, window), np.int64), np.zeros((n_units, window))),
               "min": (np.zeros((n_units, window), np.int64), np.zeros((n_units, window)))}
           for d in percentiles}
    for first in range(0, n_units, block):
        columns = slice(first, min(first + block, n_units))
        values = result.activation_block(columns)
        for j in range(values.shape[1]):
            column = values[:, j]
            valid = np.flatnonzero(~np.isnan(column))
            descending = valid[np.argsort(-column[valid], kind="stable")]
            ascending = valid[np.argsort(column[valid], kind="stable")]
            for difficulty, percentile in percentiles.items():
                r = percentile_rank(percentile, len(valid))
                lo = min(max(0, r - window // 2), max(0, len(valid) - window))
                for side, order in (("max", descending), ("min", ascending)):
                    picked = order[lo: lo + window]
                    out[difficulty][side][0][first + j] = picked
                    out[difficulty][side][1][first + j] = column[picked]
    return out
