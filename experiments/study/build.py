"""`interpsy experiment build`: validate a spec and its stimulus sets, plan tasks, store them."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete, func, select

from experiments.db import Database
from experiments.db.models import (
    Experiment,
    Session,
    StimulusImage,
    StimulusSetRecord,
    Task,
    Trial,
    Unit,
    new_public_id,
)
from experiments.errors import InterpsyError
from experiments.stimulus_set import StimulusSet, load_stimulus_set
from experiments.study.design import Design, plan
from experiments.study.selection import read_machine_scores
from experiments.study.spec import LoadedSpec, load_spec
from experiments.tasks import get_task


def load_sets(loaded: LoadedSpec, verify_hashes: bool = False) -> list[StimulusSet]:
    """Load every stimulus set a spec names, each validated."""
    sets = [load_stimulus_set(path, verify_images=True, verify_hashes=verify_hashes)
            for path in loaded.set_paths]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise InterpsyError(f"{loaded.path}: stimulus_sets: two sets share the name "
                            f"{next(n for n in names if names.count(n) > 1)!r}")
    for stimulus_set in sets:
        _check_roles(loaded, stimulus_set, "stimulus set")
    return sets


def _check_roles(loaded: LoadedSpec, stimulus_set: StimulusSet, what: str) -> None:
    """A clear error when the set lacks an image role the spec's task type needs."""
    task_type = get_task(loaded.spec.task.type)
    missing = [role for role in task_type.roles if not (stimulus_set.images.role == role).any()]
    if missing:
        raise InterpsyError(f"{loaded.path}: task type {task_type.name} needs images of the roles "
                            f"{', '.join(missing)}; {what} {stimulus_set.path} has none")


def load_calibration_set(loaded: LoadedSpec, verify_hashes: bool = False) -> StimulusSet | None:
    """The `[calibration]` stimulus set, validated like the others (None without one)."""
    if loaded.calibration_path is None:
        return None
    found = load_stimulus_set(loaded.calibration_path, verify_images=True,
                              verify_hashes=verify_hashes)
    _check_roles(loaded, found, "the calibration set")
    return found


def build_experiment(spec_path: str | Path, db: Database, replace: bool = False,
                     verify_hashes: bool = False) -> Experiment:
    """Build an experiment from a spec file into `db`; refuse to overwrite one that has sessions."""
    loaded = load_spec(spec_path)
    sets = load_sets(loaded, verify_hashes)
    calibration = load_calibration_set(loaded, verify_hashes)
    scores = (None if loaded.scores_path is None
              else read_machine_scores(loaded.scores_path, loaded.spec.select_units))
    design = plan(loaded.spec, sets, scores, calibration)
    sets = sets + ([calibration] if calibration is not None else [])
    db.upgrade()
    with db.write() as session:
        existing = session.scalars(select(Experiment).where(
            Experiment.name == loaded.spec.name, Experiment.version == loaded.spec.version)).first()
        if existing is not None:
            if not replace:
                raise InterpsyError(f"experiment {existing.key} already exists; bump `version` in "
                                    f"{loaded.path} or pass --replace")
            n_sessions = session.scalar(select(func.count()).select_from(Session).where(
                Session.experiment_id == existing.id))
            if n_sessions:
                raise InterpsyError(f"experiment {existing.key} has {n_sessions} sessions; it "
                                    f"cannot be replaced (bump `version` instead)")
            session.execute(delete(Experiment).where(Experiment.id == existing.id))
            session.flush()
        experiment = _store(session, loaded, sets, design)
    if not db.is_sqlite:
        # Fresh planner statistics for the rows just added (autovacuum analyses only later).
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE experiments, tasks, trials, units, images, "
                                       "sessions, participants")
    return experiment


def _store(session, loaded: LoadedSpec, sets: list[StimulusSet], design: Design) -> Experiment:
    spec = loaded.spec
    experiment = Experiment(name=spec.name, version=spec.version, seed=spec.seed,
                            spec_toml=loaded.text, spec_json=json.loads(spec.model_dump_json()),
                            spec_sha256=loaded.sha256)
    session.add(experiment)
    session.flush()
    set_ids = []
    for stimulus_set in sets:
        record = StimulusSetRecord(experiment_id=experiment.id, name=stimulus_set.name,
                                   path=str(stimulus_set.path), manifest=stimulus_set.manifest)
        session.add(record)
        session.flush()
        set_ids.append(record.id)
    for index, stimulus_set in enumerate(sets):
        session.execute(Unit.__table__.insert(), [
            {"experiment_id": experiment.id, "set_id": set_ids[index], "unit_id": row.unit_id,
             "model": row.model, "layer": row.layer, "channel": int(row.channel),
             "role": design.unit_roles.get(row.unit_id, "left_out"),
             "layer_position": _float(row.layer_position),
             "fv_activation": _float(row.fv_activation),
             "top_natural_activation": _float(row.top_natural_activation),
             "target_responses": design.unit_targets.get(row.unit_id, 0),
             "selection_group": design.selection.get(row.unit_id, (None, None))[0],
             "machine_score": design.selection.get(row.unit_id, (None, None))[1]}
            for row in stimulus_set.units.itertuples(index=False)])
        session.execute(StimulusImage.__table__.insert(), [
            {"experiment_id": experiment.id, "set_id": set_ids[index], "image_id": row.image_id,
             "unit_id": row.unit_id, "kind": row.kind, "role": row.role, "batch": int(row.batch),
             "rank": int(row.rank), "path": row.path, "sha256": row.sha256,
             "public_id": new_public_id()}
            for row in stimulus_set.images.itertuples(index=False)])
    for planned in design.tasks:
        task = Task(experiment_id=experiment.id, task_key=planned.task_key,
                    condition=planned.condition, difficulty=planned.difficulty,
                    query_distribution=planned.query_distribution, unit_group=planned.unit_group, assign_order=planned.assign_order)
        session.add(task)
        session.flush()
        session.execute(Trial.__table__.insert(), [
            {"task_id": task.id, "ordinal": ordinal, "phase": t.phase, "position": t.position,
             "is_catch": t.is_catch, "is_calibration": t.is_calibration,
             "unit_id": t.unit.unit_id, "model": t.unit.model,
             "layer": t.unit.layer, "channel": t.unit.channel, "condition": t.condition,
             "difficulty": t.difficulty, "query_distribution": t.query_distribution,
             "batch": t.batch, "stimulus": t.stimulus,
             "answer_key": t.answer_key}
            for ordinal, t in enumerate(planned.practice + planned.main)])
    return experiment


def _float(value: object) -> float | None:
    try:
        return None if value is None or value != value else float(value)
    except (TypeError, ValueError):
        return None
