"""Every image embedded once per backbone, cached beside its stimulus set and resumed (torch)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from experiments.db.images import ImageFile
from stimuli.errors import StimuliError
from stimuli.observers.backbones import Backbone

SAVE_EVERY = 512  # images between cache writes (what a killed run loses at most)


def cache_file(set_dir: Path, backbone: Backbone, fallback: Path) -> Path:
    """`<set>/_embeddings/<backbone>-<facts hash>.npz`, or under `fallback` when the set's folder
    is not writable."""
    facts = json.dumps(backbone.facts(), sort_keys=True, default=str)
    slug = backbone.name.replace(":", "-") + "-" + hashlib.sha256(facts.encode()).hexdigest()[:10]
    folder = set_dir / "_embeddings"
    if not os.access(set_dir, os.W_OK):
        folder = fallback / "_embeddings" / set_dir.name
    return folder / f"{slug}.npz"


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as stored:
        return dict(zip(stored["keys"].tolist(), stored["vectors"]))


def _write(path: Path, vectors: dict[str, np.ndarray]) -> None:
    """Atomically: a killed run leaves the previous cache or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(vectors)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(handle)
    with open(temporary, "wb") as out:
        np.savez(out, keys=np.array(keys), vectors=np.stack([vectors[k] for k in keys]))
    os.replace(temporary, path)


def _load(image: ImageFile) -> torch.Tensor:
    try:
        with Image.open(image.path) as opened:
            array = np.asarray(opened.convert("RGB"))
    except OSError as exc:
        raise StimuliError(f"cannot read image {image.path} ({image.image_id}): {exc}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _content_key(image: ImageFile) -> str:
    if image.sha256:
        return image.sha256
    return hashlib.sha256(image.path.read_bytes()).hexdigest()


def embed_images(backbone: Backbone, images: Iterable[ImageFile], fallback: Path,
                 batch_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """image_id -> unit-norm embedding, each distinct image embedded once: from the set's cache
    where it is there, else computed in batches and added to the cache as it goes."""
    images = list(images)
    by_set: dict[Path, list[ImageFile]] = {}
    for image in images:
        by_set.setdefault(image.set_dir, []).append(image)
    out: dict[str, np.ndarray] = {}
    todo_total = 0
    plans = []
    for set_dir, members in by_set.items():
        path = cache_file(set_dir, backbone, fallback)
        cached = _read(path)
        keys = {image.image_id: _content_key(image) for image in members}
        todo = list({keys[i.image_id]: i for i in members if keys[i.image_id] not in cached}
                    .values())
        todo_total += len(todo)
        plans.append((path, cached, keys, members, todo))
    bar = tqdm(total=todo_total, desc=f"embedding ({backbone.name})", unit="img",
               disable=not progress or todo_total == 0)
    for path, cached, keys, members, todo in plans:
        unsaved = 0
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            tensors = [_load(image) for image in chunk]
            for size in {t.shape for t in tensors}:
                same = [(image, t) for image, t in zip(chunk, tensors) if t.shape == size]
                vectors = backbone.embed(torch.stack([t for _, t in same])).numpy()
                for (image, _), vector in zip(same, vectors):
                    cached[keys[image.image_id]] = vector
            unsaved += len(chunk)
            bar.update(len(chunk))
            if unsaved >= SAVE_EVERY:
                _write(path, cached)
                unsaved = 0
        if todo:
            _write(path, cached)
        out.update({image.image_id: cached[keys[image.image_id]] for image in members})
    bar.close()
    return out
