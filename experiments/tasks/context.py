"""What a task type makes trials from: the units, the stimulus sets' images by unit, kind,
role and batch, the spec and the seeded random generator (the design hands it to the type)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.errors import SpecError
from experiments.vocabulary import IN_DISTRIBUTION

if TYPE_CHECKING:
    from experiments.stimulus_set import StimulusSet


@dataclass(frozen=True)
class UnitInfo:
    """A unit and the stimulus set it comes from."""

    unit_id: str
    model: str
    layer: str
    channel: int
    set_index: int


class ImageIndex:
    """Fast lookup of a set's images by unit, kind, role, batch and difficulty."""

    def __init__(self, stimulus_set: StimulusSet):
        self.set = stimulus_set
        self._rows: dict[str, dict[str, Any]] | None = None
        self._by: dict[tuple[str, ...], dict[tuple, list[str]]] = {}
        frame = stimulus_set.images.sort_values(["unit_id", "kind", "role", "batch", "rank"])
        self._groups: dict[tuple, list[str]] = {
            key: list(group.image_id)
            for key, group in frame.groupby(["unit_id", "kind", "role", "batch", "difficulty",
                                             "distribution"], sort=False)}

    def row(self, image_id: str) -> dict[str, Any]:
        """One image's images.csv row (built into a dict once: a build asks per trial)."""
        if self._rows is None:
            self._rows = self.set.images.set_index("image_id").to_dict("index")
        return {"image_id": image_id, **self._rows[image_id]}

    def by(self, *columns: str) -> dict[tuple, list[str]]:
        """Image ids grouped by images.csv's `columns` (built once per list of columns)."""
        cached = self._by.get(columns)
        if cached is None:
            frame = self.set.images
            cached = {key if isinstance(key, tuple) else (key,): list(group.image_id)
                      for key, group in frame.groupby(list(columns), sort=False)}
            self._by[columns] = cached
        return cached

    def get(self, unit_id: str, kind: str, role: str, batch: int, difficulty: str = "",
            distribution: str = IN_DISTRIBUTION) -> list[str]:
        return self._groups.get((unit_id, kind, role, batch, difficulty, distribution), [])

    def batches(self, unit_id: str, kind: str) -> list[int]:
        return sorted({k[3] for k in self._groups if k[0] == unit_id and k[1] == kind
                       and k[2] == "reference_max"})


class TrialContext:
    """What a task type makes trials from: its parameters (the spec's `[task]` table), the
    sets' images, the seeded rng, and each unit's reference batches cycled per cell
    (condition, difficulty, phase)."""

    def __init__(self, params: Any, sets: list[StimulusSet], rng: np.random.Generator):
        self.params = params
        self.indexes = [ImageIndex(s) for s in sets]
        self.rng = rng
        self._cycle: dict[tuple, tuple[list[int], int]] = {}

    def images(self, unit: UnitInfo, kind: str, role: str, batch: int,
               difficulty: str = "", distribution: str = IN_DISTRIBUTION) -> list[str]:
        """The image ids of a unit's (kind, role, batch, difficulty, query distribution), in
        rank order."""
        return self.indexes[unit.set_index].get(unit.unit_id, kind, role, batch, difficulty,
                                                distribution)

    def image_row(self, unit: UnitInfo, image_id: str) -> dict[str, Any]:
        """The images.csv row of one of the unit's images (its extra columns included)."""
        return self.indexes[unit.set_index].row(image_id)

    def manifest(self, unit: UnitInfo) -> dict[str, Any]:
        """The manifest (stimuli.json) of the unit's stimulus set."""
        return self.indexes[unit.set_index].set.manifest

    def image_side(self, unit: UnitInfo) -> int:
        """The side in pixels of the unit's set's images."""
        return self.indexes[unit.set_index].set.image_size

    def set_path(self, unit: UnitInfo) -> Path:
        """The folder of the stimulus set the unit comes from (for error messages)."""
        return self.indexes[unit.set_index].set.path

    def next_batch(self, unit: UnitInfo, kind: str, cell: tuple) -> int:
        """The unit's next reference batch of `kind` for `cell`, from a seeded start."""
        key = (unit.unit_id, kind, cell)
        if key not in self._cycle:
            batches = self.indexes[unit.set_index].batches(unit.unit_id, kind)
            if not batches:
                raise SpecError(f"unit {unit.unit_id} has no {kind} references in "
                                f"{self.set_path(unit)}; condition {cell[0]!r} needs them")
            self._cycle[key] = (batches, int(self.rng.integers(len(batches))))
        batches, counter = self._cycle[key]
        self._cycle[key] = (batches, counter + 1)
        return batches[counter % len(batches)]
