"""One lab run end to end (like PsychoPy's ExperimentHandler): screen, keys, task, data, runner."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments.db import Database
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.sequence import Sequencer
from experiments.lab.store import (
    LocalRecorder,
    LocalStore,
    flush_pending,
    open_database_recorder,
)
from experiments.lab.task import LabTask


@dataclass
class LabOptions:
    """What `interpsy lab` was asked to do."""

    experiment: str | None = None
    participant: str = ""
    session: str = "001"
    database_url: str | None = None
    task_file: str | None = None
    fullscreen: bool = False
    screen: int = 0
    size: tuple[int, int] = (1024, 768)
    data_dir: str = "lab-data"
    break_every: int = 0
    keyboard: str = "auto"  # auto | psychtoolbox | pyglet
    screenshot: str | None = None
    end_wait_s: float | None = None
    db_retry_s: float = 5.0  # retry a failing database write this long, then use the journal
    db_retry_every_s: float = 30.0  # while answers wait in the journal, try the database again
    extra: dict[str, Any] = field(default_factory=dict)


def load_task(options: LabOptions, client_info: dict[str, Any]) -> tuple[LabTask, Any]:
    """The task and its recorder: from the database (answers still waiting in the session's
    pending journal are sent first), or from a task file and its local journal."""
    if options.task_file:
        from experiments.lab.taskfile import load_task_file, store_path
        store = LocalStore(store_path(options.task_file))
        task = load_task_file(options.task_file, store)
        recorder = LocalRecorder(store, task)
        return task, recorder
    from experiments.errors import InterpsyError
    from experiments.lab.source import start_lab_session, task_from_state
    if not options.experiment:
        raise InterpsyError("name an experiment (--experiment NAME) or a task file (--task-file)")
    db = Database(options.database_url)
    task = start_lab_session(db, options.experiment, options.participant, client_info)
    recorder = open_database_recorder(db, task, data_path(options.data_dir, task),
                                      options.db_retry_s, options.db_retry_every_s)
    sent = flush_pending(recorder.service, task.session_id, recorder.pending, task.token)
    if sent is not None:  # progress as the database now has it
        task = task_from_state(db, recorder.service.state(task.session_id, task.token),
                               task.participant)
        task.token, task.resumed = recorder.task.token, True
        recorder.task = task
    return task, recorder


def run_lab(options: LabOptions, keys: Any = None, screen: Any = None):
    """Open the window, start or resume the session, run it; returns the RunResult."""
    from experiments.lab.keys import open_keys
    from experiments.lab.runner import LabRunner
    from experiments.lab.screen import LabScreen
    from experiments.lab.timing import measure_frame_rate, set_drop_threshold

    own_screen = screen is None
    screen = screen or LabScreen(options.fullscreen, options.screen, options.size)
    try:
        frame_rate = measure_frame_rate(screen.win)
        set_drop_threshold(screen.win, frame_rate)
        why = ""
        if keys is None:
            keys, why = open_keys(options.keyboard)
        facts = {**screen.facts(), "frame_rate": frame_rate, "keyboard_backend": keys.backend,
                 "lab_session": options.session, **options.extra}
        task, recorder = load_task(options, facts)
        recorder.event("lab_start", {**facts, "keyboard_note": why,
                                     "next_index": task.progress.next_index})
        info = RunInfo(participant=task.participant, session=options.session,
                       exp_name=task.experiment, frame_rate=frame_rate,
                       keyboard_backend=keys.backend)
        with TrialCsv(data_path(options.data_dir, task), task, info) as writer:
            sequencer = Sequencer(task, recorder, writer, options.break_every)
            runner = LabRunner(screen, keys, sequencer, frame_rate, options.screenshot,
                               options.end_wait_s)
            result = runner.run()
        result.data_file = writer.path
        result.participant_id = task.participant_id
        pending = getattr(recorder, "pending", None)
        if pending is not None and pending.path.exists():
            result.pending = pending.path
        return result
    finally:
        if own_screen:
            screen.close()
