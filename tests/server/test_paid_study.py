"""A paid study's defences over the API: no answer key, no forged sign-ups, nobody loses pay."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from experiments.db.models import StimulusImage
from tests.server.conftest import start_session

PUBLIC_ID = re.compile(r"^[0-9a-f]{32}$")


def _image_ids(state: dict) -> list[str]:
    ids = [i for t in state["practice"] + state["main"]
           for s in [t["stimulus"]]
           for i in (s["query_a"], s["query_b"], *s["references_max"], *s["references_min"])]
    return ids


def test_the_page_holds_no_answer_key(api_env, db):
    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=cheater")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    text = json.dumps(state)
    assert "correct_choice" not in text and "correct" not in json.dumps(state["main"])
    with db.read() as session:
        internal = session.scalars(select(StimulusImage.image_id)).all()
    # internal ids name the role (qmax, rmin...): none may reach the page
    assert not [i for i in internal if f'"{i}"' in text]
    assert not re.search(r"q(max|min)|r(max|min)", text)
    ids = _image_ids(state)
    assert all(PUBLIC_ID.match(i) for i in ids), ids[:4]
    # every one of them is served, and the internal id is not
    assert client.get(state["image_base"] + ids[0]).status_code == 200
    missing = client.get(state["image_base"] + internal[0])
    assert missing.status_code == 404 and internal[0] not in missing.text


def test_upgrading_an_older_database_gives_every_image_a_public_id(db, tmp_path, small_set):
    from alembic import command

    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set)
    command.downgrade(db.alembic_config(), "0002")  # as built before public ids existed
    db.upgrade()
    with db.read() as session:
        ids = session.scalars(select(StimulusImage.public_id)).all()
    assert len(ids) == len(set(ids)) > 0 and all(PUBLIC_ID.match(i) for i in ids)
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    assert client.get(state["image_base"] + state["main"][0]["stimulus"]["query_b"]).status_code == 200


# ---- forged sign-ups (item 2) ----------------------------------------------------------
def _pid(i: int) -> str:
    return f"{i:024x}"


def _consent(client, key: str, query: str):
    page = client.get(f"/x/{key}/{query}", follow_redirects=True)
    match = re.search(r'name="entry" value="([^"]+)"', page.text)
    if match is None:
        return page
    return client.post(f"/x/{key}/start", data={"entry": match.group(1), "consent": "yes",
                                                "window_width": 1280, "window_height": 800})


def test_a_forged_pid_flood_cannot_fill_the_study(db, tmp_path, small_set):
    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set, recruitment={
        "max_sessions_per_network": 3, "verify_platform_ids": True,
        "prolific_study_ids": [_pid(999)]})
    client = make_app(db, tmp_path, rate_limits=False).test_client()
    # ids of the wrong shape or another study's STUDY_ID are refused before consent
    bad = _consent(client, key, "?PROLIFIC_PID=forged1&STUDY_ID=x&SESSION_ID=y")
    assert bad.status_code == 403 and "not valid" in bad.text
    other = _consent(client, key, f"?PROLIFIC_PID={_pid(1)}&STUDY_ID={_pid(5)}&SESSION_ID={_pid(6)}")
    assert other.status_code == 403
    # well-formed forgeries from one network: only 3 get a task
    codes = [_consent(client, key, f"?PROLIFIC_PID={_pid(i)}&STUDY_ID={_pid(999)}"
                                   f"&SESSION_ID={_pid(100 + i)}").status_code for i in range(10)]
    assert codes.count(303) == 3 and codes.count(403) == 7
    refused = _consent(client, key, f"?PROLIFIC_PID={_pid(50)}&STUDY_ID={_pid(999)}"
                                    f"&SESSION_ID={_pid(150)}")
    assert "Too many sessions from your network" in refused.text
    # a real participant from another network still gets a task
    from experiments.sessions import SessionService
    assert SessionService(db).start(key, _pid(77), "prolific", network_key="elsewhere").task_id


def test_a_flood_from_many_networks_leaves_tasks_for_real_participants(db, tmp_path, small_set):
    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set)  # no verification; half the open tasks may wait
    client = make_app(db, tmp_path, rate_limits=False, proxy_hops=1).test_client()
    for i in range(40):  # one address each, through nginx on this host
        client.environ_base = {"REMOTE_ADDR": "127.0.0.1",
                               "HTTP_X_FORWARDED_FOR": f"203.0.113.{i + 1}"}
        assert _consent(client, key, f"?PROLIFIC_PID=flood{i}").status_code == 303
    client.environ_base = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.9"}
    real = start_session(client, key, "?PROLIFIC_PID=real1")
    state = client.get(f"/api/sessions/{real.session_id}", headers=real.headers).json
    assert state["status"] == "in_progress"
    assert _finish(client, db, real)["completion_code"] == "COMPLETED"


def test_the_admin_releases_unanswered_reservations_at_once(db, tmp_path, small_set):
    from tests.server.conftest import admin_login, build, make_app

    key = build(db, tmp_path, small_set, recruitment={"max_unanswered_share": 1.0})
    client = make_app(db, tmp_path).test_client()
    with db.read() as session:
        from experiments.db.models import Task
        n_tasks = session.scalar(select(func.count()).select_from(Task))
    for i in range(n_tasks):
        start_session(client, key, f"?PROLIFIC_PID=flood{i}")
    assert _consent(client, key, "?PROLIFIC_PID=real1").status_code == 403  # full
    token = admin_login(client, key)
    released = client.post(f"/admin/x/{key}/release", data={"csrf_token": token})
    assert released.status_code == 302
    assert _consent(client, key, "?PROLIFIC_PID=real1").status_code == 303


# ---- logs, Referer, bodies (item 5) -------------------------------------------------------
def test_platform_ids_leave_the_url_at_once_and_never_reach_a_log(api_env, db, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    _, client, key = api_env
    pid = "5f00000000000000000000aa"
    first = client.get(f"/x/{key}/?PROLIFIC_PID={pid}&STUDY_ID=st1&SESSION_ID=se1")
    assert first.status_code == 303 and pid not in first.headers["Location"]
    page = client.get(first.headers["Location"])
    assert page.status_code == 200 and pid not in page.text
    # The real server (gunicorn through `interpsy serve`): its access log blanks the ids in
    # the request line and in the Referer.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "INTERPSY_SECRET_KEY": "s" * 40, "INTERPSY_DATABASE_URL": db.url,
           "INTERPSY_IMAGE_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "experiments.cli", "serve", "--port",
                                   str(port), "--workers", "1", "--skip-prepare"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{base}/x/{key}/?PROLIFIC_PID={pid}&STUDY_ID=st1&SESSION_ID=se1",
            headers={"Referer": f"{base}/x/{key}/?workerId=A1B2C3D4E5F6G7&assignmentId=Z9"})
        with urllib.request.urlopen(request, timeout=5) as reply:  # follows the redirect
            assert reply.status == 200 and pid not in reply.url
    finally:
        server.terminate()
        server.wait(20)
    text = log.read_text()
    assert "PROLIFIC_PID=-" in text, text[-2000:]
    assert pid not in text and "A1B2C3D4E5F6G7" not in text and "st1" not in text


def test_the_development_servers_log_has_no_platform_ids(api_env, caplog):
    import logging
    import urllib.request

    from tests.server.conftest import LiveServer

    app, _, key = api_env
    server = LiveServer(app)
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            urllib.request.urlopen(f"{server.url}/x/{key}/?PROLIFIC_PID=5f00000000000000000000bb"
                                   f"&STUDY_ID=st2", timeout=5).read()
    finally:
        server.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "PROLIFIC_PID=-" in logged and "5f00000000000000000000bb" not in logged


def test_a_deeply_nested_body_is_a_400(api_env):
    _, client, key = api_env
    s = start_session(client, key)
    body = "[" * 30_000 + "]" * 30_000  # within the 64 KB limit
    r = client.post(f"/api/sessions/{s.session_id}/events", data='{"kind": "x", "payload": '
                    + body + "}", headers={**s.headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json["error"]


# ---- nobody loses their pay (items 6, 7, 10, 11) -------------------------------------------
def _finish(client, db, s, right: bool = True, main_choice: str | None = None) -> dict:
    from tests.server.conftest import answer_key

    truth = answer_key(db)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    url = f"/api/sessions/{s.session_id}/responses"
    index, reply = state["next_index"], None
    while True:
        state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
        if state["stage"] == "done" or state["stage"] == "finish":
            break
        offset = state["main_offset"]
        trial = (state["practice"][state["practice_order"][index % len(state["practice"])]]
                 if offset is None else state["main"][index - offset])
        choice = truth[trial["trial_id"]]
        if not right:
            choice = "b" if choice == "a" else "a"
        if main_choice is not None and offset is not None:
            choice = main_choice
        reply = client.post(url, json={"trial_index": index, "trial_id": trial["trial_id"],
                                       "choice": choice, "confidence": 2, "rt_ms": 2000.0},
                            headers=s.headers)
        assert reply.status_code == 201, reply.json
        index += 1
    if state["stage"] == "finish":
        return client.post(f"/api/sessions/{s.session_id}/complete", json={},
                           headers=s.headers).json
    return state


def test_a_re_accepted_hit_submits_its_current_assignment(api_env, db):
    _, client, key = api_env
    start_session(client, key, "?assignmentId=OLDASSIGNMENT&hitId=H&workerId=W1"
                               "&turkSubmitTo=https%3A%2F%2Fwww.mturk.com")
    again = start_session(client, key, "?assignmentId=NEWASSIGNMENT&hitId=H&workerId=W1"
                                       "&turkSubmitTo=https%3A%2F%2Fwww.mturk.com")
    done = _finish(client, db, again)
    assert done["completion"]["assignment_id"] == "NEWASSIGNMENT"


def test_failing_the_practice_sends_the_failed_code_and_exports_failed_practice(db, tmp_path,
                                                                                small_set):
    from experiments.study.export import frames_from_db
    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set, practice={"trials": 2, "max_attempts": 2})
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key, "?PROLIFIC_PID=failer")
    state = _finish(client, db, s, right=False)
    assert state["status"] == "failed_practice" and state["completion_code"] == "FAILED_CHECKS"
    # opening the link again shows that code and the way back to Prolific
    again = client.get(f"/x/{key}/?PROLIFIC_PID=failer", follow_redirects=True)
    assert 'data-status="failed_practice"' in again.text and "cc=FAILED_CHECKS" in again.text
    participants = frames_from_db(db, key)["participants"]
    row = participants.iloc[0]
    assert row.status == "failed_practice" and bool(row.excluded)
    assert "practice not passed in 2 attempts" in row.exclusion_reasons


# ---- admin sessions (item 3) ---------------------------------------------------------------
def test_logout_ends_the_admin_session_for_a_copied_cookie_too(api_env):
    from tests.server.conftest import admin_login

    app, client, key = api_env
    token = admin_login(client, key)
    cookie = client.get_cookie("interpsy_admin").value
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("interpsy_admin", cookie)
    for path in ("/admin/", f"/admin/x/{key}", f"/admin/x/{key}/export.zip?format=csv"):
        response = replay.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_admin_logins_expire(api_env, db):
    from datetime import timedelta

    from experiments.db.models import AdminSession
    from tests.server.conftest import admin_login

    _, client, key = api_env
    admin_login(client, key)
    with db.write() as session:
        for row in session.scalars(select(AdminSession)):
            row.last_seen_at -= timedelta(hours=2)
    assert client.get("/admin/").status_code == 302


def test_wrong_passwords_lock_the_login_with_backoff(api_env):
    _, client, _key = api_env

    def attempt(password: str):
        page = client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return client.post("/admin/login", data={"csrf_token": token, "password": password})

    codes = [attempt(f"guess-number-{i}").status_code for i in range(5)]
    assert codes == [401] * 5
    sixth = attempt("guess-number-6")
    assert sixth.status_code == 401 and "locked for 30 s" in sixth.text
    locked = attempt("admin-password")  # even the right one waits
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "/admin/" not in locked.headers.get("Location", "")


def test_a_short_admin_password_is_refused(db, tmp_path):
    import pytest

    from experiments.errors import InterpsyError
    from tests.server.conftest import make_app

    with pytest.raises(InterpsyError, match="shorter than 12"):
        make_app(db, tmp_path, admin_password="short")


# ---- client times and attention data (items 4, 13) ------------------------------------------
def test_attention_data_and_bounded_times_reach_the_export(api_env, db):
    from experiments.study.export import frames_from_db

    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=attentive")
    url = f"/api/sessions/{s.session_id}"
    for _ in range(3):
        assert client.post(url + "/instructions", json={"seconds": 86_400},
                           headers=s.headers).status_code == 200
    for kind, payload in [("page_load", {}), ("page_load", {}), ("focus_lost", {}),
                          ("focus_lost", {}), ("fullscreen_exit", {}), ("image_failed", {}),
                          ("screen", {"frame_rate": 59.9, "window_width": 1280})]:
        assert client.post(url + "/events", json={"kind": kind, "payload": payload},
                           headers=s.headers).status_code == 201
    state = client.get(url, headers=s.headers).json
    trial = state["practice"][0]
    client.post(url + "/responses", headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "choice": "a", "confidence": 2,
        "rt_ms": 20.0, "extra": {"focus_lost": 1, "fullscreen": False}})
    client.post(url + "/complete", json={"feedback": "the images were small"}, headers=s.headers)
    frames = frames_from_db(db, key)
    p = frames["participants"].iloc[0]
    assert p.instruction_s < 60 and p.instruction_s_claimed == 3 * 86_400
    assert "86400 s claimed" in p.time_flags
    assert (p.focus_losses, p.fullscreen_exits, p.reloads, p.image_failures) == (2, 1, 1, 1)
    assert p.frame_rate == 59.9
    r = frames["responses"].iloc[0]
    assert r.rt_flag == "below_button_lock"
    assert json.loads(r.client_extra) == {"focus_lost": 1, "fullscreen": False}


# ---- the admin of a paid study (item 12) -----------------------------------------------------
def test_progress_counts_only_answers_that_count(api_env, db):
    from tests.server.conftest import admin_login

    _, client, key = api_env
    done = start_session(client, key, "?PROLIFIC_PID=finisher")
    _finish(client, db, done)
    quitter = start_session(client, key, "?PROLIFIC_PID=quitter")
    state = client.get(f"/api/sessions/{quitter.session_id}", headers=quitter.headers).json
    from tests.server.conftest import answer_key
    truth = answer_key(db)
    for index, trial in enumerate(state["practice"] + state["main"][:3]):
        client.post(f"/api/sessions/{quitter.session_id}/responses", headers=quitter.headers,
                    json={"trial_index": index, "trial_id": trial["trial_id"],
                          "choice": truth[trial["trial_id"]], "confidence": 1, "rt_ms": 2000.0})
    from experiments.sessions import SessionService
    SessionService(db).set_status(quitter.session_id, "returned")
    admin_login(client, key)
    from server.admin_data import progress
    with db.read() as session:
        from experiments.db.models import Experiment
        experiment_id = session.scalar(select(Experiment.id))
    cells, _ = progress(db, experiment_id)
    n_main = len([t for t in client.get(f"/api/sessions/{done.session_id}",
                                        headers=done.headers).json["main"]])
    with db.read() as session:
        from experiments.db.models import Trial
        n_catch = session.scalar(select(func.count()).select_from(Trial).where(
            Trial.phase == "main", Trial.is_catch.is_(True), Trial.task_id == select(
                Trial.task_id).where(Trial.id == state["main"][0]["trial_id"]).scalar_subquery()))
    assert sum(c["done"] for c in cells) == n_main - n_catch  # the finisher's, not the quitter's
    assert sum(c["running"] for c in cells) == 0


def test_the_admin_sees_platform_ids_searches_pages_undoes_and_downloads(api_env, db):
    from datetime import timedelta

    from experiments.db.models import Experiment, Participant, Session, Task, utcnow
    from tests.server.conftest import admin_login

    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=5f0000000000000000000abc&STUDY_ID=st"
                                   "&SESSION_ID=se")
    with db.write() as session:  # 1,100 earlier sessions that came and went
        experiment_id = session.scalar(select(Experiment.id))
        task_id = session.scalar(select(Task.id))
        start = utcnow() - timedelta(days=1)
        session.execute(Participant.__table__.insert(), [
            {"experiment_id": experiment_id, "number": 100 + i, "platform_id": f"old{i:05d}",
             "source": "prolific", "platform_info": {}, "created_at": start}
            for i in range(1100)])
        ids = dict(session.execute(select(Participant.platform_id, Participant.id)).all())
        session.execute(Session.__table__.insert(), [
            {"id": f"{i:032x}", "experiment_id": experiment_id, "participant_id": ids[f"old{i:05d}"],
             "task_id": task_id, "token_sha256": "x", "client": "web", "status": "returned",
             "started_at": start + timedelta(seconds=i), "last_activity_at": start,
             "practice_attempts": 0, "n_responses": 0, "client_info": {},
             "exclusion_reasons": [], "older_token_hashes": [], "time_flags": []}
            for i in range(1100)])
    token = admin_login(client, key)
    first = client.get(f"/admin/x/{key}").text
    assert "5f0000000000000000000abc" in first and "SESSION_ID=se" in first  # admin only
    assert "Page 1 of 12" in first
    last = client.get(f"/admin/x/{key}?page=12").text
    assert "old00000" in last and "5f0000000000000000000abc" not in last
    found = client.get(f"/admin/x/{key}?q=old01099").text
    assert "old01099" in found and "old01098" not in found and "Page 1 of 1" in found
    by_pseudonym = client.get(f"/admin/x/{key}?q=P0001").text
    assert "5f0000000000000000000abc" in by_pseudonym
    # mark, then undo the mark
    url = f"/admin/x/{key}/sessions/{s.session_id}"
    client.post(url + "/status", data={"status": "excluded", "reason": "bot",
                                       "csrf_token": token})
    assert _status_of(db, s.session_id) == "excluded"
    assert client.post(url + "/undo", data={"csrf_token": token}).status_code == 302
    assert _status_of(db, s.session_id) == "in_progress"
    # the platform CSV: raw ids and a suggested decision per session
    sheet = client.get(f"/admin/x/{key}/platform.csv")
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    lines = sheet.text.splitlines()
    assert lines[0].startswith("source,participant_id,platform_id,assignment_id")
    assert len(lines) == 1 + 1101
    mine = next(line for line in lines if "5f0000000000000000000abc" in line)
    assert ",se," in mine and ",in_progress," in mine and ",none," in mine


def test_the_admin_flags_what_the_analysis_will_exclude(db, tmp_path, small_set):
    """The admin's flags are the analysis' rules on the session's answers: a participant who
    always pressed the upper row is flagged for review before the platform pays them."""
    from tests.server.conftest import FAST_TIMING, admin_login, build, make_app

    key = build(db, tmp_path, small_set, timing=FAST_TIMING,
                exclusions={"min_row_uses": 2, "min_total_s": 0})
    client = make_app(db, tmp_path).test_client()
    _finish(client, db, start_session(client, key, "?PROLIFIC_PID=balanced"))
    _finish(client, db, start_session(client, key, "?PROLIFIC_PID=presser"), main_choice="a")
    admin_login(client, key)
    lines = {line.split(",")[2]: line
             for line in client.get(f"/admin/x/{key}/platform.csv").text.splitlines()[1:]}
    # 6 main and 2 catch trials, all on the upper row: IMI counts the whole main block
    assert "options used a=8, b=0" in lines["presser"] and ",review," in lines["presser"]
    assert "options used" not in lines["balanced"] and ",approve," in lines["balanced"]


def _status_of(db, session_id: str) -> str:
    from experiments.db.models import Session

    with db.read() as session:
        return session.get(Session, session_id).status


def test_the_favicon_is_served(api_env):
    _, client, _ = api_env
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert 'rel="icon"' in client.get(f"/x/{api_env[2]}/").text


def test_the_mturk_preview_says_when_the_study_is_closed(api_env, db):
    from experiments.sessions import SessionService

    _, client, key = api_env
    SessionService(db).set_experiment_status(key, "closed")
    preview = client.get(f"/x/{key}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H")
    assert 'id="preview-closed"' in preview.text


def test_a_repeat_participant_is_told_before_the_consent_form(db, tmp_path, small_set):
    from experiments.sessions import SessionService
    from tests.server.conftest import build, make_app

    build(db, tmp_path, small_set, name="wave1")
    key = build(db, tmp_path, small_set, name="wave2",
                recruitment={"block_participants_of": ["wave1"]})
    SessionService(db).start("wave1", "veteran", "prolific")
    page = make_app(db, tmp_path).test_client().get(f"/x/{key}/?PROLIFIC_PID=veteran",
                                                    follow_redirects=True)
    assert page.status_code == 403 and "already taken part" in page.text
    assert 'name="consent"' not in page.text


def test_a_returned_mark_is_no_exclusion_and_keeps_the_participants_own_end(api_env, db):
    from datetime import timedelta

    from experiments.db.models import Session
    from experiments.sessions import SessionService
    from experiments.study.export import frames_from_db

    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=went-back")
    with db.write() as session:  # the participant's last answer was an hour ago
        record = session.get(Session, s.session_id)
        record.last_activity_at = record.started_at + timedelta(minutes=7)
    SessionService(db).set_status(s.session_id, "returned")
    row = frames_from_db(db, key)["participants"].iloc[0]
    assert row.status == "returned" and not row.excluded
    assert row.total_s == 7 * 60


def test_forwarded_addresses_count_only_from_the_proxy(db, tmp_path, small_set):
    """With INTERPSY_PROXY_HOPS=1 and the app reached directly, spoofed X-Forwarded-For
    addresses took 11 tasks past a per-network cap of 4: the header is now believed only from
    a trusted proxy's address (INTERPSY_TRUSTED_PROXIES, default the loopback)."""
    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set, recruitment={"max_sessions_per_network": 2})
    client = make_app(db, tmp_path, rate_limits=False, proxy_hops=1).test_client()

    def sign_up(i: int, peer: str) -> int:
        client.environ_base = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": f"198.51.100.{i}"}
        return _consent(client, key, f"?PROLIFIC_PID=spoof{peer}-{i}").status_code

    direct = [sign_up(i, "203.0.113.7") for i in range(6)]  # one machine, six forged headers
    assert direct.count(303) == 2, direct
    via_proxy = [sign_up(i, "127.0.0.1") for i in range(3)]  # nginx on this host: believed
    assert via_proxy.count(303) == 3, via_proxy


