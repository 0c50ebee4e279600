"""Feature visualizations per minute: N units batched (own engine) vs one at a time via lucent.

    .venv/bin/python benchmarks/bench_fv.py --units 4 --steps 30 --device cpu
Both engines run the same number of steps per visualization; prints visualizations/min,
the speed ratio and the final activations each reached (max objective, non-diverse).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from stimuli.build import load
    from stimuli.layers import layer_widths, relevant_layers
    from stimuli.lucent_engine import render_lucent
    from stimuli.render import Job, RenderSchedule, render_jobs
    from stimuli.sampling import sample_units

    spec, model, _ = load(args.model, True, None, args.device)
    widths = layer_widths(model, spec, relevant_layers(model, spec))
    units = [u for u in sample_units(args.model, widths, 4 * args.units, seed=42)
             if not u.layer.endswith(":input")][: args.units]
    schedule = RenderSchedule(max_steps=args.steps, min_steps=args.steps, max_batch=256)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    # warm-up both engines (one-time kernel initialisation is not throughput)
    render_jobs(model, spec, [Job(u.layer, u.channel, 1) for u in units],
                RenderSchedule(max_steps=2, min_steps=2, max_batch=256), args.device)
    render_lucent(model, spec, units[0].layer, units[0].channel, steps=2)
    sync(); t = time.perf_counter()
    ours = render_jobs(model, spec, [Job(u.layer, u.channel, 1, seed=i)
                                     for i, u in enumerate(units)], schedule, args.device)
    sync(); ours_s = time.perf_counter() - t
    sync(); t = time.perf_counter()
    theirs = [render_lucent(model, spec, u.layer, u.channel, steps=args.steps, seed=i)
              for i, u in enumerate(units)]
    sync(); theirs_s = time.perf_counter() - t

    ours_acts = np.array([r.activations[0] for r in ours])
    theirs_acts = np.array([r.activations[0] for r in theirs])
    print(f"device: {args.device}, model {args.model}, {len(units)} units, {args.steps} steps "
          f"each, 224 px (256 px parameters)")
    print(f"own engine, batched   : {len(units) / ours_s * 60:8.2f} vis/min  ({ours_s:.1f} s)")
    print(f"lucent, one at a time : {len(units) / theirs_s * 60:8.2f} vis/min  ({theirs_s:.1f} s)")
    print(f"ratio batched/lucent = {theirs_s / ours_s:.2f}")
    for u, a, b in zip(units, ours_acts, theirs_acts):
        print(f"  {u.unit_id:40s} own {a:8.3f}   lucent {b:8.3f}")
    print(f"mean final activation: own {ours_acts.mean():.3f}  lucent {theirs_acts.mean():.3f}  "
          f"(own >= lucent on {int((ours_acts >= theirs_acts).sum())}/{len(units)} units)")


if __name__ == "__main__":
    main()
