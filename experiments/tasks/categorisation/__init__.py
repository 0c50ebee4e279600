"""Model-vs-human categorisation (Geirhos et al. 2018, 2021): one image shown briefly after a
fixation, then a 1/f noise mask, then a grid of the categories to click within a response
window; right = the image's category (docs/categorisation.md).

A unit is one image of a categorisation set (`interpsy stimuli categories`); the task's
condition is a distortion of the set, and each image is shown at one of its levels, the same for
every participant (image n of the category at place c gets level (n + c) mod the number of
levels, so each category is spread evenly over the levels, as the benchmark showed each image at
one level to all its participants). Catch trials show the mildest level (the first listed).
Presentation is counted in display frames (the page on requestAnimationFrame, the lab on the
PsychoPy flip); each answer carries the frames shown and the durations measured, and an answer
whose stimulus or mask was off the plan by a frame gets a `timing_flag`."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from experiments.errors import SpecError
from experiments.stimulus_set import CATEGORISATION_KIND
from experiments.tasks.base import BadAnswer, MadeTrial, TaskType
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.vocabulary import DISTORTION_LEVELS, NO_RESPONSE

# Keyboard keys of the categories in grid order (the page's and the lab's), as many as there are
CATEGORY_KEYS = tuple("1234567890qwertyuiopasdfghjklzxcvbnm")
TIMESTAMP_SLACK_MS = 2.0  # frame timestamps' own jitter, beside half a frame of rounding


class CategorisationParams(BaseModel):
    """The spec's `[task]` table of a categorisation study (the benchmark's values default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[str] | None = Field(
        default=None, description="the response options in grid order (N >= 2); default: the "
                                  "stimulus set's categories")
    fixation_ms: int = Field(default=300, ge=0, le=5000, description="fixation before the image")
    stimulus_ms: int = Field(default=200, ge=1, le=5000, description="the image's duration")
    mask_ms: int = Field(default=200, ge=0, le=5000,
                         description="the 1/f noise mask's duration (0: no mask)")
    response_window_ms: int | None = Field(
        default=1500, ge=200, description="time to answer after the mask; no answer in it is "
                                          "recorded as 'na' (an error); none: wait for one")

    @field_validator("categories")
    @classmethod
    def _at_least_two(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if len(value) < 2:
            raise ValueError(f"a categorisation task needs at least 2 categories, got "
                             f"{len(value)}")
        if len(set(value)) != len(value):
            raise ValueError("each category may appear only once")
        if NO_RESPONSE in value:
            raise ValueError(f"{NO_RESPONSE!r} marks a missing answer; it cannot be a category")
        return value


class CategorisationStimulus(BaseModel):
    """One trial: the image, its mask, the categories offered and the presentation times."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(description="image id of the (distorted) image")
    mask: str = Field(description="image id of the image's 1/f noise mask")
    category: str = Field(description="the image's category (the answer; never sent to a page)")
    distortion: str = Field(description="the distortion (the trial's condition)")
    level: str = Field(description="the distortion's level as the set writes it")
    categories: list[str] = Field(description="the response options in grid order")
    fixation_ms: int
    stimulus_ms: int
    mask_ms: int
    response_window_ms: int | None


class CategorisationAnswer(BaseModel):
    """The category clicked (or 'na': none in the response window) and the presentation as
    the client measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: str = Field(min_length=1, max_length=64,
                        description="the category chosen, or 'na' when none was in time")
    stimulus_frames: int = Field(ge=0, description="display frames the image was up (its "
                                                   "measured duration in frames)")
    mask_frames: int = Field(ge=0, description="display frames the mask was up (its measured "
                                               "duration in frames)")
    stimulus_ms: float = Field(ge=0, description="measured: image onset to mask onset")
    mask_ms: float = Field(ge=0, description="measured: mask onset to response-screen onset")
    frame_ms: float = Field(gt=0, description="the display's frame period as measured")


class Categorisation(TaskType):
    """Which category is the briefly shown image? N categories, chance 1/N."""

    name = "categorisation"
    title = "Model-vs-human categorisation: which category is the briefly shown image?"
    Params = CategorisationParams
    Stimulus = CategorisationStimulus
    Answer = CategorisationAnswer
    image_fields = ("image", "mask")
    choice_fields = ()  # the options are words, not images
    page_fields = ("image", "mask", "categories", "fixation_ms", "stimulus_ms", "mask_ms",
                   "response_window_ms")
    keys = ("category",)  # the answer follows from the image, not from a balanced draw
    roles = ("stimulus", "mask")
    conditions = tuple(DISTORTION_LEVELS)
    difficulties = ("easy",)  # the level varies within a task; no query difficulty
    factors = ("condition",)
    reference_condition = "original"
    comparisons = ()
    chance = 1 / 16  # the benchmark's; a study's own is 1 / its number of categories
    question = "Which category was the image?"
    page_script = "experiments.tasks.categorisation:page.js"
    lab_screen = "experiments.tasks.categorisation.lab"
    key_column = "category"
    option_column = "choice"
    task_page = ("<p>Each trial starts with a white square in the centre of the screen: look "
                 "at its centre. An image appears there for a moment, followed by a noise "
                 "pattern.</p><p>Then the names of the categories appear. Click the category "
                 "the image showed. Answer quickly: the names stay only a short time, and a "
                 "trial without an answer counts as wrong. Some images are hard to see; give "
                 "your best guess.</p>")
    trial_columns = {"image": "string", "mask": "string", "category": "string",
                     "distortion": "string", "level": "string"}
    response_columns = {"image": "string", "category": "string", "distortion": "string",
                        "level": "string", "choice": "string", "correct": "bool",
                        "stimulus_frames": "Int64", "mask_frames": "Int64",
                        "stimulus_ms": "float64", "mask_ms": "float64", "frame_ms": "float64",
                        "timing_flag": "string"}

    def make_trial(self, context: TrialContext, unit: UnitInfo, condition: str, difficulty: str,
                   phase: str, key: str, is_catch: bool) -> MadeTrial:
        params: CategorisationParams = context.params
        manifest = context.manifest(unit)
        levels = [str(v) for v in (manifest.get("distortions") or {}).get(condition, [])]
        if not levels:
            raise SpecError(f"condition {condition!r}: the stimulus set {context.set_path(unit)} "
                            f"has no {condition} images (it has: "
                            f"{', '.join(manifest.get('distortions') or {}) or 'none'}); build "
                            f"them with `interpsy stimuli categories ... --distortion "
                            f"{condition}`")
        set_categories = list(manifest.get("categories") or [])
        categories = list(params.categories or set_categories)
        if unit.layer not in categories:
            raise SpecError(f"task.categories does not list {unit.layer!r}, the category of "
                            f"unit {unit.unit_id}; list every category of the set "
                            f"({', '.join(set_categories)})")
        place = set_categories.index(unit.layer) if unit.layer in set_categories else 0
        level = levels[0] if is_catch else levels[(unit.channel + place) % len(levels)]
        index = context.indexes[unit.set_index]
        found = index.by("unit_id", "kind", "role", "distortion", "level")
        image = found.get((unit.unit_id, CATEGORISATION_KIND, "stimulus", condition, level), [])
        mask = found.get((unit.unit_id, CATEGORISATION_KIND, "mask", "", ""), [])
        if len(image) != 1 or len(mask) != 1:
            raise SpecError(f"unit {unit.unit_id}: the set {context.set_path(unit)} needs one "
                            f"{condition} image at level {level} and one mask")
        stimulus = CategorisationStimulus(
            image=image[0], mask=mask[0], category=unit.layer, distortion=condition,
            level=level, categories=categories, fixation_ms=params.fixation_ms,
            stimulus_ms=params.stimulus_ms, mask_ms=params.mask_ms,
            response_window_ms=params.response_window_ms)
        return MadeTrial(stimulus.model_dump(), unit.layer, levels.index(level))

    def check_answer(self, answer: CategorisationAnswer, stimulus: dict[str, Any]) -> None:
        if answer.choice != NO_RESPONSE and answer.choice not in stimulus["categories"]:
            raise BadAnswer(f"answer for task type {self.name}: choice {answer.choice!r} is not "
                            f"one of this trial's categories ({', '.join(stimulus['categories'])})"
                            f" or {NO_RESPONSE!r}")

    def score(self, answer: CategorisationAnswer, key: str) -> bool:
        return answer.choice == key

    def words(self) -> dict[str, Any]:
        return {**super().words(), "no_response": NO_RESPONSE,
                "category_keys": list(CATEGORY_KEYS)}

    def how_to_answer(self) -> str:
        return ("<p>After the image and the noise pattern, click the name of the category you "
                "saw, or press the key shown on its button.</p>")

    def response_values(self, stimulus: dict[str, Any], key: str, answer: dict[str, Any],
                        correct: bool) -> dict[str, Any]:
        values = super().response_values(stimulus, key, answer, correct)
        return {**values, "timing_flag": timing_flag(stimulus, answer)}


def timing_flag(stimulus: dict[str, Any], answer: dict[str, Any]) -> str | None:
    """Which of the image and the mask lasted longer or shorter than planned by more than half
    a frame (rounding to whole frames stays within it; a dropped or extra frame does not), as
    `stimulus_ms 233.4 planned 200`; None when both were on time."""
    frame = float(answer.get("frame_ms") or 0)
    flags = []
    for part in ("stimulus_ms", "mask_ms"):
        measured, planned = answer.get(part), stimulus.get(part)
        if measured is None or planned is None or frame <= 0:
            continue
        if abs(float(measured) - float(planned)) > frame / 2 + TIMESTAMP_SLACK_MS:
            flags.append(f"{part} {float(measured):.1f} planned {planned}")
    return "; ".join(flags) or None


def planned_frames(stimulus: dict[str, Any], frame_ms: float) -> dict[str, int]:
    """The display frames each part is planned for at `frame_ms`: its duration rounded to whole
    frames (the fixation and the image at least one, the mask none when it is 0 ms)."""
    return {part: max(minimum, round(stimulus[f"{part}_ms"] / frame_ms))
            for part, minimum in (("fixation", 1), ("stimulus", 1), ("mask", 0))}


def category_keys(categories: list[str]) -> dict[str, str]:
    """Category -> its keyboard key, in grid order (categories past the keys get none)."""
    return dict(zip(categories, CATEGORY_KEYS, strict=False))
