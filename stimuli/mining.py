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

The model and its input are channels-last by default (faster on the CPU too; activations change
by float rounding only). On CUDA the default is also bfloat16 autocast (float16 on GPUs without
bfloat16); activations are reduced in float32 either way, and autocast works on the CPU too when
asked for (`MiningConfig(autocast=True)`). Decoding is
PIL in the DataLoader workers (`decode="pil"`) or, with `decode="torchvision"`, batched
`torchvision.io.decode_jpeg` on the mining device (nvJPEG on a GPU; libjpeg-turbo on the CPU)
with the resize and centre crop done there as well; non-JPEG files still go through PIL in the
workers. Both decoders give the same crops as `stimuli.images.load_shown` to within one grey
level on the CPU.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from stimuli.errors import ImageSourceError, StimuliError
from stimuli.images import CROP, DEFAULT_PREPROCESSING, RESIZE, Preprocessing, load_shown
from stimuli.layers import LayerRecorder
from stimuli.registry import ModelSpec
from stimuli.sampling import Unit
from stimuli.topk import StreamingTopK

MINING_DIR = "mining"
DECODERS = ("pil", "torchvision")
_DECODER_ALIASES = {"cpu": "pil", "gpu": "torchvision"}
JPEG_MAGIC = b"\xff\xd8\xff"
# What a pool does to each shown crop before the model sees it: (pixels H x W x 3, global image
# index) -> pixels; picklable, with a `describe()` for the mining fingerprint (stimuli.shifts).
Transform = Callable[[np.ndarray, int], np.ndarray]


CPU_MINING_BATCH = 16  # images per forward pass on the CPU: as fast as 64, 1 GB less resident


def mining_batch(batch_size: int | None, device: str) -> int:
    """The mining batch asked for, else the device's: 16 on the CPU, 64 on a GPU."""
    if batch_size is not None:
        return batch_size
    return CPU_MINING_BATCH if str(device).startswith("cpu") else 64


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
    autocast_dtype: str | None = None  # "bfloat16" or "float16"; default bfloat16 where supported
    channels_last: bool = True
    decode: str = "pil"  # "pil" (in the workers) or "torchvision" (decode_jpeg on the device)
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        self.decode = _DECODER_ALIASES.get(self.decode, self.decode)
        if self.decode not in DECODERS:
            raise StimuliError(f"decode={self.decode!r}: use one of {', '.join(DECODERS)}")


def precision(cfg: MiningConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype, or None for float32; channels-last on/off) of a pass on `device`."""
    cuda = device.type == "cuda"
    channels_last = cfg.channels_last
    if not (cuda if cfg.autocast is None else cfg.autocast):
        return None, channels_last
    if cfg.autocast_dtype is not None:
        return getattr(torch, cfg.autocast_dtype), channels_last
    if cuda and not torch.cuda.is_bf16_supported():
        return torch.float16, channels_last
    return torch.bfloat16, channels_last


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type, or a no-op for None."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@contextlib.contextmanager
def memory_format(model: torch.nn.Module, channels_last: bool) -> Iterator[torch.nn.Module]:
    """The model in channels-last memory format inside the block, contiguous again after it."""
    if not channels_last:
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def model_input(images: torch.Tensor, normalize, channels_last: bool) -> torch.Tensor:
    """Normalised float input from uint8 images, channels-last when asked for."""
    x = normalize(images)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _pil_crop(path: str, prep: Preprocessing, transform: Transform | None = None,
              index: int = 0) -> tuple[torch.Tensor, str]:
    """The shown crop through PIL as uint8 (3, crop, crop), `transform(pixels, index)` applied
    when given, or zeros and the error."""
    try:
        image = load_shown(path, prep)
    except ImageSourceError as exc:
        return torch.zeros(3, prep.crop, prep.crop, dtype=torch.uint8), str(exc)
    pixels = np.asarray(image)
    if transform is not None:
        pixels = transform(pixels, index)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous(), ""


class ImageDataset(Dataset):
    """The shown crop of each file as a uint8 (3, 224, 224) tensor, its global index, an error.

    With `raw=True` a JPEG file comes back as its bytes (1-D uint8) with its path as a fourth
    item, for batched decoding on the mining device; other files come back as PIL crops with "".
    """

    def __init__(self, files: list[str], offset: int = 0, raw: bool = False,
                 prep: Preprocessing = DEFAULT_PREPROCESSING, transform: Transform | None = None):
        self.files = files
        self.offset = offset
        self.raw = raw and transform is None
        self.prep = prep
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        path = str(self.files[i])
        if self.raw:
            return self._raw_item(path, self.offset + i)
        crop, error = _pil_crop(path, self.prep, self.transform, self.offset + i)
        return crop, self.offset + i, error

    def _raw_item(self, path: str, index: int) -> tuple:
        """JPEG bytes and path, or the PIL crop (zeros on error) and "" for other files."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            zeros = torch.zeros(3, self.prep.crop, self.prep.crop, dtype=torch.uint8)
            return zeros, index, f"cannot read image {path}: {exc}", ""
        if data[:3] == JPEG_MAGIC:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), index, "", path
        crop, error = _pil_crop(path, self.prep)
        return crop, index, error, ""


