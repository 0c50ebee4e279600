"""The causal occlusion task (Zimmermann, Borowski et al., NeurIPS 2021, "How well do feature
visualizations support causal understanding of CNN activations?"): beside the maximally
activating references and the unoccluded base image, two occluded versions of the base; which
one does the unit respond to more strongly? Images from `interpsy stimuli occlusion`."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from experiments.errors import SpecError
from experiments.stimulus_set import OCCLUDER_COLUMNS, OCCLUSION_KIND, occlusion_split
from experiments.tasks.base import MadeTrial
from experiments.tasks.choice import ChoiceTask
from experiments.tasks.context import TrialContext, UnitInfo


class OcclusionParams(BaseModel):
    """The `[task]` table of an occlusion experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    references: int = Field(9, ge=1, le=9, description="reference images shown per trial")
    synthetic_in_mixed: int = Field(5, ge=0, le=9, description="mixed: this many synthetic "
                                    "references first, natural ones after (the paper: 5 + 4)")

    @model_validator(mode="after")
    def _mixed_fits(self) -> OcclusionParams:
        if self.synthetic_in_mixed > self.references:
            raise ValueError(f"synthetic_in_mixed ({self.synthetic_in_mixed}) exceeds "
                             f"references ({self.references})")
        return self


class Occluder(BaseModel):
    """Where an occluded image's square lies (pixels of the shown image) and the variance of
    the base image's pixels it covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    y: int
    x: int
    size: int
    side: int  # the image's side
    variance: float


class OcclusionStimulus(BaseModel):
    """The references (none, natural, synthetic, mixed or blurred), the base image and the two
    occluded versions of it (a upper, b lower)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    references: list[str] = Field(description="image ids of the maximally activating references")
    base: str = Field(description="image id of the unoccluded base image")
    query_a: str = Field(description="image id of the upper occluded image")
    query_b: str = Field(description="image id of the lower occluded image")
    occluder_a: Occluder | None = Field(description="the upper image's occluder (None: the "
                                                    "unoccluded base, in catch trials)")
    occluder_b: Occluder | None = Field(description="the lower image's occluder")


def centre_distance(occluder: Mapping[str, Any] | None) -> float:
    """How far the occluder's centre lies from the image centre (px); an unoccluded image
    (None) is infinitely far: the occlusion paper's centre baseline picks the larger."""
    if occluder is None:
        return math.inf
    middle = occluder["side"] / 2
    half = occluder["size"] / 2
    return math.hypot(occluder["y"] + half - middle, occluder["x"] + half - middle)


def covered_variance(occluder: Mapping[str, Any] | None) -> float:
    """The pixel variance the occluder hides; nothing for an unoccluded image (None): the
    paper's variance baseline picks the smaller."""
    return -math.inf if occluder is None else float(occluder["variance"])


# The occlusion paper's simple baselines: each scores an occluder (None: the image is not
# occluded) and picks the image whose occluder scores higher.
BASELINE_RULES: dict[str, Callable[[Mapping[str, Any] | None], float]] = {
    "centre": centre_distance,  # farther from the centre: hides less of the object
    "variance": lambda occluder: -covered_variance(occluder),  # over the calmer patch
}


def baseline_pick(rule: str, occluder_a: Mapping[str, Any] | None,
                  occluder_b: Mapping[str, Any] | None) -> str:
    """The image a baseline rule picks: `a`, `b`, or `tie` when it cannot tell them apart
    (e.g. occluders at mirrored positions)."""
    score = BASELINE_RULES[rule]
    a, b = score(occluder_a), score(occluder_b)
    return "a" if a > b else "b" if a < b else "tie"


def occluder_of(row: dict, side: int) -> Occluder | None:
    """The occluder an occlusion image's row records (None for a natural image)."""
    if row.get("kind") != OCCLUSION_KIND:
        return None
    y, x, size, variance = (float(row[column]) for column in OCCLUDER_COLUMNS)
    return Occluder(y=round(y), x=round(x), size=round(size), side=side, variance=variance)


