"""Recording a session: idempotent responses, events, instructions and completion."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import (
    Event,
    Response,
    Session,
)
from experiments.errors import Conflict, InterpsyError, Refused
from experiments.sessions.base import SessionStore
from experiments.sessions.common import (
    ACTIVE,
    CLOCK_TOLERANCE_MS,
    FRAME_TOLERANCE_MS,
    RecordResult,
    ResponseIn,
)
from experiments.sessions.entry import Entry
from experiments.study import progress
from experiments.study.spec import ExperimentSpec
from experiments.tasks import get_task
from experiments.vocabulary import FINISHED, RESUMABLE, SessionStatus


class Recording:
    """Recording: responses, events, instructions and completion."""

    def __init__(self, store: SessionStore, entry: Entry) -> None:
        self.store = store
        self.entry = entry

    def record_response(self, session_id: str, token: str | None, response: ResponseIn,
                        client_recorded_at: datetime | None = None) -> RecordResult:
        """Store one answer; an identical retry is a no-op, a different one is refused and logged.

        `client_recorded_at`: when an offline lab run stored it (its journal's time).
        """
        conflict: tuple[str, dict] | None = None
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, token, lock=True)
            spec = self.store.session_spec(session, record)
            index = response.trial_index
            lapsed = (index >= record.n_responses and record.status in RESUMABLE
                      and not self.store.holds(record, spec))
            if not lapsed:
                if index >= record.n_responses:
                    return self._store_new(session, record, spec, response, client_recorded_at)
                stored = session.scalars(select(Response).where(
                    Response.session_id == record.id, Response.trial_index == index)).one()
                if response.same_answer(stored, self._normalised(spec, response)):
                    return self._result(session, record, stored, stored_now=False)
                conflict = (f"trial {index} of this session is already stored with a different "
                            f"answer", {"sent": response.model_dump(), "stored": {
                                "trial_id": stored.trial_id, "answer": stored.answer,
                                "rt_ms": stored.rt_ms}})
        if lapsed:  # reclaimed in a transaction that locks the experiment first
            outcome = self.entry.reclaim_now(session_id, answering=index == 0)
            if outcome is not None:
                self.entry.refuse_reclaimed(outcome)
            return self.record_response(session_id, token, response, client_recorded_at)
        # Outside the failed transaction: log the conflict, then refuse.
        self.record_event(session_id, None, "conflicting_response", conflict[1])
        raise Conflict(conflict[0])

    def first_difference(self, session_id: str, responses: list[ResponseIn]) -> int | None:
        """The first trial index whose stored answer differs from the one in `responses` (None:
        every stored one is the same, as a retry would find)."""
        with self.store.db.read() as session:
            record = self.store.find_session(session, session_id, None)
            spec = self.store.session_spec(session, record)
            stored = {r.trial_index: r for r in session.scalars(
                select(Response).where(Response.session_id == session_id))}
            for response in sorted(responses, key=lambda r: r.trial_index):
                old = stored.get(response.trial_index)
                if old is not None and not response.same_answer(
                        old, self._normalised(spec, response)):
                    return response.trial_index
        return None

    @staticmethod
    def _normalised(spec: ExperimentSpec, response: ResponseIn) -> dict[str, Any]:
        """The answer as it would be stored; {} when it does not validate (never the same)."""
        try:
            return get_task(spec.task.type).parse_answer(response.answer).model_dump(mode="json")
        except InterpsyError:
            return {}

    def _store_new(self, session: OrmSession, record: Session, spec: ExperimentSpec,
                   response: ResponseIn, client_recorded_at: datetime | None = None
                   ) -> RecordResult:
        index = response.trial_index
        if index > record.n_responses:
            raise Conflict(f"trial {index} sent before trial {record.n_responses}; send trials in "
                           f"order", expected_trial_index=record.n_responses)
        if record.status != ACTIVE:
            raise Refused(f"this session is {record.status.replace('_', ' ')}; no more answers "
                          f"are taken", record.status)
        trials = self.store.trials_of(session, record.task_id)
        rules = self.store.rules_of(trials, spec)
        slot = progress.slot_at(record.id, rules, record.main_offset, index)
        if slot is None:
            raise Conflict(f"trial_index {index} is past the last trial of this session")
        trial = trials.at(slot.phase, slot.position)
        if trial.trial_id != response.trial_id:
            raise Conflict(f"trial_index {index} is trial {trial.trial_id} of this session, not "
                           f"{response.trial_id}", expected_trial_index=record.n_responses)
        task_type = get_task(spec.task.type)
        answer = task_type.parse_answer(response.answer)
        task_type.check_answer(answer, trial.stimulus)
        now = self.store.clock()
        stored = Response(session_id=record.id, trial_index=index, trial_id=trial.trial_id,
                          rt_flag=self._rt_flag(response.rt_ms, record, spec, now),
                          attempt=slot.attempt, answer=answer.model_dump(mode="json"),
                          correct=task_type.score(answer, trial.answer_key),
                          rt_ms=response.rt_ms, stim_onset_ms=response.stim_onset_ms,
                          response_ms=response.response_ms, client_extra=response.extra,
                          server_received_at=now, client_recorded_at=client_recorded_at)
        session.add(stored)
        # The attempt's earlier correct answers matter only when this answer closes it.
        earlier = session.scalar(select(func.count()).select_from(Response).where(
            Response.session_id == record.id, Response.trial_index >= index - slot.slot,
            Response.trial_index < index, Response.correct.is_(True))) \
            if slot.closes_attempt else 0
        before = progress.Progress(index, record.main_offset, record.practice_attempts,
                                   attempt_correct=earlier, status=record.status)
        after, passed = progress.advance(before, rules, stored.correct)
        record.n_responses = after.next_index
        record.main_offset = after.main_offset
        record.practice_attempts = after.practice_attempts
        record.last_activity_at = now
        if after.status == SessionStatus.FAILED_PRACTICE:
            record.status = SessionStatus.FAILED_PRACTICE
            record.finished_at = now
            record.completion_code = spec.recruitment.completion_codes.failed_checks
        session.flush()
        return self._result(session, record, stored, stored_now=True, passed=passed)

    @staticmethod
    def _rt_flag(rt_ms: float, record: Session, spec: ExperimentSpec, now: datetime) -> str | None:
        """Why the server cannot believe a reported response time (None: it can)."""
        if rt_ms < spec.timing.button_lock_ms - FRAME_TOLERANCE_MS:
            return "below_button_lock"  # the buttons were still locked
        if rt_ms > (now - record.started_at).total_seconds() * 1000 + CLOCK_TOLERANCE_MS:
            return "longer_than_session"  # longer than the session has existed
        return None

    def _result(self, session: OrmSession, record: Session, stored: Response, stored_now: bool,
                passed: bool | None = None) -> RecordResult:
        trials = self.store.trials_of(session, record.task_id)
        rules = self.store.rules_of(trials, self.store.session_spec(session, record))
        now = progress.Progress(record.n_responses, record.main_offset, record.practice_attempts,
                                status=record.status)
        return RecordResult(stored=stored_now, trial_index=stored.trial_index,
                            correct=stored.correct,
                            answer_key=trials.by_id(stored.trial_id).answer_key,
                            next_index=record.n_responses, stage=progress.stage(now, rules),
                            practice_attempt_passed=passed,
                            practice_attempts=record.practice_attempts,
                            main_offset=record.main_offset,
                            server_received_at=stored.server_received_at,
                            rt_flag=stored.rt_flag,
                            next_step=progress.next_slot(record.id, now, rules))

    # ---- events, instructions, completion -----------------------------------------------
    def record_event(self, session_id: str, token: str | None, kind: str,
                     payload: dict[str, Any] | None = None, client_ms: float | None = None,
                     client_key: str | None = None) -> bool:
        """Log a client event (reload, focus loss, fullscreen exit...) or a server-side one.

        Returns False, storing nothing, when the session already has an event with `client_key`
        (a retry whose first reply was lost).
        """
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, token,
                                             lock=client_key is not None)
            if self._seen(session, record.id, client_key):
                return False
            session.add(Event(session_id=record.id, experiment_id=record.experiment_id,
                              kind=kind[:40], payload=payload or {}, client_ms=client_ms,
                              client_key=client_key, created_at=self.store.clock()))
            return True

    def record_instructions(self, session_id: str, token: str | None, seconds: float,
                            client_key: str | None = None) -> bool:
        """Add time spent on the instruction screens, once per `client_key`."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, token, lock=True)
            if self._seen(session, record.id, client_key):
                return False
            claimed = max(0.0, float(seconds))
            counted = claimed
            if record.client == "web":
                # A page's instruction time cannot exceed the wall time its session has existed
                # (the lab's times come from the researcher's machine, synced perhaps later).
                elapsed = (self.store.clock() - record.started_at).total_seconds()
                counted = max(0.0, min(claimed, elapsed + CLOCK_TOLERANCE_MS / 1000
                                       - (record.instruction_s or 0.0)))
            if client_key is not None:
                session.add(Event(session_id=record.id, experiment_id=record.experiment_id,
                                  kind="instructions",
                                  payload={"seconds": claimed, "counted": counted},
                                  client_key=client_key, created_at=self.store.clock()))
            if counted < claimed:
                record.time_flags = [*(record.time_flags or []),
                                     f"instruction time {claimed:.0f} s claimed, {counted:.0f} s "
                                     f"possible by the server's clock"][-20:]
            record.instruction_s = (record.instruction_s or 0.0) + counted
            record.instruction_s_claimed = (record.instruction_s_claimed or 0.0) + claimed
            record.last_activity_at = self.store.clock()
            return True

    @staticmethod
    def _seen(session: OrmSession, session_id: str, client_key: str | None) -> bool:
        return client_key is not None and session.scalar(select(func.count()).select_from(Event).where(
            Event.session_id == session_id, Event.client_key == client_key)) > 0

    def complete(self, session_id: str, token: str | None, feedback: str | None = None,
                 finished_at: datetime | None = None) -> str:
        """Finish a session whose trials are all stored; return its completion code.

        `finished_at`: when an offline lab run finished, by its clock (default: now).
        """
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, token, lock=True)
            if record.status in FINISHED:
                return record.completion_code or ""
            spec = self.store.session_spec(session, record)
            n_main = len(self.store.trials_of(session, record.task_id).main)
            stored_main = (record.n_responses - record.main_offset
                           if record.main_offset is not None else 0)
            if stored_main < n_main:
                raise Conflict(f"{n_main - stored_main} of {n_main} main trials are not stored yet",
                               expected_trial_index=record.n_responses)
            if record.status == SessionStatus.TIMED_OUT:
                record.status = ACTIVE  # every answer is stored: the work is done and is paid
            if record.status != ACTIVE:
                raise Refused(f"this session is {record.status}", record.status)
            record.status = SessionStatus.COMPLETED
            record.finished_at = finished_at or self.store.clock()
            record.last_activity_at = self.store.clock()
            record.completion_code = spec.recruitment.completion_codes.completed
            if feedback:
                record.feedback = feedback[:10_000]
            return record.completion_code


    def client_facts(self, session_id: str, started_at: datetime | None = None,
                      finished_at: datetime | None = None,
                      client_info: dict[str, Any] | None = None) -> None:
        """A lab run's facts (screen, monitor, sizes) and, for an offline run, its times by the
        lab machine's clock (from its journal)."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, None, lock=True)
            if started_at is not None:
                record.started_at = started_at
            if finished_at is not None and record.status in FINISHED:
                record.finished_at = finished_at
            if client_info:
                record.client_info = {**(record.client_info or {}), **client_info}
