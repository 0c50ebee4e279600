"""Machine observers (issue 16): the MIS rule against a hand-computed case and planted
similarities, alpha's fit, `interpsy observe` on a built experiment (exactly its trials) and on a
stimulus set (N per unit, cached embeddings), and the errors a user can run into."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import load_dataset
from experiments.cli import main
from experiments.db import Database
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from experiments.tasks import get_task
from stimuli.errors import StimuliError
from stimuli.observers.observers import get_observer
from stimuli.observers.rules import fit_alpha, mis_delta, p_choose
from stimuli.observers.trials import from_set
from tests.stimset import make_stimulus_set, write_spec


def _unit(*xy: float) -> np.ndarray:
    v = np.array(xy, dtype=float)
    return v / np.linalg.norm(v)


def test_the_mis_rule_matches_a_hand_computed_case():
    q_pos, q_neg = _unit(1, 0), _unit(0, 1)
    e_pos = np.stack([_unit(1, 0), _unit(1, 1)])  # similarities to q+: 1, .7071; to q-: 0, .7071
    e_neg = np.stack([_unit(0, 1)])  # to q+: 0; to q-: 1
    # [(1 + .7071)/2 - 0] - [(0 + .7071)/2 - 1] = .85355 + .64645 = 1.5
    assert mis_delta(q_pos, q_neg, e_pos, e_neg) == pytest.approx(1.5)
    assert p_choose(1.5, 0.16) == pytest.approx(1 / (1 + np.exp(-0.24)))
    assert p_choose(1.5, None) == 1.0 and p_choose(-0.1, None) == 0.0
    assert p_choose(0.0, None) == 0.5


def test_alpha_is_recovered_from_answers_it_generated():
    rng = np.random.default_rng(0)
    delta = rng.normal(0, 0.3, 20_000)
    correct = rng.random(delta.size) < 1 / (1 + np.exp(-4.0 * delta))
    assert fit_alpha(delta, correct) == pytest.approx(4.0, rel=0.08)
    with pytest.raises(ValueError, match="no trials with a non-zero"):
        fit_alpha(np.zeros(3), np.ones(3))


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    return make_stimulus_set(tmp_path_factory.mktemp("observe"), n_units=12, n_batches=3)


def _planted(toy_set, shuffle: bool, seed: int = 1) -> dict[str, np.ndarray]:
    """Max-side images near one direction, min-side ones near another (or all shuffled)."""
    images = pd.read_csv(toy_set / "images.csv")
    rng = np.random.default_rng(seed)
    out = {}
    for row in images.itertuples():
        side = _unit(1, 0, 0) if row.role.endswith("max") else _unit(0, 1, 0)
        vector = side + rng.normal(0, 0.2, 3)
        out[row.image_id] = vector / np.linalg.norm(vector)
    if shuffle:
        keys = list(out)
        out = dict(zip(keys, [out[k] for k in rng.permutation(keys)]))
    return out


def test_a_planted_similarity_scores_near_one_and_a_shuffled_one_near_chance(toy_set):
    source = from_set(toy_set, trials_per_unit=20, seed=3, conditions=("natural", "synthetic"))
    assert len(source.trials) == 12 * 20 * 2
    trials = [observed.trial for observed in source.trials]
    assert {t.answer_key for t in trials} == {"a", "b"}
    observer, task = get_observer("mis"), get_task("imi_2afc")
    rng = np.random.default_rng(0)
    def mis(embeddings: dict) -> float:
        answers = [observer.answer(task, t.stimulus, t.answer_key, embeddings, None, rng)
                   for t in trials]
        assert all(a.correct == (a.answer["choice"] == t.answer_key)
                   for a, t in zip(answers, trials))
        return float(np.mean([a.p_correct for a in answers]))

    assert mis(_planted(toy_set, shuffle=False)) >= 0.97
    # the 480 trials show 72 distinct image sets: average over shuffles for a tight check
    shuffled = [mis(_planted(toy_set, shuffle=True, seed=seed)) for seed in range(20)]
    assert 0.44 <= np.mean(shuffled) <= 0.56


def test_observe_answers_exactly_the_trials_of_a_built_experiment(toy_set, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    db.upgrade()
    key = build_experiment(write_spec(tmp_path / "e.toml", [toy_set], name="obs-exp"), db).key
    trials = frames_from_db(db, key)["trials"]
    db.dispose()
    out = tmp_path / "machine"
    assert main(["observe", key, "--database", url, "--observer", "mis", "--backbone",
                 "tiny-cnn", "--random-init", "--alpha", "none", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    dataset = load_dataset(out)
    machine = dataset.responses
    # one mean p_correct, printed and recorded alike, over the scored trials it names
    record = json.loads((out / "observer.json").read_text())
    scored = machine[(machine.phase == "main") & ~machine.is_catch]
    assert record["mean_p_correct"] == pytest.approx(scored.p_correct.mean())
    assert record["scored_trials"] == len(scored) < len(machine)
    assert "catch" in record["mean_p_correct_scope"]
    assert (f"mean p_correct {record['mean_p_correct']:.3f} over {len(scored)} "
            f"{record['mean_p_correct_scope']}") in printed
    assert len(machine) == len(trials)  # every trial of every task, once
    assert set(zip(machine.task_id, machine.query_a, machine.query_b)) == set(
        zip(trials.task_id, trials.query_a, trials.query_b))
    assert (machine.client == "machine").all() and (machine.observer == "mis").all()
    assert (machine.backbone == "model:tiny-cnn:random-init").all()
    assert set(machine.p_correct.unique()) <= {0.0, 0.5, 1.0}
    assert (machine.correct == (machine.choice == machine.correct_choice)).all()
    assert dataset.settings[0]["experiment"] == key


def test_observe_on_a_set_caches_embeddings_and_resumes_from_them(toy_set, tmp_path,
                                                                  monkeypatch):
    from stimuli.observers import backbones
    from stimuli.observers.run import ObserveOptions, observe, observer_record

    options = ObserveOptions(backbone="tiny-cnn", pretrained=False, alpha=5.0, seed=2)
    source = from_set(toy_set, trials_per_unit=4, seed=2)
    first = observe(source, tmp_path / "one", options, progress=False)
    assert len(first) == 12 * 4 and first.p_correct.between(0, 1).all()
    assert list((toy_set / "_embeddings").glob("model-tiny-cnn-random-init-*.npz"))

    def refuse(self, images):
        raise AssertionError("embedded again instead of reading the cache")

    monkeypatch.setattr(backbones.ModelBackbone, "features", refuse)
    again = observe(source, tmp_path / "two", options, progress=False)
    pd.testing.assert_series_equal(first.p_correct, again.p_correct)
    record = observer_record(tmp_path / "two")
    assert record["alpha"] == 5.0 and record["backbone"]["pretrained"] is False


def test_what_a_user_can_get_wrong_is_named(toy_set, tmp_path, monkeypatch, capsys):
    from stimuli.observers.run import ObserveOptions, observe

    source = from_set(toy_set, trials_per_unit=2)
    with pytest.raises(StimuliError, match="unknown observer 'mys'; known: mis, classifier, centre"):
        observe(source, tmp_path / "x", ObserveOptions(observer="mys"))
    with pytest.raises(StimuliError, match=r"observer centre cannot answer toy@observed: task "
                       r"type imi_2afc's trials hold none of the fields it reads "
                       r"\(occluder_a\+occluder_b\)"):
        observe(source, tmp_path / "x", ObserveOptions(observer="centre"))
    with pytest.raises(StimuliError, match="no alpha is published for backbone "
                                           "model:tiny-cnn:random-init"):
        observe(source, tmp_path / "x", ObserveOptions(backbone="tiny-cnn", pretrained=False),
                progress=False)
    monkeypatch.setenv("INTERPSY_DREAMSIM_CACHE", str(tmp_path / "nothing"))
    assert main(["observe", str(toy_set), "--backbone", "dreamsim", "--out",
                 str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert (f"DreamSim (ensemble) weights missing in {tmp_path / 'nothing'}: "
            "dino_vitb16_pretrain.pth, open_clip_vitb16_pretrain.pth.tar") in err
    assert "dreamsim_ensemble_checkpoint.zip and unzip it into that folder" in err
    assert not (tmp_path / "d").exists()  # nothing written


@pytest.mark.parametrize("observer", ["centre", "variance", "mis"])
def test_occlusion_trials_are_answered_by_the_papers_baselines_and_the_mis_rule(
        observer, tmp_path):
    """The occlusion task through the same seam: the baselines as observers agree with the
    analysis' baseline columns on the very trials; the similarity rule answers them too."""
    from experiments.tasks.occlusion.analysis import baseline_choices
    from tests.experiments.test_occlusion_task import CONDITIONS, TASK

    occ = make_stimulus_set(tmp_path / "sets", name="occ", n_units=8, occlusion=True)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    db.upgrade()
    spec = write_spec(tmp_path / "occ.toml", [occ], name="occ-exp", conditions=CONDITIONS,
                      main_trials_per_task=4, catch_trials_per_task=1, responses_per_unit=1,
                      fv_must_beat_natural=False, task=TASK,
                      practice={"trials": 1})
    key = build_experiment(spec, db).key
    db.dispose()
    args = ["observe", key, "--database", url, "--observer", observer, "--out",
            str(tmp_path / "m")]
    if observer == "mis":
        args += ["--backbone", "tiny-cnn", "--random-init", "--alpha", "8"]
    assert main(args) == 0
    machine = load_dataset(tmp_path / "m").responses
    assert set(machine.condition) == set(CONDITIONS) and machine.base.notna().all()
    if observer != "mis":
        expected = baseline_choices(machine)[observer]
        assert (machine.choice == expected).all()
        assert machine.correct[machine.is_catch].all()  # the unoccluded base wins both rules
    else:
        assert machine.p_correct.between(0, 1).all() and machine.p_correct.nunique() > 2


