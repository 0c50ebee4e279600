"""Benchmark: the mixed model on the report's default subsample against all scored rows of a
simulated IMI-sized study (767 units, 9 models), side by side: fit time, estimates and the width
of each fixed effect's 95% interval (the interval cost of the subsample).

    .venv/bin/python benchmarks/bench_mixed_size.py [--rows 8000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

from analysis import simulate
from analysis.stats import mixed_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000, help="the subsample (the default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_model = [86, 86, 85, 85, 85, 85, 85, 85, 85]
    ds = simulate(units_per_model=per_model, responses_per_unit=68, seed=args.seed)
    fits = {}
    for label, rows in (("subsample", args.rows), ("all rows", 10**9)):
        t0 = time.perf_counter()
        fit = mixed_model(ds.responses, ds.models, max_rows=rows, seed=args.seed)
        fits[label] = (time.perf_counter() - t0, fit)
    (t_sub, sub), (t_all, full) = fits["subsample"], fits["all rows"]
    print(f"rows: {sub.n_used:,} vs {full.n_used:,} of {full.n_rows:,} scored; fit "
          f"{t_sub:.1f} s vs {t_all:.1f} s ({t_all / t_sub:.1f}x the time)")
    print(f"{'term':24s} {'estimate sub':>13s} {'estimate all':>13s} {'width sub':>10s} "
          f"{'width all':>10s} {'ratio':>6s}")
    for (_, a), (_, b) in zip(sub.fixed.iterrows(), full.fixed.iterrows()):
        wa, wb = a.ci_high - a.ci_low, b.ci_high - b.ci_low
        print(f"{a.term:24s} {a.estimate:13.3f} {b.estimate:13.3f} {wa:10.3f} {wb:10.3f} "
              f"{wa / wb:6.2f}")


if __name__ == "__main__":
    main()
