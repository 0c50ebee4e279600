"""Task files for lab machines without database access: export, load, and sync the results.

`export_task` starts the participant's session in the database, holds its task until it is
synced or released (`release_task`), and writes a JSON file with the trials, the rules and the
images (copied next to it, or referenced by absolute path). Running from the file appends
responses to `<file>.responses.jsonl`; `sync_task` replays that journal through the session
service (idempotent on trial_index) with the lab machine's times and facts, and completes the
session when the run completed. A task released and given to someone else before its sync is
still stored, in a late session of its own.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.db import Database
from experiments.db.models import Experiment, Session
from experiments.errors import InterpsyError
from experiments.lab.source import start_lab_session
from experiments.lab.store import LocalStore, recorded_at, replay_journal, response_in
from experiments.lab.task import LabProgress, LabTask, trial_from_dict
from experiments.sessions import SessionService
from experiments.stimulus_set import sha256_file
from experiments.tasks.registry import DEFAULT_TASK

FORMAT = "interpsy-lab-task"
VERSION = 1


def store_path(task_file: str | Path) -> Path:
    """Where a run from `task_file` appends its responses."""
    file = Path(task_file)
    return file.with_name(file.stem + ".responses.jsonl")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80]


def export_task(db: Database, experiment: str, participant: str, out: str | Path,
                copy_images: bool = True) -> Path:
    """Reserve `participant`'s session and write its self-contained task file; returns its path."""
    file = Path(out)
    if file.suffix != ".json":
        file = file.with_suffix(".json")
    if file.exists():
        raise InterpsyError(f"{file} exists; choose another --out (task files are not overwritten)")
    task = start_lab_session(db, experiment, participant, {"exported_task": True})
    SessionService(db).hold_offline(task.session_id)
    file.parent.mkdir(parents=True, exist_ok=True)
    images: dict[str, dict[str, str]] = {}
    folder = file.with_name(file.stem + "_images")
    for n, image_id in enumerate(sorted(task.images)):
        source = Path(task.images[image_id])
        if not source.is_file():
            raise InterpsyError(f"image {image_id}: file {source} is missing")
        if copy_images:
            folder.mkdir(exist_ok=True)
            target = folder / f"{n:05d}_{_safe(image_id)}{source.suffix}"
            shutil.copyfile(source, target)
            path = target.relative_to(file.parent).as_posix()
        else:
            path = str(source.resolve())
        images[image_id] = {"path": path, "sha256": sha256_file(source)}
    data = {
        "format": FORMAT, "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(), "database": db.describe(),
        "experiment": task.experiment, "session_id": task.session_id, "token": task.token,
        "participant": task.participant, "participant_id": task.participant_id,
        "task_id": task.task_id, "condition": task.condition, "difficulty": task.difficulty,
        "practice_pass_mark": task.practice_pass_mark,
        "practice_max_attempts": task.practice_max_attempts,
        "timing": {"button_lock_ms": task.button_lock_ms,
                   "feedback_delay_ms": task.feedback_delay_ms, "feedback_ms": task.feedback_ms,
                   "main_feedback": task.main_feedback, "auto_continue": task.auto_continue},
        "instructions": task.instructions, "completion_codes": task.completion_codes,
        "progress": dataclasses.asdict(task.progress), "lab": task.lab,
        "task_type": task.task_type,
        "practice": [t.record() for t in task.practice],
        "main": [t.record() for t in task.main], "images": images}
    tmp = file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, file)
    return file


