"""IMI's 2-AFC (Borowski et al. 2021; Zimmermann et al. 2023): which of two query images fits the
maximally activating references? Its layout knob, `references_per_side`, sits in the spec's
`[task]` table (a spec with it at the top level, as before, still reads)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from experiments.errors import SpecError
from experiments.tasks.base import MadeTrial
from experiments.tasks.choice import ChoiceTask
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.vocabulary import IN_DISTRIBUTION

SYNTHETIC_SHARE_IN_MIXED = 0.5  # mixed: the first half (rounded down) of each side is synthetic


class ImiParams(BaseModel):
    """The `[task]` table of IMI's task (2-AFC and 3-AFC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    references_per_side: int = Field(9, ge=1, description="references shown on each side "
                                                           "(IMI: 9, the 3x3 grids)")


class TwoAfcStimulus(BaseModel):
    """Two queries (a upper, b lower) between the minimally and maximally activating references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_a: str = Field(description="image id of the upper query")
    query_b: str = Field(description="image id of the lower query")
    references_max: list[str] = Field(description="image ids of the maximally activating side")
    references_min: list[str] = Field(description="image ids of the minimally activating side")


def references(context: TrialContext, unit: UnitInfo, condition: str, batch: int, cell: tuple,
               n: int) -> tuple[list[str], list[str]]:
    """The max and min references of a condition: natural from `batch`, synthetic from the
    unit's next synthetic batch, mixed with the synthetic ones first; `n` per side."""
    natural = [context.images(unit, "natural", role, batch)
               for role in ("reference_max", "reference_min")]
    if condition == "natural":
        sides = natural
    elif condition == "none":
        return [], []
    else:
        synthetic_batch = context.next_batch(unit, "synthetic", cell)
        synthetic = [context.images(unit, "synthetic", role, synthetic_batch)
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


class ImiTwoAfc(ChoiceTask):
    """Two queries, the references of both extremes; pick the query that activates more. The
    queries may come from a shifted distribution; the references never do."""

    name = "imi_2afc"
    title = "IMI's 2-AFC: which query image fits the maximally activating references?"
    Params = ImiParams
    Stimulus = TwoAfcStimulus
    image_fields = ("references_min", "references_max", "query_a", "query_b")
    choice_fields = ("query_a", "query_b")
    roles = ("reference_max", "reference_min", "query_max", "query_min")
    shifted_queries = True
    page_script = "experiments.tasks.imi_2afc:page.js"
    lab_screen = "experiments.tasks.imi_2afc.lab"
    question = "Which image in the centre fits the examples on the right better?"
    labels = {"left": "Examples: low", "right": "Examples: high"}
    task_page = ("<p>On each screen you see two groups of example images. The <b>right</b> "
                 "group shows images that strongly activate some feature; the <b>left</b> "
                 "group shows images that do not.</p><p>In the centre are two new images. "
                 "Decide which of the two centre images fits the <b>right</b> group "
                 "better.</p>")
    trial_columns = {"query_a": "string", "query_b": "string", "correct_choice": "string",
                     "references_max": "string", "references_min": "string"}
    response_columns = {"query_a": "string", "query_b": "string",
                        **ChoiceTask.answer_columns}

    def make_trial(self, context: TrialContext, unit: UnitInfo, condition: str, difficulty: str,
                   phase: str, key: str, is_catch: bool,
                   distribution: str = IN_DISTRIBUTION) -> MadeTrial:
        cell = (condition, difficulty, phase)
        batch = context.next_batch(unit, "natural", cell)
        shown = "natural" if is_catch and condition == "none" else condition
        ref_max, ref_min = references(context, unit, shown, batch, cell,
                                      context.params.references_per_side)
        if is_catch:
            # The query is one of the references shown: the answer is obvious.
            q_max = ref_max[int(context.rng.integers(len(ref_max)))]
            q_min = ref_min[int(context.rng.integers(len(ref_min)))]
        else:
            q_max_list = context.images(unit, "natural", "query_max", batch, difficulty,
                                        distribution)
            q_min_list = context.images(unit, "natural", "query_min", batch, difficulty,
                                        distribution)
            if len(q_max_list) != 1 or len(q_min_list) != 1:
                source = "" if distribution == IN_DISTRIBUTION else f" from {distribution}"
                raise SpecError(f"difficulty {difficulty!r}: unit {unit.unit_id} batch {batch} "
                                f"needs one {difficulty} query_max and one query_min{source} "
                                f"in {context.set_path(unit)}")
            q_max, q_min = q_max_list[0], q_min_list[0]
        query_a, query_b = (q_max, q_min) if key == "a" else (q_min, q_max)
        stimulus = TwoAfcStimulus(query_a=query_a, query_b=query_b, references_max=ref_max,
                                  references_min=ref_min)
        return MadeTrial(stimulus.model_dump(), key, batch)
