"""Lab task files: holding a session offline, releasing and adopting it."""
from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import (
    Session,
)
from experiments.errors import Refused
from experiments.sessions.base import SessionStore
from experiments.sessions.common import (
    ACTIVE,
    _hash_token,
)
from experiments.study.spec import ExperimentSpec
from experiments.vocabulary import FINISHED, RESUMABLE, SessionStatus

COPY_KEY = "conflicting_copy_of_journal"  # in a copy's client_info: which journal it holds


class Offline:
    """Lab task files: holding, releasing and adopting offline sessions."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def hold_offline(self, session_id: str) -> None:
        """Hold an in-progress session's task while it runs from an exported task file."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, None, lock=True)
            if record.status != ACTIVE:
                raise Refused(f"session {session_id} is {record.status}", record.status)
            record.held_offline = True
            self.store.event(session, record, "exported", {"next_index": record.n_responses})

    def release_offline(self, session_id: str) -> str:
        """Free the task of an exported session at once (the lab will not run it); returns the
        status it ends with. A later sync of it is still stored, as a late session."""
        with self.store.db.write() as session:
            record = self.store.find_session(session, session_id, None, lock=True)
            if record.status == ACTIVE:
                record.status = SessionStatus.TIMED_OUT
                record.finished_at = record.last_activity_at
            record.held_offline = False
            self.store.event(session, record, "released", {"offline": True,
                                                      "next_index": record.n_responses})
            return record.status

    def adopt_offline(self, session_id: str) -> str:
        """The session an exported task's answers are synced into: its own while it holds its
        task (or nobody took it); else a separate late session of the same participant and
        task, flagged with `late_of`, so the answers are kept without sharing anyone's task."""
        with self.store.db.write() as session:
            record = self.store.lock_with_experiment(session, session_id)
            late = next((s for s in session.scalars(select(Session).where(
                Session.late_of == record.id).order_by(Session.started_at, Session.id))
                if not (s.client_info or {}).get(COPY_KEY)), None)
            if late is not None:
                return late.id
            if record.status in FINISHED or (record.status == ACTIVE and record.held_offline):
                return record.id
            spec = self.store.session_spec(session, record)
            if record.status in RESUMABLE:
                others = session.scalar(select(func.count()).select_from(Session).where(
                    Session.task_id == record.task_id, Session.id != record.id,
                    self.store.holding(spec)))
                if not others:
                    record.status, record.held_offline = ACTIVE, True
                    record.last_activity_at = self.store.clock()
                    self.store.event(session, record, "resumed_by_sync", {})
                    return record.id
            late = self._second_session(session, record, spec)
            self.store.event(session, record, "late_sync", {"late_session": late.id,
                                                       "status": record.status})
            return late.id

    def adopt_copy(self, session_id: str, journal: str) -> str:
        """The session a second machine's journal of the same task file goes into when its
        answers differ from those stored: a separate session of the same participant and task
        (`late_of` the task's session), excluded with a reason until the researcher reviews
        it; the same one for the same `journal` (its first record's time)."""
        with self.store.db.write() as session:
            record = self.store.lock_with_experiment(session, session_id)
            for copy in session.scalars(select(Session).where(Session.late_of == record.id)):
                if (copy.client_info or {}).get(COPY_KEY) == journal:
                    return copy.id
            copy = self._second_session(
                session, record, self.store.session_spec(session, record), {COPY_KEY: journal},
                [f"conflicting copy of session {record.id}: another lab machine ran the same "
                 f"task file and its answers differ; review both"])
            self.store.event(session, record, "conflicting_copy", {"copy": copy.id,
                                                              "journal": journal})
            return copy.id

    def _second_session(self, session: OrmSession, record: Session, spec: ExperimentSpec,
                        info: dict[str, Any] | None = None, reasons: list[str] | None = None
                        ) -> Session:
        """A new lab session of `record`'s participant and task, `late_of` it, held offline."""
        extra = Session(id=uuid.uuid4().hex, experiment_id=record.experiment_id,
                        participant_id=record.participant_id, task_id=record.task_id,
                        token_sha256=_hash_token(secrets.token_urlsafe(32)), client="lab",
                        status=ACTIVE, started_at=record.started_at,
                        last_activity_at=self.store.clock(), held_offline=True, late_of=record.id,
                        main_offset=0 if spec.practice.trials == 0 else None,
                        client_info={**(record.client_info or {}), **(info or {})},
                        exclusion_reasons=reasons or [])
        session.add(extra)
        session.flush()
        return extra
