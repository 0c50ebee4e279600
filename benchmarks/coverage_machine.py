"""Coverage of the machine-vs-human intervals (analysis.machine) on simulated data with known
truth: the percentile bootstrap interval over units of Spearman's r between machine and human
unit scores, and of the human split-half reliability (the noise ceiling). The truth is each
statistic's value on 100,000 (40,000 for the reliability) simulated units; a dataset has N
units x T human trials each.

    .venv/bin/python benchmarks/coverage_machine.py [--datasets 500] [--units 80] [--trials 20]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests' simulators

from analysis.machine import _reliability, correlation_interval, noise_ceiling
from tests.analysis.test_analysis_machine import _scores, simulate_units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=500)
    parser.add_argument("--units", type=int, default=80)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    big_h, big_m = simulate_units(rng, 100_000, args.trials)
    spearman_truth = stats.spearmanr(big_m["p_correct"], _scores(big_h)).statistic
    big, _ = simulate_units(rng, 40_000, args.trials)
    codes = big.groupby("unit_id", sort=False).ngroup().to_numpy()
    reliability_truth = _reliability(codes, big["correct"].to_numpy(float), 10, rng)
    t0 = time.perf_counter()
    hits = {"spearman": [], "reliability": []}
    widths = {"spearman": [], "reliability": []}
    for i in range(args.datasets):
        human, machine = simulate_units(rng, args.units, args.trials)
        found = correlation_interval(machine["p_correct"], _scores(human), 2000, rng=rng)
        hits["spearman"].append(found["spearman_low"] <= spearman_truth <= found["spearman_high"])
        widths["spearman"].append(found["spearman_high"] - found["spearman_low"])
        row = noise_ceiling(human, n_splits=20, n_resamples=500, seed=i).iloc[0]
        hits["reliability"].append(row["ci_low"] <= reliability_truth <= row["ci_high"])
        widths["reliability"].append(row["ci_high"] - row["ci_low"])
    print(f"{args.datasets} datasets of {args.units} units x {args.trials} trials "
          f"({time.perf_counter() - t0:.0f} s)")
    for name, truth in (("spearman", spearman_truth), ("reliability", reliability_truth)):
        rate = np.mean(hits[name])
        se = np.sqrt(rate * (1 - rate) / args.datasets)
        print(f"{name:12s} truth {truth:.3f}  95% coverage {rate:.1%} (Monte Carlo SE "
              f"{se:.1%})  mean width {np.mean(widths[name]):.3f}")


if __name__ == "__main__":
    main()
