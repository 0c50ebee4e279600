"""Faults in a lab session with database access: a kill between the database write and the CSV
append, and a database that cannot be reached for a while. Nothing is lost or written twice."""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments.db import Database
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.sequence import Sequencer, run_headless
from experiments.lab.session import LabOptions, load_task
from experiments.lab.store import warnings_on_terminal
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from tests.conftest import _PG_REASON, drop_postgres_schema, postgres_schema_url
from tests.lab.conftest import correct_responder, lab_spec
from tests.tcp_proxy import CuttableLink

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import os, signal, sys
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.sequence import Sequencer, run_headless
from experiments.lab.session import LabOptions, load_task
from tests.lab.conftest import correct_responder

url, key, data_dir = sys.argv[1:4]
task, recorder = load_task(LabOptions(experiment=key, participant="P02", database_url=url,
                                      data_dir=data_dir), {})

class DiesBeforeTheRow(TrialCsv):
    def write(self, step, *args):
        if step.trial_index == 3:  # the answer is in the database, its row not yet written
            os.kill(os.getpid(), signal.SIGKILL)
        super().write(step, *args)

info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
with DiesBeforeTheRow(data_path(data_dir, task), task, info) as writer:
    run_headless(Sequencer(task, recorder, writer), correct_responder())
"""


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _session(options: LabOptions, stop_after: int | None = None):
    task, recorder = load_task(options, {})
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    with TrialCsv(data_path(options.data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, recorder, writer)
        run_headless(sequencer, correct_responder(), stop_after)
    return task, sequencer, writer.path


def test_a_kill_between_the_database_write_and_the_csv_row_is_filled_on_resume(built, tmp_path):
    db, key = built
    data_dir = tmp_path / "data"
    child = subprocess.run([sys.executable, "-c", CHILD, db.url, key, str(data_dir)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(frames_from_db(db, key)["responses"]) == 4  # trial 3 reached the database
    (csv_file,) = data_dir.glob("*.csv")
    assert [r["trial_index"] for r in _rows(csv_file)] == ["0", "1", "2"]

    _, sequencer, path = _session(LabOptions(experiment=key, participant="P02",
                                             database_url=db.url, data_dir=str(data_dir)))
    assert path == csv_file and sequencer.progress.status == "completed"
    rows = _rows(csv_file)
    assert [int(r["trial_index"]) for r in rows] == list(range(8))
    assert "restored" in rows[3]["saved_to"] and rows[3]["choice"]
    stored = frames_from_db(db, key)["responses"].set_index("trial_index")
    assert rows[3]["choice"] == stored.loc[3, "choice"]
    assert float(rows[3]["rt_ms"]) == pytest.approx(stored.loc[3, "rt_ms"])


@pytest.fixture
def cuttable_postgres(toy_set, tmp_path):
    """(Database for the researcher, URL through a cuttable link, the link, experiment key)."""
    if _PG_REASON:
        pytest.skip(_PG_REASON)
    schema, url = postgres_schema_url()
    db = Database(url)
    db.upgrade()
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    link = CuttableLink(("127.0.0.1", 5432))
    try:
        yield db, url.replace("127.0.0.1:5432", f"127.0.0.1:{link.port}"), link, key
    finally:
        link.close()
        db.dispose()
        drop_postgres_schema(schema)


@pytest.mark.postgres
def test_a_database_outage_mid_session_falls_back_to_the_journal_and_catches_up(
        cuttable_postgres, tmp_path, caplog):
    db, url, link, key = cuttable_postgres
    options = LabOptions(experiment=key, participant="P03", database_url=url,
                         data_dir=str(tmp_path / "data"), db_retry_s=0.5, db_retry_every_s=0.0)
    task, recorder = load_task(options, {})
    respond = correct_responder()
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    with caplog.at_level(logging.WARNING, logger="interpsy.lab"), \
            TrialCsv(data_path(options.data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, recorder, writer)
        for _ in range(3):
            sequencer.answer(respond(sequencer.current()))
        link.cut()
        for _ in range(3):  # the participant goes on; no error reaches the screen
            outcome = sequencer.answer(respond(sequencer.current()))
            assert outcome.stored
        link.restore()
        run_headless(sequencer, respond)
    assert sequencer.progress.status == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.name == "interpsy.lab"]
    assert len([w for w in warnings if "kept in" in w]) == 1, warnings
    frames = frames_from_db(db, key)
    assert list(frames["responses"].trial_index) == list(range(8))
    assert frames["participants"].status.tolist() == ["completed"]
    rows = _rows(writer.path)
    assert [int(r["trial_index"]) for r in rows] == list(range(8))
    assert [r["saved_to"] for r in rows[3:6]] == ["journal"] * 3
    assert not list(Path(options.data_dir).glob("*.pending.jsonl"))


def _outage(options: LabOptions, link: CuttableLink, before: int, during: int):
    """Answer `before` trials, cut the database link, answer `during` more; the recorder."""
    task, recorder = load_task(options, {})
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    respond = correct_responder()
    with TrialCsv(data_path(options.data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, recorder, writer)
        for n in range(before + during):
            if n == before:
                link.cut()
            assert sequencer.answer(respond(sequencer.current())).stored
    return recorder


@pytest.mark.postgres
def test_answers_kept_in_the_journal_reach_the_database_when_the_session_resumes(
        cuttable_postgres, tmp_path):
    db, url, link, key = cuttable_postgres
    options = LabOptions(experiment=key, participant="P04", database_url=url,
                         data_dir=str(tmp_path / "data"), db_retry_s=1.0, db_retry_every_s=60.0)
    _outage(options, link, before=1, during=2)
    assert len(list(Path(options.data_dir).glob("*.pending.jsonl"))) == 1
    link.restore()  # the experimenter starts the same session again
    _, sequencer, path = _session(options)
    assert sequencer.progress.status == "completed"
    assert [int(r["trial_index"]) for r in _rows(path)] == list(range(8))
    assert list(frames_from_db(db, key)["responses"].trial_index) == list(range(8))


@pytest.mark.postgres
def test_interpsy_lab_flush_sends_a_pending_journal(cuttable_postgres, tmp_path):
    from click.testing import CliRunner

    from experiments.cli import cli

    db, url, link, key = cuttable_postgres
    options = LabOptions(experiment=key, participant="P05", database_url=url,
                         data_dir=str(tmp_path / "data"), db_retry_s=1.0, db_retry_every_s=60.0)
    _outage(options, link, before=0, during=2).event("abort", {"reason": "escape"})
    (pending,) = Path(options.data_dir).glob("*.pending.jsonl")
    link.restore()
    result = CliRunner().invoke(cli, ["lab", "flush", str(pending), "--database", db.url])
    assert result.exit_code == 0, result.output
    assert "2 answers sent (2 new), 1 events" in result.output
    assert list(frames_from_db(db, key)["responses"].trial_index) == [0, 1]
    assert not pending.exists()


def _timed_answers(sequencer, respond, n: int) -> list[float]:
    """Answer `n` trials; how long each answer held the participant (seconds)."""
    waits = []
    for _ in range(n):
        started = time.monotonic()
        assert sequencer.answer(respond(sequencer.current())).stored
        waits.append(time.monotonic() - started)
    return waits


def _waits_through(start, end, seconds: float, sequencer, respond) -> list[float]:
    """Answer 3 trials while a fault lasts (`start()`; `end()` after `seconds` at the latest,
    and after the answers); how long each answer held the participant."""
    start()
    timer = threading.Timer(seconds, end)
    timer.start()
    try:
        return _timed_answers(sequencer, respond, 3)
    finally:
        timer.cancel()
        end()


def _lab_run(options: LabOptions):
    task, recorder = load_task(options, {})
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    writer = TrialCsv(data_path(options.data_dir, task), task, info)
    return task, recorder, writer


@pytest.mark.postgres
def test_a_silent_database_link_holds_no_trial_for_the_outage(cuttable_postgres, tmp_path):
    """A link that stops forwarding without closing (trial 3, 40 s) froze the screen for the
    whole outage: now each answer waits a few seconds at most, then the journal takes it."""
    db, url, link, key = cuttable_postgres
    options = LabOptions(experiment=key, participant="P06", database_url=url,
                         data_dir=str(tmp_path / "data"))  # the lab's own deadlines
    task, recorder, writer = _lab_run(options)
    respond = correct_responder()
    with writer:
        sequencer = Sequencer(task, recorder, writer)
        _timed_answers(sequencer, respond, 3)
        waits = _waits_through(link.silence, link.restore, 40, sequencer, respond)
        run_headless(sequencer, respond)
    assert max(waits) < 15, waits  # not the outage's 40 s
    assert sequencer.progress.status == "completed"
    assert [r["saved_to"] for r in _rows(writer.path)[3:6]] == ["journal"] * 3
    # the waiting answers reach the database by the end of the session
    frames = frames_from_db(db, key)
    assert list(frames["responses"].trial_index) == list(range(8))
    assert frames["participants"].status.tolist() == ["completed"]


def test_a_locked_sqlite_database_holds_no_trial_for_the_lock(tmp_path, toy_set, capsys):
    """A 30 s write lock on the SQLite file froze each write for the engine's 30 s busy
    timeout: now each answer waits a few seconds at most, then the journal takes it, and the
    experimenter's terminal says so (not only the session's log)."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'lab.sqlite3'}"
    db = Database(url)
    db.upgrade()
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    options = LabOptions(experiment=key, participant="P07", database_url=url,
                         data_dir=str(tmp_path / "data"))
    task, recorder, writer = _lab_run(options)
    respond = correct_responder()
    locker = sqlite3.connect(tmp_path / "lab.sqlite3", isolation_level=None,
                             check_same_thread=False)
    with writer, warnings_on_terminal():
        sequencer = Sequencer(task, recorder, writer)
        _timed_answers(sequencer, respond, 3)
        def unlock() -> None:
            with contextlib.suppress(sqlite3.OperationalError):  # ended already
                locker.rollback()

        waits = _waits_through(lambda: locker.execute("BEGIN EXCLUSIVE"), unlock, 30,
                               sequencer, respond)
        locker.close()
        run_headless(sequencer, respond)
    assert max(waits) < 15, waits
    terminal = capsys.readouterr().err
    assert "interpsy lab: database error" in terminal and "kept in" in terminal
    assert "the database is back" in terminal
    assert [r["saved_to"] for r in _rows(writer.path)[3:6]] == ["journal"] * 3
    frames = frames_from_db(db, key)
    assert list(frames["responses"].trial_index) == list(range(8))
    assert frames["participants"].status.tolist() == ["completed"]
    db.dispose()