def read_task_file(path: str | Path) -> dict[str, Any]:
    """The raw JSON of a task file, checked for its format."""
    file = Path(path)
    if not file.is_file():
        raise InterpsyError(f"{file}: no such task file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InterpsyError(f"{file}: not a task file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InterpsyError(f"{file}: not an interpsy lab task file")
    if data.get("version") != VERSION:
        raise InterpsyError(f"{file}: task file version {data.get('version')}, this interpsy "
                            f"reads version {VERSION}")
    return data


def load_task_file(path: str | Path, store: LocalStore | None = None) -> LabTask:
    """A LabTask from a task file, its progress replayed from the local store."""
    file = Path(path)
    data = read_task_file(file)
    images = {}
    for image_id, entry in data["images"].items():
        where = Path(entry["path"])
        images[image_id] = where if where.is_absolute() else file.parent / where
    task = LabTask(
        experiment=data["experiment"], session_id=data["session_id"],
        participant=data["participant"], participant_id=data["participant_id"],
        task_id=data["task_id"], condition=data["condition"], difficulty=data["difficulty"],
        practice=[trial_from_dict(t) for t in data["practice"]],
        main=[trial_from_dict(t) for t in data["main"]], images=images,
        practice_pass_mark=data["practice_pass_mark"],
        practice_max_attempts=data["practice_max_attempts"], **data["timing"],
        instructions=data["instructions"], completion_codes=data["completion_codes"],
        progress=LabProgress(**data["progress"]), token=data.get("token"),
        lab=data.get("lab") or {}, task_type=data.get("task_type", DEFAULT_TASK))
    missing = task.missing_images()
    if missing:
        raise InterpsyError(f"{file}: {len(missing)} image files are missing (first: "
                            f"{task.images[missing[0]]})")
    store = store or LocalStore(store_path(file))
    task.resumed = store.path.exists() and any(True for _ in store.records())
    task.progress = store.replay(task)
    return task


@dataclass
class SyncReport:
    """What one sync did."""

    session_id: str
    responses: int = 0
    new: int = 0
    events: int = 0
    completed: bool = False
    late_session: str | None = None  # where the answers went when the task had been given away
    torn: str | None = None  # the journal's torn last line (not sent)
    journal: str = ""
    copy: str | None = None  # the session its answers went to when they differ from the stored

    @property
    def already(self) -> int:
        """Responses the database had before this sync."""
        return self.responses - self.new

    def line(self) -> str:
        done = "; session completed" if self.completed else ""
        late = (f"; its task had been released and given to someone else, so the answers are "
                f"kept as late session {self.late_session}" if self.late_session else "")
        torn = (f"; WARNING: the journal's last line is torn (a crash or a full disk while it "
                f"was written): {self.journal} ends with {self.torn[:60]!r}. That answer was not "
                f"sent and the session stays open: run the task file again on the lab machine "
                f"(the trial is asked again; its data CSV's last row shows what was answered), "
                f"then sync" if self.torn else "")
        copy = (f"; its answers differ from those another machine stored for this task, so "
                f"they are kept as session {self.copy}, excluded with the reason 'conflicting "
                f"copy' until you review both" if self.copy else "")
        return (f"session {self.session_id}: {self.responses} responses ({self.new} new, "
                f"{self.already} already stored), {self.events} events{done}{late}{copy}{torn}")


def _session_of(db: Database, file: Path, data: dict[str, Any]) -> SessionService:
    """The session service, after checking that the task's session is in this database."""
    db.require_current()
    with db.read() as session:  # read as is: a state() call could reassign a lapsed session
        record = session.get(Session, data["session_id"])
        key = session.get(Experiment, record.experiment_id).key if record else None
    if key is None:
        raise InterpsyError(f"{file}: session {data['session_id']} is not in {db.describe()}; "
                            f"use the database the task was exported from "
                            f"({data['database']})")
    if key != data["experiment"]:
        raise InterpsyError(f"{file}: session {data['session_id']} belongs to {key}, not "
                            f"{data['experiment']}")
    return SessionService(db)


def _machine_facts(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The screen, frame rate and software of the first run, from its lab_start event."""
    for record in records:
        if record.get("kind") == "event" and record.get("event") == "lab_start":
            return {k: v for k, v in record.get("payload", {}).items()
                    if k not in ("next_index", "keyboard_note")}
    return {}


def release_task(db: Database, task_file: str | Path) -> str:
    """Free an exported task's trials for other participants; returns the session's status."""
    file = Path(task_file)
    data = read_task_file(file)
    return _session_of(db, file, data).release_offline(data["session_id"])


def sync_task(db: Database, task_file: str | Path, store: LocalStore | None = None) -> SyncReport:
    """Upload a task file's journal through the session service, with the lab machine's times
    and facts; safe to repeat. Never refused: see `SessionService.adopt_offline`."""
    file = Path(task_file)
    data = read_task_file(file)
    store = store or LocalStore(store_path(file))
    service = _session_of(db, file, data)
    target = service.adopt_offline(data["session_id"])
    records = list(store.records())
    copy = None
    answers = [response_in(r) for r in store.responses(records)]
    if service.first_difference(target, answers) is not None:
        # another machine ran this task file and stored other answers: keep these apart
        copy = target = service.adopt_copy(data["session_id"], str(records[0].get("at")))
    if records:
        service.client_facts(target, started_at=recorded_at(records[0]),
                              client_info=_machine_facts(records))
    done = replay_journal(service, target, store, records=records)
    report = SyncReport(data["session_id"], done.responses, done.new, done.events,
                        done.completed,
                        late_session=target if target not in (data["session_id"], copy) else None,
                        torn=store.torn(), journal=str(store.path), copy=copy)
    finished = next((r for r in records if r.get("kind") == "complete"), None)
    answers = [r for r in records if r.get("kind") == "response"]
    if answers:  # a failed practice ends at its last answer
        service.client_facts(target, finished_at=recorded_at(finished or answers[-1]))
    return report
