"""The occlusion task type end to end: the spec's vocabulary, the trials per condition, catch
trials, serving, answers, export and the report's baselines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.errors import SpecError
from experiments.stimulus_set import load_stimulus_set
from experiments.study.build import build_experiment
from experiments.study.design import design_frame, plan
from experiments.study.export import frames_from_db
from experiments.study.spec import load_spec, parse_spec
from tests.server.conftest import make_app, start_session
from tests.stimset import make_stimulus_set, write_spec

CONDITIONS = ["none", "natural", "synthetic", "mixed", "blurred"]
TASK = {"type": "occlusion", "references": 3, "synthetic_in_mixed": 2}


@pytest.fixture(scope="module")
def occlusion_set(tmp_path_factory) -> Path:
    """A set with the occlusion task's images as `stimuli occlusion` writes them (the images
    themselves come from a real model in tests/stimuli/test_occlusion.py)."""
    return make_stimulus_set(tmp_path_factory.mktemp("occlusion-task"), name="occ", n_units=8,
                             occlusion=True)


def _spec(tmp_path: Path, occlusion_set: Path, **overrides) -> Path:
    values = dict(name="occ-exp", conditions=CONDITIONS, main_trials_per_task=4,
                  catch_trials_per_task=1, responses_per_unit=1,
                  fv_must_beat_natural=False, task=TASK, practice={"trials": 1})
    values.update(overrides)
    return write_spec(tmp_path / "occ.toml", [occlusion_set], **values)


def test_the_spec_takes_the_occlusion_vocabulary(tmp_path):
    base = 'name = "x"\nstimulus_sets = ["s"]\n'
    spec = parse_spec(base + 'conditions = ["none", "blurred"]\n[task]\ntype = "occlusion"\n')
    assert spec.conditions == ["none", "blurred"] and spec.task.params.references == 9
    with pytest.raises(SpecError, match="'blurred' is not a condition of task type imi_2afc"):
        parse_spec(base + 'conditions = ["blurred"]\n', "x.toml")
    with pytest.raises(SpecError, match="'p95' is not a difficulty of task type occlusion; "
                                        "use easy"):
        parse_spec(base + 'difficulty = "p95"\n[task]\ntype = "occlusion"\n', "x.toml")
    with pytest.raises(SpecError, match="synthetic_in_mixed \\(6\\) exceeds references \\(4\\)"):
        parse_spec(base + '[task]\ntype = "occlusion"\nreferences = 4\nsynthetic_in_mixed = 6\n')


def test_trials_show_each_conditions_references_and_the_extreme_occlusions(tmp_path,
                                                                           occlusion_set):
    loaded = load_spec(_spec(tmp_path, occlusion_set))
    stimulus_set = load_stimulus_set(occlusion_set)
    images = stimulus_set.images.set_index("image_id")
    frame = design_frame(plan(loaded.spec, [stimulus_set]))
    assert set(frame.condition) == set(CONDITIONS)
    for row in frame.itertuples():
        refs = row.references
        kinds = [images.loc[i, "kind"] for i in refs]
        roles = [images.loc[i, "role"] for i in refs]
        expected = {"none": [], "natural": ["natural"] * 3, "synthetic": ["synthetic"] * 3,
                    "mixed": ["synthetic"] * 2 + ["natural"], "blurred": ["occlusion"] * 3}
        assert kinds == expected[row.condition], row.condition
        assert set(roles) <= {"reference_max", "reference_blurred"}
        base = images.loc[row.base]
        assert (base.kind, base.role, base["rank"]) == ("natural", "reference_max", 0)
        assert row.base not in refs  # the batch's top image is occluded, its other nine shown
        right = row.query_a if row.answer_key == "a" else row.query_b
        wrong = row.query_b if row.answer_key == "a" else row.query_a
        assert images.loc[wrong, "role"] == "occluded_min"
        assert (right == row.base) if row.is_catch else \
            (images.loc[right, "role"] == "occluded_max")
        assert images.loc[right, "batch"] == base.batch == images.loc[wrong, "batch"]
        assert images.loc[right, "activation"] > images.loc[wrong, "activation"]


def test_an_occlusion_study_is_served_answered_and_exported(tmp_path, occlusion_set, db):
    key = build_experiment(_spec(tmp_path, occlusion_set), db).key
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    url = f"/api/sessions/{s.session_id}"
    state = client.get(url, headers=s.headers).json
    assert state["task_type"] == "occlusion" and "occluded" in state["words"]["question"]
    assert state["words"]["labels"]["left"] == "Image without occlusion"
    step = state["next"]
    while step is not None:
        trial = state[step["phase"]][step["position"]]
        # the page gets the images only (the occluders' facts are the analysis' baselines)
        assert set(trial["stimulus"]) == {"references", "base", "query_a", "query_b"}
        reply = client.post(f"{url}/responses", headers=s.headers, json={
            "trial_index": step["trial_index"], "trial_id": trial["trial_id"],
            "answer": {"choice": "a", "confidence": 2}, "rt_ms": 900.0})
        assert reply.status_code == 201, reply.json
        step = reply.json["next_step"]
    assert client.post(f"{url}/complete", headers=s.headers, json={}).status_code == 200
    frames = frames_from_db(db, key)
    responses = frames["responses"]
    assert {"base", "query_a", "query_b", "correct_choice", "choice", "confidence"} <= set(
        responses.columns)
    assert "references_min" not in responses.columns
    assert (responses.correct == (responses.choice == responses.correct_choice)).all()
    trials = frames["trials"]
    shown = trials.references.map(json.loads).map(len)
    expected = trials.condition.map(lambda c: 0 if c == "none" else TASK["references"])
    assert (shown == expected).all()
    occluded = responses[~responses.is_catch]
    assert occluded.occluder_a.notna().all() and occluded.occluder_b.notna().all()
    assert set(json.loads(occluded.occluder_a.iloc[0])) == {"y", "x", "size", "side", "variance"}

    from analysis.load import load_dataset
    from analysis.report import analyze
    from experiments.study.export import export_experiment

    export_experiment(db, key, tmp_path / "export")
    dataset = load_dataset(tmp_path / "export")
    assert "occluder_a" in dataset.responses.columns
    # one participant who always answered `a`: no exclusion rules, or nothing is left
    result = analyze(dataset, tmp_path / "report", n_resamples=200, mixed=False, power_sims=10,
                     rules=[])
    baselines = result.tables["occlusion_baselines"]
    scored = responses[(responses.phase == "main") & ~responses.is_catch]
    assert baselines.set_index("condition").loc["all", "n_trials"] == len(scored)
    report = (tmp_path / "report" / "report.html").read_text()
    assert "Occlusion task: baselines and published results" in report
    assert "occlusion_published" in report and "synthetic vs none" in report
    published = result.tables["occlusion_published"].set_index("condition")
    assert published.loc["none", "published"] == 0.60
    assert result.settings["task_type"] == "occlusion"


def test_a_set_without_occlusion_images_is_refused_by_name(tmp_path, toy_set, capsys):
    spec = write_spec(tmp_path / "bad.toml", [toy_set], conditions=["natural"], task=TASK)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["experiment", "build", str(spec), "--database", url]) == 2
    err = capsys.readouterr().err
    assert "task type occlusion needs images of the roles occluded_max, occluded_min; " \
           f"stimulus set {toy_set} has none" in err


def test_catch_trials_avoid_batches_whose_catch_answer_would_be_false(tmp_path):
    """A batch where the worst occlusion does not lower the unit below the unoccluded base
    (`unsafe_catch`) never serves a catch trial; a unit with no other batch is refused."""
    folder = make_stimulus_set(tmp_path / "sets", name="unsafe", n_units=8, n_batches=2,
                               occlusion=True)
    manifest_path = folder / "stimuli.json"
    manifest = json.loads(manifest_path.read_text())
    catch_unit = "toynet/conv1/0"
    manifest["occlusion"] = {"unsafe_catch": [f"{catch_unit} batch 0"]}
    manifest_path.write_text(json.dumps(manifest))
    spec = load_spec(write_spec(tmp_path / "u.toml", [folder], name="u", conditions=["natural"],
                                main_trials_per_task=4, catch_trials_per_task=1,
                                responses_per_unit=4, fv_must_beat_natural=False, task=TASK,
                                practice={"trials": 1}, catch={"units": [catch_unit]})).spec
    frame = design_frame(plan(spec, [load_stimulus_set(folder)]))
    catch = frame[frame.is_catch]
    assert len(catch) > 1 and set(catch.batch) == {1}
    manifest["occlusion"]["unsafe_catch"].append(f"{catch_unit} batch 1")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(SpecError, match=f"catch unit {catch_unit}: in no batch"):
        plan(spec, [load_stimulus_set(folder)])
