"""A three-alternative version of IMI's task: which of three query images fits the maximally
activating references? One maximally activating query (the target) against two minimally
activating foils, the references as in IMI's 2-AFC; chance is 1/3. The foils are the query_min
of the trial's batch and of the unit's next natural batch (a set needs two batches per unit)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from experiments.errors import SpecError
from experiments.tasks.base import MadeTrial
from experiments.tasks.choice import ChoiceTask
from experiments.tasks.context import TrialContext, UnitInfo
from experiments.tasks.imi_2afc import ImiParams, ImiTwoAfc, references


class ThreeAfcStimulus(BaseModel):
    """Three queries (a top, b middle, c bottom) between the min and max references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_a: str = Field(description="image id of the top query")
    query_b: str = Field(description="image id of the middle query")
    query_c: str = Field(description="image id of the bottom query")
    references_max: list[str] = Field(description="image ids of the maximally activating side")
    references_min: list[str] = Field(description="image ids of the minimally activating side")


class ImiThreeAfc(ChoiceTask):
    """Three queries, the references of both extremes; pick the one that activates the unit
    most."""

    name = "imi_3afc"
    title = "IMI's task with three queries: which one fits the maximally activating references?"
    options = ("a", "b", "c")
    Params = ImiParams
    Stimulus = ThreeAfcStimulus
    image_fields = ("references_min", "references_max", "query_a", "query_b", "query_c")
    choice_fields = ("query_a", "query_b", "query_c")
    roles = ImiTwoAfc.roles
    page_script = "experiments.tasks.imi_2afc:page.js"  # IMI's screen draws any number of rows
    lab_screen = "experiments.tasks.imi_3afc.lab"
    question = "Which image in the centre fits the examples on the right best?"
    labels = ImiTwoAfc.labels
    task_page = ("<p>On each screen you see two groups of example images. The <b>right</b> "
                 "group shows images that strongly activate some feature; the <b>left</b> "
                 "group shows images that do not.</p><p>In the centre are three new images. "
                 "Exactly one of them activates the feature strongly. Decide which of the three "
                 "centre images fits the <b>right</b> group best.</p>")
    trial_columns = {"query_a": "string", "query_b": "string", "query_c": "string",
                     "correct_choice": "string", "references_max": "string",
                     "references_min": "string"}
    response_columns = {"query_a": "string", "query_b": "string", "query_c": "string",
                        **ChoiceTask.answer_columns}

    def make_trial(self, context: TrialContext, unit: UnitInfo, condition: str, difficulty: str,
                   phase: str, key: str, is_catch: bool) -> MadeTrial:
        cell = (condition, difficulty, phase)
        batch = context.next_batch(unit, "natural", cell)
        shown = "natural" if is_catch and condition == "none" else condition
        ref_max, ref_min = references(context, unit, shown, batch, cell,
                                      context.params.references_per_side)
        if is_catch:  # the target is one of the references shown: the answer is obvious
            if len(ref_min) < 2:
                raise SpecError("catch trials of imi_3afc show two min references as foils: "
                                "references_per_side must be at least 2")
            target = ref_max[int(context.rng.integers(len(ref_max)))]
            foils = [ref_min[int(i)] for i in context.rng.choice(len(ref_min), 2, replace=False)]
        else:
            target, foils = self._queries(context, unit, batch, difficulty)
        others = iter(foils)
        chosen = {o: target if o == key else next(others) for o in self.options}
        stimulus = ThreeAfcStimulus(**{self.query_field(o): i for o, i in chosen.items()},
                                    references_max=ref_max, references_min=ref_min)
        return MadeTrial(stimulus.model_dump(), key, batch)

    def _queries(self, context: TrialContext, unit: UnitInfo, batch: int, difficulty: str
                 ) -> tuple[str, list[str]]:
        """The batch's query_max and two query_min foils (this batch's and the next batch's)."""
        batches = context.indexes[unit.set_index].batches(unit.unit_id, "natural")
        other = batches[(batches.index(batch) + 1) % len(batches)]
        q_max = context.images(unit, "natural", "query_max", batch, difficulty)
        foils = [i for b in (batch, other)
                 for i in context.images(unit, "natural", "query_min", b, difficulty)]
        if len(q_max) != 1 or other == batch or len(set(foils)) != 2:
            raise SpecError(f"imi_3afc, difficulty {difficulty!r}: unit {unit.unit_id} needs "
                            f"one {difficulty} query_max per batch and query_min images in two "
                            f"batches in {context.set_path(unit)}")
        return q_max[0], foils