class Occlusion(ChoiceTask):
    """Which occlusion of the base image leaves the unit's activation higher?"""

    name = "occlusion"
    title = ("Causal occlusion (Zimmermann et al. 2021): which occluded image does the unit "
             "respond to more strongly?")
    Params = OcclusionParams
    Stimulus = OcclusionStimulus
    image_fields = ("references", "base", "query_a", "query_b")
    choice_fields = ("query_a", "query_b")
    page_fields = image_fields  # the occluders' facts are for the analysis' baselines
    page_script = "experiments.tasks.occlusion:page.js"
    lab_screen = "experiments.tasks.occlusion.lab"
    roles = ("reference_max", "query_max", "occluded_max", "occluded_min")
    conditions = ("none", "natural", "synthetic", "mixed", "blurred")
    difficulties = ("easy",)  # the paper's queries: the extreme occlusions
    question = "Which occluded image does the unit respond to more strongly?"
    labels = {"left": "Image without occlusion", "right": "Examples: high"}
    task_page = ("<p>A unit of a neural network responds strongly to some feature of images. "
                 "On the <b>right</b> you see example images it responds to strongly (in some "
                 "conditions none, or blurred ones whose sharp part matters most).</p><p>On the "
                 "<b>left</b> is another image. In the centre are two copies of it, each with a "
                 "grey square covering a different part. Decide for which of the two centre "
                 "images the unit still responds <b>more strongly</b>: the square hides less "
                 "of what the unit looks for.</p>")
    trial_columns = {"base": "string", "query_a": "string", "query_b": "string",
                     "correct_choice": "string", "references": "string",
                     "occluder_a": "string", "occluder_b": "string"}
    response_columns = {"base": "string", "query_a": "string", "query_b": "string",
                        **ChoiceTask.answer_columns,
                        "occluder_a": "string", "occluder_b": "string"}
    factors = ("condition",)
    reference_condition = "none"  # the paper's question: does an explanation help over none?
    comparisons = (("natural", "synthetic"), ("synthetic", "none"), ("natural", "none"),
                   ("mixed", "none"), ("blurred", "none"))
    analysis = "experiments.tasks.occlusion.analysis"

    def make_trial(self, context: TrialContext, unit: UnitInfo, condition: str, difficulty: str,
                   phase: str, key: str, is_catch: bool) -> MadeTrial:
        params: OcclusionParams = context.params
        cell = (condition, difficulty, phase)
        batch = context.next_batch(unit, "natural", cell)
        if is_catch:
            batch = self._safe_catch_batch(context, unit, batch, cell)
        base, natural = self._batch(context, unit, batch)
        references = self._references(context, unit, condition, batch, cell, params, natural)
        # A catch trial: the unoccluded base against the worst occlusion (nothing hidden wins).
        q_max = base if is_catch else self._one(context, unit, OCCLUSION_KIND, "occluded_max",
                                                batch)
        q_min = self._one(context, unit, OCCLUSION_KIND, "occluded_min", batch)
        query_a, query_b = (q_max, q_min) if key == "a" else (q_min, q_max)
        stimulus = OcclusionStimulus(
            references=references, base=base, query_a=query_a, query_b=query_b,
            occluder_a=occluder_of(context.image_row(unit, query_a), context.image_side(unit)),
            occluder_b=occluder_of(context.image_row(unit, query_b), context.image_side(unit)))
        return MadeTrial(stimulus.model_dump(), key, batch)

    @staticmethod
    def _one(context: TrialContext, unit: UnitInfo, kind: str, role: str, batch: int,
             difficulty: str = "") -> str:
        found = context.images(unit, kind, role, batch, difficulty)
        if len(found) != 1:
            raise SpecError(f"unit {unit.unit_id} batch {batch} needs one {kind} {role} image in "
                            f"{context.set_path(unit)} (run `interpsy stimuli occlusion` on it)")
        return found[0]

    @staticmethod
    def _safe_catch_batch(context: TrialContext, unit: UnitInfo, batch: int, cell: tuple) -> int:
        """`batch`, or the unit's next one whose worst occlusion lowers the unit below the
        unoccluded base (`stimuli occlusion` lists the others as `unsafe_catch`)."""
        unsafe = set((context.manifest(unit).get("occlusion") or {}).get("unsafe_catch", []))
        tried = set()
        while f"{unit.unit_id} batch {batch}" in unsafe:
            tried.add(batch)
            batch = context.next_batch(unit, "natural", cell)
            if batch in tried:
                raise SpecError(f"catch unit {unit.unit_id}: in no batch does its worst "
                                f"occlusion lower it below the unoccluded image (unsafe_catch "
                                f"in {context.set_path(unit)}/stimuli.json); choose other "
                                f"[catch] units")
        return batch

    @staticmethod
    def _batch(context: TrialContext, unit: UnitInfo, batch: int) -> tuple[str, list[str]]:
        """The batch's base and natural references, split as `stimuli occlusion` split them."""
        base, natural = occlusion_split(
            context.images(unit, "natural", "reference_max", batch),
            context.images(unit, "natural", "query_max", batch, "easy"))
        if base is None or not natural:
            raise SpecError(f"unit {unit.unit_id} batch {batch} has too few natural images in "
                            f"{context.set_path(unit)}")
        return base, natural

    @staticmethod
    def _references(context: TrialContext, unit: UnitInfo, condition: str, batch: int,
                    cell: tuple, params: OcclusionParams, natural: list[str]) -> list[str]:
        n = params.references
        if condition == "none":
            return []
        if condition == "natural":
            chosen = natural[:n]
        elif condition == "blurred":
            chosen = context.images(unit, OCCLUSION_KIND, "reference_blurred", batch)[:n]
        else:
            synthetic_batch = context.next_batch(unit, "synthetic", cell)
            synthetic = context.images(unit, "synthetic", "reference_max", synthetic_batch)
            k = n if condition == "synthetic" else params.synthetic_in_mixed
            chosen = synthetic[:k] + natural[: n - k]
        if len(chosen) < n:
            raise SpecError(f"[task] references is {n} but unit {unit.unit_id} has only "
                            f"{len(chosen)} {condition} references in batch {batch} of "
                            f"{context.set_path(unit)}")
        return chosen
