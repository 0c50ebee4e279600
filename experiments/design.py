"""Task design: turn a spec and its stimulus sets into tasks and trials (pure, no storage)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from experiments.errors import SpecError
from experiments.spec import ExperimentSpec
from experiments.stimulus_set import StimulusSet

SYNTHETIC_SHARE_IN_MIXED = 0.5  # mixed: the first half (rounded down) of each side is synthetic


@dataclass(frozen=True)
class UnitInfo:
    """A unit and the stimulus set it comes from."""

    unit_id: str
    model: str
    layer: str
    channel: int
    set_index: int


@dataclass
class PlannedTrial:
    """One trial as the participant will see it."""

    phase: str
    position: int
    is_catch: bool
    unit: UnitInfo
    condition: str
    difficulty: str
    batch: int
    query_a: str
    query_b: str
    correct_choice: str
    references_max: list[str]
    references_min: list[str]


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


@dataclass
class Design:
    """All tasks of an experiment plus the role and response target of every unit."""

    tasks: list[PlannedTask]
    unit_roles: dict[str, str]
    unit_targets: dict[str, int]
    units: dict[str, UnitInfo]
    left_out: list[str] = field(default_factory=list)  # fv does not beat natural (IMI's rule)


class ImageIndex:
    """Fast lookup of a set's images by unit, kind, role, batch and difficulty."""

    def __init__(self, stimulus_set: StimulusSet):
        self.set = stimulus_set
        frame = stimulus_set.images.sort_values(["unit_id", "kind", "role", "batch", "rank"])
        self._groups: dict[tuple, list[str]] = {
            key: list(group.image_id)
            for key, group in frame.groupby(["unit_id", "kind", "role", "batch", "difficulty"],
                                            sort=False)}

    def get(self, unit_id: str, kind: str, role: str, batch: int, difficulty: str = "") -> list[str]:
        return self._groups.get((unit_id, kind, role, batch, difficulty), [])

    def batches(self, unit_id: str, kind: str) -> list[int]:
        return sorted({k[3] for k in self._groups if k[0] == unit_id and k[1] == kind
                       and k[2] == "reference_max"})


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


