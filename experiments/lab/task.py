"""What a lab run needs, independent of where it came from (database or exported task file)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.sessions import TrialView

DEFAULT_INSTRUCTIONS = [
    {"title": "Instructions",
     "text": "On each trial you see two groups of nine images: the left group makes a unit of a "
             "neural network respond weakly, the right group makes it respond strongly.\n\n"
             "Which of the two images in the centre (upper = A, lower = B) matches the right "
             "group better? Answer with your confidence: keys 1 2 3 for A, 8 9 0 for B "
             "(1 and 8 = unsure, 3 and 0 = sure), or click one of the six buttons."},
]


# A lab trial is the session service's view of a trial (unit, layout, answer key).
LabTrial = TrialView


@dataclass
class Progress:
    """Where a session stands: the next trial_index and the practice/main bookkeeping."""

    next_index: int = 0
    main_offset: int | None = None
    practice_attempts: int = 0
    attempt_correct: int = 0  # correct answers in the practice attempt under way
    main_correct: int = 0
    status: str = "in_progress"  # in_progress | failed_practice | completed
    instruction_s: float = 0.0


@dataclass
class LabTask:
    """One participant's session: identity, rules, trials, image files and progress so far."""

    experiment: str
    session_id: str
    participant: str  # the id typed in the lab (platform id)
    participant_id: str  # the pseudonym the export uses (P0001...)
    task_id: str
    condition: str
    difficulty: str
    practice: list[LabTrial]
    main: list[LabTrial]
    images: dict[str, Path]
    practice_pass_mark: int
    practice_max_attempts: int
    button_lock_ms: int = 1500
    feedback_delay_ms: int = 350
    feedback_ms: int = 1150
    instructions: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_INSTRUCTIONS))
    completion_codes: dict[str, str] = field(default_factory=lambda: {
        "completed": "COMPLETED", "failed_checks": "FAILED_CHECKS"})
    progress: Progress = field(default_factory=Progress)
    resumed: bool = False
    token: str | None = None

    @property
    def n_practice(self) -> int:
        return len(self.practice)

    def image_path(self, image_id: str) -> Path:
        """The file of an image id; a clear error when the task lacks it."""
        from experiments.errors import InterpsyError
        try:
            return self.images[image_id]
        except KeyError:
            raise InterpsyError(f"task {self.task_id}: no file for image {image_id!r}") from None

    def missing_images(self) -> list[str]:
        """Image ids whose file does not exist."""
        return sorted(i for i, p in self.images.items() if not Path(p).is_file())


def trial_to_dict(trial: LabTrial) -> dict[str, Any]:
    """A trial as JSON-ready data."""
    return asdict(trial)


def trial_from_dict(data: dict[str, Any]) -> LabTrial:
    """The inverse of trial_to_dict."""
    return LabTrial(**{**data, "references_max": list(data["references_max"]),
                       "references_min": list(data["references_min"])})


def instructions_for(pages: list[dict[str, Any]], condition: str) -> list[dict[str, Any]]:
    """Instruction pages shown for a condition (pages without conditions are shown to all)."""
    chosen = [p for p in pages if not p.get("conditions") or condition in p["conditions"]]
    return chosen or list(DEFAULT_INSTRUCTIONS)
