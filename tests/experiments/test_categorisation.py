"""The categorisation task type (experiments/tasks/categorisation/): trials from a
categorisation set (each image at its fixed level, the key its category, catch trials at the
mildest level), the page state without the answer, answers checked against the trial's
categories, and the measured presentation stored with its timing flag."""
from __future__ import annotations

import pandas as pd
import pytest

from experiments.errors import SpecError
from experiments.stimulus_set import load_stimulus_set
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from experiments.study.spec import parse_spec
from experiments.tasks.categorisation import timing_flag
from tests.server.conftest import make_app, start_session
from tests.stimset import CATEGORY_LEVELS, CATEGORY_PHOTOS, make_categorisation_set, write_spec

CATEGORIES = tuple(CATEGORY_PHOTOS)
LEVELS = CATEGORY_LEVELS["contrast"]


@pytest.fixture(scope="module")
def category_set(tmp_path_factory):
    return make_categorisation_set(tmp_path_factory.mktemp("categories"))


def _build(db, tmp_path, category_set, **task) -> str:
    spec = write_spec(tmp_path / "cat.toml", [category_set], name="cat", conditions=["contrast"],
                      main_trials_per_task=12, catch_trials_per_task=2, responses_per_unit=2,
                      task={"type": "categorisation", **task}, timing={"button_lock_ms": 0})
    return build_experiment(spec, db).key


def test_each_image_is_shown_at_its_fixed_level_and_its_category_is_the_key(db, tmp_path,
                                                                            category_set):
    key = _build(db, tmp_path, category_set)
    trials = frames_from_db(db, key)["trials"]
    images = load_stimulus_set(category_set).images.set_index("image_id")
    assert set(trials.distortion) == {"contrast"}
    assert (trials.category == trials.unit_id.str.split("/").str[1]).all()
    assert (trials.image.map(images.category) == trials.category).all()
    assert (trials.image.map(images.level) == trials.level).all()
    assert (trials["mask"].map(images.role) == "mask").all()
    main = trials[(trials.phase == "main") & ~trials.is_catch.astype(bool)]
    # one level per image, the same in every task, and each category spread over the levels
    assert (main.groupby("unit_id")["level"].nunique() == 1).all()
    number = main.unit_id.str.split("/").str[2].astype(int)
    ordered = sorted(CATEGORIES)  # the set lists its category folders by name
    place = main.category.map({c: ordered.index(c) for c in CATEGORIES})
    assert (main.level == [LEVELS[(n + p) % 4] for n, p in zip(number, place, strict=True)]).all()
    catch = trials[trials.is_catch.astype(bool)]
    assert len(catch) and set(catch.level) == {"c100"}  # the mildest level


def test_the_page_gets_the_presentation_but_not_the_answer(db, tmp_path, category_set):
    key = _build(db, tmp_path, category_set, stimulus_ms=150, response_window_ms=2000)
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    trial = state["practice"][state["practice_order"][0]]
    assert set(trial["stimulus"]) == {"image", "mask", "categories", "fixation_ms",
                                      "stimulus_ms", "mask_ms", "response_window_ms"}
    assert trial["stimulus"]["categories"] == sorted(CATEGORIES)
    assert (trial["stimulus"]["stimulus_ms"], trial["stimulus"]["response_window_ms"]) == (150, 2000)
    assert not any(c in i for i in trial["images"] for c in CATEGORIES)  # public ids
    assert state["words"]["no_response"] == "na"

    url = f"/api/sessions/{s.session_id}/responses"
    shown = {"stimulus_frames": 9, "mask_frames": 12, "stimulus_ms": 150.2, "mask_ms": 199.9,
             "frame_ms": 16.67}
    refused = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "answer": {"choice": "dog", **shown},
        "rt_ms": 700.0})
    assert refused.status_code == 400
    assert "'dog' is not one of this trial's categories (cat, cup, moon, rocket)" in \
        refused.json["error"]
    missing = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "answer": {"choice": "cat"},
        "rt_ms": 700.0})
    assert missing.status_code == 400 and "stimulus_frames" in missing.json["error"]
    saved = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "answer": {"choice": "na", **shown},
        "rt_ms": 2000.0})
    assert saved.status_code == 201 and saved.json["correct"] is False
    second = state["practice"][state["practice_order"][1]]
    late = {**shown, "stimulus_ms": 183.4}  # two frames long
    client.post(url, headers=s.headers, json={
        "trial_index": 1, "trial_id": second["trial_id"], "answer": {"choice": "cup", **late},
        "rt_ms": 640.0})
    responses = frames_from_db(db, key)["responses"].sort_values("trial_index")
    assert list(responses.choice) == ["na", "cup"]
    assert list(responses.stimulus_frames) == [9, 9]
    assert pd.isna(responses.timing_flag.iloc[0])
    assert responses.timing_flag.iloc[1] == "stimulus_ms 183.4 planned 150"


