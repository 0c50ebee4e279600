"""Sequencing and data writing without a display: scripted responders, database and local store."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from experiments.errors import Refused
from experiments.lab.datafile import PSYCHOPY_COLUMNS, RunInfo, TrialCsv, columns_for, data_path
from experiments.lab.sequence import Sequencer, run_headless
from experiments.lab.source import start_lab_session
from experiments.lab.store import LocalStore, open_database_recorder
from experiments.sessions import ResponseIn, SessionService
from experiments.study.export import frames_from_db
from experiments.study.schema import RESPONSE_COLUMNS
from tests.lab.conftest import correct_responder


def _run(db, key, participant, data_dir, stop_after=None, responder=None, break_every=0):
    task = start_lab_session(db, key, participant, {"frame_rate": 60.0})
    info = RunInfo(participant=participant, session="001", exp_name=key, frame_rate=60.0)
    with TrialCsv(data_path(data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, open_database_recorder(db, task, writer.path), writer,
                              break_every)
        outcomes = run_headless(sequencer, responder or correct_responder(), stop_after)
    return task, sequencer, outcomes


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_whole_session_to_database_and_csv(built, tmp_path):
    db, key = built
    task, sequencer, outcomes = _run(db, key, "P01", tmp_path, responder=correct_responder(True))
    assert sequencer.progress.status == "completed"
    # practice failed once (2 trials), passed once (2), then 6 main trials
    assert [o.step.phase for o in outcomes] == ["practice"] * 4 + ["main"] * 6
    assert [o.step.attempt for o in outcomes[:4]] == [0, 0, 1, 1]
    assert outcomes[1].attempt_closed and outcomes[1].attempt_passed is False
    assert outcomes[3].attempt_passed is True
    assert sum(o.step.trial.is_catch for o in outcomes) == 2
    rows = _csv_rows(data_path(tmp_path, task))
    assert list(rows[0]) == list(columns_for("imi_2afc"))
    assert [int(r["trial_index"]) for r in rows] == list(range(10))
    assert {r["client"] for r in rows} == {"lab"} and {r["saved_to"] for r in rows} == {"database"}
    assert all(r[c] for r in rows for c in PSYCHOPY_COLUMNS)
    frame = frames_from_db(db, key)["responses"]
    assert len(frame) == 10 and set(frame.client) == {"lab"}
    for row, (_, stored) in zip(rows, frame.iterrows()):
        for column in ("participant_id", "session_id", "task_id", "unit_id", "query_a", "choice",
                       "phase", "trial_index", "attempt", "model", "layer"):
            assert str(row[column]) == str(stored[column]), column
        assert (row["correct"] == "True") == bool(stored.correct)
        assert float(row["rt_ms"]) == stored.rt_ms
        assert row["server_received_at"]  # filled from the stored row


def test_abort_and_resume_appends_to_the_same_file(built, tmp_path):
    db, key = built
    task, sequencer, first = _run(db, key, "P02", tmp_path, stop_after=5)
    assert len(first) == 5 and sequencer.progress.status == "in_progress"
    task2, sequencer2, second = _run(db, key, "P02", tmp_path)
    assert task2.resumed and task2.session_id == task.session_id
    assert second[0].step.trial_index == 5 and sequencer2.progress.status == "completed"
    rows = _csv_rows(data_path(tmp_path, task))
    assert [int(r["trial_index"]) for r in rows] == list(range(8))
    frame = frames_from_db(db, key)["responses"]
    assert list(frame.trial_index) == list(range(8))
    with pytest.raises(Refused):  # a completed participant does not start again
        start_lab_session(db, key, "P02")


def test_breaks_and_main_counter(built, tmp_path):
    db, key = built
    _, sequencer, outcomes = _run(db, key, "P03", tmp_path, break_every=2)
    main = [o for o in outcomes if o.step.phase == "main"]
    assert [o.break_due for o in main] == [False, True, False, True, False, False]
    assert sequencer.progress.main_correct == 6


def test_failed_practice_ends_the_session(db, toy_set, tmp_path):
    from experiments.study.build import build_experiment
    from tests.lab.conftest import lab_spec
    key = build_experiment(lab_spec(tmp_path, toy_set, name="strict",
                                    practice={"trials": 2, "max_attempts": 2}), db).key
    wrong = lambda step: correct_responder()(step).__class__(
        answer={"choice": "b" if step.trial.answer_key == "a" else "a", "confidence": 1},
        rt_ms=300.0)
    _task, sequencer, outcomes = _run(db, key, "P04", tmp_path, responder=wrong)
    assert len(outcomes) == 4 and outcomes[-1].practice_failed
    assert sequencer.progress.status == "failed_practice"
    assert sequencer.complete() == "FAILED_CHECKS"


def test_local_store_skips_a_torn_last_line(tmp_path):
    store = LocalStore(tmp_path / "s.jsonl")
    store.append({"kind": "response", "trial_index": 0, "correct": True})
    with open(store.path, "a") as handle:
        handle.write('{"kind": "response", "trial_ind')  # crash mid-write
    assert [r["trial_index"] for r in store.responses()] == [0]


def test_same_columns_as_a_web_session(built, tmp_path):
    """A web-style session through the service and a lab session export the same columns."""
    db, key = built
    service = SessionService(db)
    state = service.start(key, "web-1", "link", client="web")
    respond = correct_responder()
    from experiments.lab.sequence import Step
    index = 0
    while state.stage in ("practice", "main"):
        trial = (state.practice_trial(index) if state.main_offset is None
                 else state.main[index - state.main_offset])
        answer = respond(Step(trial, index, trial.phase, 0, 0, 1))
        service.record_response(state.session_id, state.token, ResponseIn(
            trial_index=index, trial_id=trial.trial_id,
            answer={"choice": trial.answer_key, "confidence": answer.answer["confidence"]},
            rt_ms=answer.rt_ms, stim_onset_ms=answer.stim_onset_ms,
            response_ms=answer.response_ms))
        index += 1
        state = service.state(state.session_id, state.token)
    service.complete(state.session_id, state.token)
    _run(db, key, "P05", tmp_path)
    frame = frames_from_db(db, key)["responses"]
    assert list(frame.columns) == list(RESPONSE_COLUMNS)
    web, lab = frame[frame.client == "web"], frame[frame.client == "lab"]
    assert len(web) == len(lab) == 8
    for column in RESPONSE_COLUMNS:
        assert web[column].dtype == lab[column].dtype
    assert lab.rt_ms.notna().all() and lab.stim_onset_ms.notna().all()
    assert list(lab.phase) == list(web.phase) and list(lab.attempt) == list(web.attempt)
    assert lab.correct.all() and web.correct.all()
