"""The platform's vocabularies, each defined once: conditions, difficulties and their
percentiles, phases, clients, recruitment platforms, session statuses, the
benchmark's 16 categories and distortions (no pandas, no torch: every layer imports it)."""
from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

CONDITIONS = ("natural", "synthetic", "mixed", "none")
DIFFICULTIES = ("easy", "p99", "p95", "p85")  # easy: the extreme queries; pXX: percentile windows
PERCENTILES = {"p99": 99.0, "p95": 95.0, "p85": 85.0}  # each percentile difficulty's level
IN_DISTRIBUTION = "in"  # query_distribution of a set's own queries; shifted ones are named
PHASES = ("practice", "main")
CLIENTS = ("web", "lab", "machine")  # machine: an observer's answers (`interpsy observe`)
Platform = Literal["prolific", "mturk", "link", "lab"]  # where a session came from
PLATFORMS: tuple[str, ...] = get_args(Platform)
# The 16 entry-level categories of Geirhos et al.'s model-vs-human benchmark (16-class-ImageNet)
SIXTEEN_CLASSES = ("airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair",
                   "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck")
NO_RESPONSE = "na"  # a categorisation trial answered by no click within the response window
# The categorisation task's distortions (stimuli.distortions) and their levels as the
# model-vs-human benchmark's data write them; `original`: the image as it is
DISTORTION_LEVELS: dict[str, tuple[str, ...]] = {
    "original": ("0",),
    "colour": ("cr", "bw"),
    "contrast": ("c100", "c50", "c30", "c15", "c10", "c05", "c03", "c01"),
    "low-pass": ("0", "1", "3", "5", "7", "10", "15", "40"),
    "high-pass": ("inf", "3", "1.5", "1", "0.7", "0.55", "0.45", "0.4"),
    "phase-scrambling": ("0", "30", "60", "90", "120", "150", "180"),
    "power-equalisation": ("0", "pow"),
    "false-colour": ("true", "false"),
    "rotation": ("0", "90", "180", "270"),
    "uniform-noise": ("0.00", "0.03", "0.05", "0.10", "0.20", "0.35", "0.60", "0.90"),
    # reach-coherence x 10-grain, reach 1 to 128 px at coherence 1.0, 0.3 and 0.0
    **{f"eidolon{suffix}": tuple(f"{2 ** k}-{coherence}-10" for k in range(8))
       for suffix, coherence in (("I", 10), ("II", 3), ("III", 0))},
}


class SessionStatus(StrEnum):
    """A session's state in the store (the export's participant status derives from it)."""

    ACTIVE = "in_progress"
    COMPLETED = "completed"
    FAILED_PRACTICE = "failed_practice"
    TIMED_OUT = "timed_out"
    RESTARTED = "restarted"  # replaced by a new session of the same participant
    RETURNED = "returned"  # marked by the researcher: returned on the platform
    EXCLUDED = "excluded"  # marked by the researcher


FINISHED = (SessionStatus.COMPLETED, SessionStatus.FAILED_PRACTICE)
RESUMABLE = (SessionStatus.ACTIVE, SessionStatus.TIMED_OUT)
MARKED = (SessionStatus.RETURNED, SessionStatus.EXCLUDED)  # the researcher's marks
