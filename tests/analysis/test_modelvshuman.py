"""The model-vs-human benchmark's released raw data through `interpsy analyze --format
model-vs-human`: files in the released layout, trials matched by the image's own name,
accuracy and error consistency against a computation written out here, and bad input."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import DataError
from analysis.modelvshuman import image_name, read_model_vs_human
from experiments.cli import main
from experiments.vocabulary import SIXTEEN_CLASSES

HEADER_PERSON = "subj,Session,trial,rt,object_response,category,condition,imagename"
HEADER_MODEL = "subj,session,trial,rt,object_response,category,condition,imagename"
LEVELS = ("0", "3", "40")


def _write_low_pass(folder: Path, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Two people and a model on the same 24 images (8 per level) in shuffled orders, with a
    missed answer; what each answered, by image."""
    rng = np.random.default_rng(seed)
    images = [(f"n0{2690373 + i}_{100 + i}.png", LEVELS[i % 3], SIXTEEN_CLASSES[i % 16])
              for i in range(24)]
    folder.mkdir(parents=True)
    truth = {}
    for subj, code in (("subject-01", "s01"), ("subject-02", "s02"), ("resnet50", "dnn")):
        order = rng.permutation(len(images))
        lines, rows = [HEADER_MODEL if code == "dnn" else HEADER_PERSON], []
        for trial, k in enumerate(order, start=1):
            name, level, category = images[k]
            right = rng.random() < {"0": 0.9, "3": 0.6, "40": 0.2}[level]
            response = category if right else SIXTEEN_CLASSES[(SIXTEEN_CLASSES.index(category)
                                                                + 1) % 16]
            if subj == "subject-02" and trial == 5:
                response = "na"
            rt = "NaN" if code == "dnn" or response == "na" else f"{rng.uniform(0.4, 1.4):.4f}"
            full = f"{trial:04d}_lp_{code}_{level}_{category}_10_{name}"
            lines.append(f"{subj},1,{trial},{rt},{response},{category},{level},{full}")
            rows.append({"image": name, "condition": level, "correct": response == category})
        stem = "low-pass_resnet50_session-1" if code == "dnn" else f"low-pass_{subj}_session_1"
        (folder / f"{stem}.csv").write_text("\n".join(lines) + "\n")
        truth[subj] = pd.DataFrame(rows)
    return truth


def _kappa(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, float, float, float]:
    both = a.merge(b, on=["image", "condition"], suffixes=("_a", "_b"))
    p_a, p_b = both.correct_a.mean(), both.correct_b.mean()
    observed = (both.correct_a == both.correct_b).mean()
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    kappa = 1.0 if observed == 1 else (observed - expected) / (1 - expected)
    return len(both), observed, expected, kappa


def test_the_image_is_matched_by_its_own_name():
    assert image_name("0001_cop_s01_c30_knife_10_n03041632_7380.png") == "n03041632_7380.png"
    assert image_name("0001_lp_dnn_40_chair_10_n04099969_7577.png") == "n04099969_7577.png"
    assert image_name("0003_ske_s02_0_boat_00_boat-0068-sketch-23.png") == \
        "boat-0068-sketch-23.png"
    assert image_name("airplane1-bicycle2.png") == "airplane1-bicycle2.png"


