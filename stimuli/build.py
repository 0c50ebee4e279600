"""sample -> mine -> render -> write: a ready stimulus set, resumable (torch).

Work files live in `<out>/_work/` (units.json, files.json, mining/, render/); every step skips
what is already there, so an interrupted build resumes where it stopped. The finished set is the
rest of `<out>` and passes `experiments.stimulus_set.load_stimulus_set(..., verify_hashes=True)`.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stimulus_set.writer import (
    image_id,
    save_png,
    unit_slug,
    write_natural,
    write_tables,
)
from stimuli.batching import PERCENTILES, available_difficulties, plan_unit
from stimuli.errors import StimuliError
from stimuli.images import CROP, histogram_correlation, list_images, load_shown
from stimuli.provenance import versions
from stimuli.registry import get_spec, load_model
from stimuli.sampling import Unit, load_units, parse_units, sample_units, save_units
from stimuli.schedules import beats_target

WORK = "_work"


def _work(out_dir: str | Path) -> Path:
    work = Path(out_dir) / WORK
    work.mkdir(parents=True, exist_ok=True)
    return work


def _save_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)


def env_shard() -> tuple[int, int] | None:
    """(rank, world size) from torchrun's environment, or None outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def env_device(device: str) -> str:
    """Under torchrun, `cuda` means this process's GPU (LOCAL_RANK)."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def load(model_name: str, pretrained: bool, weights_path: str | None, device: str):
    """(spec, model, weights id) for a registered model."""
    spec = get_spec(model_name)
    model = load_model(model_name, pretrained=pretrained, weights_path=weights_path, device=device)
    weights = weights_path or (spec.weights if pretrained else "random init")
    return spec, model, weights


def prepare_units(model_name: str, out_dir: str | Path, n_units: int | None = None,
                  units: list[str] | None = None, seed: int = 42, model=None,
                  pretrained: bool = True, weights_path: str | None = None,
                  layers: str | None = None) -> list[Unit]:
    """Sample (or check an explicit list of) units once and store them in `<out>/_work/units.json`.
    `layers`: sample only from the relevant layers this regular expression fully matches."""
    from stimuli.layers import layer_depths, layer_widths, relevant_layers

    path = _work(out_dir) / "units.json"
    if path.is_file():
        stored, meta = load_units(path)
        if meta.get("model") != model_name:
            raise StimuliError(f"{out_dir} holds units of model {meta.get('model')}, not "
                               f"{model_name}; use another output folder")
        return stored
    spec = get_spec(model_name)
    model = model if model is not None else load_model(model_name, pretrained=False)
    relevant = relevant_layers(model, spec)
    widths = layer_widths(model, spec, relevant)
    if units:
        extra = [u.rpartition(":")[0] for u in units]
        other = [layer for layer in extra if layer not in widths]
        if other:
            from stimuli.layers import resolve_module

            for layer in other:
                resolve_module(model, layer, spec)
            widths_all = layer_widths(model, spec, other)
        else:
            widths_all = {}
        chosen = parse_units(model_name, units, widths, widths_all)
        how = {"method": "explicit"}
    else:
        if n_units is None:
            raise StimuliError("give a number of units to sample or a list of units")
        pool = widths
        if layers:
            pool = {layer: w for layer, w in widths.items() if re.fullmatch(layers, layer)}
            if not pool:
                names = list(widths)
                raise StimuliError(f"--layers {layers!r} matches none of {model_name}'s "
                                   f"{len(names)} relevant layers ({names[0]} ... {names[-1]})")
        chosen = sample_units(model_name, pool, n_units, seed)
        how = {"method": "imi two-stage (layer uniform, then channel)", "seed": seed,
               "n": n_units, **({"layers": layers} if layers else {})}
    depth = layer_depths(relevant)
    save_units(path, chosen, {"model": model_name, "sampling": how, "relevant_layers": relevant,
                              "widths": widths, "layer_position": depth})
    return chosen


def prepare_files(image_source: str | Path, out_dir: str | Path) -> list[str]:
    """List the images once (sorted) and store the list in `<out>/_work/files.json`."""
    path = _work(out_dir) / "files.json"
    files = [str(p) for p in list_images(image_source)]
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored["files"] != files:
            raise StimuliError(f"{out_dir} was started on a different image list; use another "
                               f"output folder")
        return files
    _save_json(path, {"source": str(image_source), "files": files})
    return files


@dataclass(frozen=True)
class BuildOptions:
    """How `build_stimulus_set` samples, mines, renders and writes (the CLI's options).

    `render_steps=None` uses IMI's schedule (cap 20,000, plateau stop after 2,500); a number
    caps it, and a cap below 2,500 runs exactly that many steps (RenderSchedule.for_steps);
    `min_steps`, `plateau_window` and `smoothing` change the rest of the stopping rule;
    `schedule_name="cpu"` starts from the CPU schedule and its shorter alpha search instead
    (`max_exponent`/`binary_steps` None: the schedule's); `diversity_layers` compares the diverse
    images' Gram matrices at those layers ("unit": each unit's own; none: IMI's, the unit's
    own alone), the penalty the mean of theirs (checked before mining).
    `forward_batch`, `pass_images` and `channels_last` (None: one job per forward pass in
    passes of 2 images, channels-last, on the CPU; the whole optimisation batch on a GPU) are
    recorded; mining runs channels-last unless `channels_last` is False.
    `difficulties=None` adds every percentile query pair the image count allows.
    `decode="torchvision"` decodes JPEGs in batches on `device` (nvJPEG on a GPU).
    `command` (the CLI's command line) is recorded in the manifest with the device.
    """

    n_units: int | None = 10
    units: list[str] | None = None
    seed: int = 42
    pretrained: bool = True
    weights_path: str | None = None
    n_batches: int = 20
    n_bins: int = 10
    difficulties: list[str] | None = None
    render: bool = True
    render_steps: int | None = None
    min_steps: int | None = None
    plateau_window: int | None = None
    smoothing: float | None = None
    n_diverse: int = 8
    alpha: float | None = None
    max_exponent: int | None = None
    binary_steps: int | None = None
    diversity_layers: tuple[str, ...] = ()
    schedule_name: str = "imi"
    max_render_batch: int = 64
    forward_batch: int | None = None
    pass_images: int | None = None
    channels_last: bool | None = None
    device: str = "cpu"
    batch_size: int | None = None  # None: the device's (stimuli.mining.mining_batch)
    workers: int = 2
    store_activations: bool = True
    skip_unreadable: bool = False
    decode: str = "pil"
    name: str | None = None
    layers: str | None = None
    image_size: int = CROP
    progress: bool = True
    command: str | None = None


def build_stimulus_set(model_name: str, image_source: str | Path, out_dir: str | Path,
                       options: BuildOptions | None = None) -> Path:
    """Run sample -> mine -> render -> write for one model as `options` say (BuildOptions);
    resume partial work in out_dir. Returns the set folder."""
    from stimuli.cpu import steady_allocator
    from stimuli.layers import check_diversity_layers
    from stimuli.mining import (
        MiningConfig,
        earlier_channels_last,
        merge_shards,
        mine_shard,
        mining_batch,
    )
    from stimuli.render import schedule_for, search_for

    o = options or BuildOptions()
    steady_allocator()
    out = Path(out_dir)
    spec, model, weights = load(model_name, o.pretrained, o.weights_path, o.device)
    search = search_for(o.schedule_name, o.n_diverse, o.alpha, o.max_exponent, o.binary_steps,
                        o.diversity_layers)
    check_diversity_layers(model, spec, search.layers)  # stops before mining
    chosen = prepare_units(model_name, out, o.n_units, o.units, o.seed, model, layers=o.layers)
    files = prepare_files(image_source, out)
    k = o.n_bins * o.n_batches
    if len(files) < 2 * k:
        raise StimuliError(f"{len(files)} images are too few for {o.n_batches} batches of "
                           f"{o.n_bins - 1} references + 1 query per side (need {2 * k}): give "
                           f"more images or fewer batches (--n-batches "
                           f"{max(1, len(files) // (2 * o.n_bins))} fits)")
    cfg = MiningConfig(k=k, batch_size=mining_batch(o.batch_size, o.device), workers=o.workers,
                       device=o.device,
                       store_activations=o.store_activations, skip_unreadable=o.skip_unreadable,
                       decode=o.decode, channels_last=o.channels_last is not False)
    n_shards = finished_mining_shards(out)
    mining = out / WORK / "mining"
    mining.mkdir(parents=True, exist_ok=True)
    same_settings(mining / "settings.json", "finished mining shards",
                  {"k": k, "n_batches": o.n_batches, "n_bins": o.n_bins, "images": len(files),
                   "batch_size": cfg.batch_size, "channels_last": cfg.channels_last},
                  done=n_shards or 0, restart=mining,
                  before={"batch_size": 64, "channels_last": earlier_channels_last(o.device)})
    if n_shards is None:
        mine_shard(model, spec, weights, chosen, files, out / WORK, cfg, (0, 1), o.progress)
        n_shards = 1
    elif o.progress:
        print(f"reusing the finished mining of {len(files)} images in {mining}",
              file=sys.stderr)
    result = merge_shards(out / WORK, n_shards, [u.unit_id for u in chosen], files)
    schedule = schedule_for(o.schedule_name, o.render_steps, o.min_steps, o.plateau_window,
                            o.smoothing, o.max_render_batch, o.forward_batch, o.device,
                            o.pass_images, o.channels_last)
    if o.render:
        render_stage(model, spec, chosen, result, out, schedule, search, o.device, o.seed,
                     o.progress)
    params = {"n_batches": o.n_batches, "n_bins": o.n_bins, "k": k, "batching_seed": o.seed,
              "mining": {**{k_: v for k_, v in asdict(cfg).items() if k_ != "device"},
                         **_precision_record(cfg)},
              "render": ({**asdict(schedule), "schedule": schedule.name,
                          "schedule_base": o.schedule_name,
                          **search.record(), "engine": "interpsy"} if o.render else None),
              "command": o.command, "device": _device_record(o.device)}
    return write_set(out, spec, weights, chosen, result, params, o.difficulties, o.seed,
                     o.name or out.name, o.image_size, include_synthetic=o.render)


def _relative_source(file: str, source: str) -> str:
    """A natural image's file relative to the image source (folder, or a list file's folder)."""
    base = Path(source) if Path(source).is_dir() else Path(source).parent
    try:
        return Path(file).relative_to(base).as_posix()
    except ValueError:
        return Path(file).name


def _device_record(device: str) -> str:
    """The torch device, with the GPU's name on CUDA."""
    import torch

    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _precision_record(cfg) -> dict:
    """The arithmetic a mining pass used, for the manifest: float32 or the autocast dtype."""
    import torch

    from stimuli.mining import precision

    dtype, channels_last = precision(cfg, torch.device(cfg.device))
    return {"precision": str(dtype or torch.float32).removeprefix("torch."),
            "channels_last": channels_last}


def same_settings(path: Path, what: str, settings: dict, done: int, restart: Path,
                  before: dict | None = None) -> None:
    """Record the settings `done` saved results were made with; on a resume with other
    settings, refuse (naming each change and the folder to delete to start that stage over).
    `before`: settings added after builds were saved without them, at the value those builds
    used."""
    current = json.loads(json.dumps(settings, default=str))
    if path.is_file() and done:
        stored = {**(before or {}), **json.loads(path.read_text())}
        changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in current.items()
                   if stored.get(key) != value]
        if changed:
            raise StimuliError(f"{done} {what} in {restart} were made with other settings "
                               f"({'; '.join(changed)}): resume with the same settings, or "
                               f"delete {restart} to redo that stage (the rest is reused)")
        return
    _save_json(path, current)


