"""What the task types whose answer is one of two images share (IMI's 2-AFC, the occlusion
task): the answer (the image chosen, a upper or b lower, and a confidence of 1-3), its keys,
scoring, chance level and the columns that hold them. The page draws it with
server/static/js/tasks/two_choice.js, the lab with experiments/lab/screen.py; both take the
keys from here."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from experiments.tasks.base import TaskType


class TwoAfcAnswer(BaseModel):
    """The image chosen (`a` upper, `b` lower) and the confidence 1 (low) to 3 (high)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    choice: Literal["a", "b"] = Field(description="the query chosen: a (upper), b (lower)")
    confidence: int = Field(ge=1, le=3, description="1 (low) to 3 (high)")


class TwoChoiceTask(TaskType):
    """A task type answered by choosing image a or b: the right one is the trial's key."""

    keys = ("a", "b")
    Answer = TwoAfcAnswer
    chance = 0.5
    key_column = "correct_choice"
    option_column, options = "choice", ("a", "b")  # the two rows of buttons
    option_names = {"a": "upper", "b": "lower"}
    # Each image's keys for very, fairly and not sure (the confidences 3, 2, 1).
    response_keys = {"a": ("1", "2", "3"), "b": ("8", "9", "0")}
    # The answer's columns in the responses table, after the type's stimulus columns.
    answer_columns = {"correct_choice": "string", "choice": "string", "correct": "bool",
                      "confidence": "Int64"}

    def how_to_answer(self) -> str:
        keys = " and ".join(f"<b>{' '.join(self.response_keys[o])}</b> ({self.option_names[o]} "
                            f"image: very, fairly, not sure)" for o in self.options)
        return ("<p>Each centre image has three buttons: <i>Very sure</i>, <i>Fairly sure</i> "
                "and <i>Not sure</i>. Click the button next to the image you choose that says "
                f"how sure you are. You can also use the keys {keys}.</p>")

    def score(self, answer: TwoAfcAnswer, key: str) -> bool:
        return answer.choice == key
