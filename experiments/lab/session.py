"""One lab run end to end (like PsychoPy's ExperimentHandler): screen, keys, task, data, runner."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.db import Database
from experiments.db.models import Session
from experiments.errors import InterpsyError
from experiments.lab.datafile import RunInfo, TrialCsv, data_path
from experiments.lab.display import MonitorChoice
from experiments.lab.sequence import Sequencer
from experiments.lab.store import (
    LAB_DEADLINE_S,
    DatabaseRecorder,
    LocalRecorder,
    LocalStore,
    collected_notices,
    flush_pending,
    log,
    open_database_recorder,
    pending_path,
)
from experiments.lab.task import LabTask
from experiments.sessions import SessionService
from experiments.tasks import get_task


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
    db_retry_every_s: float = 10.0  # while answers wait in the journal, try the database again
    monitor: MonitorChoice = field(default_factory=MonitorChoice)
    info: dict[str, str] = field(default_factory=dict)  # answers to the spec's participant_fields
    script: str | None = None  # piloting: keys by keys.pilot_script (correct, wrong, ...)
    expected_hz: float | None = None  # the screen's refresh rate for the timing check
    timing_frames: int = 120  # frames the timing check at the start flips
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
    from experiments.lab.source import start_lab_session, task_from_state
    if not options.experiment:
        raise InterpsyError("name an experiment (--experiment NAME) or a task file (--task-file)")
    db = Database(options.database_url, deadline_s=LAB_DEADLINE_S)
    task = start_lab_session(db, options.experiment, options.participant, client_info)
    recorder = open_database_recorder(db, task, data_path(options.data_dir, task),
                                      options.db_retry_s, options.db_retry_every_s)
    sent = None
    for folder in _data_dirs(recorder.service, task.session_id, options.data_dir):
        waiting = LocalStore(pending_path(data_path(folder, task)), pending=True)
        sent = flush_pending(recorder.service, task.session_id, waiting, task.token) or sent
    if sent is not None:  # progress as the database now has it
        task = task_from_state(db, recorder.service.state(task.session_id, task.token),
                               task.participant)
        task.token, task.resumed = recorder.task.token, True
        recorder.task = task
    return task, recorder


def _data_dirs(service: SessionService, session_id: str, data_dir: str) -> list[Path]:
    """The folders this session's runs wrote to (recorded in its facts: a resume from another
    working folder still finds answers waiting there), this run's last; records this one."""
    here = Path(data_dir).resolve()
    with service.db.read() as session:
        info = session.get(Session, session_id).client_info or {}
    folders = [Path(f) for f in info.get("data_dirs", []) if Path(f) != here] + [here]
    service.client_facts(session_id, client_info={"data_dirs": [str(f) for f in folders]})
    return folders


def ask_participant_info(fields: list[str], given: dict[str, str]) -> dict[str, str]:
    """The spec's participant fields: from --info, the rest asked in PsychoPy's dialog."""
    values = {f: given.get(f, "") for f in fields}
    if fields and any(f not in given for f in fields):
        from psychopy import gui

        dialog = gui.DlgFromDict(values, title="Participant information", sortKeys=False)
        if not dialog.OK:
            raise InterpsyError("the participant information dialog was cancelled")
    return {k: str(v) for k, v in values.items()}


@contextlib.contextmanager
def psychopy_log(path: Path) -> Iterator[None]:
    """PsychoPy's log of the session (window, frames, keys, interpsy's warnings) in `path`."""
    from psychopy import logging as plog

    path.parent.mkdir(parents=True, exist_ok=True)
    target = plog.LogFile(str(path), level=plog.INFO, filemode="a")

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            plog.warning(f"interpsy: {record.getMessage()}")

    forward = Forward(level=logging.WARNING)
    log.addHandler(forward)
    try:
        yield
    finally:
        log.removeHandler(forward)
        try:
            plog.flush()
        except OSError as exc:  # a full disk: the answers are stored, only the log is short
            log.warning("PsychoPy's log %s could not be written (%s); the answers are stored",
                        path, exc.strerror)
        plog.root.removeTarget(target)
        with contextlib.suppress(OSError):
            target.stream.close()


def check_before_the_window(options: LabOptions) -> None:
    """What can fail before a window opens, as one clear error: the data folder must be
    writable and the database (unless a task file is run) must answer."""
    folder = Path(options.data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".interpsy-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InterpsyError(f"the data folder {folder} cannot be written ({exc.strerror}); "
                            f"nothing was stored: choose a writable folder with --data-dir and "
                            f"run the same command again") from None
    if not options.task_file:
        db = Database(options.database_url, deadline_s=LAB_DEADLINE_S)
        try:
            db.require_current()
        finally:
            db.dispose()


