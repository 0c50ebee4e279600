"""Task design: turn a spec and its stimulus sets into tasks and trials (pure, no storage)."""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from experiments.errors import SpecError
from experiments.stimulus_set import StimulusSet
from experiments.study.selection import select_units
from experiments.study.spec import ExperimentSpec
from experiments.study.trial import PlannedTrial
from experiments.tasks import TaskType, get_task
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.vocabulary import IN_DISTRIBUTION

Unit = TypeVar("Unit", bound=Hashable)


@dataclass
class PlannedTask:
    """One participant session's trial list: practice block, then main block (catch trials inside)."""

    task_key: str
    condition: str
    difficulty: str
    unit_group: str
    assign_order: int
    practice: list[PlannedTrial] = field(default_factory=list)
    main: list[PlannedTrial] = field(default_factory=list)
    query_distribution: str = IN_DISTRIBUTION


@dataclass
class Design:
    """All tasks of an experiment plus the role and response target of every unit."""

    tasks: list[PlannedTask]
    unit_roles: dict[str, str]
    unit_targets: dict[str, int]
    units: dict[str, UnitInfo]
    left_out: list[str] = field(default_factory=list)  # fv does not beat natural (IMI's rule)
    # [select_units]: unit_id -> (selection group, machine score) of the chosen main units
    selection: dict[str, tuple[str, float]] = field(default_factory=dict)


def _collect_units(sets: list[StimulusSet]) -> dict[str, UnitInfo]:
    units: dict[str, UnitInfo] = {}
    for index, stimulus_set in enumerate(sets):
        for row in stimulus_set.units.itertuples(index=False):
            if row.unit_id in units:
                raise SpecError(f"unit {row.unit_id} appears in two stimulus sets "
                                f"({sets[units[row.unit_id].set_index].path} and {stimulus_set.path})")
            units[row.unit_id] = UnitInfo(row.unit_id, row.model, row.layer, int(row.channel), index)
    return units


def _reserve(listed: list[str], count: int, pool: list[str], what: str, key: str,
             rng: np.random.Generator) -> list[str]:
    if listed:
        unknown = [u for u in listed if u not in pool]
        if unknown:
            raise SpecError(f"{key}: unit {unknown[0]!r} is not in the stimulus sets "
                            f"(or is already used for another role)")
        return list(listed)
    if count > len(pool):
        raise SpecError(f"{key}: {count} {what} units needed but only {len(pool)} available")
    return sorted(rng.choice(pool, size=count, replace=False).tolist()) if count else []


def plan_trial(context: TrialContext, task: TaskType, unit: UnitInfo, condition: str,
               difficulty: str, phase: str, position: int, key: str, is_catch: bool = False,
               distribution: str = IN_DISTRIBUTION) -> PlannedTrial:
    """One planned trial, its stimulus made by `task` and checked against its model."""
    shifted = {"distribution": distribution} if task.shifted_queries else {}
    made = task.make_trial(context, unit, condition, difficulty, phase, key, is_catch, **shifted)
    stimulus = task.Stimulus.model_validate(made.stimulus).model_dump()
    return PlannedTrial(phase, position, is_catch, unit, condition, difficulty, made.batch,
                        stimulus, made.answer_key, distribution)


def _least_used(units: Sequence[Unit], k: int, counts: dict[Unit, int],
                rng: np.random.Generator) -> list[Unit]:
    """k of `units`, least used first (ties in seeded random order); their counts go up."""
    keys = rng.random(len(units))
    order = sorted(range(len(units)), key=lambda i: (counts[units[i]], keys[i]))
    chosen = [units[i] for i in order[:k]]
    for unit in chosen:
        counts[unit] += 1
    return chosen


def fill_tasks(units: Sequence[Unit], per_task: int, responses: int, rng: np.random.Generator
               ) -> list[list[Unit]]:
    """Least-used-first selection: unit counts end within 1 of `responses`, none twice per task."""
    counts = dict.fromkeys(units, 0)
    return [_least_used(units, per_task, counts, rng)
            for _ in range(math.ceil(len(units) * responses / per_task))]


