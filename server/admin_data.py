"""What the admin pages show: progress that counts, sessions with their platform ids, durations,
catch accuracy and flags (searchable, paged), and the CSV for the recruitment platform."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import String, cast, func, or_, select

from analysis.exclusions import session_flags
from experiments.db import Database
from experiments.db.models import Participant, Response, Session, Task, Trial, Unit
from experiments.sessions.researcher import Owed
from experiments.study.export import pseudonym
from experiments.study.spec import ExperimentSpec
from experiments.tasks import get_task
from experiments.vocabulary import SessionStatus

PAGE_SIZE = 100
# Sessions whose main answers count towards the design's targets: finished, or still going.
COUNTING = (SessionStatus.COMPLETED, SessionStatus.ACTIVE)


@dataclass
class SessionRow:
    """One session as the admin sees it (raw platform ids included: the admin page only)."""

    id: str
    participant: str
    source: str
    platform_id: str
    platform_info: dict[str, Any]
    task: str
    status: str
    started_at: datetime
    last_activity_at: datetime
    finished_at: datetime | None
    responses: int
    main_answered: int
    main_correct: int
    catch_correct: int
    catch_total: int
    practice_attempts: int
    feedback: str
    completion_code: str
    flags: list[str]
    owed: float = 0.0  # timed out after answering, task gone: its share of the reward
    owed_paid: bool = False

    @property
    def duration_s(self) -> float:
        """Seconds from start to end (or to the last activity while not finished)."""
        end = self.finished_at or self.last_activity_at
        return (end - self.started_at).total_seconds()

    @property
    def decision(self) -> str:
        """A suggestion for the platform: approve, review (flags; Prolific allows rejection only
        for explicit checks, so nothing is rejected automatically), pay_partial / paid_partial
        (timed out after answering) or none (not submitted)."""
        if self.status == SessionStatus.COMPLETED:
            return "review" if self.flags else "approve"
        if self.status in (SessionStatus.FAILED_PRACTICE, SessionStatus.EXCLUDED):
            return "review"
        if self.status == SessionStatus.TIMED_OUT and self.completion_code:
            return "paid_partial" if self.owed_paid else "pay_partial"
        return "none"


def flags(db_session, records: list[Session], spec: ExperimentSpec) -> dict[str, list[str]]:
    """Per session: the exclusion criteria it already fails (a hint; the analysis decides),
    from the analysis' rules on its answers so far, after the reasons stored with it."""
    ids = [record.id for record in records]
    option = get_task(spec.task.type).option_column
    answered = db_session.execute(
        select(Response.session_id, Trial.phase, Trial.is_catch, Response.correct,
               Response.attempt, Response.answer)
        .join(Trial, Trial.id == Response.trial_id).where(Response.session_id.in_(ids))).all()
    responses = pd.DataFrame(
        [(sid, phase, bool(catch), bool(correct), attempt, (answer or {}).get(option))
         for sid, phase, catch, correct, attempt, answer in answered],
        columns=["participant_id", "phase", "is_catch", "correct", "attempt",
                 option or "option"]).assign(session_id=lambda f: f["participant_id"])
    sessions = pd.DataFrame({
        "participant_id": ids,
        "total_s": [(r.finished_at - r.started_at).total_seconds()
                    if r.finished_at is not None and r.status == SessionStatus.COMPLETED
                    else None for r in records],
        "instruction_s": [r.instruction_s for r in records],
        "practice_attempts": [r.practice_attempts for r in records]})
    found = session_flags(responses, sessions, spec.model_dump(mode="json"))
    return {r.id: list(r.exclusion_reasons or []) + list(r.time_flags or []) + found[r.id]
            for r in records}


def _search(query: str):
    """Sessions matching `query`: a pseudonym (P0003), a platform id, a session id prefix or a
    status."""
    text = query.strip()
    conditions = [Participant.platform_id.ilike(f"%{text}%"), Session.id.startswith(text.lower()),
                  Session.status == text.lower().replace(" ", "_"),
                  cast(Participant.platform_info, String).ilike(f"%{text}%")]
    if text[:1] in "pP" and text[1:].isdigit():
        conditions.append(Participant.number == int(text[1:]))
    return or_(*conditions)