def test_a_spec_chooses_its_units_by_the_machine_score_and_records_it(toy_set, tmp_path,
                                                                       capsys):
    """[select_units]: the easiest (highest MIS), hardest and random units of each set become
    the main units; each unit's group and score are stored and exported."""
    from experiments.study.selection import read_machine_scores
    from experiments.study.spec import UnitSelection

    assert main(["observe", str(toy_set), "--backbone", "tiny-cnn", "--random-init",
                 "--alpha", "5", "--tasks-per-unit", "6", "--out",
                 str(tmp_path / "machine")]) == 0
    selection = {"scores": "machine", "easiest": 2, "hardest": 2, "random": 1}
    spec = write_spec(tmp_path / "chosen.toml", [toy_set], name="chosen", select_units=selection,
                      main_trials_per_task=4, catch_trials_per_task=2)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    key = build_experiment(spec, db).key
    frames = frames_from_db(db, key)
    units = frames["units"].set_index("unit_id")
    main_units = units[units.role == "main"]
    assert main_units.selection_group.value_counts().to_dict() == {
        "easiest": 2, "hardest": 2, "random": 1}
    assert (units.role == "left_out").sum() == 12 - 2 - 2 - 5  # practice 2, catch 2
    scores = read_machine_scores(tmp_path / "machine", UnitSelection(**selection))
    candidates = scores[units.role.reindex(scores.index).isin(["main", "left_out"])]
    ranked = candidates.sort_values(ascending=False, kind="stable")
    assert set(main_units.index[main_units.selection_group == "easiest"]) == set(ranked.index[:2])
    assert set(main_units.index[main_units.selection_group == "hardest"]) == set(
        ranked.index[-2:])
    assert np.allclose(main_units.machine_score, scores[main_units.index])
    shown = frames["trials"]
    assert set(shown[(shown.phase == "main") & ~shown.is_catch].unit_id) == set(main_units.index)

    too_many = write_spec(tmp_path / "many.toml", [toy_set], name="many",
                          select_units={**selection, "random": 20})
    with pytest.raises(Exception, match="unit group 'toy' has 8 units with a machine score "
                                        r"\(0 without one\) but easiest \+ hardest \+ random = 24"):
        build_experiment(too_many, db)
    missing = write_spec(tmp_path / "none.toml", [toy_set], name="none",
                         select_units={**selection, "scores": "nowhere"})
    assert main(["experiment", "build", str(missing), "--database", url]) == 2
    assert "holds no responses.parquet or responses.csv" in capsys.readouterr().err
    db.dispose()


