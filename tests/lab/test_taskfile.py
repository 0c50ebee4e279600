"""Task files: export for an offline machine, run from the file, resume, sync (idempotent)."""
from __future__ import annotations

import json

import pytest

from experiments.errors import InterpsyError
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.sequence import Sequencer, run_headless
from experiments.lab.store import LocalRecorder, LocalStore
from experiments.lab.taskfile import export_task, load_task_file, store_path, sync_task
from experiments.study.export import frames_from_db
from tests.lab.conftest import correct_responder


def _offline_run(task_file, data_dir, stop_after=None, respond=None):
    task = load_task_file(task_file)
    store = LocalStore(store_path(task_file))
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    with TrialCsv(data_path(data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, LocalRecorder(store, task), writer)
        sequencer.recorder.instructions(20.0)
        run_headless(sequencer, respond or correct_responder(True), stop_after)
    return task, sequencer


def test_export_run_offline_resume_and_sync(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L07", tmp_path / "out" / "L07")
    data = json.loads(task_file.read_text())
    assert data["participant_id"].startswith("P") and len(data["main"]) == 6
    assert all(not p.startswith("/") for p in (e["path"] for e in data["images"].values()))
    with pytest.raises(InterpsyError):
        export_task(db, key, "L07", task_file)  # never overwritten
    # the lab machine: run, abort after 3 trials, resume, finish
    _task, sequencer = _offline_run(task_file, tmp_path / "data", stop_after=3)
    assert sequencer.progress.next_index == 3
    task2, sequencer2 = _offline_run(task_file, tmp_path / "data")
    assert task2.resumed and sequencer2.progress.status == "completed"
    assert frames_from_db(db, key)["responses"].empty  # nothing reached the database yet
    report = sync_task(db, task_file)
    assert (report.responses, report.new, report.completed) == (10, 10, True)
    again = sync_task(db, task_file)
    assert (again.new, again.already, again.events) == (0, 10, 0)
    frames = frames_from_db(db, key)
    responses = frames["responses"]
    assert list(responses.trial_index) == list(range(10)) and set(responses.client) == {"lab"}
    participant = frames["participants"].iloc[0]
    assert participant.status == "completed" and participant.instruction_s == 40.0


def test_reference_mode_and_bad_files(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L08", tmp_path / "ref.json", copy_images=False)
    paths = [e["path"] for e in json.loads(task_file.read_text())["images"].values()]
    assert all(p.startswith("/") for p in paths)
    assert load_task_file(task_file).progress.next_index == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InterpsyError, match="not an interpsy lab task file"):
        load_task_file(bad)
    # a trial without its stored id could not be answered: refused when the file is read
    data = json.loads(task_file.read_text())
    del data["main"][2]["trial_id"]
    (tmp_path / "no_id.json").write_text(json.dumps(data))
    with pytest.raises(InterpsyError, match=r"trial \(main 2\) has no trial_id"):
        load_task_file(tmp_path / "no_id.json")


def test_the_task_file_carries_the_task_type_that_scores_its_answers(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L09", tmp_path / "typed.json")
    data = json.loads(task_file.read_text())
    assert data["task_type"] == "imi_2afc"
    del data["task_type"]  # a file exported before task types existed
    task_file.write_text(json.dumps(data))
    task, sequencer = _offline_run(task_file, tmp_path / "data")
    assert task.task_type == "imi_2afc"
    # the responder errs once in the first practice attempt, then answers right: the type
    # scored the one wrong answer wrong (a second attempt) and the rest right (passed)
    assert (sequencer.progress.status, sequencer.progress.practice_attempts) == ("completed", 2)


def test_sync_reports_a_torn_last_journal_line_and_leaves_the_session_open(built, tmp_path):
    """A lab machine lost power while writing its last answer: the CSV has 10 rows, the journal
    9 and a torn line. `lab sync` said "9 responses (9 new...)" and nothing else."""
    db, key = built
    task_file = export_task(db, key, "L08", tmp_path / "L08")
    _offline_run(task_file, tmp_path / "data")
    journal = store_path(task_file)
    lines = journal.read_text().splitlines(keepends=True)
    last_answer = max(n for n, line in enumerate(lines) if '"kind":"response"' in line)
    torn = lines[last_answer][:40]
    journal.write_text("".join(lines[:last_answer]) + torn)  # power lost mid-line
    report = sync_task(db, task_file)
    assert not report.completed and report.torn == torn
    assert "torn" in report.line() and "not sent" in report.line()
    assert str(journal) in report.line()
    assert frames_from_db(db, key)["participants"].status.tolist() == ["started"]  # not completed


def test_a_second_machines_different_answers_are_kept_as_a_copy_for_review(built, tmp_path):
    """Two machines ran one task file with different answers: the second sync was refused
    and its answers could not be kept. Now they are a separate session, flagged for review."""
    import dataclasses
    import shutil

    db, key = built
    task_file = export_task(db, key, "L09", tmp_path / "a" / "L09")
    other = tmp_path / "b" / task_file.name
    shutil.copytree(task_file.parent, other.parent)
    _offline_run(task_file, tmp_path / "data-a")

    def says_b(step):
        answer = correct_responder()(step)
        if step.phase == "main" and step.position == 0:  # one answer differs
            choice = "b" if answer.answer["choice"] == "a" else "a"
            answer = dataclasses.replace(answer, answer={**answer.answer, "choice": choice})
        return answer

    _offline_run(other, tmp_path / "data-b", respond=says_b)
    first = sync_task(db, task_file)
    assert first.completed and first.copy is None
    second = sync_task(db, other)  # not refused
    assert second.copy and second.copy != first.session_id and second.new == 8
    assert "differ" in second.line() and "review" in second.line()
    again = sync_task(db, other)  # safe to repeat: the same copy, nothing new
    assert (again.copy, again.new) == (second.copy, 0)
    participants = frames_from_db(db, key)["participants"]
    assert len(participants) == 1 and participants.iloc[0].n_sessions == 2
    responses = frames_from_db(db, key)["responses"]
    assert set(responses.session_id) == {first.session_id, second.copy}
    assert "conflicting copy" in participants.iloc[0].exclusion_reasons
