"""Model-vs-human categorisation in the lab (real PsychoPy under Xvfb): fixation, image and
mask counted in flips at the session's frame rate, the grid answered by the categories' keys,
the measured durations stored with each answer and a trial left unanswered recorded as 'na'."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.db import Database
from experiments.lab.keys import pilot_script
from experiments.lab.session import LabOptions, run_lab
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from tests.lab.conftest import lab_spec
from tests.lab.test_drawing import ARTIFACTS, _keys
from tests.stimset import check_presentation, make_categorisation_set

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def category_set(tmp_path_factory) -> Path:
    return make_categorisation_set(tmp_path_factory.mktemp("cat-lab"), per_category=3, size=48)


def test_a_categorisation_session_in_the_lab(xvfb_display, category_set, tmp_path):
    from experiments.lab.screen import LabScreen

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    spec = lab_spec(tmp_path, category_set, name="cat-lab", conditions=["contrast"],
                    catch_trials_per_task=0, main_trials_per_task=4, responses_per_unit=1,
                    practice={"trials": 2, "min_correct": 0},
                    task={"type": "categorisation", "fixation_ms": 100, "stimulus_ms": 100,
                          "mask_ms": 50, "response_window_ms": 1500})
    key = build_experiment(spec, db).key
    pilot = pilot_script("correct", task_type="categorisation")
    silent_at = {1}  # trial index left unanswered: the response window closes it

    def press(context, payload):
        if context == "trial" and payload.trial_index in silent_at:
            return None
        return pilot(context, payload)

    screen = LabScreen(size=(1024, 768))
    try:
        options = LabOptions(experiment=key, participant="P01", database_url=db.url,
                             data_dir=str(tmp_path / "data"), end_wait_s=0.2,
                             screenshot=str(ARTIFACTS / "categorisation_grid.png"))
        result = run_lab(options, keys=_keys(press), screen=screen)
        assert result.status == "completed"
        assert Path(result.screenshot).is_file()
    finally:
        screen.close()
    responses = frames_from_db(db, key)["responses"].sort_values("trial_index")
    assert len(responses) == 6
    assert responses.choice.iloc[1] == "na" and not responses.correct.iloc[1]
    assert responses.drop(responses.index[1]).correct.all()
    # the durations measured between the flips, and the frames they span
    check_presentation(responses, stimulus_ms=100, mask_ms=50)
    assert (responses.stimulus_ms > 0).all() and (responses.mask_ms >= 0).all()
    with open(result.data_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["choice"] for r in rows][1] == "na"
    assert all(r["stimulus_frames"] for r in rows)


def test_the_lab_keeps_the_main_block_without_feedback_when_asked(xvfb_display, category_set,
                                                                  tmp_path):
    """`main_feedback = false`: the lab shows right or wrong after practice trials only."""
    from experiments.lab.screen import LabScreen

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    spec = lab_spec(tmp_path, category_set, name="cat-quiet", conditions=["contrast"],
                    catch_trials_per_task=0, main_trials_per_task=3, responses_per_unit=1,
                    practice={"trials": 2, "min_correct": 0},
                    timing={"button_lock_ms": 0, "feedback_delay_ms": 0, "feedback_ms": 50,
                            "main_feedback": False, "auto_continue": True},
                    task={"type": "categorisation", "fixation_ms": 30, "stimulus_ms": 30,
                          "mask_ms": 30})
    key = build_experiment(spec, db).key
    pilot = pilot_script("correct", task_type="categorisation")
    waited: list[tuple[str, str]] = []  # (what the runner waited for, the phase then)
    phase = {"now": ""}

    def press(context, payload):
        if context == "trial":
            phase["now"] = payload.phase
        else:
            waited.append((str(payload), phase["now"]))
        return pilot(context, payload)

    screen = LabScreen(size=(800, 600))
    try:
        options = LabOptions(experiment=key, participant="P02", database_url=db.url,
                             data_dir=str(tmp_path / "data"), end_wait_s=0.2)
        assert run_lab(options, keys=_keys(press), screen=screen).status == "completed"
    finally:
        screen.close()
    feedback = [p for what, p in waited if what == "feedback"]
    assert feedback == ["practice", "practice"], waited
