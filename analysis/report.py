"""Run the whole analysis of a dataset and write tables, figures and an HTML report."""
from __future__ import annotations

import html
import importlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis import calibration, plots, scaling, scores, shifted, stats
from analysis.bootstrap import MIN_N
from analysis.exclusions import ExclusionResult, Rule, apply_exclusions, rules_for
from analysis.load import DataError, Dataset, model_order, sort_by_model, task_of
from analysis.machine import machine_vs_human, selection_groups, split_clients
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


@dataclass
class AnalysisResult:
    """Every table of an analysis, the exclusion result, settings and timings."""

    tables: dict[str, pd.DataFrame]
    exclusions: ExclusionResult
    mixed: stats.MixedModelResult | None
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, list[Path]] = field(default_factory=dict)


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
    task = task_of(dataset.settings)
    timings: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    steps = tqdm(total=11, desc="analysis", disable=not progress)
    people, bots = split_clients(dataset.responses)
    if machine is not None:
        bots = pd.concat([bots, split_clients(machine)[1]], ignore_index=True)

    def step(name: str, t0: float) -> None:
        timings[name] = time.perf_counter() - t0
        steps.set_postfix_str(name)
        steps.update(1)

    t = time.perf_counter()
    if rules is None:
        rules = rules_for(dataset.settings)
    ex = apply_exclusions(people, dataset.participants, rules)
    tables["exclusion_summary"] = ex.summary
    tables["excluded_participants"] = ex.participants[ex.participants["excluded"]][
        ["participant_id", "exclusion_reasons"]]
    every_distribution = ex.responses
    scored_in = shifted.scored_distribution(every_distribution)
    responses = (every_distribution if shifted.COLUMN not in every_distribution.columns else
                 every_distribution[every_distribution[shifted.COLUMN].fillna(scored_in)
                                    == scored_in])
    if scores.main_trials(responses).empty:
        steps.close()
        raise NothingToScore(ex)
    step("exclusions", t)

    t = time.perf_counter()
    units = scores.unit_scores(responses)
    tables["unit_scores"] = units
    tables["model_scores"] = scores.model_scores(units, n_resamples, seed=seed, progress=progress)
    step("unit and model scores (BCa)", t)

    t = time.perf_counter()
    tables["model_scores_two_way"] = scores.two_way_scores(
        responses, two_way_resamples or n_resamples, seed=seed + 1, progress=progress)
    step("two-way bootstrap", t)

    t = time.perf_counter()
    tables["participant_summary"] = scores.participant_summary(responses)
    tables["accuracy_by_confidence"] = scores.accuracy_by_confidence(
        responses, n_resamples=n_resamples, seed=seed + 10)
    tables["rt_summary"] = scores.rt_summary(responses)
    step("participants, confidence, RT", t)

    t = time.perf_counter()
    tables["kruskal_wallis"], tables["conover_holm"] = stats.kruskal_models(units)
    tables["brunner_munzel"] = stats.brunner_munzel_pairs(units)
    for a, b in task.comparisons:
        tables[comparison_table(a, b)] = stats.paired_conditions(
            units, a, b, n_resamples=n_resamples, seed=seed + 2)
    tables["depth_spearman"] = stats.depth_correlation(units, dataset.units)
    tables["layer_scores"] = stats.layer_scores(units, dataset.units)
    chosen = selection_groups(units, dataset.units, min(n_resamples, 2000), seed + 7)
    if not chosen.empty:
        tables["selection_groups"] = chosen
    tables.update(shifted.tables(every_distribution, n_resamples, seed + 8))
    extension = task_analysis(task)
    task_tables: list[str] = []
    if extension is not None:
        added = extension.tables(scores.main_trials(responses))
        tables.update(added)
        task_tables = list(added)
    step("tests", t)

    t = time.perf_counter()
    mm, mixed_failed = None, ""
    scored = scores.main_trials(every_distribution)
    factors = stats.with_query_distribution(task.factors, scored)
    if mixed and scored["participant_id"].nunique() > 1 and scored["correct"].nunique() > 1:
        fit = partial(stats.mixed_model, every_distribution, dataset.models, seed=seed + 3,
                      margin=margin, reference=task.reference_condition, factors=factors,
                      engine=mixed_engine)
        try:
            mm = fit(max_rows=mixed_rows)
        except DataError as exc:  # e.g. glmer refusing odd pilot data: the rest still runs
            mixed_failed = str(exc)
        else:
            tables["mixed_model_fixed"] = mm.fixed
            tables["mixed_model_variance"] = mm.variance
            if mm.n_used < mm.n_rows:  # a subsample asked for: what it costs, on these data
                tables["mixed_model_subsample"] = stats.compare_fits(mm, fit(max_rows=None))
            if not mm.scale_slopes.empty:
                tables["mixed_model_scale_slopes"] = mm.scale_slopes
    step("mixed model", t)

    t = time.perf_counter()
    ms = tables["model_scores"]
    tables["scaling_spearman"] = scaling.spearman_trend(ms, dataset.models,
                                                        n_resamples=n_resamples, seed=seed + 4)
    tables["scaling_slopes"] = scaling.scaling_slopes(ms, dataset.models, margin=margin)
    step("scaling", t)

    t = time.perf_counter()
    base = float(np.clip(ms["score"].mean(), 0.55, 0.95 - power_difference))
    unit_sd, participant_sd = 0.8, 0.4
    if mm is not None:
        v = mm.variance.set_index("component")["sd"]
        # a unit's SD within one condition: its shared and its condition-specific part
        unit_sd = float(np.hypot(v.get("unit", unit_sd), v.get("unit:condition", 0.0)))
        participant_sd = float(v.get("participant", participant_sd))
    per_participant = int(scored.groupby("participant_id", observed=True).size().median())
    tables["power"] = scaling.power_analysis(
        difference=power_difference, base_accuracy=base, unit_sd=unit_sd,
        participant_sd=participant_sd, n_sims=power_sims, seed=seed + 5,
        trials_per_participant=per_participant)
    step("power", t)

    t = time.perf_counter()
    if shifted.COLUMN in bots.columns:  # compared on the same queries as the scores
        bots = bots[bots[shifted.COLUMN].fillna(scored_in) == scored_in]
    if not bots.empty:
        tables.update(machine_vs_human(responses, bots, min(n_resamples, 2000), seed + 6))
    tables.update(calibration.tables(responses, bots, min(n_resamples, 2000), seed + 9))
    step("machine vs human", t)
    steps.close()
    for name in (*BY_MODEL, *(comparison_table(a, b) for a, b in task.comparisons)):
        if name in tables:  # IMI's order; other tables keep their own (e.g. largest gap first)
            tables[name] = sort_by_model(tables[name], dataset.models)

    settings = {"task_type": task.name, "chance": task.chance,
                "comparisons": [f"{a} - {b}" for a, b in task.comparisons],
                "mixed_factors": list(factors), "task_tables": task_tables,
                "query_distributions": shifted.distributions(every_distribution),
                "scored_distribution": scored_in,
                "reference_condition": task.reference_condition,
                "n_resamples": n_resamples, "two_way_resamples": two_way_resamples or n_resamples,
                "seed": seed, "seeds": {"bca_units": seed, "two_way": seed + 1,
                                        "paired": seed + 2, "mixed_subsample": seed + 3,
                                        "spearman": seed + 4, "power": seed + 5,
                                        "machine": seed + 6, "selection": seed + 7,
                                        "shifted": seed + 8, "calibration": seed + 9},
                "mixed_rows": mixed_rows, "mixed_engine": None if mm is None else mm.engine,
                "mixed_not_fitted": mixed_failed,
                "tost_margin": margin,
                "power": {"difference": power_difference, "base_accuracy": base,
                          "unit_sd": unit_sd, "participant_sd": participant_sd,
                          "trials_per_participant": per_participant, "n_sims": power_sims},
                "rules": [r.describe() for r in ex.rules], "source": dataset.source}
    return AnalysisResult(tables=tables, exclusions=ex, mixed=mm, settings=settings,
                          timings=timings)


