"""The session service: assignment, idempotent responses, resume and completion (no Flask).

The web server and the lab client both call this; every write is one transaction. One part per
job, each handed the shared SessionStore (base: the database, the clock, the lookups): Entry
(assignment, resume, the state), Recording (responses, events, completion; it asks Entry to
reclaim an idle session), Researcher (expiry, marks, reservations, payments owed) and Offline
(lab task files); common holds what clients send and get.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from experiments.db import Database
from experiments.db.lookup import experiment_by_key
from experiments.db.models import utcnow
from experiments.sessions.base import SessionStore
from experiments.sessions.common import (
    PlannedTrial,
    ResponseIn,
    SessionState,
    TaskTrials,
    spec_of,
)
from experiments.sessions.entry import Entry
from experiments.sessions.offline import Offline
from experiments.sessions.recording import Recording
from experiments.sessions.researcher import Researcher


def _by(part: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """SessionService's method that hands the call to its part `part`."""
    @wraps(method)
    def call(self: SessionService, *args: Any, **kwargs: Any) -> Any:
        return getattr(getattr(self, part), method.__name__)(*args, **kwargs)
    return call


class SessionService:
    """Assigns tasks, stores responses idempotently, resumes and completes sessions: each
    public method is one of its parts' (`entry`, `recording`, `researcher`, `offline`)."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow):
        self.store = SessionStore(db, clock)
        self.entry = Entry(self.store)
        self.recording = Recording(self.store, self.entry)
        self.researcher = Researcher(self.store)
        self.offline = Offline(self.store)

    db = property(lambda self: self.store.db)

    start = _by("entry", Entry.start)
    entry_status = _by("entry", Entry.entry_status)
    state = _by("entry", Entry.state)
    record_response = _by("recording", Recording.record_response)
    first_difference = _by("recording", Recording.first_difference)
    record_event = _by("recording", Recording.record_event)
    record_instructions = _by("recording", Recording.record_instructions)
    complete = _by("recording", Recording.complete)
    client_facts = _by("recording", Recording.client_facts)
    expire_sessions = _by("researcher", Researcher.expire_sessions)
    set_status = _by("researcher", Researcher.set_status)
    undo_status = _by("researcher", Researcher.undo_status)
    release_reservations = _by("researcher", Researcher.release_reservations)
    free_unanswered = _by("researcher", Researcher.free_unanswered)
    set_experiment_status = _by("researcher", Researcher.set_experiment_status)
    owed = _by("researcher", Researcher.owed)
    mark_partial_paid = _by("researcher", Researcher.mark_partial_paid)
    hold_offline = _by("offline", Offline.hold_offline)
    release_offline = _by("offline", Offline.release_offline)
    adopt_offline = _by("offline", Offline.adopt_offline)
    adopt_copy = _by("offline", Offline.adopt_copy)


__all__ = [
    "PlannedTrial",
    "ResponseIn",
    "SessionService",
    "SessionState",
    "TaskTrials",
    "experiment_by_key",
    "spec_of",
    "utcnow",
]
