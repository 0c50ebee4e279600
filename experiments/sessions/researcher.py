"""The researcher's side: expiring sessions, marking them, releasing reservations, paying
sessions that timed out after answering."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from experiments.db.models import (
    Event,
    Participant,
    Session,
)
from experiments.errors import Conflict
from experiments.sessions.base import SessionStore
from experiments.sessions.common import ACTIVE, spec_of
from experiments.vocabulary import MARKED, SessionStatus

PARTIAL_PAID = "partial_paid"  # the event that marks an owed session paid


@dataclass(frozen=True)
class Owed:
    """A session that timed out after answering and lost its task: what it is owed."""

    session_id: str
    source: str
    platform_id: str
    platform_info: dict[str, Any]
    answered: int
    trials: int
    amount: float
    paid: bool


class Researcher:
    """The researcher's actions: expiry, marks, reservations, payments owed."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def expire_sessions(self, experiment_key: str) -> int:
        """Mark sessions idle past the timeout as timed out, freeing their tasks."""
        with self.store.db.write() as session:
            experiment = self.store.experiment(session, experiment_key, lock=True)
            spec = spec_of(experiment)
            stale = session.scalars(select(Session).where(
                Session.experiment_id == experiment.id, Session.status == ACTIVE,
                Session.held_offline.is_(False),
                Session.last_activity_at < self.store.cutoff(spec))).all()
            for record in stale:
                record.status = SessionStatus.TIMED_OUT
                self.store.event(session, record, "timed_out")
            return len(stale)

    def set_status(self, session_id: str, status: Literal["returned", "excluded"],
                   reason: str = "") -> None:
        """Researcher marks a session returned (on the platform: not an exclusion) or excluded
        (the reason is exported); its task is freed. The session's end stays the participant's
        last activity, not the moment of the click; `undo_status` takes the mark back."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, None, lock=True)
            if record.status in MARKED:
                raise Conflict(f"this session is marked {record.status} already; undo that first")
            previous = {"status": record.status, "finished_at": record.finished_at.isoformat()
                        if record.finished_at else None,
                        "exclusion_reasons": list(record.exclusion_reasons or [])}
            record.status = status
            record.finished_at = record.finished_at or record.last_activity_at
            if status == SessionStatus.EXCLUDED and reason:
                record.exclusion_reasons = [*record.exclusion_reasons, reason]
            self.store.event(session, record, status, {"reason": reason, "previous": previous})

    def undo_status(self, session_id: str) -> str:
        """Take back the researcher's last returned/excluded mark; returns the status restored."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, None, lock=True)
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
                record.last_activity_at = self.store.clock()  # its task is held again from now
            self.store.event(session, record, "mark_undone", {"restored": record.status})
            return record.status

    def release_reservations(self, experiment_key: str) -> int:
        """Free at once the tasks of in-progress sessions with no answer yet (a flood of forged
        sign-ups); such a session that comes back gets a free task or a polite refusal. Exported
        lab tasks stay held (`release_offline` frees one)."""
        with self.store.db.write() as session:
            experiment = self.store.experiment(session, experiment_key, lock=True)
            held = session.scalars(select(Session).where(
                Session.experiment_id == experiment.id, Session.status == ACTIVE,
                Session.held_offline.is_(False), Session.n_responses == 0)).all()
            for record in held:
                record.status = SessionStatus.TIMED_OUT
                self.store.event(session, record, "released")
            return len(held)


    def free_unanswered(self, session_id: str, reason: str) -> bool:
        """Free the task of an in-progress session with no answer yet (a lab start that failed
        its checks); it gets a task again when it comes back. True when it was freed."""
        with self.store.db.write() as session:
            record = self.store.lock_with_experiment(session, session_id)
            if record.status != ACTIVE or record.n_responses:
                return False
            record.status = SessionStatus.TIMED_OUT
            self.store.event(session, record, "start_failed", {"reason": reason[:500]})
            return True

    def set_experiment_status(self, experiment_key: str, status: Literal["open", "closed"]) -> None:
        """Open or close an experiment for new participants."""
        with self.store.db.write() as session:
            self.store.experiment(session, experiment_key, lock=True).status = status

    def owed(self, experiment_key: str) -> list[Owed]:
        """Every session that timed out after answering and whose task went to someone else
        (it got the timed-out code), oldest first, with its share of the reward."""
        with self.store.db.read() as session:
            experiment = self.store.experiment(session, experiment_key)
            spec = spec_of(experiment)
            found = session.execute(
                select(Session, Participant.source, Participant.platform_id,
                       Participant.platform_info)
                .join(Participant, Participant.id == Session.participant_id)
                .where(Session.experiment_id == experiment.id,
                       Session.status == SessionStatus.TIMED_OUT,
                       Session.completion_code == spec.recruitment.completion_codes.timed_out)
                .order_by(Session.started_at, Session.id)).all()
            paid = set(session.scalars(select(Event.session_id).where(
                Event.experiment_id == experiment.id, Event.kind == PARTIAL_PAID)))
            result = []
            for record, source, platform_id, info in found:
                n_trials = self.store.trials_of(session, record.task_id).n_trials
                result.append(Owed(record.id, source, platform_id, dict(info or {}),
                                   record.n_responses, n_trials,
                                   spec.recruitment.owed(record.n_responses, n_trials),
                                   record.id in paid))
            return result

    def mark_partial_paid(self, experiment_key: str, session_ids: list[str]) -> int:
        """Record that the researcher paid these owed sessions (others, and those already
        marked, are left alone); returns how many were marked."""
        due = {o.session_id: o for o in self.owed(experiment_key) if not o.paid}
        with self.store.db.write() as session:
            self.store.experiment(session, experiment_key, lock=True)
            paid = set(session.scalars(select(Event.session_id).where(
                Event.session_id.in_(list(due)), Event.kind == PARTIAL_PAID)))
            marked = 0
            for session_id in dict.fromkeys(session_ids):
                if session_id in due and session_id not in paid:
                    record = session.get(Session, session_id)
                    self.store.event(session, record, PARTIAL_PAID,
                                     {"amount": due[session_id].amount})
                    marked += 1
            return marked