def finished_mining_shards(out: str | Path) -> int | None:
    """n if `<out>/_work/mining` holds all n finished shards of one run, else None."""
    import re

    folder = Path(out) / WORK / "mining"
    counts: dict[int, set[int]] = {}
    for path in folder.glob("shard-*-of-*.pt"):
        match = re.fullmatch(r"shard-(\d+)-of-(\d+)\.pt", path.name)
        if match:
            counts.setdefault(int(match[2]), set()).add(int(match[1]))
    complete = [n for n, done in counts.items() if done == set(range(n))]
    return max(complete) if complete else None


def step_budget(n_units: int, schedule, search) -> int:
    """The most optimisation steps a group of units can take: every round of the diversity
    search at its longest (one round with a fixed alpha), each optimisation batch
    `schedule.max_steps` steps."""
    from types import SimpleNamespace

    from stimuli.render import _chunks

    def batches(sizes: list[int]) -> int:
        return len(_chunks([SimpleNamespace(n=n) for n in sizes], schedule.max_batch))

    diverse = [search.n_diverse] * (2 * n_units)
    first = batches([search.n_plain] * (2 * n_units) + diverse)  # round 1 renders the plain too
    return (first + (search.rounds - 1) * batches(diverse)) * schedule.max_steps


def render_stage(model, spec, chosen: list[Unit], result, out: Path, schedule, search,
                 device: str, seed: int, progress: bool, shard: tuple[int, int] = (0, 1)
                 ) -> None:
    """Render every unit of this shard that has no saved result yet (`<out>/_work/render/`)
    with the diversity search `search` (stimuli.render.DiversitySearch)."""
    from stimuli.render import UnitTarget, render_units

    folder = _work(out) / "render"
    folder.mkdir(exist_ok=True)
    # a group's alpha-search checkpoint counts too: its rounds were made with these settings
    started = len(list(folder.glob("unit-*.npz"))) + len(list(folder.glob("group-*.search.pkl")))
    same_settings(folder / "settings.json", "rendered units or started groups",
                  {**asdict(schedule), **search.record(), "seed": seed},
                  done=started, restart=folder, before={"pass_images": 0, "channels_last": False})
    mine = [i for i in range(len(chosen)) if i % shard[1] == shard[0]]
    done = {i for i in mine if (folder / f"unit-{i:05d}.npz").is_file()}
    if done and progress:
        print(f"reusing {len(done)} rendered units in {folder}", file=sys.stderr)
    per_round = max(1, schedule.max_batch // (2 * (search.n_diverse + search.n_plain)))
    # groups are cut from all of the shard's units, so a resumed run renders each unit in the
    # same group as an uninterrupted one (a group killed between two unit files runs again)
    groups = [mine[first: first + per_round] for first in range(0, len(mine), per_round)]
    from tqdm.auto import tqdm

    todo = [group for group in groups if not set(group) <= done]
    allotted = {group[0]: step_budget(len(group), schedule, search) for group in todo}
    # every step of every round counts from the first one, so the ETA shows from the start:
    # an upper bound (each search at its longest), topped up as rounds and groups end early
    budget = tqdm(total=sum(allotted.values()), disable=not (progress and todo), unit="step",
                  desc=f"{spec.name}: all units, step budget (ETA at most)", position=1)
    bar = tqdm(total=len(mine) - len(done), disable=not progress,
               desc=f"rendering {spec.name}", unit="unit")
    for group in todo:
        used = [0]

        def on_step(n: int, used: list[int] = used) -> None:
            used[0] += n
            budget.update(n)

        checkpoint = folder / f"group-{group[0]:05d}.search.pkl"  # the alpha search's rounds
        targets = [UnitTarget(chosen[i].layer, chosen[i].channel,
                              float(result.top_values[i, 0]), float(result.bottom_values[i, 0]),
                              i) for i in group]
        visuals = render_units(model, spec, targets, schedule, search, device, seed, progress,
                               checkpoint, on_step)
        budget.update(max(0, allotted[group[0]] - used[0]))
        for i, visual in zip(group, visuals):
            payload = {}
            meta = {}
            for side in ("max", "min"):
                record = visual.results[side]
                payload[f"{side}_plain"] = record["plain"].images
                payload[f"{side}_plain_act"] = record["plain"].activations
                payload[f"{side}_diverse"] = record["diverse"].images
                payload[f"{side}_diverse_act"] = record["diverse"].activations
                meta[side] = {"alpha": record["alpha"], "beats": record["beats"],
                              "fallback_non_diverse": record["fallback_non_diverse"],
                              "target": record["target"], "tried": record["tried"],
                              "steps_plain": record["plain"].steps,
                              "plain_candidates": record["plain_candidates"],
                              "steps_diverse": record["diverse"].steps}
            tmp = folder / f"unit-{i:05d}.tmp.npz"
            np.savez(tmp, meta=json.dumps(meta), unit=chosen[i].unit_id, **payload)
            tmp.replace(folder / f"unit-{i:05d}.npz")
        checkpoint.unlink(missing_ok=True)
        bar.update(len(set(group) - done))
    bar.close()
    budget.close()


def write_set(out: Path, spec, weights: str, chosen: list[Unit], result, params: dict,
              difficulties: list[str] | None, seed: int, name: str, image_size: int,
              include_synthetic: bool) -> Path:
    """Plan the batches and write PNGs, tables and manifest into `out`."""
    from stimuli.mining import percentile_picks

    n_batches, k = params["n_batches"], params["k"]
    units_meta = json.loads((out / WORK / "units.json").read_text())
    chosen_difficulties = (available_difficulties(result.n_valid, k, n_batches, difficulties)
                           if result.has_activations() else [])
    picks = (percentile_picks(result, {d: PERCENTILES[d] for d in chosen_difficulties}, n_batches)
             if chosen_difficulties else {})
    image_rows: list[dict] = []
    unit_rows: list[dict] = []
    skipped = []
    dataset_source = json.loads((out / WORK / "files.json").read_text())["source"]
    for u, unit in enumerate(chosen):
        unit_picks = {d: {side: (picks[d][side][0][u], picks[d][side][1][u])
                          for side in ("max", "min")} for d in picks}
        image_rows += _natural_rows(out, spec, unit, u, result, params, seed, unit_picks,
                                    dataset_source, image_size)
        fv = dict.fromkeys(_RenderedUnit.COLUMNS, "")
        if include_synthetic:
            render = _RenderedUnit.load(out, unit, u)
            image_rows += render.write(out, unit, image_size)
            fv = render.columns()
            if not fv["fv_beats_natural"]:
                skipped.append(unit.unit_id)
        unit_rows.append(_unit_row(spec, unit, u, result, units_meta.get("layer_position", {}),
                                   fv))
    manifest = {
        "name": name, "model": spec.name, "weights": weights, "image_size": image_size,
        "layers": sorted({u.layer for u in chosen}),
        "units": [u.unit_id for u in chosen],
        "dataset": {"source": dataset_source,
                    "size": len(result.files), "unreadable_skipped": len(result.bad),
                    "preprocessing": spec.preprocessing.describe()},
        "parameters": {**params, "difficulties": ["easy"] + chosen_difficulties,
                       "sampling": units_meta.get("sampling"),
                       "image_id_scheme": "{model}.{layer}.c{channel}.{n|s}.b{batch}.{role}"},
        "model_facts": spec.facts(),
        "skipped_units": skipped,
        "versions": versions(),
        "seed": seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_tables(out, manifest, unit_rows, image_rows)


def _natural_rows(out: Path, spec, unit: Unit, u: int, result, params: dict, seed: int,
                  unit_picks: dict, dataset_source: str, image_size: int) -> list[dict]:
    """The unit's natural images planned into batches and written (image rows)."""
    rows = plan_unit(unit.unit_id, (result.top_indices[u], result.top_values[u]),
                     (result.bottom_indices[u], result.bottom_values[u]), params["n_batches"],
                     params["n_bins"], seed, unit_picks)
    for row in rows:
        index = row.pop("image_index")
        source = result.files[index]
        row.update(kind="natural",
                   path=write_natural(out, index, partial(load_shown, source,
                                                          spec.preprocessing), image_size),
                   source=_relative_source(result.files[index], dataset_source))
        row["image_id"] = image_id(unit.model, unit.layer, unit.channel, "natural",
                                   row["role"], row["batch"], row["rank"], row["difficulty"])
    return rows


@dataclass
class _RenderedUnit:
    """A unit's saved render (`_work/render/unit-NNNNN.npz`): images, activations, record."""

    # its columns in units.csv (steps: plain = rank 0, diverse = ranks 1..)
    COLUMNS = ("fv_activation", "fv_min_activation", "fv_alpha_max", "fv_alpha_min",
               "fv_beats_natural", "fv_histogram_corr_max", "fv_histogram_corr_min",
               "fv_steps_max", "fv_steps_min", "fv_steps_diverse_max", "fv_steps_diverse_min")

    data: Any
    meta: dict

    @classmethod
    def load(cls, out: Path, unit: Unit, u: int) -> _RenderedUnit:
        render_file = out / WORK / "render" / f"unit-{u:05d}.npz"
        if not render_file.is_file():
            raise StimuliError(f"unit {unit.unit_id} has no rendered visualizations yet; run "
                               f"`interpsy stimuli render` for all shards first")
        data = np.load(render_file)
        return cls(data, json.loads(str(data["meta"])))

    def columns(self) -> dict[str, Any]:
        """Its `COLUMNS` of units.csv. It beats the exemplars when both sides' diverse images do:
        from the images shown, whatever the render's record says; the histogram correlation
        says how alike one side's diverse images look (colours; 1 = the same)."""
        data, meta = self.data, self.meta
        return {
            "fv_activation": float(data["max_plain_act"][0]),
            "fv_min_activation": float(data["min_plain_act"][0]),
            "fv_alpha_max": meta["max"]["alpha"], "fv_alpha_min": meta["min"]["alpha"],
            "fv_beats_natural": all(beats_target(side, data[f"{side}_diverse_act"],
                                                 meta[side]["target"]) for side in ("max", "min")),
            **{f"fv_histogram_corr_{side}": round(histogram_correlation(data[f"{side}_diverse"]), 4)
               for side in ("max", "min")},
            **{f"fv_steps{kind}_{side}": meta[side].get(f"steps{key}", "")
               for kind, key in (("", "_plain"), ("_diverse", "_diverse"))
               for side in ("max", "min")}}

    def write(self, out: Path, unit: Unit, image_size: int) -> list[dict]:
        """Write each side's plain (rank 0) and diverse images as PNGs (image rows)."""
        rows = []
        for side in ("max", "min"):
            images = [self.data[f"{side}_plain"][0]] + list(self.data[f"{side}_diverse"])
            acts = [float(self.data[f"{side}_plain_act"][0])] + list(
                map(float, self.data[f"{side}_diverse_act"]))
            for rank, (pixels, act) in enumerate(zip(images, acts)):
                slug = unit_slug(unit.model, unit.layer, unit.channel)
                rel = f"images/synthetic/{slug}/{side}{rank}.png"
                if pixels.shape[0] != image_size:
                    from PIL import Image

                    pixels = np.asarray(Image.fromarray(pixels).resize((image_size,) * 2))
                save_png(pixels, out / rel)
                rows.append({
                    "image_id": image_id(unit.model, unit.layer, unit.channel, "synthetic",
                                         f"reference_{side}", 0, rank),
                    "unit_id": unit.unit_id, "kind": "synthetic",
                    "role": f"reference_{side}", "batch": 0, "rank": rank,
                    "activation": act, "path": rel, "difficulty": ""})
        return rows


def _unit_row(spec, unit: Unit, u: int, result, depth: dict, fv: dict[str, Any]) -> dict:
    """The unit's row of units.csv, its render's columns `fv` (blank without a render)."""
    return {
        "unit_id": unit.unit_id, "model": unit.model, "layer": unit.layer,
        "channel": unit.channel, "reduction": "mean over " + (
            "tokens" if spec.layout(unit.layer) == "tokens" else "space"),
        "layer_position": depth.get(unit.layer, ""),
        "top_natural_activation": float(result.top_values[u, 0]),
        "bottom_natural_activation": float(result.bottom_values[u, 0]), **fv,
        "layout": spec.layout(unit.layer), **spec.unit_facts(unit.layer, unit.channel)}