def open_screen(options: LabOptions) -> Any:
    """The lab window (no display: one clear error)."""
    try:
        from experiments.lab.display import open_monitor
        from experiments.lab.screen import LabScreen  # psychopy.visual needs the display

        return LabScreen(options.fullscreen, options.screen, options.size,
                         monitor=open_monitor(options.monitor))
    except Exception as exc:  # pyglet's NoSuchDisplayException, without importing pyglet here
        if type(exc).__name__ != "NoSuchDisplayException":
            raise
        raise InterpsyError(f"no display to draw on ({exc}): run `interpsy lab` on the lab "
                            f"machine's desktop (DISPLAY set), or under xvfb-run to try it "
                            f"without a screen; nothing was started") from None


def run_lab(options: LabOptions, keys: Any = None, screen: Any = None):
    """Check what can fail first, open the window, start or resume the session, run it;
    returns the RunResult."""
    from experiments.lab.keys import EmulatedKeys, open_keys, pilot_script
    from experiments.lab.timing import measure_frame_rate, set_drop_threshold

    check_before_the_window(options)
    own_screen = screen is None
    screen = screen or open_screen(options)
    try:
        frame_rate = measure_frame_rate(screen.win)
        set_drop_threshold(screen.win, frame_rate)
        why = ""
        if keys is None and options.script:
            keys, why = EmulatedKeys(pilot_script(options.script, options.participant)), \
                f"scripted ({options.script})"
        if keys is None:
            keys, why = open_keys(options.keyboard)
        facts = {**screen.facts(), "frame_rate": frame_rate, "keyboard_backend": keys.backend,
                 "lab_session": options.session, **options.extra}
        task, recorder = load_task(options, facts)
        if options.script and isinstance(keys, EmulatedKeys):  # each key after the lock
            keys.script = pilot_script(options.script, options.participant, task.task_type)
            keys.delay_s = task.button_lock_ms / 1000 + 0.05
        try:
            csv_path = data_path(options.data_dir, task)
            with psychopy_log(csv_path.with_suffix(".log")), collected_notices() as notices:
                return _run(options, task, recorder, screen, keys, facts, why, csv_path, notices)
        except (InterpsyError, OSError) as exc:
            if isinstance(recorder, DatabaseRecorder):  # a failed start holds no task
                with contextlib.suppress(Exception):
                    recorder.service.free_unanswered(task.session_id, str(exc))
            raise
    finally:
        if own_screen:
            screen.close()


def _run(options: LabOptions, task: LabTask, recorder: Any, screen: Any, keys: Any,
         facts: dict[str, Any], why: str, csv_path: Path, notices: Any):
    """run_lab once the task is loaded: geometry, timing check, participant info, the run
    (`notices` collects the warnings for the screens between blocks)."""
    from experiments.lab.runner import LabRunner
    from experiments.lab.timing import check_display

    frame_rate = facts["frame_rate"]
    geometry = screen.use_display(task.lab, tuple(get_task(task.task_type).options))
    _, verdict = check_display(screen.win, options.expected_hz, options.timing_frames,
                               draw=lambda: screen.draw_message("Please wait", "", footer=""))
    if not verdict.stable:
        log.warning("display timing is unstable (%s); the session goes on and the verdict is "
                    "recorded; check the screen with `interpsy lab --timing-test`",
                    "; ".join(verdict.reasons))
    geometry.update(verdict.as_dict())
    fields = task.lab.get("participant_fields") or []
    if fields and task.progress.next_index == 0 and not task.resumed:
        geometry["participant_info"] = ask_participant_info(fields, options.info)
    recorder.facts(geometry)
    recorder.event("lab_start", {**facts, **geometry, "keyboard_note": why,
                                 "next_index": task.progress.next_index})
    info = RunInfo(participant=task.participant, session=options.session,
                   exp_name=task.experiment, frame_rate=frame_rate,
                   keyboard_backend=keys.backend)
    with TrialCsv(csv_path, task, info) as writer:
        sequencer = Sequencer(task, recorder, writer, options.break_every)
        runner = LabRunner(screen, keys, sequencer, frame_rate, options.screenshot,
                           options.end_wait_s, notices)
        result = runner.run()
    result.data_file = writer.path
    result.participant_id = task.participant_id
    pending = getattr(recorder, "pending", None)
    if pending is not None and pending.path.exists():
        result.pending = pending.path
    return result
