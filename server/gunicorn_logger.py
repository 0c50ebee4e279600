"""gunicorn's access log without platform ids (`--logger-class server.gunicorn_logger.RedactingLogger`)."""
from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from server.logs import redact


class RedactingLogger(Logger):
    """gunicorn's logger with the ids in the request line, query and Referer blanked."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
