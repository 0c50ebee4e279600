"""`interpsy stimuli shift SET`: add queries from shifted distributions to a built stimulus set,
resumably (torch).

References stay in distribution; only the queries move. A shifted pool is the set's own image
source with one shift (stimuli.shifts) applied to each shown crop, seeded per image; a domain is
any folder of images. Each pool is mined for the set's units like the source was, and its
queries are picked with the set's own rule: the easy query of batch b from the last of the
n_bins rank bins (ranks (n_bins-1) x n_batches ...), each percentile difficulty from the window
around its rank, shuffled over the batches with the set's batching seed. In a shifted pool a
unit never gets the shifted copy of an image its own trials show (its natural references and
queries): those images are left out of its ranking. Rows are kind `natural` with
`distribution` = the pool's label (`blur-3`, or the domain's name); the manifest's
`query_distributions` records how each pool was made.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.stimulus_set import IMAGES_CSV, MANIFEST, UNITS_CSV, load_stimulus_set
from experiments.stimulus_set.writer import image_id, save_png, slug, write_tables
from experiments.vocabulary import IN_DISTRIBUTION, PERCENTILES
from stimuli.batching import available_difficulties
from stimuli.build import WORK, _device_record, _relative_source
from stimuli.errors import StimuliError
from stimuli.images import list_images, load_shown
from stimuli.occlusion_set import _read_rows
from stimuli.sampling import Unit
from stimuli.shifts import PoolShift, check_domain_name, parse_shift

QUERIES = "queries"  # `<set>/_work/queries/<label>/` holds each pool's mining work


def _pools(shifts: Iterable[str], domains: dict[str, str], seed: int, source: str
           ) -> dict[str, tuple[str, PoolShift | None]]:
    """label -> (image source, shift or None for a domain folder), each checked."""
    pools: dict[str, tuple[str, PoolShift | None]] = {}
    for text in shifts:
        try:
            shift = parse_shift(text, seed)
        except ValueError as exc:
            raise StimuliError(f"--shift {exc}") from None
        pools[shift.label] = (source, shift)
    for name, folder in domains.items():
        try:
            check_domain_name(name)
        except ValueError as exc:
            raise StimuliError(f"--domain {exc}") from None
        if not Path(folder).is_dir():
            raise StimuliError(f"--domain {name}={folder}: no such folder")
        list_images(folder)  # a folder without images: ImageSourceError names it
        pools[name] = (str(folder), None)
    if not pools:
        raise StimuliError("name at least one --shift NAME:SEVERITY or --domain NAME=FOLDER")
    return pools


def _own_images(images, files: list[str], source: str) -> dict[str, np.ndarray]:
    """Per unit (units.csv order), the pool indices of the source images its trials show."""
    natural = images[(images.kind == "natural") & (images.distribution == IN_DISTRIBUTION)]
    if "source" not in images or (natural.source == "").any():
        raise StimuliError("the set's images.csv has no `source` for its natural images (built "
                           "before it was recorded); rebuild the set to add shifted queries")
    index = {_relative_source(f, source): i for i, f in enumerate(files)}
    return {unit: np.array(sorted({index[s] for s in group.source if s in index}), np.int64)
            for unit, group in natural.groupby("unit_id")}


def _write_query(out: Path, label: str, index: int, file: str, shift: PoolShift | None,
                 prep, size: int) -> str:
    """The shown (and shifted) crop of pool image `index`, once; its path in the set."""
    rel = f"images/{QUERIES}/{label}/{index:07d}.png"
    target = out / rel
    if not target.is_file():
        pixels = np.asarray(load_shown(file, prep))
        if shift is not None:
            pixels = shift(pixels, index)
        if pixels.shape[0] != size:
            pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR))
        save_png(pixels, target)
    return rel


def _rows(out: Path, label: str, units: list[Unit], picks: dict, files: list[str],
          shift: PoolShift | None, source: str, prep, size: int, n_batches: int, seed: int
          ) -> list[dict]:
    """images.csv rows of one pool's queries (PNGs written)."""
    rows = []
    for u, unit in enumerate(units):
        for difficulty, sides in picks.items():
            for side in ("max", "min"):
                indices, values = sides[side][0][u], sides[side][1][u]
                order = np.random.RandomState(seed).permutation(len(indices))
                for b in range(n_batches):
                    index = int(indices[order[b]])
                    role = f"query_{side}"
                    rows.append({
                        "image_id": f"{image_id(unit.model, unit.layer, unit.channel, 'natural', role, b, 0, difficulty)}.{label}",
                        "unit_id": unit.unit_id, "kind": "natural", "role": role, "batch": b,
                        "rank": 0, "activation": f"{float(values[order[b]]):.9g}",
                        "path": _write_query(out, label, index, files[index], shift, prep, size),
                        "difficulty": difficulty, "distribution": label,
                        "source": _relative_source(files[index], source)})
    return rows


