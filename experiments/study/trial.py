"""A trial's one shape: the facts every paradigm shares and the task type's stimulus, as the
design plans it, the server and the lab show it, and a lab task file carries it (its stored
row is `experiments.db.models.Trial`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from experiments.tasks.context import UnitInfo
from experiments.vocabulary import IN_DISTRIBUTION

if TYPE_CHECKING:
    from experiments.db.models import Trial


@dataclass
class PlannedTrial:
    """One trial as the participant sees it: generic facts plus the task's stimulus, and the
    stored trial's id once it is stored."""

    phase: str
    position: int
    is_catch: bool
    unit: UnitInfo
    condition: str
    difficulty: str
    batch: int
    stimulus: dict[str, Any]
    answer_key: str
    query_distribution: str = IN_DISTRIBUTION
    is_calibration: bool = False
    trial_id: int | None = None

    @property
    def unit_id(self) -> str:
        return self.unit.unit_id

    @property
    def model(self) -> str:
        return self.unit.model

    @property
    def layer(self) -> str:
        return self.unit.layer

    @property
    def channel(self) -> int:
        return self.unit.channel

    @classmethod
    def of(cls, row: Trial) -> PlannedTrial:
        """A stored trial (its database row; the unit's set index unknown: 0)."""
        return cls(row.phase, row.position, row.is_catch,
                   UnitInfo(row.unit_id, row.model, row.layer, row.channel, 0), row.condition,
                   row.difficulty, row.batch, dict(row.stimulus), row.answer_key,
                   row.query_distribution, bool(row.is_calibration), row.id)

    def record(self) -> dict[str, Any]:
        """The trial as flat JSON-ready data (a lab task file's trial)."""
        return {"trial_id": self.trial_id, "phase": self.phase, "position": self.position,
                "is_catch": self.is_catch, "unit_id": self.unit_id,
                "condition": self.condition, "difficulty": self.difficulty,
                "batch": self.batch, "stimulus": self.stimulus, "answer_key": self.answer_key,
                "model": self.model, "layer": self.layer, "channel": self.channel,
                "query_distribution": self.query_distribution,
                "is_calibration": self.is_calibration}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> PlannedTrial:
        """The inverse of `record`."""
        values = dict(data)
        unit = UnitInfo(values.pop("unit_id"), values.pop("model", ""),
                        values.pop("layer", ""), int(values.pop("channel", -1)), 0)
        return cls(unit=unit, **values)
