"""Recorders: the session service (database) and an append-only local journal (JSON lines).

The journal is what a lab machine without database access writes (`interpsy lab sync` replays
it), and where a database session keeps its answers while the database cannot be reached (they
are sent when it is back). Replays go through the session service, idempotent on
(session_id, trial_index) for answers and on a client key for events.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from experiments.db import Database
from experiments.db.models import Response
from experiments.errors import Conflict, InterpsyError
from experiments.lab.sequence import Recorded, Step, Stored
from experiments.lab.task import LabProgress, LabTask
from experiments.sessions import ResponseIn, SessionService
from experiments.sessions.common import LEGACY_ANSWER_KEYS
from experiments.study import progress

log = logging.getLogger("interpsy.lab")
# Errors worth another try: the connection dropped, the server is restarting, the pool is busy.
TRANSIENT = (OperationalError, InterfaceError, PoolTimeout)
LAB_DEADLINE_S = 2.0  # the lab's Database deadline: one wait on the database, at most


@contextlib.contextmanager
def _attached(handler: logging.Handler) -> Iterator[logging.Handler]:
    """`handler` on the lab's log for the block."""
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def warnings_on_terminal() -> contextlib.AbstractContextManager:
    """The lab's warnings (outages and recoveries, torn journal lines, timing) on the
    experimenter's terminal as well as in the session's log."""
    handler = logging.StreamHandler()  # stderr
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("interpsy lab: %(message)s"))
    return _attached(handler)


class Notices(logging.Handler):
    """The lab's warnings since they were last shown (outages, recoveries, timing), for the
    experimenter's line on the screens between blocks."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.waiting.append(record.getMessage())

    def take(self) -> str:
        """The waiting warnings as one line for the experimenter ('' when none), then none."""
        if not self.waiting:
            return ""
        said, self.waiting = self.waiting[-3:], []
        return "For the experimenter: " + " | ".join(said)


def collected_notices() -> contextlib.AbstractContextManager:
    """Notices collecting the lab's warnings for the block (the session's run)."""
    return _attached(Notices())


class Unanswered(SQLAlchemyError):
    """The database gave no answer in time (a silent link, a lock): the journal takes over."""


def call_with_deadline(fn, timeout: float, busy: threading.Event | None = None):
    """fn() in a daemon thread, waiting at most `timeout` seconds for it; returns the event
    that is set when it ends (pass it back as `busy`: no second call starts while one hangs)."""
    if busy is not None and not busy.is_set():
        raise Unanswered("an earlier database call is still waiting for an answer")
    done, box = threading.Event(), {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="interpsy-lab-db", daemon=True).start()
    if not done.wait(timeout):
        raise Unanswered(f"no answer from the database within {timeout:.1f} s", done)
    if "error" in box:
        raise box["error"]
    return box["value"], done


def recorded_at(record: dict[str, Any]) -> datetime | None:
    """When a journal record was written, by the lab machine's clock."""
    return datetime.fromisoformat(record["at"]) if record.get("at") else None


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