def _collate_raw(batch: list[tuple]) -> tuple[list[torch.Tensor], torch.Tensor, list[str],
                                                list[str]]:
    """Raw items as lists (JPEG byte tensors differ in length), indices as one tensor."""
    return ([b[0] for b in batch], torch.tensor([b[1] for b in batch]), [b[2] for b in batch],
            [b[3] for b in batch])


def shown_tensor(images: torch.Tensor, prep: Preprocessing = DEFAULT_PREPROCESSING
                 ) -> torch.Tensor:
    """The shown crop of (..., 3, H, W) uint8 images: shorter side to `prep.resize`, centre
    `prep.crop`. Same arithmetic as `stimuli.images.load_shown` (torchvision's antialiased
    resize matches PIL's to within one grey level).
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    mode = {"bilinear": InterpolationMode.BILINEAR,
            "bicubic": InterpolationMode.BICUBIC}[prep.interpolation]
    resized = TF.resize(images, [prep.resize], interpolation=mode, antialias=True)
    return TF.center_crop(resized, [prep.crop, prep.crop])


def _decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """RGB uint8 images from JPEG bytes, decoded on `device` (one batched nvJPEG call on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if device.type == "cuda":
        # nvJPEG writes its outputs on its own stream without waiting for the caller's: a block
        # the caching allocator recycles may still be read by queued kernels (torchvision #9606)
        torch.cuda.current_stream(device).synchronize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to torchcodec
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _shown_crops(images: list[torch.Tensor], prep: Preprocessing) -> list[torch.Tensor]:
    """`shown_tensor` of each image, one resize call per distinct image size."""
    by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        by_size[tuple(image.shape)].append(i)
    crops: list[torch.Tensor] = [images[0]] * len(images)
    for rows in by_size.values():
        for i, crop in zip(rows, shown_tensor(torch.stack([images[i] for i in rows]), prep)):
            crops[i] = crop
    return crops


def _one_jpeg(data: torch.Tensor, path: str, device: torch.device, prep: Preprocessing
              ) -> tuple[torch.Tensor, str]:
    """One JPEG on `device`; what the device decoder refuses goes through PIL, then is an error."""
    try:
        return shown_tensor(_decode_jpegs([data], device)[0], prep), ""
    except RuntimeError:
        crop, error = _pil_crop(path, prep)
        return crop.to(device), error


def decode_batch(items: list[torch.Tensor], errors: list[str], jpeg_paths: list[str],
                 device: torch.device, prep: Preprocessing = DEFAULT_PREPROCESSING
                 ) -> tuple[torch.Tensor, list[str]]:
    """A raw batch of `ImageDataset(raw=True)` as uint8 (B, 3, 224, 224) shown crops on `device`."""
    errors = list(errors)
    crops = [item.to(device, non_blocking=True) if not path else item
             for item, path in zip(items, jpeg_paths)]
    jpegs = [i for i, path in enumerate(jpeg_paths) if path]
    if jpegs:
        try:
            decoded = _shown_crops(_decode_jpegs([items[i] for i in jpegs], device), prep)
            for i, crop in zip(jpegs, decoded):
                crops[i] = crop
        except RuntimeError:  # one bad file fails the whole batched call: redo them one by one
            for i in jpegs:
                crops[i], errors[i] = _one_jpeg(items[i], jpeg_paths[i], device, prep)
    return torch.stack(crops), errors


def image_batches(files: list[str], offset: int, cfg: MiningConfig, device: torch.device,
                  prep: Preprocessing = DEFAULT_PREPROCESSING, transform: Transform | None = None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """(uint8 (B, 3, 224, 224) crops on `device`, global indices on the CPU, error per image).
    A transformed pool decodes through PIL in the workers (the transform works on pixels)."""
    raw = cfg.decode == "torchvision" and transform is None
    loader = DataLoader(ImageDataset(files, offset=offset, raw=raw, prep=prep,
                                     transform=transform),
                        batch_size=cfg.batch_size,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda" and not raw,
                        collate_fn=_collate_raw if raw else None, persistent_workers=False)
    for batch in loader:
        if raw:
            items, indices, errors, paths = batch
            images, errors = decode_batch(items, errors, paths, device, prep)
            yield images, indices, errors
        else:
            images, indices, errors = batch
            yield images.to(device, non_blocking=True), indices, list(errors)


def normalizer(spec: ModelSpec, device: torch.device):
    """uint8 (N, 3, H, W) -> float model input with the model's mean/std."""
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1) * 255.0
    return lambda x: (x.float() - mean) / std


def earlier_channels_last(device: str) -> bool:
    """The memory format mining used on `device` before it ran channels-last everywhere (on
    CUDA only): what runs and builds that did not record it used."""
    return torch.device(device).type == "cuda"


def fingerprint(spec: ModelSpec, weights: str, units: list[Unit], files: list[str],
                cfg: MiningConfig, dtype: torch.dtype | None = None,
                transform: Transform | None = None) -> str:
    """Hash of everything that determines a mining result (to refuse resuming a different run)."""
    shifted = {"transform": transform.describe()} if transform is not None else {}
    payload = json.dumps({**shifted, "model": spec.name, "weights": weights,
                          "units": [u.unit_id for u in units], "files": files, "k": cfg.k,
                          "store": cfg.store_activations, "decode": cfg.decode,
                          "precision": str(dtype or torch.float32),
                          # float rounding follows the batch; 64 (long the only default) keeps
                          # the fingerprint of earlier runs, so they still resume
                          **({"batch": cfg.batch_size} if cfg.batch_size != 64 else {}),
                          # likewise the memory format, named only where earlier runs on
                          # the device used another
                          **({"channels_last": cfg.channels_last}
                             if cfg.channels_last != earlier_channels_last(cfg.device) else {}),
                          # the default keeps the fingerprint of mining runs started before
                          # preprocessing was per model, so they still resume
                          "crop": [RESIZE, CROP] if spec.preprocessing == DEFAULT_PREPROCESSING
                          else spec.preprocessing.describe()})
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


class ActivationSpill:
    """Writes each batch's activations into the memory-mapped store one batch late on CUDA.

    The device-to-host copy goes into pinned memory without blocking and is waited for only when
    the next batch has been queued, so the GPU never idles on the disk store.
    """

    def __init__(self, store: np.memmap | None, device: torch.device):
        self.store = store
        self.cuda = device.type == "cuda"
        self.pending: tuple[int, torch.Tensor, torch.cuda.Event] | None = None

    def put(self, row: int, acts: torch.Tensor) -> None:
        """Queue rows row.. of the store for `acts` (images x units)."""
        if self.store is None:
            return
        self.drain()
        if not self.cuda:
            self.store[row: row + len(acts)] = acts.numpy()
            return
        host = torch.empty(acts.shape, dtype=acts.dtype, pin_memory=True)
        host.copy_(acts, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending = (row, host, event)

    def drain(self) -> None:
        """Write the queued batch, if any."""
        if self.pending is None:
            return
        row, host, event = self.pending
        event.synchronize()
        self.store[row: row + len(host)] = host.numpy()
        self.pending = None

    def flush(self) -> None:
        """Write the queued batch and flush the store to disk."""
        self.drain()
        if self.store is not None:
            self.store.flush()


def _unit_order(units: list[Unit], device: torch.device
                ) -> tuple[list[str], dict[str, torch.Tensor], torch.Tensor]:
    """Hooked layers, each layer's channels and the permutation back to the units' order."""
    layers = list(dict.fromkeys(u.layer for u in units))
    channels = {layer: torch.tensor([u.channel for u in units if u.layer == layer],
                                    device=device) for layer in layers}
    grouped = [(u.layer, u.channel) for layer in layers for u in units if u.layer == layer]
    position = {key: i for i, key in enumerate(grouped)}
    perm = torch.tensor([position[(u.layer, u.channel)] for u in units], device=device)
    return layers, channels, perm


def _update(top: StreamingTopK, bottom: StreamingTopK, acts: torch.Tensor, first: int,
            failed: list[int]) -> None:
    """Feed a batch (images x units) whose global indices start at `first`, minus failed rows."""
    indices = torch.arange(first, first + len(acts), device=acts.device)
    if failed:
        keep = torch.ones(len(acts), dtype=torch.bool)
        keep[failed] = False
        good = keep.nonzero().squeeze(1).to(acts.device)
        acts, indices = acts[good], indices[good]
    if len(acts):
        top.update(acts.T, indices)
        bottom.update(acts.T, indices)


def mine_shard(model: torch.nn.Module, spec: ModelSpec, weights: str, units: list[Unit],
               files: list[str], work_dir: str | Path, cfg: MiningConfig,
               shard: tuple[int, int] = (0, 1), progress: bool = True,
               transform: Transform | None = None) -> Path:
    """Mine one shard of the images for all units; resumes from its checkpoint; returns its file.
    `transform` changes each shown crop before the model sees it (a shifted pool)."""
    work = Path(work_dir) / MINING_DIR
    work.mkdir(parents=True, exist_ok=True)
    done_path, ckpt_path, act_path = _shard_paths(work, shard)
    device = torch.device(cfg.device)
    dtype, channels_last = precision(cfg, device)
    key = fingerprint(spec, weights, units, files, cfg, dtype, transform)
    if done_path.is_file():
        if torch.load(done_path, weights_only=False)["fingerprint"] == key:
            return done_path
        raise StimuliError(f"{work} holds mining results for other settings; remove it or use "
                           f"another output folder")
    start, stop = shard_range(len(files), shard)
    n_units, n_shard = len(units), stop - start
    layers, channels, perm = _unit_order(units, device)

    top, bottom, done, bad = _resume(ckpt_path, key, n_units, cfg.k, device, work)
    store = None
    if cfg.store_activations and n_shard:
        mode = "r+" if (done and act_path.is_file()) else "w+"
        store = np.memmap(act_path, dtype=np.float32, mode=mode, shape=(n_shard, n_units))
    spill = ActivationSpill(store, device)

    def checkpoint() -> None:
        """Flush the store, then save the top/bottom-k state and the count done."""
        spill.flush()
        _save_atomic({"fingerprint": key, "top": top.state_dict(),
                      "bottom": bottom.state_dict(), "done": done, "bad": bad}, ckpt_path)

    normalize = normalizer(spec, device)
    recorder = LayerRecorder(model, spec, layers, keep="reduced", channels=channels)
    bar = _progress(n_shard, done, progress, f"mining {spec.name} shard {shard[0]}/{shard[1]}")
    last_save = time.monotonic()
    try:
        with memory_format(model, channels_last), torch.no_grad():
            batches = image_batches(files[start + done: stop], start + done, cfg, device,
                                    spec.preprocessing, transform)
            for step, (images, indices, errors) in enumerate(batches, 1):
                failed = [j for j, e in enumerate(errors) if e]
                if failed:
                    if not cfg.skip_unreadable:
                        raise ImageSourceError(errors[failed[0]])
                    bad.extend(int(indices[j]) for j in failed)
                with autocast(device, dtype):
                    outputs = recorder(model, model_input(images, normalize, channels_last))
                acts = torch.cat([outputs[layer] for layer in layers], 1).float()[:, perm]
                if failed:
                    acts[torch.tensor(failed, device=acts.device)] = float("nan")
                spill.put(done, acts)
                _update(top, bottom, acts, start + done, failed)
                done += len(acts)
                bar.update(len(acts))
                if step % cfg.checkpoint_every == 0 or time.monotonic() - last_save > 300:
                    checkpoint()
                    last_save = time.monotonic()
    finally:
        recorder.close()
        bar.close()
    spill.flush()
    _save_atomic({"fingerprint": key, "top": top.state_dict(), "bottom": bottom.state_dict(),
                  "done": done, "bad": bad, "shard": list(shard), "start": start, "stop": stop,
                  "units": [u.unit_id for u in units],
                  "activations": act_path.name if store is not None else None},
                 done_path)
    ckpt_path.unlink(missing_ok=True)
    return done_path


def _resume(ckpt_path: Path, key: str, n_units: int, k: int, device: torch.device, work: Path
            ) -> tuple[StreamingTopK, StreamingTopK, int, list[int]]:
    """The shard's top-k and bottom-k so far, the images done and the unreadable ones: from its
    checkpoint (refused if made with other settings), else empty."""
    if not ckpt_path.is_file():
        return (StreamingTopK(n_units, k, device, largest=True),
                StreamingTopK(n_units, k, device, largest=False), 0, [])
    state = torch.load(ckpt_path, weights_only=False)
    if state["fingerprint"] != key:
        raise StimuliError(f"{work} holds a mining checkpoint for other settings; remove it "
                           f"or use another output folder")
    return (StreamingTopK.from_state(state["top"], device),
            StreamingTopK.from_state(state["bottom"], device), state["done"], state["bad"])


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


def percentile_start(percentile: float, window: int) -> Callable[[int], int]:
    """The first rank of the `window` images centred on a (max-side) percentile, given the
    number of valid images."""
    def start(n_valid: int) -> int:
        return min(max(0, percentile_rank(percentile, n_valid) - window // 2),
                   max(0, n_valid - window))
    return start


def percentile_picks(result: MiningResult, percentiles: dict[str, float], window: int,
                     block: int = 64) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Exact picks around percentiles: {difficulty: {"max"|"min": (indices, values) per unit}}.

    For difficulty d with max-side percentile P (99, 95, 85), the max side takes the `window`
    images at ranks r - window//2 ... of the descending order (ties by image index), where
    r = round((1 - P/100) (n - 1)); the min side does the same on the ascending order
    (the 1st/5th/15th percentile). Returns index and value arrays of shape (units, window).
    """
    return window_picks(result, {d: percentile_start(p, window) for d, p in percentiles.items()},
                        window, block=block)


def window_picks(result: MiningResult, starts: dict[str, Callable[[int], int]], window: int,
                 exclude: list[np.ndarray] | None = None, block: int = 64
                 ) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """`window` images per unit and side from rank `starts[d](n)` on of the descending (max)
    and ascending (min) order of the unit's n valid images, ties by image index; `exclude[u]`
    holds image indices unit u may not pick (they count as invalid)."""
    n_units = len(result.unit_ids)
    out = {d: {"max": (np.zeros((n_units, window), np.int64), np.zeros((n_units, window))),
               "min": (np.zeros((n_units, window), np.int64), np.zeros((n_units, window)))}
           for d in starts}
    for first in range(0, n_units, block):
        columns = slice(first, min(first + block, n_units))
        values = result.activation_block(columns)
        for j in range(values.shape[1]):
            column = values[:, j]
            usable = ~np.isnan(column)
            if exclude is not None:
                usable[exclude[first + j]] = False
            valid = np.flatnonzero(usable)
            descending = valid[np.argsort(-column[valid], kind="stable")]
            ascending = valid[np.argsort(column[valid], kind="stable")]
            for difficulty, start in starts.items():
                lo = start(len(valid))
                for side, order in (("max", descending), ("min", ascending)):
                    picked = order[lo: lo + window]
                    if len(picked) < window:
                        raise StimuliError(f"unit {result.unit_ids[first + j]}: {len(valid)} "
                                           f"usable images, too few for {difficulty} queries")
                    out[difficulty][side][0][first + j] = picked
                    out[difficulty][side][1][first + j] = column[picked]
    return out
