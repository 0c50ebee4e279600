"""Read-only lookups the pages need: experiments by key, a session's participant facts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from experiments.db import Database
from experiments.db.models import Participant, Session
from experiments.errors import NotFound
from experiments.sessions import experiment_by_key, spec_of
from experiments.study.spec import ExperimentSpec


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment as the pages need it."""

    id: int
    key: str
    status: str
    spec: ExperimentSpec


def find_experiment(db: Database, key: str) -> ExperimentInfo:
    """`name` (newest version) or `name@version`; NotFound otherwise."""
    with db.read() as session:
        experiment = experiment_by_key(session, key)
        return ExperimentInfo(experiment.id, experiment.key, experiment.status,
                              spec_of(experiment))


def session_facts(db: Database, session_id: str) -> tuple[str, dict[str, Any], int]:
    """(source, platform_info, experiment_id) of a session's participant."""
    with db.read() as session:
        row = session.execute(
            select(Participant.source, Participant.platform_info, Session.experiment_id)
            .join(Session, Session.participant_id == Participant.id)
            .where(Session.id == session_id)).first()
    if row is None:
        raise NotFound("unknown session or wrong token")
    return row[0], dict(row[1] or {}), row[2]
