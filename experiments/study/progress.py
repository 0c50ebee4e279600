"""Where a session stands and what comes next: practice to criterion, then the main block.

One pure definition for the session service, the lab sequencer, the API (which sends the page
its next step) and simulated participants. A session's running `trial_index` counts every
answer: the practice block is repeated (reshuffled, see `practice_order`) until an attempt
reaches the pass mark, or the attempts run out; the main block starts at `main_offset`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass

from experiments.vocabulary import FINISHED, SessionStatus

PRACTICE, MAIN = "practice", "main"


@dataclass(frozen=True)
class Rules:
    """A session's block sizes and the practice criterion (max_attempts 0: unlimited)."""

    n_practice: int
    n_main: int
    pass_mark: int
    max_attempts: int


@dataclass
class Progress:
    """Where a session stands; `attempt_correct` counts the practice attempt under way."""

    next_index: int = 0
    main_offset: int | None = None
    practice_attempts: int = 0
    attempt_correct: int = 0
    main_correct: int = 0
    status: str = SessionStatus.ACTIVE.value


@dataclass(frozen=True)
class Slot:
    """The trial a running index shows: its block, attempt, which trial of the block (the
    practice order applied) and its place in the attempt or block (for a counter)."""

    trial_index: int
    phase: str
    attempt: int
    position: int
    slot: int
    block_size: int

    @property
    def closes_attempt(self) -> bool:
        """The last practice trial of its attempt: answering it passes or fails the attempt."""
        return self.phase == PRACTICE and self.slot == self.block_size - 1


def shows_feedback(phase: str, main_feedback: bool) -> bool:
    """Whether a trial shows right or wrong after its answer: practice always, the main block
    unless the study keeps it without (`[timing] main_feedback = false`)."""
    return phase != "main" or main_feedback


def start(rules: Rules) -> Progress:
    """A new session's progress (straight to the main block when there is no practice)."""
    return Progress(main_offset=0 if rules.n_practice == 0 else None)


def practice_order(session_id: str, attempt: int, n: int) -> list[int]:
    """Positions of the practice trials in attempt `attempt`: 0 as designed, each later attempt
    a shuffle seeded by the session and the attempt (the same wherever computed) that differs
    from the attempt before it."""
    order = list(range(n))
    if n < 2:
        return order
    for a in range(1, attempt + 1):
        seed = int.from_bytes(hashlib.sha256(f"{session_id}:{a}".encode()).digest()[:8], "big")
        rng = random.Random(seed)
        previous, order = order, list(order)
        while order == previous:
            rng.shuffle(order)
    return order


def stage(progress: Progress, rules: Rules) -> str:
    """practice, main, finish (every trial answered, not completed) or done (completed or
    failed practice; a timed-out session still stands where it stopped)."""
    if progress.status in FINISHED:
        return "done"
    if progress.main_offset is None:
        return PRACTICE
    return MAIN if progress.next_index - progress.main_offset < rules.n_main else "finish"


def slot_at(session_id: str, rules: Rules, main_offset: int | None, index: int) -> Slot | None:
    """The trial running index `index` shows; None past the last main trial."""
    n = rules.n_practice
    if main_offset is None or index < main_offset:
        if n == 0:
            return None
        attempt, slot = divmod(index, n)
        return Slot(index, PRACTICE, attempt, practice_order(session_id, attempt, n)[slot], slot, n)
    j = index - main_offset
    return Slot(index, MAIN, 0, j, j, rules.n_main) if j < rules.n_main else None


def next_slot(session_id: str, progress: Progress, rules: Rules) -> Slot | None:
    """The trial to show next, or None when the session has nothing left to show."""
    if stage(progress, rules) not in (PRACTICE, MAIN):
        return None
    return slot_at(session_id, rules, progress.main_offset, progress.next_index)


def advance(progress: Progress, rules: Rules, correct: bool) -> tuple[Progress, bool | None]:
    """Progress after one more answer, and whether it passed (True) or failed (False) a
    practice attempt (None: no attempt closed)."""
    after = dataclasses.replace(progress)
    index = progress.next_index
    after.next_index = index + 1
    if progress.main_offset is not None:
        after.main_correct += int(correct)
        return after, None
    after.attempt_correct += int(correct)
    if index % rules.n_practice != rules.n_practice - 1:
        return after, None
    after.practice_attempts = index // rules.n_practice + 1
    passed = after.attempt_correct >= rules.pass_mark
    after.attempt_correct = 0
    if passed:
        after.main_offset = after.next_index
    elif rules.max_attempts and after.practice_attempts >= rules.max_attempts:
        after.status = SessionStatus.FAILED_PRACTICE.value
    return after, passed