def _balanced_choices(n: int, rng: np.random.Generator) -> list[str]:
    """'a'/'b' for the max query, n // 2 of one and the rest of the other, in random order."""
    first, second = ("a", "b") if rng.random() < 0.5 else ("b", "a")
    labels = [first] * (n - n // 2) + [second] * (n // 2)
    rng.shuffle(labels)
    return labels


class _TrialMaker:
    """Builds trials for units, cycling each unit's reference batches per (condition, difficulty)."""

    def __init__(self, spec: ExperimentSpec, sets: list[StimulusSet], rng: np.random.Generator):
        self.spec = spec
        self.indexes = [ImageIndex(s) for s in sets]
        self.rng = rng
        self._cycle: dict[tuple, tuple[list[int], int]] = {}

    def next_batch(self, unit: UnitInfo, kind: str, cell: tuple) -> int:
        key = (unit.unit_id, kind, cell)
        if key not in self._cycle:
            batches = self.indexes[unit.set_index].batches(unit.unit_id, kind)
            if not batches:
                raise SpecError(f"unit {unit.unit_id} has no {kind} references in "
                                f"{self.indexes[unit.set_index].set.path}; condition "
                                f"{cell[0]!r} needs them")
            self._cycle[key] = (batches, int(self.rng.integers(len(batches))))
        batches, counter = self._cycle[key]
        self._cycle[key] = (batches, counter + 1)
        return batches[counter % len(batches)]

    def references(self, unit: UnitInfo, condition: str, batch: int, cell: tuple
                   ) -> tuple[list[str], list[str]]:
        index, n = self.indexes[unit.set_index], self.spec.references_per_side
        natural = [index.get(unit.unit_id, "natural", role, batch)
                   for role in ("reference_max", "reference_min")]
        if condition == "natural":
            sides = natural
        elif condition == "none":
            return [], []
        else:
            synthetic_batch = self.next_batch(unit, "synthetic", cell)
            synthetic = [index.get(unit.unit_id, "synthetic", role, synthetic_batch)
                         for role in ("reference_max", "reference_min")]
            if condition == "synthetic":
                sides = synthetic
            else:
                k = int(n * SYNTHETIC_SHARE_IN_MIXED)
                sides = [syn[:k] + nat[: n - k] for syn, nat in zip(synthetic, natural)]
        for side in sides:
            if len(side) < n:
                raise SpecError(f"references_per_side is {n} but unit {unit.unit_id} has only "
                                f"{len(side)} {condition} references per side in batch {batch}")
        return sides[0][:n], sides[1][:n]

    def trial(self, unit: UnitInfo, condition: str, difficulty: str, phase: str, position: int,
              max_is: str, is_catch: bool = False) -> PlannedTrial:
        cell = (condition, difficulty, phase)
        batch = self.next_batch(unit, "natural", cell)
        shown = "natural" if is_catch and condition == "none" else condition
        ref_max, ref_min = self.references(unit, shown, batch, cell)
        if is_catch:
            # The query is one of the references shown: the answer is obvious.
            q_max = ref_max[int(self.rng.integers(len(ref_max)))]
            q_min = ref_min[int(self.rng.integers(len(ref_min)))]
        else:
            index = self.indexes[unit.set_index]
            q_max_list = index.get(unit.unit_id, "natural", "query_max", batch, difficulty)
            q_min_list = index.get(unit.unit_id, "natural", "query_min", batch, difficulty)
            if len(q_max_list) != 1 or len(q_min_list) != 1:
                raise SpecError(f"difficulty {difficulty!r}: unit {unit.unit_id} batch {batch} "
                                f"needs one {difficulty} query_max and one query_min in "
                                f"{index.set.path}")
            q_max, q_min = q_max_list[0], q_min_list[0]
        query_a, query_b = (q_max, q_min) if max_is == "a" else (q_min, q_max)
        return PlannedTrial(phase, position, is_catch, unit, condition, difficulty, batch,
                            query_a, query_b, max_is, ref_max, ref_min)


def _fill_tasks(units: list[str], per_task: int, responses: int, rng: np.random.Generator
                ) -> list[list[str]]:
    """Least-used-first selection: unit counts end within 1 of `responses`, none twice per task."""
    n_tasks = math.ceil(len(units) * responses / per_task)
    counts = dict.fromkeys(units, 0)
    tasks = []
    for _ in range(n_tasks):
        keys = rng.random(len(units))
        order = sorted(range(len(units)), key=lambda i: (counts[units[i]], keys[i]))
        chosen = [units[i] for i in order[:per_task]]
        for unit in chosen:
            counts[unit] += 1
        tasks.append(chosen)
    return tasks


def plan(spec: ExperimentSpec, sets: list[StimulusSet]) -> Design:
    """Plan every task and trial of an experiment; the same spec and sets give the same plan."""
    rng = np.random.default_rng(spec.seed)
    units = _collect_units(sets)
    left_out = ([u for s in sets for u in s.units_fv_not_beating_natural()]
                if spec.fv_must_beat_natural else [])
    for unit_id in left_out:
        del units[unit_id]
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

    maker = _TrialMaker(spec, sets, rng)
    targets = dict.fromkeys(all_ids, 0)
    tasks: list[PlannedTask] = []
    for condition in spec.conditions:
        for difficulty in spec.difficulty:
            for group, pool in groups.items():
                if spec.main_trials_per_task > len(pool):
                    raise SpecError(f"main_trials_per_task is {spec.main_trials_per_task} but "
                                    f"{group!r} has only {len(pool)} units left after reserving "
                                    f"practice and catch units; each unit may appear once per task")
                for unit_ids in _fill_tasks(pool, spec.main_trials_per_task,
                                            spec.responses_per_unit, rng):
                    tasks.append(_make_task(maker, spec, units, unit_ids, practice, catch,
                                            condition, difficulty, group, rng))
                    for unit_id in unit_ids:
                        targets[unit_id] += 1
    order = rng.permutation(len(tasks))
    for position, task_index in enumerate(order):
        tasks[task_index].assign_order = position
    for number, task in enumerate(tasks, start=1):
        task.task_key = f"T{number:05d}"
    return Design(tasks, roles, targets, units, sorted(left_out))


def _make_task(maker: _TrialMaker, spec: ExperimentSpec, units: dict[str, UnitInfo],
               main_ids: list[str], practice: list[str], catch: list[str], condition: str,
               difficulty: str, group: str, rng: np.random.Generator) -> PlannedTask:
    task = PlannedTask("", condition, difficulty, group, 0)
    practice_ids = list(practice[: spec.practice.trials])
    rng.shuffle(practice_ids)
    for position, (unit_id, max_is) in enumerate(
            zip(practice_ids, _balanced_choices(len(practice_ids), rng))):
        task.practice.append(maker.trial(units[unit_id], condition, difficulty, "practice",
                                         position, max_is))
    block = [(u, False) for u in main_ids] + [(u, True) for u in catch[: spec.catch_trials_per_task]]
    rng.shuffle(block)
    for position, ((unit_id, is_catch), max_is) in enumerate(
            zip(block, _balanced_choices(len(block), rng))):
        task.main.append(maker.trial(units[unit_id], condition, difficulty, "main", position,
                                     max_is, is_catch))
    return task


def design_frame(design: Design) -> pd.DataFrame:
    """One row per planned trial (for inspection and tests)."""
    rows = []
    for task in design.tasks:
        for trial in task.practice + task.main:
            rows.append({"task_id": task.task_key, "assign_order": task.assign_order,
                         "phase": trial.phase, "position": trial.position,
                         "is_catch": trial.is_catch, "unit_id": trial.unit.unit_id,
                         "condition": trial.condition, "difficulty": trial.difficulty,
                         "batch": trial.batch, "query_a": trial.query_a, "query_b": trial.query_b,
                         "correct_choice": trial.correct_choice,
                         "references_max": trial.references_max,
                         "references_min": trial.references_min})
    return pd.DataFrame(rows)
