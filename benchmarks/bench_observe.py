"""Benchmark: `interpsy observe` (every image embedded once, batched, cached) against a naive loop
that embeds each trial's images again for every trial. Either on the trials of a built toy
experiment (an IMI-shaped design: practice and catch trials repeat across tasks, units across
conditions), or with --set on a real stimulus set: N trials per unit of every unit in it (e.g.
all units of a layer). Prints units scored per second and the ratio, side by side in one run.

    .venv/bin/python benchmarks/bench_observe.py [--backbone efficientnet-lite0] [--units 12]
        [--batches 4] [--responses 4] [--device cpu]
    .venv/bin/python benchmarks/bench_observe.py --set SET [--tasks-per-unit 20]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests' simulators

from experiments.db import Database
from experiments.study.build import build_experiment
from stimuli.observers.backbones import get_backbone
from stimuli.observers.embeddings import _load
from stimuli.observers.observers import get_observer
from stimuli.observers.run import ObserveOptions, observe
from stimuli.observers.trials import from_experiment, from_set
from tests.stimset import make_stimulus_set, write_spec


def naive(source, backbone, alpha: float) -> tuple[float, float]:
    """Each trial: load and embed its own images, then answer (no reuse across trials)."""
    observer, rng = get_observer("mis"), np.random.default_rng(0)
    t0 = time.perf_counter()
    scores = []
    for observed in source.trials:
        trial = observed.trial
        ids = source.task.image_ids(trial.stimulus)
        vectors = backbone.embed(torch.stack([_load(source.images[i]) for i in ids])).numpy()
        made = observer.answer(source.task, trial.stimulus, trial.answer_key,
                               dict(zip(ids, vectors)), alpha, rng)
        scores.append(made.p_correct)
    return time.perf_counter() - t0, float(np.mean(scores))


def _toy_experiment(root: Path, args: argparse.Namespace):
    set_dir = make_stimulus_set(root / "sets", n_units=args.units, n_batches=args.batches,
                                image_size=224)
    db = Database(f"sqlite:///{root / 'db.sqlite3'}")
    db.upgrade()
    spec = write_spec(root / "e.toml", [set_dir], name="bench", main_trials_per_task=8,
                      catch_trials_per_task=2, responses_per_unit=args.responses)
    key = build_experiment(spec, db).key
    db.dispose()
    return from_experiment(f"sqlite:///{root / 'db.sqlite3'}", key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--units", type=int, default=12)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", default=None, help="a stimulus set: N trials of each unit")
    parser.add_argument("--tasks-per-unit", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.set:
            source = from_set(args.set, trials_per_unit=args.tasks_per_unit)
            shutil.rmtree(Path(args.set) / "_embeddings", ignore_errors=True)  # a cold start
        else:
            source = _toy_experiment(root, args)
        n_units = len({o.trial.unit.unit_id for o in source.trials})
        shown = sum(len(source.task.image_ids(o.trial.stimulus)) for o in source.trials)
        options = ObserveOptions(backbone=args.backbone, alpha=8.0, device=args.device)
        t0 = time.perf_counter()
        fast = observe(source, root / "out", options, progress=False)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        observe(source, root / "again", options, progress=False)
        t_warm = time.perf_counter() - t0
        backbone = get_backbone(args.backbone, args.device)
        t_naive, naive_mis = naive(source, backbone, 8.0)
        device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                  else f"CPU ({torch.get_num_threads()} threads)")
        distinct = {source.images[i].sha256 for o in source.trials
                    for i in source.task.image_ids(o.trial.stimulus)}
        print(f"{source.experiment}: {len(source.trials)} trials of {n_units} units showing "
              f"{shown} images ({len(distinct)} distinct contents); backbone {args.backbone} on "
              f"{device}")
        print(f"observe (embed once, cached): {t_fast:7.1f} s  {n_units / t_fast:7.2f} units/s  "
              f"mean p_correct {fast.p_correct.mean():.4f}")
        print(f"observe again (cache warm):   {t_warm:7.1f} s  {n_units / t_warm:7.2f} units/s")
        print(f"naive (embed per trial):      {t_naive:7.1f} s  {n_units / t_naive:7.2f} units/s  "
              f"mean p_correct {naive_mis:.4f}")
        print(f"ratio (naive / observe): {t_naive / t_fast:.1f}x")


if __name__ == "__main__":
    main()
