"""Coverage of the VB fallback's condition and difficulty intervals on simulated data.

Simulate `--n` IMI-shaped datasets (nine IMI models, natural and synthetic references, easy and
p95 queries, known logit effects), fit `analysis.mixed_model` (no scale term, so one fit per
dataset) and count how often the 95 % interval of `condition[synthetic]` and of
`difficulty[p95]` contains the simulated (conditional, logit) effect.

    .venv/bin/python benchmarks/coverage_mixed_effects.py [--n 40] [--jobs 1] [--csv FILE]
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from coverage_mixed_slope import coverage_parser, run_and_print

DIFFICULTY = -0.8  # logit offset of p95 queries against easy ones


def one_dataset(seed: int, units_per_model: int, responses_per_unit: int, max_rows: int,
                unit_corr: float) -> list[dict]:
    """Simulate one dataset, fit the mixed model, one row per effect of interest."""
    from analysis import mixed_model, simulate

    warnings.filterwarnings("ignore")
    ds = simulate(units_per_model=units_per_model, responses_per_unit=responses_per_unit,
                  careless_fraction=0.0, condition_unit_corr=unit_corr, seed=seed,
                  difficulties={"easy": 0.0, "p95": DIFFICULTY})
    mu = ds.truth["params"]["mu"]
    truth = {"condition[synthetic]": mu["synthetic"] - mu["natural"],
             "difficulty[p95]": DIFFICULTY}
    t0 = time.perf_counter()
    res = mixed_model(ds.responses, None, max_rows=max_rows, seed=seed + 1, engine="vb")
    seconds = time.perf_counter() - t0
    fixed = res.fixed.set_index("term")
    rows = []
    for term, true in truth.items():
        r = fixed.loc[term]
        rows.append({"term": term, "unit_corr": unit_corr, "seed": seed, "true": true,
                     "interval": r["interval"], "estimate": r["estimate"], "sd": r["sd"],
                     "covers": bool(r["ci_low"] <= true <= r["ci_high"]),
                     "width": r["ci_high"] - r["ci_low"], "fit_s": seconds})
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage (with its Monte Carlo SE), bias, SD of estimates and RMS of the stated SD."""
    g = frame.groupby(["term", "unit_corr", "interval"], sort=False)
    out = g.agg(n=("covers", "size"), coverage=("covers", "mean"), width=("width", "mean"),
                bias=("estimate", "mean"), true=("true", "mean"),
                sd_estimate=("estimate", "std"),
                rms_sd=("sd", lambda v: float(np.sqrt(np.mean(v**2)))),
                fit_s=("fit_s", "mean")).reset_index()
    out["bias"] -= out["true"]
    out["mc_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"])
    return out


def main() -> None:
    parser = coverage_parser(__doc__, responses=10, seed=5000)
    parser.add_argument("--unit-corr", type=float, nargs="+", default=[0.6, 1.0],
                        help="correlation of a unit's effects across conditions (1: one effect)")
    args = parser.parse_args()
    jobs = [(args.seed + 1000 * k + i, args.units, args.responses, args.max_rows, corr)
            for k, corr in enumerate(args.unit_corr) for i in range(args.n)]
    t0 = time.perf_counter()
    run_and_print(one_dataset, jobs, args, summarise)
    print(f"{len(jobs)} datasets ({args.units} units/model x {args.responses} responses x "
          f"2 conditions x 2 difficulties, mixed model on <= {args.max_rows} rows) in "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
