"""The categorisation report (model-vs-human): accuracy per observer and level, the error
consistency of every pair of observers, the benchmark's summary metrics and shape bias, written
as tables/*.csv, figures, report.html (analysis/templates/categorisation.html) and summary.txt."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.consistency import (
    accuracy,
    benchmark_summary,
    condition_order,
    error_consistency,
    observer_order,
    shape_bias,
    trials_of,
)
from analysis.exclusions import Rule, apply_exclusions
from analysis.load import DataError
from analysis.report_html import figure, render_page


@dataclass
class CategorisationResult:
    """The categorisation analysis: its tables (by name), figures and settings."""

    tables: dict[str, pd.DataFrame]
    settings: dict
    figures: dict[str, list[Path]] = field(default_factory=dict)

    def summary(self) -> str:
        """The main numbers as text: accuracy per observer and the benchmark's summary."""
        acc = self.tables["accuracy"]
        pooled = acc.groupby("observer", sort=False)[["n", "n_correct"]].sum()
        lines = [f"categorisation, chance {self.settings['chance']:.4g}; "
                 f"{len(pooled)} observers, {acc['dataset'].nunique()} datasets"]
        flags = self.tables.get("participant_flags")
        if flags is not None:
            lines.append(f"{int((~flags['excluded']).sum())} of {len(flags)} participants kept "
                         f"(exclusion rules: "
                         f"{', '.join(self.settings['exclusion_rules'])})")
        lines += [f"{o}: accuracy {r.n_correct / r.n:.3f} over {r.n} trials"
                  for o, r in pooled.iterrows()]
        lines += [f"{r.observer} ({r.kind}) against the people: accuracy difference "
                  f"{r.accuracy_difference:.4f}, observed consistency "
                  f"{r.observed_consistency:.3f}, error consistency {r.error_consistency:.3f}"
                  + ("" if pd.isna(r.mean_rank) else f", mean rank {r.mean_rank:.1f}")
                  for r in self.tables["benchmark_summary"].itertuples()]
        return "\n".join(lines)


def chance_of(responses: pd.DataFrame) -> float:
    """1 / the number of categories the rows' images belong to (at least 2)."""
    column = "category" if "category" in responses.columns else "correct_choice"
    return 1 / max(2, responses[column].dropna().nunique())


def _kept(responses: pd.DataFrame, rules: Sequence[Rule],
          participants: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The rows of the people who pass `rules` and every machine's, and the exclusion tables
    (none without rules)."""
    machine = responses["client"].astype(str) == "machine"
    if not rules or machine.all():
        return responses, {}
    checked = apply_exclusions(responses[~machine], participants, rules)
    kept = pd.concat([checked.included.drop(columns=["excluded", "exclusion_reasons"]),
                      responses[machine]], ignore_index=True)
    return kept, {"exclusion_summary": checked.summary,
                  "participant_flags": checked.participants}


def run_categorisation(responses: pd.DataFrame, chance: float,
                       exclude: Mapping[str, set[str]] | None = None,
                       rules: Sequence[Rule] = (), participants: pd.DataFrame | None = None
                       ) -> CategorisationResult:
    """Every table of the categorisation analysis of `responses`: the people who pass `rules`
    (the study's exclusion rules) and every machine observer."""
    responses, excluded = _kept(responses, list(rules), participants)
    trials = trials_of(responses)
    if trials.empty:
        raise DataError("no main trials to analyse (after the exclusions)" if excluded
                        else "no main trials to analyse")
    pairs = error_consistency(trials)
    tables = {"accuracy": accuracy(trials), "error_consistency": pairs,
              "error_consistency_by_pair": (
                  pairs.groupby(["dataset", "observer_a", "observer_b", "pair"], sort=False)
                  .agg(conditions=("condition", "size"), n=("n", "sum"),
                       observed=("observed", "mean"),
                       error_consistency=("error_consistency", "mean")).reset_index()),
              "benchmark_summary": benchmark_summary(pairs, exclude)}
    cue = shape_bias(trials)
    if not cue.empty:
        tables["shape_bias"] = cue
    tables.update(excluded)
    settings = {"task_type": "categorisation", "chance": chance,
                "exclusion_rules": [rule.name for rule in rules],
                "observers": observer_order(trials),
                "summary_excluded_conditions": {k: sorted(v) for k, v in (exclude or {}).items()}}
    return CategorisationResult(tables=tables, settings=settings)


def _figures(result: CategorisationResult, folder: Path) -> dict[str, list[Path]]:
    """Per dataset: accuracy by level and the error-consistency matrix."""
    acc, pairs = result.tables["accuracy"], result.tables["error_consistency"]
    out = {}
    for i, (dataset, rows) in enumerate(acc.groupby("dataset", sort=False)):
        order = condition_order(rows["condition"])
        fig = plots.plot_accuracy_by_level(rows, order, result.settings["chance"], dataset)
        out[f"accuracy_{i}"] = plots.save(fig, folder, f"accuracy_{i}")
        observers = [o for o in result.settings["observers"] if o in set(rows["observer"])]
        fig = plots.plot_error_consistency_matrix(pairs[pairs["dataset"] == dataset], observers,
                                                  dataset)
        out[f"consistency_{i}"] = plots.save(fig, folder, f"consistency_{i}")
    return out


def analyze_categorisation(responses: pd.DataFrame, out: str | Path,
                           chance: float | None = None,
                           exclude: Mapping[str, set[str]] | None = None,
                           source: str = "", rules: Sequence[Rule] = (),
                           participants: pd.DataFrame | None = None,
                           machine: pd.DataFrame | None = None) -> CategorisationResult:
    """Run the categorisation analysis of `responses` (with machine observers' rows beside
    them, if given) and write its tables, figures, report.html and summary.txt into `out`;
    chance is 1 / the number of categories unless given."""
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    notes = responses.attrs.get("notes", [])
    if machine is not None:
        responses = pd.concat([responses, machine], ignore_index=True)
    result = run_categorisation(responses, chance or chance_of(responses), exclude, rules,
                                participants)
    result.figures = _figures(result, out / "figures")
    for name, frame in result.tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    (out / "settings.json").write_text(json.dumps(result.settings, indent=2))
    datasets = list(result.tables["accuracy"]["dataset"].drop_duplicates())
    (out / "report.html").write_text(render_page(
        "categorisation.html", result=result, source=source, datasets=datasets,
        notes=notes,
        figure=lambda name, caption: figure(result, name, caption)), encoding="utf-8")
    (out / "summary.txt").write_text(result.summary() + "\n", encoding="utf-8")
    return result
