"""Run the whole analysis of a dataset and write tables, figures and an HTML report
(analysis/report_html.py)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis import calibration, plots, scaling, scores, shifted, stats
from analysis.exclusions import ExclusionResult, Rule, apply_exclusions, rules_for
from analysis.load import DataError, Dataset, model_order, sort_by_model, task_of
from analysis.machine import machine_vs_human, selection_groups, split_clients
from analysis.report_html import render_exclusions_only, render_html
from analysis.result import AnalysisResult, comparison_table, task_analysis
from experiments.tasks.base import TaskType

BY_MODEL = ("model_scores", "model_scores_two_way", "participant_summary", "unit_scores",
            "accuracy_by_confidence", "rt_summary", "depth_spearman", "layer_scores",
            "shifted_model_gaps")  # tables listed in IMI's model order


class NothingToScore(DataError):
    """No scored trial is left after the exclusions; carries them so they are still written."""

    def __init__(self, exclusions: ExclusionResult) -> None:
        self.exclusions = exclusions
        super().__init__("no scored trials left (phase 'main', not catch, not excluded): "
                         + who_was_removed(exclusions))


def who_was_removed(ex: ExclusionResult, shown: int = 8) -> str:
    """Which rule excluded whom, one clause per rule, e.g. 'catch_trials excluded P0001, P0002'."""
    flags = ex.participants
    parts = []
    for rule in ex.rules:
        column = f"fail_{rule.name}"
        ids = flags.loc[flags[column].fillna(False).astype(bool), "participant_id"].astype(str)
        if len(ids):
            more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
            parts.append(f"{rule.name} excluded {', '.join(ids[:shown])}{more}")
    scored = scores.main_trials(ex.responses, include_excluded=True)
    if scored.empty:
        parts.append("the data hold no scored trial at all")
    return "; ".join(parts) or "no rule excluded anyone"


class _Stages:
    """The analysis's progress bar and the seconds each stage took."""

    def __init__(self, total: int, progress: bool) -> None:
        self.timings: dict[str, float] = {}
        self.bar = tqdm(total=total, desc="analysis", disable=not progress)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage and move the bar on when it ends."""
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0
        self.bar.set_postfix_str(name)
        self.bar.update(1)


SEED_OFFSETS = {"bca_units": 0, "two_way": 1, "paired": 2, "mixed_subsample": 3, "spearman": 4,
                "power": 5, "machine": 6, "selection": 7, "shifted": 8, "calibration": 9,
                "confidence": 10}  # each stage's own stream: seed + offset


def run_analysis(dataset: Dataset, n_resamples: int = 10_000, seed: int = 0,
                 rules: Sequence[Rule] | None = None, two_way_resamples: int | None = None,
                 mixed_rows: int | None = None, mixed: bool = True, mixed_engine: str = "auto",
                 margin: float = scaling.DEFAULT_MARGIN,
                 power_sims: int = 300, power_difference: float = 0.05,
                 progress: bool = False, machine: pd.DataFrame | None = None) -> AnalysisResult:
    """Exclusions, scores, statistics, scaling trends and power for one dataset (no files); the
    task type recorded in the dataset gives the chance level, the paired comparisons, the
    mixed model's factors and its own tables. Machine observers' rows (client `machine`, in the
    dataset or given as `machine`) are compared with the people's and kept out of the rest."""
    task_type = task_of(dataset.settings)
    seeds = {name: seed + offset for name, offset in SEED_OFFSETS.items()}
    tables: dict[str, pd.DataFrame] = {}
    run = _Stages(total=9, progress=progress)
    people, bots = split_clients(dataset.responses)
    if machine is not None:
        bots = pd.concat([bots, split_clients(machine)[1]], ignore_index=True)

    with run.stage("exclusions"):
        ex = apply_exclusions(people, dataset.participants,
                              rules_for(dataset.settings) if rules is None else rules)
        every_distribution = ex.responses
        scored_in = shifted.scored_distribution(every_distribution)
        responses = _scored_distribution_only(every_distribution, scored_in)
        if scores.main_trials(responses).empty:
            run.bar.close()
            raise NothingToScore(ex)
        tables["exclusion_summary"] = ex.summary
        tables["excluded_participants"] = ex.participants[ex.participants["excluded"]][
            ["participant_id", "exclusion_reasons"]]
    with run.stage("unit and model scores (BCa)"):
        units = scores.unit_scores(responses)
        tables["unit_scores"] = units
        tables["model_scores"] = scores.model_scores(units, n_resamples, seed=seeds["bca_units"],
                                                     progress=progress)
    with run.stage("two-way bootstrap"):
        tables["model_scores_two_way"] = scores.two_way_scores(
            responses, two_way_resamples or n_resamples, seed=seeds["two_way"],
            progress=progress)
    with run.stage("participants, confidence, RT"):
        tables["participant_summary"] = scores.participant_summary(responses)
        tables["accuracy_by_confidence"] = scores.accuracy_by_confidence(
            responses, n_resamples=n_resamples, seed=seeds["confidence"])
        tables["rt_summary"] = scores.rt_summary(responses)
    with run.stage("tests"):
        tables.update(_tests(units, dataset, task_type, n_resamples, seeds))
        tables.update(shifted.tables(every_distribution, n_resamples, seeds["shifted"]))
        extension = task_analysis(task_type)
        task_tables = extension.tables(scores.main_trials(responses)) if extension else {}
        tables.update(task_tables)
    with run.stage("mixed model"):
        scored = scores.main_trials(every_distribution)
        factors = stats.with_query_distribution(task_type.factors, scored)
        mm, mixed_failed = None, ""
        if mixed and scored["participant_id"].nunique() > 1 and scored["correct"].nunique() > 1:
            mm, mixed_failed = _mixed_model(every_distribution, dataset, task_type, factors, tables,
                                            seed=seeds["mixed_subsample"], margin=margin,
                                            engine=mixed_engine, max_rows=mixed_rows)
    with run.stage("scaling"):
        ms = tables["model_scores"]
        tables["scaling_spearman"] = scaling.spearman_trend(
            ms, dataset.models, n_resamples=n_resamples, seed=seeds["spearman"])
        tables["scaling_slopes"] = scaling.scaling_slopes(ms, dataset.models, margin=margin)
    with run.stage("power"):
        tables["power"], power = _power(ms, mm, scored, power_difference, power_sims,
                                        seeds["power"])
    with run.stage("machine vs human"):
        tables.update(_machine_tables(responses, _scored_distribution_only(bots, scored_in),
                                      min(n_resamples, 2000), seeds))
    run.bar.close()
    for name in (*BY_MODEL, *(comparison_table(a, b) for a, b in task_type.comparisons)):
        if name in tables:  # IMI's order; other tables keep their own (e.g. largest gap first)
            tables[name] = sort_by_model(tables[name], dataset.models)

    settings = {"task_type": task_type.name, "chance": task_type.chance,
                "comparisons": [f"{a} - {b}" for a, b in task_type.comparisons],
                "mixed_factors": list(factors), "task_tables": list(task_tables),
                "query_distributions": shifted.distributions(every_distribution),
                "scored_distribution": scored_in,
                "reference_condition": task_type.reference_condition,
                "n_resamples": n_resamples, "two_way_resamples": two_way_resamples or n_resamples,
                "seed": seed, "seeds": seeds,
                "mixed_rows": mixed_rows, "mixed_engine": None if mm is None else mm.engine,
                "mixed_not_fitted": mixed_failed,
                "tost_margin": margin,
                "power": power,
                "rules": [r.describe() for r in ex.rules], "source": dataset.source}
    return AnalysisResult(tables=tables, exclusions=ex, mixed=mm, settings=settings,
                          timings=run.timings)