CALIBRATION_TEXT = (
    "<p>Some units came from interpsy's calibration model (<code>calibration-net</code>), whose "
    "units do what their construction says: oriented edges, colour-opponent blobs, "
    "centre-surround and texture detectors, random controls, and polysemantic mixtures "
    "max(A, m &times; B) at mixing knobs m. Their known order (1 for a pure detector, "
    "1 &minus; m/2 for a mixture, 0 for a control) is what any trustworthy score must "
    "reproduce: Spearman's rho per source with a percentile bootstrap interval over units "
    "should be near 1 before the score is trusted on real models. The psychometric function "
    "(chance + (1 &minus; lapse &minus; chance) &middot; logistic) of proportion correct "
    "against m gives each explanation type's resolution m50, the mixing at which accuracy "
    "has fallen halfway to chance, with an interval from refits on resampled "
    "participants. The knobs tested bound what m50 can say (0.25 apart in the shipped model: "
    "between two knobs the data hardly tell where the fall happens), and with fewer than about "
    "10 participants per explanation type the resampled interval is too narrow. A unit's score "
    "rests on its distinct query pairs (<code>pairs_per_unit</code>, one per exemplar batch: 5 "
    "in the demo); <code>unit_se</code> is a unit's typical standard error over them, and "
    "two single units closer than about twice it are not told apart: at 5 pairs a random "
    "control and a detector can swap places unit by unit, and only the order over all units "
    "(rho) resolves them.</p>")