def test_alpha_is_fitted_to_peoples_answers_on_the_same_trials(toy_set, tmp_path, capsys):
    """--calibrate: people who answer with a known alpha on the experiment's trials give that
    alpha back; answers to other trials are refused by name."""
    from scipy.special import expit, logit

    from analysis.load import Dataset
    from stimuli.observers.run import observer_record

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    key = build_experiment(write_spec(tmp_path / "e.toml", [toy_set], name="cal"), db).key
    db.dispose()
    common = ["observe", key, "--database", url, "--backbone", "tiny-cnn", "--random-init"]
    assert main(common + ["--alpha", "1", "--out", str(tmp_path / "unit")]) == 0
    rows = load_dataset(tmp_path / "unit").responses
    rows = rows[(rows.phase == "main") & ~rows.is_catch]
    evidence = logit(rows.p_correct.to_numpy())  # alpha 1: p = sigmoid(evidence)
    true_alpha = 1.2 / np.abs(evidence).mean()  # people right about 3 times in 4
    rng = np.random.default_rng(0)
    people = pd.concat([rows.assign(
        client="web", participant_id=f"P{i:03d}", observer=None, backbone=None, p_correct=None,
        correct=rng.random(len(rows)) < expit(true_alpha * evidence)) for i in range(60)],
        ignore_index=True)
    Dataset(responses=people).save(tmp_path / "people")
    assert main(common + ["--calibrate", str(tmp_path / "people"), "--out",
                          str(tmp_path / "fitted")]) == 0
    record = observer_record(tmp_path / "fitted")
    assert record["alpha"] == pytest.approx(true_alpha, rel=0.2)
    assert record["alpha_source"].startswith(f"fit to {len(people)} answers of people")
    assert main(common + ["--calibrate", str(tmp_path / "people"), "--alpha", "3", "--out",
                          str(tmp_path / "both")]) == 2
    assert "--alpha 3.0 and --calibrate exclude each other" in capsys.readouterr().err
    Dataset(responses=people.assign(task_id="T99999")).save(tmp_path / "others")
    assert main(common + ["--calibrate", str(tmp_path / "others"), "--out",
                          str(tmp_path / "x")]) == 2
    assert "give the export of the same experiment" in capsys.readouterr().err


