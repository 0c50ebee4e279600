"""The psychometric fit (analysis.calibration) at the calibration demo's size: per dataset 4
answers on each of the 5 mixing knobs, drawn from the simulated participants' planted curve
(or at chance everywhere), a share of them from careless people at chance; prints how often the
curve is resolved (it beats one constant accuracy, flat_test p < RESOLVED_P) and the resolved
fits' median m50.

    .venv/bin/python benchmarks/psychometric_small.py [--datasets 300] [--per-knob 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.calibration import RESOLVED_P, fit_psychometric, flat_test, psychometric_p
from experiments.simulated_participants import PLANTED_LAPSE, PLANTED_WIDTH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=300)
    parser.add_argument("--per-knob", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    m = np.repeat(np.linspace(0, 1, 5), args.per_knob)
    print("| planted m50 | careless share | resolved | median m50 of the resolved | "
          "interquartile range |")
    print("| --- | --- | --- | --- | --- |")
    for m50 in (None, 0.35, 0.6):
        for careless in (0.0, 0.25):
            rng = np.random.default_rng(args.seed)
            p = (np.full(len(m), 0.5) if m50 is None else
                 psychometric_p(m, m50, PLANTED_WIDTH, PLANTED_LAPSE))
            p = (1 - careless) * p + careless * 0.5
            fits = []
            for _ in range(args.datasets):
                correct = rng.random(len(m)) < p
                fitted = fit_psychometric(m, correct)
                fits.append(fitted[0] if flat_test(m, correct, fitted) < RESOLVED_P else np.nan)
            fits = np.asarray(fits)
            resolved = fits[~np.isnan(fits)]
            spread = (f"{np.percentile(resolved, 25):.2f}-{np.percentile(resolved, 75):.2f}"
                      if len(resolved) else "-")
            print(f"| {'chance' if m50 is None else m50} | {careless:g} | "
                  f"{len(resolved) / len(fits):.2f} | "
                  f"{np.median(resolved) if len(resolved) else float('nan'):.2f} | {spread} |",
                  flush=True)


if __name__ == "__main__":
    main()
