"""The built-in 3-AFC in the lab (real PsychoPy under Xvfb): three query rows with their
buttons and the type's keys (1 2 3 / 4 5 6 / 7 8 9), a whole session piloted by keys, the data
file with the third query's column."""
from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

import pytest

from experiments.db import Database
from experiments.lab.keys import pilot_script
from experiments.lab.layout import trial_layout
from experiments.lab.session import LabOptions, run_lab
from experiments.study.build import build_experiment
from tests.lab.conftest import lab_spec
from tests.lab.test_drawing import ARTIFACTS, _keys
from tests.stimset import make_stimulus_set

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def three_set(tmp_path_factory) -> Path:
    return make_stimulus_set(tmp_path_factory.mktemp("three-lab"), n_batches=3, image_size=48)


@pytest.mark.parametrize("size", [(1024, 768), (1280, 1024), (1920, 1080)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_three_rows_fit_the_screen_without_overlap(size):
    aspect = size[0] / size[1]
    layout = trial_layout(aspect, options=("a", "b", "c"))
    boxes = layout.boxes()
    assert all(box.inside(aspect / 2) for box in boxes)
    assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert [round(layout.queries[o].y, 4) for o in "abc"] == sorted(
        (round(layout.queries[o].y, 4) for o in "abc"), reverse=True)  # a on top


def test_a_3afc_session_in_the_lab(xvfb_display, three_set, tmp_path):
    from experiments.lab.screen import LabScreen

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    spec = lab_spec(tmp_path, three_set, name="three-lab", conditions=["natural"],
                    task={"type": "imi_3afc"})
    key = build_experiment(spec, db).key
    screen = LabScreen(size=(1024, 768))
    try:
        options = LabOptions(experiment=key, participant="P01", database_url=db.url,
                             data_dir=str(tmp_path / "data"), end_wait_s=0.2,
                             screenshot=str(ARTIFACTS / "imi_3afc_trial_screen.png"))
        result = run_lab(options, keys=_keys(pilot_script("correct", task_type="imi_3afc")),
                         screen=screen)
        assert result.status == "completed"
        assert sorted(screen.queries) == ["a", "b", "c"]
        labels = {k: label.text.split()[0] for k, label in screen.labels.items()}
        assert labels[("b", 3)] == "4" and labels[("c", 1)] == "9"
        assert screen.question.text == ("Which image in the centre fits the examples on the "
                                        "right best?")
        assert Path(result.screenshot).is_file()
    finally:
        screen.close()
    with open(result.data_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["correct"] == "True" for r in rows) and len(rows) >= 8
    assert {r["choice"] for r in rows} == {"a", "b", "c"}
    assert all(len({r["query_a"], r["query_b"], r["query_c"]}) == 3 for r in rows)
