"""Access logs without platform ids: Prolific/MTurk ids in URLs and Referers are blanked."""
from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

# The query parameters recruitment platforms (and plain links) put participant ids in.
PLATFORM_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId",
                   "hitId", "id")
_PARAM = re.compile(r"(?<=[?&])(" + "|".join(PLATFORM_PARAMS) + r")=[^&\s\"]*")


def redact(text: str) -> str:
    """`text` with the value of every platform id parameter replaced by `-`."""
    return _PARAM.sub(r"\1=-", text) if "=" in text else text


class RedactingLogger(Logger):
    """gunicorn's logger (`--logger-class server.logs.RedactingLogger`), ids blanked."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms


class RedactingFilter(logging.Filter):
    """The same for werkzeug's development server log (its record args hold the request line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_werkzeug_filter() -> None:
    """Attach RedactingFilter to werkzeug's logger once."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
