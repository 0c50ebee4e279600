"""The session service against SQLite and PostgreSQL: assignment, idempotency, resume, completion."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from experiments.db.models import Event, Response, Session
from experiments.errors import Conflict, NotFound, Refused
from experiments.sessions import SessionService
from experiments.study.build import build_experiment
from tests.participants import answer, run_session
from tests.stimset import write_spec


class Clock:
    """A settable clock for timeouts."""

    def __init__(self):
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def _build(db, tmp_path, toy_set, **overrides):
    return build_experiment(write_spec(tmp_path / "spec.toml", [toy_set], **overrides), db)


@pytest.fixture
def service(db, tmp_path, toy_set, clock):
    _build(db, tmp_path, toy_set)
    return SessionService(db, clock=clock)


def _count(db, model, *where):
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_whole_session_and_completion_code(service, db):
    state = service.start("toy-exp@1", "PROLIFIC1", "prolific")
    assert state.stage == "practice" and len(state.practice) == 2 and len(state.main) == 8
    with pytest.raises(Conflict, match="main trials are not stored yet"):
        service.complete(state.session_id, state.token)
    run_session(service, state, complete=False)
    assert service.state(state.session_id, state.token).stage == "finish"
    assert service.complete(state.session_id, state.token) == "COMPLETED"
    assert service.complete(state.session_id, state.token) == "COMPLETED"  # idempotent
    assert _count(db, Response, Response.session_id == state.session_id) == 10


def test_retry_is_a_noop_and_a_different_answer_is_refused_and_logged(service, db):
    state = service.start("toy-exp", "P", "link")
    first = answer(state.practice[0], 0)
    assert service.record_response(state.session_id, state.token, first).stored
    retry = service.record_response(state.session_id, state.token, first)
    assert not retry.stored and retry.next_index == 1
    changed = first.model_copy(update={"answer": {**first.answer, "confidence": 1}})
    with pytest.raises(Conflict, match="already stored with a different answer"):
        service.record_response(state.session_id, state.token, changed)
    assert _count(db, Response, Response.session_id == state.session_id) == 1
    with db.read() as s:
        stored = s.scalars(select(Response)).one().answer["confidence"]
        event = s.scalars(select(Event).where(Event.kind == "conflicting_response")).one().payload
    assert stored == first.answer["confidence"]
    assert event["sent"]["answer"]["confidence"] == 1


def test_gaps_wrong_trials_and_foreign_tokens_are_refused(service, db):
    state = service.start("toy-exp", "P1", "link")
    other = service.start("toy-exp", "P2", "link")
    with pytest.raises(Conflict) as gap:
        service.record_response(state.session_id, state.token, answer(state.practice[1], 1))
    assert gap.value.expected_trial_index == 0
    with pytest.raises(Conflict, match="is trial"):
        service.record_response(state.session_id, state.token,
                                answer(state.practice[1], 0))
    with pytest.raises(NotFound):
        service.record_response(state.session_id, other.token, answer(state.practice[0], 0))
    with pytest.raises(NotFound):
        service.state("no-such-session", state.token)
    assert _count(db, Response) == 0


def test_failed_practice_is_repeated_then_passed(service, db):
    state = service.start("toy-exp", "P", "link")
    sid, token = state.session_id, state.token
    r = service.record_response(sid, token, answer(state.practice[0], 0, correct=False))
    r = service.record_response(sid, token, answer(state.practice[1], 1))
    assert r.practice_attempt_passed is False and r.stage == "practice" and r.practice_attempts == 1
    # the repetition shows the two trials the other way round
    assert state.practice_trial(2) == state.practice[1] and state.practice_trial(3) == state.practice[0]
    with pytest.raises(Conflict):
        service.record_response(sid, token, answer(state.practice[0], 2))
    service.record_response(sid, token, answer(state.practice_trial(2), 2))
    r = service.record_response(sid, token, answer(state.practice_trial(3), 3))
    assert r.practice_attempt_passed and r.main_offset == 4 and r.stage == "main"
    r = service.record_response(sid, token, answer(state.main[0], 4))
    with db.read() as s:
        attempts = [row.attempt for row in s.scalars(select(Response).order_by(Response.trial_index))]
    assert attempts == [0, 0, 1, 1, 0]


def test_practice_limit_ends_with_failed_checks_code(db, tmp_path, toy_set):
    _build(db, tmp_path, toy_set, practice={"trials": 2, "max_attempts": 1},
           recruitment={"completion_codes": {"completed": "OK", "failed_checks": "NOPE"}})
    service = SessionService(db)
    state = service.start("toy-exp", "P", "prolific")
    service.record_response(state.session_id, state.token, answer(state.practice[0], 0, correct=False))
    r = service.record_response(state.session_id, state.token, answer(state.practice[1], 1))
    assert r.stage == "done"
    assert service.complete(state.session_id, state.token) == "NOPE"
    with pytest.raises(Refused):
        service.record_response(state.session_id, state.token, answer(state.practice[0], 2))


def test_resume_returns_the_same_session_at_the_next_trial(service):
    state = service.start("toy-exp", "P", "prolific")
    run_session(service, state, stop_after=4, complete=False)
    again = service.start("toy-exp", "P", "prolific")
    assert again.session_id == state.session_id and again.resumed and again.next_index == 4
    # the first tab's token keeps working beside the new one (two tabs, one session)
    assert service.state(state.session_id, state.token).next_index == 4
    with pytest.raises(NotFound):
        service.state(state.session_id, "not-a-token")
    run_session(service, again)
    with pytest.raises(Refused) as info:
        service.start("toy-exp", "P", "prolific")
    assert info.value.reason == "completed"


@pytest.mark.parametrize("policy", ["restart", "block"])
def test_restart_and_block_policies(db, tmp_path, toy_set, policy):
    _build(db, tmp_path, toy_set, recruitment={"resume_policy": policy})
    service = SessionService(db)
    state = service.start("toy-exp", "P", "prolific")
    run_session(service, state, stop_after=3, complete=False)
    if policy == "block":
        with pytest.raises(Refused, match="cannot be resumed"):
            service.start("toy-exp", "P", "prolific")
        return
    fresh = service.start("toy-exp", "P", "prolific")
    assert fresh.session_id != state.session_id and fresh.next_index == 0
    assert _count(db, Session, Session.status == "restarted") == 1
    assert _count(db, Response, Response.session_id == state.session_id) == 3  # kept


def test_timeout_frees_the_task_and_a_late_return_is_refused(service, db, clock):
    states = [service.start("toy-exp", f"P{i}", "prolific") for i in range(8)]
    for s in states:
        service.record_response(s.session_id, s.token, answer(s.practice[0], 0))
    clock.now += timedelta(minutes=91)
    for s in states[1:]:
        service.record_response(s.session_id, s.token, answer(s.practice[1], 1))
    assert service.expire_sessions("toy-exp") == 1
    newcomer = service.start("toy-exp", "NEW", "prolific")
    assert newcomer.task_id == states[0].task_id
    with pytest.raises(Refused) as info:
        service.record_response(states[0].session_id, states[0].token,
                                answer(states[0].practice[1], 1))
    assert info.value.reason == "timed_out"


def test_timed_out_session_continues_while_its_task_is_free(service, clock):
    state = service.start("toy-exp", "P", "prolific")
    clock.now += timedelta(hours=3)
    assert service.expire_sessions("toy-exp") == 1
    result = service.record_response(state.session_id, state.token, answer(state.practice[0], 0))
    assert result.stored and service.state(state.session_id, None).status == "in_progress"


def test_closed_experiment_and_unlisted_platform_are_refused(db, tmp_path, toy_set):
    _build(db, tmp_path, toy_set, recruitment={"platforms": ["prolific"]})
    service = SessionService(db)
    with pytest.raises(Refused) as wrong:
        service.start("toy-exp", "W", "mturk")
    assert wrong.value.reason == "source"
    service.set_experiment_status("toy-exp", "closed")
    with pytest.raises(Refused) as closed:
        service.start("toy-exp", "P", "prolific")
    assert closed.value.reason == "closed"
    with pytest.raises(NotFound):
        service.start("other", "P", "prolific")


def test_participants_of_an_earlier_experiment_are_refused(db, tmp_path, toy_set):
    _build(db, tmp_path, toy_set)
    spec2 = write_spec(tmp_path / "two.toml", [toy_set], name="follow-up",
                       recruitment={"block_participants_of": ["toy-exp"]})
    build_experiment(spec2, db)
    service = SessionService(db)
    service.start("toy-exp", "SEEN", "prolific")
    with pytest.raises(Refused) as info:
        service.start("follow-up", "SEEN", "prolific")
    assert info.value.reason == "repeat"
    assert service.start("follow-up", "FRESH", "prolific").task_id


def test_excluded_session_frees_its_task(service):
    states = [service.start("toy-exp", f"P{i}", "prolific") for i in range(8)]
    service.set_status(states[3].session_id, "excluded", "bot-like answers")
    assert service.start("toy-exp", "REPLACEMENT", "prolific").task_id == states[3].task_id


def test_events_and_instruction_time_are_stored(service, db, clock):
    state = service.start("toy-exp", "P", "link", client_info={"screen_width": 1920})
    clock.now += timedelta(seconds=20)
    service.record_instructions(state.session_id, state.token, 12.5)
    service.record_instructions(state.session_id, state.token, 5.0)
    service.record_event(state.session_id, state.token, "focus_loss", {"hidden_ms": 900}, 1234.5)
    with db.read() as s:
        record = s.get(Session, state.session_id)
        seen = (record.instruction_s, record.client_info["screen_width"])
        event = s.scalars(select(Event).where(Event.kind == "focus_loss")).one()
        logged = (event.payload, event.client_ms)
    assert seen == (17.5, 1920)
    assert logged == ({"hidden_ms": 900}, 1234.5)


def test_client_times_are_bounded_by_the_servers_clock_and_flagged(service, db, clock):
    state = service.start("toy-exp", "P", "link")
    clock.now += timedelta(seconds=30)
    for _ in range(3):  # 86,400 s claimed three times, 30 s of wall time
        service.record_instructions(state.session_id, state.token, 86_400.0)
    service.record_response(state.session_id, state.token, answer(state.practice[0], 0, rt_ms=40.0))
    service.record_response(state.session_id, state.token,
                            answer(state.practice[1], 1, rt_ms=3_600_000.0))
    with db.read() as s:
        record = s.get(Session, state.session_id)
        flags = s.scalars(select(Response.rt_flag).order_by(Response.trial_index)).all()
    assert record.instruction_s <= 32.0 and record.instruction_s_claimed == 3 * 86_400.0
    assert len(record.time_flags) == 3 and "86400 s claimed" in record.time_flags[0]
    assert flags == ["below_button_lock", "longer_than_session"]


def _n_tasks(db) -> int:
    from experiments.db.models import Task
    return _count(db, Task)


def _in_progress_per_task(db, clock) -> int:
    """The most sessions any task has in progress and active within the last 15 minutes."""
    with db.read() as s:
        return max(s.execute(select(func.count()).select_from(Session)
                             .where(Session.status == "in_progress",
                                    Session.last_activity_at >= clock.now - timedelta(minutes=15))
                             .group_by(Session.task_id)).scalars().all() or [0])


def _unanswered_holding(db, clock) -> int:
    """In-progress sessions with no answer whose reservation still runs."""
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Session).where(
            Session.status == "in_progress", Session.n_responses == 0,
            Session.last_activity_at >= clock.now - timedelta(minutes=15)))


def _answer_first(service, state):
    """Answer the first practice trial as a page does: after a reassignment, reload and
    answer the new trial."""
    try:
        service.record_response(state.session_id, state.token, answer(state.practice[0], 0))
    except Conflict as conflict:
        assert conflict.expected_trial_index == 0
        state = service.state(state.session_id, state.token)
        service.record_response(state.session_id, state.token, answer(state.practice[0], 0))
    return service.state(state.session_id, state.token)


def test_a_flood_of_sign_ups_leaves_tasks_for_real_participants(service, db, clock):
    n = _n_tasks(db)  # 8; half of the open tasks may be reserved by sessions with no answer
    early = service.start("toy-exp", "REAL-EARLY", "prolific")
    for i in range(40):
        service.start("toy-exp", f"FORGED{i}", "prolific")
        assert _unanswered_holding(db, clock) <= n // 2
    late = service.start("toy-exp", "REAL-LATE", "prolific")  # not "this study is full"
    people = [_answer_first(service, state) for state in (early, late)]
    assert {p.status for p in people} == {"in_progress"}
    assert people[0].task_id != people[1].task_id
    assert _in_progress_per_task(db, clock) == 1
    with db.read() as s:
        bumped = s.scalars(select(Event).where(Event.kind == "reservation_bumped")).all()
    assert sum("cap" in e.payload for e in bumped) == 40 + 2 - n // 2  # by sign-ups
    assert sum("answered_first" in e.payload for e in bumped) <= 2  # by a first answer
    for person in people:
        run_session(service, person)


def test_sign_ups_within_the_share_keep_their_tasks(service, db, clock):
    n = _n_tasks(db)
    first = [service.start("toy-exp", f"P{i}", "prolific") for i in range(n)]
    # the last n/2 bumped the first n/2 but took other tasks: nobody lost a task
    assert len({s.task_id for s in first}) == n
    for state in first:
        assert _answer_first(service, state).task_id == state.task_id
    with pytest.raises(Refused) as info:
        service.start("toy-exp", "PID-late", "prolific")
    assert info.value.reason == "full"


def test_sign_ups_that_never_answer_free_their_task_after_the_reservation(db, tmp_path, toy_set,
                                                                         clock):
    _build(db, tmp_path, toy_set, recruitment={"max_unanswered_share": 1.0})  # no share cap
    service = SessionService(db, clock=clock)
    n = _n_tasks(db)
    forged = [service.start("toy-exp", f"FORGED{i}", "prolific") for i in range(n)]
    with pytest.raises(Refused) as info:
        service.start("toy-exp", "REAL1", "prolific")
    assert info.value.reason == "full"
    clock.now += timedelta(minutes=16)  # the default reservation is 15 minutes
    real = service.start("toy-exp", "REAL1", "prolific")
    assert real.task_id == forged[0].task_id
    # The forged session comes back and answers first: the first answer wins the task, and
    # REAL1 (no answer yet) gets a free task at its own first answer, never a shared one.
    stored = service.record_response(forged[0].session_id, forged[0].token,
                                     answer(forged[0].practice[0], 0))
    assert stored.stored
    with pytest.raises(Conflict) as conflict:
        service.record_response(real.session_id, real.token, answer(real.practice[0], 0))
    assert conflict.value.expected_trial_index == 0
    moved = _answer_first(service, real)
    assert moved.status == "in_progress" and moved.task_id != forged[0].task_id
    # forged[1]'s task went to REAL1, who answered: a free task for it too
    again = _answer_first(service, forged[1])
    assert again.task_id not in (forged[0].task_id, moved.task_id)
    assert _in_progress_per_task(db, clock) == 1


def test_an_idle_session_back_after_the_timeout_never_shares_its_task(service, db, clock):
    idle = service.start("toy-exp", "IDLE", "prolific")
    service.record_response(idle.session_id, idle.token, answer(idle.practice[0], 0))
    others = [service.start("toy-exp", f"P{i}", "prolific") for i in range(_n_tasks(db) - 1)]
    for s in others:
        service.record_response(s.session_id, s.token, answer(s.practice[0], 0))
    clock.now += timedelta(minutes=80)
    for s in others:  # everyone else keeps going
        service.record_response(s.session_id, s.token, answer(s.practice[1], 1))
    clock.now += timedelta(minutes=11)  # IDLE is past the 90 minutes; nobody expired it
    newcomer = service.start("toy-exp", "NEW", "prolific")
    assert newcomer.task_id == idle.task_id
    # the page reloads, then answers: refused politely, not a second session on the task
    assert service.state(idle.session_id, idle.token).status == "timed_out"
    with pytest.raises(Refused) as info:
        service.record_response(idle.session_id, idle.token, answer(idle.practice[1], 1))
    assert info.value.reason == "timed_out"
    with pytest.raises(Refused):
        service.start("toy-exp", "IDLE", "prolific")
    assert _in_progress_per_task(db, clock) == 1
    # what they are owed: the timed-out code, and their answers stay theirs
    state = service.state(idle.session_id, idle.token)
    assert state.completion_code == "TIMED_OUT" and state.next_index == 1
    assert service.entry_status("toy-exp", "IDLE")[:2] == ("timed_out", "TIMED_OUT")


def test_a_timed_out_session_is_owed_its_share_of_the_reward():
    from experiments.study.spec import Recruitment
    assert Recruitment(reward=3.0).owed(answered=17, trials=34) == 1.5
    assert Recruitment(reward=3.0).owed(answered=40, trials=34) == 3.0  # practice repeated
    assert Recruitment().owed(answered=17, trials=34) == 0.0


def test_sessions_per_network_are_capped(db, tmp_path, toy_set):
    _build(db, tmp_path, toy_set, recruitment={"max_sessions_per_network": 2})
    service = SessionService(db)
    service.start("toy-exp", "A", "prolific", network_key="net1")
    service.start("toy-exp", "B", "prolific", network_key="net1")
    with pytest.raises(Refused) as info:
        service.start("toy-exp", "C", "prolific", network_key="net1")
    assert info.value.reason == "network"
    service.start("toy-exp", "D", "prolific", network_key="net2")
    # the same person resuming is not a new session
    assert service.start("toy-exp", "A", "prolific", network_key="net1").resumed
    run_session(service, service.start("toy-exp", "A", "prolific", network_key="net1"))
    service.start("toy-exp", "C", "prolific", network_key="net1")  # A finished: room again


def test_a_re_accepted_hit_completes_with_the_new_assignment(service, db):
    from experiments.db.models import Participant

    service.start("toy-exp", "W1", "mturk", platform_info={"assignmentId": "OLD"})
    service.start("toy-exp", "W1", "mturk", platform_info={"assignmentId": "NEW"})
    with db.read() as s:
        info = s.scalars(select(Participant.platform_info)).one()
    assert info == {"assignmentId": "NEW"}
    assert _count(db, Event, Event.kind == "platform_info_changed") == 1
