"""Coverage of the shifted-query gap intervals on simulated studies with a planted gap.

For each seed: a simulated IMI-shaped study whose tasks hold one query distribution each (`in`,
a shifted one 1 logit harder, a domain as hard as `in`); the per-model mean gap (in - shifted)
gets (a) the report's crossed bootstrap over participants and units
(`analysis.shifted.model_gaps`) and (b) a BCa bootstrap over units alone, the baseline. Prints
how often each 95% interval holds the planted gap (the mean over the model's units of their
true in-distribution minus shifted proportion correct), their mean widths side by side, and how
often the planted drop is detected (interval above zero). With `--mixed`, also the report's
mixed model (`analysis.mixed_model` with the report's factors: condition, query distribution
and their interaction) per study: how often each term's 95% interval holds its planted logit
(blur-3 -1, sketches 0, no interaction) and the mean z of the interaction terms.

    .venv/bin/python benchmarks/coverage_shifted.py --seeds 30 [--mixed]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from analysis.bootstrap import bca_mean
from analysis.load import Dataset
from analysis.scores import main_trials
from analysis.shifted import ALL_MODELS, model_gaps, unit_gaps
from analysis.simulate import simulate
from analysis.stats import FACTORS, mixed_model, with_query_distribution

DISTRIBUTIONS = {"in": 0.0, "blur-3": -1.0, "sketches": 0.0}
SHIFTED = {name: logit for name, logit in DISTRIBUTIONS.items() if name != "in"}
PLANTED = {**{f"query_distribution[{name}]": logit for name, logit in SHIFTED.items()},
           **{f"condition[synthetic]:query_distribution[{name}]": 0.0 for name in SHIFTED}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--mixed", action="store_true",
                        help="also check the mixed model's query-distribution terms")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    found = {"two-way": [], "units only": []}
    widths = {"two-way": [], "units only": []}
    detected = {"two-way": [], "units only": []}
    terms: dict[str, list[tuple[bool, float]]] = {}
    for seed in range(args.seeds):
        data = simulate(models=2, units_per_model=24, responses_per_unit=12, trials_per_task=12,
                        careless_fraction=0.0, distributions=DISTRIBUTIONS, seed=seed)
        truth = data.truth["units"].pivot_table(index=["model", "unit_id", "condition"],
                                                columns="query_distribution", values="p_true")
        gaps = unit_gaps(data.responses)
        rng = np.random.default_rng(seed)
        for row in model_gaps(data.responses, args.resamples, seed=seed).itertuples():
            if row.model == ALL_MODELS:
                continue
            planted = truth.xs((row.model, row.condition), level=("model", "condition"))
            expected = float((planted["in"] - planted[row.query_distribution]).mean())
            part = gaps[(gaps.model == row.model) & (gaps.condition == row.condition)
                        & (gaps.query_distribution == row.query_distribution)]
            _, low, high = bca_mean(part.gap.to_numpy(float), args.resamples, 0.95, rng)
            for name, (lo, hi) in (("two-way", (row.gap_low, row.gap_high)),
                                   ("units only", (low, high))):
                found[name].append(lo <= expected <= hi)
                widths[name].append(hi - lo)
                if row.query_distribution == "blur-3":
                    detected[name].append(lo > 0)
        if args.mixed:
            for term, held in _mixed_terms(data).items():
                terms.setdefault(term, []).append(held)
    n = len(found["two-way"])
    print(f"{args.seeds} simulated studies, {n} model x condition x distribution gaps "
          f"({time.perf_counter() - t0:.0f} s)")
    for name in found:
        print(f"{name:>10}: coverage {np.mean(found[name]):.1%} (SE "
              f"{np.sqrt(np.mean(found[name]) * (1 - np.mean(found[name])) / n):.1%}), "
              f"mean width {np.mean(widths[name]):.3f}, planted drop detected "
              f"{np.mean(detected[name]):.0%}")
    print(f"width ratio two-way / units only: "
          f"{np.mean(widths['two-way']) / np.mean(widths['units only']):.2f}")
    for term, held in terms.items():
        covered, z = np.array([h for h, _ in held]), np.array([v for _, v in held])
        print(f"mixed model {term}: planted {PLANTED[term]:+.1f} held in {covered.mean():.0%} "
              f"(MC SE at 95%: {np.sqrt(0.95 * 0.05 / len(held)):.0%}), "
              f"mean z against it {z.mean():+.2f} (SE {z.std(ddof=1) / np.sqrt(len(z)):.2f})")


def _mixed_terms(data: Dataset) -> dict[str, tuple[bool, float]]:
    """Per query-distribution term of the report's glmer model: interval holds the truth, z."""
    factors = with_query_distribution(FACTORS, main_trials(data.responses))
    fixed = mixed_model(data.responses, data.models, factors=factors,
                        engine="glmer").fixed.set_index("term")
    return {term: (bool(fixed.ci_low[term] <= planted <= fixed.ci_high[term]),
                   float((fixed.estimate[term] - planted) / fixed.sd[term]))
            for term, planted in PLANTED.items()}


if __name__ == "__main__":
    main()
