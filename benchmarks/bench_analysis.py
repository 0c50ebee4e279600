"""Benchmark: the whole analysis of a simulated IMI-sized dataset, against a naive baseline.

130,000 trials, 767 units, 9 models, 10,000 bootstrap resamples, mixed model (lme4 glmer when
installed) on every scored row.
Baseline (named, measured in the same run): the BCa-over-units step done the naive way, one
Python-level resample at a time (np.random.choice + mean per resample, jackknife in a loop),
timed on a subset of groups and resamples and scaled linearly to the full job.

    .venv/bin/python benchmarks/bench_analysis.py [--out DIR] [--seed N]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from analysis import simulate, unit_scores
from analysis.report import analyze
from analysis.scores import model_scores


def naive_bca_seconds(units, n_resamples: int, groups: int = 2, resamples: int = 1000) -> float:
    """Time the per-resample loop on `groups` groups x `resamples` resamples, scaled to all."""
    from scipy.special import ndtr, ndtri

    all_groups = list(units.groupby(["model", "condition"]))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _, frame in all_groups[:groups]:
        x = frame["score"].to_numpy(float)
        n = len(x)
        draws = [rng.choice(x, n, replace=True).mean() for _ in range(resamples)]
        jack = [np.delete(x, i).mean() for i in range(n)]
        theta = x.mean()
        z0 = ndtri(np.mean(np.asarray(draws) < theta))
        u = np.mean(jack) - np.asarray(jack)
        a = (u**3).sum() / (6 * (u**2).sum() ** 1.5)
        levels = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (ndtri(0.025), ndtri(0.975))]
        np.quantile(draws, levels)
    elapsed = time.perf_counter() - t0
    return elapsed * (len(all_groups) / groups) * (n_resamples / resamples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="report folder (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=10_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    per_model = [86, 86, 85, 85, 85, 85, 85, 85, 85]  # 767 units
    ds = simulate(units_per_model=per_model, responses_per_unit=68, seed=args.seed)
    t_sim = time.perf_counter() - t0
    r = ds.responses
    n_main = int(((r["phase"] == "main") & ~r["is_catch"]).sum())
    print(f"dataset: {len(r):,} trials ({n_main:,} scored), "
          f"{int(ds.units['role'].eq('main').sum())} units, "
          f"{r['participant_id'].nunique():,} participants, 9 models; simulated in {t_sim:.1f} s")

    out = args.out or tempfile.mkdtemp(prefix="interpsy-bench-")
    t0 = time.perf_counter()
    result = analyze(ds, out, n_resamples=args.bootstrap, seed=args.seed)
    total = time.perf_counter() - t0
    print(f"whole analysis (exclusions, scores, BCa + two-way bootstrap x{args.bootstrap:,}, "
          f"tests, mixed model on {result.mixed.n_used:,} rows, scaling, power, figures, "
          f"report): {total:.1f} s  -> {out}/report.html")
    for step, seconds in result.timings.items():
        print(f"  {step:32s} {seconds:6.2f} s")

    units = unit_scores(result.exclusions.responses)
    t0 = time.perf_counter()
    model_scores(units, args.bootstrap, seed=args.seed)
    ours = time.perf_counter() - t0
    naive = naive_bca_seconds(units, args.bootstrap)
    print(f"BCa over units, {len(units.groupby(['model', 'condition']))} groups x "
          f"{args.bootstrap:,} resamples: vectorised {ours:.2f} s vs baseline "
          f"'naive per-resample Python loop' {naive:.1f} s (scaled from 2 groups x 1,000) "
          f"-> {naive / ours:.0f}x faster")
    print(f"target: whole analysis < 30 s: {'met' if total < 30 else 'NOT met'} ({total:.1f} s)")


if __name__ == "__main__":
    main()