def _scored_distribution_only(rows: pd.DataFrame, scored_in: str) -> pd.DataFrame:
    """The rows on the scored query distribution (rows without one count as on it)."""
    if shifted.COLUMN not in rows.columns:
        return rows
    return rows[rows[shifted.COLUMN].fillna(scored_in) == scored_in]


def _tests(units: pd.DataFrame, dataset: Dataset, task_type: TaskType, n_resamples: int,
           seeds: dict[str, int]) -> dict[str, pd.DataFrame]:
    """Between-model tests, the task's paired condition comparisons, depth, layers and the
    machine-selected groups."""
    tables = {}
    tables["kruskal_wallis"], tables["conover_holm"] = stats.kruskal_models(units)
    tables["brunner_munzel"] = stats.brunner_munzel_pairs(units)
    for a, b in task_type.comparisons:
        tables[comparison_table(a, b)] = stats.paired_conditions(
            units, a, b, n_resamples=n_resamples, seed=seeds["paired"])
    tables["depth_spearman"] = stats.depth_correlation(units, dataset.units)
    tables["layer_scores"] = stats.layer_scores(units, dataset.units)
    chosen = selection_groups(units, dataset.units, min(n_resamples, 2000), seeds["selection"])
    if not chosen.empty:
        tables["selection_groups"] = chosen
    return tables


