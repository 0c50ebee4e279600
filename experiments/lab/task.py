"""What a lab run needs, independent of where it came from (database or exported task file)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import InterpsyError
from experiments.study import progress
from experiments.study.instructions import session_pages
from experiments.study.trial import PlannedTrial
from experiments.tasks.imi_2afc import TwoAfcStimulus
from experiments.tasks.registry import DEFAULT_TASK


@dataclass
class LabProgress(progress.Progress):
    """Where a lab session stands (experiments.study.progress), and its time on the instructions."""

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
    practice: list[PlannedTrial]
    main: list[PlannedTrial]
    images: dict[str, Path]
    practice_pass_mark: int
    practice_max_attempts: int
    button_lock_ms: int = 1500
    feedback_delay_ms: int = 350
    feedback_ms: int = 1150
    main_feedback: bool = True  # false: no right or wrong in the main block
    auto_continue: bool = False  # true: the next trial follows without a Continue press
    instructions: list[dict[str, Any]] = field(default_factory=list)  # the study's own pages
    completion_codes: dict[str, str] = field(default_factory=lambda: {
        "completed": "COMPLETED", "failed_checks": "FAILED_CHECKS"})
    progress: LabProgress = field(default_factory=LabProgress)
    lab: dict[str, Any] = field(default_factory=dict)  # the spec's [lab] table
    task_type: str = DEFAULT_TASK  # the spec's [task] type: scores the answers
    resumed: bool = False
    token: str | None = None

    @property
    def n_practice(self) -> int:
        return len(self.practice)

    @property
    def rules(self) -> progress.Rules:
        """Block sizes and the practice criterion (experiments.study.progress)."""
        return progress.Rules(len(self.practice), len(self.main), self.practice_pass_mark,
                              self.practice_max_attempts)

    def instruction_pages(self) -> list[dict[str, Any]]:
        """The pages this session shows: the study's, then the built-in ones (as on the web)."""
        return session_pages(self.instructions, self.condition, self.button_lock_ms,
                             self.n_practice, self.practice_pass_mark, self.practice_max_attempts,
                             "lab", self.task_type)

    def image_path(self, image_id: str) -> Path:
        """The file of an image id; a clear error when the task lacks it."""
        try:
            return self.images[image_id]
        except KeyError:
            raise InterpsyError(f"task {self.task_id}: no file for image {image_id!r}") from None

    def missing_images(self) -> list[str]:
        """Image ids whose file does not exist."""
        return sorted(i for i, p in self.images.items() if not Path(p).is_file())


# A task file of version 1 (before task types) holds IMI's 2-AFC fields flat.
LEGACY_STIMULUS_KEYS = tuple(TwoAfcStimulus.model_fields)


def trial_from_dict(data: dict[str, Any]) -> PlannedTrial:
    """A task file's trial (`PlannedTrial.record`); reads version-1 task files' flat 2-AFC trials too."""
    values = dict(data)
    if not isinstance(values.get("trial_id"), int):
        raise InterpsyError(f"a task file trial ({values.get('phase')} {values.get('position')}) "
                            f"has no trial_id: export the task file again with `interpsy lab "
                            f"export-task`")
    if "stimulus" not in values:
        values["stimulus"] = {k: values.pop(k) for k in LEGACY_STIMULUS_KEYS}
        values["answer_key"] = values.pop("correct_choice")
    return PlannedTrial.from_record(values)
