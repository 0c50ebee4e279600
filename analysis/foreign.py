"""Published human-response datasets from other labs, mapped onto the schema by read_trials.

Borowski, Zimmermann et al. (ICLR 2021), "Exemplary natural images explain CNN activations better
than state-of-the-art feature visualization", Experiment I (lab, PsychoPy, 10 participants):
github.com/bethgelab/testing_visualizations, data_from_human_experiments/
experiment_I_main_practice_catch_repeated_trials_preprocessed.csv. The data are not copied into
this repository (the source repository states no licence); see benchmarks/PUBLISHED_CHECK.md.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import DataError, read_trials
from analysis.scores import participant_summary

BOROWSKI2021_EXPERIMENT = "borowski2021_exp1"

# The unit is the GoogLeNet layer, branch ("kernel_size") and feature-map choice ("channel":
# channel_0 = randomly sampled, channel_1 = hand-picked); the CSV's channel is a label, not an
# index, so it is renamed out of the schema's numeric `channel` and only used in `unit_id`.
BOROWSKI2021_COMBINE: dict[str, tuple[str, ...]] = {"unit_id": ("layer", "kernel_size", "channel")}

BOROWSKI2021_COLUMNS: dict[str, str] = {
    "subject_id": "participant_id",
    "instr_type": "condition",
    "trial_type": "phase",
    "catch_trial": "is_catch",
    "trial_nr": "trial_index",
    "abs_conf_rating": "confidence",
    "RT": "rt_ms",
    "response": "choice",
    "correct_response": "correct_choice",
    "query_image_a": "query_a",
    "query_image_b": "query_b",
    "channel": "feature_map_choice",
}

BOROWSKI2021_VALUES: dict[str, dict[str, str]] = {
    "condition": {"natural": "natural", "optimized": "synthetic",
                  "none_pre": "none", "none_post": "none"},
}

# Repeated trials re-show earlier main trials (test-retest); the paper's accuracies use main trials.
BOROWSKI2021_DROP: dict[str, tuple[str, ...]] = {"phase": ("repeated",)}

BOROWSKI2021_DEFAULTS: dict[str, str] = {"model": "inception_v1", "client": "lab",
                                         "difficulty": "easy"}

# Abstract / project page: proportion correct, mean +- 2 SEM over the 10 participants.
BOROWSKI2021_PUBLISHED: dict[str, tuple[float, float]] = {"natural": (0.92, 0.02),
                                                          "synthetic": (0.82, 0.04)}

_CONDITIONS = {"natural", "synthetic", "none"}


def read_borowski2021(csv_path: str | Path | pd.DataFrame,
                      experiment: str = BOROWSKI2021_EXPERIMENT) -> pd.DataFrame:
    """Load Borowski et al. (2021) Experiment I through read_trials (repeated trials dropped)."""
    out = read_trials(csv_path, columns=BOROWSKI2021_COLUMNS, values=BOROWSKI2021_VALUES,
                      defaults=BOROWSKI2021_DEFAULTS, rt_unit="s", experiment=experiment,
                      combine=BOROWSKI2021_COMBINE, drop=BOROWSKI2021_DROP)
    unknown = set(out["condition"].dropna()) - _CONDITIONS
    if unknown:
        raise DataError(f"{csv_path}: unexpected instr_type values {sorted(unknown)}; is this "
                        f"the Experiment I file?")
    return out


def published_comparison(responses: pd.DataFrame,
                         published: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Per condition: mean +- 2 SEM over participants (package) next to the published values."""
    published = BOROWSKI2021_PUBLISHED if published is None else published
    out = participant_summary(responses, by=("condition",))
    out["two_sem"] = 2 * out["sem"]
    values = [published.get(str(c), (np.nan, np.nan)) for c in out["condition"]]
    out["published_score"] = np.array([v[0] for v in values], dtype=float)
    out["published_two_sem"] = np.array([v[1] for v in values], dtype=float)
    out["matches"] = [_rounds_to(s, p) and _rounds_to(e, q) for s, p, e, q in
                      zip(out["score"], out["published_score"], out["two_sem"],
                          out["published_two_sem"])]
    return out[["condition", "n_participants", "score", "two_sem", "published_score",
                "published_two_sem", "matches"]]


def _rounds_to(value: float, published: float) -> bool:
    """Whether `value` rounds to the published whole percent (False when nothing is published)."""
    return bool(np.isfinite(published) and round(100 * value) == round(100 * published))


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as text lines in percent (package vs published)."""
    lines = ["condition   n  package (mean +- 2 SEM)   published   match"]
    for row in table.itertuples(index=False):
        pub = ("-" if not np.isfinite(row.published_score)
               else f"{100 * row.published_score:.0f} +- {100 * row.published_two_sem:.0f} %")
        lines.append(f"{row.condition:<10} {row.n_participants:>2}  "
                     f"{100 * row.score:6.2f} +- {100 * row.two_sem:4.2f} %      "
                     f"{pub:<11} {'yes' if row.matches else 'no' if pub != '-' else '-'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the package's numbers for the Borowski et al. CSV next to the published ones."""
    parser = argparse.ArgumentParser(prog="python -m analysis.foreign", description=main.__doc__)
    parser.add_argument(
        "csv", help="experiment_I_main_practice_catch_repeated_trials_preprocessed.csv")
    args = parser.parse_args(argv)
    try:
        responses = read_borowski2021(args.csv)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(responses)} trials read, dropped {responses.attrs.get('dropped_rows')}")
    table = published_comparison(responses)
    print(format_comparison(table))
    return 0 if table.loc[table["published_score"].notna(), "matches"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
