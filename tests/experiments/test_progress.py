"""One progress model (experiments.study.progress) for the session service, the lab sequencer, the
API's next step and simulated participants: practice to criterion, then the main block."""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.study import progress
from experiments.study.progress import (
    Progress,
    Rules,
    advance,
    next_slot,
    practice_order,
    slot_at,
    stage,
)

RULES = Rules(n_practice=3, n_main=4, pass_mark=3, max_attempts=2)


def _answer_all(state: Progress, rules: Rules, answers: list[bool]) -> list[bool | None]:
    passed = []
    for correct in answers:
        state_after, closed = advance(state, rules, correct)
        state.__dict__.update(state_after.__dict__)
        passed.append(closed)
    return passed


def test_each_practice_repetition_shows_the_trials_in_a_new_order():
    for n in (2, 3, 5):
        orders = [practice_order("session-x", a, n) for a in range(6)]
        assert orders[0] == list(range(n))
        assert all(sorted(o) == list(range(n)) for o in orders)
        assert all(a != b for a, b in itertools.pairwise(orders))
    assert practice_order("session-x", 3, 5) == practice_order("session-x", 3, 5)
    assert practice_order("session-x", 1, 5) != practice_order("session-y", 1, 5) or \
        practice_order("session-x", 2, 5) != practice_order("session-y", 2, 5)


def test_practice_to_criterion_then_the_main_block():
    state = progress.start(RULES)
    assert stage(state, RULES) == "practice"
    first = [next_slot("s", state, RULES)]
    passed = _answer_all(state, RULES, [True, False, True])  # 2 of 3: not passed
    assert passed == [None, None, False] and state.practice_attempts == 1
    assert state.main_offset is None and stage(state, RULES) == "practice"
    again = next_slot("s", state, RULES)
    assert (again.phase, again.attempt, again.slot, again.trial_index) == ("practice", 1, 0, 3)
    assert first[0].position == 0 and again.position == practice_order("s", 1, 3)[0]
    assert _answer_all(state, RULES, [True] * 3)[-1] is True
    assert state.main_offset == 6 and stage(state, RULES) == "main"
    step = next_slot("s", state, RULES)
    assert (step.phase, step.position, step.slot, step.block_size) == ("main", 0, 0, 4)
    _answer_all(state, RULES, [True, False, True, True])
    assert state.main_correct == 3 and stage(state, RULES) == "finish"
    assert next_slot("s", state, RULES) is None
    assert slot_at("s", RULES, 6, 10) is None  # past the last main trial


def test_the_last_failed_attempt_ends_the_session_and_no_practice_starts_at_main():
    state = progress.start(RULES)
    _answer_all(state, RULES, [False] * 6)
    assert state.status == "failed_practice" and stage(state, RULES) == "done"
    assert next_slot("s", state, RULES) is None
    unlimited = Rules(2, 1, 2, 0)
    state = progress.start(unlimited)
    _answer_all(state, unlimited, [False] * 20)
    assert state.status == "in_progress" and state.practice_attempts == 10
    none = Rules(0, 2, 0, 0)
    assert progress.start(none).main_offset == 0
    assert next_slot("s", progress.start(none), none).phase == "main"


def test_a_timed_out_session_still_stands_where_it_stopped():
    state = Progress(next_index=4, main_offset=3, status="timed_out")
    assert stage(state, RULES) == "main"
    assert next_slot("s", state, RULES).position == 1


@settings(max_examples=60, deadline=None)
@given(answers=st.lists(st.booleans(), min_size=1, max_size=30),
       n_practice=st.integers(1, 4), max_attempts=st.integers(0, 3), slack=st.integers(0, 1))
def test_advance_is_consistent(answers, n_practice, max_attempts, slack):
    """Attempts close every n_practice answers; main starts right after a passing attempt."""
    pass_mark = max(0, n_practice - slack)
    rules = Rules(n_practice, 5, pass_mark, max_attempts)
    progress = Progress()
    for k, correct in enumerate(answers):
        if progress.status != "in_progress":
            break
        before = progress
        progress, passed = advance(progress, rules, correct)
        assert progress.next_index == k + 1
        if before.main_offset is not None:
            assert passed is None and progress.main_offset == before.main_offset
        elif (k + 1) % n_practice == 0:
            assert passed is not None
            assert (progress.main_offset == k + 1) == passed
        else:
            assert passed is None and progress.main_offset is None
