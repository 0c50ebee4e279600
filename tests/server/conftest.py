"""Server fixtures: a built toy experiment, the Flask app and test client, a live server."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from experiments.db import Database
from experiments.db.models import Trial
from experiments.study.build import build_experiment
from server.app import create_app
from tests.stimset import make_stimulus_set, write_spec

FAST_TIMING = {"button_lock_ms": 60, "feedback_delay_ms": 20, "feedback_ms": 40}


def build(db: Database, root: Path, set_dir: Path, **overrides: Any) -> str:
    """Build a toy experiment into `db`; returns its key."""
    spec = write_spec(root / f"spec-{overrides.get('name', 'toy-exp')}.toml", [set_dir], **overrides)
    return build_experiment(spec, db).key


def make_app(db: Database, root: Path, **config: Any):
    values = {"database_url": db.url, "testing": True, "image_cache": root / "image-cache",
              "admin_password": "admin-password", "secret_key": "test-secret"}
    values.update(config)
    return create_app(values)


@dataclass
class Started:
    """A session started through the consent form."""

    session_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_session(client, experiment: str, query: str = "", **form: Any) -> Started:
    """GET the entry page, POST the consent form, return the session from the redirect."""
    page = client.get(f"/x/{experiment}/{query}", follow_redirects=True)
    assert page.status_code == 200, page.text
    entry = re.search(r'name="entry" value="([^"]+)"', page.text).group(1)
    data = {"entry": entry, "consent": "yes", "window_width": 1280, "window_height": 800}
    data.update(form)
    response = client.post(f"/x/{experiment}/start", data=data)
    assert response.status_code == 303, response.text
    match = re.search(r"#s=([0-9a-f]{32})&t=([^&]+)", response.headers["Location"])
    return Started(match.group(1), match.group(2))


def admin_login(client, key: str, password: str = "admin-password") -> str:
    """Log the test client in to the admin pages; returns the experiment page's CSRF token."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    assert client.post("/admin/login", data={"csrf_token": token, "password": password}
                       ).status_code == 302
    page = client.get(f"/admin/x/{key}")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def answer_key(db: Database) -> dict[int, str]:
    """{trial id: correct choice}: what the researcher knows and the page must not."""
    with db.read() as session:
        return dict(session.execute(select(Trial.id, Trial.answer_key)).all())


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> Path:
    """A 32 px toy set for API tests."""
    return make_stimulus_set(tmp_path_factory.mktemp("server-sets"))


@pytest.fixture
def api_env(db: Database, tmp_path: Path, small_set: Path):
    """(app, client, experiment key) on the parametrised database (SQLite and PostgreSQL)."""
    key = build(db, tmp_path, small_set, timing=FAST_TIMING)
    app = make_app(db, tmp_path)
    return app, app.test_client(), key


class LiveServer:
    """The app served by werkzeug in a background thread."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
