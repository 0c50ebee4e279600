"""What the session service's parts share: the database, the clock, and the lookups of
experiments, sessions, specs, trials and events (each part is handed one SessionStore)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db import Database
from experiments.db.lookup import experiment_by_key
from experiments.db.models import (
    Event,
    Experiment,
    Session,
    Trial,
    utcnow,
)
from experiments.errors import NotFound
from experiments.sessions.common import (
    ACTIVE,
    PlannedTrial,
    TaskTrials,
    _remember,
    _token_matches,
    spec_of,
)
from experiments.study import progress
from experiments.study.spec import ExperimentSpec
from experiments.vocabulary import SessionStatus


class SessionStore:
    """The database, the clock and the lookups every part of the service shares."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.clock = clock
        self._task_trials: dict[int, TaskTrials] = {}
        self._specs: dict[int, ExperimentSpec] = {}

    # ---- lookup helpers -------------------------------------------------------------
    @staticmethod
    def experiment(session: OrmSession, key: str, lock: bool = False) -> Experiment:
        return experiment_by_key(session, key, lock)

    def session_spec(self, session: OrmSession, record: Session) -> ExperimentSpec:
        """The spec of a session's experiment, by id: an experiment with sessions is never replaced."""
        spec = self._specs.get(record.experiment_id)
        return spec if spec is not None else _remember(
            self._specs, record.experiment_id, spec_of(session.get(Experiment, record.experiment_id)))

    def trials_of(self, session: OrmSession, task_id: int) -> TaskTrials:
        """A task's trials, read once per process."""
        cached = self._task_trials.get(task_id)
        if cached is not None:
            return cached
        trials = [PlannedTrial.of(t) for t in session.scalars(
            select(Trial).where(Trial.task_id == task_id).order_by(Trial.ordinal))]
        return _remember(self._task_trials, task_id, TaskTrials(
            tuple(t for t in trials if t.phase == "practice"),
            tuple(t for t in trials if t.phase == "main")))

    @staticmethod
    def rules_of(trials: TaskTrials, spec: ExperimentSpec) -> progress.Rules:
        """A task's block sizes and the spec's practice criterion."""
        return progress.Rules(len(trials.practice), len(trials.main), spec.practice.pass_mark,
                              spec.practice.max_attempts)

    def find_session(self, session: OrmSession, session_id: str, token: str | None, lock: bool = False
                 ) -> Session:
        query = select(Session).where(Session.id == session_id)
        if lock:
            query = query.with_for_update()
        record = session.scalars(query).first() if isinstance(session_id, str) else None
        if record is None or (token is not None and not _token_matches(record, token)):
            # One message for both, so a guessed id reveals nothing.
            raise NotFound("unknown session or wrong token")
        return record

    def event(self, session: OrmSession, record: Session, kind: str,
               payload: dict[str, Any] | None = None) -> None:
        """Log a server-side event of a session in the open transaction."""
        session.add(Event(session_id=record.id, experiment_id=record.experiment_id, kind=kind,
                          payload=payload or {}, created_at=self.clock()))

    def cutoff(self, spec: ExperimentSpec, answered: bool = True) -> datetime:
        """Activity after this keeps a task; before the first answer only the (shorter)
        reservation does, so sign-ups that never answer free their task soon."""
        minutes = spec.timing.session_timeout_min
        if not answered:
            minutes = min(minutes, spec.recruitment.reservation_min)
        return self.clock() - timedelta(minutes=minutes)

    def holding(self, spec: ExperimentSpec):
        """Sessions that hold their task: completed, exported to a lab task file (until synced
        or released), or in progress and recently active."""
        return or_(Session.status == SessionStatus.COMPLETED, and_(Session.status == ACTIVE, or_(
            and_(Session.held_offline.is_(True), Session.late_of.is_(None)),
            and_(Session.n_responses > 0, Session.last_activity_at >= self.cutoff(spec)),
            Session.last_activity_at >= self.cutoff(spec, answered=False))))

    def holds(self, record: Session, spec: ExperimentSpec) -> bool:
        """Whether this session keeps its trials (`holding`'s rule; a late sync's session
        keeps its own though its task belongs to another)."""
        return record.status == SessionStatus.COMPLETED or (record.status == ACTIVE and (
            record.held_offline
            or record.last_activity_at >= self.cutoff(spec, answered=record.n_responses > 0)))

    def lock_with_experiment(self, session: OrmSession, session_id: str) -> Session:
        """Lock a session's experiment, then the session (the order every writer keeps)."""
        experiment_id = session.scalar(select(Session.experiment_id).where(
            Session.id == session_id))
        session.scalars(select(Experiment).where(Experiment.id == experiment_id)
                        .with_for_update()).first()
        return self.find_session(session, session_id, None, lock=True)
