"""The psychometric fit's m50 (analysis.calibration.fit_psychometric) at the calibration demo's
size: per condition 4 answers on each of the 5 mixing knobs, drawn from the planted curve of the
simulated participants, refitted with the lapse bounded at 0.5 (the old fit) and at
MAX_LAPSE; prints each bound's median, mean and the share of fits at either end of the knobs.

    .venv/bin/python benchmarks/psychometric_small.py [--datasets 300] [--per-knob 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import analysis.calibration as calibration
from experiments.simulated_participants import PLANTED_LAPSE, PLANTED_WIDTH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=300)
    parser.add_argument("--per-knob", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    m = np.repeat(np.linspace(0, 1, 5), args.per_knob)
    shipped = calibration.MAX_LAPSE
    print("| lapse bound | planted m50 | median | mean | share >= 0.9 | share < 0.1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for bound in (0.5, shipped):
        rng = np.random.default_rng(args.seed)
        calibration.MAX_LAPSE = bound
        for m50 in (0.35, 0.6):
            p = calibration.psychometric_p(m, m50, PLANTED_WIDTH, PLANTED_LAPSE)
            fits = np.array([calibration.fit_psychometric(m, rng.random(len(m)) < p)[0]
                             for _ in range(args.datasets)])
            print(f"| {bound} | {m50} | {np.median(fits):.2f} | {fits.mean():.2f} | "
                  f"{(fits >= 0.9).mean():.2f} | {(fits < 0.1).mean():.2f} |")
    calibration.MAX_LAPSE = shipped


if __name__ == "__main__":
    main()
