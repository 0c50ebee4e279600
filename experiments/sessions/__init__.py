"""The session service: assignment, idempotent responses, resume and completion (no Flask).

The web server and the lab client both call this; every write is one transaction. One module per
job: entry (assignment, resume), recording (responses, events, completion), researcher (expiry,
marks, reservations), offline (lab task files); common holds what clients send and get.
"""
from experiments.db.lookup import experiment_by_key
from experiments.db.models import utcnow
from experiments.sessions.common import (
    ResponseIn,
    SessionState,
    TaskTrials,
    TrialView,
    spec_of,
)
from experiments.sessions.entry import EntryMixin
from experiments.sessions.offline import OfflineMixin
from experiments.sessions.recording import RecordingMixin
from experiments.sessions.researcher import ResearcherMixin


class SessionService(EntryMixin, RecordingMixin, ResearcherMixin, OfflineMixin):
    """Assigns tasks, stores responses idempotently, resumes and completes sessions."""


__all__ = ["ResponseIn", "SessionService", "SessionState", "TaskTrials", "TrialView",
           "experiment_by_key", "spec_of", "utcnow"]
