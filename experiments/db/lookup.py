"""Finding experiments by key. `name@version` names one experiment; a bare `name` names every
version where a dataset is gathered (`experiments_named`: the export, the observers' check) and
the newest version where people enter (`experiment_by_key`: links, sessions, the lab)."""
from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import Experiment
from experiments.errors import NotFound


def _by_name(key: str) -> tuple[Select, bool]:
    """The query for `key`'s name (and version, when given) and whether a version was given."""
    name, _, version = key.partition("@")
    query = select(Experiment).where(Experiment.name == name)
    return (query.where(Experiment.version == version), True) if version else (query, False)


def experiments_named(session: OrmSession, key: str | None) -> list[Experiment]:
    """Every version of a bare name (by version), the one `name@version`, or (None) every
    experiment; NotFound when a key names none."""
    if not key:
        query = select(Experiment)
    else:
        query, _ = _by_name(key)
    found = list(session.scalars(query.order_by(Experiment.name, Experiment.version)).all())
    if key and not found:
        raise NotFound(f"no experiment {key!r}")
    return found


def experiment_by_key(session: OrmSession, key: str, lock: bool = False) -> Experiment:
    """`name@version`, or `name` for its newest version; NotFound otherwise."""
    query, versioned = _by_name(key)
    if not versioned:
        query = query.order_by(Experiment.created_at.desc(), Experiment.id.desc()).limit(1)
    if lock:
        query = query.with_for_update()
    experiment = session.scalars(query).first()
    if experiment is None:
        raise NotFound(f"no experiment {key!r}")
    return experiment
