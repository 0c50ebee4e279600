"""The renderer's cost on one unit against the model's own forward+backward and against lucent.

    .venv/bin/python benchmarks/bench_render.py --steps 20
    .venv/bin/python benchmarks/bench_render.py --device cuda --steps 50 \\
        --append benchmarks/RESULTS_stimuli.md

One unit's first alpha round, as a build renders it: 9 non-diverse and 8 diverse images per
side (34 images, IMI's transforms, 256 px parameters). Each measurement runs in a fresh process
so its peak resident memory (CPU) or peak allocated memory (CUDA) is its own; `--repeats` rounds
run the modes back to back, so each round's ratios compare runs minutes apart on a machine whose
speed drifts, and the figures are the rounds' medians:

- `interpsy`: `render_jobs` at the chosen forward batch and pass images (default: the
  device's: on the CPU one job per pass, cut into passes of 2 images), seconds per step;
- `model`: the model's own forward and backward on the same forward passes of random 256 px
  images (gradient to the input, through the whole network), seconds per step; the target is
  interpsy <= 1.3x this;
- `model, channels-last`: the same in the renderer's channels-last memory format (the CPU
  default), so the ratio to it is the renderer's own overhead beyond the faster layout;
- `lucent`: torch-lucent 0.1.8 rendering the same 34 images job by job (n images per call),
  seconds per step summed over the jobs (lucent cannot batch two jobs).

The demo's target (issue 27): peak resident memory under 2 GB on the CPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMORY_TARGET_MB = 2048
TIME_TARGET = 1.3
JOBS = [(1, 9, 0.0), (-1, 9, 0.0), (1, 8, 1.0), (-1, 8, 1.0)]  # sign, images, alpha


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--layer", default="_blocks.13._bn1", help="A demo layer.")
    parser.add_argument("--channel", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forward-batch", type=int, default=None,
                        help="Images per forward pass, whole jobs (default: the device's).")
    parser.add_argument("--pass-images", type=int, default=None,
                        help="A job's images per forward pass (default: the device's).")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="The renderer's memory format (default: the device's).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Rounds of interpsy and the model's own pass, one after the other "
                             "(lucent in the first only); ratios are per round, then medians.")
    parser.add_argument("--skip-lucent", action="store_true")
    parser.add_argument("--glibc-default-malloc", action="store_true",
                        help="Leave glibc's mmap and trim thresholds alone (builds raise them).")
    parser.add_argument("--append", default=None, help="Append the markdown block to this file.")
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pass_sizes(jobs, schedule) -> list[int]:
    """The images of each forward pass the renderer runs per step (with gradient)."""
    from stimuli.render import _forward_passes, job_rows

    layouts = dict.fromkeys({job.layer for job in jobs}, "channels_first")
    return [p.rows.stop - p.rows.start
            for p in _forward_passes(jobs, job_rows(jobs), layouts, schedule, "cpu")]


def measure(args: argparse.Namespace) -> dict:
    """One mode's seconds per step and peak memory, in this process."""
    import torch

    from stimuli.cpu import steady_allocator
    from stimuli.lucent_engine import render_lucent
    from stimuli.registry import get_spec, load_model
    from stimuli.render import Job, render_jobs, schedule_for

    if not args.glibc_default_malloc:
        steady_allocator()
    device = torch.device(args.device)
    spec, model = get_spec(args.model), load_model(args.model, device=args.device)
    jobs = [Job(args.layer, args.channel, sign, n, alpha, seed=i)
            for i, (sign, n, alpha) in enumerate(JOBS)]
    schedule = schedule_for("cpu", args.steps, args.steps, None, None, 64, args.forward_batch,
                            args.device, args.pass_images, args.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if args.mode == "interpsy":
        render_jobs(model, spec, jobs, schedule_for("cpu", 2, 2, None, None, 64,
                                                    args.forward_batch, args.device,
                                                    args.pass_images, args.channels_last),
                    args.device)
        sync()
        start = time.perf_counter()
        render_jobs(model, spec, jobs, schedule, args.device)
    elif args.mode in ("model", "model-cl"):
        layout = torch.channels_last if args.mode == "model-cl" else torch.contiguous_format
        model.to(memory_format=layout)
        inputs = [torch.randn(n, 3, 256, 256, device=device) for n in pass_sizes(jobs, schedule)]

        def step() -> None:
            for x in inputs:
                x = x.clone().requires_grad_(True)
                model(x.contiguous(memory_format=layout)).sum().backward()
        step()
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
    else:
        render_lucent(model, spec, args.layer, args.channel, steps=2)
        sync()
        start = time.perf_counter()
        for job in jobs:
            render_lucent(model, spec, args.layer, args.channel, job.sign, steps=args.steps,
                          n=job.n, alpha=job.alpha)
    sync()
    return {"s_per_step": (time.perf_counter() - start) / args.steps,
            "peak_mb": _peak_mb(device), "forward_batch": schedule.forward_batch,
            "pass_images": schedule.pass_images, "channels_last": schedule.channels_last}


def _spread(values: list[float]) -> str:
    """Per-round ratios as printed: '1.21, 1.35, 1.28'."""
    return ", ".join(f"{v:.2f}" for v in values)


def run_mode(mode: str) -> dict:
    """A mode's figures from a fresh process."""
    out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.mode:
        print(json.dumps(measure(args)))
        return
    import torch

    from benchmarks.bench_mining import device_name, markdown_block, publish

    rounds = []  # a shared machine drifts: each round's modes run back to back
    for i in range(args.repeats):
        one = {"interpsy": run_mode("interpsy")}
        later = ["model"] + (["model-cl"] if one["interpsy"]["channels_last"] else []) + (
            [] if args.skip_lucent or i else ["lucent"])
        one.update({mode: run_mode(mode) for mode in later})
        rounds.append(one)
    figures = {mode: {"s_per_step": median([r[mode]["s_per_step"] for r in rounds if mode in r]),
                      "peak_mb": max(r[mode]["peak_mb"] for r in rounds if mode in r)}
               for mode in rounds[0]}
    ours = {**rounds[0]["interpsy"], **figures["interpsy"]}  # its settings, then the medians
    own = figures["model"]
    ratios = {base: [r["interpsy"]["s_per_step"] / r[base]["s_per_step"] for r in rounds]
              for base in ("model", "model-cl") if base in figures}
    ratio = median(ratios["model"])
    name = device_name(torch.device(args.device))
    print(f"device: {args.device} ({name}); {args.model} {args.layer}:{args.channel}; 34 images "
          f"(9 + 9 non-diverse, 8 + 8 diverse); {args.steps} steps; forward batch "
          f"{ours['forward_batch']} (0: one job per pass), pass images {ours['pass_images']} "
          f"(0: whole jobs); channels-last {'on' if ours['channels_last'] else 'off'}; "
          f"glibc thresholds "
          f"{'left at their defaults' if args.glibc_default_malloc else 'raised'}")
    for i, one in enumerate(rounds, 1):
        print(f"round {i}: " + "; ".join(f"{mode} {one[mode]['s_per_step']:.3f} s/step, peak "
                                         f"{one[mode]['peak_mb']:.0f} MiB" for mode in one))
    memory = "PASS" if ours["peak_mb"] < MEMORY_TARGET_MB else "FAIL"
    speed = "PASS" if ratio <= TIME_TARGET else "FAIL"
    print(f"interpsy / model forward+backward = {ratio:.2f}, median of {_spread(ratios['model'])}"
          f" (target <= {TIME_TARGET}: {speed}); peak {ours['peak_mb']:.0f} MiB (target < "
          f"{MEMORY_TARGET_MB}: {memory})")
    if "model-cl" in figures:
        print(f"interpsy / model forward+backward in channels-last = "
              f"{median(ratios['model-cl']):.2f}, median of {_spread(ratios['model-cl'])} (the "
              f"renderer's overhead beyond the faster layout)")
    header = ["model, unit", "steps", "forward batch, pass images, channels-last",
              "interpsy s/step (peak MiB)",
              "model fwd+bwd s/step (peak MiB)", "interpsy / model"]
    row = [f"{args.model} {args.layer}:{args.channel}", args.steps,
           f"{ours['forward_batch']}, {ours['pass_images']}, "
           f"{'on' if ours['channels_last'] else 'off'}",
           f"{ours['s_per_step']:.3f} ({ours['peak_mb']:.0f}, {memory} < {MEMORY_TARGET_MB})",
           f"{own['s_per_step']:.3f} ({own['peak_mb']:.0f})",
           f"{ratio:.2f} ({speed} <= {TIME_TARGET}; rounds {_spread(ratios['model'])})"]
    if "model-cl" in figures:
        cl = figures["model-cl"]
        header += ["model fwd+bwd channels-last s/step (peak MiB)", "interpsy / that"]
        row += [f"{cl['s_per_step']:.3f} ({cl['peak_mb']:.0f})",
                f"{median(ratios['model-cl']):.2f} (rounds {_spread(ratios['model-cl'])})"]
    if "lucent" in figures:
        theirs = figures["lucent"]
        mine = rounds[0]["interpsy"]["s_per_step"]  # lucent ran beside it
        print(f"lucent / interpsy time per step = {theirs['s_per_step'] / mine:.2f} (round 1)")
        header += ["lucent s/step (peak MiB)", "lucent / interpsy (round 1)"]
        row += [f"{theirs['s_per_step']:.3f} ({theirs['peak_mb']:.0f})",
                f"{theirs['s_per_step'] / mine:.2f}"]
    command = "python benchmarks/bench_render.py " + shlex.join(sys.argv[1:])
    title = f"### bench_render, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.device}: {name}"
    block = markdown_block(title, command, header, row)
    publish(block, args.append)


if __name__ == "__main__":
    main()