def sessions(db: Database, experiment_id: int, spec: ExperimentSpec, query: str = "",
             page: int = 1, page_size: int | None = PAGE_SIZE, owed: list[Owed] = ()
             ) -> tuple[list[SessionRow], int]:
    """One page of sessions (newest first) matching `query`, and how many match in all, with
    what `owed` (SessionService.owed) says they are owed."""
    owed_by_id = {o.session_id: o for o in owed}
    base = (select(Session, Participant.number, Participant.source, Participant.platform_id,
                   Participant.platform_info, Task.task_key)
            .join(Participant, Participant.id == Session.participant_id)
            .join(Task, Task.id == Session.task_id)
            .where(Session.experiment_id == experiment_id))
    if query.strip():
        base = base.where(_search(query))
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(base.subquery()))
        ordered = base.order_by(Session.started_at.desc(), Session.id)
        if page_size:
            ordered = ordered.limit(page_size).offset((max(page, 1) - 1) * page_size)
        found = session.execute(ordered).all()
        ids = [row[0].id for row in found]
        answers = {sid: (catch_ok, catch_n, main_ok, main_n)
                   for sid, catch_ok, catch_n, main_ok, main_n in session.execute(
                       select(Response.session_id,
                              func.count().filter(Trial.is_catch.is_(True),
                                                  Response.correct.is_(True)),
                              func.count().filter(Trial.is_catch.is_(True)),
                              func.count().filter(Trial.is_catch.is_(False),
                                                  Trial.phase == "main",
                                                  Response.correct.is_(True)),
                              func.count().filter(Trial.is_catch.is_(False),
                                                  Trial.phase == "main"))
                       .join(Trial, Trial.id == Response.trial_id)
                       .where(Response.session_id.in_(ids)).group_by(Response.session_id))}
        flagged = flags(session, [row[0] for row in found], spec)
    rows = []
    for record, number, source, platform_id, info, task_key in found:
        catch_ok, catch_n, main_ok, main_n = answers.get(record.id, (0, 0, 0, 0))
        due = owed_by_id.get(record.id)
        rows.append(SessionRow(
            id=record.id, participant=pseudonym(number), source=source, platform_id=platform_id,
            platform_info=dict(info or {}), task=task_key, status=record.status,
            started_at=record.started_at, last_activity_at=record.last_activity_at,
            finished_at=record.finished_at, responses=record.n_responses,
            main_answered=main_n, main_correct=main_ok, catch_correct=catch_ok,
            catch_total=catch_n, practice_attempts=record.practice_attempts,
            feedback=record.feedback or "", completion_code=record.completion_code or "",
            flags=flagged[record.id], owed=due.amount if due else 0.0,
            owed_paid=bool(due and due.paid)))
    return rows, total


def progress(db: Database, experiment_id: int) -> tuple[list[dict], list[dict]]:
    """Main non-catch answers per condition x difficulty and per unit, against the design's
    targets: `done` counts completed sessions, `running` sessions still in progress; answers of
    abandoned, returned, excluded or failed sessions do not count."""
    answered = (select(Trial.unit_id, Trial.condition, Trial.difficulty, Session.status,
                       func.count(Response.id))
                .join(Response, Response.trial_id == Trial.id)
                .join(Session, Session.id == Response.session_id)
                .where(Session.experiment_id == experiment_id, Trial.phase == "main",
                       Trial.is_catch.is_(False), Trial.is_calibration.is_(False),
                       Session.status.in_(COUNTING))
                .group_by(Trial.unit_id, Trial.condition, Trial.difficulty, Session.status))
    planned = (select(Task.condition, Task.difficulty, func.count(Trial.id))
               .join(Trial, Trial.task_id == Task.id)
               .where(Task.experiment_id == experiment_id, Trial.phase == "main",
                      Trial.is_catch.is_(False), Trial.is_calibration.is_(False))
               .group_by(Task.condition, Task.difficulty))
    with db.read() as session:
        cells = {(c, d): {"condition": c, "difficulty": d, "target": n, "done": 0, "running": 0}
                 for c, d, n in session.execute(planned).all()}
        units = {u.unit_id: {"unit_id": u.unit_id, "target": u.target_responses, "done": 0,
                             "running": 0}
                 for u in session.scalars(select(Unit).where(
                     Unit.experiment_id == experiment_id, Unit.role == "main")
                     .order_by(Unit.unit_id))}
        for unit_id, condition, difficulty, status, n in session.execute(answered).all():
            column = "done" if status == SessionStatus.COMPLETED else "running"
            if (condition, difficulty) in cells:
                cells[(condition, difficulty)][column] += n
            if unit_id in units:
                units[unit_id][column] += n
    return list(cells.values()), list(units.values())


PLATFORM_CSV_COLUMNS = ("source", "participant_id", "platform_id", "assignment_id",
                        "prolific_session_id", "status", "completion_code", "decision", "owed",
                        "flags",
                        "main_answered", "main_correct", "catch_correct", "catch_total",
                        "duration_s", "started_at", "last_activity_at")


def platform_csv(rows: list[SessionRow]) -> str:
    """One line per session for approving, rejecting and bonusing on Prolific or MTurk (raw
    platform ids: this file stays with the researcher, it is not the dataset)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PLATFORM_CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            row.source, row.participant, row.platform_id,
            row.platform_info.get("assignmentId", ""), row.platform_info.get("SESSION_ID", ""),
            row.status, row.completion_code, row.decision, f"{row.owed:.2f}" if row.owed else "",
            "; ".join(row.flags),
            row.main_answered, row.main_correct, row.catch_correct, row.catch_total,
            f"{row.duration_s:.0f}", row.started_at.isoformat(),
            row.last_activity_at.isoformat()])
    return buffer.getvalue()
