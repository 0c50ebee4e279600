"""How alike one side's diverse visualizations look with the Gram diversity at other layers:
one unit's max or min side rendered with the CPU schedule (one pass per job, as the shipped
sets) per diversity layer and weight; prints the colour-histogram correlation, the activations
against the exemplar to beat and the time, and saves each render's images for a contact sheet.

    .venv/bin/python benchmarks/diversity_layer.py --layer _blocks.12._bn2 --channel 67 \\
        --side min --target -2.90 --key 1 --diversity unit --diversity _blocks.1._bn2 \\
        --diversity unit+_blocks.1._bn2 --alpha 1 --alpha 10 [--out /tmp/diversity]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stimuli.cpu import steady_allocator
from stimuli.images import histogram_correlation
from stimuli.registry import get_spec, load_model
from stimuli.render import Job, RenderSchedule, render_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--layer", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--side", choices=["max", "min"], default="min")
    parser.add_argument("--target", type=float, required=True,
                        help="The natural exemplar's activation the images must beat.")
    parser.add_argument("--key", type=int, default=0, help="The unit's key in its build.")
    parser.add_argument("--diversity", action="append", required=True,
                        help="A diversity layer ('unit': the unit's own), or several joined "
                             "by '+' (the mean of their penalties); repeatable.")
    parser.add_argument("--alpha", type=float, action="append", required=True)
    parser.add_argument("--n-diverse", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/diversity"))
    args = parser.parse_args()
    steady_allocator()
    spec, model = get_spec(args.model), load_model(args.model, True, None, "cpu").eval()
    sign = 1 if args.side == "max" else -1
    args.out.mkdir(parents=True, exist_ok=True)
    print("| diversity layer | alpha | histogram correlation | activations (target) | beats | "
          "steps | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for layer in args.diversity:
        for alpha in args.alpha:
            # the seed a build gives this unit's diverse job on this side (stimuli.render)
            job = Job(args.layer, args.channel, sign, args.n_diverse, alpha,
                      seed=4 * args.key + 2 + (sign < 0), target=args.target,
                      diversity_layers=tuple(layer.split("+")))
            started = time.monotonic()
            [result] = render_jobs(model, spec, [job], RenderSchedule.cpu(pass_images=0),
                                   seed=args.seed)
            acts = result.activations
            beats = bool(acts.min() > args.target) if sign > 0 else bool(acts.max() < args.target)
            print(f"| {layer} | {alpha:g} | {histogram_correlation(result.images):.3f} | "
                  f"{acts.min():.1f} to {acts.max():.1f} ({args.target:g}) | {beats} | "
                  f"{result.steps} | {time.monotonic() - started:.0f} |", flush=True)
            np.save(args.out / f"{args.side}-{layer}-{alpha:g}.npy", result.images)


if __name__ == "__main__":
    main()
