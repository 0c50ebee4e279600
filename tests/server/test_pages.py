"""Entry pages, consent checks, images, security, admin and the serve command."""
from __future__ import annotations

import hashlib
import io
import re
import zipfile

import pytest
from sqlalchemy import func, select

from experiments.cli import main as cli_main
from experiments.db.models import Participant, StimulusImage
from tests.server.conftest import build, make_app, start_session

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def entry_token(client, key: str, query: str = "") -> str:
    return re.search(r'name="entry" value="([^"]+)"', client.get(f"/x/{key}/{query}", follow_redirects=True).text).group(1)


def n_participants(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Participant))


def form(token: str, **extra) -> dict:
    return {"entry": token, "consent": "yes", "window_width": 1280, "window_height": 800, **extra}


def test_mturk_preview_assigns_nothing(api_env, db):
    _, client, key = api_env
    page = client.get(f"/x/{key}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H")
    assert page.status_code == 200 and 'id="preview"' in page.text and "entry" not in page.text
    assert n_participants(db) == 0


def test_mturk_entry_stores_platform_facts(api_env, db):
    _, client, key = api_env
    s = start_session(client, key, "?assignmentId=A9&hitId=H9&workerId=W9"
                                   "&turkSubmitTo=https://www.mturk.com")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    assert state["completion"] == {"source": "mturk", "assignment_id": "A9",
                                   "submit_url": "https://www.mturk.com/mturk/externalSubmit"}
    bad = client.get(f"/x/{key}/?assignmentId=A&hitId=H&workerId=W&turkSubmitTo=https://evil.example",
                     follow_redirects=True)
    assert bad.status_code == 400


def test_consent_checks(api_env, db):
    _app, client, key = api_env
    url = f"/x/{key}/start"
    honeypot = client.post(url, data=form(entry_token(client, key), website="http://spam"))
    assert honeypot.status_code == 200 and n_participants(db) == 0
    no_consent = client.post(url, data=dict(form(entry_token(client, key)), consent=""))
    assert no_consent.status_code == 400
    small = client.post(url, data=form(entry_token(client, key), window_width=800))
    assert small.status_code == 403 and "940" in small.text
    phone = client.post(url, data=form(entry_token(client, key)),
                        headers={"User-Agent": "Mozilla/5.0 (iPhone; Mobile) Safari"})
    assert phone.status_code == 403 and "desktop" in phone.text
    forged = client.post(url, data=form("not-a-signed-token"))
    assert forged.status_code == 403
    foreign = client.post(url, data=form(entry_token(client, key)),
                          headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert n_participants(db) == 0
    assert client.get("/x/no-such-study/").status_code == 404
    assert client.get(f"/x/{key}/?PROLIFIC_PID=<script>").status_code == 400


def test_entry_is_rate_limited(db, tmp_path, small_set):
    key = build(db, tmp_path, small_set)
    app = make_app(db, tmp_path, entry_per_minute=3)
    client = app.test_client()
    codes = [client.post(f"/x/{key}/start", data=form("x")).status_code for _ in range(5)]
    assert codes[:3] == [403, 403, 403] and codes[3:] == [429, 429]


def test_security_headers_and_no_tracebacks(api_env, monkeypatch):
    app, client, key = api_env
    page = client.get(f"/x/{key}/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'self' https://www.mturk.com" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    s = start_session(client, key)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["interpsy"].service, "state", boom)
    response = client.get(f"/api/sessions/{s.session_id}", headers=s.headers)
    assert response.status_code == 500 and "secret internals" not in response.text
    assert "Traceback" not in response.text and response.json["error"]


def test_images_are_compressed_cached_and_masters_untouched(api_env, db, small_set):
    _, client, key = api_env
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    image_id = state["practice"][0]["stimulus"]["query_a"]
    with db.read() as session:
        internal = session.scalar(select(StimulusImage.image_id).where(
            StimulusImage.public_id == image_id))
    master = next(small_set.rglob(f"{internal}.png"))
    digest = hashlib.sha256(master.read_bytes()).hexdigest()
    first = client.get(state["image_base"] + image_id)
    assert first.status_code == 200 and first.mimetype == "image/webp"
    assert "immutable" in first.headers["Cache-Control"]
    second = client.get(state["image_base"] + image_id,
                        headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 304
    assert hashlib.sha256(master.read_bytes()).hexdigest() == digest
    assert client.get(f"/img/{key}/no-such-image").status_code == 404
    assert client.get(f"/img/{key}/../../etc/passwd").status_code == 404


def test_admin_disabled_without_a_password(db, tmp_path, small_set):
    build(db, tmp_path, small_set)
    client = make_app(db, tmp_path, admin_password="").test_client()
    response = client.get("/admin/")
    assert response.status_code == 404 and "INTERPSY_ADMIN_PASSWORD" in response.text


def _login(client, password="admin-password"):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    return client.post("/admin/login", data={"csrf_token": token, "password": password}), token


def test_admin_login_progress_close_and_export(api_env, db):
    _, client, key = api_env
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    trial = state["practice"][0]
    client.post(f"/api/sessions/{s.session_id}/responses", headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "choice": "a", "confidence": 2,
        "rt_ms": 700.0})
    admin = make_app(db, client.application.config["INTERPSY"].image_cache.parent).test_client()
    assert admin.get("/admin/").status_code == 302
    wrong, _ = _login(admin, "nope")
    assert wrong.status_code == 401
    ok, _ = _login(admin)
    assert ok.status_code == 302
    assert key in admin.get("/admin/").text
    page = admin.get(f"/admin/x/{key}")
    assert page.status_code == 200 and "Progress per condition" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert admin.post(f"/admin/x/{key}/status", data={"status": "closed"}).status_code == 403
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    closed = admin.post(f"/admin/x/{key}/status", data={"status": "closed", "csrf_token": token})
    assert closed.status_code == 302
    assert "closed" in client.get(f"/x/{key}/").text
    export = admin.get(f"/admin/x/{key}/export.zip?format=csv")
    assert export.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(export.data)).namelist()
    assert f"{key}/responses.csv" in names and f"{key}/participants.csv" in names


