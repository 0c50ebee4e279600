"""Errors that reach users as one clear line (CLI exit code 2, HTTP 4xx)."""
from __future__ import annotations

USER_ERROR_EXIT = 2  # the CLI's exit code for an InterpsyError or a usage error


class InterpsyError(Exception):
    """A user-facing error; its message is shown as it is."""

    http_status = 400


class SpecError(InterpsyError):
    """An experiment spec that does not validate."""


class StimulusSetError(InterpsyError):
    """A stimulus set folder that does not follow the format."""


class NotFound(InterpsyError):
    """A named experiment, session or trial that does not exist."""

    http_status = 404


class Refused(InterpsyError):
    """A request that the experiment's rules refuse (repeat participant, study full, closed)."""

    http_status = 403

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Conflict(InterpsyError):
    """A write that contradicts what is stored (a different answer for a stored trial, a gap)."""

    http_status = 409

    def __init__(self, message: str, expected_trial_index: int | None = None):
        super().__init__(message)
        self.expected_trial_index = expected_trial_index
