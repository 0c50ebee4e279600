"""Feature visualizations per minute: N units batched (own engine) vs one at a time via lucent.

    .venv/bin/python benchmarks/bench_fv.py --units 4 --steps 20 --device cpu
    .venv/bin/python benchmarks/bench_fv.py --device cuda --units 64 --steps 200 \\
        --append benchmarks/RESULTS_stimuli.md

Both engines run the same number of steps per visualization (max objective, no diversity, IMI's
transforms, 256 px parameters, 224 px results) after an untimed warm-up of each, every unit
seeded alike as IMI seeded them (the same initial spectrum and transform draws in both engines:
they differ by float rounding only). Prints
visualizations/min of each, the speed ratio, peak memory (CUDA: `torch.cuda.max_memory_allocated`
per engine) and the final activation each engine reached per unit, then a markdown block;
`--append FILE` appends that block to FILE. Targets (issue 3, GPU): batched >= 10x lucent, with
final activations as high (mean own >= mean lucent - 5 % of its size; per unit, Adam carries the
rounding differences either way).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_mining import device_name, markdown_block, publish, steady_cpu

TARGET_RATIO = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--append", default=None, help="Append the markdown block to this file.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU default: cores - 1, >= 1).")
    parser.add_argument("--glibc-default-malloc", action="store_true",
                        help="Leave glibc's mmap threshold alone (CPU runs page-fault per batch).")
    return parser.parse_args()


def timed(device: torch.device, work):
    """(result, seconds, peak MiB or NaN on the CPU) of work()."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return result, seconds, (torch.cuda.max_memory_allocated(device) / 2**20 if cuda
                             else float("nan"))


def main() -> None:
    args = parse_args()
    command = "python benchmarks/bench_fv.py " + shlex.join(sys.argv[1:])
    cpu_settings = steady_cpu(args)
    from stimuli.build import load
    from stimuli.layers import layer_widths, relevant_layers
    from stimuli.lucent_engine import render_lucent
    from stimuli.render import Job, RenderSchedule, render_jobs
    from stimuli.sampling import sample_units

    device = torch.device(args.device)
    spec, model, _ = load(args.model, True, None, args.device)
    widths = layer_widths(model, spec, relevant_layers(model, spec))
    units = [u for u in sample_units(args.model, widths, min(4 * args.units, sum(widths.values())),
                                     seed=42) if not u.layer.endswith(":input")][: args.units]
    # all units in one forward pass on a GPU (the one-forward renderer), one per pass on a CPU
    batched = dict(max_batch=4096, forward_batch=0 if device.type == "cpu" else 4096)
    schedule = RenderSchedule(max_steps=args.steps, min_steps=args.steps, **batched)
    jobs = [Job(u.layer, u.channel, 1) for u in units]

    # warm-up both engines (one-time kernel initialisation is not throughput)
    render_jobs(model, spec, jobs, RenderSchedule(max_steps=2, min_steps=2, **batched),
                args.device)
    render_lucent(model, spec, units[0].layer, units[0].channel, steps=2)
    ours, ours_s, ours_mem = timed(device, lambda: render_jobs(model, spec, jobs, schedule,
                                                               args.device))
    theirs, theirs_s, theirs_mem = timed(device, lambda: [
        render_lucent(model, spec, u.layer, u.channel, steps=args.steps) for u in units])

    ours_acts = np.array([r.activations[0] for r in ours])
    theirs_acts = np.array([r.activations[0] for r in theirs])
    ratio = theirs_s / ours_s
    higher = int((ours_acts >= theirs_acts).sum())
    name = device_name(device) + (f" ({cpu_settings})" if device.type == "cpu" else "")
    print(f"device: {args.device} ({name}); model {args.model}; {len(units)} units; {args.steps} "
          f"steps each; 224 px (256 px parameters)")
    print(f"own engine, batched   : {len(units) / ours_s * 60:8.2f} vis/min  ({ours_s:.1f} s, "
          f"peak {ours_mem:.0f} MiB)")
    print(f"lucent, one at a time : {len(units) / theirs_s * 60:8.2f} vis/min  ({theirs_s:.1f} s, "
          f"peak {theirs_mem:.0f} MiB)")
    for u, a, b in zip(units, ours_acts, theirs_acts):
        print(f"  {u.unit_id:40s} own {a:8.3f}   lucent {b:8.3f}")
    speed = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    as_high = ours_acts.mean() >= theirs_acts.mean() - 0.05 * abs(theirs_acts.mean())
    quality = "PASS" if as_high else "FAIL"
    print(f"ratio batched/lucent = {ratio:.2f} (target >= {TARGET_RATIO:.0f}: {speed}); final "
          f"activation own >= lucent on {higher}/{len(units)} units; mean own "
          f"{ours_acts.mean():.3f} vs lucent {theirs_acts.mean():.3f} ({quality})")
    header = ["model", "units", "steps", "own vis/min", "lucent vis/min", "ratio",
              "peak MiB own / lucent", "own >= lucent (final activation)",
              "mean activation own / lucent (as high?)"]
    row = [args.model, len(units), args.steps, f"{len(units) / ours_s * 60:.2f}",
           f"{len(units) / theirs_s * 60:.2f}",
           f"{ratio:.2f}x ({speed} >= {TARGET_RATIO:.0f}x)", f"{ours_mem:.0f} / {theirs_mem:.0f}",
           f"{higher}/{len(units)}",
           f"{ours_acts.mean():.3f} / {theirs_acts.mean():.3f} ({quality})"]
    title = f"### bench_fv, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.device}: {name}"
    block = markdown_block(title, command, header, row)
    publish(block, args.append)


if __name__ == "__main__":
    main()
