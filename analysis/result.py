"""What an analysis produces (every table, the exclusions, the mixed model, settings, timings,
figures) and the names its parts go by."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from analysis import stats
from analysis.exclusions import ExclusionResult
from experiments.tasks import get_task
from experiments.tasks.base import TaskType


@dataclass
class AnalysisResult:
    """Every table of an analysis, the exclusion result, settings and timings. Like a
    statsmodels result, the main tables are attributes (`model_scores`, `unit_scores`,
    `excluded`, ...) and `summary()` says the headline numbers in plain text."""

    tables: dict[str, pd.DataFrame]
    exclusions: ExclusionResult
    mixed: stats.MixedModelResult | None
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, list[Path]] = field(default_factory=dict)

    excluded = property(lambda self: self.tables["excluded_participants"])
    task_type = property(lambda self: self.settings["task_type"])
    chance = property(lambda self: self.settings["chance"])

    def __getattr__(self, name: str) -> pd.DataFrame:
        """A table by its name (`model_scores`, `unit_scores`, `natural_vs_synthetic`, ...)."""
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"no table or attribute {name!r} (tables: {', '.join(tables)})")

    def summary(self) -> str:
        """The headline numbers: task type, participants kept, each score with its interval,
        the paired comparisons and the mixed model's fixed effects when fitted."""
        flags = self.exclusions.participants
        rules = {rule.name for rule in self.exclusions.rules}
        lines = [f"task type: {self.task_type} (chance {self.chance:g})",
                 f"participants: {int((~flags['excluded']).sum())} of {len(flags)} kept; "
                 f"excluded by rule: " + (", ".join(
                     f"{r.rule} {int(r.participants)}" for r in self.exclusion_summary
                     .itertuples() if r.participants and r.rule in rules) or "none"),
                 "score per model and condition (mean of unit scores, BCa 95% CI over units):"]
        lines += [f"  {r.model} / {r.condition} / {r.difficulty}: {r.score:.3f} "
                  f"[{r.ci_low:.3f}, {r.ci_high:.3f}], {r.n_units} units"
                  for r in self.model_scores.itertuples()]
        for a, b in get_task(self.task_type).comparisons:
            table = self.tables.get(comparison_table(a, b))
            if table is not None and not table.empty:
                lines.append(f"{a} vs {b}, paired per unit:")
                lines += [f"  {row}" for row in table.to_string(index=False).splitlines()]
        if self.mixed is None:
            lines.append(f"mixed model: not fitted ({self.settings.get('mixed_not_fitted')})"
                         if self.settings.get("mixed_not_fitted") else "mixed model: not fitted")
        else:
            lines.append(f"mixed model ({self.mixed.engine}), fixed effects (logit):")
            lines += [f"  {row}" for row in self.mixed.fixed.to_string(index=False).splitlines()]
        return "\n".join(lines)


def comparison_table(a: str, b: str) -> str:
    """The name of the table (and figure) comparing conditions `a` and `b` paired per unit."""
    return f"{a}_vs_{b}"


def task_analysis(task: TaskType) -> ModuleType | None:
    """The module holding the task type's own tables (`tables`, `SECTION`), or None."""
    return None if task.analysis is None else importlib.import_module(task.analysis)
