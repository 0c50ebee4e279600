"""Load a lab task from the database: start or resume the participant's session (source lab)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from experiments.db import Database
from experiments.db.images import image_files
from experiments.db.models import (
    Experiment,
    Participant,
    Response,
    Session,
    Trial,
)
from experiments.errors import InterpsyError, Refused
from experiments.lab.task import LabProgress, LabTask
from experiments.sessions import PlannedTrial, SessionService, SessionState
from experiments.study.export import pseudonym
from experiments.study.spec import ExperimentSpec
from experiments.tasks import get_task


def start_lab_session(db: Database, experiment: str, participant: str,
                      client_info: dict[str, Any] | None = None) -> LabTask:
    """Start (or resume, per the spec's resume policy) `participant`'s session as a LabTask."""
    if not participant or not participant.strip():
        raise InterpsyError("a participant id is needed (--participant P01)")
    db.require_current()
    service = SessionService(db)
    state = service.start(experiment, participant.strip(), "lab", client="lab",
                          client_info=client_info or {})
    if state.stage == "done":
        raise Refused(f"session {state.session_id} of {participant} is {state.status}",
                      state.status)
    return task_from_state(db, state, participant.strip())


def task_from_state(db: Database, state: SessionState, participant: str) -> LabTask:
    """Everything a lab run needs for a session the service has just started or resumed."""
    with db.read() as session:
        record = session.get(Session, state.session_id)
        experiment = session.get(Experiment, record.experiment_id)
        spec = ExperimentSpec.model_validate(experiment.spec_json)
        number = session.get(Participant, record.participant_id).number
        rows = session.scalars(select(Trial).where(Trial.task_id == record.task_id)
                               .order_by(Trial.ordinal)).all()
        practice = [PlannedTrial.of(t) for t in rows if t.phase == "practice"]
        main = [PlannedTrial.of(t) for t in rows if t.phase == "main"]
        task_type = get_task(spec.task.type)
        wanted = {i for t in practice + main for i in task_type.image_ids(t.stimulus)}
        images = {image.image_id: image.path for image in image_files(session, experiment.id)
                  if image.image_id in wanted}
        attempt_correct = 0
        if state.main_offset is None and practice:
            first = state.next_index - state.next_index % len(practice)
            attempt_correct = session.scalar(select(func.count()).select_from(Response).where(
                Response.session_id == record.id, Response.trial_index >= first,
                Response.correct.is_(True))) or 0
        instruction_s = record.instruction_s or 0.0
        key = experiment.key
    missing = sorted(wanted - set(images))
    if missing:
        raise InterpsyError(f"experiment {key}: no image file recorded for "
                            f"{', '.join(missing[:3])}")
    progress = LabProgress(next_index=state.next_index, main_offset=state.main_offset,
                        practice_attempts=state.practice_attempts,
                        attempt_correct=attempt_correct,
                        main_correct=state.answered_correct_main, status=state.status,
                        instruction_s=instruction_s)
    pages = [p.model_dump() for p in spec.instructions]
    return LabTask(
        experiment=state.experiment, session_id=state.session_id, participant=participant,
        participant_id=pseudonym(number), task_id=state.task_id, condition=state.condition,
        difficulty=state.difficulty, practice=practice, main=main, images=images,
        practice_pass_mark=state.practice_pass_mark,
        practice_max_attempts=state.practice_max_attempts,
        button_lock_ms=spec.timing.button_lock_ms, feedback_delay_ms=spec.timing.feedback_delay_ms,
        feedback_ms=spec.timing.feedback_ms, main_feedback=spec.timing.main_feedback,
        auto_continue=spec.timing.auto_continue,
        instructions=pages,
        completion_codes=spec.recruitment.completion_codes.model_dump(),
        progress=progress, resumed=state.resumed, token=state.token,
        lab=spec.lab.model_dump(), task_type=spec.task.type)