class LocalStore:
    """An append-only JSON-lines file; every line is flushed and fsync'd before returning.

    A line cut short by a crash or a full disk (no newline at the end of the file) is moved to
    `<file>.torn` with a warning before the next append, so later lines never join it.
    """

    def __init__(self, path: str | Path, pending: bool = False):
        self.path = Path(path)
        self.pending = pending  # answers waiting for the database (not an offline task's journal)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # appends and a flush's move aside exclude each other (a flush may run in a thread)
        self.lock = threading.Lock()

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
        log.warning("%s: its last line was cut short (a crash or a full disk) and was moved "
                    "to %s; the session goes on from the last complete line, and the trial it "
                    "held is asked again", self.path, self.quarantine)
        return True

    def torn(self) -> str | None:
        """The torn last line (no newline at the end of the file: a crash or a full disk while
        it was written), or None."""
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return None
        return data[data.rfind(b"\n") + 1:].decode("utf-8", errors="replace")

    def append(self, record: dict[str, Any]) -> datetime:
        """Add one record durably (after repairing a torn last line); returns its time."""
        with self.lock:
            self.repair()
            now = datetime.now(UTC)
            line = json.dumps({**record, "at": now.isoformat()}, separators=(",", ":")) + "\n"
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return now

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
                    log.warning("%s: line %d starts with a torn fragment; its complete "
                                "record is used", self.path, number)
                    yield salvaged

    @property
    def saved_to(self) -> str:
        """What the data file says of an answer kept here."""
        return "journal" if self.pending else "local"

    def responses(self, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Stored responses, one per trial_index (the first wins, like the service); from
        `records` when the caller has read them already."""
        seen: dict[int, dict[str, Any]] = {}
        for record in self.records() if records is None else records:
            if record.get("kind") == "response":
                seen.setdefault(int(record["trial_index"]), record)
        return [seen[i] for i in sorted(seen)]

    def replay(self, task: LabTask) -> LabProgress:
        """The task's progress after the stored responses (from the progress at export)."""
        state = dataclasses.replace(task.progress)
        if task.n_practice == 0 and state.main_offset is None:
            state.main_offset = 0
        for record in self.records():
            kind = record.get("kind")
            if kind == "response" and int(record["trial_index"]) == state.next_index:
                state, _ = progress.advance(state, task.rules, bool(record["correct"]))
            elif kind == "instructions":
                state.instruction_s += float(record["seconds"])
            elif kind == "complete" and state.status == "in_progress":
                state.status = "completed"
        return state


class LocalRecorder:
    """Writes responses to a LocalStore (no database); progress is computed locally."""

    kind = "local"

    def __init__(self, store: LocalStore, task: LabTask):
        self.store = store
        self.task = task

    def record(self, step: Step, response: ResponseIn, correct: bool, after: LabProgress) -> Recorded:
        if response.trial_index != self.task.progress.next_index:
            raise InterpsyError(f"trial {response.trial_index} out of order; expected "
                                f"{self.task.progress.next_index}")
        return _journal_response(self.store, self.task.session_id, step, response, correct)

    def event(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        self.store.append({"kind": "event", "event": kind, "payload": payload or {}})

    def instructions(self, seconds: float) -> None:
        self.store.append({"kind": "instructions", "seconds": float(seconds)})

    def complete(self) -> str:
        self.store.append({"kind": "complete"})
        return self.task.completion_codes.get("completed", "")

    def stored(self) -> list[Stored]:
        """The answers in the journal."""
        return _stored_in_journal(self.store)

    def facts(self, info: dict[str, Any]) -> None:
        """Nothing to do: `interpsy lab sync` reads them from the lab_start event."""


def _journal_response(store: LocalStore, session_id: str, step: Step, response: ResponseIn,
                      correct: bool) -> Recorded:
    at = store.append({"kind": "response", "session_id": session_id, "correct": correct,
                       "phase": step.phase, **response.model_dump()})
    return Recorded(stored=True, saved_to=store.saved_to, client_recorded_at=at)


def response_in(record: dict[str, Any]) -> ResponseIn:
    """The answer a journal's response record holds (a journal from before task types holds
    IMI's choice and confidence flat: ResponseIn reads them into `answer`)."""
    return ResponseIn(**{k: record[k] for k in (*ResponseIn.model_fields, *LEGACY_ANSWER_KEYS)
                         if k in record})


def _stored_in_journal(store: LocalStore) -> list[Stored]:
    return [Stored(response_in(r), bool(r["correct"]),
                   Recorded(stored=True, saved_to=store.saved_to,
                            client_recorded_at=recorded_at(r)))
            for r in store.responses()]


@dataclasses.dataclass
class Replay:
    """What replaying a journal through the session service did."""

    responses: int = 0
    new: int = 0
    events: int = 0
    completed: bool = False


def replay_journal(service: SessionService, session_id: str, store: LocalStore,
                   token: str | None = None,
                   records: list[dict[str, Any]] | None = None) -> Replay:
    """Send a journal's answers, events and instruction times (with the lab machine's times)
    and its completion; safe to repeat (events carry a client key). `records`: the journal's
    records when the caller has read them already."""
    done = Replay()
    records = list(store.records()) if records is None else records
    for record in store.responses(records):
        response = response_in(record)
        try:
            result = service.record_response(session_id, token, response, recorded_at(record))
        except Conflict as exc:
            raise InterpsyError(f"{store.path}: trial {response.trial_index}: {exc}; nothing "
                                f"after it was sent") from None
        done.responses += 1
        done.new += int(result.stored)
    for n, record in enumerate(records):
        key = f"journal:{record.get('at')}:{n}"[:64]
        if record.get("kind") == "event":
            done.events += int(service.record_event(
                session_id, token, record["event"],
                {**record.get("payload", {}), "local_at": record.get("at")}, client_key=key))
        elif record.get("kind") == "instructions":
            service.record_instructions(session_id, token, record["seconds"], client_key=key)
    finished = next((r for r in records if r.get("kind") == "complete"), None)
    if finished is not None:
        service.complete(session_id, token, finished_at=recorded_at(finished))
        done.completed = True
    return done


class DatabaseRecorder:
    """Writes each response through the session service the moment it is given.

    A database error is retried with backoff, and a call that gets no answer abandoned, within
    `retry_s` in all; then the answer goes to the pending journal (one warning to the
    experimenter) and the session goes on. Later writes try the database again at most every
    `retry_every_s`, sending the journal first; the end of the session always tries.
    """

    kind = "database"

    def __init__(self, service: SessionService, task: LabTask, pending: LocalStore,
                 retry_s: float = 5.0, retry_every_s: float = 10.0):
        self.service, self.task, self.pending = service, task, pending
        self.retry_s, self.retry_every_s = retry_s, retry_every_s
        self._last_try = float("-inf")
        self._warned = False
        self._busy: threading.Event | None = None  # set when the last call in a thread ended

    def _call(self, fn, *args, **kwargs):
        """fn(*args) with retries and exponential backoff on transient database errors, the
        whole within `retry_s` (a call still hanging then is left to finish on its own)."""
        deadline = time.monotonic() + self.retry_s

        def attempt():
            try:
                value, self._busy = call_with_deadline(
                    lambda: fn(*args, **kwargs), max(0.0, deadline - time.monotonic()),
                    self._busy)
            except Unanswered as exc:
                if len(exc.args) > 1:
                    self._busy = exc.args[1]
                raise Unanswered(exc.args[0]) from None
            return value

        retrying = Retrying(stop=stop_after_delay(self.retry_s),
                            wait=wait_exponential(multiplier=0.1, max=2.0),
                            retry=retry_if_exception_type(TRANSIENT), reraise=True)
        return retrying(attempt)

    def _fall_back(self, exc: Exception) -> None:
        self._last_try = time.monotonic()
        if not self._warned:
            self._warned = True
            log.warning("database error (%s: %s); the session goes on and its answers are kept "
                        "in %s until the database can be reached again (they are sent then, or "
                        "when the session is resumed, or with `interpsy lab flush`)",
                        type(exc).__name__, str(exc).splitlines()[0][:200], self.pending.path)

    def _online(self, now: bool = False) -> bool:
        """Whether to write to the database now: nothing is waiting, or the journal was sent
        (tried at most every `retry_every_s`, or `now`)."""
        if not self.pending.path.exists():
            return self._busy is None or self._busy.is_set()
        if not now and time.monotonic() - self._last_try < self.retry_every_s:
            return False
        try:
            sent = self._call(flush_pending, self.service, self.task.session_id, self.pending,
                              self.task.token)
        except SQLAlchemyError as exc:
            self._fall_back(exc)
            return False
        if sent is None:  # answers were added while it ran: they go with the next try
            self._last_try = time.monotonic()
            return False
        log.warning("the database is back: %d waiting answers were sent", sent.responses)
        self._warned = False
        return True

    def record(self, step: Step, response: ResponseIn, correct: bool, after: LabProgress) -> Recorded:
        """Store one response; the service's progress is authoritative."""
        if self._online():
            try:
                result = self._call(self.service.record_response, self.task.session_id,
                                    self.task.token, response)
            except SQLAlchemyError as exc:
                self._fall_back(exc)
            else:
                progress = dataclasses.replace(
                    after, next_index=result.next_index, main_offset=result.main_offset,
                    practice_attempts=result.practice_attempts,
                    status="failed_practice" if result.stage == "done"
                    and result.main_offset is None else after.status)
                return Recorded(stored=result.stored, server_received_at=result.server_received_at,
                                progress=progress, saved_to="database", rt_flag=result.rt_flag)
        return _journal_response(self.pending, self.task.session_id, step, response, correct)

    def _write(self, record: dict[str, Any], fn, *args, now: bool = False) -> None:
        if self._online(now):
            try:
                self._call(fn, self.task.session_id, self.task.token, *args)
                return
            except SQLAlchemyError as exc:
                self._fall_back(exc)
        self.pending.append({**record, "session_id": self.task.session_id})

    def event(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        self._write({"kind": "event", "event": kind, "payload": payload or {}},
                    self.service.record_event, kind, payload)

    def instructions(self, seconds: float) -> None:
        self._write({"kind": "instructions", "seconds": float(seconds)},
                    self.service.record_instructions, seconds)

    def complete(self) -> str:
        """Finish the session in the database now if it answers (the waiting answers first),
        else in the journal (a call still hanging from an outage gets `retry_s` to end)."""
        if self._busy is not None:
            self._busy.wait(self.retry_s)
        self._write({"kind": "complete"}, self.service.complete, now=True)
        return self.task.completion_codes.get("completed", "")

    def facts(self, info: dict[str, Any]) -> None:
        """Add what the run measured (monitor, sizes) to the session's facts; the lab_start
        event carries them too, so an outage here loses nothing."""
        with contextlib.suppress(SQLAlchemyError):
            self._call(self.service.client_facts, self.task.session_id, client_info=info)

    def stored(self) -> list[Stored]:
        """The answers stored so far: in the database, then any still waiting in the journal."""
        def read() -> list[Stored]:
            with self.service.db.read() as session:
                rows = session.scalars(select(Response).where(
                    Response.session_id == self.task.session_id)
                    .order_by(Response.trial_index)).all()
            return [Stored(ResponseIn(trial_index=r.trial_index, trial_id=r.trial_id,
                                      answer=r.answer, rt_ms=r.rt_ms,
                                      stim_onset_ms=r.stim_onset_ms, response_ms=r.response_ms,
                                      extra=r.client_extra or {}),
                           r.correct, Recorded(stored=True, server_received_at=r.server_received_at,
                                               saved_to="database", rt_flag=r.rt_flag,
                                               client_recorded_at=r.client_recorded_at))
                    for r in rows]
        found = {s.response.trial_index: s for s in self._call(read)}
        for waiting in _stored_in_journal(self.pending):
            found.setdefault(waiting.response.trial_index, waiting)
        return [found[i] for i in sorted(found)]


def pending_path(data_file: str | Path) -> Path:
    """The journal beside a session's data file where answers wait for the database."""
    file = Path(data_file)
    return file.with_name(file.stem + ".pending.jsonl")


def flush_pending(service: SessionService, session_id: str, store: LocalStore,
                  token: str | None = None) -> Replay | None:
    """Send a pending journal to the database, then move it aside (`*.sent-<time>.jsonl`).
    None when there is none, or when records were added while it was sent (it stays: a replay
    is idempotent, the next flush sends them)."""
    if not store.path.exists():
        return None
    records = list(store.records())
    done = replay_journal(service, session_id, store, token, records)
    with store.lock:
        if len(list(store.records())) != len(records):
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        os.replace(store.path, store.path.with_name(store.path.name.replace(
            ".pending.jsonl", f".sent-{stamp}.jsonl")))
    return done


def flush_pending_file(db: Database, path: str | Path) -> Replay:
    """`interpsy lab flush`: send one pending journal (its session is named in its records)."""
    store = LocalStore(path, pending=True)
    if not store.path.is_file():
        raise InterpsyError(f"{store.path}: no such pending journal")
    session_id = next((r["session_id"] for r in store.records() if r.get("session_id")), None)
    if session_id is None:
        raise InterpsyError(f"{store.path}: no record names its session; nothing was sent")
    db.require_current()
    done = flush_pending(SessionService(db), session_id, store)
    if done is None:
        raise InterpsyError(f"{store.path}: answers were added while it was sent (is the "
                            f"session still running?); run the command again")
    return done


def open_database_recorder(db: Database, task: LabTask, data_file: str | Path,
                           retry_s: float = 5.0, retry_every_s: float = 10.0) -> DatabaseRecorder:
    """A recorder for a task loaded from `db`, its pending journal beside `data_file`."""
    return DatabaseRecorder(SessionService(db), task, LocalStore(pending_path(data_file),
                                                                 pending=True),
                            retry_s, retry_every_s)