CONTROL_TEXT = (
    "<p>Every task carried trials of the calibration model's units (the spec's "
    "<code>[calibration]</code>), shuffled into the main block and drawn like the study's own: "
    "nothing on the page told them apart. Their answer follows from each unit's construction, "
    "so the share a participant got right is a control score that is harder to game than "
    "catch trials (whose answer is among the references). The study's scores leave these "
    "trials out. Below: how the control score goes with accuracy on the study's own trials "
    "(Spearman's rho across participants), then each participant's score; the spec's "
    "<code>exclusions.min_calibration_correct</code>, when set, excludes those below it.</p>")


SHIFTED_TEXT = (
    "<p>Some trials' queries came from shifted distributions (a shift of the stimulus set's own "
    "images, or another domain; <code>interpsy stimuli shift</code>); their references were the "
    "same in-distribution exemplars. The scores, comparisons and tests above use the "
    "<b>{scored}</b> queries only; the mixed model takes every trial, with query_distribution "
    "and its interaction with condition as fixed effects (against <code>in</code>). Here: each "
    "unit's proportion correct with in-distribution and with shifted queries in the same "
    "condition and difficulty, and the gap (in &minus; shifted). Per unit the gap has "
    "Newcombe's hybrid score interval; per model the means over units have BCa bootstrap "
    "intervals over units (the gap's resamples each unit's own gap). A gap well above zero "
    "says the explanation helps predict the unit on the images it was made from but less on "
    "images the unit also responds to from elsewhere.</p>")


def comparison_table(a: str, b: str) -> str:
    """The name of the table (and figure) comparing conditions `a` and `b` paired per unit."""
    return f"{a}_vs_{b}"


def task_analysis(task: TaskType):
    """The module holding the task type's own tables (`tables`, `SECTION`), or None."""
    return None if task.analysis is None else importlib.import_module(task.analysis)


