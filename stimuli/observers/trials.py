"""The trials a machine observer answers: exactly those of a built experiment (every task's
trial list, as people got them), or N trials per unit and condition made from a stimulus set by
the task type itself, as a study would make them (torch-free)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from experiments.db import Database
from experiments.db.images import ImageFile, image_files
from experiments.db.lookup import experiments_named
from experiments.db.models import Task, Trial
from experiments.stimulus_set import load_stimulus_set
from experiments.study.design import check_query_distributions, plan_trial
from experiments.study.export import task_of_experiment, unit_rows
from experiments.study.spec import ExperimentSpec
from experiments.study.trial import PlannedTrial
from experiments.tasks import get_task
from experiments.tasks.base import TaskType
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.vocabulary import IN_DISTRIBUTION
from stimuli.errors import StimuliError


@dataclass(frozen=True)
class ObservedTrial:
    """One trial to answer: its trial list and place in it, and the trial as people see it."""

    task_id: str
    trial_index: int
    trial: PlannedTrial


@dataclass
class TrialSource:
    """The trials, the task type, the images they show and the record of where they came from."""

    task: TaskType
    experiment: str
    settings: dict[str, Any]  # one entry of experiment.json: experiment key and spec
    trials: list[ObservedTrial]
    images: dict[str, ImageFile]
    units: pd.DataFrame


def from_experiment(database_url: str, experiment: str) -> TrialSource:
    """Every trial of every task of a built experiment (practice, main and catch)."""
    db = Database(database_url)
    try:
        with db.read() as session:
            found = experiments_named(session, experiment)
            if len(found) != 1:
                raise StimuliError(f"{experiment!r} names {len(found)} experiments; give "
                                   f"name@version")
            record = found[0]
            task = task_of_experiment(record)
            images = {image.image_id: image for image in image_files(session, record.id)}
            rows = session.execute(
                select(Trial, Task.task_key).join(Task, Task.id == Trial.task_id)
                .where(Task.experiment_id == record.id).order_by(Task.task_key, Trial.ordinal))
            trials = [ObservedTrial(task_key, trial.ordinal, PlannedTrial.of(trial))
                      for trial, task_key in rows]
            units = pd.DataFrame(unit_rows(session, record))
            settings = {"experiment": record.key, "seed": record.seed,
                        "spec_sha256": record.spec_sha256, "spec": record.spec_json}
    finally:
        db.dispose()
    return TrialSource(task, settings["experiment"], settings, trials, images, units)


def from_set(set_dir: str | Path, task_name: str = "imi_2afc",
             conditions: tuple[str, ...] = ("natural",), difficulty: str = "easy",
             trials_per_unit: int = 20, seed: int = 0, task_params: dict | None = None,
             distributions: tuple[str, ...] = (IN_DISTRIBUTION,)) -> TrialSource:
    """`trials_per_unit` main trials per unit, condition and query distribution, made by the
    task type from the set's images (the unit's batches cycled from a seeded start; answer
    keys balanced)."""
    stimulus_set = load_stimulus_set(set_dir, verify_images=True, verify_hashes=False)
    task = get_task(task_name)
    frame = stimulus_set.images
    natural_max = frame[(frame.kind == "natural") & (frame.role == "reference_max")]
    per_side = int(natural_max.groupby(["unit_id", "batch"]).size().min())
    spec = ExperimentSpec.model_validate({
        "name": "observe", "seed": seed, "stimulus_sets": [str(stimulus_set.path)],
        "conditions": list(conditions), "difficulty": [difficulty],
        "query_distribution": list(distributions),
        "task": {"type": task_name,
                 # IMI's 9 references per side, or all a smaller set has
                 **({"references_per_side": min(9, per_side)}
                    if "references_per_side" in task.Params.model_fields else {}),
                 **(task_params or {})}})
    rng = np.random.default_rng(seed)
    check_query_distributions(spec, [stimulus_set])
    context = TrialContext(spec.task.params, [stimulus_set], rng)
    trials = []
    for condition, distribution in itertools.product(conditions, distributions):
        task_id = f"M-{condition}-{difficulty}" + (
            "" if distribution == IN_DISTRIBUTION else f"-{distribution}")
        index = 0
        for row in stimulus_set.units.itertuples(index=False):
            unit = UnitInfo(row.unit_id, row.model, row.layer, int(row.channel), 0)
            for key in task.balanced_keys(trials_per_unit, rng):
                planned = plan_trial(context, task, unit, condition, difficulty, "main", index,
                                     key, distribution=distribution)
                trials.append(ObservedTrial(task_id, index, planned))
                index += 1
    frame = stimulus_set.images
    images = {row.image_id: ImageFile(row.image_id, stimulus_set.path / row.path,
                                      str(row.sha256), stimulus_set.path)
              for row in frame.itertuples(index=False)}
    name = f"{stimulus_set.name}@observed"
    settings = {"experiment": name, "seed": seed, "spec": spec.model_dump(mode="json"),
                "stimulus_set": str(stimulus_set.path)}
    units = stimulus_set.units.assign(experiment=name, role="main",
                                      stimulus_set=stimulus_set.name,
                                      target_responses=trials_per_unit * len(conditions)
                                      * len(distributions))
    return TrialSource(task, name, settings, trials, images, units)