def test_analyze_writes_accuracy_and_error_consistency_as_computed_by_hand(tmp_path, capsys):
    truth = _write_low_pass(tmp_path / "raw-data" / "low-pass")
    out = tmp_path / "report"
    assert main(["analyze", str(tmp_path / "raw-data" / "low-pass"), "--format",
                 "model-vs-human", "--out", str(out)]) == 0
    accuracy = pd.read_csv(out / "tables" / "accuracy.csv", dtype={"condition": str})
    assert list(accuracy.columns[:4]) == ["observer", "condition", "n", "accuracy"]
    assert len(accuracy) == 9
    for row in accuracy.itertuples():
        rows = truth[row.observer][truth[row.observer].condition == row.condition]
        assert (row.n, row.accuracy) == (len(rows), pytest.approx(rows.correct.mean()))
    # the missed answer counts as an error
    assert accuracy.n.sum() == 72

    pairs = pd.read_csv(out / "tables" / "error_consistency.csv", dtype={"condition": str})
    assert list(pairs.columns[:7]) == ["observer_a", "observer_b", "condition", "n", "observed",
                                       "expected", "error_consistency"]
    assert len(pairs) == 9  # 3 pairs x 3 conditions
    for a, b in itertools.combinations(truth, 2):
        for level in LEVELS:
            row = pairs[(pairs.observer_a == a) & (pairs.observer_b == b)
                        & (pairs.condition == level)]
            assert len(row) == 1, (a, b, level)
            n, observed, expected, kappa = _kappa(truth[a][truth[a].condition == level],
                                                  truth[b][truth[b].condition == level])
            assert row.n.item() == n == 8
            assert row.observed.item() == pytest.approx(observed)
            assert row.expected.item() == pytest.approx(expected)
            assert row.error_consistency.item() == pytest.approx(kappa)
    assert set(pairs.pair) == {"human-human", "human-machine"}
    html = (out / "report.html").read_text()
    assert "Error consistency" in html and "accuracy_0.png" in html
    assert (out / "figures" / "consistency_0.png").is_file()
    summary = pd.read_csv(out / "tables" / "benchmark_summary.csv")
    assert set(summary.observer) == set(truth) | {"people (mean)"}
    assert "resnet50 (machine) against the people: accuracy difference" in capsys.readouterr().out


def test_every_dataset_folder_under_raw_data_is_read_apart(tmp_path):
    _write_low_pass(tmp_path / "low-pass")
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    (sketch / "sketch_subject-01_session_1.csv").write_text(
        f"{HEADER_PERSON}\nsubject-01,1,1,0.8,cat,cat,0,0001_ske_s01_0_cat_00_cat-0001-sketch-1.png\n"
        f"subject-01,1,2,0.9,dog,cat,0,0002_ske_s01_0_cat_00_cat-0002-sketch-7.png\n")
    (sketch / "sketch_alexnet_session-1.csv").write_text(
        f"{HEADER_MODEL}\nalexnet,1,1,NaN,cat,cat,NaN,cat-0002-sketch-7.png\n")
    responses = read_model_vs_human(tmp_path)
    assert set(responses.experiment) == {"low-pass", "sketch"}
    sketch_rows = responses[responses.experiment == "sketch"]
    # people wrote condition 0 and the model nothing: one condition
    assert set(sketch_rows.condition) == {"0"}
    model = sketch_rows[sketch_rows.client == "machine"]
    assert (model.observer.item(), model.unit_id.item()) == ("alexnet", "cat-0002-sketch-7.png")
    assert responses.trial_index.min() == 0


@pytest.mark.parametrize("change, message", [
    (lambda text: text.replace(",knife,", ",spoon,", 1), "'spoon' is not one of the 16"),
    (lambda text: text.replace("object_response", "response"), "missing columns object_response"),
])
def test_bad_files_get_one_clear_error(tmp_path, change, message, capsys):
    folder = tmp_path / "low-pass"
    folder.mkdir()
    text = (f"{HEADER_PERSON}\nsubject-01,1,1,0.8,knife,knife,0,"
            f"0001_lp_s01_0_knife_10_n03041632_1.png\n")
    (folder / "low-pass_subject-01_session_1.csv").write_text(change(text))
    with pytest.raises(DataError, match=message):
        read_model_vs_human(folder)
    assert main(["analyze", str(folder), "--format", "model-vs-human",
                 "--out", str(tmp_path / "o")]) == 2
    assert message.split("'")[0] in capsys.readouterr().err


def test_a_folder_without_the_released_files_is_refused(tmp_path):
    with pytest.raises(DataError, match="no CSV files"):
        read_model_vs_human(tmp_path)
    with pytest.raises(DataError, match="reads a folder"):
        read_model_vs_human(tmp_path / "x.csv")
