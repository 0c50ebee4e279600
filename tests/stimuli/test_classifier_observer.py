"""The classifier observer: an ImageNet classifier answers the very categorisation trials people
got, its 1,000 class probabilities mapped to the offered categories by the mean over each
category's classes, rows in the response schema beside people's in one report."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from analysis.load import load_dataset
from experiments.cli import main
from experiments.db import Database
from experiments.study.build import build_experiment
from experiments.study.export import export_experiment, frames_from_db
from experiments.tasks import get_task
from stimuli.categorisation_set import build_categorisation_set
from stimuli.errors import StimuliError
from stimuli.imagenet16 import CATEGORY_CLASSES
from stimuli.observers.observers import get_observer
from tests.stimset import write_spec

# skimage photos filed under categories of the benchmark (only the cat is what it says)
PHOTOS = {"cat": data.chelsea, "clock": data.coffee, "boat": data.rocket, "bear": data.moon}


def _stimulus(categories=("cat", "clock")):
    return {"image": "i", "mask": "m", "category": "cat", "distortion": "original", "level": "0",
            "categories": list(categories), "fixation_ms": 300, "stimulus_ms": 200,
            "mask_ms": 200, "response_window_ms": 1500}


def test_the_classifier_answers_the_likeliest_offered_category():
    observer, task = get_observer("classifier"), get_task("categorisation")
    p = np.full(1000, 0.0001)
    p[CATEGORY_CLASSES["cat"][0]] = 0.6  # one of cat's six classes: cat's mean 0.1
    p[list(CATEGORY_CLASSES["clock"])] = 0.05
    made = observer.answer(task, _stimulus(), "cat", {"i": p}, None, np.random.default_rng(0))
    cat = (0.6 + 5 * 0.0001) / 6
    assert made.answer == {"choice": "cat"} and made.correct
    assert made.p_correct == pytest.approx(cat / (cat + 0.05))
    assert observer.refusal(get_task("imi_2afc")).startswith("task type imi_2afc is not")
    with pytest.raises(StimuliError, match="no ImageNet classes for spoon"):
        observer.answer(task, _stimulus(("cat", "spoon")), "cat", {"i": p}, None,
                        np.random.default_rng(0))


def test_observe_answers_a_categorisation_study_and_analyze_sets_it_beside_people(tmp_path,
                                                                                 capsys):
    for category, photo in PHOTOS.items():
        (tmp_path / "photos" / category).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(photo()[i * 20:, i * 20:]).save(tmp_path / "photos" / category / f"{i}.png")
    set_dir = build_categorisation_set(tmp_path / "photos", tmp_path / "set",
                                       {"contrast": ["c100", "c05"]}, size=96, progress=False)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    db = Database(url)
    db.upgrade()
    key = build_experiment(write_spec(
        tmp_path / "e.toml", [set_dir], name="cls", conditions=["contrast"],
        main_trials_per_task=8, catch_trials_per_task=2, responses_per_unit=1,
        task={"type": "categorisation"}), db).key
    trials = frames_from_db(db, key)["trials"]
    export_experiment(db, key, tmp_path / "export")  # the study as exported (no answers yet)
    db.dispose()
    out = tmp_path / "machine"
    assert main(["observe", key, "--database", url, "--observer", "classifier",
                 "--backbone", "efficientnet-lite0", "--out", str(out)]) == 0
    machine = load_dataset(out).responses
    assert len(machine) == len(trials) and (machine.client == "machine").all()
    assert set(machine.participant_id) == {"M-classifier-model:efficientnet-lite0"}
    assert (machine.correct == (machine.choice == machine.category)).all()
    assert machine.choice.isin(list(PHOTOS)).all()
    assert machine.timing_flag.isna().all() and machine.stimulus_frames.isna().all()
    record = json.loads((out / "observer.json").read_text())
    assert record["backbone"]["features"] == "class probabilities (softmax of the output)"
    # the pretrained model sees Chelsea as a cat at full contrast
    cats = machine[(machine.category == "cat") & (machine.level == "c100")]
    assert len(cats) and (cats.choice == "cat").all()
    assert main(["analyze", str(tmp_path / "export"), "--machine", str(out),
                 "--out", str(tmp_path / "report")]) == 0
    accuracy = pd.read_csv(tmp_path / "report" / "tables" / "accuracy.csv")
    assert set(accuracy.kind) == {"machine"}  # nobody answered yet: the machine alone
    assert "M-classifier-model:efficientnet-lite0" in capsys.readouterr().out


def test_the_classifier_needs_an_imagenet_classifier(tmp_path):
    from stimuli.observers.backbones import get_backbone

    with pytest.raises(StimuliError, match="reads an ImageNet classifier's class probabilities"):
        get_backbone("dreamsim", output="probabilities")
    with pytest.raises(StimuliError, match="tiny-cnn is not an ImageNet-1k classifier"):
        get_backbone("tiny-cnn", pretrained=False, output="probabilities")
