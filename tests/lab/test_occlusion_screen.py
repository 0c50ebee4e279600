"""The occlusion task in the lab (real PsychoPy under Xvfb): its screen (base image left,
references right, the two occlusions with their buttons), feedback on the right image, abort and
resume, and the data file with the task's own columns."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from experiments.db import Database
from experiments.errors import InterpsyError
from experiments.lab.session import LabOptions, run_lab
from experiments.study.build import build_experiment
from experiments.tasks import get_task
from experiments.tasks.occlusion import Occlusion
from experiments.tasks.occlusion import lab as occlusion_screen
from tests.lab.conftest import lab_spec
from tests.lab.test_drawing import ARTIFACTS, _keys, script
from tests.stimset import make_stimulus_set

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]
TASK = {"type": "occlusion", "references": 9, "synthetic_in_mixed": 5}


@pytest.fixture(scope="module")
def occlusion_set(tmp_path_factory) -> Path:
    return make_stimulus_set(tmp_path_factory.mktemp("occ-lab"), name="occ", occlusion=True,
                             image_size=64)


@pytest.fixture(scope="module")
def screen(xvfb_display):
    from experiments.lab.screen import LabScreen
    lab_screen = LabScreen(size=(1024, 768))
    yield lab_screen
    lab_screen.close()


def test_an_occlusion_session_draws_its_screen_aborts_and_resumes(screen, occlusion_set,
                                                                  tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    spec = lab_spec(tmp_path, occlusion_set, name="occ-lab", conditions=["natural"], task=TASK)
    key = build_experiment(spec, db).key
    shot = ARTIFACTS / "occlusion_trial_screen.png"
    options = LabOptions(experiment=key, participant="P01", database_url=db.url,
                         data_dir=str(tmp_path / "data"), end_wait_s=0.2, screenshot=str(shot))
    first = run_lab(options, keys=_keys(script(abort_at=5)), screen=screen)
    assert first.status == "aborted" and first.next_index == 5
    # the screen of the last trial drawn: the base image over the left grid, no min references
    assert screen.base_shown and all(not stim.opacity for stim in screen.refs["min"])
    assert sum(bool(stim.opacity) for stim in screen.refs["max"]) == 9
    assert screen.question.text == "Which occluded image does the unit respond to more strongly?"
    assert screen.side_labels["left"].text == "Image without occlusion"
    from PIL import Image
    with Image.open(first.screenshot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    left = pixels[:, : pixels.shape[1] // 3]
    assert left.std() > 10, "the left third shows no image"
    second = run_lab(LabOptions(**{**options.__dict__, "screenshot": None}),
                     keys=_keys(script()), screen=screen)
    assert second.status == "completed" and second.next_index == 10
    with open(first.data_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["trial_index"]) for r in rows] == list(range(10))
    assert all(r["base"] and r["query_a"] != r["query_b"] for r in rows)
    assert "references_min" not in rows[0] and rows[0]["correct"] == "False"
    assert all(r["correct"] == "True" for r in rows[1:])  # feedback followed the answer key


class PackagedOcclusion(Occlusion):
    """The occlusion task as another package would register it, naming its lab screen."""

    name = "packaged_occlusion"
    lab_screen = "experiments.tasks.occlusion.lab"


def test_a_type_without_a_lab_screen_is_named(registered):
    registered("tests.experiments.test_tasks:YesNo")
    with pytest.raises(InterpsyError, match="no screen for task type 'yes_no': .*`lab_screen`"):
        get_task("yes_no").lab_module()


def test_a_type_from_another_package_brings_its_lab_screen(registered):
    registered("tests.lab.test_occlusion_screen:PackagedOcclusion")
    assert get_task("packaged_occlusion").lab_module() is occlusion_screen
