"""Strict validation of every JSON body the API accepts (types, ranges, sizes)."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from experiments.errors import InterpsyError
from experiments.sessions import ResponseIn

SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_EXTRA_JSON = 2_000


class BadRequest(InterpsyError):
    """A payload that does not validate (HTTP 400)."""


def _small_flat_dict(value: dict[str, Any], what: str) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_EXTRA_JSON:
        raise ValueError(f"{what} is larger than {MAX_EXTRA_JSON} bytes as JSON")
    for key, item in value.items():
        if len(key) > 40:
            raise ValueError(f"{what}: key {key[:40]!r}... is longer than 40 characters")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{what}.{key}: numbers must be finite")
        if not isinstance(item, (str, int, float, bool, type(None))):
            raise ValueError(f"{what}.{key}: only strings, numbers, booleans and null are allowed")
        if isinstance(item, str) and len(item) > 500:
            raise ValueError(f"{what}.{key}: text longer than 500 characters")
    return value


class ResponseBody(ResponseIn):
    """ResponseIn with strict types (no "1" for 1) and a small flat `answer` and `extra`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    stim_onset_ms: float | None = Field(None, ge=0, le=1e10, allow_inf_nan=False)
    response_ms: float | None = Field(None, ge=0, le=1e10, allow_inf_nan=False)

    @field_validator("extra", "answer")
    @classmethod
    def _small(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return _small_flat_dict(value, info.field_name)

    def to_service(self) -> ResponseIn:
        return ResponseIn(**self.model_dump())


# A key the page makes per event, so that a retry after a lost reply is stored once.
CLIENT_KEY = r"^[A-Za-z0-9_-]{1,64}$"


class EventBody(BaseModel):
    """A client event: focus loss, fullscreen exit, image error..."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: str = Field(min_length=1, max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict)
    client_ms: float | None = Field(None, ge=0, le=1e10, allow_inf_nan=False)
    key: str | None = Field(None, pattern=CLIENT_KEY)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if not EVENT_KIND.match(value):
            raise ValueError("kind must be lower-case letters, digits and _ (at most 40)")
        return value

    @field_validator("payload")
    @classmethod
    def _payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _small_flat_dict(value, "payload")


class InstructionsBody(BaseModel):
    """Seconds spent on the instruction screens."""

    model_config = ConfigDict(extra="forbid", strict=True)

    seconds: float = Field(ge=0, le=86_400, allow_inf_nan=False)
    key: str | None = Field(None, pattern=CLIENT_KEY)


class CompleteBody(BaseModel):
    """The optional feedback text sent with completion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    feedback: str | None = Field(None, max_length=5_000)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse(model: type[BaseModel]) -> Any:
    """The request's JSON body validated as `model`; BadRequest with a clear message otherwise."""
    if not request.is_json:
        raise BadRequest("send a JSON body with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # a deeply nested body: json gives up before validation starts
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        # JSON mode: strict types, but JSON numbers may be ints where floats are expected.
        return model.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadRequest(f"invalid body: {exc}") from None
