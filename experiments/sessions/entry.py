"""Entering a study: task assignment, returning participants, reclaiming lapsed tasks."""
from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import (
    Experiment,
    Participant,
    Response,
    Session,
    Task,
)
from experiments.errors import Conflict, Refused
from experiments.sessions.base import ServiceBase
from experiments.sessions.common import (
    ACTIVE,
    REFUSAL_TEXT,
    SOURCES,
    SessionState,
    _add_token,
    _hash_token,
)
from experiments.spec import ExperimentSpec
from experiments.vocabulary import FINISHED, RESUMABLE, SessionStatus


class EntryMixin(ServiceBase):
    """Entry, task assignment, resume and the session state a client draws from."""

    def start(self, experiment_key: str, platform_id: str | None, source: str,
              client: str = "web", client_info: dict[str, Any] | None = None,
              platform_info: dict[str, Any] | None = None, network_key: str | None = None
              ) -> SessionState:
        """Assign a task to a new participant, or resume/restart/refuse a returning one.

        `network_key` (a keyed hash of the IP address) caps the sessions one network holds.
        """
        if source not in SOURCES:
            raise Refused(f"unknown participant source {source!r}", "source")
        platform_id = platform_id or f"{source}-{uuid.uuid4().hex}"
        with self.db.write() as session:
            experiment = self._experiment(session, experiment_key, lock=True)
            spec = self.spec_of(experiment)
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
                                          created_at=self.clock())
                session.add(participant)
                session.flush()
            task = self._least_filled(session, experiment, spec)
            now = self.clock()
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

    def entry_status(self, experiment_key: str, platform_id: str) -> tuple[str, str | None]:
        """What a platform id opening the study link finds, before consent: ('new', None),
        ('in_progress', None), ('completed' or 'failed_practice', its completion code),
        ('blocked', None) when the study cannot be resumed, or ('repeat', None) for someone who
        may not take part (again)."""
        with self.db.read() as session:
            experiment = self._experiment(session, experiment_key)
            spec = self.spec_of(experiment)
            latest = session.execute(
                select(Session.status, Session.completion_code)
                .join(Participant, Participant.id == Session.participant_id)
                .where(Participant.experiment_id == experiment.id,
                       Participant.platform_id == platform_id)
                .order_by(Session.started_at.desc(), Session.id).limit(1)).first()
            if latest is None:
                try:
                    self._refuse_other_experiments(session, spec, platform_id)
                except Refused:
                    return "repeat", None
                return "new", None
            status, code = latest
            if status in FINISHED:
                return status, code
            if status in RESUMABLE:
                blocked = spec.recruitment.resume_policy == "block"
                return ("blocked" if blocked else "in_progress"), None
            return "repeat", None

    def _refuse_crowded_network(self, session: OrmSession, experiment: Experiment,
                                spec: ExperimentSpec, network_key: str | None) -> None:
        cap = spec.recruitment.max_sessions_per_network
        if not cap or not network_key:
            return
        crowded = session.scalar(select(func.count()).select_from(Session).where(
            Session.experiment_id == experiment.id, Session.network_key == network_key,
            Session.status == ACTIVE, self._holding(spec)))
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
            self._event(session, latest, "platform_info_changed",
                        {"before": participant.platform_info, "now": platform_info})
            participant.platform_info = platform_info
        policy = spec.recruitment.resume_policy
        if policy == "block":
            raise Refused("this study cannot be resumed once started", "blocked")
        if policy == "restart":
            latest.status = SessionStatus.RESTARTED
            latest.finished_at = self.clock()
            self._event(session, latest, "restart")
            return None
        outcome = self._reclaim(session, latest, spec)
        if outcome not in (None, "reassigned"):
            raise Refused(REFUSAL_TEXT[outcome], outcome)
        _add_token(latest, token)
        latest.last_activity_at = self.clock()
        self._event(session, latest, "resume", {"next_index": latest.n_responses})
        return latest

    def _free_task(self, session: OrmSession, experiment_id: int, spec: ExperimentSpec
                   ) -> Task | None:
        """The first task (in assignment order) that no session holds."""
        # An anti-join that stops at the first free task: the grouped count it replaces made
        # PostgreSQL's planner (with fresh, unanalysed tables) loop over tasks x sessions.
        held = select(Session.id).where(Session.task_id == Task.id, self._holding(spec))
        return session.scalars(
            select(Task).where(Task.experiment_id == experiment_id, ~held.exists())
            .order_by(Task.assign_order).limit(1)).first()

    def _least_filled(self, session: OrmSession, experiment: Experiment, spec: ExperimentSpec
                      ) -> Task:
        task = self._free_task(session, experiment.id, spec)
        if task is None:
            raise Refused(f"experiment {experiment.key} is full: every task is taken", "full")
        return task

    def _reclaim(self, session: OrmSession, record: Session, spec: ExperimentSpec) -> str | None:
        """A session that lost its hold on its task (timed out, or its reservation lapsed) comes
        back: it goes on while nobody else took the task (None); with no answer yet it gets a
        free task ('reassigned'); else it is timed out, never sharing a task ('timed_out', or
        'full' when no task is free). Call with the experiment locked."""
        if record.status not in RESUMABLE or self._holds(record, spec):
            return None
        now = self.clock()
        others = session.scalar(select(func.count()).select_from(Session).where(
            Session.task_id == record.task_id, Session.id != record.id, self._holding(spec)))
        if not others:
            record.status, record.last_activity_at = ACTIVE, now
            return None
        task = self._free_task(session, record.experiment_id, spec) if not record.n_responses \
            else None
        if task is not None:
            self._event(session, record, "reassigned", {"from_task": record.task_id,
                                                         "to_task": task.id})
            record.task_id, record.status, record.last_activity_at = task.id, ACTIVE, now
            record.practice_attempts = 0
            record.main_offset = 0 if spec.practice.trials == 0 else None
            return "reassigned"
        if record.status == ACTIVE:
            record.status = SessionStatus.TIMED_OUT
            self._event(session, record, "timed_out", {"on_return": True})
        return "full" if not record.n_responses else "timed_out"

    def _lock_with_experiment(self, session: OrmSession, session_id: str) -> Session:
        """Lock a session's experiment, then the session (the order every writer keeps)."""
        experiment_id = session.scalar(select(Session.experiment_id).where(
            Session.id == session_id))
        session.scalars(select(Experiment).where(Experiment.id == experiment_id)
                        .with_for_update()).first()
        return self._session(session, session_id, None, lock=True)

    def _reclaim_now(self, session_id: str) -> str | None:
        """`_reclaim` in a transaction of its own, locking the experiment, then the session."""
        with self.db.write() as session:
            record = self._lock_with_experiment(session, session_id)
            return self._reclaim(session, record, self._session_spec(session, record))

    def _refuse_reclaimed(self, outcome: str) -> None:
        if outcome == "reassigned":
            raise Conflict("this session was given new trials because it was idle before its "
                           "first answer; reload the page", expected_trial_index=0)
        raise Refused(REFUSAL_TEXT[outcome], outcome)

    # ---- state ----------------------------------------------------------------------
    def _state(self, session: OrmSession, record: Session, spec: ExperimentSpec,
               experiment: Experiment, token: str | None = None, resumed: bool = False
               ) -> SessionState:
        trials = self.trials_of(session, record.task_id)
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
        then shows its fresh task, or status timed_out.
        """
        with self.db.read() as session:
            record = self._session(session, session_id, token)
            spec = self._session_spec(session, record)
            if record.status not in RESUMABLE or self._holds(record, spec):
                return self._state(session, record, spec,
                                   session.get(Experiment, record.experiment_id))
        self._reclaim_now(session_id)
        with self.db.read() as session:
            record = self._session(session, session_id, token)
            return self._state(session, record, self._session_spec(session, record),
                               session.get(Experiment, record.experiment_id))
