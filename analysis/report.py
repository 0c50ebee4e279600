"""Run the whole analysis of a dataset and write tables, figures and an HTML report."""
from __future__ import annotations

import html
import importlib
import json
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis import calibration, plots, scaling, scores, shifted, stats
from analysis.exclusions import ExclusionResult, Rule, apply_exclusions, rules_for
from analysis.load import Dataset, task_of
from analysis.machine import machine_vs_human, selection_groups, split_clients
from experiments.tasks.base import TaskType


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
                 mixed_rows: int = 8_000, mixed: bool = True, margin: float = scaling.DEFAULT_MARGIN,
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
        from analysis.load import DataError
        raise DataError("no scored trials left (phase 'main', not catch, not excluded)")
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
    tables["accuracy_by_confidence"] = scores.accuracy_by_confidence(responses)
    tables["rt_summary"] = scores.rt_summary(responses)
    step("participants, confidence, RT", t)

    t = time.perf_counter()
    tables["kruskal_wallis"], tables["conover_holm"] = stats.kruskal_models(units)
    tables["brunner_munzel"] = stats.brunner_munzel_pairs(units)
    for a, b in task.comparisons:
        tables[comparison_table(a, b)] = stats.paired_conditions(
            units, a, b, n_resamples=n_resamples, seed=seed + 2)
    tables["depth_spearman"] = stats.depth_correlation(units, dataset.units)
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
    mm = None
    scored = scores.main_trials(every_distribution)
    factors = stats.with_query_distribution(task.factors, scored)
    if mixed and scored["participant_id"].nunique() > 1 and scored["correct"].nunique() > 1:
        mm = stats.mixed_model(every_distribution, dataset.models, max_rows=mixed_rows,
                               seed=seed + 3, margin=margin,
                               reference=task.reference_condition, factors=factors)
        tables["mixed_model_fixed"] = mm.fixed
        tables["mixed_model_variance"] = mm.variance
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
                "mixed_rows": mixed_rows, "tost_margin": margin,
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
    "10 participants per explanation type the resampled interval is too narrow.</p>")


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


def task_analysis(task: TaskType):  # noqa: ANN201 (a module)
    """The module holding the task type's own tables (`tables`, `SECTION`), or None."""
    return None if task.analysis is None else importlib.import_module(task.analysis)


def make_figures(result: AnalysisResult, dataset: Dataset, folder: Path) -> dict[str, list[Path]]:
    """Draw every figure of the report into `folder`."""
    t = result.tables
    task = task_of(dataset.settings)
    chance = task.chance
    figures = {"model_scores": plots.plot_model_scores(t["model_scores"], chance=chance),
               "model_scores_two_way": plots.plot_model_scores(
                   t["model_scores_two_way"], "Score per model (two-way bootstrap 95% CI)",
                   chance=chance),
               **{comparison_table(a, b): plots.plot_paired(t["unit_scores"], a, b)
                  for a, b in task.comparisons if not t[comparison_table(a, b)].empty},
               "scale": plots.plot_scale(t["model_scores"], dataset.models, chance=chance),
               "confidence": plots.plot_confidence(t["accuracy_by_confidence"], chance),
               "depth": plots.plot_depth(t["unit_scores"], dataset.units),
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
    result = run_analysis(dataset, progress=progress, **options)
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


# ----------------------------------------------------------------------------- HTML

def _table(frame: pd.DataFrame, max_rows: int = 200) -> str:
    if frame is None or frame.empty:
        return "<p class='note'>(no rows: the data needed for this table is not there)</p>"
    shown = frame.head(max_rows)
    text = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="",
                         border=0, classes="t", escape=True)
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


