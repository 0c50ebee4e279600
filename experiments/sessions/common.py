"""Shared pieces of the session service: what clients send and get, constants, lookups."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from experiments.db.models import (
    Experiment,
    Response,
    Session,
)
from experiments.study import progress
from experiments.study.spec import ExperimentSpec
from experiments.study.trial import PlannedTrial
from experiments.tasks.choice import ChoiceAnswer
from experiments.vocabulary import SessionStatus

ACTIVE = SessionStatus.ACTIVE  # the status most checks ask about
FRAME_TOLERANCE_MS = 17  # one frame at 60 Hz: a response time may undercut the lock by this
CLOCK_TOLERANCE_MS = 2000  # client and server clocks: how much a client time may exceed wall time
REFUSAL_TEXT = {
    "timed_out": "this session timed out and its trials were given to someone else",
    "full": "this session was idle before its first answer and every task is taken now",
}
# What pages and lab journals from before task types sent flat instead of `answer` (IMI's 2-AFC).
LEGACY_ANSWER_KEYS = tuple(ChoiceAnswer.model_fields)


class ResponseIn(BaseModel):
    """One answered trial as a client sends it; `answer` is validated by the task type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_index: int = Field(ge=0, le=100_000)
    trial_id: int = Field(ge=1)
    answer: dict[str, Any]
    rt_ms: float = Field(ge=0, le=86_400_000, allow_inf_nan=False)
    stim_onset_ms: float | None = Field(None, allow_inf_nan=False)
    response_ms: float | None = Field(None, allow_inf_nan=False)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_two_afc(cls, data: Any) -> Any:
        """A page or lab journal from before task types sent IMI's choice and confidence flat."""
        if isinstance(data, dict) and "answer" not in data and "choice" in data:
            data = dict(data)
            data["answer"] = {k: data.pop(k) for k in LEGACY_ANSWER_KEYS if k in data}
        return data

    def same_answer(self, stored: Response, answer: dict[str, Any]) -> bool:
        """Whether `stored` holds this answer (`answer`: ours as the task type normalises it)."""
        return (stored.trial_id == self.trial_id and stored.answer == answer
                and abs(stored.rt_ms - self.rt_ms) < 1e-6)


@dataclass
class SessionState:
    """Where a session stands: its trials, the next trial_index and what happens next."""

    session_id: str
    experiment: str
    task_id: str
    condition: str
    difficulty: str
    client: str
    status: str
    next_index: int
    practice_attempts: int
    main_offset: int | None
    practice_pass_mark: int
    practice_max_attempts: int
    practice: list[PlannedTrial]
    main: list[PlannedTrial]
    completion_code: str | None
    token: str | None = None
    resumed: bool = False
    answered_correct_main: int = 0

    @property
    def n_trials(self) -> int:
        """Practice (one attempt) and main trials: what a timed-out session's share is of."""
        return TaskTrials(tuple(self.practice), tuple(self.main)).n_trials

    @property
    def rules(self) -> progress.Rules:
        return progress.Rules(len(self.practice), len(self.main), self.practice_pass_mark,
                              self.practice_max_attempts)

    @property
    def current(self) -> progress.Progress:
        return progress.Progress(self.next_index, self.main_offset, self.practice_attempts,
                                 main_correct=self.answered_correct_main, status=self.status)

    def practice_trial(self, index: int) -> PlannedTrial:
        """The practice trial shown at running index `index` (repetitions are reshuffled)."""
        return self.practice[progress.slot_at(self.session_id, self.rules, None, index).position]

    @property
    def practice_order(self) -> list[int]:
        """The order of the practice attempt under way (or next)."""
        n = len(self.practice)
        return progress.practice_order(self.session_id, self.next_index // n if n else 0, n)

    @property
    def stage(self) -> str:
        """practice, main, finish (all trials stored, not yet completed) or done."""
        return progress.stage(self.current, self.rules)

    @property
    def next_step(self) -> progress.Slot | None:
        """The trial to show next (None: nothing left to show)."""
        return progress.next_slot(self.session_id, self.current, self.rules)


@dataclass
class RecordResult:
    """What storing one response did."""

    stored: bool  # False: an identical retry, nothing written
    trial_index: int
    correct: bool
    answer_key: str  # told only after the answer is stored: the page's feedback
    next_index: int
    stage: str
    practice_attempt_passed: bool | None = None
    practice_attempts: int = 0
    main_offset: int | None = None
    server_received_at: datetime | None = None
    rt_flag: str | None = None  # see Response.rt_flag
    next_step: progress.Slot | None = None  # the trial to show next (None: nothing left)


@dataclass(frozen=True)
class TaskTrials:
    """A task's trials in order; immutable once the experiment is built, so cached per process."""

    practice: tuple[PlannedTrial, ...]
    main: tuple[PlannedTrial, ...]

    @property
    def n_trials(self) -> int:
        """Practice (one attempt) and main trials: what a timed-out session's share is of."""
        return len(self.practice) + len(self.main)

    def at(self, phase: str, position: int) -> PlannedTrial | None:
        trials = self.practice if phase == "practice" else self.main
        return trials[position] if 0 <= position < len(trials) else None

    def by_id(self, trial_id: int) -> PlannedTrial:
        return next(t for t in (*self.practice, *self.main) if t.trial_id == trial_id)


_SPECS: dict[tuple[int, datetime, str], ExperimentSpec] = {}
CACHE_SIZE = 4096


def _remember(cache: dict, key: Any, value: Any) -> Any:
    """Store in a bounded dict cache (oldest entry dropped first)."""
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)), None)
    cache[key] = value
    return value


def spec_of(experiment: Experiment) -> ExperimentSpec:
    """The experiment's validated spec, parsed once per process (specs never change after build)."""
    key = (experiment.id, experiment.created_at, experiment.spec_sha256)
    spec = _SPECS.get(key)
    return spec if spec is not None else _remember(
        _SPECS, key, ExperimentSpec.model_validate(experiment.spec_json))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_matches(record: Session, token: str) -> bool:
    """The session's newest token or one handed out earlier (another tab keeps working)."""
    given = _hash_token(token)
    return any(hmac.compare_digest(known, given)
               for known in (record.token_sha256, *(record.older_token_hashes or [])))


def _add_token(record: Session, token: str, keep: int = 8) -> None:
    record.older_token_hashes = [*(record.older_token_hashes or []), record.token_sha256][-keep:]
    record.token_sha256 = _hash_token(token)
