"""interpsy.analysis: load response datasets, exclude participants, score units and models,
test differences and scaling trends, draw figures and write reports. Never imports torch."""
from __future__ import annotations

from importlib import import_module
from typing import Any

# `load` names both a module and its main function: the function is bound here, at once.
from analysis.load import (
    DataError,
    Dataset,
    attach_model_metadata,
    attach_units,
    imi_models,
    load,
    load_dataset,
    read_imi,
    read_models,
    read_trials,
    read_units,
)

# `simulate` too: once any module has imported analysis.simulate (the scaling module does),
# the package attribute is that module and a lazy lookup would never run.
from analysis.simulate import simulate

_LOADING = ("Dataset", "DataError", "load", "load_dataset", "read_trials", "read_imi",
            "read_models", "read_units", "attach_units", "imi_models", "attach_model_metadata",
            "simulate")
_MODULES = {  # the module defining each public name, imported on first use
    "analysis.exclusions": ("Rule", "CatchTrials", "ResponseRows", "TotalTime",
                            "InstructionTime", "PracticeAttempts", "RepeatParticipant",
                            "MinAccuracy", "imi_rules", "apply_exclusions", "ExclusionResult"),
    "analysis.scores": ("main_trials", "unit_scores", "model_scores", "two_way_scores",
                        "participant_scores", "participant_summary", "accuracy_by_confidence",
                        "rt_summary"),
    "analysis.bootstrap": ("wilson_interval", "bca_mean", "two_way_draws"),
    "analysis.stats": ("kruskal_models", "conover_posthoc", "brunner_munzel",
                       "brunner_munzel_pairs", "paired_conditions", "depth_correlation",
                       "mixed_model"),
    "analysis.scaling": ("spearman_trend", "scaling_slopes", "tost_slope", "power_analysis"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the defining module on first use, so that importing one module of the package
    (e.g. the exclusion rules, from the server) does not load statsmodels and matplotlib."""
    if name not in _WHERE:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def analyze(dataset: Any, out: str, **options: Any) -> Any:
    """Run the whole analysis and write report.html, tables/ and figures/ into `out`."""
    from analysis.report import analyze as _analyze

    return _analyze(dataset, out, **options)


__all__ = [*_LOADING, *_WHERE, "analyze"]