def test_observe_makes_occlusion_trials_from_a_set(tmp_path):
    """On a set with occlusion images, the occlusion task makes the trials (N per unit and
    condition); the centre baseline answers them from the occluders they record."""
    from stimuli.observers.run import ObserveOptions, observe

    occ = make_stimulus_set(tmp_path / "sets", name="occ", n_units=4, occlusion=True)
    source = from_set(occ, "occlusion", ("none", "natural", "blurred"), trials_per_unit=3)
    assert len(source.trials) == 4 * 3 * 3
    answered = observe(source, tmp_path / "o", ObserveOptions(observer="centre"),
                       progress=False)
    # the toy set's worst occlusion covers the centre, its best a corner: centre is right
    assert answered.correct.all() and set(answered.condition) == {"none", "natural", "blurred"}
    assert answered.occluder_a.notna().all()


@pytest.mark.parametrize("model", ["tiny-cnn", "tiny-convnext", "tiny-vit"])
def test_a_registered_model_of_any_layout_is_a_backbone(model):
    """Channels-first, channels-last and token models alike: the embedding is the unit-norm
    input of the model's classifier (its last linear layer)."""
    import torch

    from stimuli.observers.backbones import get_backbone

    backbone = get_backbone(model, pretrained=False)
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    vectors = backbone.embed(images)
    head = backbone._head
    assert vectors.shape == (3, head.in_features)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(vectors, backbone.embed(images))  # deterministic
    # RN50's attention pool uses its last Linear's weights without calling it: the tower's
    # output is the embedding then
    assert backbone.facts()["features"] == ("model output" if model == "clip-resnet50"
                                            else "input of the last linear layer")


