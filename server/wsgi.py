"""The WSGI entry point gunicorn loads in each worker: the app configured from the environment."""
from __future__ import annotations

from server.app import create_app

app = create_app()
