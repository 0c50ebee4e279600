"""The HTML report: analysis/templates/report.html (Jinja) filled from an AnalysisResult; the
template holds the words, this module what they are filled with and how tables and figures
are written."""
from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from analysis import scores, stats
from analysis.bootstrap import MIN_N
from analysis.exclusions import ExclusionResult
from analysis.load import Dataset, model_order, task_of
from analysis.machine import split_clients
from analysis.result import AnalysisResult, comparison_table, task_analysis

# Every section in the report's order: anchor -> title (the task type's own section is titled
# by the type's analysis module).
SECTIONS = {"dataset": "Dataset", "exclusions": "Exclusions",
            "scores": "Scores per model and condition", "units": "Unit scores",
            "paired": "Conditions compared, paired per unit",
            "models": "Differences between models", "task": "",
            "selection": "Units chosen by machine score", "shifted": "Shifted queries",
            "control-score": "Calibration trials (per-participant control score)",
            "calibration": "Calibration units", "machine": "Machine observers vs people",
            "mixed": "Mixed-effects logistic regression", "scaling": "Scaling trends",
            "power": "Power analysis", "confidence": "Confidence and reaction times",
            "depth": "Layer depth", "methods": "Methods and settings"}
# Sections shown only when the analysis made their first table.
OPTIONAL = {"selection": "selection_groups", "shifted": "shifted_model_gaps",
            "control-score": "calibration_control_scores", "calibration": "calibration_order",
            "machine": "machine_units"}
