"""The per-session CSV: append-only, one row per answered trial, flushed and fsync'd per row.

Columns: the response dataset's for the task type (experiments.study.schema, client = lab), then the
usual PsychoPy ones (participant, session, date, expName, psychopyVersion, frameRate), then lab
timing facts. A resumed session appends to the same file; the header is written once. The
file follows the store (database or journal), which is written first: `reconcile` restores a
row the process died before writing and moves rows of answers never stored to
`<file>.unstored.csv`, so the file has one row per stored answer.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from experiments.lab.sequence import Answer, Recorded, Step
from experiments.lab.task import LabTask
from experiments.study.schema import MACHINE_COLUMNS, tables_for
from experiments.tasks import get_task

PSYCHOPY_COLUMNS = ("participant", "session", "date", "expName", "psychopyVersion", "frameRate")
LAB_COLUMNS = ("keyboard_backend", "input", "key", "dropped_frames", "n_frames",
               "frame_interval_ms", "saved_to", "written_at")


def columns_for(task_type: str) -> tuple[str, ...]:
    """The data file's columns for a session of `task_type`."""
    people = [c for c in tables_for([task_type])["responses"] if c not in MACHINE_COLUMNS]
    return (*people, *PSYCHOPY_COLUMNS, *LAB_COLUMNS)


def psychopy_version() -> str:
    """The installed PsychoPy version without importing it ('' when not installed)."""
    try:
        return metadata.version("psychopy")
    except metadata.PackageNotFoundError:
        return ""


def psychopy_date(now: datetime | None = None) -> str:
    """PsychoPy's data.getDateStr() format: 2026-05-09_14h03.27.512."""
    now = now or datetime.now()
    return now.strftime("%Y-%m-%d_%Hh%M.%S.") + f"{now.microsecond // 1000:03d}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "-", text).strip("-") or "x"


def data_path(data_dir: str | Path, task: LabTask) -> Path:
    """The session's file: <participant>_<experiment>_<session_id>.csv (stable across resumes)."""
    name = f"{_safe(task.participant)}_{_safe(task.experiment)}_{task.session_id[:12]}.csv"
    return Path(data_dir) / name


@dataclass
class RunInfo:
    """The PsychoPy-style facts of one run (what ExperimentHandler.extraInfo holds)."""

    participant: str
    session: str
    exp_name: str
    frame_rate: float | None = None
    keyboard_backend: str = ""
    date: str = ""
    psychopy_version: str = ""

    def __post_init__(self) -> None:
        self.date = self.date or psychopy_date()
        self.psychopy_version = self.psychopy_version or psychopy_version()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


class TrialCsv:
    """Appends one row per trial and makes it durable (flush + fsync) before returning."""

    def __init__(self, path: str | Path, task: LabTask, info: RunInfo):
        self.path = Path(path)
        self.task = task
        self.columns = columns_for(task.task_type)
        self.info = info
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115  (closed in close())
        if new:
            self._append(list(self.columns))

    def _append(self, cells: list[Any]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerow([_cell(c) for c in cells])
        self._handle.write(buffer.getvalue())
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def row(self, step: Step, answer: Answer, correct: bool, recorded: Recorded) -> dict[str, Any]:
        """The row's values by column."""
        trial, task, extra = step.trial, self.task, answer.extra
        return {
            "experiment": task.experiment, "participant_id": task.participant_id,
            "session_id": task.session_id, "task_id": task.task_id, "client": "lab",
            "condition": trial.condition, "difficulty": trial.difficulty,
            "query_distribution": trial.query_distribution, "phase": step.phase,
            "is_catch": trial.is_catch, "is_calibration": trial.is_calibration,
            "trial_index": step.trial_index, "model": trial.model,
            "layer": trial.layer, "channel": trial.channel, "unit_id": trial.unit_id,
            "batch": trial.batch,
            **get_task(task.task_type).response_values(trial.stimulus, trial.answer_key,
                                                       answer.answer, correct),
            "rt_ms": answer.rt_ms,
            "stim_onset_ms": answer.stim_onset_ms, "response_ms": answer.response_ms,
            "server_received_at": recorded.server_received_at, "attempt": step.attempt,
            "rt_flag": recorded.rt_flag, "client_recorded_at": recorded.client_recorded_at,
            "client_extra": json.dumps(extra, sort_keys=True) if extra else None,
            "participant": self.info.participant, "session": self.info.session,
            "date": self.info.date, "expName": self.info.exp_name,
            "psychopyVersion": self.info.psychopy_version, "frameRate": self.info.frame_rate,
            "keyboard_backend": extra.get("keyboard_backend", self.info.keyboard_backend),
            "input": extra.get("input"), "key": extra.get("key"),
            "dropped_frames": extra.get("dropped_frames"), "n_frames": extra.get("n_frames"),
            "frame_interval_ms": extra.get("frame_interval_ms"), "saved_to": recorded.saved_to,
            "written_at": datetime.now(UTC)}

    def write(self, step: Step, answer: Answer, correct: bool, recorded: Recorded) -> None:
        """Append and fsync one trial's row."""
        values = self.row(step, answer, correct, recorded)
        self._append([values[c] for c in self.columns])

    @property
    def unstored_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".unstored.csv")

    def _append_unstored(self, rows: list[dict[str, Any]]) -> None:
        new = not self.unstored_path.exists()
        with open(self.unstored_path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(self.columns)
            for row in rows:
                writer.writerow([_cell(row.get(c)) for c in self.columns])
            handle.flush()
            os.fsync(handle.fileno())

    def write_unstored(self, step: Step, answer: Answer, correct: bool,
                       recorded: Recorded) -> None:
        """Keep the row of an answer the store refused, beside the data file."""
        self._append_unstored([self.row(step, answer, correct, recorded)])

    def _read(self) -> tuple[list[dict[str, str]], bool]:
        """The file's rows, and whether it needs rewriting: its last line was cut short
        (dropped) or its header is not today's columns (a file of an older version)."""
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        torn = bool(text) and not text.endswith("\n")
        if torn:
            text = text[:text.rfind("\n") + 1]
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        return rows, torn or tuple(reader.fieldnames or self.columns) != self.columns

    def reconcile(self, rows: list[tuple[Step, Answer, bool, Recorded]]) -> None:
        """Make the file hold exactly one row per stored answer, in trial order."""
        existing, rewrite = self._read()
        stored = {step.trial_index: (step, answer, correct, recorded)
                  for step, answer, correct, recorded in rows}
        kept: dict[int, dict[str, Any]] = {}
        aside = []
        for row in existing:
            index = int(row["trial_index"]) if row.get("trial_index", "").isdigit() else -1
            if index in stored and index not in kept and \
                    not (row.get("saved_to") or "").startswith("error"):
                kept[index] = row
            else:
                aside.append(row)
        missing = sorted(set(stored) - set(kept))
        if not (missing or aside or rewrite):
            return
        for index in missing:
            step, answer, correct, recorded = stored[index]
            row = self.row(step, answer, correct, recorded)
            row["saved_to"] = f"{recorded.saved_to} (row restored from the store on resume)"
            kept[index] = {c: _cell(row[c]) for c in self.columns}
        if aside:
            self._append_unstored(aside)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        for index in sorted(kept):
            writer.writerow([kept[index].get(c, "") for c in self.columns])
        self._handle.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._handle = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> TrialCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
