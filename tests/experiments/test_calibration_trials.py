"""Calibration trials mixed into a real study (issue 17 item 3): `[calibration]` draws trials
of units with known mechanisms into every task's main block, where nothing tells them apart from
the study's own; they are stored, served, exported and kept out of the study's scores; each
participant gets a control score (and, when the spec asks, an exclusion rule); bad settings are
refused by name."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from analysis import load
from analysis.calibration import control_scores
from analysis.exclusions import apply_exclusions, rules_for
from analysis.scores import main_trials, unit_scores
from experiments.errors import InterpsyError, SpecError
from experiments.sessions import SessionService
from experiments.stimulus_set import load_stimulus_set
from experiments.study.build import build_experiment
from experiments.study.design import design_frame, plan
from experiments.study.export import export_experiment
from experiments.study.spec import load_spec
from experiments.tasks import get_task
from server import lookup
from server.admin_data import progress
from server.api import _trial_json
from server.images import public_ids
from tests.participants import answer
from tests.stimset import make_stimulus_set, write_spec

CALIBRATION = {"stimulus_set": "", "trials": 2}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration-trials")
    return {"study": make_stimulus_set(root, "study", n_units=12, n_batches=3),
            "calibration": make_stimulus_set(root, "calibration", model="calibration-net",
                                             n_units=8, n_batches=3, layers=("detectors",)),
            "not calibration": make_stimulus_set(root, "other", model="othernet", n_units=8)}


def _spec(sets, tmp_path, **calibration):
    values = {**CALIBRATION, "stimulus_set": str(sets["calibration"]), **calibration}
    return write_spec(tmp_path / "spec.toml", [sets["study"]], calibration=values)


def _plan(sets, tmp_path, **calibration):
    loaded = load_spec(_spec(sets, tmp_path, **calibration))
    return plan(loaded.spec, [load_stimulus_set(p) for p in loaded.set_paths],
                calibration=load_stimulus_set(loaded.calibration_path))


def test_every_task_gets_its_calibration_trials_shuffled_into_the_main_block(sets, tmp_path):
    design = _plan(sets, tmp_path)
    frame = design_frame(design)
    main = frame[frame.phase == "main"]
    per_task = main.groupby("task_id").is_calibration.sum()
    assert set(per_task) == {2}
    calibration = main[main.is_calibration]
    assert calibration.unit_id.str.startswith("calibration-net/detectors/").all()
    assert not calibration.is_catch.any()
    assert set(calibration.query_distribution) == {"in"} and set(calibration.difficulty) == {"easy"}
    assert (calibration.condition == calibration.task_id.map(
        main.groupby("task_id").condition.first())).all()  # the task's explanation type
    positions = Counter(calibration.position)
    assert len(positions) > 4  # not always at the same places in the block
    uses = Counter(calibration.unit_id)
    assert max(uses.values()) - min(uses.values()) <= 1  # least used first
    assert {design.unit_roles[u] for u in uses} == {"calibration"}
    # the study's own units and their targets are what they were without calibration trials
    plain = design_frame(plan(load_spec(write_spec(tmp_path / "plain.toml", [sets["study"]])).spec,
                              [load_stimulus_set(sets["study"])]))
    study = main[~main.is_calibration]
    assert Counter(study.unit_id) == Counter(plain[plain.phase == "main"].unit_id)


def test_listed_units_are_the_ones_drawn(sets, tmp_path):
    chosen = ["calibration-net/detectors/0", "calibration-net/detectors/4"]
    frame = design_frame(_plan(sets, tmp_path, units=chosen))
    assert set(frame[frame.is_calibration].unit_id) == set(chosen)


def test_calibration_trials_are_stored_served_like_any_other_and_scored_apart(sets, tmp_path,
                                                                               db):
    spec = _spec(sets, tmp_path, trials=3)
    with open(spec, "a") as file:
        file.write("[exclusions]\nmin_calibration_correct = 2\nmin_total_s = 0\n"
                   "min_instruction_s = 0\nmin_row_uses = 0\n")
    key = build_experiment(spec, db).key
    service = SessionService(db)
    for n in range(6):
        state = service.start(key, f"P-{n}", "link")
        assert {t.is_calibration for t in state.main} == {True, False}
        index = 0
        while state.main_offset is None:
            result = service.record_response(state.session_id, state.token,
                                             answer(state.practice_trial(index), index))
            index += 1
            state.main_offset = result.main_offset
        for i, trial in enumerate(state.main):
            # participant 0 misses every calibration trial and gets the rest right
            right = not (n == 0 and trial.is_calibration)
            service.record_response(state.session_id, state.token,
                                    answer(trial, state.main_offset + i, correct=right))
        service.complete(state.session_id, state.token)
    cells, units = progress(db, lookup.find_experiment(db, key).id)
    assert not [u for u in units if u["unit_id"].startswith("calibration-net")]
    assert sum(c["done"] for c in cells) == 6 * 6  # the study's main trials only
    export_experiment(db, key, tmp_path / "export")
    responses = load(tmp_path / "export")
    assert responses.is_calibration.sum() == 6 * 3
    assert not main_trials(responses).unit_id.str.startswith("calibration-net").any()
    scores = unit_scores(responses)
    assert not scores.unit_id.str.startswith("calibration-net").any()
    controls = control_scores(responses).set_index("participant_id")
    assert controls.loc["P0001", "control_score"] == 0
    assert (controls.drop("P0001").control_score == 1).all()
    assert (controls.n_calibration == 3).all()
    settings = json.loads((tmp_path / "export" / "experiment.json").read_text())
    flags = apply_exclusions(responses, None, rules_for(settings)).participants
    flags = flags.set_index("participant_id")
    assert flags.loc["P0001", "excluded"]
    assert "calibration 0/3 correct" in flags.loc["P0001", "exclusion_reasons"]
    assert not flags.drop("P0001").excluded.any()


def test_the_page_cannot_tell_a_calibration_trial_from_the_studys(sets, tmp_path, db):
    key = build_experiment(_spec(sets, tmp_path), db).key
    state = SessionService(db).start(key, "P-page", "link")
    public = public_ids(db, lookup.find_experiment(db, key).id)
    shapes = {t.is_calibration: _trial_json(t, get_task("imi_2afc"), public) for t in state.main}
    assert shapes[True].keys() == shapes[False].keys()
    assert shapes[True]["stimulus"].keys() == shapes[False]["stimulus"].keys()
    assert "calibration" not in repr(shapes[True])


def test_bad_calibration_settings_are_refused_by_name(sets, tmp_path):
    with pytest.raises(InterpsyError, match=r"calibration.stimulus_set: .*other holds units of "
                                            r"othernet, not the calibration model"):
        _plan(sets, tmp_path, stimulus_set=str(sets["not calibration"]))
    with pytest.raises(SpecError, match=r"calibration.units: 'calibration-net/detectors/99' is "
                                        r"not a unit of the calibration set"):
        _plan(sets, tmp_path, units=["calibration-net/detectors/99"])
    with pytest.raises(SpecError, match=r"calibration.trials is 9 but 8 calibration units"):
        _plan(sets, tmp_path, trials=9)
    with pytest.raises(SpecError, match=r"calibration.trials: input should be greater than or "
                                        r"equal to 1"):
        load_spec(_spec(sets, tmp_path, trials=0))


def test_a_machine_observers_answers_to_calibration_trials_are_marked_and_left_out(
        sets, tmp_path, db):
    """The observers answer the very trials people saw, calibration trials included; their
    rows say which were calibration trials, so the machine's scores leave them out as the
    people's do."""
    from stimuli.observers.run import ObserveOptions, observe
    from stimuli.observers.trials import from_experiment

    key = build_experiment(_spec(sets, tmp_path, trials=2), db).key
    answers = observe(from_experiment(db.url, key), tmp_path / "machine",
                      ObserveOptions(backbone="tiny-cnn", pretrained=False, alpha=5.0),
                      progress=False)
    calibration = answers["unit_id"].str.startswith("calibration-net/")
    assert calibration.any() and (~calibration).any()
    assert (answers["is_calibration"] == calibration).all()