def test_a_trusted_proxy_that_is_not_an_address_is_named(db, tmp_path, monkeypatch):
    from experiments.errors import InterpsyError
    from tests.server.conftest import make_app

    monkeypatch.setenv("INTERPSY_TRUSTED_PROXIES", "127.0.0.1, nginx-host")
    from server.config import ServerConfig

    config = ServerConfig.from_env(database_url=db.url, secret_key="s" * 40, proxy_hops=1,
                                   image_cache=tmp_path / "cache", testing=True)
    assert config.trusted_proxies == ("127.0.0.1", "nginx-host")
    with pytest.raises(InterpsyError, match="'nginx-host' is not an IP address"):
        make_app(db, tmp_path, proxy_hops=1, trusted_proxies=config.trusted_proxies)


# ---- a return after the timeout (item 7) ------------------------------------------------
def test_a_participant_back_after_the_timeout_is_told_what_they_are_owed(db, tmp_path, small_set):
    from datetime import timedelta

    from experiments.db.models import Session, Task
    from tests.server.conftest import admin_login, build, make_app

    key = build(db, tmp_path, small_set, recruitment={"reward": 3.0, "currency": "GBP"})
    client = make_app(db, tmp_path).test_client()
    away = start_session(client, key, "?PROLIFIC_PID=away&STUDY_ID=s&SESSION_ID=x")
    state = client.get(f"/api/sessions/{away.session_id}", headers=away.headers).json
    trial = state["practice"][state["practice_order"][0]]
    assert client.post(f"/api/sessions/{away.session_id}/responses", headers=away.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "choice": "a", "confidence": 2,
        "rt_ms": 900.0}).status_code == 201
    n_trials = len(state["practice"]) + len(state["main"])
    with db.write() as session:  # away for two hours, past the 90-minute timeout
        record = session.get(Session, away.session_id)
        record.last_activity_at -= timedelta(hours=2)
        away_task = record.task_id
        n_tasks = session.scalar(select(func.count()).select_from(Task))
    others = []
    while not any(s for s in others if _task_of(db, s) == away_task):
        assert len(others) < n_tasks
        others.append(start_session(client, key, f"?PROLIFIC_PID=other{len(others)}"))
    # the page reloads: timed out, and what they are owed
    state = client.get(f"/api/sessions/{away.session_id}", headers=away.headers).json
    owed = round(3.0 / n_trials, 2)
    assert state["status"] == "timed_out"
    assert state["timed_out"] == {"answered": 1, "trials": n_trials, "owed": owed,
                                  "currency": "GBP", "code": "TIMED_OUT"}
    # opening the study link again says the same, never "Please return the study" alone
    page = client.get(f"/x/{key}/?PROLIFIC_PID=away&STUDY_ID=s&SESSION_ID=x",
                      follow_redirects=True)
    assert page.status_code == 200 and "timed out" in page.text
    assert f"GBP {owed:.2f}" in page.text and "1 of" in page.text
    # the researcher sees it, downloads the bonus list and marks it paid in one click
    token = admin_login(client, key)
    admin = client.get(f"/admin/x/{key}").text
    assert "1 session timed out after answering" in admin and f"GBP {owed:.2f}" in admin
    bonus = client.get(f"/admin/x/{key}/bonus.csv")
    assert bonus.status_code == 200 and bonus.text.strip() == f"away,{owed:.2f}"
    platform = client.get(f"/admin/x/{key}/platform.csv").text
    assert "pay_partial" in platform
    listed = re.search(r'name="sessions" value="([^"]*)"', admin).group(1)
    assert listed == away.session_id
    assert client.post(f"/admin/x/{key}/bonus/paid", data={"csrf_token": token,
                                                          "sessions": listed}).status_code == 302
    assert client.get(f"/admin/x/{key}/bonus.csv").text.strip() == ""
    assert "paid_partial" in client.get(f"/admin/x/{key}/platform.csv").text


def _task_of(db, started) -> int:
    from experiments.db.models import Session

    with db.read() as session:
        return session.get(Session, started.session_id).task_id