def test_serve_needs_a_secret_key_and_a_current_schema(db, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INTERPSY_SECRET_KEY", raising=False)
    monkeypatch.setenv("INTERPSY_HOME", str(tmp_path))
    assert cli_main(["serve", "--database", db.url]) == 2
    assert "INTERPSY_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("INTERPSY_SECRET_KEY", "x" * 40)
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert cli_main(["serve", "--database", empty]) == 2
    assert "interpsy db upgrade" in capsys.readouterr().err


def test_serve_makes_every_derivative_before_starting_gunicorn(db, tmp_path, small_set,
                                                               monkeypatch, capsys):
    key = build(db, tmp_path, small_set)
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTERPSY_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("INTERPSY_IMAGE_CACHE", str(cache))
    launched = []
    monkeypatch.setattr("server.cli.os.execv", lambda path, args: launched.append(args))
    assert cli_main(["serve", "--database", db.url, "--workers", "3"]) == 0
    with db.read() as session:
        n_images = session.scalar(select(func.count()).select_from(StimulusImage))
    made = sorted(cache.rglob("*.q90.webp"))  # every image's derivative
    assert n_images > 0 and len(made) == n_images
    assert all(p.read_bytes()[8:12] == b"WEBP" for p in made[:5])
    padded = sorted(cache.rglob("*b.webp"))  # the query images, padded to the one size
    assert 0 < len(padded) < n_images and len({p.stat().st_size for p in padded}) == 1
    assert f"{key}: {n_images} images ready as webp" in capsys.readouterr().out
    assert launched and launched[0][-1] == "server.wsgi:app" and "3" in launched[0]
    # A second start finds them all made and rewrites none.
    # (inodes: every file is written at one fixed modification time, and os.replace
    # gives a rewritten file a new inode)
    before = {p: p.stat().st_ino for p in cache.rglob("*.webp")}
    assert cli_main(["serve", "--database", db.url, "--skip-prepare"]) == 0
    assert cli_main(["serve", "--database", db.url]) == 0
    assert {p: p.stat().st_ino for p in cache.rglob("*.webp")} == before


def test_admin_marks_a_session_excluded_with_its_reason_and_the_export_shows_it(api_env, db):
    _, client, key = api_env
    s = start_session(client, key)
    other = start_session(client, key, "?PROLIFIC_PID=someone-else&STUDY_ID=x&SESSION_ID=y")
    admin = client  # the same app serves the admin pages
    assert _login(admin)[0].status_code == 302
    page = admin.get(f"/admin/x/{key}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    url = f"/admin/x/{key}/sessions/{s.session_id}/status"
    assert admin.post(url, data={"status": "excluded", "reason": "x"}).status_code == 403
    assert admin.post(url, data={"status": "completed", "csrf_token": token}).status_code == 400
    assert admin.post(f"/admin/x/{key}/sessions/{'0' * 32}/status",
                      data={"status": "excluded", "csrf_token": token}).status_code == 404
    done = admin.post(url, data={"status": "excluded", "reason": "answered at random",
                                 "csrf_token": token})
    assert done.status_code == 302
    page = admin.get(f"/admin/x/{key}").text
    assert page.count('class="status-excluded"') == 1
    assert f"/sessions/{other.session_id}/status" in page  # still markable
    assert f"/sessions/{s.session_id}/status" not in page
    export = admin.get(f"/admin/x/{key}/export.zip?format=csv")
    archive = zipfile.ZipFile(io.BytesIO(export.data))
    participants = archive.read(f"{key}/participants.csv").decode()
    assert "answered at random" in participants
    # The excluded participant's session no longer takes answers.
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    trial = state["practice"][0]
    answer = client.post(f"/api/sessions/{s.session_id}/responses", headers=s.headers, json={
        "trial_index": 0, "trial_id": trial["trial_id"], "choice": "a", "confidence": 2,
        "rt_ms": 700.0})
    assert answer.status_code in (403, 409) and "excluded" in answer.json["error"]


def test_a_task_types_page_module_comes_from_its_own_package(api_env, registered):
    """A type from another package ships its page module (`page_script`); it is served beside
    interpsy's own so that it can import the shared ones. Anything else is a 404."""
    registered("tests.experiments.test_tasks:YesNo", "tests.experiments.test_tasks:Occluding")
    _, client, _ = api_env
    script = client.get("/static/js/tasks/yes_no.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "says_yes" in script.text and "from './choices.js'" in script.text
    for own in ("imi_2afc", "occlusion", "choices"):
        assert client.get(f"/static/js/tasks/{own}.js").status_code == 200
    assert client.get("/static/js/tasks/occluding.js").status_code == 404  # names no module
    assert client.get("/static/js/tasks/nope.js").status_code == 404
