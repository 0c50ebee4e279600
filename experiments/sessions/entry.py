"""Entering a study: task assignment, returning participants, reclaiming lapsed tasks."""
from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import replace
from typing import Any, NamedTuple

from sqlalchemy import and_, func, not_, select, update
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import (
    Experiment,
    Participant,
    Response,
    Session,
    Task,
)
from experiments.errors import Conflict, Refused
from experiments.sessions.base import SessionStore
from experiments.sessions.common import (
    ACTIVE,
    REFUSAL_TEXT,
    SessionState,
    _add_token,
    _hash_token,
    spec_of,
)
from experiments.study.spec import ExperimentSpec
from experiments.vocabulary import FINISHED, PLATFORMS, RESUMABLE, SessionStatus


def _waiting():
    """Web sessions in progress with no answer yet (their holds are reservations)."""
    return and_(Session.status == ACTIVE, Session.n_responses == 0,
                Session.held_offline.is_(False), Session.client == "web")


class EntryStatus(NamedTuple):
    """What a platform id opening the study link finds (see `Entry.entry_status`)."""

    status: str
    code: str | None = None
    session_id: str | None = None


class Entry:
    """Entry: assignment, resume and the session state."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def start(self, experiment_key: str, platform_id: str | None, source: str,
              client: str = "web", client_info: dict[str, Any] | None = None,
              platform_info: dict[str, Any] | None = None, network_key: str | None = None
              ) -> SessionState:
        """Assign a task to a new participant, or resume/restart/refuse a returning one.

        `network_key` (a keyed hash of the IP address) caps the sessions one network holds.
        """
        if source not in PLATFORMS:
            raise Refused(f"unknown participant source {source!r}", "source")
        platform_id = platform_id or f"{source}-{uuid.uuid4().hex}"
        with self.store.db.write() as session:
            experiment = self.store.experiment(session, experiment_key, lock=True)
            spec = spec_of(experiment)
            if experiment.status != "open":
                raise Refused(f"experiment {experiment.key} is closed", "closed")
            if source not in spec.recruitment.platforms:
                raise Refused(f"experiment {experiment.key} does not recruit through {source}",
                              "source")
            self._refuse_other_experiments(session, spec, platform_id)
            participant = session.scalars(select(Participant).where(
                Participant.experiment_id == experiment.id,
                Participant.platform_id == platform_id)).first()
            token = secrets.token_urlsafe(32)
            if participant is not None:
                record = self._returning(session, experiment, spec, participant, token,
                                         platform_info)
                if record is not None:
                    return self._state(session, record, spec, experiment, token, resumed=True)
            self._refuse_crowded_network(session, experiment, spec, network_key)
            if participant is None:
                experiment.participant_counter += 1
                participant = Participant(experiment_id=experiment.id,
                                          number=experiment.participant_counter,
                                          platform_id=platform_id, source=source,
                                          platform_info=platform_info or {},
                                          created_at=self.store.clock())
                session.add(participant)
                session.flush()
            self._bump_reservations(session, experiment, spec)
            task = self._least_filled(session, experiment, spec)
            now = self.store.clock()
            record = Session(id=uuid.uuid4().hex, experiment_id=experiment.id,
                             participant_id=participant.id, task_id=task.id,
                             token_sha256=_hash_token(token), client=client, status=ACTIVE,
                             started_at=now, last_activity_at=now,
                             main_offset=0 if spec.practice.trials == 0 else None,
                             client_info=client_info or {}, network_key=network_key)
            session.add(record)
            session.flush()
            return self._state(session, record, spec, experiment, token)

    def _refuse_other_experiments(self, session: OrmSession, spec: ExperimentSpec,
                                  platform_id: str) -> None:
        if not spec.recruitment.block_participants_of:
            return
        seen = session.scalar(select(func.count()).select_from(Participant).join(
            Experiment, Experiment.id == Participant.experiment_id).where(
            Experiment.name.in_(spec.recruitment.block_participants_of),
            Participant.platform_id == platform_id))
        if seen:
            raise Refused("you have taken part in an earlier study of this series", "repeat")

    def entry_status(self, experiment_key: str, platform_id: str) -> EntryStatus:
        """What a platform id opening the study link finds, before consent: 'new',
        'in_progress', 'completed', 'failed_practice' or 'timed_out' (after answering, its task
        gone) with its completion code, 'blocked' when the study cannot be resumed, or 'repeat'
        for someone who may not take part (again)."""
        with self.store.db.read() as session:
            experiment = self.store.experiment(session, experiment_key)
            spec = spec_of(experiment)
            latest = session.execute(
                select(Session.status, Session.completion_code, Session.id)
                .join(Participant, Participant.id == Session.participant_id)
                .where(Participant.experiment_id == experiment.id,
                       Participant.platform_id == platform_id)
                .order_by(Session.started_at.desc(), Session.id).limit(1)).first()
            if latest is None:
                try:
                    self._refuse_other_experiments(session, spec, platform_id)
                except Refused:
                    return EntryStatus("repeat")
                return EntryStatus("new")
            status, code, session_id = latest
            if status in FINISHED or (status == SessionStatus.TIMED_OUT and code):
                return EntryStatus(status, code, session_id)
            if status in RESUMABLE:
                blocked = spec.recruitment.resume_policy == "block"
                return EntryStatus("blocked" if blocked else "in_progress", None, session_id)
            return EntryStatus("repeat", None, session_id)

    def _refuse_crowded_network(self, session: OrmSession, experiment: Experiment,
                                spec: ExperimentSpec, network_key: str | None) -> None:
        cap = spec.recruitment.max_sessions_per_network
        if not cap or not network_key:
            return
        crowded = session.scalar(select(func.count()).select_from(Session).where(
            Session.experiment_id == experiment.id, Session.network_key == network_key,
            Session.status == ACTIVE, self.store.holding(spec)))
        if crowded >= cap:
            raise Refused(f"{crowded} sessions of this study are in progress from your network; "
                          f"at most {cap} may run at once", "network")

    def _returning(self, session: OrmSession, experiment: Experiment, spec: ExperimentSpec,
                   participant: Participant, token: str,
                   platform_info: dict[str, Any] | None = None) -> Session | None:
        latest = session.scalars(select(Session).where(Session.participant_id == participant.id)
                                 .order_by(Session.started_at.desc(), Session.id).limit(1)).first()
        if latest is None:
            return None
        if latest.status == SessionStatus.COMPLETED:
            raise Refused("you have completed this study already", "completed")
        if latest.status == SessionStatus.FAILED_PRACTICE:
            raise Refused("you have taken part in this study already", "failed_practice")
        if latest.status not in RESUMABLE:
            raise Refused("you have already taken part in this study", "repeat")
        if platform_info and platform_info != participant.platform_info:
            # A re-accepted MTurk HIT has a new assignment id: the completion must name it.
            self.store.event(session, latest, "platform_info_changed",
                        {"before": participant.platform_info, "now": platform_info})
            participant.platform_info = platform_info
        policy = spec.recruitment.resume_policy
        if policy == "block":
            raise Refused("this study cannot be resumed once started", "blocked")
        if policy == "restart":
            latest.status = SessionStatus.RESTARTED
            latest.finished_at = self.store.clock()
            self.store.event(session, latest, "restart")
            return None
        outcome = self._reclaim(session, latest, spec)
        if outcome not in (None, "reassigned"):
            raise Refused(REFUSAL_TEXT[outcome], outcome)
        _add_token(latest, token)
        latest.last_activity_at = self.store.clock()
        self.store.event(session, latest, "resume", {"next_index": latest.n_responses})
        return latest

    def _bump_reservations(self, session: OrmSession, experiment: Experiment,
                           spec: ExperimentSpec) -> None:
        """Make room for one more sign-up within the share of open tasks that web sessions with
        no answer may reserve: the oldest such reservations end (their sessions get their task
        back at their first answer while nobody took it, else a free one)."""
        share = spec.recruitment.max_unanswered_share
        if share >= 1:
            return
        waiting = _waiting()
        ours = and_(Session.experiment_id == experiment.id, self.store.holding(spec))
        n_tasks = session.scalar(select(func.count()).select_from(Task).where(
            Task.experiment_id == experiment.id))
        taken = session.scalar(select(func.count(Session.task_id.distinct())).where(
            ours, not_(waiting)))
        open_tasks = n_tasks - taken
        cap = max(1, math.floor(share * open_tasks))
        reserved = session.scalars(select(Session).where(ours, waiting)
                                   .order_by(Session.started_at, Session.id)).all()
        self._end_reservations(session, reserved[:max(0, len(reserved) + 1 - cap)],
                               {"open_tasks": open_tasks, "cap": cap, "reserved": len(reserved)})

    def _end_reservations(self, session: OrmSession, records: list[Session],
                          why: dict[str, Any]) -> int:
        """End these waiting sessions' holds on their tasks (each may claim one at its first
        answer); returns how many ended. One that stored its first answer meanwhile (its row
        was locked by that write) keeps its task: the update re-checks after the lock."""
        if not records:
            return 0
        ended = session.scalars(
            update(Session).where(Session.id.in_([r.id for r in records]), _waiting())
            .values(status=SessionStatus.TIMED_OUT).returning(Session.id),
            execution_options={"synchronize_session": False}).all()
        for record in records:
            session.expire(record)
            if record.id in ended:
                self.store.event(session, record, "reservation_bumped", why)
        return len(ended)

    def _free_task(self, session: OrmSession, experiment_id: int, spec: ExperimentSpec
                   ) -> Task | None:
        """The first task (in assignment order) that no session holds, leaving while another is
        free the tasks of sign-ups whose reservation was just ended (they may come back)."""
        # An anti-join that stops at the first free task: the grouped count it replaces made
        # PostgreSQL's planner (with fresh, unanalysed tables) loop over tasks x sessions.
        held = select(Session.id).where(Session.task_id == Task.id, self.store.holding(spec))
        bumped = select(Session.id).where(
            Session.task_id == Task.id, Session.status == SessionStatus.TIMED_OUT,
            Session.n_responses == 0, Session.client == "web",
            Session.last_activity_at >= self.store.cutoff(spec, False))
        return session.scalars(
            select(Task).where(Task.experiment_id == experiment_id, ~held.exists())
            .order_by(bumped.exists(), Task.assign_order).limit(1)).first()

    def _least_filled(self, session: OrmSession, experiment: Experiment, spec: ExperimentSpec
                      ) -> Task:
        task = self._free_task(session, experiment.id, spec)
        if task is None:
            raise Refused(f"experiment {experiment.key} is full: every task is taken", "full")
        return task

    def _reclaim(self, session: OrmSession, record: Session, spec: ExperimentSpec,
                 answering: bool = False) -> str | None:
        """A session that lost its hold on its task (timed out, or its reservation lapsed or was
        ended) comes back: it goes on while nobody else took the task, or, `answering` its first
        trial, while only sessions with no answer yet hold it (their reservations end: the first
        answer wins) (None); with no answer yet it gets a free task ('reassigned'); else it is
        timed out, never sharing a task ('timed_out', or 'full' when no task is free). Call with
        the experiment locked."""
        if record.status not in RESUMABLE or self.store.holds(record, spec):
            return None
        now = self.store.clock()
        holding = and_(Session.task_id == record.task_id, Session.id != record.id,
                       self.store.holding(spec))
        others = session.scalar(select(func.count()).select_from(Session).where(holding))
        if others and answering and not record.n_responses and not session.scalar(
                select(func.count()).select_from(Session).where(holding, not_(_waiting()))):
            others -= self._end_reservations(
                session, session.scalars(select(Session).where(holding)).all(),
                {"answered_first": record.id})
        if not others:
            record.status, record.last_activity_at = ACTIVE, now
            record.completion_code = None  # a timed-out code given earlier no longer applies
            return None
        task = self._free_task(session, record.experiment_id, spec) if not record.n_responses \
            else None
        if task is not None:
            self.store.event(session, record, "reassigned", {"from_task": record.task_id,
                                                         "to_task": task.id})
            record.task_id, record.status, record.last_activity_at = task.id, ACTIVE, now
            record.practice_attempts = 0
            record.main_offset = 0 if spec.practice.trials == 0 else None
            return "reassigned"
        if record.status == ACTIVE:
            record.status = SessionStatus.TIMED_OUT
            self.store.event(session, record, "timed_out", {"on_return": True})
        if not record.n_responses:
            return "full"
        record.completion_code = spec.recruitment.completion_codes.timed_out
        return "timed_out"

    def reclaim_now(self, session_id: str, answering: bool = False) -> str | None:
        """`_reclaim` in a transaction of its own, locking the experiment, then the session."""
        with self.store.db.write() as session:
            record = self.store.lock_with_experiment(session, session_id)
            spec = self.store.session_spec(session, record)
            return self._reclaim(session, record, spec, answering)

    def refuse_reclaimed(self, outcome: str) -> None:
        if outcome == "reassigned":
            raise Conflict("this session was given new trials because it was idle before its "
                           "first answer; reload the page", expected_trial_index=0)
        raise Refused(REFUSAL_TEXT[outcome], outcome)

    # ---- state ----------------------------------------------------------------------
    def _state(self, session: OrmSession, record: Session, spec: ExperimentSpec,
               experiment: Experiment, token: str | None = None, resumed: bool = False
               ) -> SessionState:
        trials = self.store.trials_of(session, record.task_id)
        task = session.get(Task, record.task_id)
        correct_main = 0
        if record.main_offset is not None:
            correct_main = session.scalar(select(func.count()).select_from(Response).where(
                Response.session_id == record.id, Response.trial_index >= record.main_offset,
                Response.correct.is_(True))) or 0
        return SessionState(
            session_id=record.id, experiment=experiment.key, task_id=task.task_key,
            condition=task.condition, difficulty=task.difficulty, client=record.client,
            status=record.status, next_index=record.n_responses,
            practice_attempts=record.practice_attempts, main_offset=record.main_offset,
            practice_pass_mark=spec.practice.pass_mark,
            practice_max_attempts=spec.practice.max_attempts,
            practice=list(trials.practice), main=list(trials.main),
            completion_code=record.completion_code, token=token, resumed=resumed,
            answered_correct_main=correct_main)

    def state(self, session_id: str, token: str | None) -> SessionState:
        """The current state of a session (token checked unless None, for trusted callers).

        A session back after losing its task is reclaimed first (see `_reclaim`): the state
        then shows its fresh task, or status timed_out. One with no answer yet claims a task only
        at its first answer (a reload reserves nothing past `max_unanswered_share`): till then
        it shows its trials, in progress.
        """
        with self.store.db.read() as session:
            record = self.store.find_session(session, session_id, token)
            spec = self.store.session_spec(session, record)
            experiment = session.get(Experiment, record.experiment_id)
            if record.status not in RESUMABLE or self.store.holds(record, spec):
                return self._state(session, record, spec, experiment)
            if not record.n_responses:
                return replace(self._state(session, record, spec, experiment), status=ACTIVE)
        self.reclaim_now(session_id)
        with self.store.db.read() as session:
            record = self.store.find_session(session, session_id, token)
            return self._state(session, record, self.store.session_spec(session, record),
                               session.get(Experiment, record.experiment_id))
