"""Scripted participants for tests: answer a session through the session service."""
from __future__ import annotations

import random

from experiments.sessions import PlannedTrial, ResponseIn, SessionService, SessionState


def answer(trial: PlannedTrial, index: int, correct: bool = True, confidence: int = 2,
           rt_ms: float = 800.0) -> ResponseIn:
    """The response a participant gives to `trial` at running index `index`."""
    choice = trial.answer_key if correct else ("b" if trial.answer_key == "a" else "a")
    return ResponseIn(trial_index=index, trial_id=trial.trial_id,
                      answer={"choice": choice, "confidence": confidence}, rt_ms=rt_ms, stim_onset_ms=1000.0 + index,
                      response_ms=1000.0 + index + rt_ms)


def run_session(service: SessionService, state: SessionState, accuracy: float = 1.0,
                seed: int = 0, stop_after: int | None = None, complete: bool = True) -> int:
    """Answer from state.next_index on; practice answered correctly; returns responses sent."""
    rng = random.Random(seed)
    index, sent = state.next_index, 0
    while state.main_offset is None and state.practice:
        result = service.record_response(state.session_id, state.token,
                                         answer(state.practice_trial(index), index))
        index, sent = index + 1, sent + 1
        if result.main_offset is not None:
            state.main_offset = result.main_offset
        if stop_after is not None and sent >= stop_after:
            return sent
    offset = state.main_offset or 0
    while index - offset < len(state.main):
        trial = state.main[index - offset]
        service.record_response(state.session_id, state.token,
                                answer(trial, index, correct=rng.random() < accuracy,
                                       confidence=rng.randint(1, 3)))
        index, sent = index + 1, sent + 1
        if stop_after is not None and sent >= stop_after:
            return sent
    if complete:
        service.complete(state.session_id, state.token)
    return sent


def hammer(database_url: str, experiment: str, platform_ids: list[str]) -> dict[str, int]:
    """Run whole sessions for each id, sending every response twice; count outcomes."""
    from experiments.db import Database
    from experiments.errors import Conflict, Refused

    db = Database(database_url)
    service = SessionService(db)
    outcome = {"completed": 0, "full": 0}
    try:
        for platform_id in platform_ids:
            try:
                state = service.start(experiment, platform_id, "prolific")
                while True:  # as the page does: a session moved to a free task reloads
                    first = state.practice[0] if state.practice else state.main[0]
                    try:
                        service.record_response(state.session_id, state.token, answer(first, 0))
                        break
                    except Conflict:
                        state = service.state(state.session_id, state.token)
            except Refused as exc:  # full at entry, or at the first answer (others answered first)
                outcome[exc.reason] = outcome.get(exc.reason, 0) + 1
                continue
            trials = state.practice + state.main
            for index, trial in enumerate(trials):
                response = answer(trial, index)
                service.record_response(state.session_id, state.token, response)
                retry = service.record_response(state.session_id, state.token, response)
                assert not retry.stored
            service.complete(state.session_id, state.token)
            outcome["completed"] += 1
    finally:
        db.dispose()
    return outcome
