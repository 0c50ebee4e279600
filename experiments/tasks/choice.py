"""What the task types answered by choosing one of several images share (IMI's 2-AFC, the
occlusion task, the 3-AFC): the answer (the option chosen and a confidence of 1-3), each
option's image field, name and keys, scoring, chance level and the answer's columns.

Option `o` shows the stimulus field `query_<o>`, in a row of its own (the first on top) with its
three confidence buttons. The page draws the rows with server/static/js/tasks/choices.js and the
lab with experiments/lab/screen.py, both from what `choice_words()` sends."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from experiments.tasks.base import TaskType

CONFIDENCE_LABELS: tuple[tuple[int, str], ...] = ((3, "Very sure"), (2, "Fairly sure"),
                                                  (1, "Not sure"))
OPTION_NAMES = {2: ("upper", "lower"), 3: ("top", "middle", "bottom")}
# Each option's keys for very, fairly and not sure (confidences 3, 2, 1), by number of options.
OPTION_KEYS = {2: (("1", "2", "3"), ("8", "9", "0")),
               3: (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"))}


class ChoiceAnswer(BaseModel):
    """The option chosen and the confidence 1 (low) to 3 (high)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    choice: str = Field(description="the option chosen")
    confidence: int = Field(ge=1, le=3, description="1 (low) to 3 (high)")


def answer_model(options: tuple[str, ...], names: tuple[str, ...]) -> type[ChoiceAnswer]:
    """The Answer model of a choice among `options` (its `choice` accepts only them)."""
    described = ", ".join(f"{o} ({n})" for o, n in zip(options, names, strict=True))
    return create_model("ChoiceAnswer" + "".join(o.upper() for o in options),
                        __base__=ChoiceAnswer,
                        choice=(Literal[options], Field(description=f"the image chosen: "
                                                                    f"{described}")))


class ChoiceTask(TaskType):
    """A task type answered by choosing one of its `options` (the images `query_<o>`, shown top
    to bottom): the right one is the trial's key. A subclass may set `options` (default a, b);
    the names, keys and answer model follow from their number unless it sets them too."""

    options: ClassVar[tuple[str, ...]] = ("a", "b")
    option_column = "choice"
    key_column = "correct_choice"
    option_names: ClassVar[dict[str, str]]
    # The answer's columns in the responses table, after the type's stimulus columns.
    answer_columns = {"correct_choice": "string", "choice": "string", "correct": "bool",
                      "confidence": "Int64"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        options = cls.options
        if len(options) not in OPTION_NAMES and not (
                "option_names" in cls.__dict__ and "response_keys" in cls.__dict__):
            raise TypeError(f"{cls.__name__}: {len(options)} options need their own "
                            f"option_names and response_keys")
        if "option_names" not in cls.__dict__:
            cls.option_names = dict(zip(options, OPTION_NAMES[len(options)], strict=True))
        if "response_keys" not in cls.__dict__:
            cls.response_keys = dict(zip(options, OPTION_KEYS[len(options)], strict=True))
        if "Answer" not in cls.__dict__:
            cls.Answer = answer_model(options, tuple(cls.option_names[o] for o in options))
        cls.keys = options
        cls.chance = 1 / len(options)
        super().__init_subclass__(**kwargs)

    @staticmethod
    def query_field(option: str) -> str:
        """The stimulus field holding option `option`'s image."""
        return f"query_{option}"

    def option_images(self, stimulus: dict[str, Any]) -> dict[str, str]:
        """Option -> the image id it shows, top to bottom."""
        return {o: stimulus[self.query_field(o)] for o in self.options}

    def choice_words(self) -> list[dict[str, Any]]:
        """Each option as the page and the lab draw it: its field, name and keys."""
        return [{"option": o, "field": self.query_field(o), "name": self.option_names[o],
                 "keys": list(self.response_keys[o])} for o in self.options]

    def words(self) -> dict[str, Any]:
        return {**super().words(), "options": self.choice_words(),
                "confidence": [list(level) for level in CONFIDENCE_LABELS]}

    def how_to_answer(self) -> str:
        keys = " and ".join(f"<b>{' '.join(self.response_keys[o])}</b> ({self.option_names[o]} "
                            f"image: very, fairly, not sure)" for o in self.options)
        return ("<p>Each centre image has three buttons: <i>Very sure</i>, <i>Fairly sure</i> and <i>Not sure</i>. Click the button "
                "next to the image you choose that says how sure you are. You can also use the "
                f"keys {keys}.</p>")

    def score(self, answer: ChoiceAnswer, key: str) -> bool:
        return answer.choice == key
