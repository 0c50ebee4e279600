"""Error handlers: JSON for the API, a friendly page elsewhere; never a traceback."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from experiments.errors import Conflict, InterpsyError, Refused


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def _reply(status: int, message: str, **extra):
    if _wants_json():
        response = jsonify(error=message, status=status, **extra)
    else:
        title = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict",
                 429: "Slow down", 503: "Busy"}.get(status, "Error")
        response = render_template("message.html", title=title, text=message)
    return response, status


def install(app: Flask) -> None:
    """Register the handlers on `app`."""

    @app.errorhandler(InterpsyError)
    def interpsy_error(exc: InterpsyError):
        extra = {}
        if isinstance(exc, Refused):
            extra["reason"] = exc.reason
        if isinstance(exc, Conflict) and exc.expected_trial_index is not None:
            extra["expected_trial_index"] = exc.expected_trial_index
        return _reply(exc.http_status, str(exc), **extra)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response, status = _reply(exc.code or 500, exc.description or exc.name)
        if exc.code == 429 and getattr(exc, "retry_after", None):
            response = app.make_response((response, status))
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response = app.make_response((response, status))
            response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        return response, status

    @app.errorhandler(OperationalError)
    def database_busy(exc: DBAPIError):
        app.logger.warning("database unavailable: %s", str(exc).splitlines()[0])
        response = app.make_response(_reply(503, "the database is busy; please retry"))
        response.headers["Retry-After"] = "2"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return _reply(500, "something went wrong on our side; what you sent earlier is saved, "
                           "please retry in a moment")