def _machine_tables(people: pd.DataFrame, bots: pd.DataFrame, n_resamples: int,
                    seeds: dict[str, int]) -> dict[str, pd.DataFrame]:
    """Machine observers against the people on the same trials, and the calibration checks."""
    tables = {}
    if not bots.empty:
        tables.update(machine_vs_human(people, bots, n_resamples, seeds["machine"]))
    tables.update(calibration.tables(people, bots, n_resamples, seeds["calibration"]))
    return tables


def _mixed_model(responses: pd.DataFrame, dataset: Dataset, task_type: TaskType,
                 factors: tuple[str, ...], tables: dict[str, pd.DataFrame], seed: int,
                 margin: float, engine: str, max_rows: int | None
                 ) -> tuple[stats.MixedModelResult | None, str]:
    """The mixed model (and, when fitted on a subsample, its comparison with every row) added
    to `tables`; (None, why) when the engine refuses the data, so the rest still runs."""
    fit = partial(stats.mixed_model, responses, dataset.models, seed=seed, margin=margin,
                  reference=task_type.reference_condition, factors=factors, engine=engine)
    try:
        mm = fit(max_rows=max_rows)
    except DataError as exc:  # e.g. glmer refusing odd pilot data
        return None, str(exc)
    tables["mixed_model_fixed"] = mm.fixed
    tables["mixed_model_variance"] = mm.variance
    if mm.n_used < mm.n_rows:  # a subsample asked for: what it costs, on these data
        tables["mixed_model_subsample"] = stats.compare_fits(mm, fit(max_rows=None))
    if not mm.scale_slopes.empty:
        tables["mixed_model_scale_slopes"] = mm.scale_slopes
    return mm, ""


