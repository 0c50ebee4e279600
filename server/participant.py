"""Participant pages: the entry link (Prolific, MTurk, plain), consent, the trial page, images."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, send_file
from werkzeug.exceptions import BadRequest

from experiments.errors import Refused
from experiments.sessions import SessionService
from server import lookup
from server.security import (
    MTURK_HOSTS,
    client_ip,
    limiter,
    read_entry,
    same_origin_or_absent,
    sign_entry,
)

bp = Blueprint("participant", __name__)
PLATFORM_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MOBILE = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Windows Phone", re.IGNORECASE)
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
REFUSALS = {
    "repeat": ("You have already taken part",
               "Our records show that you have already taken part in this study (or an earlier "
               "one of this series). To keep the data clean, each person can take part only "
               "once. Please return the study on your platform; thank you for your interest!"),
    "full": ("This study is full", "All places in this study are taken right now. Please "
             "return it on your platform; you will not be penalised."),
    "closed": ("This study is closed", "This study is not accepting participants at the "
               "moment. Please return it on your platform."),
    "blocked": ("This study cannot be resumed", "This study cannot be continued after it was "
                "interrupted. Please return it on your platform and contact the researchers."),
    "timed_out": ("Your session timed out", "You were away for too long and your trials were "
                  "given to someone else. Please return the study on your platform."),
    "source": ("Wrong link", "This study does not recruit through this link. Please use the "
               "link from your recruitment platform."),
}


def _app_state():
    return current_app.extensions["interpsy"]


def _param(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not PLATFORM_VALUE.match(value):
        raise BadRequest(f"the link's parameter {name} is malformed; please use the link from "
                         f"your recruitment platform")
    return value


def _entry_facts(experiment_key: str) -> dict[str, Any] | None:
    """Who is arriving: source, platform id and info; None for an MTurk preview."""
    if request.args.get("PROLIFIC_PID"):
        info = {k: _param(k) for k in ("STUDY_ID", "SESSION_ID")}
        return {"exp": experiment_key, "source": "prolific", "platform_id": _param("PROLIFIC_PID"),
                "info": {k: v for k, v in info.items() if v}}
    if "assignmentId" in request.args or "hitId" in request.args:
        if request.args.get("assignmentId") == MTURK_PREVIEW:
            return None
        submit = (request.args.get("turkSubmitTo") or "").rstrip("/")
        if submit and submit not in MTURK_HOSTS:
            raise BadRequest("turkSubmitTo is not an MTurk address")
        worker = _param("workerId")
        if not worker or not _param("assignmentId"):
            raise BadRequest("the MTurk link lacks workerId or assignmentId")
        return {"exp": experiment_key, "source": "mturk", "platform_id": worker,
                "info": {"assignmentId": _param("assignmentId"), "hitId": _param("hitId"),
                         "turkSubmitTo": submit or MTURK_HOSTS[0]}}
    return {"exp": experiment_key, "source": "link", "platform_id": _param("id"), "info": {}}


@bp.get("/x/<experiment>/")
def entry(experiment: str):
    """The study link: consent form (or the MTurk preview, or a closed/unknown study page)."""
    info = lookup.find_experiment(_app_state().db, experiment)
    facts = _entry_facts(info.key)
    if facts is None:
        return render_template("preview.html", experiment=info, spec=info.spec)
    if info.status != "open":
        return _refusal("closed", 403)
    if facts["source"] not in info.spec.recruitment.platforms:
        return _refusal("source", 403)
    return render_template("consent.html", experiment=info, spec=info.spec,
                           entry_token=sign_entry(facts), facts=facts,
                           min_window=current_app.config["INTERPSY"].min_window)


def _int_field(name: str, low: int, high: int) -> int | None:
    value = request.form.get(name, "")
    try:
        number = int(float(value))
    except ValueError:
        return None
    return number if low <= number <= high else None


def _client_info() -> dict[str, Any]:
    info: dict[str, Any] = {name: _int_field(name, 0, 20_000) for name in (
        "screen_width", "screen_height", "window_width", "window_height")}
    try:
        ratio = float(request.form.get("device_pixel_ratio", ""))
        info["device_pixel_ratio"] = ratio if 0 < ratio < 20 else None
    except ValueError:
        info["device_pixel_ratio"] = None
    info["user_agent"] = (request.headers.get("User-Agent") or "")[:300]
    info["touch"] = request.form.get("touch") == "1"
    return info


def _refusal(reason: str, status: int = 403):
    title, text = REFUSALS.get(reason, ("Cannot start", "This study cannot be started now."))
    return render_template("message.html", title=title, text=text), status


@bp.post("/x/<experiment>/start")
def start(experiment: str):
    """Consent given: check the screen, then assign a task (or resume) and open the trial page."""
    config = current_app.config["INTERPSY"]
    limiter().hit(f"entry:{client_ip()}", config.entry_per_minute)
    same_origin_or_absent()
    facts = read_entry(request.form.get("entry", ""))
    info = lookup.find_experiment(_app_state().db, experiment)
    if facts.get("exp") != info.key:
        raise BadRequest("this form belongs to another study")
    if request.form.get("website"):  # the honeypot: invisible to people, filled by bots
        current_app.logger.warning("honeypot filled on %s from %s", info.key, client_ip())
        return render_template("message.html", title="Thank you",
                               text="Your submission was received."), 200
    if request.form.get("consent") != "yes":
        return render_template("message.html", title="Consent needed",
                               text="You can only take part after giving your consent. "
                                    "Go back to read and accept the consent form."), 400
    client = _client_info()
    if MOBILE.search(client["user_agent"]):
        return render_template("message.html", title="Desktop computer needed",
                               text="This study needs a desktop or laptop computer with a "
                                    "mouse; it cannot be done on a phone or tablet."), 403
    min_w, min_h = config.min_window
    if (client["window_width"] or 0) < min_w or (client["window_height"] or 0) < min_h:
        return render_template("message.html", title="Window too small",
                               text=f"This study needs a browser window of at least {min_w} x "
                                    f"{min_h} pixels. Please maximise your window (or use a "
                                    f"larger screen) and open the study link again."), 403
    service: SessionService = _app_state().service
    try:
        state = service.start(info.key, facts.get("platform_id"), facts["source"], client="web",
                              client_info=client, platform_info=facts.get("info") or {})
    except Refused as exc:
        return _refusal(exc.reason)
    target = f"/x/{info.key}/run#s={state.session_id}&t={state.token}"
    return redirect(target, code=303)


@bp.get("/x/<experiment>/run")
def run(experiment: str):
    """The trial page; the session id and token come in the URL fragment or localStorage."""
    info = lookup.find_experiment(_app_state().db, experiment)
    return render_template("run.html", experiment=info)


@bp.get("/img/<experiment>/<path:image_id>")
def image(experiment: str, image_id: str):
    """A stimulus image by its public id: the compressed derivative, cacheable for a year."""
    state = _app_state()
    experiment_id = state.images.experiment_ids.get(experiment)
    if experiment_id is None:
        experiment_id = lookup.find_experiment(state.db, experiment).id
        if "@" in experiment:  # name@version always names the same experiment: cache it
            state.images.experiment_ids[experiment] = experiment_id
    path = state.images.file_for(experiment_id, image_id)
    response = send_file(path, mimetype=state.images.mimetype, max_age=31_536_000,
                         conditional=True, etag=True)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
