"""Access logs without platform ids: Prolific/MTurk ids in URLs and Referers are blanked.

gunicorn's logger class is in server.gunicorn_logger (imported by gunicorn only).
"""
from __future__ import annotations

import logging
import re

# The query parameters recruitment platforms (and plain links) put participant ids in.
PLATFORM_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId",
                   "hitId", "id")
_PARAM = re.compile(r"(?<=[?&])(" + "|".join(PLATFORM_PARAMS) + r")=[^&\s\"]*")


def redact(text: str) -> str:
    """`text` with the value of every platform id parameter replaced by `-`."""
    return _PARAM.sub(r"\1=-", text) if "=" in text else text


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
