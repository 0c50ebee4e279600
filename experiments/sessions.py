"""The session service: assignment, idempotent responses, resume and completion (no Flask).

The web server and the lab client both call this; every write is one transaction.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db import Database
from experiments.db.models import (
    Event,
    Experiment,
    Participant,
    Response,
    Session,
    Task,
    Trial,
    utcnow,
)
from experiments.errors import Conflict, NotFound, Refused
from experiments.practice import practice_order, practice_position
from experiments.spec import ExperimentSpec
from experiments.tasks import get_task
from experiments.vocabulary import FINISHED, MARKED, RESUMABLE, SessionStatus

ACTIVE = SessionStatus.ACTIVE  # the status most checks ask about
FRAME_TOLERANCE_MS = 17  # one frame at 60 Hz: a response time may undercut the lock by this
CLOCK_TOLERANCE_MS = 2000  # client and server clocks: how much a client time may exceed wall time
REFUSAL_TEXT = {
    "timed_out": "this session timed out and its trials were given to someone else",
    "full": "this session was idle before its first answer and every task is taken now",
}
SOURCES = ("prolific", "mturk", "link", "lab")


class ResponseIn(BaseModel):
    """One answered trial as a client sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_index: int = Field(ge=0, le=100_000)
    trial_id: int = Field(ge=1)
    choice: Literal["a", "b"]
    confidence: int = Field(ge=1, le=3)
    rt_ms: float = Field(ge=0, le=86_400_000, allow_inf_nan=False)
    stim_onset_ms: float | None = Field(None, allow_inf_nan=False)
    response_ms: float | None = Field(None, allow_inf_nan=False)
    extra: dict[str, Any] = Field(default_factory=dict)

    def same_answer(self, stored: Response) -> bool:
        return (stored.trial_id == self.trial_id and stored.choice == self.choice
                and stored.confidence == self.confidence and abs(stored.rt_ms - self.rt_ms) < 1e-6)


def _score(spec: ExperimentSpec, response: ResponseIn, key: str) -> bool:
    """The experiment's task type scores the answer fields of a response."""
    task = get_task(spec.task.type)
    fields = response.model_dump(include=set(task.Answer.model_fields))
    return task.score(task.Answer.model_validate(fields), key)


@dataclass(frozen=True)
class TrialView:
    """A trial as a client needs it to draw the screen and give feedback."""

    trial_id: int
    phase: str
    position: int
    is_catch: bool
    unit_id: str
    condition: str
    difficulty: str
    batch: int
    query_a: str
    query_b: str
    correct_choice: str
    references_max: list[str]
    references_min: list[str]
    model: str = ""
    layer: str = ""
    channel: int = -1

    @classmethod
    def of(cls, trial: Trial) -> TrialView:
        return cls(trial.id, trial.phase, trial.position, trial.is_catch, trial.unit_id,
                   trial.condition, trial.difficulty, trial.batch, trial.query_a, trial.query_b,
                   trial.correct_choice, list(trial.references_max), list(trial.references_min),
                   trial.model, trial.layer, trial.channel)

    def image_ids(self) -> list[str]:
        """Every image this trial shows."""
        return [*self.references_min, *self.references_max, self.query_a, self.query_b]


