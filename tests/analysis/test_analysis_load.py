"""Loading exports, foreign trial CSVs and the IMI release."""
from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from analysis import DataError, attach_model_metadata, imi_models, load, load_dataset, read_imi, read_trials
from experiments.schema import RESPONSE_COLUMNS


def test_load_folder_parquet_and_csv_give_schema(small, small_folder, tmp_path):
    frame = load(small_folder)
    assert list(frame.columns) == list(RESPONSE_COLUMNS)
    assert str(frame["correct"].dtype) == "bool" and str(frame["confidence"].dtype) == "Int64"
    assert len(frame) == len(small.responses)
    small.save(tmp_path, fmt="csv")
    from_csv = load_dataset(tmp_path)
    assert list(from_csv.responses.columns) == list(RESPONSE_COLUMNS)
    assert from_csv.participants is not None and from_csv.units is not None
    pd.testing.assert_series_equal(from_csv.responses["correct"], frame["correct"])
    assert (from_csv.responses["participant_id"] == frame["participant_id"]).all()


def test_load_single_file_and_experiment_filter(small, small_folder, tmp_path):
    frame = load(small_folder / "responses.parquet", experiment="simulated")
    assert len(frame) == len(small.responses)
    with pytest.raises(DataError, match="no responses for experiment 'other'"):
        load(small_folder, experiment="other")


