"""Participant pages: the entry link (Prolific, MTurk, plain), consent, the trial page, images."""
from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.exceptions import BadRequest

from experiments.errors import InterpsyError, Refused
from experiments.sessions import SessionService
from experiments.sessions.entry import EntryStatus
from experiments.tasks import get_task
from experiments.vocabulary import FINISHED, SessionStatus
from server import lookup
from server.platforms import completion, entry_facts, timed_out_facts, unverified
from server.security import (
    client_ip,
    limiter,
    network_key,
    read_entry,
    same_origin_or_absent,
    sign_entry,
)

bp = Blueprint("participant", __name__)
MOBILE = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Windows Phone", re.IGNORECASE)
# Statuses whose page, when the study link is opened again, shows the code again.
ENDED = (*FINISHED, SessionStatus.TIMED_OUT)
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
    "unverified": ("This link is not valid", "The participant ids in this link do not belong "
                   "to this study. Please open the study from your recruitment platform."),
    "network": ("Too many sessions from your network", "Several sessions of this study are "
                "already running from your internet connection. Please try again later, or "
                "return the study on your platform; you will not be penalised."),
}


def _app_state():
    return current_app.extensions["interpsy"]


def participant_tag(experiment_key: str, platform_id: str | None) -> str:
    """A short keyed tag of who entered (no platform id: 'anonymous'): the page offers to
    continue a stored session only to the same person."""
    if not platform_id:
        return "anonymous"
    message = f"participant:{experiment_key}:{platform_id}".encode()
    return hmac.new(current_app.secret_key.encode(), message, hashlib.sha256).hexdigest()[:20]


@bp.get("/x/<experiment>/")
def entry(experiment: str):
    """The study link: consent form (or the MTurk preview, a completion page for someone who
    finished, or a closed/unknown study page). Platform ids leave the address bar at once."""
    state = _app_state()
    info = lookup.find_experiment(state.db, experiment)
    token = request.args.get("e")
    if token is not None:
        facts = read_entry(token)
        if facts.get("exp") != info.key:
            raise BadRequest("this link belongs to another study")
    else:
        facts = entry_facts(info.key)
        if facts is None:
            return render_template("preview.html", experiment=info, spec=info.spec)
        if facts["platform_id"] or facts["info"]:
            # Redirect to a URL with the ids encrypted, so that neither the Referer of what the
            # page loads next nor any later log line carries them.
            return redirect(url_for("participant.entry", experiment=info.key,
                                    e=sign_entry(facts)), code=303)
        token = sign_entry(facts)
    if info.status != "open":
        return _refusal("closed", 403)
    if facts["source"] not in info.spec.recruitment.platforms:
        return _refusal("source", 403)
    problem = unverified(facts, info.spec)
    if problem:
        current_app.logger.warning("unverified entry on %s: %s", info.key, problem)
        return _refusal("unverified", 403)
    returning = False
    if facts.get("platform_id"):
        entry_status = state.service.entry_status(info.key, facts["platform_id"])
        if entry_status.status in ENDED:
            page = _finished_again(info, facts, entry_status)
            if page is not None:  # else its task was free again: it goes on
                return page
        if entry_status.status in ("repeat", "blocked"):
            return _refusal(entry_status.status, 403)
        returning = entry_status.status == "in_progress"
    return render_template("consent.html", experiment=info, spec=info.spec,
                           entry_token=token, facts=facts, returning=returning,
                           participant=participant_tag(info.key, facts.get("platform_id")),
                           min_window=current_app.config["INTERPSY"].min_window)


def _finished_again(info, facts: dict[str, Any], entry_status: EntryStatus) -> str | None:
    """Someone who finished (or timed out after answering) opens the link again: the code,
    what they are owed and the platform's way back (with MTurk's current assignment), never a
    refusal."""
    owed = None
    if entry_status.status == SessionStatus.TIMED_OUT:
        state = _app_state().service.state(entry_status.session_id, None)
        if state.status != SessionStatus.TIMED_OUT:
            return None
        owed = timed_out_facts(state.next_index, state.n_trials, info.spec)
    return render_template("finished.html", experiment=info, status=entry_status.status,
                           code=entry_status.code or "", owed=owed,
                           completion=completion(facts["source"], facts.get("info") or {}),
                           spec=info.spec)


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
                              client_info=client, platform_info=facts.get("info") or {},
                              network_key=network_key(client_ip()))
    except Refused as exc:
        if exc.reason in ENDED:
            return _finished_again(info, facts, service.entry_status(info.key,
                                                                     facts["platform_id"]))
        return _refusal(exc.reason)
    # The fragment never reaches a server or a log; `e` lets a lost page reopen the entry link.
    tag = participant_tag(info.key, facts.get("platform_id"))
    target = (f"/x/{info.key}/run#s={state.session_id}&t={state.token}&p={tag}"
              f"&e={request.form.get('entry', '')}")
    return redirect(target, code=303)


@bp.get("/x/<experiment>/run")
def run(experiment: str):
    """The trial page; the session id and token come in the URL fragment or localStorage."""
    info = lookup.find_experiment(_app_state().db, experiment)
    return render_template("run.html", experiment=info)


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page says: the same icon, no 404s in the log."""
    return send_file(Path(current_app.static_folder) / "favicon.svg", mimetype="image/svg+xml",
                     max_age=86_400)


@bp.get("/static/js/tasks/<name>.js")
def task_script(name: str):
    """A task type's page module (its `page_script`, in the type's folder), or one of the page's
    modules the types share (./choices.js); served under one path so that a type's module can
    import those beside it and ../screens.js."""
    try:
        script = get_task(name).page_script_file()
    except InterpsyError:
        script = Path(current_app.static_folder) / "js" / "tasks" / f"{name}.js"
    if script is None or not script.is_file():
        abort(404)
    return send_file(script, mimetype="text/javascript")


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
