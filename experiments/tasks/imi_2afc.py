"""IMI's 2-AFC (Borowski et al. 2021; Zimmermann et al. 2023): which of two query images fits the
maximally activating references? Its layout keys (conditions, difficulty, references_per_side,
...) sit at the top level of the spec."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from experiments.tasks.base import TaskType


class TwoAfcAnswer(BaseModel):
    """The query chosen (`a` upper, `b` lower) and the confidence 1 (low) to 3 (high)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: Literal["a", "b"] = Field(description="the query chosen: a (upper), b (lower)")
    confidence: int = Field(ge=1, le=3, description="1 (low) to 3 (high)")


class ImiTwoAfc(TaskType):
    """Two queries, the references of both extremes; pick the query that activates more."""

    name = "imi_2afc"
    title = "IMI's 2-AFC: which query image fits the maximally activating references?"
    Answer = TwoAfcAnswer
    roles = ("reference_max", "reference_min", "query_max", "query_min")
    chance = 0.5

    def score(self, answer: TwoAfcAnswer, key: str) -> bool:
        return answer.choice == key
