"""Loading exports, foreign trial CSVs and the IMI release."""
from __future__ import annotations

import importlib.util
from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from analysis import (
    DataError,
    Dataset,
    attach_model_metadata,
    imi_models,
    load,
    load_dataset,
    read_imi,
    read_trials,
)
from analysis.load import attach_units, read_units
from experiments.errors import InterpsyError
from experiments.study.schema import RESPONSE_COLUMNS, UNIT_COLUMNS


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


def test_load_gives_the_participants_table_too(small, small_folder):
    participants = load(small_folder, table="participants")
    assert len(participants) == small.participants["participant_id"].nunique()
    assert {"participant_id", "total_s", "instruction_s"} <= set(participants.columns)
    with pytest.raises(DataError, match="table must be one of"):
        load(small_folder, table="answers")


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


@pytest.mark.skipif(importlib.util.find_spec("experiments.study.export") is None,
                    reason="experiments.study.export (the lead's database export) is not written yet")
def test_load_database_url_goes_through_export(small, monkeypatch):
    from experiments.study import export

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


def _imi_rows():
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
    return rows


def test_read_imi_release_format(tmp_path):
    rows = _imi_rows()
    path = tmp_path / "responses_main.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = read_imi(path)
    assert list(out.columns) == list(RESPONSE_COLUMNS)
    p2 = out[out["participant_id"] == "P0002"]
    assert set(p2.loc[~p2["is_catch"] & (p2["phase"] == "main"), "condition"]) == {"synthetic"}
    assert p2.loc[p2["is_catch"], "condition"].tolist() == ["synthetic"]
    assert out["phase"].tolist().count("practice") == 2
    # IMI's choice is semantic (b = the max query): the displayed positions are unknown.
    assert out["choice"].isna().all() and out["correct_choice"].isna().all()
    assert out["correct"].tolist() == [r["correct"] for r in rows]
    assert out.loc[out["phase"] == "practice", "attempt"].isna().all()
    assert "query positions not in the data" in out.attrs["notes"][0]
    assert out.loc[out["batch"].isna(), "phase"].isin(["practice", "main"]).all()
    assert out["batch"].notna().sum() == 8
    assert "resnet50/layer3/2" in set(out["unit_id"])
    with pytest.raises(DataError, match="missing columns mode"):
        read_imi(pd.DataFrame(rows).drop(columns=["mode"]))