def _calibration_pool(spec: ExperimentSpec, stimulus_set: StimulusSet) -> list[str]:
    """The calibration units a task may draw: the spec's list, else the set's detectors and
    mixtures (the units a careful participant answers by their construction)."""
    from experiments.study.calibration_units import MODEL, calibration_units

    models = sorted(set(stimulus_set.units.model))
    if models != [MODEL]:
        raise SpecError(f"calibration.stimulus_set: {stimulus_set.path} holds units of "
                        f"{', '.join(models)}, not the calibration model {MODEL} (build one with "
                        f"`interpsy stimuli build {MODEL} IMAGES OUT`)")
    held = list(stimulus_set.units.unit_id)
    listed = spec.calibration.units
    unknown = [u for u in listed if u not in held]
    if unknown:
        raise SpecError(f"calibration.units: {unknown[0]!r} is not a unit of the calibration set "
                        f"{stimulus_set.path}")
    kinds = {u.unit_id: u.kind for u in calibration_units()}
    pool = sorted(listed or [u for u in held if kinds.get(u) in ("detector", "mixture")])
    if spec.calibration.trials > len(pool):
        raise SpecError(f"calibration.trials is {spec.calibration.trials} but {len(pool)} "
                        f"calibration units can be drawn (each at most once per task)")
    return pool


@dataclass
class _Roles:
    """Which units a plan reserves (practice, catch), which it draws main trials from (per
    group) and each unit's role."""

    practice: list[str]
    catch: list[str]
    groups: dict[str, list[str]]
    roles: dict[str, str]
    selection: dict[str, tuple[str, float]] = field(default_factory=dict)


def plan(spec: ExperimentSpec, sets: list[StimulusSet],
         machine_scores: pd.Series | None = None,
         calibration: StimulusSet | None = None) -> Design:
    """Plan every task and trial of an experiment; the same spec and sets give the same plan.
    With `[select_units]`, `machine_scores` (unit_id -> score) choose each group's main units;
    with `[calibration]`, `calibration` is the calibration set its trials come from."""
    rng = np.random.default_rng(spec.seed)
    if (spec.calibration is None) != (calibration is None):
        raise SpecError("calibration: the spec's [calibration] and the calibration set passed "
                        "to the plan do not go together")
    with_calibration = [*sets, *([calibration] if calibration is not None else [])]
    units = _collect_units(with_calibration)
    calibration_pool = [] if calibration is None else _calibration_pool(spec, calibration)
    calibration_units = {u: units.pop(u) for u in list(units) if units[u].set_index == len(sets)}
    left_out = ([u for s in sets for u in s.units_fv_not_beating_natural()]
                if spec.fv_must_beat_natural else [])
    for unit_id in left_out:
        del units[unit_id]
    roles = _assign_roles(spec, sets, units, rng, machine_scores)
    roles.roles.update({u: "calibration" if u in calibration_pool else "left_out"
                        for u in calibration_units})
    check_query_distributions(spec, sets)
    targets = dict.fromkeys([*sorted(units), *calibration_units], 0)
    tasks = _make_tasks(spec, with_calibration, {**units, **calibration_units}, roles,
                        calibration_pool, rng, targets)
    order = rng.permutation(len(tasks))
    for position, task_index in enumerate(order):
        tasks[task_index].assign_order = position
    for number, task in enumerate(tasks, start=1):
        task.task_key = f"T{number:05d}"
    return Design(tasks, roles.roles, targets, units, sorted(left_out), roles.selection)


def _assign_roles(spec: ExperimentSpec, sets: list[StimulusSet], units: dict[str, UnitInfo],
                  rng: np.random.Generator, machine_scores: pd.Series | None) -> _Roles:
    """Practice and catch units from the first set, the main units' groups (per set or
    pooled; chosen by machine scores under `[select_units]`), every unit's role."""
    all_ids = sorted(units)
    first_set = [u for u in all_ids if units[u].set_index == 0]
    practice = _reserve(spec.practice.units, spec.practice.trials, first_set, "practice",
                        "practice.units", rng)
    remaining = [u for u in first_set if u not in practice]
    catch = _reserve(spec.catch.units, spec.catch_trials_per_task, remaining, "catch",
                     "catch.units", rng)
    reserved = set(practice) | set(catch)
    roles = {u: "practice" if u in practice else "catch" if u in catch else "main" for u in all_ids}
    if spec.task_units == "per_set":
        groups = {sets[i].name: [u for u in all_ids if units[u].set_index == i and u not in reserved]
                  for i in range(len(sets))}
    else:
        groups = {"pooled": [u for u in all_ids if u not in reserved]}
    selection: dict[str, tuple[str, float]] = {}
    if spec.select_units is not None:
        if machine_scores is None:
            raise SpecError("select_units: no machine scores were read for this plan")
        picker = np.random.default_rng([spec.seed, 1])  # its own stream: the rest is unmoved
        for group, pool in groups.items():
            selection.update(select_units(group, pool, machine_scores, spec.select_units,
                                          picker))
            groups[group] = [u for u in pool if u in selection]
        roles = {u: "left_out" if role == "main" and u not in selection else role
                 for u, role in roles.items()}
    return _Roles(practice, catch, groups, roles, selection)


