"""The researcher's side: expiring sessions, marking them, releasing reservations."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select

from experiments.db.models import (
    Event,
    Session,
)
from experiments.errors import Conflict
from experiments.sessions.base import ServiceBase
from experiments.sessions.common import (
    ACTIVE,
)
from experiments.vocabulary import MARKED, SessionStatus


class ResearcherMixin(ServiceBase):
    """What the researcher does: expiry, marks and their undo, reservations, open/close."""

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


    def set_experiment_status(self, experiment_key: str, status: Literal["open", "closed"]) -> None:
        """Open or close an experiment for new participants."""
        with self.db.write() as session:
            self._experiment(session, experiment_key, lock=True).status = status