def test_read_imi_uses_a_position_column_when_the_file_has_one():
    rows = pd.DataFrame(_imi_rows())
    rows["correct_choice"] = ["a", "b"] * (len(rows) // 2)
    out = read_imi(rows)
    assert out["correct_choice"].tolist() == rows["correct_choice"].tolist()
    flipped = rows["correct_choice"].map({"a": "b", "b": "a"})
    assert out["choice"].tolist() == rows["correct_choice"].where(rows["correct"], flipped).tolist()
    assert (out["correct"] == (out["choice"] == out["correct_choice"])).all()
    assert out.attrs["notes"] == []
    rows.loc[2, "correct_choice"] = "left"
    with pytest.raises(DataError, match="'correct_choice'.*'left'"):
        read_imi(rows)


def test_read_imi_names_bad_values():
    rows = pd.DataFrame(_imi_rows())
    text = rows.assign(channel=rows["channel"].astype(object))
    text.loc[[1, 3], "channel"] = ["conv_7", "x"]
    with pytest.raises(DataError, match="column 'channel' must hold numbers, found 'conv_7', 'x'"):
        read_imi(text)
    with pytest.raises(DataError, match="column 'batch' must hold numbers, found 'b1'"):
        read_imi(rows.assign(batch=rows["batch"].astype(object).where(rows.index != 2, "b1")))
    contradicts = rows.copy()
    contradicts.loc[2, "choice"] = "a"  # a correct answer that chose the min query
    with pytest.raises(DataError, match="'choice' and 'correct' disagree in 1 rows"):
        read_imi(contradicts)


def test_read_units_builds_unit_ids_and_names_missing_columns(small, tmp_path):
    path = tmp_path / "units.csv"
    small.units[["model", "layer", "channel", "layer_position"]].to_csv(path, index=False)
    units = read_units(path)
    assert list(units.columns) == list(UNIT_COLUMNS)
    assert units["unit_id"].tolist() == small.units["unit_id"].tolist()
    assert units["layer_position"].tolist() == pytest.approx(
        small.units["layer_position"].tolist(), nan_ok=True)
    with pytest.raises(DataError) as err:
        read_units(small.units[["model", "layer"]])
    assert "lacks columns layer_position, unit_id (or model, layer and channel)" in str(err.value)
    assert "the file has: model, layer" in str(err.value)


@pytest.mark.parametrize("position, message", [
    ("deep", "column 'layer_position' must hold numbers, found 'deep'"),
    ("1.5", r"relative depth in \[0, 1\]; 1 rows are not \(rows 1: '1.5'\)"),
])
def test_read_units_rejects_bad_depths(position, message):
    frame = pd.DataFrame({"unit_id": ["m/l/1", "m/l/2"], "layer_position": ["0.5", position]})
    with pytest.raises(DataError, match=message):
        read_units(frame)
    with pytest.raises(DataError, match="different layer_position: 'm/l/1'"):
        read_units(pd.DataFrame({"unit_id": ["m/l/1", "m/l/1"], "layer_position": [0.1, 0.2]}))


def test_attach_units_checks_that_units_match(small):
    bare = Dataset(responses=small.responses)
    half = small.units.iloc[:90][["unit_id", "layer_position"]]
    out = attach_units(bare, half)
    assert out.units["unit_id"].tolist() == half["unit_id"].tolist()
    assert "layer_position for 90 of 180 scored units" in out.notes[-1]
    with pytest.raises(DataError, match="no unit with a layer_position matches"):
        attach_units(bare, half.assign(unit_id="other/x/" + half["unit_id"]))


def test_dataset_carries_rows_removed_by_read_trials(tmp_path):
    path = _foreign(tmp_path)
    frame = read_trials(path, columns={"subject": "participant_id", "net": "model",
                                       "layer_name": "layer", "feature": "channel",
                                       "ref_type": "condition", "hit": "correct"},
                        drop={"condition": ["optimized"]})
    dataset = Dataset(responses=frame, source=str(path))
    assert dataset.dropped_rows == {"condition": 4} and len(dataset.responses) == 4
    assert dataset.notes == [f"{path}: 4 rows removed while loading (condition in ['optimized'])"]
    assert Dataset(responses=frame.iloc[:0].copy(), notes=["x"]).notes == ["x"]


def test_load_database_url_of_a_real_experiment(db, database_url, tmp_path, toy_set):
    """A built experiment, sessions through the real session service, then load(url)."""
    from datetime import datetime, timedelta

    from experiments.sessions import SessionService
    from experiments.study.build import build_experiment
    from tests.participants import run_session
    from tests.stimset import write_spec

    build_experiment(write_spec(tmp_path / "spec.toml", [toy_set]), db)
    now = [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    service = SessionService(db, clock=lambda: now[0])
    first = service.start("toy-exp", "RAW-ID-1", "prolific")
    now[0] += timedelta(seconds=25)  # the server allows the 20 s of instructions reported
    service.record_instructions(first.session_id, first.token, 20.0)
    sent = run_session(service, first, accuracy=0.5, seed=1)
    second = service.start("toy-exp", "RAW-ID-2", "prolific")
    run_session(service, second, stop_after=3, complete=False)

    dataset = load_dataset(database_url, experiment="toy-exp")
    r = dataset.responses
    assert list(r.columns) == list(RESPONSE_COLUMNS) and len(r) == sent + 3
    assert sorted(r["participant_id"].unique()) == ["P0001", "P0002"]
    assert set(r["phase"]) == {"practice", "main"} and r["is_catch"].any()
    assert (r["correct"] == (r["choice"] == r["correct_choice"])).all()
    assert not r.duplicated(["session_id", "trial_index"]).any()
    p = dataset.participants.set_index("participant_id")
    assert p.loc["P0001", "status"] == "completed" and p.loc["P0001", "instruction_s"] == 20.0
    assert dataset.units["layer_position"].notna().any()
    assert dataset.settings[0]["spec"]["catch_trials_per_task"] == 2
    assert len(load(database_url, experiment="toy-exp")) == len(r)
    with pytest.raises(InterpsyError, match="no experiment 'toy-other'"):
        load_dataset(database_url, experiment="toy-other")


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


def test_the_task_type_and_its_chance_come_from_experiment_json():
    from analysis.load import DataError, task_of

    assert task_of([]).chance == 0.5  # no experiment.json: IMI's 2-AFC
    assert task_of([{"experiment": "a@1", "spec": {"task": {"type": "imi_2afc"}}}]).name == \
        "imi_2afc"
    assert task_of([{"spec": {"task": {"type": "occlusion"}}}]).name == "occlusion"
    with pytest.raises(DataError, match="unknown task type 'go_nogo'"):
        task_of([{"spec": {"task": {"type": "go_nogo"}}}])
    with pytest.raises(DataError, match="mixes task types imi_2afc, occlusion"):
        task_of([{"spec": {}}, {"spec": {"task": {"type": "occlusion"}}}])
