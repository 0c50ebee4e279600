"""The built-in 3-AFC (experiments/tasks/imi_3afc/, one entry-point line): its trials hold one
max query among two min foils at the balanced answer key, its page gets three option rows and
their keys, simulated participants answer it through the HTTP flow, and the analysis scores it
against a chance of 1/3."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis.load import load_dataset
from analysis.report import run_analysis
from experiments.simulated_participants import HttpParticipant, Observer
from experiments.study.build import build_experiment
from experiments.study.export import export_experiment, frames_from_db
from experiments.study.instructions import plain_text
from experiments.tasks import get_task
from server import lookup
from server.images import public_ids
from tests.server.conftest import LiveServer, make_app, start_session
from tests.stimset import make_stimulus_set, write_spec


@pytest.fixture(scope="module")
def three_set(tmp_path_factory):
    return make_stimulus_set(tmp_path_factory.mktemp("three"), n_units=12, n_batches=3)


def _build(db, tmp_path, three_set, **overrides) -> str:
    spec = write_spec(tmp_path / "three.toml", [three_set], name="three",
                      task={"type": "imi_3afc"}, timing={"button_lock_ms": 0}, **overrides)
    return build_experiment(spec, db).key


def test_a_3afc_trial_holds_the_max_query_at_its_key_among_two_min_foils(db, tmp_path,
                                                                        three_set):
    key = _build(db, tmp_path, three_set)
    frames = frames_from_db(db, key)
    trials = frames["trials"]
    roles = pd.read_csv(three_set / "images.csv").set_index("image_id").role
    main = trials[(trials.phase == "main") & ~trials.is_catch.astype(bool)]
    assert set(main.correct_choice) == {"a", "b", "c"}
    for row in main.itertuples():
        shown = {o: getattr(row, f"query_{o}") for o in "abc"}
        assert len(set(shown.values())) == 3
        assert {o: roles[i] for o, i in shown.items()} == {
            o: "query_max" if o == row.correct_choice else "query_min" for o in "abc"}
    # balanced within each block (catch trials included): each key within one of the others
    block = trials[trials.phase == "main"]
    counts = block.groupby("task_id").correct_choice.value_counts().unstack()
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()


def test_its_page_state_instructions_and_answers(db, tmp_path, three_set):
    key = _build(db, tmp_path, three_set)
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    words = state["words"]
    assert [(o["option"], o["field"], o["keys"]) for o in words["options"]] == [
        ("a", "query_a", ["1", "2", "3"]), ("b", "query_b", ["4", "5", "6"]),
        ("c", "query_c", ["7", "8", "9"])]
    first = state["practice"][state["practice_order"][0]]
    assert len(first["images"]) == 3 + 2 * 9 and first["stimulus"]["query_c"] in first["images"]
    pages = [plain_text(p["text"]) for p in state["instructions"]]
    assert "three new images" in pages[0] and "7 8 9 (bottom image" in pages[1]
    url = f"/api/sessions/{s.session_id}/responses"
    refused = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": first["trial_id"],
        "answer": {"choice": "d", "confidence": 3}, "rt_ms": 700.0})
    assert refused.status_code == 400 and "choice" in refused.json["error"]
    saved = client.post(url, headers=s.headers, json={
        "trial_index": 0, "trial_id": first["trial_id"],
        "answer": {"choice": "c", "confidence": 3}, "rt_ms": 700.0})
    assert saved.status_code == 201
    assert saved.json["correct"] == (saved.json["answer_key"] == "c")


@pytest.mark.slow
def test_simulated_participants_answer_it_and_the_analysis_scores_it_against_a_third(
        db, tmp_path, three_set):
    key = _build(db, tmp_path, three_set, main_trials_per_task=9, responses_per_unit=6,
                 catch_trials_per_task=0)
    public = public_ids(db, lookup.find_experiment(db, key).id)
    images = pd.read_csv(three_set / "images.csv")
    images = images[images.image_id.isin(public)]
    activation = {public[i]: float(r.endswith("max"))
                  for i, r in zip(images.image_id, images.role)}
    unit_of = {public[i]: u for i, u in zip(images.image_id, images.unit_id)}
    server = LiveServer(make_app(db, tmp_path))
    try:
        results = [HttpParticipant(server.url, key, f"P3x{i}", Observer(seed=i, noise_scale=0.4),
                                   activation, {}, unit_of).run() for i in range(4)]
    finally:
        server.stop()
    assert [r["status"] for r in results] == ["completed"] * 4
    export_experiment(db, key, tmp_path / "export")
    dataset = load_dataset(tmp_path / "export")
    main = dataset.responses[dataset.responses.phase == "main"]
    assert set(main.choice) == {"a", "b", "c"} and "query_c" in main.columns
    # simulated sessions last seconds: the time rules would exclude them all
    result = run_analysis(dataset, n_resamples=200, mixed=False, power_sims=20, rules=[])
    assert result.settings["chance"] == pytest.approx(1 / 3)
    assert main.correct.mean() > 0.6  # well above a third
    assert get_task("imi_3afc").chance == pytest.approx(1 / 3)