MACHINE_TABLES = (("machine_correlations", "Correlation of machine and human unit scores"),
                  ("machine_noise_ceiling", "Human noise ceiling"),
                  ("machine_model_ranking", "Model ranking"),
                  ("machine_disagreements", "Where machine and people disagree most"),
                  ("machine_units", "Unit scores (first rows; all in tables/machine_units.csv)"))

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("analysis", "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["one_line"] = lambda html: Markup(" ".join(html.split()))


def cell(value: Any) -> str:
    """A table cell's text: 4 significant digits for floats, empty for missing values."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def table(frame: pd.DataFrame | None, heading: str, max_rows: int = 200) -> Markup:
    """An h3 heading and the table: numbers right-aligned, text left-aligned."""
    return Markup(_ENV.get_template("table.html").render(
        frame=frame, heading=heading, max_rows=max_rows, cell=cell,
        align=[] if frame is None else [
            "num" if pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c]) else "txt" for c in frame.columns]))


def figure(result: Any, name: str, caption: str) -> Markup:
    """A figure of `result.figures` (name -> [png, svg]) with its caption and SVG link."""
    paths = result.figures.get(name)
    if not paths:
        return Markup("<p class='note'>({}: not drawn, the data needed is missing)</p>").format(
            caption)
    png, svg = (f"figures/{p.name}" for p in paths)
    return Markup("<figure><img src='{}' alt='{}'><figcaption>{} (<a href='{}'>SVG</a>)"
                  "</figcaption></figure>").format(png, caption, caption, svg)


def _overview(result: AnalysisResult, dataset: Dataset) -> pd.DataFrame:
    """What was analysed: rows, trials, participants, models, units, conditions, engine."""
    r = split_clients(dataset.responses)[0]
    main = scores.main_trials(result.exclusions.responses, include_excluded=True)
    s = result.settings
    return pd.DataFrame([
        {"item": "source", "value": dataset.source},
        {"item": "rows (all trials shown)", "value": len(r)},
        {"item": "scored trials (main, not catch), before exclusions", "value": len(main)},
        {"item": "scored trials after exclusions",
         "value": int(scores.main_trials(result.exclusions.responses).shape[0])},
        {"item": "participants", "value": r["participant_id"].nunique()},
        {"item": "models (IMI's order, by scale)",
         "value": ", ".join(model_order(main["model"].dropna().unique(), dataset.models))},
        {"item": "units", "value": main["unit_id"].nunique()},
        {"item": "conditions", "value": ", ".join(sorted(main["condition"].dropna().unique()))},
        {"item": "query difficulties",
         "value": ", ".join(sorted(main["difficulty"].dropna().unique()))},
        {"item": "query distributions", "value": ", ".join(s["query_distributions"])},
        {"item": "mixed model engine", "value": s.get("mixed_engine") or "not fitted"},
    ]).astype({"value": str})


def _subsample(comparison: pd.DataFrame | None) -> dict[str, Any] | None:
    """What fitting the mixed model on a subsample cost against every row (None: no subsample)."""
    if comparison is None or comparison.empty:
        return None
    fixed = comparison[comparison["kind"] == "fixed effect"]
    ratios = fixed["width_ratio"]
    widest = fixed.loc[ratios.idxmax()] if ratios.notna().any() else None
    return {"rows": comparison.attrs.get("rows", (0, 0)),
            "seconds": comparison.attrs.get("seconds", (0, 0)),
            "ratios": (ratios.min(), ratios.max()), "widest": widest,
            "shift": (fixed["estimate_subsample"] - fixed["estimate_all"]).abs().max(),
            "tost": comparison.attrs.get("tost", {}), "table": comparison}


def _page(shown: list[str], titles: dict[str, str], **context: Any) -> str:
    return render_page("report.html", shown=shown, titles=titles, **context)


def render_page(template: str, **context: Any) -> str:
    """A report page from its template in analysis/templates, with `table` at hand."""
    return _ENV.get_template(template).render(table=table, **context)


def render_html(result: AnalysisResult, dataset: Dataset) -> str:
    """The report: every table and figure, the exclusion summary, methods and settings."""
    t, s = result.tables, result.settings
    task_type = task_of(dataset.settings)
    extension = task_analysis(task_type)
    titles = {**SECTIONS, "task": "" if extension is None else extension.SECTION[0]}
    shown = [a for a in SECTIONS if (a != "task" or extension is not None)
             and (a not in OPTIONAL or OPTIONAL[a] in t)]
    methods = json.dumps({**s, "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
                          "python": platform.python_version(), "numpy": np.__version__,
                          "pandas": pd.__version__,
                          "created_at": datetime.now(UTC).isoformat(timespec="seconds")},
                         indent=2, default=str)
    mm = result.mixed
    return _page(
        shown, titles, t=t, s=s, p=s["power"], margin=s["tost_margin"], min_n=MIN_N,
        bm_normal_above=stats.BM_NORMAL_ABOVE, overview=_overview(result, dataset),
        notes=dataset.notes, summary=t["exclusion_summary"], excluded=None,
        nothing=None, comparisons=[(a, b, comparison_table(a, b)) for a, b in task_type.comparisons],
        extension=extension, extension_tables=[
            n for n in t if n in s.get("task_tables", ())] if extension is not None else [],
        machine_tables=[(n, title) for n, title in MACHINE_TABLES if n in t], mm=mm,
        engine=None if mm is None else ("lme4's glmer" if mm.engine == "glmer" else
                                        "statsmodels' variational Bayes (the fallback when R "
                                        "and lme4 are missing)"),
        interval=None if mm is None else (stats.GLMER_INTERVAL_TEXT if mm.engine == "glmer"
                                          else stats.JOINT_INTERVAL_TEXT),
        slope_interval=stats.SLOPE_INTERVAL_TEXT,
        subsample=_subsample(t.get("mixed_model_subsample")), methods=methods,
        figure=lambda name, caption: figure(result, name, caption))


def render_exclusions_only(nothing: Exception, ex: ExclusionResult,
                           excluded: pd.DataFrame) -> str:
    """The report when nothing is left to score: which rule removed whom."""
    return _page(["exclusions"], SECTIONS, summary=ex.summary, excluded=excluded,
                 nothing=str(nothing))