def _make_tasks(spec: ExperimentSpec, sets: list[StimulusSet], units: dict[str, UnitInfo],
                roles: _Roles, calibration_pool: list[str], rng: np.random.Generator,
                targets: dict[str, int]) -> list[PlannedTask]:
    """Every cell's tasks (condition x difficulty x query distribution x group), each unit's
    main trials filled least-used-first; `targets` counts the tasks each unit is in."""
    maker = TrialContext(spec.task.params, sets, rng)
    task_type = get_task(spec.task.type)
    drawer = np.random.default_rng([spec.seed, 2])  # its own stream: the rest is unmoved
    drawn = dict.fromkeys(calibration_pool, 0)
    n_calibration = 0 if spec.calibration is None else spec.calibration.trials
    tasks: list[PlannedTask] = []
    for condition in spec.conditions:
        for difficulty in spec.difficulty:
            for distribution in spec.query_distribution:
                for group, pool in roles.groups.items():
                    if spec.main_trials_per_task > len(pool):
                        raise SpecError(f"main_trials_per_task is {spec.main_trials_per_task} "
                                        f"but {group!r} has only {len(pool)} units left after "
                                        f"reserving practice and catch units; each unit may "
                                        f"appear once per task")
                    for unit_ids in fill_tasks(pool, spec.main_trials_per_task,
                                               spec.responses_per_unit, rng):
                        known = _least_used(calibration_pool, n_calibration, drawn, drawer)
                        tasks.append(_make_task(maker, task_type, spec, units, unit_ids,
                                                roles.practice, roles.catch,
                                                (condition, difficulty, distribution), group,
                                                rng, known))
                        for unit_id in unit_ids + known:
                            targets[unit_id] += 1
    return tasks


def check_query_distributions(spec: ExperimentSpec, sets: list[StimulusSet]) -> None:
    """Every stimulus set holds queries of each of the spec's query distributions."""
    for stimulus_set in sets:
        held = set(stimulus_set.images.distribution)
        missing = [d for d in spec.query_distribution if d not in held]
        if missing:
            raise SpecError(f"query_distribution {missing[0]!r}: stimulus set "
                            f"{stimulus_set.path} has no such queries (it has "
                            f"{', '.join(sorted(held))}); add them with `interpsy stimuli shift "
                            f"{stimulus_set.path} --shift NAME:SEVERITY` or `--domain "
                            f"NAME=FOLDER`")


def _make_task(maker: TrialContext, task_type: TaskType, spec: ExperimentSpec, units: dict[str, UnitInfo],
               main_ids: list[str], practice: list[str], catch: list[str],
               cell: tuple[str, str, str], group: str, rng: np.random.Generator,
               calibration: tuple[str, ...] | list[str] = ()) -> PlannedTask:
    """One task of the cell (condition, difficulty, query distribution): practice and main
    trials, catch and calibration trials shuffled in (calibration trials in the task's
    condition with the easy, in-distribution queries of the calibration set)."""
    condition, difficulty, distribution = cell
    task = PlannedTask("", condition, difficulty, group, 0, query_distribution=distribution)
    practice_ids = list(practice[: spec.practice.trials])
    rng.shuffle(practice_ids)
    for position, (unit_id, key) in enumerate(
            zip(practice_ids, task_type.balanced_keys(len(practice_ids), rng))):
        task.practice.append(plan_trial(maker, task_type, units[unit_id], condition, difficulty,
                                         "practice", position, key, False, distribution))
    block = ([(u, "main") for u in main_ids]
             + [(u, "catch") for u in catch[: spec.catch_trials_per_task]]
             + [(u, "calibration") for u in calibration])
    rng.shuffle(block)
    for position, ((unit_id, kind), key) in enumerate(
            zip(block, task_type.balanced_keys(len(block), rng))):
        if kind == "calibration":
            trial = plan_trial(maker, task_type, units[unit_id], condition, "easy", "main", position,
                                key, False, IN_DISTRIBUTION)
            trial.is_calibration = True
        else:
            trial = plan_trial(maker, task_type, units[unit_id], condition, difficulty, "main",
                                position, key, kind == "catch", distribution)
        task.main.append(trial)
    return task


def design_frame(design: Design) -> pd.DataFrame:
    """One row per planned trial (for inspection and tests)."""
    rows = []
    for task in design.tasks:
        for trial in task.practice + task.main:
            rows.append({"task_id": task.task_key, "assign_order": task.assign_order,
                         "phase": trial.phase, "position": trial.position,
                         "is_catch": trial.is_catch, "is_calibration": trial.is_calibration,
                         "unit_id": trial.unit.unit_id,
                         "condition": trial.condition, "difficulty": trial.difficulty,
                         "query_distribution": trial.query_distribution,
                         "batch": trial.batch, **trial.stimulus,
                         "answer_key": trial.answer_key})
    return pd.DataFrame(rows)