def _power(model_scores: pd.DataFrame, mm: stats.MixedModelResult | None,
           scored: pd.DataFrame, difference: float, n_sims: int, seed: int
           ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The power table at this study's base accuracy, unit and participant SDs (the mixed
    model's when fitted) and trials per participant; and those settings."""
    base = float(np.clip(model_scores["score"].mean(), 0.55, 0.95 - difference))
    unit_sd, participant_sd = 0.8, 0.4
    if mm is not None:
        v = mm.variance.set_index("component")["sd"]
        # a unit's SD within one condition: its shared and its condition-specific part
        unit_sd = float(np.hypot(v.get("unit", unit_sd), v.get("unit:condition", 0.0)))
        participant_sd = float(v.get("participant", participant_sd))
    per_participant = int(scored.groupby("participant_id", observed=True).size().median())
    table = scaling.power_analysis(
        difference=difference, base_accuracy=base, unit_sd=unit_sd,
        participant_sd=participant_sd, n_sims=n_sims, seed=seed,
        trials_per_participant=per_participant)
    return table, {"difference": difference, "base_accuracy": base, "unit_sd": unit_sd,
                   "participant_sd": participant_sd, "trials_per_participant": per_participant,
                   "n_sims": n_sims}


def make_figures(result: AnalysisResult, dataset: Dataset, folder: Path) -> dict[str, list[Path]]:
    """Draw every figure of the report into `folder`."""
    t = result.tables
    task_type = task_of(dataset.settings)
    chance = task_type.chance
    order = model_order(t["model_scores"]["model"].unique(), dataset.models)
    figures = {"model_scores": plots.plot_model_scores(t["model_scores"], chance=chance,
                                                       order=order),
               "model_scores_two_way": plots.plot_model_scores(
                   t["model_scores_two_way"], "Score per model (two-way bootstrap 95% CI)",
                   chance=chance, order=order),
               **{comparison_table(a, b): plots.plot_paired(t["unit_scores"], a, b)
                  for a, b in task_type.comparisons if not t[comparison_table(a, b)].empty},
               "scale": plots.plot_scale(t["model_scores"], dataset.models, chance=chance),
               "confidence": plots.plot_confidence(t["accuracy_by_confidence"], chance),
               "depth": plots.plot_depth(t["unit_scores"], t["layer_scores"], dataset.units),
               "calibration": (plots.plot_psychometric(t["calibration_psychometric"])
                               if "calibration_psychometric" in t else None),
               "shifted": (plots.plot_shifted(t["shifted_model_gaps"])
                           if not t.get("shifted_model_gaps", pd.DataFrame()).empty else None),
               "machine_vs_human": (plots.plot_machine_vs_human(t["machine_units"])
                                    if not t.get("machine_units", pd.DataFrame()).empty
                                    else None),
               "power": plots.plot_power(t["power"])}
    return {name: plots.save(fig, folder, name) for name, fig in figures.items() if fig is not None}


def analyze(dataset: Dataset, out: str | Path, progress: bool = False, **options: Any
            ) -> AnalysisResult:
    """Run the analysis and write tables (CSV), figures (PNG, SVG), report.html and
    summary.txt (`AnalysisResult.summary()`) into `out`."""
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        result = run_analysis(dataset, progress=progress, **options)
    except NothingToScore as nothing:
        _write_exclusions_only(nothing, dataset, out)
        raise
    t = time.perf_counter()
    result.figures = make_figures(result, dataset, out / "figures")
    result.timings["figures"] = time.perf_counter() - t
    for name, table in result.tables.items():
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
    result.exclusions.participants.to_csv(out / "tables" / "participant_flags.csv", index=False)
    result.timings["total"] = time.perf_counter() - t0
    (out / "settings.json").write_text(json.dumps(
        {**result.settings, "timings_s": result.timings}, indent=2, default=str))
    (out / "report.html").write_text(render_html(result, dataset), encoding="utf-8")
    (out / "summary.txt").write_text(result.summary() + "\n", encoding="utf-8")
    return result


def _write_exclusions_only(nothing: NothingToScore, dataset: Dataset, out: Path) -> None:
    """What can be written when nothing is left to score: the exclusion tables and a report
    saying which rule removed whom."""
    ex = nothing.exclusions
    ex.summary.to_csv(out / "tables" / "exclusion_summary.csv", index=False)
    ex.participants.to_csv(out / "tables" / "participant_flags.csv", index=False)
    excluded = ex.participants[ex.participants["excluded"]][["participant_id", "exclusion_reasons"]]
    excluded.to_csv(out / "tables" / "excluded_participants.csv", index=False)
    (out / "report.html").write_text(render_exclusions_only(nothing, ex, excluded),
                                     encoding="utf-8")


__all__ = ["AnalysisResult", "analyze", "make_figures", "render_html", "run_analysis"]
