"""Task types are registered objects: IMI's 2-AFC built in, a lab's own through the entry point
group `interpsy.tasks`; the spec's `[task]` table is validated by the chosen type."""
from __future__ import annotations

import json
from importlib import metadata

import pytest
from pydantic import BaseModel, ConfigDict, Field

from experiments.cli import main
from experiments.errors import SpecError
from experiments.spec import ExperimentSpec, parse_spec
from experiments.tasks import ENTRY_POINT_GROUP, TaskType, get_task, task_types


class YesNoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field("Does the unit respond to this image?", description="asked each trial")


class YesNoAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    says_yes: bool


class YesNo(TaskType):
    """A minimal third paradigm, defined only here: one image, yes or no."""

    name = "yes_no"
    title = "One image: does the unit respond to it?"
    Params = YesNoParams
    Answer = YesNoAnswer
    roles = ("query_max", "query_min")
    chance = 0.5

    def score(self, answer: YesNoAnswer, key: str) -> bool:
        return answer.says_yes == (key == "yes")


class Occluding(YesNo):
    """A type needing an image role the 2-AFC sets do not hold."""

    name = "occluding"
    roles = ("query_max", "occluded_max")


class NotATask:
    """An entry point target that is no task type."""


@pytest.fixture
def registered(monkeypatch):
    """Install entry points as an installed package would, for one test."""

    def install(*values: str) -> None:
        points = [metadata.EntryPoint(name=v.rpartition(":")[2], value=v, group=ENTRY_POINT_GROUP)
                  for v in values]
        monkeypatch.setattr(metadata, "entry_points",
                            lambda group=None: points if group == ENTRY_POINT_GROUP else [])
        task_types.cache_clear()

    yield install
    task_types.cache_clear()


def test_imis_2afc_is_built_in_and_scores_the_chosen_query():
    task = get_task("imi_2afc")
    assert task.chance == 0.5
    assert set(task.roles) == {"reference_max", "reference_min", "query_max", "query_min"}
    assert task.score(task.Answer(choice="a", confidence=3), "a")
    assert not task.score(task.Answer(choice="b", confidence=1), "a")
    with pytest.raises(SpecError, match="unknown task type 'nope'; registered: imi_2afc"):
        get_task("nope")


def test_a_task_type_from_an_installed_package_is_listed_and_validates_its_table(
        registered, capsys):
    registered("tests.experiments.test_tasks:YesNo")
    assert sorted(task_types()) == ["imi_2afc", "yes_no"]
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "yes_no  (chance 0.5)  One image: does the unit respond to it?" in out
    assert "question: str = 'Does the unit respond to this image?'  asked each trial" in out
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
