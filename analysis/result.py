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


def comparison_table(a: str, b: str) -> str:
    """The name of the table (and figure) comparing conditions `a` and `b` paired per unit."""
    return f"{a}_vs_{b}"


def task_analysis(task: TaskType) -> ModuleType | None:
    """The module holding the task type's own tables (`tables`, `SECTION`), or None."""
    return None if task.analysis is None else importlib.import_module(task.analysis)
