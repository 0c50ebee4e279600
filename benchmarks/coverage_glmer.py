"""Coverage of the glmer mixed model's intervals on simulated data with known truth: the
condition effect, the scale slope and the unit:condition SD.

For each setting (true scale slope, between-model SD) simulate `--n` IMI-shaped datasets (nine
IMI models, `analysis.simulate`, natural and synthetic, no careless participants), fit
`analysis.mixed_model` on every scored row (engine glmer) and count how often each interval
contains the simulated value. Truth: condition[synthetic] = mu_synthetic - mu_natural (logit),
log10_scale = the slope per decade of parameters, unit:condition SD = unit_sd * sqrt(1 - corr)
(the condition-specific part of a unit's effect; simulate's compound symmetry).

    .venv/bin/python benchmarks/coverage_glmer.py [--n 50] [--jobs 2] [--csv FILE]
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from coverage_mixed_slope import coverage_parser, run_and_print

SETTINGS = ((0.0, 0.1), (0.3, 0.2))  # (true slope, model SD), logit
UNIT_SD, CORR = 0.8, 0.6


def one_dataset(slope: float, model_sd: float, seed: int, units_per_model: int,
                responses_per_unit: int, max_rows: int) -> list[dict]:
    """Simulate one dataset, fit glmer on every row, one row per checked quantity."""
    from analysis import simulate
    from analysis.stats import mixed_model

    warnings.filterwarnings("ignore")
    ds = simulate(units_per_model=units_per_model, responses_per_unit=responses_per_unit,
                  careless_fraction=0.0, scale_slope=slope, model_sd=model_sd, unit_sd=UNIT_SD,
                  condition_unit_corr=CORR, seed=seed)
    t0 = time.perf_counter()
    res = mixed_model(ds.responses, ds.models, seed=seed + 1, engine="glmer",
                      max_rows=max_rows or None)
    seconds = time.perf_counter() - t0
    mu = ds.truth["params"]["mu"]
    fixed = res.fixed.set_index("term")
    variance = res.variance.set_index("component")
    checks = {"condition[synthetic]": (fixed.loc["condition[synthetic]"],
                                       mu["synthetic"] - mu["natural"]),
              "log10_scale": (fixed.loc["log10_scale"], slope),
              "unit:condition SD": (variance.loc["unit:condition"].rename(
                  {"sd_low": "ci_low", "sd_high": "ci_high", "sd": "estimate"}),
                  UNIT_SD * np.sqrt(1 - CORR))}
    return [{"slope": slope, "model_sd": model_sd, "seed": seed, "quantity": name,
             "truth": truth, "estimate": row["estimate"], "ci_low": row["ci_low"],
             "ci_high": row["ci_high"], "covers": bool(row["ci_low"] <= truth <= row["ci_high"]),
             "width": row["ci_high"] - row["ci_low"], "rows": res.n_used, "fit_s": seconds}
            for name, (row, truth) in checks.items()]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage (with its Monte Carlo SE), mean width and bias per quantity, per setting and
    pooled."""
    frame = frame.assign(error=frame["estimate"] - frame["truth"])
    parts = []
    for keys in (["slope", "model_sd", "quantity"], ["quantity"]):
        g = frame.groupby(keys, sort=False)
        out = g.agg(n=("covers", "size"), coverage=("covers", "mean"), width=("width", "mean"),
                    bias=("error", "mean"), sd_estimate=("estimate", "std"),
                    fit_s=("fit_s", "mean")).reset_index()
        parts.append(out)
    parts[1] = parts[1].assign(slope="all", model_sd="all")
    out = pd.concat(parts, ignore_index=True)
    out["mc_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"])
    return out


def main() -> None:
    parser = coverage_parser(__doc__, responses=20, seed=7000)
    parser.set_defaults(max_rows=0)
    args = parser.parse_args()
    jobs = [(slope, sd, args.seed + 1000 * k + i, args.units, args.responses, args.max_rows)
            for k, (slope, sd) in enumerate(SETTINGS) for i in range(args.n)]
    t0 = time.perf_counter()
    run_and_print(one_dataset, jobs, args, summarise)
    print(f"{len(jobs)} datasets ({args.units} units/model x {args.responses} responses x 2 "
          f"conditions, nine models, every scored row) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
