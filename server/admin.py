"""Admin pages for researchers: experiments, progress, sessions, export, open/close."""
from __future__ import annotations

import hmac
import io
import tempfile
import zipfile
from collections.abc import Callable
from functools import wraps
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
    session,
    url_for,
)
from sqlalchemy import func, select

from experiments.db.models import Experiment, Response, Session, Task
from experiments.study.export import export_experiment
from experiments.vocabulary import MARKED
from server import admin_auth, admin_data, lookup
from server.security import check_csrf, client_ip, limiter, network_key

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _state():
    return current_app.extensions["interpsy"]


@bp.before_request
def _enabled() -> None:
    if not current_app.config["INTERPSY"].admin_password:
        abort(404, "the admin pages are disabled: set INTERPSY_ADMIN_PASSWORD to enable them")


def login_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        if not admin_auth.session_valid(_state().db, session.get("admin_sid")):
            session.pop("admin_sid", None)
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)
    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Password login (INTERPSY_ADMIN_PASSWORD); locked out with backoff after failures."""
    error, status = None, 200
    if request.method == "POST":
        limiter().hit(f"login:{client_ip()}", current_app.config["INTERPSY"].login_per_minute)
        check_csrf()
        db, network = _state().db, network_key(client_ip())
        wait = admin_auth.locked_for(db, network)
        if wait:
            error, status = (f"too many wrong passwords from your network; try again in "
                             f"{wait} s"), 429
        else:
            given = request.form.get("password", "").encode()
            expected = current_app.config["INTERPSY"].admin_password.encode()
            if hmac.compare_digest(given, expected):
                admin_auth.record_success(db, network)
                session.clear()
                session["admin_sid"] = admin_auth.open_session(db, network)
                target = request.args.get("next", "")
                return redirect(target if target.startswith("/admin/") else url_for("admin.index"))
            lock = admin_auth.record_failure(db, network)
            current_app.logger.warning("failed admin login from network %s", network[:8])
            error, status = "wrong password", 401
            if lock:
                error += f"; further tries are locked for {lock} s"
    response = current_app.make_response((render_template("admin/login.html", error=error),
                                          status))
    if status == 429:
        response.headers["Retry-After"] = str(admin_auth.locked_for(_state().db,
                                                                    network_key(client_ip())))
    return response


@bp.post("/logout")
@login_required
def logout():
    check_csrf()
    admin_auth.close_session(_state().db, session.get("admin_sid"))
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def index():
    """All experiments with status, tasks, sessions by status and responses."""
    rows = []
    with _state().db.read() as db:
        for exp in db.scalars(select(Experiment).order_by(Experiment.name, Experiment.version)):
            by_status = dict(db.execute(select(Session.status, func.count()).where(
                Session.experiment_id == exp.id).group_by(Session.status)).all())
            n_tasks = db.scalar(select(func.count()).select_from(Task).where(
                Task.experiment_id == exp.id))
            n_responses = db.scalar(select(func.count()).select_from(Response).join(
                Session, Session.id == Response.session_id).where(Session.experiment_id == exp.id))
            rows.append({"key": exp.key, "status": exp.status, "tasks": n_tasks,
                         "sessions": by_status, "responses": n_responses})
    return render_template("admin/index.html", rows=rows)


@bp.get("/x/<experiment>")
@login_required
def experiment(experiment: str):
    """Progress that counts, and the sessions (searchable, paged) with platform ids, durations,
    catch accuracy, feedback and flags."""
    info = lookup.find_experiment(_state().db, experiment)
    query = (request.args.get("q") or "").strip()[:200]
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        abort(400, "page must be a number")
    cells, units = admin_data.progress(_state().db, info.id)
    owed = _state().service.owed(info.key)
    rows, total = admin_data.sessions(_state().db, info.id, info.spec, query, page, owed=owed)
    pages = max(1, -(-total // admin_data.PAGE_SIZE))
    due = [o for o in owed if not o.paid]
    return render_template("admin/experiment.html", info=info, cells=cells, units=units,
                           sessions=rows, total=total, page=min(page, pages), pages=pages,
                           query=query, due=due, due_total=round(sum(o.amount for o in due), 2))


@bp.get("/x/<experiment>/platform.csv")
@login_required
def platform(experiment: str):
    """Every session with its raw platform ids and a suggested decision, for the platform."""
    info = lookup.find_experiment(_state().db, experiment)
    rows, _ = admin_data.sessions(_state().db, info.id, info.spec, page_size=None,
                                  owed=_state().service.owed(info.key))
    return _csv_download(admin_data.platform_csv(rows), info.key, "platform")


@bp.get("/x/<experiment>/bonus.csv")
@login_required
def bonus(experiment: str):
    """Prolific's bulk bonus list (`participant id,amount` per line) of the sessions that timed
    out after answering and are not marked paid yet."""
    info = lookup.find_experiment(_state().db, experiment)
    due = [o for o in _state().service.owed(info.key) if not o.paid and o.source == "prolific"]
    return _csv_download("".join(f"{o.platform_id},{o.amount:.2f}\n" for o in due), info.key,
                         "bonus")


def _csv_download(text: str, key: str, what: str):
    """`text` as the download `<key>-<what>.csv`."""
    response = current_app.response_class(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f"attachment; filename={key.replace('@', '_')}-{what}.csv")
    return response


@bp.post("/x/<experiment>/bonus/paid")
@login_required
def bonus_paid(experiment: str):
    """Mark paid the owed sessions the page listed (their ids come with the form)."""
    check_csrf()
    info = lookup.find_experiment(_state().db, experiment)
    listed = [s for s in (request.form.get("sessions") or "").split(",") if s]
    _state().service.mark_partial_paid(info.key, listed)
    return redirect(url_for("admin.experiment", experiment=info.key))


@bp.post("/x/<experiment>/status")
@login_required
def set_status(experiment: str):
    """Open or close an experiment for new participants."""
    check_csrf()
    status = request.form.get("status")
    if status not in ("open", "closed"):
        abort(400, "status must be open or closed")
    info = lookup.find_experiment(_state().db, experiment)
    _state().service.set_experiment_status(info.key, status)
    return redirect(url_for("admin.experiment", experiment=info.key))


def _experiment_action(experiment: str, action: Callable[[str], Any]):
    """Run a service action on the experiment (CSRF checked), then show its page again."""
    check_csrf()
    info = lookup.find_experiment(_state().db, experiment)
    action(info.key)
    return redirect(url_for("admin.experiment", experiment=info.key))


@bp.post("/x/<experiment>/expire")
@login_required
def expire(experiment: str):
    """Time out idle sessions now, freeing their tasks."""
    return _experiment_action(experiment, _state().service.expire_sessions)


@bp.post("/x/<experiment>/release")
@login_required
def release(experiment: str):
    """Free at once the tasks held by sessions that have not answered yet."""
    return _experiment_action(experiment, _state().service.release_reservations)


@bp.post("/x/<experiment>/sessions/<session_id>/status")
@login_required
def mark_session(experiment: str, session_id: str):
    """Mark a session returned (on the platform) or excluded, with a reason; frees its task."""
    check_csrf()
    status = request.form.get("status")
    if status not in MARKED:
        abort(400, "status must be returned or excluded")
    info = lookup.find_experiment(_state().db, experiment)
    if lookup.session_facts(_state().db, session_id)[2] != info.id:
        abort(404, "no such session in this experiment")
    reason = (request.form.get("reason") or "").strip()[:500]
    _state().service.set_status(session_id, status, reason or f"marked {status} by the researcher")
    return redirect(url_for("admin.experiment", experiment=info.key))


@bp.post("/x/<experiment>/sessions/<session_id>/undo")
@login_required
def undo_mark(experiment: str, session_id: str):
    """Take back a returned/excluded mark."""
    check_csrf()
    info = lookup.find_experiment(_state().db, experiment)
    if lookup.session_facts(_state().db, session_id)[2] != info.id:
        abort(404, "no such session in this experiment")
    _state().service.undo_status(session_id)
    return redirect(url_for("admin.experiment", experiment=info.key))


@bp.get("/x/<experiment>/export.zip")
@login_required
def export(experiment: str):
    """The dataset tables (responses, participants, units, trials) as a zip of CSV or parquet."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "parquet"):
        abort(400, "format must be csv or parquet")
    info = lookup.find_experiment(_state().db, experiment)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_experiment(_state().db, info.key, tmp, fmt)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, f"{info.key}/{Path(path).name}")
    buffer.seek(0)
    return send_file(buffer, mimetype="application/zip", as_attachment=True,
                     download_name=f"{info.key.replace('@', '_')}-{fmt}.zip")