def make_figures(result: AnalysisResult, dataset: Dataset, folder: Path) -> dict[str, list[Path]]:
    """Draw every figure of the report into `folder`."""
    t = result.tables
    task = task_of(dataset.settings)
    chance = task.chance
    order = model_order(t["model_scores"]["model"].unique(), dataset.models)
    figures = {"model_scores": plots.plot_model_scores(t["model_scores"], chance=chance,
                                                       order=order),
               "model_scores_two_way": plots.plot_model_scores(
                   t["model_scores_two_way"], "Score per model (two-way bootstrap 95% CI)",
                   chance=chance, order=order),
               **{comparison_table(a, b): plots.plot_paired(t["unit_scores"], a, b)
                  for a, b in task.comparisons if not t[comparison_table(a, b)].empty},
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
    """Run the analysis and write tables (CSV), figures (PNG, SVG) and report.html into `out`."""
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
    return result


def _write_exclusions_only(nothing: NothingToScore, dataset: Dataset, out: Path) -> None:
    """What can be written when nothing is left to score: the exclusion tables and a report
    saying which rule removed whom."""
    ex = nothing.exclusions
    ex.summary.to_csv(out / "tables" / "exclusion_summary.csv", index=False)
    ex.participants.to_csv(out / "tables" / "participant_flags.csv", index=False)
    excluded = ex.participants[ex.participants["excluded"]][["participant_id", "exclusion_reasons"]]
    excluded.to_csv(out / "tables" / "excluded_participants.csv", index=False)
    body = (f"<p><b>Nothing left to score.</b> {html.escape(str(nothing))}.</p>"
            + _exclusions_body(ex.summary, excluded))
    (out / "report.html").write_text(_page([("Exclusions", "exclusions", body)]), encoding="utf-8")


# ----------------------------------------------------------------------------- HTML

def _cell(value: Any) -> str:
    """A table cell's text: 4 significant digits for floats, empty for missing values."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame | None, heading: str, max_rows: int = 200) -> str:
    """An h3 heading and the table: numbers right-aligned, text left-aligned."""
    title = f"<h3>{html.escape(heading)}</h3>"
    if frame is None or frame.empty:
        return title + "<p class='note'>(no rows: the data needed for this table is not there)</p>"
    shown = frame.head(max_rows)
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
               for c in shown.columns]
    align = ["num" if n else "txt" for n in numeric]
    head = "".join(f"<th class='{a}'>{html.escape(str(c))}</th>"
                   for c, a in zip(shown.columns, align))
    body = "".join("<tr>" + "".join(f"<td class='{a}'>{_cell(v)}</td>" for v, a in zip(row, align))
                   + "</tr>" for row in shown.itertuples(index=False, name=None))
    text = f"{title}<table class='t'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if len(frame) > max_rows:
        text += f"<p class='note'>first {max_rows} of {len(frame)} rows; all in the CSV.</p>"
    return text


def _figure(result: AnalysisResult, name: str, caption: str) -> str:
    paths = result.figures.get(name)
    if not paths:
        return f"<p class='note'>({caption}: not drawn, the data needed is missing)</p>"
    png, svg = (f"figures/{p.name}" for p in paths)
    return (f"<figure><img src='{png}' alt='{html.escape(caption)}'><figcaption>"
            f"{html.escape(caption)} (<a href='{svg}'>SVG</a>)</figcaption></figure>")


def _section(title: str, body: str, anchor: str) -> str:
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{body}</section>"


def _mixed_body(mm: stats.MixedModelResult, comparison: pd.DataFrame | None) -> str:
    """Engine, method, notes and tables of the mixed model, what the intervals are and, when a
    subsample was fitted, what it cost against every row of these data."""
    engine = ("lme4's glmer" if mm.engine == "glmer" else
              "statsmodels' variational Bayes (the fallback when R and lme4 are missing)")
    interval = stats.GLMER_INTERVAL_TEXT if mm.engine == "glmer" else stats.JOINT_INTERVAL_TEXT
    text = (f"<p><b>Engine: {html.escape(engine)}</b>. {html.escape(mm.method)}; "
            f"{mm.n_used:,} of {mm.n_rows:,} scored rows; fixed effects on the logit scale; "
            f"random intercepts for {', '.join(mm.variance['component'])}. "
            f"{html.escape('; '.join(mm.notes))}. {html.escape(interval)}</p>")
    if comparison is not None and not comparison.empty:
        text += _subsample_text(comparison) + _table(comparison, "Subsample against every row")
    text += _table(mm.fixed, "Fixed effects (logit)") + _table(
        mm.variance, "Variance components (SD of each random intercept, logit)")
    if mm.scale is not None:
        text += (f"<p>{html.escape(stats.SLOPE_INTERVAL_TEXT)} The row with used = True is the "
                 f"log10_scale row of the fixed effects. Each between-model row also has a TOST "
                 f"(&alpha; = 0.05) against the margin in logits (margin_logit: the report's "
                 f"margin in proportion correct, divided by the mean p(1 &minus; p) of the fitted "
                 f"probabilities in the reference condition); "
                 f"'equivalent' is true when the 90% interval lies inside &plusmn;margin_logit. "
                 f"n_distinct: distinct values of the scale variable among the models (few "
                 f"distinct values mean the slope contrasts groups of models).</p>"
                 + _table(mm.scale_slopes, "Scale slopes (logit per unit of each scale variable)"))
    return text


def _subsample_text(comparison: pd.DataFrame) -> str:
    """What the subsample cost here: interval widths and the TOST verdict against every row."""
    rows, seconds = comparison.attrs.get("rows", (0, 0)), comparison.attrs.get("seconds", (0, 0))
    fixed = comparison[comparison["kind"] == "fixed effect"]
    ratios = fixed["width_ratio"]
    widest = fixed.loc[ratios.idxmax()] if ratios.notna().any() else None
    text = (f"<p><b>The mixed model above is fitted on a subsample</b> ({rows[0]:,} of "
            f"{rows[1]:,} rows, whole participants, seeded; {seconds[0]:.1f} s). The same model "
            f"on every row took {seconds[1]:.1f} s. ")
    if widest is not None:
        text += (f"The subsample's intervals are {fixed['width_ratio'].min():.2f}-"
                 f"{fixed['width_ratio'].max():.2f} times as wide (widest: "
                 f"{html.escape(str(widest['term']))}, {widest['width_subsample']:.3f} against "
                 f"{widest['width_all']:.3f} logits); estimates differ by up to "
                 f"{(fixed['estimate_subsample'] - fixed['estimate_all']).abs().max():.3f} "
                 f"logits. ")
    tost = comparison.attrs.get("tost", {})
    if len(tost) == 2:
        (p_sub, eq_sub), (p_all, eq_all) = tost["subsample"], tost["all rows"]
        same = "the same verdict" if eq_sub == eq_all else "<b>a different verdict</b>"
        text += (f"The scale slope's equivalence test gives p = {p_sub:.3f} "
                 f"({'equivalent' if eq_sub else 'not equivalent'}) on the subsample and "
                 f"p = {p_all:.3f} ({'equivalent' if eq_all else 'not equivalent'}) on every "
                 f"row: {same}. ")
    return text + "</p>"


def _loading_notes(dataset: Dataset) -> str:
    """What loading did to the data (rows removed, positions unknown, units file), as a list;
    the loaders write one note per such fact (read_trials: one per `drop` column)."""
    if not dataset.notes:
        return ""
    return ("<h3>While loading</h3><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in dataset.notes) + "</ul>")


MACHINE_TABLES = (("machine_correlations", "Correlation of machine and human unit scores"),
                  ("machine_noise_ceiling", "Human noise ceiling"),
                  ("machine_model_ranking", "Model ranking"),
                  ("machine_disagreements", "Where machine and people disagree most"),
                  ("machine_units", "Unit scores (first rows; all in tables/machine_units.csv)"))
MACHINE_TEXT = (
    "<p>Each machine observer's unit score is the mean of its p_correct over the unit's scored "
    "trials (the MIS for the mis observer); the human score the proportion correct of the "
    "people's scored trials (excluded participants left out), for the units and conditions "
    "both answered. Spearman and Pearson r with percentile bootstrap intervals over units, over "
    "all units and per model. The noise ceiling is the people's split-half reliability of the "
    "unit scores (each unit's trials split at random, Spearman r of the halves, Spearman-Brown "
    "corrected, averaged over splits; bootstrap interval over units): no score can correlate "
    "with the human unit scores much beyond its square root (ceiling_r). Kendall's tau compares "
    "the models' order by mean score; the disagreements are the units whose machine and human "
    "percentile ranks differ most.</p>")


def _exclusions_body(summary: pd.DataFrame, excluded: pd.DataFrame | None) -> str:
    """The rules' summary and (unless None: listed elsewhere) the excluded participants."""
    return ("<p>Rules flag participants; no row is deleted. Excluded participants' trials are "
            "left out of every score. 'not_evaluable' counts participants for whom the data the "
            "rule needs is missing (they are not excluded by that rule); 'note' says why ('not "
            "applicable: ...' when no participant could be checked, e.g. IMI's release has no "
            "query positions). failed_practice counts the participants who never passed the "
            "practice block; they are not among the kept.</p>"
            + _table(summary, "Exclusion rules and how many each excluded")
            + ("" if excluded is None else _table(excluded, "Excluded participants and why")))


def _page(sections: list[tuple[str, str, str]]) -> str:
    """The HTML page: a table of contents and each (title, anchor, body) section."""
    toc = "".join(f"<li><a href='#{a}'>{html.escape(n)}</a></li>" for n, a, _ in sections)
    body = "".join(_section(n, b, a) for n, a, b in sections)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
             "color:#222}table.t{border-collapse:collapse;font-size:12px;margin:.5em 0}"
             "table.t td,table.t th{border-bottom:1px solid #ddd;padding:2px 6px}"
             ".num{text-align:right}.txt{text-align:left}"
             "figure img{max-width:100%}.note{color:#666;font-size:12px}h2{border-top:2px solid "
             "#444;padding-top:.5em}h3{font-size:14px;margin-bottom:.2em}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>interpsy analysis</title>"
            f"<style>{style}</style></head><body><h1>interpsy analysis report</h1>"
            f"<ul>{toc}</ul>{body}</body></html>")


