"""The JSON API the trial page talks to; every call carries the session's token."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import Unauthorized

from experiments.errors import NotFound
from experiments.sessions import PlannedTrial, SessionService, SessionState
from experiments.study import progress
from experiments.study.instructions import block_messages, session_pages
from experiments.study.progress import Slot
from experiments.tasks import TaskType, get_task
from experiments.vocabulary import SessionStatus
from server import lookup
from server.payloads import (
    SESSION_ID,
    CompleteBody,
    EventBody,
    InstructionsBody,
    ResponseBody,
    parse,
)
from server.platforms import completion, timed_out_facts
from server.security import limiter

bp = Blueprint("api", __name__, url_prefix="/api")


def service() -> SessionService:
    return current_app.extensions["interpsy"].service


def _authorised(session_id: str) -> str:
    """Check the id's shape, rate-limit the session and return the bearer token."""
    if not SESSION_ID.match(session_id):
        raise NotFound("unknown session or wrong token")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise Unauthorized("this call needs the session's token (Authorization: Bearer ...)")
    limiter().hit(f"api:{session_id}", current_app.config["INTERPSY"].api_per_minute)
    return token.strip()


def _trial_json(trial: PlannedTrial, task_type: TaskType, public: dict[str, str],
                main_feedback: bool = True) -> dict[str, Any]:
    # No unit, model, catch flag, answer or internal image id (those name the image's role):
    # nothing on the page tells a participant which query is the right one. The answer's
    # scoring comes back in the reply to the saved response.
    return {"trial_id": trial.trial_id, "phase": trial.phase, "position": trial.position,
            "type": task_type.name, "stimulus": task_type.for_page(trial.stimulus, public.__getitem__),
            "images": [public[i] for i in task_type.image_ids(trial.stimulus)],
            "feedback": progress.shows_feedback(trial.phase, main_feedback)}


def _step_json(step: Slot | None) -> dict[str, Any] | None:
    return None if step is None else asdict(step)


def _instructions(spec, state: SessionState, public: dict[str, str]) -> list[dict[str, Any]]:
    """The session's instruction pages (the study's, then the built-in ones), image ids public."""
    pages = session_pages([p.model_dump() for p in spec.instructions], state.condition,
                          spec.timing.button_lock_ms, len(state.practice),
                          state.practice_pass_mark, state.practice_max_attempts, "web",
                          spec.task.type)
    return [{"title": p["title"], "text": p["text"], "example": p.get("example", False),
             "images": [public.get(i, i) for i in p.get("images", [])]} for p in pages]


def state_json(state: SessionState) -> dict[str, Any]:
    """A session's state as the trial page needs it."""
    app_state = current_app.extensions["interpsy"]
    db = app_state.db
    source, info, experiment_id = lookup.session_facts(db, state.session_id)
    spec = lookup.find_experiment(db, state.experiment).spec
    public = app_state.images.public_ids(experiment_id)
    task_type = get_task(spec.task.type)
    timing = spec.timing
    return {
        "session_id": state.session_id, "experiment": state.experiment,
        "condition": state.condition, "status": state.status, "stage": state.stage,
        "next_index": state.next_index, "main_offset": state.main_offset,
        "practice_attempts": state.practice_attempts,
        "practice_pass_mark": state.practice_pass_mark,
        "practice_max_attempts": state.practice_max_attempts,
        "answered_correct_main": state.answered_correct_main,
        "completion_code": state.completion_code if state.stage == "done" else None,
        "task_type": task_type.name, "words": task_type.words(),
        "practice": [_trial_json(t, task_type, public, timing.main_feedback)
                     for t in state.practice],
        "practice_order": state.practice_order,  # repetitions show the trials reshuffled
        # The trial to show next (experiments.study.progress.Slot; None: nothing left to show):
        # `phase` and `position` index the practice or main list, `slot` of `block_size`.
        "next": _step_json(state.next_step),
        "main": [_trial_json(t, task_type, public, timing.main_feedback) for t in state.main],
        "timing": {"button_lock_ms": timing.button_lock_ms,
                   "feedback_delay_ms": timing.feedback_delay_ms,
                   "feedback_ms": timing.feedback_ms, "auto_continue": timing.auto_continue},
        "instructions": _instructions(spec, state, public),
        "messages": block_messages(len(state.practice), state.practice_pass_mark),
        "feedback_form": spec.feedback_form,
        "image_base": url_for("participant.image", experiment=state.experiment, image_id="x")[:-1],
        "min_window": list(current_app.config["INTERPSY"].min_window),
        "completion": completion(source, info),
        "timed_out": (timed_out_facts(state.next_index, state.n_trials, spec)
                      if state.status == SessionStatus.TIMED_OUT and state.completion_code
                      else None),
    }


@bp.get("/health")
def health():
    """Liveness for load balancers and the benchmark."""
    return jsonify(ok=True)


@bp.get("/sessions/<session_id>")
def get_state(session_id: str):
    """The session's trials and where it stands (resume point after a reload)."""
    token = _authorised(session_id)
    return jsonify(state_json(service().state(session_id, token)))


@bp.post("/sessions/<session_id>/responses")
def post_response(session_id: str):
    """Store one answered trial; an identical retry answers 200 with stored=false."""
    token = _authorised(session_id)
    body: ResponseBody = parse(ResponseBody)
    result = service().record_response(session_id, token, body.to_service())
    body = asdict(result)
    body["server_received_at"] = result.server_received_at.isoformat()  # ISO 8601, microseconds
    return jsonify(body), 201 if result.stored else 200


@bp.post("/sessions/<session_id>/events")
def post_event(session_id: str):
    """Log a client event (focus loss, fullscreen exit, image retry...); a repeated key is a no-op."""
    token = _authorised(session_id)
    body: EventBody = parse(EventBody)
    stored = service().record_event(session_id, token, f"client_{body.kind}"[:40], body.payload,
                                    body.client_ms, body.key)
    return jsonify(ok=True, stored=stored), 201 if stored else 200


@bp.post("/sessions/<session_id>/instructions")
def post_instructions(session_id: str):
    """Add the seconds spent on the instruction screens."""
    token = _authorised(session_id)
    body: InstructionsBody = parse(InstructionsBody)
    stored = service().record_instructions(session_id, token, body.seconds, body.key)
    return jsonify(ok=True, stored=stored)


@bp.post("/sessions/<session_id>/complete")
def post_complete(session_id: str):
    """Finish the session once every main trial is stored; returns the completion code."""
    token = _authorised(session_id)
    body: CompleteBody = parse(CompleteBody)
    code = service().complete(session_id, token, body.feedback)
    state = service().state(session_id, token)
    return jsonify(completion_code=code, status=state.status,
                   completion=completion(*lookup.session_facts(
                       current_app.extensions["interpsy"].db, session_id)[:2]))