@pytest.mark.postgres
def test_a_resume_from_another_folder_sends_the_answers_waiting_in_the_first(
        cuttable_postgres, tmp_path, monkeypatch):
    """Resumed with another --data-dir (the default is relative to the working folder), the
    session did not find its waiting journal, asked trials 3-5 again, and the later flush was
    refused. The folders a session ran in are recorded: a resume from anywhere sends them."""
    db, url, link, key = cuttable_postgres
    first = LabOptions(experiment=key, participant="P08", database_url=url,
                       data_dir="lab-data", db_retry_s=1.0, db_retry_every_s=60.0)
    (tmp_path / "room-a").mkdir()
    monkeypatch.chdir(tmp_path / "room-a")
    _outage(first, link, before=3, during=3)
    link.restore()
    monkeypatch.chdir(tmp_path)  # the experimenter's next terminal starts elsewhere
    _, sequencer, path = _session(LabOptions(**{**first.__dict__, "data_dir": "other"}))
    assert sequencer.progress.status == "completed"
    frames = frames_from_db(db, key)
    assert list(frames["responses"].trial_index) == list(range(8))
    # the first folder's waiting answers went in as they were given, not asked again
    rows = _rows(path)
    assert [int(r["trial_index"]) for r in rows] == list(range(8))
    assert all("restored" in r["saved_to"] for r in rows[3:6]), [r["saved_to"] for r in rows]
    assert not list((tmp_path / "room-a" / "lab-data").glob("*.pending.jsonl"))
