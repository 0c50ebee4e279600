"""Recorders: the session service (database) and an append-only local store (JSON lines).

The local store is what a lab machine without database access writes; `interpsy lab sync`
replays it through the session service, which is idempotent on (session_id, trial_index).
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.db import Database
from experiments.errors import InterpsyError
from experiments.lab.sequence import Recorded, Step, advance
from experiments.lab.task import LabTask, Progress
from experiments.sessions import ResponseIn, SessionService


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _record_after_fragment(line: str) -> dict[str, Any] | None:
    """The complete JSON object that ends `line` after a torn fragment, if there is one."""
    decoder = json.JSONDecoder()
    text = line.rstrip("\n")
    start = text.find("{", 1)
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value, end = None, -1
        if isinstance(value, dict) and end == len(text):
            return value
        start = text.find("{", start + 1)
    return None


class DatabaseRecorder:
    """Writes each response through the session service the moment it is given."""

    kind = "database"

    def __init__(self, service: SessionService, task: LabTask):
        self.service = service
        self.task = task

    def record(self, step: Step, response: ResponseIn, correct: bool, after: Progress) -> Recorded:
        """Store one response; the service's progress is authoritative."""
        result = self.service.record_response(self.task.session_id, self.task.token, response)
        progress = dataclasses.replace(
            after, next_index=result.next_index, main_offset=result.main_offset,
            practice_attempts=result.practice_attempts,
            status="failed_practice" if result.stage == "done" and result.main_offset is None
            else after.status)
        return Recorded(stored=result.stored, server_received_at=result.server_received_at, progress=progress,
                        saved_to="database", rt_flag=result.rt_flag)

    def event(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        self.service.record_event(self.task.session_id, self.task.token, kind, payload)

    def instructions(self, seconds: float) -> None:
        self.service.record_instructions(self.task.session_id, self.task.token, seconds)

    def complete(self) -> str:
        return self.service.complete(self.task.session_id, self.task.token)


class LocalStore:
    """An append-only JSON-lines file; every line is flushed and fsync'd before returning.

    A line cut short by a crash or a full disk (no newline at the end of the file) is moved to
    `<file>.torn` with a warning before the next append, so later lines never join it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def quarantine(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    def repair(self) -> bool:
        """Move a torn last line to the quarantine file; True when there was one."""
        if not self.path.exists():
            return False
        with open(self.path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return False
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return False
            handle.seek(0)
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            with open(self.quarantine, "ab") as torn:
                torn.write(data[keep:] + b"\n")
                torn.flush()
                os.fsync(torn.fileno())
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        warnings.warn(f"{self.path}: its last line was cut short (a crash or a full disk); it "
                      f"was moved to {self.quarantine} and the session goes on from the last "
                      f"complete line", stacklevel=2)
        return True

    def append(self, record: dict[str, Any]) -> None:
        """Add one record durably (after repairing a torn last line)."""
        self.repair()
        line = json.dumps({**record, "at": _now()}, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record in order. A torn last line is skipped; a line where a torn
        fragment was joined by a later record (files written before the repair existed) yields
        that record, with a warning."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    if not line.endswith("\n"):
                        continue  # the torn last line: repair() moves it before the next append
                    salvaged = _record_after_fragment(line)
                    if salvaged is None:
                        raise InterpsyError(f"{self.path}: line {number} is not JSON and holds "
                                            f"no complete record; see {self.quarantine}") from None
                    warnings.warn(f"{self.path}: line {number} starts with a torn fragment; its "
                                  f"complete record is used", stacklevel=2)
                    yield salvaged

    def responses(self) -> list[dict[str, Any]]:
        """Stored responses, one per trial_index (the first wins, like the service)."""
        seen: dict[int, dict[str, Any]] = {}
        for record in self.records():
            if record.get("kind") == "response":
                seen.setdefault(int(record["trial_index"]), record)
        return [seen[i] for i in sorted(seen)]

    def replay(self, task: LabTask) -> Progress:
        """The task's progress after the stored responses (from the progress at export)."""
        progress = dataclasses.replace(task.progress)
        if task.n_practice == 0 and progress.main_offset is None:
            progress.main_offset = 0
        for record in self.records():
            kind = record.get("kind")
            if kind == "response" and int(record["trial_index"]) == progress.next_index:
                progress, _ = advance(progress, task.n_practice, task.practice_pass_mark,
                                      task.practice_max_attempts, bool(record["correct"]))
            elif kind == "instructions":
                progress.instruction_s += float(record["seconds"])
            elif kind == "complete" and progress.status == "in_progress":
                progress.status = "completed"
        return progress


class LocalRecorder:
    """Writes responses to a LocalStore (no database); progress is computed locally."""

    kind = "local"

    def __init__(self, store: LocalStore, task: LabTask):
        self.store = store
        self.task = task

    def record(self, step: Step, response: ResponseIn, correct: bool, after: Progress) -> Recorded:
        if response.trial_index != self.task.progress.next_index:
            raise InterpsyError(f"trial {response.trial_index} out of order; expected "
                                f"{self.task.progress.next_index}")
        self.store.append({"kind": "response", "session_id": self.task.session_id,
                           "correct": correct, "phase": step.phase, **response.model_dump()})
        return Recorded(stored=True, saved_to="local")

    def event(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        self.store.append({"kind": "event", "event": kind, "payload": payload or {}})

    def instructions(self, seconds: float) -> None:
        self.store.append({"kind": "instructions", "seconds": float(seconds)})

    def complete(self) -> str:
        self.store.append({"kind": "complete"})
        return self.task.completion_codes.get("completed", "")


def open_database_recorder(db: Database, task: LabTask) -> DatabaseRecorder:
    """A recorder for a task loaded from `db`."""
    return DatabaseRecorder(SessionService(db), task)
