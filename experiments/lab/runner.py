"""The drawing loop: instructions, practice with feedback, main block, breaks, end; Escape aborts.

Timing: a trial's onset is the time of the flip that first shows it (taken in a callOnFlip
callback, which also clears the key queue); RT = key time - onset, keys from the psychtoolbox
queue or pyglet (the backend is recorded per trial). Dropped frames are counted per trial with
PsychoPy's frame-interval recording against the measured frame rate.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psychopy import logging

from experiments.lab.keys import ABORT_KEY, CONTINUE_KEYS, decode
from experiments.lab.screen import LabScreen
from experiments.lab.sequence import Answer, Outcome, Sequencer, Step
from experiments.lab.store import Notices
from experiments.study.instructions import block_messages
from experiments.study.progress import shows_feedback
from experiments.tasks import get_task


class Aborted(Exception):
    """Escape was pressed."""


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # completed | failed_practice | aborted
    answered: int
    next_index: int
    completion_code: str = ""
    screenshot: Path | None = None
    data_file: Path | None = None
    pending: Path | None = None  # answers still waiting for the database
    participant_id: str = ""  # the pseudonym the export uses


class LabRunner:
    """Shows one session on a LabScreen, driving a Sequencer."""

    def __init__(self, screen: LabScreen, keys: Any, sequencer: Sequencer,
                 frame_rate: float | None, screenshot: str | Path | None = None,
                 end_wait_s: float | None = None, notices: Notices | None = None):
        self.screen, self.win, self.keys = screen, screen.win, keys
        self.sequencer, self.task = sequencer, sequencer.task
        self.frame_rate = frame_rate
        self.screenshot_path = Path(screenshot) if screenshot else None
        self.screenshot: Path | None = None
        self.end_wait_s = end_wait_s
        self.answered = 0
        self.clock = logging.defaultClock
        self.notices = notices or Notices()

    # ---- waiting helpers ---------------------------------------------------------------
    def _check_abort(self, names: list[str]) -> None:
        if ABORT_KEY in names:
            raise Aborted()

    def _wait_continue(self, draw, context: str, min_s: float = 0.0,
                       max_s: float | None = None) -> float:
        """Redraw every frame until space/return/click; returns the seconds waited. Keys
        pressed (and a mouse button held) before the screen first shows do not count."""
        onset: list[float] = []
        self.win.callOnFlip(lambda: (onset.append(self.clock.getTime()), self.keys.clear()))
        self.screen.clicked()  # a button held from the previous screen is no new click
        draw()
        self.win.flip()
        self.keys.expect("continue", context)
        start = onset[0] if onset else self.clock.getTime()
        while True:
            draw()
            self.win.flip()
            now = self.clock.getTime()
            names = [k.name for k in self.keys.poll() if k.t >= start]
            self._check_abort(names)
            clicked = self.screen.clicked()
            if now - start >= min_s and (clicked or any(n in CONTINUE_KEYS for n in names)):
                return now - start
            if max_s is not None and now - start >= max_s:
                return now - start

    def message(self, title: str, body: str, context: str, max_s: float | None = None,
                example: bool = False, between_blocks: bool = False) -> float:
        """Show a text screen until the participant continues; `example` shows the practice's
        example grids, `between_blocks` the experimenter's line of waiting warnings."""
        note = self.notices.take() if between_blocks else ""
        shot = self._screen_shot(context)

        def draw() -> None:
            self.screen.draw_message(title, body, example=example, note=note)
            nonlocal shot
            if shot is not None:
                self.screen.screenshot(shot)
                shot = None

        return self._wait_continue(draw, context, max_s=max_s)

    def _screen_shot(self, context: str) -> Path | None:
        """Where an instruction page's screenshot goes (beside the trial screen's), if asked."""
        if self.screenshot_path is None or not context.startswith("instructions-"):
            return None
        return self.screenshot_path.with_name(f"{self.screenshot_path.stem}_{context}"
                                              f"{self.screenshot_path.suffix}")

    # ---- one trial -----------------------------------------------------------------------
    def trial(self, step: Step) -> Outcome:
        """Show one trial, take the response, store it, show feedback; returns the outcome.
        A task type whose lab module has `run_trial(runner, step)` presents its own trial."""
        own = getattr(get_task(self.task.task_type).lab_module(), "run_trial", None)
        if own is not None:
            outcome = self.sequencer.answer(own(self, step))
            self.answered += 1
            shown, auto = self._feedback_shown(step), self.task.auto_continue
            if shown or not auto:  # as on the page: feedback, then Continue unless automatic
                self.message(("Correct!" if outcome.correct else "Wrong.") if shown else "", "",
                             "feedback", max_s=self.task.feedback_ms / 1000.0 if auto else None)
            return outcome
        task, screen, win = self.task, self.screen, self.win
        screen.set_trial(step.trial, task)
        lock_s = task.button_lock_ms / 1000.0
        counter = (f"correct: {self.sequencer.progress.main_correct}"
                   if step.phase == "main" else f"practice {step.position + 1}/{step.block_size}")
        onset: list[float] = []

        def on_flip() -> None:
            onset.append(self.clock.getTime())
            self.keys.clear()
            self.keys.expect("trial", step)  # emulated keys time their press from onset

        win.callOnFlip(on_flip)
        dropped_before, frames = win.nDroppedFrames, 0
        intervals_before = len(win.frameIntervals)
        response: tuple[str, int, float, str, str] | None = None
        while response is None:
            locked = not onset or self.clock.getTime() - onset[0] < lock_s
            screen.draw_trial(locked=locked, counter=counter)
            if self.screenshot_path and self.screenshot is None and not locked:
                self.screenshot = screen.screenshot(self.screenshot_path)
            win.flip()
            frames += 1
            for key in self.keys.poll():
                self._check_abort([key.name])
                decoded = decode(key.name, self.task.task_type)
                if decoded and onset and key.t - onset[0] >= lock_s:
                    response = (*decoded, key.t, "key", key.name)
                    break
            if response is None and not locked:
                button = screen.clicked_button()
                if button:
                    response = (*button, self.clock.getTime(), "mouse", "")
        choice, confidence, t_response, how, key_name = response
        intervals = win.frameIntervals[intervals_before:]
        answer = Answer(
            answer={"choice": choice, "confidence": confidence},
            rt_ms=(t_response - onset[0]) * 1000.0,
            stim_onset_ms=onset[0] * 1000.0, response_ms=t_response * 1000.0,
            extra={"keyboard_backend": self.keys.backend, "input": how, "key": key_name,
                   "dropped_frames": int(win.nDroppedFrames - dropped_before), "n_frames": frames,
                   "frame_rate": self.frame_rate,
                   "frame_interval_ms": round(1000.0 * sum(intervals) / len(intervals), 3)
                   if intervals else None})
        outcome = self.sequencer.answer(answer)
        self.answered += 1
        self._feedback(step, outcome, (choice, confidence), counter)
        return outcome

    def _feedback(self, step: Step, outcome: Outcome, chosen: tuple[str, int], counter: str) -> None:
        """The chosen button, then after the delay the feedback for as long as on the web page
        (the timing's feedback_ms), then Continue without it."""
        task = self.task
        delay, show = task.feedback_delay_ms / 1000.0, task.feedback_ms / 1000.0
        text = "Correct!" if outcome.correct else "Wrong."
        if step.phase == "main":
            counter = f"correct: {self.sequencer.progress.main_correct}"
        start = self.clock.getTime()

        with_feedback = self._feedback_shown(step)

        def draw(footer: str = "") -> None:
            elapsed = self.clock.getTime() - start
            shown = with_feedback and delay <= elapsed < delay + show
            self.screen.draw_trial(locked=True, chosen=chosen, counter=counter, footer=footer,
                                   correct_choice=step.trial.answer_key if shown else None,
                                   feedback=text if shown else "")

        while self.clock.getTime() - start < delay + (show if with_feedback else 0.0):
            draw()
            self.win.flip()
            self._check_abort([k.name for k in self.keys.poll()])
        if not task.auto_continue:
            self._wait_continue(lambda: draw("Press space (or click) to continue"), "feedback")

    def _feedback_shown(self, step: Step) -> bool:
        """Whether this trial shows right or wrong (experiments.study.progress)."""
        return shows_feedback(step.phase, self.task.main_feedback)

    # ---- the session ---------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run from the stored progress until finished or aborted (everything is saved)."""
        recorder, progress = self.sequencer.recorder, self.sequencer.progress
        try:
            if progress.next_index == 0 and not progress.instruction_s:  # not done yet
                seconds = 0.0
                pages = self.task.instruction_pages()
                if self.task.practice:  # the web page's example trial: the first practice one
                    self.screen.set_example(self.task.practice[0], self.task)
                for n, page in enumerate(pages):
                    seconds += self.message(page.get("title") or f"Instructions {n + 1}/{len(pages)}",
                                            page.get("text", ""), f"instructions-{n}",
                                            example=bool(page.get("example")))
                recorder.instructions(seconds)
            elif self.sequencer.current() is not None:
                self.message("Welcome back", "The session continues where it stopped.", "resume",
                             between_blocks=True)
            words = block_messages(self.task.n_practice, self.task.practice_pass_mark)
            while (step := self.sequencer.current()) is not None:
                if step.phase == "main" and step.position == 0 and self.task.n_practice:
                    said = words["practice-passed"]
                    self.message(said["title"], said["text"], "practice-passed",
                                 between_blocks=True)
                right = self.sequencer.progress.attempt_correct  # before this trial
                outcome = self.trial(step)
                if outcome.attempt_closed and outcome.attempt_passed is False \
                        and not outcome.practice_failed:
                    said = words["practice-failed"]
                    self.message(said["title"], said["text"].replace(
                        "{correct}", str(right + outcome.correct)), "practice-failed",
                        between_blocks=True)
                if outcome.break_due:
                    done = step.position + 1
                    self.message("Break", f"{done} of {step.block_size} trials done. Take a short "
                                 f"break.", "break", between_blocks=True)
        except Aborted:
            step = self.sequencer.current()
            recorder.event("abort", {"reason": "escape",
                                     "next_index": self.sequencer.progress.next_index})
            return RunResult("aborted", self.answered, self.sequencer.progress.next_index,
                             screenshot=self.screenshot)
        status = self.sequencer.progress.status
        code = self.sequencer.complete()
        status = "failed_practice" if status == "failed_practice" else "completed"
        body = ("Thank you, the session is complete." if status == "completed" else
                "The practice criterion was not reached; the session ends here. Thank you.")
        with contextlib.suppress(Aborted):  # everything is saved; Escape just closes the end screen
            self.message("Done", f"{body}\n\nCode: {code}", "end", max_s=self.end_wait_s,
                         between_blocks=True)
        return RunResult(status, self.answered, self.sequencer.progress.next_index, code,
                         self.screenshot)
