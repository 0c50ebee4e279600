"""Task types are registered objects: IMI's 2-AFC built in, a lab's own through the entry point
group `interpsy.tasks`; the spec's `[task]` table is validated by the chosen type."""
from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field

from experiments.cli import main
from experiments.errors import SpecError
from experiments.study.spec import ExperimentSpec, parse_spec
from experiments.tasks import TaskType, get_task, task_types
from experiments.tasks.base import MadeTrial


class YesNoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field("Does the unit respond to this image?", description="asked each trial")


class YesNoAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    says_yes: bool


class YesNoStimulus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str


class YesNo(TaskType):
    """A minimal third paradigm, defined only here: one image, yes or no."""

    name = "yes_no"
    title = "One image: does the unit respond to it?"
    Params = YesNoParams
    Stimulus = YesNoStimulus
    image_fields = ("image",)
    keys = ("yes", "no")
    Answer = YesNoAnswer
    roles = ("query_max", "query_min")
    chance = 0.5
    key_column = "truth"
    question = "Does the unit respond strongly to this image?"
    task_page = "<p>Say whether the unit responds strongly to the image.</p>"
    page_script = "tests.experiments:yes_no.js"  # its page module, shipped with its package
    trial_columns = {"image": "string", "truth": "string"}
    response_columns = {"image": "string", "truth": "string", "says_yes": "boolean",
                        "correct": "bool"}

    def make_trial(self, context, unit, condition, difficulty, phase, key, is_catch):
        batch = context.next_batch(unit, "natural", (condition, difficulty, phase))
        role = "query_max" if key == "yes" else "query_min"
        image = context.images(unit, "natural", role, batch, difficulty)[0]
        return MadeTrial({"image": image}, key, batch)

    def score(self, answer: YesNoAnswer, key: str) -> bool:
        return answer.says_yes == (key == "yes")


class Occluding(YesNo):
    """A type needing an image role the 2-AFC sets do not hold, with no page module."""

    name = "occluding"
    roles = ("query_max", "occluded_max")
    page_script = None


class NotATask:
    """An entry point target that is no task type."""


def test_imis_2afc_is_built_in_and_scores_the_chosen_query():
    task = get_task("imi_2afc")
    assert task.chance == 0.5
    assert set(task.roles) == {"reference_max", "reference_min", "query_max", "query_min"}
    assert task.score(task.Answer(choice="a", confidence=3), "a")
    assert not task.score(task.Answer(choice="b", confidence=1), "a")
    with pytest.raises(SpecError, match="unknown task type 'nope'; registered: categorisation, imi_2afc"):
        get_task("nope")


def test_a_task_type_from_an_installed_package_is_listed_and_validates_its_table(
        registered, capsys):
    registered("tests.experiments.test_tasks:YesNo")
    assert sorted(task_types()) == ["categorisation", "imi_2afc", "imi_3afc", "occlusion", "yes_no"]
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "yes_no  (chance 0.5)  One image: does the unit respond to it?" in out
    assert "question: str = 'Does the unit respond to this image?'  asked each trial" in out
    assert ("analysis: mixed-model factors condition (condition against none); compared per "
            "unit: natural vs synthetic; synthetic vs none") in out  # the occlusion task's
    assert main(["tasks", "--json"]) == 0
    described = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert described["yes_no"]["answer"]["says_yes"]["type"] == "bool"

    spec = parse_spec('name = "x"\nstimulus_sets = ["s"]\n[task]\ntype = "yes_no"\n'
                      'question = "Is this the unit\'s favourite?"')
    assert spec.task.type == "yes_no"
    assert spec.task.params.question == "Is this the unit's favourite?"
    stored = spec.model_dump()  # the store keeps the dump and validates it again
    assert ExperimentSpec.model_validate(stored) == spec
    with pytest.raises(SpecError, match="task: value error, questoin: unknown key"):
        parse_spec('name = "x"\nstimulus_sets = ["s"]\n[task]\ntype = "yes_no"\nquestoin = "?"',
                   "x.toml")


def test_an_entry_point_that_is_no_task_type_or_a_second_name_is_refused(registered):
    registered("tests.experiments.test_tasks:NotATask")
    with pytest.raises(SpecError, match="is not a TaskType"):
        task_types()
    registered("tests.experiments.test_tasks:YesNo", "tests.experiments.test_tasks:YesNo")
    with pytest.raises(SpecError, match="'yes_no' is registered twice"):
        task_types()


def test_a_stimulus_set_lacking_the_roles_a_task_needs_is_refused(registered, toy_set, tmp_path,
                                                                  capsys):
    from tests.stimset import write_spec

    registered("tests.experiments.test_tasks:Occluding")
    spec = write_spec(tmp_path / "spec.toml", [toy_set], task={"type": "occluding"})
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["experiment", "build", str(spec), "--database", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {spec.resolve()}: task type occluding needs images of the roles "
                   f"occluded_max; stimulus set {toy_set} has none")


def test_a_task_type_defined_only_here_runs_through_design_service_api_and_export(
        registered, toy_set, tmp_path, db):
    """The seam is real: a third type, in no package, is built, served, answered and exported."""
    from experiments.study.build import build_experiment
    from experiments.study.export import frames_from_db
    from tests.server.conftest import make_app, start_session
    from tests.stimset import write_spec

    registered("tests.experiments.test_tasks:YesNo")
    spec = write_spec(tmp_path / "yes.toml", [toy_set], name="yes-exp", conditions=["natural"],
                      catch_trials_per_task=0, task={"type": "yes_no"},
                      timing={"button_lock_ms": 0})
    key = build_experiment(spec, db).key
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    assert state["task_type"] == "yes_no"
    first = state["practice"][state["practice_order"][0]]
    assert first["type"] == "yes_no" and set(first["stimulus"]) == {"image"}
    assert "query" not in first["stimulus"]["image"]  # a public id, not the role-naming one
    assert client.get(state["image_base"] + first["stimulus"]["image"]).status_code == 200
    url = f"/api/sessions/{s.session_id}/responses"
    wrong_shape = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": first["trial_id"],
        "answer": {"choice": "a", "confidence": 3}, "rt_ms": 700.0})
    assert wrong_shape.status_code == 400
    assert "answer for task type yes_no: says_yes: Field required" in wrong_shape.json["error"]
    reply = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": first["trial_id"], "answer": {"says_yes": True},
        "rt_ms": 700.0})
    assert reply.status_code == 201 and reply.json["answer_key"] in ("yes", "no")
    assert reply.json["correct"] == (reply.json["answer_key"] == "yes")

    frames = frames_from_db(db, key)
    responses = frames["responses"]
    assert len(responses) == 1
    assert {"image", "truth", "says_yes", "correct"} <= set(responses.columns)
    assert not {"query_a", "choice", "confidence"} & set(responses.columns)
    row = responses.iloc[0]
    assert bool(row.says_yes) and row.truth == reply.json["answer_key"]
    trials = frames["trials"]
    assert set(trials.truth) == {"yes", "no"}  # keys balanced within each block
    assert trials.image.str.contains("query_m").all()