def _mixed_body(mm: stats.MixedModelResult) -> str:
    """Method, notes and tables of the mixed model, with what the slope interval is."""
    text = (f"<p>{html.escape(mm.method)}; fixed effects on the logit scale; random intercepts "
            f"for {', '.join(mm.variance['component'])}. {html.escape('; '.join(mm.notes))}. "
            f"{html.escape(stats.JOINT_INTERVAL_TEXT)}</p>")
    if mm.scale is not None:
        text += (f"<h3>Scale slopes (logit per unit of each scale variable)</h3><p>"
                 f"{html.escape(stats.SLOPE_INTERVAL_TEXT)} The row with used = True is the "
                 f"log10_scale row of the fixed effects. Each between-model row also has a TOST "
                 f"(&alpha; = 0.05) against the margin in logits (margin_logit: the report's "
                 f"margin in proportion correct, divided by the mean p(1 &minus; p) of the fitted "
                 f"probabilities in the reference condition); "
                 f"'equivalent' is true when the 90% interval lies inside &plusmn;margin_logit. "
                 f"n_distinct: distinct values of the scale variable among the models (few "
                 f"distinct values mean the slope contrasts groups of models).</p>"
                 + _table(mm.scale_slopes))
    return text + _table(mm.fixed) + _table(mm.variance)


