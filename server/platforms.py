"""Recruitment platforms: who arrives from a study link, id checks, and where completion goes."""
from __future__ import annotations

import re
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from experiments.study.spec import ExperimentSpec

MTURK_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
PLATFORM_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# The formats the platforms use: Prolific ids are 24 hex digits; MTurk worker ids start with
# A, assignment and HIT ids are upper-case letters and digits.
PROLIFIC_ID = re.compile(r"^[0-9a-f]{24}$")
MTURK_WORKER = re.compile(r"^A[A-Z0-9]{9,21}$")
MTURK_ASSIGNMENT = re.compile(r"^[A-Z0-9]{20,40}$")


def _param(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if not PLATFORM_VALUE.match(value):
        raise BadRequest(f"the link's parameter {name} is malformed; please use the link from "
                         f"your recruitment platform")
    return value


def entry_facts(experiment_key: str) -> dict[str, Any] | None:
    """Who is arriving (source, platform id and info) from the link's query; None for an MTurk
    preview."""
    if request.args.get("PROLIFIC_PID"):
        info = {k: _param(k) for k in ("STUDY_ID", "SESSION_ID")}
        return {"exp": experiment_key, "source": "prolific", "platform_id": _param("PROLIFIC_PID"),
                "info": {k: v for k, v in info.items() if v}}
    if "assignmentId" in request.args or "hitId" in request.args:
        if request.args.get("assignmentId") == MTURK_PREVIEW:
            return None
        submit = (request.args.get("turkSubmitTo") or "").rstrip("/")
        if submit and submit not in MTURK_HOSTS:
            raise BadRequest("turkSubmitTo is not an MTurk address")
        worker = _param("workerId")
        if not worker or not _param("assignmentId"):
            raise BadRequest("the MTurk link lacks workerId or assignmentId")
        return {"exp": experiment_key, "source": "mturk", "platform_id": worker,
                "info": {"assignmentId": _param("assignmentId"), "hitId": _param("hitId"),
                         "turkSubmitTo": submit or MTURK_HOSTS[0]}}
    return {"exp": experiment_key, "source": "link", "platform_id": _param("id"), "info": {}}


def unverified(facts: dict[str, Any], spec: ExperimentSpec) -> str | None:
    """Why the entry's platform ids fail the study's verification (None: they pass, or the
    study does not verify)."""
    recruitment = spec.recruitment
    if not recruitment.verify_platform_ids:
        return None
    info = facts.get("info") or {}
    if facts["source"] == "prolific":
        ids = (facts.get("platform_id"), info.get("STUDY_ID"), info.get("SESSION_ID"))
        if not all(i and PROLIFIC_ID.match(i) for i in ids):
            return "Prolific's PROLIFIC_PID, STUDY_ID and SESSION_ID are missing or malformed"
        if recruitment.prolific_study_ids and info["STUDY_ID"] not in recruitment.prolific_study_ids:
            return f"STUDY_ID {info['STUDY_ID']} is not this study's"
    elif facts["source"] == "mturk":
        if not MTURK_WORKER.match(facts.get("platform_id") or ""):
            return "the MTurk workerId is malformed"
        if not MTURK_ASSIGNMENT.match(info.get("assignmentId") or ""):
            return "the MTurk assignmentId is malformed"
    return None


def completion(source: str, info: dict[str, Any]) -> dict[str, Any]:
    """Where the page sends a finished participant: Prolific's redirect, MTurk's submit form
    (with the current assignment), or nothing (the code is shown)."""
    if source == "prolific":
        return {"source": source, "redirect": PROLIFIC_COMPLETE}
    if source == "mturk":
        host = str(info.get("turkSubmitTo", "")).rstrip("/")
        if host not in MTURK_HOSTS:
            host = MTURK_HOSTS[0]
        return {"source": source, "submit_url": f"{host}/mturk/externalSubmit",
                "assignment_id": info.get("assignmentId", "")}
    return {"source": source}


def timed_out_facts(answered: int, trials: int, spec: ExperimentSpec) -> dict[str, Any]:
    """What the page tells someone whose session timed out after answering and whose task went
    to someone else: their answers, what they are owed and the code for the platform."""
    recruitment = spec.recruitment
    return {"answered": answered, "trials": trials, "owed": recruitment.owed(answered, trials),
            "currency": recruitment.currency, "code": recruitment.completion_codes.timed_out}