def add_shifted_queries(set_dir: str | Path, shifts: Iterable[str] = (),
                        domains: dict[str, str] | None = None, images: str | None = None,
                        pretrained: bool = True, weights_path: str | None = None,
                        device: str = "cpu", batch_size: int = 64, workers: int = 2,
                        skip_unreadable: bool = False, progress: bool = True,
                        command: str = "") -> Path:
    """Add (or redo) the queries of each shifted pool and domain to a built set; interrupted
    mining resumes from `_work/queries/`. `images` overrides the manifest's image source (a
    set moved to another machine). Returns the set folder, valid as before."""
    from stimuli.mining import (
        MiningConfig,
        merge_shards,
        mine_shard,
        percentile_start,
        window_picks,
    )
    from stimuli.registry import get_spec, load_model

    out = Path(set_dir)
    stimulus_set = load_stimulus_set(out, verify_hashes=False)
    manifest = stimulus_set.manifest
    params = manifest["parameters"]
    n_batches, n_bins, seed = int(params["n_batches"]), int(params["n_bins"]), \
        int(params.get("batching_seed", manifest["seed"]))
    k = n_batches * n_bins
    source = images or manifest["dataset"]["source"]
    pools = _pools(shifts, dict(domains or {}), int(manifest["seed"]), source)
    difficulties = list(params.get("difficulties") or ["easy"])
    spec = get_spec(manifest["model"])
    model = load_model(manifest["model"], pretrained=pretrained, weights_path=weights_path,
                       device=device)
    weights = weights_path or manifest["weights"]
    units = [Unit(r.model, r.layer, int(r.channel)) for r in stimulus_set.units.itertuples()]
    cfg = MiningConfig(k=k, batch_size=batch_size, workers=workers, device=device,
                       skip_unreadable=skip_unreadable)
    starts = {d: (lambda n, lo=(n_bins - 1) * n_batches: lo) if d == "easy"
              else percentile_start(PERCENTILES[d], n_batches) for d in difficulties}
    records = dict(manifest.get("query_distributions") or {})
    by_pool: dict[str, list[dict]] = {}
    for label, (pool_source, shift) in pools.items():
        files = [str(p) for p in list_images(pool_source)]
        own = _own_images(stimulus_set.images, files, source) if shift is not None else {}
        exclude = [own.get(u.unit_id, np.zeros(0, np.int64)) for u in units]
        usable = len(files) - max((len(e) for e in exclude), default=0)
        if usable < 2 * k:
            raise StimuliError(f"{label}: {usable} usable images in {pool_source} are too few "
                               f"for {n_batches} batches' queries from {n_bins} bins per side "
                               f"(need {2 * k})")
        available_difficulties(usable, k, n_batches, [d for d in difficulties if d != "easy"])
        work = out / WORK / QUERIES / slug(label)
        mine_shard(model, spec, weights, units, files, work, cfg, (0, 1), progress, shift)
        result = merge_shards(work, 1, [u.unit_id for u in units], files)
        picks = window_picks(result, starts, n_batches, exclude)
        by_pool[label] = _rows(out, label, units, picks, files, shift, pool_source,
                          spec.preprocessing, stimulus_set.image_size, n_batches, seed)
        records[label] = {**(shift.describe() if shift is not None else {"domain": pool_source}),
                          "images": pool_source, "size": len(files),
                          "unreadable_skipped": len(result.bad),
                          "excluded": ("each unit's own natural images" if shift is not None
                                       else "none"),
                          "difficulties": difficulties, "device": _device_record(device),
                          "command": command or " ".join(sys.argv)}
    rows: dict[str, list[dict]] = {}
    for row in _read_rows(out / IMAGES_CSV):
        rows.setdefault(row.get("distribution") or IN_DISTRIBUTION, []).append(row)
    rows.update(by_pool)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["query_distributions"] = dict(sorted(records.items()))
    ordered = rows.pop(IN_DISTRIBUTION) + [r for label in sorted(rows) for r in rows[label]]
    write_tables(out, manifest, _read_rows(out / UNITS_CSV), ordered)
    return out
