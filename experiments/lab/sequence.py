"""Trial sequencing (like PsychoPy's TrialHandler): practice to criterion, main block, breaks.

No drawing here: the runner asks `current()` what to show and hands back an `Answer`; the
sequencer scores it, stores it through a recorder (database or local journal) and writes the
data-file row, in that order, before the next trial is shown. The store is the record: on
start the data file is reconciled with it (`Sequencer.reconcile`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from experiments.lab.task import LabProgress, LabTask, PlannedTrial
from experiments.sessions import ResponseIn
from experiments.study import progress
from experiments.tasks import get_task


@dataclass(frozen=True)
class Step:
    """The trial to show next and where it sits in the session."""

    trial: PlannedTrial
    trial_index: int
    phase: str
    attempt: int  # practice repetition (0 for main)
    position: int  # 0-based within its block
    block_size: int


@dataclass(frozen=True)
class Answer:
    """What the participant did on one trial, with the client-side timing."""

    answer: dict[str, Any]  # the task type's answer fields (2-AFC: choice, confidence)
    rt_ms: float
    stim_onset_ms: float | None = None
    response_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """What a recorder did with one response; progress fields are authoritative when given."""

    stored: bool
    server_received_at: datetime | None = None
    progress: LabProgress | None = None
    saved_to: str = "database"
    rt_flag: str | None = None  # the server's doubt about the response time, if any
    client_recorded_at: datetime | None = None  # stored in a local journal at this time


@dataclass(frozen=True)
class Stored:
    """An answer a recorder holds (to rebuild a data-file row the process died before writing)."""

    response: ResponseIn
    correct: bool
    recorded: Recorded


@dataclass(frozen=True)
class Outcome:
    """The result of one answered trial, for feedback and for what comes next."""

    step: Step
    correct: bool
    stored: bool
    attempt_closed: bool  # the last trial of a practice attempt
    attempt_passed: bool | None
    practice_failed: bool
    break_due: bool
    finished: bool  # nothing left to show (all main trials answered, or practice failed)


class Recorder(Protocol):
    """Where responses go: the session service (database) or an append-only local store."""

    kind: str

    def record(self, step: Step, response: ResponseIn, correct: bool, after: LabProgress) -> Recorded: ...

    def event(self, kind: str, payload: dict[str, Any] | None = None) -> None: ...

    def instructions(self, seconds: float) -> None: ...

    def complete(self) -> str: ...

    def stored(self) -> list[Stored]: ...

    def facts(self, info: dict[str, Any]) -> None: ...


class RowWriter(Protocol):
    """The per-session data file."""

    def write(self, step: Step, answer: Answer, correct: bool, recorded: Recorded) -> None: ...

    def reconcile(self, rows: list[tuple[Step, Answer, bool, Recorded]]) -> None: ...

    def write_unstored(self, step: Step, answer: Answer, correct: bool,
                       recorded: Recorded) -> None: ...


class Sequencer:
    """Walks one session's trials from its stored progress; every answer is saved at once."""

    def __init__(self, task: LabTask, recorder: Recorder, writer: RowWriter | None = None,
                 break_every: int = 0):
        self.task = task
        self.recorder = recorder
        self.writer = writer
        self.break_every = max(0, int(break_every))
        if task.n_practice == 0 and task.progress.main_offset is None:
            task.progress.main_offset = 0
        if writer is not None:
            self.reconcile()

    def reconcile(self) -> None:
        """Make the data file hold one row per stored answer: a row the process died before
        writing is restored, a row of an answer that was never stored is moved aside."""
        trials = {t.trial_id: t for t in (*self.task.practice, *self.task.main)}
        n = max(1, self.task.n_practice)
        rows = []
        for stored in self.recorder.stored():
            r = stored.response
            trial = trials[r.trial_id]
            attempt = r.trial_index // n if trial.phase == "practice" else 0
            step = Step(trial, r.trial_index, trial.phase, attempt, trial.position, 0)
            answer = Answer(answer=dict(r.answer), rt_ms=r.rt_ms,
                            stim_onset_ms=r.stim_onset_ms, response_ms=r.response_ms,
                            extra=dict(r.extra or {}))
            rows.append((step, answer, stored.correct, stored.recorded))
        self.writer.reconcile(rows)

    @property
    def progress(self) -> LabProgress:
        return self.task.progress

    @property
    def stage(self) -> str:
        """practice, main, finish (all answered, not completed) or done."""
        return progress.stage(self.progress, self.task.rules)

    def current(self) -> Step | None:
        """The next trial to show, or None when nothing is left."""
        slot = progress.next_slot(self.task.session_id, self.progress, self.task.rules)
        if slot is None:
            return None
        block = self.task.practice if slot.phase == progress.PRACTICE else self.task.main
        return Step(block[slot.position], slot.trial_index, slot.phase, slot.attempt, slot.slot,
                    slot.block_size)

    def answer(self, answer: Answer) -> Outcome:
        """Score, store (recorder, then data file) and advance; raises if the store refuses."""
        step = self.current()
        if step is None:
            raise RuntimeError("no trial is waiting for an answer")
        task_type = get_task(self.task.task_type)
        parsed = task_type.parse_answer(answer.answer)
        task_type.check_answer(parsed, step.trial.stimulus)
        correct = task_type.score(parsed, step.trial.answer_key)
        after, passed = progress.advance(self.progress, self.task.rules, correct)
        response = ResponseIn(trial_index=step.trial_index, trial_id=step.trial.trial_id,
                              answer=answer.answer, rt_ms=max(0.0, answer.rt_ms),
                              stim_onset_ms=answer.stim_onset_ms,
                              response_ms=answer.response_ms, extra=answer.extra)
        try:
            recorded = self.recorder.record(step, response, correct, after)
        except Exception as exc:
            if self.writer is not None:  # refused (not a database outage): keep it aside
                self.writer.write_unstored(step, answer, correct, Recorded(
                    stored=False, saved_to=f"error: {type(exc).__name__}: {exc}"[:200]))
            raise
        if recorded.progress is not None:
            after = recorded.progress
        if self.writer is not None:
            self.writer.write(step, answer, correct, recorded)
        self.task.progress = after
        closed = passed is not None  # progress.advance says so only when an attempt closes
        main_done = after.main_offset is not None and step.phase == "main"
        n_main_done = after.next_index - after.main_offset if main_done else 0
        finished = self.stage in ("finish", "done")
        break_due = (main_done and not finished and self.break_every > 0
                     and n_main_done % self.break_every == 0)
        return Outcome(step=step, correct=correct, stored=recorded.stored, attempt_closed=closed,
                       attempt_passed=passed,
                       practice_failed=after.status == "failed_practice",
                       break_due=break_due, finished=finished)

    def complete(self) -> str:
        """Mark a finished session completed; returns the completion code."""
        if self.progress.status == "failed_practice":
            return self.task.completion_codes.get("failed_checks", "")
        if self.stage != "finish" and self.progress.status != "completed":
            raise RuntimeError(f"session is at stage {self.stage}, not finished")
        code = self.recorder.complete()
        self.progress.status = "completed"
        return code


Responder = Callable[[Step], Answer]


def run_headless(sequencer: Sequencer, responder: Responder, stop_after: int | None = None
                 ) -> list[Outcome]:
    """Answer trials with a scripted responder (no display); stop early after `stop_after`."""
    outcomes: list[Outcome] = []
    while (step := sequencer.current()) is not None:
        if stop_after is not None and len(outcomes) >= stop_after:
            sequencer.recorder.event("abort", {"next_index": step.trial_index, "reason": "escape"})
            return outcomes
        outcomes.append(sequencer.answer(responder(step)))
    if sequencer.stage == "finish":
        sequencer.complete()
    return outcomes