def _loading_notes(dataset: Dataset) -> str:
    """What loading did to the data (rows removed, positions unknown, units file), as a list;
    the loaders write one note per such fact (read_trials: one per `drop` column)."""
    if not dataset.notes:
        return ""
    return ("<h3>While loading</h3><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in dataset.notes) + "</ul>")


# What the default subsample costs, measured on a simulated IMI-sized study (104,312 scored
# rows; benchmarks/RESULTS_analysis.md, "The mixed model at full size").
SUBSAMPLE_COST = ("On a simulated IMI-sized study (104,312 scored rows) the condition "
                  "effect's 95% interval is 3.5x wider at the default 8,000 rows than with all "
                  "rows (0.42 vs 0.12 logits) and the intercept's 2.6x; the estimates differ by "
                  "at most 0.04 logits; the between-model scale slope (9 models) does not "
                  "narrow. All rows took 93 s instead of 7 s on 2 cores.")


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
    overview = pd.DataFrame([
        {"item": "source", "value": dataset.source},
        {"item": "rows (all trials shown)", "value": len(r)},
        {"item": "scored trials (main, not catch), before exclusions", "value": len(main)},
        {"item": "scored trials after exclusions",
         "value": int(scores.main_trials(result.exclusions.responses).shape[0])},
        {"item": "participants", "value": r["participant_id"].nunique()},
        {"item": "models", "value": ", ".join(sorted(main["model"].dropna().unique()))},
        {"item": "units", "value": main["unit_id"].nunique()},
        {"item": "conditions", "value": ", ".join(sorted(main["condition"].dropna().unique()))},
        {"item": "query difficulties",
         "value": ", ".join(sorted(main["difficulty"].dropna().unique()))},
        {"item": "query distributions", "value": ", ".join(s["query_distributions"])},
    ])
    mm = result.mixed
    mixed_body = "<p class='note'>not fitted</p>" if mm is None else _mixed_body(mm)
    margin = s["tost_margin"]
    subsample = "" if mm is None or mm.n_used >= mm.n_rows else (
        f"<p><b>The mixed model is fitted on a subsample:</b> {mm.n_used:,} of the {mm.n_rows:,} "
        f"scored rows (every trial of a seeded random subset of participants; "
        f"<code>interpsy analyze --mixed-rows N</code> changes it). {SUBSAMPLE_COST}</p>")
    p = s["power"]
    sections = [
        _section("Dataset", subsample + _table(overview) + _loading_notes(dataset), "dataset"),
        _section("Exclusions", "<p>Rules flag participants; no row is deleted. Excluded "
                 "participants' trials are left out of every score below. 'not_evaluable' counts "
                 "participants for whom the data the rule needs is missing (they are not "
                 "excluded by that rule); 'note' says why ('not applicable: ...' when no "
                 "participant could be checked, e.g. IMI's release has no query positions).</p>" + _table(t["exclusion_summary"])
                 + "<h3>Excluded participants</h3>" + _table(t["excluded_participants"]),
                 "exclusions"),
        _section("Scores per model and condition",
                 f"<p>Score = mean over units of each unit's proportion correct. Interval: BCa "
                 f"bootstrap over units, {s['n_resamples']} resamples, seed {s['seeds']['bca_units']}"
                 f" (IMI's interval).</p>" + _table(t["model_scores"])
                 + _figure(result, "model_scores", "Score per model, BCa 95% CI")
                 + f"<h3>Two-way bootstrap (participants and units)</h3><p>Participants and units "
                 f"resampled independently ({s['two_way_resamples']} resamples, seed "
                 f"{s['seeds']['two_way']}); percentile interval. Wider than the BCa interval when "
                 f"participants differ, because each participant answers many units.</p>"
                 + _table(t["model_scores_two_way"])
                 + _figure(result, "model_scores_two_way", "Score per model, two-way 95% CI")
                 + "<h3>Mean &plusmn; 2 SEM over participants (Borowski et al.)</h3>"
                 + _table(t["participant_summary"]), "scores"),
        _section("Unit scores", "<p>Proportion correct per unit with a Wilson 95% interval "
                 "(all rows in tables/unit_scores.csv).</p>" + _table(t["unit_scores"], 40),
                 "units"),
        _section("Conditions compared, paired per unit",
                 "<p>For each pair of conditions the task type compares: the difference of "
                 "unit scores (first &minus; second) for units tested in both; Wilcoxon "
                 "signed-rank test; BCa interval of the mean difference.</p>"
                 + "".join(f"<h3>{html.escape(a)} vs {html.escape(b)}</h3>"
                           + _table(t[comparison_table(a, b)])
                           + _figure(result, comparison_table(a, b),
                                     f"Unit scores, {a} vs {b}")
                           for a, b in task.comparisons), "paired"),
        _section("Differences between models",
                 "<p>Kruskal-Wallis across models on unit scores, per condition.</p>"
                 + _table(t["kruskal_wallis"])
                 + "<h3>Conover-Iman post-hoc, Holm-adjusted per condition</h3>"
                 + _table(t["conover_holm"])
                 + "<h3>Brunner-Munzel for each pair of models, Holm-adjusted per condition</h3>"
                 "<p>p_a_less_b estimates P(unit score of a &lt; that of b) + &frac12; P(tie).</p>"
                 + _table(t["brunner_munzel"]), "models"),
        *([_section(extension.SECTION[0], extension.SECTION[1] + "".join(
            f"<h3>{html.escape(name)}</h3>" + _table(t[name]) for name in extension_tables),
            "task")] if extension is not None else []),
        *([_section("Units chosen by machine score",
                    "<p>The experiment chose its main units by a machine observer's unit scores "
                    "(the spec's <code>[select_units]</code>): the highest-scoring (easiest), "
                    "the lowest-scoring (hardest) and random ones. Per group: the people's mean "
                    "unit score with a BCa interval over units and the mean machine score; then "
                    "easiest against hardest, Brunner-Munzel on the unit scores "
                    "(p_easiest_higher estimates P(a hardest unit scores below an easiest one) "
                    "+ &frac12; P(tie)). Do people find the machine's easy units easier?</p>"
                    + _table(t["selection_groups"]), "selection")]
          if "selection_groups" in t else []),
        *([_section("Shifted queries", SHIFTED_TEXT.format(scored=html.escape(s["scored_distribution"]))
                    + "<h3>Per model</h3>" + _table(t["shifted_model_gaps"])
                    + _figure(result, "shifted", "Score lost with shifted queries per model")
                    + "<h3>Per unit, largest gap first</h3>" + _table(t["shifted_unit_gaps"], 40),
                    "shifted")] if "shifted_model_gaps" in t else []),
        *([_section("Calibration trials (per-participant control score)", CONTROL_TEXT
                    + _table(t["calibration_control_summary"])
                    + _table(t["calibration_control_scores"], 60), "control-score")]
          if "calibration_control_scores" in t else []),
        *([_section("Calibration units", CALIBRATION_TEXT
                    + "<h3>Does each score order the units as their construction says?</h3>"
                    + _table(t["calibration_order"])
                    + ("<h3>Psychometric function against the mixing knob</h3>"
                       + _table(t["calibration_psychometric"])
                       + _figure(result, "calibration", "Proportion correct against mixing")
                       if "calibration_psychometric" in t else ""), "calibration")]
          if "calibration_order" in t else []),
        *([_section("Machine observers vs people", MACHINE_TEXT + "".join(
            f"<h3>{html.escape(title)}</h3>" + _table(t[name], 40)
            for name, title in MACHINE_TABLES if name in t)
            + _figure(result, "machine_vs_human", "Machine score against human score per unit"),
            "machine")] if "machine_units" in t else []),
        _section("Mixed-effects logistic regression", mixed_body, "mixed"),
        _section("Scaling trends",
                 "<p>Spearman's rho of model score against each scale variable, with a "
                 "percentile bootstrap interval over models.</p>" + _table(t["scaling_spearman"])
                 + f"<p>Least-squares slope of model score on log10 parameters, log10 training "
                 f"images, or top-1 in steps of 10 points (one point per model; t interval with "
                 f"models &minus; 2 df). Equivalence (TOST, &alpha; = 0.05): 'equivalent' is true "
                 f"when the slope is shown to lie within &plusmn;{margin} proportion correct per "
                 f"unit of the scale variable (the stated margin, e.g. {margin * 100:.0f} "
                 f"percentage points per 10&times; parameters). A non-significant slope alone is "
                 f"not evidence of no effect. n_distinct counts the distinct values of the "
                 f"scale variable: with few (IMI's training-set sizes: 1.28 M images for most "
                 f"models, LAION or WIT for the CLIP models) the slope contrasts groups of "
                 f"models rather than a trend. The mixed model's between-model slopes on every "
                 f"scale variable, with their own TOST, are in the mixed-model section.</p>"
                 + _table(t["scaling_slopes"])
                 + _figure(result, "scale", "Score against model scale"), "scaling"),
        _section("Power analysis",
                 f"<p>Simulated power to detect a difference of {p['difference']} in mean unit "
                 f"score between two models (Brunner-Munzel, &alpha; = 0.05, {p['n_sims']} "
                 f"simulations per cell, seed {s['seeds']['power']}), at base accuracy "
                 f"{p['base_accuracy']:.3f}, unit SD {p['unit_sd']:.3f} and participant SD "
                 f"{p['participant_sd']:.3f} (logit; from the mixed model when fitted); each "
                 f"simulated participant answers {p['trials_per_participant']} distinct units of "
                 f"one model (the median number of scored trials per participant here), so "
                 f"units share participant effects as in real sessions (which also makes a "
                 f"test on unit scores reject a true null somewhat more often than &alpha;, "
                 f"e.g. 7.5-8% at IMI-like SDs).</p>"
                 + _table(t["power"]) + _figure(result, "power", "Power"), "power"),
        _section("Confidence and reaction times", _table(t["accuracy_by_confidence"])
                 + _figure(result, "confidence", "Accuracy by confidence")
                 + "<h3>Reaction times (ms)</h3>" + _table(t["rt_summary"]), "confidence"),
        _section("Layer depth", _table(t["depth_spearman"])
                 + _figure(result, "depth", "Unit score by relative layer depth"), "depth"),
        _section("Methods and settings", "<pre>" + html.escape(json.dumps(
            {**s, "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
             "python": platform.python_version(), "numpy": np.__version__,
             "pandas": pd.__version__,
             "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            indent=2, default=str)) + "</pre>", "methods"),
    ]
    toc = "".join(f"<li><a href='#{a}'>{n}</a></li>" for n, a in [
        ("Dataset", "dataset"), ("Exclusions", "exclusions"), ("Scores", "scores"),
        ("Unit scores", "units"), ("Conditions compared", "paired"), ("Models", "models"),
        *([(extension.SECTION[0], "task")] if extension is not None else []),
        *([("Units chosen by machine score", "selection")] if "selection_groups" in t else []),
        *([("Shifted queries", "shifted")] if "shifted_model_gaps" in t else []),
        *([("Control score", "control-score")] if "calibration_control_scores" in t else []),
        *([("Calibration units", "calibration")] if "calibration_order" in t else []),
        *([("Machine observers", "machine")] if "machine_units" in t else []),
        ("Mixed model", "mixed"), ("Scaling", "scaling"), ("Power", "power"),
        ("Confidence and RT", "confidence"), ("Depth", "depth"), ("Methods", "methods")])
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
             "color:#222}table.t{border-collapse:collapse;font-size:12px;margin:.5em 0}"
             "table.t td,table.t th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:right}"
             "figure img{max-width:100%}.note{color:#666;font-size:12px}h2{border-top:2px solid "
             "#444;padding-top:.5em}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>interpsy analysis</title>"
            f"<style>{style}</style></head><body><h1>interpsy analysis report</h1>"
            f"<ul>{toc}</ul>{''.join(sections)}</body></html>")


__all__ = ["run_analysis", "analyze", "make_figures", "render_html", "AnalysisResult"]