def render_html(result: AnalysisResult, dataset: Dataset) -> str:
    """The report: every table and figure, the exclusion summary, methods and settings."""
    t = result.tables
    task = task_of(dataset.settings)
    extension = task_analysis(task)
    extension_tables = [] if extension is None else [
        name for name in t if name in result.settings.get("task_tables", ())]
    r = split_clients(dataset.responses)[0]
    main = scores.main_trials(result.exclusions.responses, include_excluded=True)
    s = result.settings
    models_in_order = model_order(main["model"].dropna().unique(), dataset.models)
    overview = pd.DataFrame([
        {"item": "source", "value": dataset.source},
        {"item": "rows (all trials shown)", "value": len(r)},
        {"item": "scored trials (main, not catch), before exclusions", "value": len(main)},
        {"item": "scored trials after exclusions",
         "value": int(scores.main_trials(result.exclusions.responses).shape[0])},
        {"item": "participants", "value": r["participant_id"].nunique()},
        {"item": "models (IMI's order, by scale)", "value": ", ".join(models_in_order)},
        {"item": "units", "value": main["unit_id"].nunique()},
        {"item": "conditions", "value": ", ".join(sorted(main["condition"].dropna().unique()))},
        {"item": "query difficulties",
         "value": ", ".join(sorted(main["difficulty"].dropna().unique()))},
        {"item": "query distributions", "value": ", ".join(s["query_distributions"])},
        {"item": "mixed model engine", "value": s.get("mixed_engine") or "not fitted"},
    ]).astype({"value": str})
    mm = result.mixed
    mixed_body = (f"<p class='note'>not fitted{': ' if s.get('mixed_not_fitted') else ''}"
                  f"{html.escape(s.get('mixed_not_fitted') or '')}</p>" if mm is None
                  else _mixed_body(mm, t.get("mixed_model_subsample")))
    margin = s["tost_margin"]
    p = s["power"]
    excluded = t["excluded_participants"]
    sections = [
        ("Dataset", "dataset", _table(overview, "What was analysed") + _loading_notes(dataset)),
        ("Exclusions", "exclusions", _exclusions_body(t["exclusion_summary"], None)
         + "<p class='note'>The excluded participants are listed after the scores.</p>"),
        ("Scores per model and condition", "scores",
         f"<p>Score = mean over units of each unit's proportion correct. Interval: BCa "
         f"bootstrap over units, {s['n_resamples']} resamples, seed {s['seeds']['bca_units']}"
         f" (IMI's interval). Models in IMI's order (by scale).</p>"
         + _table(t["model_scores"], "Score per model and condition (BCa 95% CI over units)")
         + _figure(result, "model_scores", "Score per model: markers are the mean over units, "
                   "vertical lines the BCa 95% interval; grey dashed line: chance")
         + f"<p>Two-way bootstrap: participants and units resampled independently "
         f"({s['two_way_resamples']} resamples, seed {s['seeds']['two_way']}); percentile "
         f"interval. Wider than the BCa interval when participants differ, because each "
         f"participant answers many units.</p>"
         + _table(t["model_scores_two_way"], "Score per model, two-way bootstrap (participants "
                  "and units)")
         + _figure(result, "model_scores_two_way", "Score per model: vertical lines are the "
                   "two-way bootstrap 95% interval; grey dashed line: chance")
         + _table(t["participant_summary"], "Mean \u00b1 2 SEM over participants "
                  "(Borowski et al.'s convention)")
         + _table(excluded, "Excluded participants and why")),
        ("Unit scores", "units", "<p>Proportion correct per unit with a Wilson 95% interval "
         "(all rows in tables/unit_scores.csv).</p>"
         + _table(t["unit_scores"], "Unit scores (first rows)", 40)),
        ("Conditions compared, paired per unit", "paired",
         "<p>For each pair of conditions the task type compares: the difference of unit scores "
         "(first &minus; second) for units tested in both; Wilcoxon signed-rank test; BCa "
         "interval of the mean difference.</p>"
         + "".join(_table(t[comparison_table(a, b)], f"{a} vs {b}, paired per unit")
                   + _figure(result, comparison_table(a, b), f"Unit scores, {a} vs {b}")
                   for a, b in task.comparisons)),
        ("Differences between models", "models",
         "<p>Kruskal-Wallis across models on unit scores, per condition (scipy.stats.kruskal, "
         "as IMI). Effect sizes: epsilon_squared = H / (n &minus; 1); eta_squared_h = "
         "(H &minus; k + 1) / (n &minus; k) (n units, k models); IMI reports neither. With fewer "
         f"than {MIN_N} units in a model a test prints a note instead of a p-value.</p>"
         + _table(t["kruskal_wallis"], "Kruskal-Wallis per condition")
         + _table(t["conover_holm"], "Conover-Iman post-hoc, Holm-adjusted per condition "
                  "(IMI: scikit-posthocs posthoc_conover, p_adjust='holm')")
         + f"<p>Brunner-Munzel for each pair of models (scipy.stats.brunnermunzel, two-sided) "
         f"as IMI runs it: the t distribution when the smaller group has at most "
         f"{stats.BM_NORMAL_ABOVE} units, else the normal approximation (column distribution); "
         f"p-values not adjusted for multiple comparisons, as in IMI. p_a_less_b estimates "
         f"P(unit score of a &lt; that of b) + &frac12; P(tie).</p>"
         + _table(t["brunner_munzel"], "Brunner-Munzel for each pair of models")),
        *([(extension.SECTION[0], "task", extension.SECTION[1] + "".join(
            _table(t[name], name.replace("_", " ")) for name in extension_tables))]
          if extension is not None else []),
        *([("Units chosen by machine score", "selection",
            "<p>The experiment chose its main units by a machine observer's unit scores "
            "(the spec's <code>[select_units]</code>): the highest-scoring (easiest), "
            "the lowest-scoring (hardest) and random ones. Per group: the people's mean "
            "unit score with a BCa interval over units and the mean machine score; then "
            "easiest against hardest, Brunner-Munzel on the unit scores "
            "(p_easiest_higher estimates P(a hardest unit scores below an easiest one) "
            "+ &frac12; P(tie)). Do people find the machine's easy units easier?</p>"
            + _table(t["selection_groups"], "People's scores per selection group"))]
          if "selection_groups" in t else []),
        *([("Shifted queries", "shifted",
            SHIFTED_TEXT.format(scored=html.escape(s["scored_distribution"]))
            + _table(t["shifted_model_gaps"], "Per model")
            + _figure(result, "shifted", "Score lost with shifted queries per model")
            + _table(t["shifted_unit_gaps"], "Per unit, largest gap first", 40))]
          if "shifted_model_gaps" in t else []),
        *([("Calibration trials (per-participant control score)", "control-score",
            CONTROL_TEXT + _table(t["calibration_control_summary"], "Control score against "
                                  "accuracy on the study's own trials")
            + _table(t["calibration_control_scores"], "Each participant's control score", 60))]
          if "calibration_control_scores" in t else []),
        *([("Calibration units", "calibration", CALIBRATION_TEXT
            + _table(t["calibration_order"], "Does each score order the units as their "
                     "construction says?")
            + (_table(t["calibration_psychometric"], "Psychometric function against the "
                      "mixing knob")
               + _figure(result, "calibration", "Proportion correct against mixing")
               if "calibration_psychometric" in t else ""))]
          if "calibration_order" in t else []),
        *([("Machine observers vs people", "machine", MACHINE_TEXT + "".join(
            _table(t[name], title, 40) for name, title in MACHINE_TABLES if name in t)
            + _figure(result, "machine_vs_human", "Machine score against human score per unit"))]
          if "machine_units" in t else []),
        ("Mixed-effects logistic regression", "mixed", mixed_body),
        ("Scaling trends", "scaling",
         "<p>Spearman's rho of model score against each scale variable, with a "
         "percentile bootstrap interval over models.</p>"
         + _table(t["scaling_spearman"], "Spearman's rho of model score and scale")
         + f"<p>Least-squares slope of model score on log10 parameters, log10 training "
         f"images, or top-1 in steps of 10 points (one point per model; t interval with "
         f"models &minus; 2 df). Equivalence (TOST, &alpha; = 0.05): 'equivalent' is true "
         f"when the slope is shown to lie within &plusmn;{margin} proportion correct per "
         f"unit of the scale variable (the stated margin, e.g. {margin * 100:.0f} "
         f"percentage points per 10&times; parameters). A non-significant slope alone is "
         f"not evidence of no effect. n_distinct counts the distinct values of the "
         f"scale variable: with few the slope contrasts groups of models rather than a "
         f"trend. The mixed model's between-model slopes on every "
         f"scale variable, with their own TOST, are in the mixed-model section.</p>"
         + _table(t["scaling_slopes"], "Slope of model score on each scale variable")
         + _figure(result, "scale", "Score against model scale: markers are each model's "
                   "mean over units, vertical lines its BCa 95% interval; the dashed and dotted "
                   "lines are the least-squares fits of the table above (one per condition); "
                   "the grey dashed line is chance")),
        ("Power analysis", "power",
         f"<p>Simulated power to detect a difference of {p['difference']} in mean unit "
         f"score between two models (Brunner-Munzel, &alpha; = 0.05, {p['n_sims']} "
         f"simulations per cell, seed {s['seeds']['power']}), at base accuracy "
         f"{p['base_accuracy']:.3f}, unit SD {p['unit_sd']:.3f} and participant SD "
         f"{p['participant_sd']:.3f} (logit; from the mixed model when fitted); each "
         f"simulated participant answers {p['trials_per_participant']} distinct units of "
         f"one model (the median number of scored trials per participant here), so "
         f"units share participant effects as in real sessions (which also makes a "
         f"test on unit scores reject a true null somewhat more often than &alpha;).</p>"
         + _table(t["power"], "Power per design") + _figure(result, "power", "Power")),
        ("Confidence and reaction times", "confidence",
         f"<p>Accuracy per confidence level as IMI computes it: among the trials answered at "
         f"that level, the mean of the units' proportions correct, with a BCa interval over "
         f"units ({s['n_resamples']} resamples); per model and over all models (model 'all'). "
         f"pooled_accuracy is correct over trials (trials taken as independent; not IMI's).</p>"
         + _table(t["accuracy_by_confidence"], "Accuracy by confidence")
         + _figure(result, "confidence", "Accuracy by confidence over all models: markers "
                   "are the mean of unit accuracies, vertical lines the BCa 95% interval")
         + _table(t["rt_summary"], "Reaction times (ms)")),
        ("Layer depth", "depth",
         "<p>As IMI: the units of each layer averaged first (unweighted), then Spearman's rho "
         "of the layer means against the layer's relative depth, per model and condition "
         f"(n = layers). With fewer than {MIN_N} layers the row carries a note instead "
         f"of a p-value.</p>"
         + _table(t["depth_spearman"], "Spearman's rho of layer score and relative depth")
         + _figure(result, "depth", "Score by relative layer depth: small dots are units, "
                   "large markers the layer means with a t 95% interval over the layer's "
                   "units")),
        ("Methods and settings", "methods", "<pre>" + html.escape(json.dumps(
            {**s, "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
             "python": platform.python_version(), "numpy": np.__version__,
             "pandas": pd.__version__,
             "created_at": datetime.now(UTC).isoformat(timespec="seconds")},
            indent=2, default=str)) + "</pre>"),
    ]
    return _page(sections)


__all__ = ["AnalysisResult", "analyze", "make_figures", "render_html", "run_analysis"]