def test_a_frame_or_more_off_the_plan_is_flagged():
    planned = {"stimulus_ms": 200, "mask_ms": 200}
    on_time = {"stimulus_ms": 208.0, "mask_ms": 191.7, "frame_ms": 16.7}
    assert timing_flag(planned, on_time) is None
    assert timing_flag(planned, {**on_time, "mask_ms": 216.7}) == "mask_ms 216.7 planned 200"


@pytest.mark.parametrize("task, message", [
    ({"categories": ["cat"]}, "at least 2 categories, got 1"),
    ({"categories": ["cat", "na"]}, "marks a missing answer"),
])
def test_bad_category_lists_are_refused(task, message):
    toml = ('name = "c"\nversion = "1"\nconditions = ["contrast"]\nstimulus_sets = ["x"]\n'
            '[task]\ntype = "categorisation"\n' + "\n".join(
                f"{k} = {v!r}".replace("'", '"') for k, v in task.items()))
    with pytest.raises(SpecError, match=message):
        parse_spec(toml)


def test_a_condition_the_set_lacks_and_a_category_off_the_grid_are_refused(db, tmp_path,
                                                                           category_set):
    with pytest.raises(SpecError, match="has no low-pass images \\(it has: contrast, rotation\\)"):
        build_experiment(write_spec(tmp_path / "x.toml", [category_set], name="x",
                                    conditions=["low-pass"], main_trials_per_task=4,
                                    task={"type": "categorisation"}), db)
    with pytest.raises(SpecError, match="does not list 'moon'"):
        _build(db, tmp_path, category_set, categories=["cat", "cup", "rocket"])


def _answer_session(client, key: str, truth: dict[int, str], right) -> None:
    """One participant through the API: practice right, main trials right where `right(trial
    index, trial id)` says, else the next category."""
    s = start_session(client, key)
    base = f"/api/sessions/{s.session_id}"
    state = client.get(base, headers=s.headers).json
    step = state["next"]
    while step is not None:
        trial = state[step["phase"]][step["position"]]
        categories = trial["stimulus"]["categories"]
        correct = truth[trial["trial_id"]]
        wrong = categories[(categories.index(correct) + 1) % len(categories)]
        choice = (correct if step["phase"] == "practice" or right(step["trial_index"],
                                                                    trial["trial_id"]) else wrong)
        reply = client.post(f"{base}/responses", headers=s.headers, json={
            "trial_index": step["trial_index"], "trial_id": trial["trial_id"],
            "answer": {"choice": choice, "stimulus_frames": 12, "mask_frames": 12,
                       "stimulus_ms": 200.1, "mask_ms": 199.8, "frame_ms": 16.68},
            "rt_ms": 650.0})
        assert reply.status_code == 201, reply.json
        step = reply.json["next_step"]
    client.post(f"{base}/complete", headers=s.headers, json={"feedback": ""})


