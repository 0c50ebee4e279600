"""What a task type declares: name, parameters, image roles, answer, scoring, chance level."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class NoParams(BaseModel):
    """A task type without parameters of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskType(ABC):
    """A paradigm. Subclasses set the class attributes and `score`; one instance is registered.

    - `Params`: the pydantic model of the spec's `[task]` table (besides `type`);
    - `roles`: the image roles a stimulus set must hold for the task;
    - `Answer`: the pydantic model of one answer as a client sends it;
    - `chance`: the proportion correct of random answers;
    - `extra_columns`: response columns the type adds (name -> pandas dtype), in data/SCHEMA.md.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    Answer: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[str, ...]] = ()
    chance: ClassVar[float]
    extra_columns: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def score(self, answer: BaseModel, key: str) -> bool:
        """Whether `answer` is correct for a trial whose answer key is `key`."""

    def score_fields(self, values: Mapping[str, Any], key: str) -> bool:
        """Score the answer held in `values` (a client's record; other keys are ignored)."""
        answer = self.Answer.model_validate({k: values[k] for k in self.Answer.model_fields
                                             if k in values})
        return self.score(answer, key)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for `interpsy tasks` and experiment records."""
        return {"name": self.name, "title": self.title, "chance": self.chance,
                "roles": list(self.roles), "params": _fields(self.Params),
                "answer": _fields(self.Answer), "extra_columns": dict(self.extra_columns)}


def _fields(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Each field's type, default (None when required) and description."""
    out = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        shown = (annotation.__name__ if isinstance(annotation, type)
                 else str(annotation).replace("typing.", ""))
        out[name] = {"type": shown,
                     "default": None if field.is_required() else field.default,
                     "description": field.description or ""}
    return out
