"""Coverage of the VB fallback's scale-slope intervals on simulated data with known slope.

For each setting (true slope, between-model SD) simulate `--n` IMI-shaped datasets (nine IMI
models, `analysis.simulate` with seeded model deviations around the scale trend), fit
`analysis.mixed_model` and count how often each slope interval in `result.scale_slopes` (the
mean-field VB posterior interval and the between-model t interval) contains the true slope.

    .venv/bin/python benchmarks/coverage_mixed_slope.py [--n 40] [--jobs 1] [--csv FILE]
"""
from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

SETTINGS = ((0.0, 0.1), (0.0, 0.3), (0.3, 0.2), (0.0, 0.0))  # (true slope, model SD), logit


def one_dataset(slope: float, model_sd: float, seed: int, units_per_model: int,
                responses_per_unit: int, max_rows: int) -> list[dict]:
    """Simulate one dataset, fit the mixed model, one row per slope interval."""
    from analysis import mixed_model, simulate

    warnings.filterwarnings("ignore")
    ds = simulate(units_per_model=units_per_model, responses_per_unit=responses_per_unit,
                  careless_fraction=0.0, scale_slope=slope, model_sd=model_sd, seed=seed)
    t0 = time.perf_counter()
    res = mixed_model(ds.responses, ds.models, max_rows=max_rows, seed=seed + 1, engine="vb")
    seconds = time.perf_counter() - t0
    rows = []
    for _, r in res.scale_slopes[res.scale_slopes["scale"] == "parameters"].iterrows():
        rows.append({"slope": slope, "model_sd": model_sd, "seed": seed,
                     "interval": r["interval"], "estimate": r["estimate"], "sd": r["sd"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                     "covers": bool(r["ci_low"] <= slope <= r["ci_high"]),
                     "width": r["ci_high"] - r["ci_low"], "fit_s": seconds})
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Coverage (with its Monte Carlo SE), mean width and bias per setting and interval."""
    g = frame.groupby(["slope", "model_sd", "interval"], sort=False)
    out = g.agg(n=("covers", "size"), coverage=("covers", "mean"), width=("width", "mean"),
                bias=("estimate", "mean"), sd_estimate=("estimate", "std"),
                rms_sd=("sd", lambda v: float(np.sqrt(np.mean(v**2)))),
                fit_s=("fit_s", "mean")).reset_index()
    out["bias"] -= out["slope"]
    out["mc_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"])
    pooled = frame.groupby("interval", sort=False).agg(n=("covers", "size"),
                                                      coverage=("covers", "mean"),
                                                      width=("width", "mean")).reset_index()
    pooled["mc_se"] = np.sqrt(pooled["coverage"] * (1 - pooled["coverage"]) / pooled["n"])
    return pd.concat([out, pooled.assign(slope="all", model_sd="all")], ignore_index=True)


def coverage_parser(doc: str, responses: int, seed: int) -> argparse.ArgumentParser:
    """The options every coverage script shares (datasets, workers, data size, seeds, CSV)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="datasets per setting")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--units", type=int, default=40, help="units per model")
    parser.add_argument("--responses", type=int, default=responses, help="responses per unit")
    parser.add_argument("--max-rows", type=int, default=8_000, help="mixed model subsample")
    parser.add_argument("--seed", type=int, default=seed, help="first dataset seed")
    parser.add_argument("--csv", default=None, help="write every interval to this CSV")
    return parser


def run_and_print(one_dataset, jobs: list[tuple], args: argparse.Namespace, summarise
                  ) -> pd.DataFrame:
    """Run `one_dataset` over `jobs` in `args.jobs` processes; print the summary; keep the CSV."""
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [r for part in pool.map(one_dataset, *zip(*jobs)) for r in part]
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summarise(frame).round(3).to_string(index=False))
    return frame


def main() -> None:
    parser = coverage_parser(__doc__, responses=20, seed=1000)
    args = parser.parse_args()
    # distinct seeds per setting, so the settings are independent samples
    jobs = [(slope, sd, args.seed + 1000 * k + i, args.units, args.responses, args.max_rows)
            for k, (slope, sd) in enumerate(SETTINGS) for i in range(args.n)]
    t0 = time.perf_counter()
    run_and_print(one_dataset, jobs, args, summarise)
    print(f"{len(jobs)} datasets ({args.units} units/model x {args.responses} responses, "
          f"natural + synthetic, mixed model on <= {args.max_rows} rows) in "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