def test_an_exported_study_gets_the_categorisation_report(db, tmp_path, category_set):
    from sqlalchemy import select

    from experiments.cli import main
    from experiments.db.models import Trial
    from experiments.study.export import export_experiment
    from tests.server.conftest import answer_key

    spec = write_spec(tmp_path / "both.toml", [category_set], name="both",
                      conditions=["contrast"], main_trials_per_task=20, catch_trials_per_task=2,
                      responses_per_unit=3, task={"type": "categorisation"},
                      timing={"button_lock_ms": 0},
                      exclusions={"min_total_s": 0.0, "min_instruction_s": 0.0,
                                  "min_catch_correct": 2})
    key = build_experiment(spec, db).key
    client = make_app(db, tmp_path).test_client()
    truth = answer_key(db)
    with db.read() as session:
        catch = set(session.scalars(select(Trial.id).where(Trial.is_catch.is_(True))))
    _answer_session(client, key, truth, lambda index, trial: True)
    _answer_session(client, key, truth, lambda index, trial: index % 2 == 0 or trial in catch)
    _answer_session(client, key, truth, lambda index, trial: False)  # the catch trials too
    export_experiment(db, key, tmp_path / "export")
    assert main(["analyze", str(tmp_path / "export"), "--out", str(tmp_path / "report")]) == 0
    flags = pd.read_csv(tmp_path / "report" / "tables" / "participant_flags.csv")
    assert flags.excluded.tolist() == [False, False, True]
    assert "catch_trials" in flags.exclusion_reasons.iloc[2]
    accuracy = pd.read_csv(tmp_path / "report" / "tables" / "accuracy.csv", dtype={"condition": str})
    assert set(accuracy.dataset) == {"contrast"} and set(accuracy.condition) == set(LEVELS)
    assert len(accuracy) == 2 * len(LEVELS) and (accuracy.groupby("observer").n.sum() == 20).all()
    assert sorted(accuracy.groupby("observer").n_correct.sum()) == [10, 20]
    pairs = pd.read_csv(tmp_path / "report" / "tables" / "error_consistency.csv",
                        dtype={"condition": str})
    # both saw the same 20 images at the same levels
    per_level = accuracy.drop_duplicates("condition").set_index("condition").n
    assert len(pairs) == len(LEVELS) and (pairs.n == pairs.condition.map(per_level)).all()
    assert (pairs.pair == "human-human").all()
    assert "Error consistency" in (tmp_path / "report" / "report.html").read_text()


def test_simulated_participants_categorise_through_the_http_flow(db, tmp_path, category_set):
    """Attentive simulated people are right on most mild images and near chance on the
    hardest; sharing how easy each image is, their errors agree beyond chance."""
    from experiments.demo.study import categorisation_knowledge
    from experiments.simulated_participants import HttpParticipant, Observer
    from experiments.study.export import export_experiment
    from server import lookup
    from server.images import public_ids
    from tests.server.conftest import LiveServer

    spec = write_spec(tmp_path / "sim.toml", [category_set], name="sim", conditions=["contrast"],
                      main_trials_per_task=20, catch_trials_per_task=2, responses_per_unit=6,
                      practice={"trials": 2, "min_correct": 0},
                      task={"type": "categorisation"}, timing={"button_lock_ms": 0})
    key = build_experiment(spec, db).key
    truth = categorisation_knowledge(category_set, public_ids(db, lookup.find_experiment(db, key).id))
    server = LiveServer(make_app(db, tmp_path))
    try:
        results = [HttpParticipant(server.url, key, f"C{i}", Observer(seed=i), {}, {}, {},
                                   categories=truth).run() for i in range(6)]
    finally:
        server.stop()
    assert [r["status"] for r in results] == ["completed"] * 6
    export_experiment(db, key, tmp_path / "export")
    from analysis.categorisation import run_categorisation
    from analysis.load import load_dataset

    responses = load_dataset(tmp_path / "export").responses
    main = responses[(responses.phase == "main") & ~responses.is_catch]
    by_level = main.groupby("level").correct.mean()
    # about 0.83 and 0.36 (about 30 trials each: standard errors near 0.08)
    assert by_level["c100"] > 0.55 and by_level["c100"] - by_level["c05"] > 0.2, by_level
    assert main.timing_flag.isna().all() and (main.stimulus_frames == 12).all()
    tables = run_categorisation(responses, chance=0.25).tables
    assert set(tables["error_consistency"].pair) == {"human-human"}


def test_simulated_people_share_how_easy_each_image_is():
    """Errors of two simulated people agree beyond chance (error consistency above 0): each
    image's ease is the same for both; careless ones answer at random."""
    import numpy as np

    from analysis.consistency import error_consistency
    from experiments.simulated_participants import Observer

    images = [f"img{i}" for i in range(600)]
    truth = {i: ("cat", 0.5) for i in images}
    people = {name: Observer(seed=seed, careless=name == "careless")
              for seed, name in enumerate(("a", "b", "careless"))}
    trials = pd.DataFrame([
        {"dataset": "d", "observer": name, "kind": "human", "condition": "x", "image": image,
         "correct": person.categorise({"stimulus": {"image": image, "categories": [
             "cat", "dog", "car", "boat"]}}, truth) == "cat"}
        for name, person in people.items() for image in images])
    pairs = error_consistency(trials).set_index(["observer_a", "observer_b"]).error_consistency
    assert pairs[("a", "b")] > 0.1
    assert abs(pairs[("a", "careless")]) < 0.1
    assert np.isclose(trials[trials.observer == "careless"].correct.mean(), 0.25, atol=0.06)
