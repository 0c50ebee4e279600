"""Task files for lab machines without database access: export, load, and sync the results.

`export_task` starts (reserves) the participant's session in the database and writes a JSON
file with the trials, the rules and the images (copied next to it, or referenced by absolute
path). Running from the file appends responses to `<file>.responses.jsonl`; `sync_task`
replays that store through the session service (idempotent on trial_index) and completes the
session when the run completed.
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
from experiments.errors import Conflict, InterpsyError, NotFound
from experiments.lab.source import start_lab_session
from experiments.lab.store import LocalStore
from experiments.lab.task import LabTask, Progress, trial_from_dict, trial_to_dict
from experiments.sessions import ResponseIn, SessionService
from experiments.stimulus_set import sha256_file

FORMAT = "interpsy-lab-task"
VERSION = 1
SYNC_SUFFIX = ".synced.json"


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
                   "feedback_delay_ms": task.feedback_delay_ms, "feedback_ms": task.feedback_ms},
        "instructions": task.instructions, "completion_codes": task.completion_codes,
        "progress": dataclasses.asdict(task.progress),
        "practice": [trial_to_dict(t) for t in task.practice],
        "main": [trial_to_dict(t) for t in task.main], "images": images}
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
        progress=Progress(**data["progress"]), token=data.get("token"))
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
    already: int = 0
    events: int = 0
    completed: bool = False

    def line(self) -> str:
        done = "; session completed" if self.completed else ""
        return (f"session {self.session_id}: {self.responses} responses ({self.new} new, "
                f"{self.already} already stored), {self.events} events{done}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def sync_task(db: Database, task_file: str | Path, store: LocalStore | None = None) -> SyncReport:
    """Upload a task file's local results through the session service; safe to repeat."""
    file = Path(task_file)
    data = read_task_file(file)
    store = store or LocalStore(store_path(file))
    db.require_current()
    service = SessionService(db)
    session_id = data["session_id"]
    try:
        state = service.state(session_id, None)  # trusted: the researcher holds the database
    except NotFound:
        raise InterpsyError(f"{file}: session {session_id} is not in {db.describe()}; sync to "
                            f"the database the task was exported from ({data['database']})") from None
    if state.experiment != data["experiment"]:
        raise InterpsyError(f"{file}: session {session_id} belongs to {state.experiment}, "
                            f"not {data['experiment']}")
    report = SyncReport(session_id)
    for record in store.responses():
        response = ResponseIn(**{k: record[k] for k in ResponseIn.model_fields if k in record})
        try:
            result = service.record_response(session_id, None, response)
        except Conflict as exc:
            raise InterpsyError(f"{file}: trial {response.trial_index}: {exc}; nothing after it "
                                f"was synced") from None
        report.responses += 1
        report.new += int(result.stored)
        report.already += int(not result.stored)
    marker = file.with_name(file.stem + SYNC_SUFFIX)
    done = json.loads(marker.read_text()) if marker.exists() else {"records": 0}
    others = [r for r in store.records() if r.get("kind") in ("event", "instructions")]
    for n, record in enumerate(others):
        if n < done["records"]:
            continue
        if record["kind"] == "event":
            service.record_event(session_id, None, record["event"],
                                 {**record.get("payload", {}), "local_at": record.get("at")})
            report.events += 1
        else:
            service.record_instructions(session_id, None, record["seconds"])
        done["records"] = n + 1
        _write_json(marker, done)
    if any(r.get("kind") == "complete" for r in store.records()):
        service.complete(session_id, None)
        report.completed = True
    return report
