"""Benchmark: the mixed model on every scored row of a simulated IMI-sized study with lme4's
glmer (the default) beside the fit interpsy used before (statsmodels' variational Bayes on an
8,000-row subsample) and the simulated truth: time, estimates, interval widths.

    .venv/bin/python benchmarks/bench_mixed_size.py [--seed 0] [--vb-rows 8000]

Data: `analysis.simulate` with IMI's nine models, 767 units (86/86/85 x 7), natural and
synthetic, 68 responses per unit and condition (136,932 trials shown, 104,312 scored), IMI's
exclusions applied as the report applies them.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from analysis import apply_exclusions, simulate
from analysis.stats import mixed_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vb-rows", type=int, default=8_000, help="the old default subsample")
    args = parser.parse_args()
    per_model = [86, 86, 85, 85, 85, 85, 85, 85, 85]
    ds = simulate(units_per_model=per_model, responses_per_unit=68, seed=args.seed)
    flagged = apply_exclusions(ds.responses, ds.participants).responses
    kept = flagged[~flagged["excluded"]]
    print(f"{len(ds.responses):,} trials shown; {len(kept):,} rows of kept participants")
    fits = {}
    for label, engine, rows in (("glmer, every row", "glmer", None),
                                (f"VB, {args.vb_rows:,} rows", "vb", args.vb_rows)):
        t0 = time.perf_counter()
        fit = mixed_model(kept, ds.models, max_rows=rows, seed=args.seed, engine=engine)
        fits[label] = (time.perf_counter() - t0, fit)
    params = ds.truth["params"]
    unit_sd, corr = params["unit_sd"], 0.6
    truth = {"condition[synthetic]": params["mu"]["synthetic"] - params["mu"]["natural"],
             "log10_scale": params["scale_slope"],
             "participant": params["participant_sd"], "unit": unit_sd * np.sqrt(corr),
             "unit:condition": unit_sd * np.sqrt(1 - corr)}
    table = []
    for label, (seconds, fit) in fits.items():
        fixed = fit.fixed.set_index("term")
        variance = fit.variance.set_index("component").rename(
            columns={"sd": "estimate", "sd_low": "ci_low", "sd_high": "ci_high"})
        for term, value in truth.items():
            source = fixed if term in fixed.index else variance
            if term not in source.index:
                continue
            row = source.loc[term]
            table.append({"fit": label, "term": term, "truth": value,
                          "estimate": row["estimate"], "ci_low": row["ci_low"],
                          "ci_high": row["ci_high"], "width": row["ci_high"] - row["ci_low"],
                          "covers": bool(row["ci_low"] <= value <= row["ci_high"])})
        print(f"{label}: {fit.n_used:,} rows, {seconds:.1f} s ({fit.method})")
    frame = pd.DataFrame(table)
    with pd.option_context("display.width", 160):
        print(frame.round(4).to_string(index=False))
    (t_glmer, _), (t_vb, _) = fits.values()
    print(f"glmer on every row took {t_glmer:.1f} s, {t_glmer / t_vb:.1f}x the VB subsample's "
          f"{t_vb:.1f} s")


if __name__ == "__main__":
    main()