def test_load_names_missing_columns(small, tmp_path):
    path = tmp_path / "r.csv"
    small.responses.drop(columns=["rt_ms", "choice"]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load(path)
    assert "rt_ms" in str(err.value) and "choice" in str(err.value)
    assert "read_trials" in str(err.value)


def test_load_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nothing")
    with pytest.raises(DataError, match="no responses"):
        load(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("experiments.export") is None,
                    reason="experiments.export (the lead's database export) is not written yet")
def test_load_database_url_goes_through_export(small, monkeypatch):
    import experiments.export as export

    seen = {}

    def fake_frames(url, experiment=None):
        seen["args"] = (url, experiment)
        return {"responses": small.responses, "participants": small.participants,
                "units": small.units, "trials": small.trials}

    monkeypatch.setattr(export, "dataset_frames", fake_frames)
    ds = load_dataset("sqlite:///some.db", experiment="simulated")
    assert seen["args"] == ("sqlite:///some.db", "simulated")
    assert len(ds.responses) == len(small.responses) and ds.units is not None


def _foreign(tmp_path):
    frame = pd.DataFrame({
        "subject": ["s1"] * 4 + ["s2"] * 4,
        "net": ["googlenet"] * 8,
        "layer_name": ["mixed4a"] * 8,
        "feature": [1, 2, 3, 4] * 2,
        "ref_type": ["natural", "optimized"] * 4,
        "hit": ["True", "False", "True", "True", "false", "TRUE", "1", "0"],
        "conf": [3, 1, 2, 3, 1, 2, 3, 1],
        "RT": [1.5, 2.0, 0.9, 3.1, 1.0, 1.2, 2.2, 0.7],
    })
    path = tmp_path / "foreign.csv"
    frame.to_csv(path, index=False)
    return path


def test_read_trials_renames_and_recodes(tmp_path):
    path = _foreign(tmp_path)
    out = read_trials(path, columns={"subject": "participant_id", "net": "model",
                                     "layer_name": "layer", "feature": "channel",
                                     "ref_type": "condition", "hit": "correct",
                                     "conf": "confidence", "RT": "rt_ms"},
                      values={"condition": {"optimized": "synthetic"}}, rt_unit="s")
    assert list(out.columns) == list(RESPONSE_COLUMNS)
    assert out["correct"].tolist() == [True, False, True, True, False, True, True, False]
    assert set(out["condition"]) == {"natural", "synthetic"}
    assert out["rt_ms"].iloc[0] == pytest.approx(1500.0)
    assert out["unit_id"].iloc[1] == "googlenet/mixed4a/2"
    assert (out["phase"] == "main").all() and not out["is_catch"].any()
    assert out["trial_index"].tolist() == [0, 1, 2, 3] * 2


def test_read_trials_lists_every_missing_column(tmp_path):
    path = _foreign(tmp_path)
    with pytest.raises(DataError) as err:
        read_trials(path, columns={"net": "model", "hit": "correct"})
    message = str(err.value)
    assert "participant_id" in message and "condition" in message
    assert "unit_id (or layer and channel)" in message
    assert "subject" in message  # shows what the file has


def test_read_trials_defaults_and_bad_values(tmp_path):
    path = _foreign(tmp_path)
    mapping = {"subject": "participant_id", "net": "model", "layer_name": "layer",
               "feature": "channel", "hit": "correct"}
    out = read_trials(path, columns=mapping, defaults={"condition": "natural"})
    assert (out["condition"] == "natural").all()
    bad = pd.read_csv(path)
    bad.loc[2, "hit"] = "maybe"
    with pytest.raises(DataError, match="'maybe'"):
        read_trials(bad, columns=mapping, defaults={"condition": "natural"})
    with pytest.raises(DataError, match="columns to rename not found: nope"):
        read_trials(path, columns={"nope": "participant_id"})


def test_read_imi_release_format(tmp_path):
    rows = []
    for pid, mode in (("P0001", "natural"), ("P0002", "optimized")):
        rows.append(dict(participant_id=pid, model="resnet50", layer="layer1", channel=5,
                         batch=-1, mode="natural", correct=True, confidence=3, choice="b",
                         rt=1200.0, trial_index=0, is_demo=True, catch_trial=False))
        for i in range(4):
            rows.append(dict(participant_id=pid, model="resnet50", layer="layer3", channel=i,
                             batch=i, mode=mode, correct=i != 0, confidence=2,
                             choice="a" if i == 0 else "b", rt=2000.0 + i, trial_index=i + 1,
                             is_demo=False, catch_trial=False))
        rows.append(dict(participant_id=pid, model="catch/manual", layer="x", channel=1,
                         batch=-1, mode="catch_trial", correct=True, confidence=3, choice="b",
                         rt=800.0, trial_index=6, is_demo=False, catch_trial=True))
    path = tmp_path / "responses_main.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = read_imi(path)
    assert list(out.columns) == list(RESPONSE_COLUMNS)
    p2 = out[out["participant_id"] == "P0002"]
    assert set(p2.loc[~p2["is_catch"] & (p2["phase"] == "main"), "condition"]) == {"synthetic"}
    assert p2.loc[p2["is_catch"], "condition"].tolist() == ["synthetic"]
    assert out["phase"].tolist().count("practice") == 2
    assert (out["correct_choice"] == "b").all()
    assert (out["correct"] == (out["choice"] == "b")).all()
    assert out.loc[out["batch"].isna(), "phase"].isin(["practice", "main"]).all()
    assert "resnet50/layer3/2" in set(out["unit_id"])
    with pytest.raises(DataError, match="missing columns mode"):
        read_imi(pd.DataFrame(rows).drop(columns=["mode"]))


def test_imi_model_metadata_matches_reference():
    models = imi_models()
    assert len(models) == 9
    top1 = dict(zip(models["model"], models["top1"]))
    assert top1["googlenet"] == 69.15 and top1["convnext_b"] == 83.8
    assert top1["clip_vit_b32"] == 66.6 and top1["resnet50_l2_eps3"] == 62.38
    assert (models["parameters"] > 1e6).all()
    assert not models.loc[models["model"] == "clip_resnet50", "certain"].iloc[0]
    frame = pd.DataFrame({"model": ["ResNet-50", "vit_base_patch32_224", "unknown"]})
    out = attach_model_metadata(frame, models)
    assert out["parameters"].iloc[0] == 25557032
    assert out["top1"].iloc[1] == 74.9
    assert np.isnan(out["parameters"].iloc[2])