@dataclass
class SessionState:
    """Where a session stands: its trials, the next trial_index and what happens next."""

    session_id: str
    experiment: str
    task_id: str
    condition: str
    difficulty: str
    client: str
    status: str
    next_index: int
    practice_attempts: int
    main_offset: int | None
    practice_pass_mark: int
    practice_max_attempts: int
    practice: list[TrialView]
    main: list[TrialView]
    completion_code: str | None
    token: str | None = None
    resumed: bool = False
    answered_correct_main: int = 0

    def practice_trial(self, index: int) -> TrialView:
        """The practice trial shown at running index `index` (repetitions are reshuffled)."""
        return self.practice[practice_position(self.session_id, index, len(self.practice))]

    @property
    def practice_order(self) -> list[int]:
        """The order of the practice attempt under way (or next)."""
        n = len(self.practice)
        return practice_order(self.session_id, self.next_index // n if n else 0, n)

    @property
    def stage(self) -> str:
        """practice, main, finish (all trials stored, not yet completed) or done."""
        if self.status in FINISHED:
            return "done"
        if self.main_offset is None:
            return "practice"
        return "main" if self.next_index - self.main_offset < len(self.main) else "finish"


@dataclass
class RecordResult:
    """What storing one response did."""

    stored: bool  # False: an identical retry, nothing written
    trial_index: int
    correct: bool
    correct_choice: str  # told only after the answer is stored: the page's feedback
    next_index: int
    stage: str
    practice_attempt_passed: bool | None = None
    practice_attempts: int = 0
    main_offset: int | None = None
    server_received_at: datetime | None = None
    rt_flag: str | None = None  # see Response.rt_flag


@dataclass(frozen=True)
class TaskTrials:
    """A task's trials in order; immutable once the experiment is built, so cached per process."""

    practice: tuple[TrialView, ...]
    main: tuple[TrialView, ...]

    def at(self, phase: str, position: int) -> TrialView | None:
        trials = self.practice if phase == "practice" else self.main
        return trials[position] if 0 <= position < len(trials) else None

    def by_id(self, trial_id: int) -> TrialView:
        return next(t for t in (*self.practice, *self.main) if t.trial_id == trial_id)


_SPECS: dict[tuple[int, datetime, str], ExperimentSpec] = {}
CACHE_SIZE = 4096


def _remember(cache: dict, key: Any, value: Any) -> Any:
    """Store in a bounded dict cache (oldest entry dropped first)."""
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)), None)
    cache[key] = value
    return value


def spec_of(experiment: Experiment) -> ExperimentSpec:
    """The experiment's validated spec, parsed once per process (specs never change after build)."""
    key = (experiment.id, experiment.created_at, experiment.spec_sha256)
    spec = _SPECS.get(key)
    return spec if spec is not None else _remember(
        _SPECS, key, ExperimentSpec.model_validate(experiment.spec_json))


def experiment_by_key(session: OrmSession, key: str, lock: bool = False) -> Experiment:
    """`name@version`, or `name` for its newest version; NotFound otherwise."""
    name, _, version = key.partition("@")
    query = select(Experiment).where(Experiment.name == name)
    if version:
        query = query.where(Experiment.version == version)
    else:
        query = query.order_by(Experiment.created_at.desc(), Experiment.id.desc()).limit(1)
    if lock:
        query = query.with_for_update()
    experiment = session.scalars(query).first()
    if experiment is None:
        raise NotFound(f"no experiment {key!r}")
    return experiment


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_matches(record: Session, token: str) -> bool:
    """The session's newest token or one handed out earlier (another tab keeps working)."""
    given = _hash_token(token)
    return any(hmac.compare_digest(known, given)
               for known in (record.token_sha256, *(record.older_token_hashes or [])))


def _add_token(record: Session, token: str, keep: int = 8) -> None:
    record.older_token_hashes = [*(record.older_token_hashes or []), record.token_sha256][-keep:]
    record.token_sha256 = _hash_token(token)


