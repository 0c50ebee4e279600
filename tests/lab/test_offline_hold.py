"""Exported lab tasks: held until synced or released; a late sync is stored, never refused;
offline sessions keep the lab machine's times and facts."""
from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import update

from experiments.cli import cli
from experiments.db.models import Session
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.sequence import Sequencer, run_headless
from experiments.lab.store import LocalRecorder, LocalStore
from experiments.lab.taskfile import export_task, load_task_file, store_path, sync_task
from experiments.sessions import SessionService, utcnow
from experiments.study.export import frames_from_db
from tests.lab.conftest import correct_responder

LAB_FACTS = {"screen_width": 1280, "screen_height": 1024, "window_width": 1280,
             "window_height": 1024, "device_pixel_ratio": 1.0, "frame_rate": 75.0,
             "user_agent": "PsychoPy/2026.2.1 (Linux)", "keyboard_backend": "pyglet"}


def _run_offline(task_file, data_dir) -> None:
    """What `interpsy lab --task-file` stores: lab_start with the machine's facts, then a run."""
    task = load_task_file(task_file)
    store = LocalStore(store_path(task_file))
    recorder = LocalRecorder(store, task)
    recorder.event("lab_start", {**LAB_FACTS, "next_index": task.progress.next_index})
    info = RunInfo(participant=task.participant, session="001", exp_name=task.experiment)
    with TrialCsv(data_path(data_dir, task), task, info) as writer:
        sequencer = Sequencer(task, recorder, writer)
        recorder.instructions(30.0)
        run_headless(sequencer, correct_responder())


def _age(db, session_id: str, hours: float) -> None:
    """Move a session's start and last activity `hours` into the past (a day in the lab)."""
    then = utcnow() - timedelta(hours=hours)
    with db.write() as session:
        session.execute(update(Session).where(Session.id == session_id)
                        .values(started_at=then, last_activity_at=then))


def test_an_exported_task_is_held_all_day_and_its_evening_sync_counts(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L01", tmp_path / "L01.json")
    exported = load_task_file(task_file)
    _age(db, exported.session_id, hours=9)  # exported in the morning
    service = SessionService(db)
    assert service.expire_sessions(key) == 0
    service.release_reservations(key)  # the web admin's flood release leaves lab tasks alone
    others = [service.start(key, f"web{n}", "link") for n in range(3)]
    assert exported.task_id not in {s.task_id for s in others}

    _run_offline(task_file, tmp_path / "data")
    report = sync_task(db, task_file)
    assert report.completed and report.late_session is None and report.new == 8

    frames = frames_from_db(db, key)
    row = frames["participants"].set_index("participant_id").loc[exported.participant_id]
    assert row.status == "completed" and not row.late_sync
    assert row.lab_id == "L01"  # the lab's own id maps to the export's pseudonym
    assert frames["participants"].lab_id.isna().sum() == 3  # web participants: none
    # the lab machine's clock: minutes of work, not the nine hours since export
    assert 0 <= row.total_s < 120
    assert (row.screen_width, row.screen_height, row.frame_rate) == (1280, 1024, 75.0)
    assert row.user_agent.startswith("PsychoPy/2026.2.1")
    responses = frames["responses"]
    mine = responses[responses.participant_id == exported.participant_id]
    assert mine.client_recorded_at.notna().all()
    assert (mine.client_recorded_at <= mine.server_received_at).all()


def test_a_released_task_reassigned_then_synced_late_is_kept_as_a_flagged_session(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L02", tmp_path / "L02.json")
    exported = load_task_file(task_file)
    result = CliRunner().invoke(cli, ["lab", "release", str(task_file), "--database", db.url])
    assert result.exit_code == 0, result.output
    assert "released" in result.output
    service = SessionService(db)
    taker = service.start(key, "web-next", "link")
    assert taker.task_id == exported.task_id  # the freed task went to the next participant

    _run_offline(task_file, tmp_path / "data")  # the lab ran it anyway
    report = sync_task(db, task_file)
    assert report.late_session and report.completed and report.new == 8
    assert "late" in report.line()
    again = sync_task(db, task_file)
    assert (again.late_session, again.new, again.already) == (report.late_session, 0, 8)

    frames = frames_from_db(db, key)
    participants = frames["participants"].set_index("participant_id")
    late = participants.loc[exported.participant_id]
    assert late.late_sync and late.status == "completed" and late.n_sessions == 2
    responses = frames["responses"]
    assert set(responses[responses.participant_id == exported.participant_id].session_id) == \
        {report.late_session}
    # the participant now holding the task is untouched and can go on
    assert service.state(taker.session_id, None).status == "in_progress"


def test_a_session_synced_after_it_timed_out_but_nobody_took_its_task_just_goes_on(built, tmp_path):
    db, key = built
    task_file = export_task(db, key, "L03", tmp_path / "L03.json")
    exported = load_task_file(task_file)
    with db.write() as session:  # a file exported by an older version: no hold
        session.execute(update(Session).where(Session.id == exported.session_id)
                        .values(held_offline=False))
    _age(db, exported.session_id, hours=5)
    assert SessionService(db).expire_sessions(key) == 1
    _run_offline(task_file, tmp_path / "data")
    report = sync_task(db, task_file)
    assert report.completed and report.late_session is None
    assert frames_from_db(db, key)["participants"].status.tolist() == ["completed"]
