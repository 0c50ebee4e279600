"""interpsy.analysis: load response datasets, exclude participants, score units and models,
test differences and scaling trends, draw figures and write reports. Never imports torch."""
from __future__ import annotations

from analysis.bootstrap import bca_mean, two_way_draws, wilson_interval
from analysis.exclusions import (
    CatchTrials,
    ExclusionResult,
    InstructionTime,
    MinAccuracy,
    PracticeAttempts,
    RepeatParticipant,
    ResponseRows,
    Rule,
    TotalTime,
    apply_exclusions,
    imi_rules,
)
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
from analysis.scaling import power_analysis, scaling_slopes, spearman_trend, tost_slope
from analysis.scores import (
    accuracy_by_confidence,
    main_trials,
    model_scores,
    participant_scores,
    participant_summary,
    rt_summary,
    two_way_scores,
    unit_scores,
)
from analysis.simulate import simulate
from analysis.stats import (
    brunner_munzel,
    brunner_munzel_pairs,
    conover_posthoc,
    depth_correlation,
    kruskal_models,
    mixed_model,
    paired_conditions,
)


def analyze(dataset: Dataset, out: str, **options):  # noqa: ANN201
    """Run the whole analysis and write report.html, tables/ and figures/ into `out`."""
    from analysis.report import analyze as _analyze

    return _analyze(dataset, out, **options)


__all__ = [
    "Dataset", "DataError", "load", "load_dataset", "read_trials", "read_imi", "read_models",
    "read_units", "attach_units",
    "imi_models", "attach_model_metadata", "simulate",
    "Rule", "CatchTrials", "ResponseRows", "TotalTime", "InstructionTime", "PracticeAttempts",
    "RepeatParticipant", "MinAccuracy", "imi_rules", "apply_exclusions", "ExclusionResult",
    "main_trials", "unit_scores", "model_scores", "two_way_scores", "participant_scores",
    "participant_summary", "accuracy_by_confidence", "rt_summary",
    "wilson_interval", "bca_mean", "two_way_draws",
    "kruskal_models", "conover_posthoc", "brunner_munzel", "brunner_munzel_pairs",
    "paired_conditions", "depth_correlation", "mixed_model",
    "spearman_trend", "scaling_slopes", "tost_slope", "power_analysis", "analyze",
]
