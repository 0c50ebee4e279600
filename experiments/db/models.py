"""SQLAlchemy 2 models: experiments, units, images, tasks, trials, participants, sessions, responses, events."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import expression
from sqlalchemy.types import TypeDecorator

from experiments.vocabulary import SessionStatus


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_experiment_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    version: Mapped[str] = mapped_column(String(40))
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    spec_toml: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Monotonic counter, bumped under the experiment lock, for pseudonymous participant numbers.
    participant_counter: Mapped[int] = mapped_column(Integer, default=0)

    tasks: Mapped[list[Task]] = relationship(back_populates="experiment")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


class StimulusSetRecord(Base):
    __tablename__ = "stimulus_sets"
    __table_args__ = (UniqueConstraint("experiment_id", "name", name="uq_set_experiment_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("experiment_id", "unit_id", name="uq_unit_experiment_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id", ondelete="CASCADE"))
    unit_id: Mapped[str] = mapped_column(String(300))
    model: Mapped[str] = mapped_column(String(100))
    layer: Mapped[str] = mapped_column(String(200))
    channel: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # main | practice | catch
    layer_position: Mapped[float | None] = mapped_column(Float, nullable=True)
    fv_activation: Mapped[float | None] = mapped_column(Float, nullable=True)
    top_natural_activation: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_responses: Mapped[int] = mapped_column(Integer, default=0)
    # [select_units]: easiest | hardest | random, and the machine score it was chosen by
    selection_group: Mapped[str | None] = mapped_column(String(16), nullable=True)
    machine_score: Mapped[float | None] = mapped_column(Float, nullable=True)


def new_public_id() -> str:
    """An opaque image id for participant-facing URLs: random, so it tells nothing of the role."""
    return secrets.token_hex(16)


class StimulusImage(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("experiment_id", "image_id", name="uq_image_experiment_image"),
                      Index("uq_image_experiment_public", "experiment_id", "public_id", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id", ondelete="CASCADE"))
    image_id: Mapped[str] = mapped_column(String(300))
    unit_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    batch: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    # What participants' pages and URLs use instead of image_id (which names the role).
    public_id: Mapped[str] = mapped_column(String(40), default=new_public_id)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("experiment_id", "task_key", name="uq_task_experiment_key"),
                      Index("ix_tasks_experiment_order", "experiment_id", "assign_order"))

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    task_key: Mapped[str] = mapped_column(String(40))  # T0001... stable, exported as task_id
    condition: Mapped[str] = mapped_column(String(16))
    difficulty: Mapped[str] = mapped_column(String(8))
    query_distribution: Mapped[str] = mapped_column(String(40), default="in",
                                                    server_default="in")
    unit_group: Mapped[str] = mapped_column(String(200))
    assign_order: Mapped[int] = mapped_column(Integer)

    experiment: Mapped[Experiment] = relationship(back_populates="tasks")
    trials: Mapped[list[Trial]] = relationship(back_populates="task", order_by="Trial.ordinal")


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("task_id", "phase", "position", name="uq_trial_task_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)  # practice first, then main; for ordering
    phase: Mapped[str] = mapped_column(String(8))  # practice | main
    position: Mapped[int] = mapped_column(Integer)
    is_catch: Mapped[bool] = mapped_column(Boolean, default=False)
    # a trial of the calibration model's units mixed into the main block (`[calibration]`)
    is_calibration: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=expression.false())
    unit_id: Mapped[str] = mapped_column(String(300))
    model: Mapped[str] = mapped_column(String(100))
    layer: Mapped[str] = mapped_column(String(200))
    channel: Mapped[int] = mapped_column(Integer)
    condition: Mapped[str] = mapped_column(String(16))
    difficulty: Mapped[str] = mapped_column(String(8))
    query_distribution: Mapped[str] = mapped_column(String(40), default="in",
                                                    server_default="in")
    batch: Mapped[int] = mapped_column(Integer)
    # The task type's stimulus description (image ids by role) and the answer it scores against.
    stimulus: Mapped[dict[str, Any]] = mapped_column(JSON)
    answer_key: Mapped[str] = mapped_column(String(40))

    task: Mapped[Task] = relationship(back_populates="trials")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("experiment_id", "platform_id", name="uq_participant_platform"),
                      UniqueConstraint("experiment_id", "number", name="uq_participant_number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # exported as P0001...
    platform_id: Mapped[str] = mapped_column(String(200))  # raw; never exported
    source: Mapped[str] = mapped_column(String(16))
    platform_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sessions: Mapped[list[Session]] = relationship(back_populates="participant",
                                                     order_by="Session.started_at")


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_task_status", "task_id", "status"),
                      Index("ix_sessions_experiment_network", "experiment_id", "network_key"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                               index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    token_sha256: Mapped[str] = mapped_column(String(64))
    # Tokens handed out earlier (another tab, a second consent) stay valid: newest last, at most 8.
    older_token_hashes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # A keyed hash of the client's IP address (never the address): caps sessions per network.
    network_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client: Mapped[str] = mapped_column(String(8))  # web | lab
    # in_progress | completed | failed_practice | timed_out | returned | restarted | excluded
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.ACTIVE.value)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    instruction_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # bounded by wall time
    instruction_s_claimed: Mapped[float | None] = mapped_column(Float, nullable=True)  # as sent
    # Client-reported times the server could not believe (kept, flagged, exported).
    time_flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    practice_attempts: Mapped[int] = mapped_column(Integer, default=0)
    main_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)  # trial_index of main 0
    n_responses: Mapped[int] = mapped_column(Integer, default=0)
    completion_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    client_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    feedback: Mapped[str | None] = mapped_column(Text, nullable=True)
    exclusion_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Exported to a lab task file: holds its task until synced or released, whatever the timeout.
    held_offline: Mapped[bool] = mapped_column(Boolean, default=False)
    # A late sync's answers: the session whose task went to someone else before they arrived.
    late_of: Mapped[str | None] = mapped_column(String(32), nullable=True)

    participant: Mapped[Participant] = relationship(back_populates="sessions")
    task: Mapped[Task] = relationship()


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("session_id", "trial_index", name="uq_response_session_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    trial_index: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)  # as the task type's Answer validated it
    correct: Mapped[bool] = mapped_column(Boolean)
    rt_ms: Mapped[float] = mapped_column(Float)
    stim_onset_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    response_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    client_extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    server_received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the client stored the answer locally (an offline lab run), by the client's clock.
    client_recorded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # below_button_lock | longer_than_session: an rt the page cannot have measured
    rt_flag: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Event(Base):
    __tablename__ = "events"
    # A retried client event carries the same key and is stored once (NULLs never collide).
    __table_args__ = (Index("uq_event_session_client_key", "session_id", "client_key",
                            unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"),
                                                   nullable=True, index=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                                      nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminSession(Base):
    """A researcher's login: the cookie holds a random id, this table its hash; logout revokes."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    network_key: Mapped[str] = mapped_column(String(64), default="")


class LoginFailures(Base):
    """Failed admin logins per network (keyed IP hash), for lockout with backoff."""

    __tablename__ = "admin_login_failures"

    network_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