class SessionService:
    """Assigns tasks, stores responses idempotently, resumes and completes sessions."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.clock = clock
        self._task_trials: dict[int, TaskTrials] = {}
        self._specs: dict[int, ExperimentSpec] = {}

    # ---- lookup helpers -------------------------------------------------------------
    @staticmethod
    def _experiment(session: OrmSession, key: str, lock: bool = False) -> Experiment:
        return experiment_by_key(session, key, lock)

    spec_of = staticmethod(spec_of)

    def _session_spec(self, session: OrmSession, record: Session) -> ExperimentSpec:
        """The spec of a session's experiment, by id: an experiment with sessions is never replaced."""
        spec = self._specs.get(record.experiment_id)
        return spec if spec is not None else _remember(
            self._specs, record.experiment_id, spec_of(session.get(Experiment, record.experiment_id)))

    def trials_of(self, session: OrmSession, task_id: int) -> TaskTrials:
        """A task's trials, read once per process."""
        cached = self._task_trials.get(task_id)
        if cached is not None:
            return cached
        trials = [TrialView.of(t) for t in session.scalars(
            select(Trial).where(Trial.task_id == task_id).order_by(Trial.ordinal))]
        return _remember(self._task_trials, task_id, TaskTrials(
            tuple(t for t in trials if t.phase == "practice"),
            tuple(t for t in trials if t.phase == "main")))

    def _session(self, session: OrmSession, session_id: str, token: str | None, lock: bool = False
                 ) -> Session:
        query = select(Session).where(Session.id == session_id)
        if lock:
            query = query.with_for_update()
        record = session.scalars(query).first() if isinstance(session_id, str) else None
        if record is None or (token is not None and not _token_matches(record, token)):
            # One message for both, so a guessed id reveals nothing.
            raise NotFound("unknown session or wrong token")
        return record

    def _event(self, session: OrmSession, record: Session, kind: str,
               payload: dict[str, Any] | None = None) -> None:
        """Log a server-side event of a session in the open transaction."""
        session.add(Event(session_id=record.id, experiment_id=record.experiment_id, kind=kind,
                          payload=payload or {}, created_at=self.clock()))

    def _cutoff(self, spec: ExperimentSpec, answered: bool = True) -> datetime:
        """Activity after this keeps a task; before the first answer only the (shorter)
        reservation does, so sign-ups that never answer free their task soon."""
        minutes = spec.timing.session_timeout_min
        if not answered:
            minutes = min(minutes, spec.recruitment.reservation_min)
        return self.clock() - timedelta(minutes=minutes)

    def _holding(self, spec: ExperimentSpec):
        """Sessions that hold their task: completed, exported to a lab task file (until synced
        or released), or in progress and recently active."""
        return or_(Session.status == SessionStatus.COMPLETED, and_(Session.status == ACTIVE, or_(
            and_(Session.held_offline.is_(True), Session.late_of.is_(None)),
            and_(Session.n_responses > 0, Session.last_activity_at >= self._cutoff(spec)),
            Session.last_activity_at >= self._cutoff(spec, answered=False))))

    def _holds(self, record: Session, spec: ExperimentSpec) -> bool:
        """Whether this session keeps its trials (`_holding`'s rule; a late sync's session
        keeps its own though its task belongs to another)."""
        return record.status == SessionStatus.COMPLETED or (record.status == ACTIVE and (
            record.held_offline
            or record.last_activity_at >= self._cutoff(spec, answered=record.n_responses > 0)))

    # ---- assignment -----------------------------------------------------------------
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

    # ---- responses ------------------------------------------------------------------
    def record_response(self, session_id: str, token: str | None, response: ResponseIn,
                        client_recorded_at: datetime | None = None) -> RecordResult:
        """Store one answer; an identical retry is a no-op, a different one is refused and logged.

        `client_recorded_at`: when an offline lab run stored it (its journal's time).
        """
        conflict: tuple[str, dict] | None = None
        with self.db.write() as session:
            record = self._session(session, session_id, token, lock=True)
            spec = self._session_spec(session, record)
            index = response.trial_index
            lapsed = (index >= record.n_responses and record.status in RESUMABLE
                      and not self._holds(record, spec))
            if lapsed:
                pass  # reclaimed below, in a transaction that locks the experiment first
            elif index < record.n_responses:
                stored = session.scalars(select(Response).where(
                    Response.session_id == record.id, Response.trial_index == index)).one()
                if response.same_answer(stored):
                    return self._result(session, record, stored, stored_now=False)
                conflict = (f"trial {index} of this session is already stored with a different "
                            f"answer", {"sent": response.model_dump(), "stored": {
                                "trial_id": stored.trial_id, "choice": stored.choice,
                                "confidence": stored.confidence, "rt_ms": stored.rt_ms}})
            else:
                return self._store_new(session, record, spec, response, client_recorded_at)
        if lapsed:
            outcome = self._reclaim_now(session_id)
            if outcome is not None:
                self._refuse_reclaimed(outcome)
            return self.record_response(session_id, token, response, client_recorded_at)
        # Outside the failed transaction: log the conflict, then refuse.
        self.record_event(session_id, None, "conflicting_response", conflict[1])
        raise Conflict(conflict[0])

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
        trial, attempt = self._trial_at(session, record, index)
        if trial.trial_id != response.trial_id:
            raise Conflict(f"trial_index {index} is trial {trial.trial_id} of this session, not "
                           f"{response.trial_id}", expected_trial_index=record.n_responses)
        now = self.clock()
        stored = Response(session_id=record.id, trial_index=index, trial_id=trial.trial_id,
                          rt_flag=self._rt_flag(response.rt_ms, record, spec, now),
                          attempt=attempt, choice=response.choice,
                          confidence=response.confidence,
                          correct=_score(spec, response, trial.correct_choice),
                          rt_ms=response.rt_ms, stim_onset_ms=response.stim_onset_ms,
                          response_ms=response.response_ms, client_extra=response.extra,
                          server_received_at=now, client_recorded_at=client_recorded_at)
        session.add(stored)
        record.n_responses = index + 1
        record.last_activity_at = now
        session.flush()
        passed = None
        n_practice = spec.practice.trials
        if trial.phase == "practice" and index % n_practice == n_practice - 1:  # the attempt's last slot
            passed = self._close_practice_attempt(session, record, spec, attempt)
        return self._result(session, record, stored, stored_now=True, passed=passed)

    @staticmethod
    def _rt_flag(rt_ms: float, record: Session, spec: ExperimentSpec, now: datetime) -> str | None:
        """Why the server cannot believe a reported response time (None: it can)."""
        if rt_ms < spec.timing.button_lock_ms - FRAME_TOLERANCE_MS:
            return "below_button_lock"  # the buttons were still locked
        if rt_ms > (now - record.started_at).total_seconds() * 1000 + CLOCK_TOLERANCE_MS:
            return "longer_than_session"  # longer than the session has existed
        return None

    def _trial_at(self, session: OrmSession, record: Session, index: int
                  ) -> tuple[TrialView, int]:
        trials = self.trials_of(session, record.task_id)
        n_practice = len(trials.practice)
        if record.main_offset is None or index < record.main_offset:
            phase, attempt = "practice", index // n_practice
            position = practice_position(record.id, index, n_practice)
        else:
            phase, position, attempt = "main", index - record.main_offset, 0
        trial = trials.at(phase, position)
        if trial is None:
            raise Conflict(f"trial_index {index} is past the last trial of this session")
        return trial, attempt

    def _close_practice_attempt(self, session: OrmSession, record: Session, spec: ExperimentSpec,
                                attempt: int) -> bool:
        first = record.n_responses - spec.practice.trials
        n_correct = session.scalar(select(func.count()).select_from(Response).where(
            Response.session_id == record.id, Response.trial_index >= first,
            Response.correct.is_(True)))
        record.practice_attempts = attempt + 1
        if n_correct >= spec.practice.pass_mark:
            record.main_offset = record.n_responses
            return True
        if spec.practice.max_attempts and record.practice_attempts >= spec.practice.max_attempts:
            record.status = SessionStatus.FAILED_PRACTICE
            record.finished_at = self.clock()
            record.completion_code = spec.recruitment.completion_codes.failed_checks
        return False

    def _result(self, session: OrmSession, record: Session, stored: Response, stored_now: bool,
                passed: bool | None = None) -> RecordResult:
        trials = self.trials_of(session, record.task_id)
        if record.status in FINISHED:
            stage = "done"
        elif record.main_offset is None:
            stage = "practice"
        else:
            stage = "main" if record.n_responses - record.main_offset < len(trials.main) else "finish"
        return RecordResult(stored=stored_now, trial_index=stored.trial_index,
                            correct=stored.correct,
                            correct_choice=trials.by_id(stored.trial_id).correct_choice,
                            next_index=record.n_responses, stage=stage,
                            practice_attempt_passed=passed,
                            practice_attempts=record.practice_attempts,
                            main_offset=record.main_offset,
                            server_received_at=stored.server_received_at,
                            rt_flag=stored.rt_flag)

    # ---- events, instructions, completion -----------------------------------------------
    def record_event(self, session_id: str, token: str | None, kind: str,
                     payload: dict[str, Any] | None = None, client_ms: float | None = None,
                     client_key: str | None = None) -> bool:
        """Log a client event (reload, focus loss, fullscreen exit...) or a server-side one.

        Returns False, storing nothing, when the session already has an event with `client_key`
        (a retry whose first reply was lost).
        """
        with self.db.write() as session:
            record = self._session(session, session_id, token, lock=client_key is not None)
            if self._seen(session, record.id, client_key):
                return False
            session.add(Event(session_id=record.id, experiment_id=record.experiment_id,
                              kind=kind[:40], payload=payload or {}, client_ms=client_ms,
                              client_key=client_key, created_at=self.clock()))
            return True

    def record_instructions(self, session_id: str, token: str | None, seconds: float,
                            client_key: str | None = None) -> bool:
        """Add time spent on the instruction screens, once per `client_key`."""
        with self.db.write() as session:
            record = self._session(session, session_id, token, lock=True)
            if self._seen(session, record.id, client_key):
                return False
            claimed = max(0.0, float(seconds))
            counted = claimed
            if record.client == "web":
                # A page's instruction time cannot exceed the wall time its session has existed
                # (the lab's times come from the researcher's machine, synced perhaps later).
                elapsed = (self.clock() - record.started_at).total_seconds()
                counted = max(0.0, min(claimed, elapsed + CLOCK_TOLERANCE_MS / 1000
                                       - (record.instruction_s or 0.0)))
            if client_key is not None:
                session.add(Event(session_id=record.id, experiment_id=record.experiment_id,
                                  kind="instructions",
                                  payload={"seconds": claimed, "counted": counted},
                                  client_key=client_key, created_at=self.clock()))
            if counted < claimed:
                record.time_flags = [*(record.time_flags or []),
                                     f"instruction time {claimed:.0f} s claimed, {counted:.0f} s "
                                     f"possible by the server's clock"][-20:]
            record.instruction_s = (record.instruction_s or 0.0) + counted
            record.instruction_s_claimed = (record.instruction_s_claimed or 0.0) + claimed
            record.last_activity_at = self.clock()
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
        with self.db.write() as session:
            record = self._session(session, session_id, token, lock=True)
            if record.status in FINISHED:
                return record.completion_code or ""
            spec = self._session_spec(session, record)
            n_main = len(self.trials_of(session, record.task_id).main)
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
            record.finished_at = finished_at or self.clock()
            record.last_activity_at = self.clock()
            record.completion_code = spec.recruitment.completion_codes.completed
            if feedback:
                record.feedback = feedback[:10_000]
            return record.completion_code

    # ---- researcher-side --------------------------------------------------------------
    def expire_sessions(self, experiment_key: str) -> int:
        """Mark sessions idle past the timeout as timed out, freeing their tasks."""
        with self.db.write() as session:
            experiment = self._experiment(session, experiment_key, lock=True)
            spec = self.spec_of(experiment)
            stale = session.scalars(select(Session).where(
                Session.experiment_id == experiment.id, Session.status == ACTIVE,
                Session.held_offline.is_(False),
                Session.last_activity_at < self._cutoff(spec))).all()
            for record in stale:
                record.status = SessionStatus.TIMED_OUT
                self._event(session, record, "timed_out")
            return len(stale)

    def set_status(self, session_id: str, status: Literal["returned", "excluded"],
                   reason: str = "") -> None:
        """Researcher marks a session returned (on the platform: not an exclusion) or excluded
        (the reason is exported); its task is freed. The session's end stays the participant's
        last activity, not the moment of the click; `undo_status` takes the mark back."""
        with self.db.write() as session:
            record = self._session(session, session_id, None, lock=True)
            if record.status in MARKED:
                raise Conflict(f"this session is marked {record.status} already; undo that first")
            previous = {"status": record.status, "finished_at": record.finished_at.isoformat()
                        if record.finished_at else None,
                        "exclusion_reasons": list(record.exclusion_reasons or [])}
            record.status = status
            record.finished_at = record.finished_at or record.last_activity_at
            if status == SessionStatus.EXCLUDED and reason:
                record.exclusion_reasons = [*record.exclusion_reasons, reason]
            self._event(session, record, status, {"reason": reason, "previous": previous})

    def undo_status(self, session_id: str) -> str:
        """Take back the researcher's last returned/excluded mark; returns the status restored."""
        with self.db.write() as session:
            record = self._session(session, session_id, None, lock=True)
            if record.status not in MARKED:
                raise Conflict(f"this session is {record.status}: there is no mark to undo")
            mark = session.scalars(select(Event).where(
                Event.session_id == record.id, Event.kind == record.status)
                .order_by(Event.id.desc()).limit(1)).first()
            previous = (mark.payload or {}).get("previous") if mark else None
            if not previous:
                raise Conflict("this mark was made before marks could be undone")
            record.status = previous["status"]
            record.finished_at = (datetime.fromisoformat(previous["finished_at"])
                                  if previous["finished_at"] else None)
            record.exclusion_reasons = previous["exclusion_reasons"]
            if record.status == ACTIVE:
                record.last_activity_at = self.clock()  # its task is held again from now
            self._event(session, record, "mark_undone", {"restored": record.status})
            return record.status

    def release_reservations(self, experiment_key: str) -> int:
        """Free at once the tasks of in-progress sessions with no answer yet (a flood of forged
        sign-ups); such a session that comes back gets a free task or a polite refusal. Exported
        lab tasks stay held (`release_offline` frees one)."""
        with self.db.write() as session:
            experiment = self._experiment(session, experiment_key, lock=True)
            held = session.scalars(select(Session).where(
                Session.experiment_id == experiment.id, Session.status == ACTIVE,
                Session.held_offline.is_(False), Session.n_responses == 0)).all()
            for record in held:
                record.status = SessionStatus.TIMED_OUT
                self._event(session, record, "released")
            return len(held)

    # ---- lab task files ---------------------------------------------------------------
    def hold_offline(self, session_id: str) -> None:
        """Hold an in-progress session's task while it runs from an exported task file."""
        with self.db.write() as session:
            record = self._session(session, session_id, None, lock=True)
            if record.status != ACTIVE:
                raise Refused(f"session {session_id} is {record.status}", record.status)
            record.held_offline = True
            self._event(session, record, "exported", {"next_index": record.n_responses})

    def release_offline(self, session_id: str) -> str:
        """Free the task of an exported session at once (the lab will not run it); returns the
        status it ends with. A later sync of it is still stored, as a late session."""
        with self.db.write() as session:
            record = self._session(session, session_id, None, lock=True)
            if record.status == ACTIVE:
                record.status = SessionStatus.TIMED_OUT
                record.finished_at = record.last_activity_at
            record.held_offline = False
            self._event(session, record, "released", {"offline": True,
                                                      "next_index": record.n_responses})
            return record.status

    def adopt_offline(self, session_id: str) -> str:
        """The session an exported task's answers are synced into: its own while it holds its
        task (or nobody took it); else a separate late session of the same participant and
        task, flagged with `late_of`, so the answers are kept without sharing anyone's task."""
        with self.db.write() as session:
            record = self._lock_with_experiment(session, session_id)
            late = session.scalars(select(Session).where(Session.late_of == record.id)).first()
            if late is not None:
                return late.id
            if record.status in FINISHED or (record.status == ACTIVE and record.held_offline):
                return record.id
            spec = self._session_spec(session, record)
            if record.status in RESUMABLE:
                others = session.scalar(select(func.count()).select_from(Session).where(
                    Session.task_id == record.task_id, Session.id != record.id,
                    self._holding(spec)))
                if not others:
                    record.status, record.held_offline = ACTIVE, True
                    record.last_activity_at = self.clock()
                    self._event(session, record, "resumed_by_sync", {})
                    return record.id
            late = Session(id=uuid.uuid4().hex, experiment_id=record.experiment_id,
                           participant_id=record.participant_id, task_id=record.task_id,
                           token_sha256=_hash_token(secrets.token_urlsafe(32)), client="lab",
                           status=ACTIVE, started_at=record.started_at,
                           last_activity_at=self.clock(), held_offline=True, late_of=record.id,
                           main_offset=0 if spec.practice.trials == 0 else None,
                           client_info=dict(record.client_info or {}))
            session.add(late)
            session.flush()
            self._event(session, record, "late_sync", {"late_session": late.id,
                                                       "status": record.status})
            return late.id

    def client_facts(self, session_id: str, started_at: datetime | None = None,
                      finished_at: datetime | None = None,
                      client_info: dict[str, Any] | None = None) -> None:
        """A lab run's facts (screen, monitor, sizes) and, for an offline run, its times by the
        lab machine's clock (from its journal)."""
        with self.db.write() as session:
            record = self._session(session, session_id, None, lock=True)
            if started_at is not None:
                record.started_at = started_at
            if finished_at is not None and record.status in FINISHED:
                record.finished_at = finished_at
            if client_info:
                record.client_info = {**(record.client_info or {}), **client_info}

    def set_experiment_status(self, experiment_key: str, status: Literal["open", "closed"]) -> None:
        """Open or close an experiment for new participants."""
        with self.db.write() as session:
            self._experiment(session, experiment_key, lock=True).status = status