def test_a_killed_embedding_run_resumes_from_what_it_saved(tmp_path, monkeypatch):
    """Embeddings are saved as they go: after a crash in the third batch the rerun embeds only
    the images the first run had not saved, and a read-only set keeps its cache under --out."""
    from stimuli.observers import backbones, embeddings
    from stimuli.observers.run import ObserveOptions, observe

    set_dir = make_stimulus_set(tmp_path / "sets", n_units=4, n_batches=2)
    source = from_set(set_dir, trials_per_unit=4)
    options = ObserveOptions(backbone="tiny-cnn", pretrained=False, alpha=5.0)
    monkeypatch.setattr(embeddings, "SAVE_EVERY", 64)
    real = backbones.ModelBackbone.features
    calls: list[int] = []

    def crash_third(self, images):
        calls.append(len(images))
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(self, images)

    monkeypatch.setattr(backbones.ModelBackbone, "features", crash_third)
    with pytest.raises(RuntimeError, match="killed"):
        observe(source, tmp_path / "one", options, progress=False)
    shown = len({i for o in source.trials for i in source.task.image_ids(o.trial.stimulus)})
    calls.clear()
    monkeypatch.setattr(backbones.ModelBackbone, "features",
                        lambda self, images: calls.append(len(images)) or real(self, images))
    observe(source, tmp_path / "one", options, progress=False)
    assert sum(calls) == shown - 2 * 64  # the two saved batches are not embedded again

    # a shared set the user may not write to (root may write anywhere, so the test denies it)
    real_access = embeddings.os.access
    monkeypatch.setattr(embeddings.os, "access",
                        lambda path, mode: False if Path(path) == set_dir
                        else real_access(path, mode))
    observe(source, tmp_path / "two", ObserveOptions(backbone="tiny-cnn", pretrained=False,
                                                     alpha=5.0, seed=1), progress=False)
    assert list((tmp_path / "two" / "_embeddings" / set_dir.name).glob("*.npz"))


def test_observers_answer_shifted_queries_and_record_their_distribution(tmp_path, capsys):
    shifted = make_stimulus_set(tmp_path, "shifted", n_units=10, image_size=16,
                                shifted=("blur-3",))
    out = tmp_path / "machine"
    assert main(["observe", str(shifted), "--query-distributions", "in,blur-3", "--backbone",
                 "tiny-cnn", "--random-init", "--alpha", "none", "--tasks-per-unit", "4",
                 "--out", str(out)]) == 0
    machine = load_dataset(out).responses
    assert machine.groupby(["unit_id", "query_distribution"]).size().eq(4).all()
    images = pd.read_csv(shifted / "images.csv").set_index("image_id").distribution
    for row in machine.itertuples():
        assert {images[row.query_a], images[row.query_b]} == {row.query_distribution}
    assert main(["observe", str(shifted), "--query-distributions", "in,noise-2", "--backbone",
                 "tiny-cnn", "--random-init", "--out", str(tmp_path / "no")]) == 2
    assert "query_distribution 'noise-2'" in capsys.readouterr().err
    # on a built experiment: each answer carries its trial's distribution
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    db.upgrade()
    key = build_experiment(write_spec(tmp_path / "e.toml", [shifted], name="shift-exp",
                                      query_distribution=["in", "blur-3"],
                                      conditions=["natural"]), db).key
    trials = frames_from_db(db, key)["trials"]
    db.dispose()
    assert main(["observe", key, "--database", url, "--backbone", "tiny-cnn", "--random-init",
                 "--alpha", "none", "--out", str(tmp_path / "exp")]) == 0
    answered = load_dataset(tmp_path / "exp").responses
    assert sorted(zip(answered.task_id, answered.query_a, answered.query_distribution)) == \
        sorted(zip(trials.task_id, trials.query_a, trials.query_distribution))


