"""What a task type declares: name, parameters, image roles, trials, answers, scoring, columns."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module, resources
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from experiments.errors import InterpsyError
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.vocabulary import CONDITIONS, DIFFICULTIES


class NoParams(BaseModel):
    """A task type without parameters of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BadAnswer(InterpsyError):
    """An answer whose shape the experiment's task type does not accept (HTTP 400)."""


@dataclass(frozen=True)
class MadeTrial:
    """What a task type makes of one unit: the stimulus description, its key and reference batch."""

    stimulus: dict[str, Any]
    answer_key: str
    batch: int = 0


class TaskType(ABC):
    """A paradigm. Subclasses set the class attributes, `make_trial` and `score`; one instance
    is registered.

    - `Params`: the pydantic model of the spec's `[task]` table (besides `type`);
    - `roles`: the image roles a stimulus set must hold for the task;
    - `conditions` / `difficulties`: the spec's `conditions` and `difficulty` vocabularies;
    - `shifted_queries`: whether the type takes the spec's `query_distribution` (then
      `make_trial` gets a `distribution` keyword: the query distribution of the trial);
    - `Stimulus`: the pydantic model of one trial's stimulus description (stored as JSON);
      `image_fields` names its fields that hold an image id or a list of them, and
      `choice_fields` those among them whose images are the alternatives chosen between (the
      server serves these at one byte size: a file's size must not tell the answer);
    - `keys`: the answer keys a trial can have, balanced within each block;
    - `Answer`: the pydantic model of one answer as a client sends it;
    - `chance`: the proportion correct of random answers;
    - `question`: what the trial screen asks (web and lab); `task_page`: the built-in
      instruction page that explains the task (HTML), when a study has no pages of its own;
    - `response_keys`: per response option, its keyboard keys (the page's and the lab's,
      sent from here, never defined there) and `how_to_answer()` the instructions' words on
      answering with buttons and keys;
    - `key_column`: the dataset column that holds a trial's answer key;
    - `option_column` / `options`: the answer field naming the response option chosen and its
      values, for the exclusion rule "each response option used" (None: no such rule);
    - `trial_columns` / `response_columns`: the type's columns (name -> pandas dtype) in the
      trials and responses tables, in order, documented in data/SCHEMA.md; the response columns
      include `correct` where it reads best;
    - `factors`: the trial columns that are fixed effects of the analysis' mixed model
      (treatment-coded against `reference_condition` for `condition`, against the first level
      of the type's vocabulary otherwise);
    - `comparisons`: the pairs of conditions the report compares paired per unit;
    - `analysis`: a module (import path) whose `tables(scored)` adds the type's own tables to
      the report and whose `SECTION` (title, intro HTML) introduces them; None: none;
    - `page_script` / `lab_screen`: the type's page module ("package:file.js", served as
      /static/js/tasks/<name>.js beside the page's shared modules) and its lab screen module
      (an import path whose `place(stimulus)` returns a Placement); interpsy's own types keep
      both in their folder (experiments/tasks/<name>/page.js and lab.py).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    Stimulus: ClassVar[type[BaseModel]]
    image_fields: ClassVar[tuple[str, ...]] = ()
    choice_fields: ClassVar[tuple[str, ...] | None] = None  # None: every image field
    page_fields: ClassVar[tuple[str, ...] | None] = None  # what the page gets; None: all
    keys: ClassVar[tuple[str, ...]]
    Answer: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[str, ...]] = ()
    conditions: ClassVar[tuple[str, ...]] = CONDITIONS
    difficulties: ClassVar[tuple[str, ...]] = DIFFICULTIES
    shifted_queries: ClassVar[bool] = False
    chance: ClassVar[float]
    question: ClassVar[str] = ""
    labels: ClassVar[dict[str, str]] = {}  # the screen's left and right captions
    task_page: ClassVar[str] = ""
    response_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    key_column: ClassVar[str] = "answer_key"
    option_column: ClassVar[str | None] = None
    options: ClassVar[tuple[str, ...]] = ()
    trial_columns: ClassVar[dict[str, str]]
    response_columns: ClassVar[dict[str, str]]
    factors: ClassVar[tuple[str, ...]] = ("condition", "difficulty")
    reference_condition: ClassVar[str] = "natural"
    comparisons: ClassVar[tuple[tuple[str, str], ...]] = (("natural", "synthetic"),)
    analysis: ClassVar[str | None] = None
    page_script: ClassVar[str | None] = None
    lab_screen: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        columns = cls.__dict__.get("response_columns")
        if columns is not None and "correct" not in columns:
            raise TypeError(f"{cls.__name__}.response_columns must place `correct`")

    @abstractmethod
    def make_trial(self, context: TrialContext, unit: UnitInfo, condition: str, difficulty: str,
                   phase: str, key: str, is_catch: bool) -> MadeTrial:
        """One trial of `unit` whose answer is `key`, from the context's images and seeded rng."""

    @abstractmethod
    def score(self, answer: BaseModel, key: str) -> bool:
        """Whether `answer` is correct for a trial whose answer key is `key`."""

    def how_to_answer(self) -> str:
        """The 'How to answer' page's opening (HTML): which button or key gives which answer."""
        keys = "; ".join(f"<b>{' '.join(k)}</b> for {option}"
                         for option, k in self.response_keys.items())
        return ("<p>Click the button of your answer" + (f", or press its key: {keys}" if keys
                                                          else "") + ".</p>")

    # ---- answers ------------------------------------------------------------------------
    def parse_answer(self, values: Mapping[str, Any]) -> BaseModel:
        """`values` as this type's Answer; BadAnswer naming what is wrong otherwise."""
        try:
            return self.Answer.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise BadAnswer(f"answer for task type {self.name}: {problems}") from None

    def check_answer(self, answer: BaseModel, stimulus: Mapping[str, Any]) -> None:
        """Refuse (BadAnswer) an answer of the right shape that the trial could not have had
        (e.g. a category it did not offer); the base type takes every parsed answer."""
        return None

    def balanced_keys(self, n: int, rng: np.random.Generator) -> list[str]:
        """`n` answer keys in random order, each key n // k or n // k + 1 times."""
        keys = list(self.keys) if rng.random() < 0.5 else list(reversed(self.keys))
        labels = [key for j, key in enumerate(keys)
                  for _ in range(n // len(keys) + (1 if j < n % len(keys) else 0))]
        rng.shuffle(labels)
        return labels

    # ---- stimuli ------------------------------------------------------------------------
    def image_ids(self, stimulus: Mapping[str, Any]) -> list[str]:
        """Every image a trial shows, in `image_fields` order."""
        return _ids_in(stimulus, self.image_fields)

    def choice_ids(self, stimulus: Mapping[str, Any]) -> list[str]:
        """The images a trial's answer is chosen between (`choice_fields`)."""
        return _ids_in(stimulus, self.image_fields if self.choice_fields is None
                       else self.choice_fields)

    def for_page(self, stimulus: Mapping[str, Any], rename: Callable[[str], str]
                 ) -> dict[str, Any]:
        """What a participant's page gets: the page fields, image ids renamed (public ids)."""
        shown = self.map_images(stimulus, rename)
        return shown if self.page_fields is None else {k: shown[k] for k in self.page_fields}

    def map_images(self, stimulus: Mapping[str, Any], rename: Callable[[str], str]
                   ) -> dict[str, Any]:
        """The stimulus with every image id replaced by `rename(id)` (public ids for pages)."""
        out = dict(stimulus)
        for name in self.image_fields:
            value = out[name]
            out[name] = [rename(v) for v in value] if isinstance(value, list) else rename(value)
        return out

    # ---- dataset columns ----------------------------------------------------------------
    def trial_values(self, stimulus: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The type's trials-table values of one trial (lists as JSON text)."""
        flat = {name: json.dumps(value) if isinstance(value, (list, dict)) else value
                for name, value in stimulus.items()}
        flat[self.key_column] = key
        return {column: flat.get(column) for column in self.trial_columns}

    def response_values(self, stimulus: Mapping[str, Any], key: str, answer: Mapping[str, Any],
                        correct: bool) -> dict[str, Any]:
        """The type's responses-table values of one answered trial."""
        flat = {**self.trial_values(stimulus, key), **{
            name: value for name, value in stimulus.items()
            if not isinstance(value, (list, dict))}, **answer, "correct": correct}
        return {column: flat.get(column) for column in self.response_columns}

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for `interpsy tasks` and experiment records."""
        return {"name": self.name, "title": self.title, "chance": self.chance,
                "question": self.question, "labels": dict(self.labels),
                "roles": list(self.roles), "keys": list(self.keys),
                "conditions": list(self.conditions), "difficulties": list(self.difficulties),
                "shifted_queries": self.shifted_queries,
                "params": _fields(self.Params), "stimulus": _fields(self.Stimulus),
                "answer": _fields(self.Answer), "key_column": self.key_column,
                "trial_columns": dict(self.trial_columns),
                "response_columns": dict(self.response_columns),
                "factors": list(self.factors), "reference_condition": self.reference_condition,
                "comparisons": [list(pair) for pair in self.comparisons],
                "analysis": self.analysis}

    def words(self) -> dict[str, Any]:
        """What the page and the lab say and accept on a trial screen: the question, the side
        labels and each response option's keys."""
        return {"question": self.question, "labels": dict(self.labels),
                "keys": {option: list(keys) for option, keys in self.response_keys.items()}}

    def lab_module(self) -> ModuleType:
        """The lab screen module (`lab_screen`); a clear error for a type without one."""
        if self.lab_screen is None:
            raise InterpsyError(f"the lab client has no screen for task type {self.name!r}: "
                                f"its package names one as the type's `lab_screen`")
        return import_module(self.lab_screen)

    def page_script_file(self) -> Path | None:
        """The file of `page_script` inside its package (None when the type names none)."""
        if self.page_script is None:
            return None
        package, _, name = self.page_script.partition(":")
        return Path(str(resources.files(package) / name))



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


def _ids_in(stimulus: Mapping[str, Any], fields: tuple[str, ...]) -> list[str]:
    """The image ids a stimulus holds in `fields` (each an id or a list of ids), in order."""
    return [i for name in fields
            for i in (stimulus[name] if isinstance(stimulus[name], list) else [stimulus[name]])]