@pytest.mark.parametrize("model", ["tiny-cnn", "tiny-convnext", "tiny-vit"])
def test_an_lpips_style_backbone_turns_its_distance_into_a_cosine(model):
    """cos(E(a), E(b)) = 1 - d / (2 x layers), d the uniform-weight LPIPS distance of the
    pooled unit-normalised maps, computed here from the layers' outputs directly."""
    import torch
    import torch.nn.functional as F

    from stimuli.layers import LayerRecorder
    from stimuli.observers.backbones import LPIPS_GRID, _channels_first, get_backbone

    backbone = get_backbone(f"lpips:{model}", pretrained=False)
    assert backbone.name == f"lpips:{model}:random-init" and 1 < len(backbone.layers) <= 5
    side = backbone.spec.preprocessing.crop
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, side, side),
                                                                 dtype=np.uint8))
    embedded = backbone.embed(images)
    cosine = float(embedded[0] @ embedded[1])
    with LayerRecorder(backbone.model, backbone.spec, backbone.layers, keep="full") as recorder, \
            torch.no_grad():
        out = recorder(backbone.model, backbone._normalise(images))
    distance = 0.0
    for layer in backbone.layers:
        maps = F.normalize(_channels_first(out[layer].float(), backbone.spec.layout(layer)), dim=1)
        maps = F.normalize(F.adaptive_avg_pool2d(maps, LPIPS_GRID), dim=1)
        distance += float(((maps[0] - maps[1]) ** 2).sum(0).mean())
    assert cosine == pytest.approx(1 - distance / (2 * len(backbone.layers)), abs=1e-5)


def test_observe_takes_an_lpips_style_backbone(toy_set, tmp_path):
    assert main(["observe", str(toy_set), "--backbone", "lpips:tiny-cnn", "--random-init",
                 "--alpha", "5", "--tasks-per-unit", "2", "--out", str(tmp_path / "lp")]) == 0
    machine = load_dataset(tmp_path / "lp").responses
    assert set(machine.backbone) == {"lpips:tiny-cnn:random-init"}
    assert machine.p_correct.between(0, 1).all()


@pytest.mark.parametrize("model", ["clip-resnet50", "clip-vit_b32"])
def test_a_clip_model_is_a_backbone_from_its_loading_code(model):
    """CLIP image towers through the registry's open_clip loader (random init here: no weights
    can be downloaded; with cached weights the same path loads them)."""
    import torch

    from stimuli.observers.backbones import get_backbone

    backbone = get_backbone(f"model:{model}", pretrained=False)
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 224, 224),
                                                                 dtype=np.uint8))
    first, again = backbone.embed(images), backbone.embed(images)
    assert torch.equal(first, again) and first.shape[0] == 2
    assert torch.allclose(first.norm(dim=1), torch.ones(2), atol=1e-5)
    # RN50's attention pool uses its last Linear's weights without calling it: the tower's
    # output is the embedding then
    assert backbone.facts()["features"] == ("model output" if model == "clip-resnet50"
                                            else "input of the last linear layer")


def test_the_observers_answer_a_three_option_task(toy_set):
    """The 3-AFC: MIS picks the query most like the max references (near one with planted
    similarity, near a third shuffled); alpha is recovered from three-option answers; the
    occlusion baselines (two occluders) refuse it."""
    source = from_set(toy_set, "imi_3afc", trials_per_unit=12, seed=4)
    task = source.task
    trials = [observed.trial for observed in source.trials]
    assert {t.answer_key for t in trials} == {"a", "b", "c"}
    observer, rng = get_observer("mis"), np.random.default_rng(0)

    def accuracy(embeddings: dict) -> float:
        answers = [observer.answer(task, t.stimulus, t.answer_key, embeddings, None, rng)
                   for t in trials]
        assert {a.answer["choice"] for a in answers} == {"a", "b", "c"}
        return float(np.mean([a.correct for a in answers]))

    assert accuracy(_planted(toy_set, shuffle=False)) > 0.95
    # trials of a unit share its few queries: several shufflings average out their chance
    shuffled = np.mean([accuracy(_planted(toy_set, shuffle=True, seed=s)) for s in range(6)])
    assert shuffled == pytest.approx(1 / 3, abs=0.08)
    with pytest.raises(StimuliError, match=r"task type imi_3afc has 3 options \(at most 2\)"):
        get_observer("centre").answer(task, trials[0].stimulus, "a", {}, None, rng)

    evidence = rng.normal(0, 0.3, (20_000, 3))
    p_right = np.exp(4 * evidence[:, 0]) / np.exp(4 * evidence).sum(axis=1)
    assert fit_alpha(evidence, rng.random(len(evidence)) < p_right) == pytest.approx(4, rel=0.1)
