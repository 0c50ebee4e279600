"""The JSON API over the session service: a whole session, tokens, idempotency, conflicts."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from experiments.db.models import Event, Response
from tests.server.conftest import answer_key, start_session


def answer(trial: dict, index: int, right: bool = True, key: dict[int, str] | None = None,
           **extra) -> dict:
    """A response body; with the answer `key` (trial id -> correct choice) right or wrong."""
    choice = key[trial["trial_id"]] if key else "a"
    if not right:
        choice = "b" if choice == "a" else "a"
    body = {"trial_index": index, "trial_id": trial["trial_id"],
            "answer": {"choice": choice, "confidence": 3}, "rt_ms": 850.5, "stim_onset_ms": 1000.0, "response_ms": 1850.5}
    body.update(extra)
    return body


def n_responses(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Response))


def test_whole_session_through_the_api(api_env, db):
    _app, client, key = api_env
    started = start_session(client, key, "?PROLIFIC_PID=p1&STUDY_ID=s&SESSION_ID=x")
    state = client.get(f"/api/sessions/{started.session_id}", headers=started.headers).json
    assert state["stage"] == "practice" and state["next_index"] == 0
    assert "unit_id" not in state["practice"][0] and "is_catch" not in state["main"][0]
    # the page draws its buttons' keys from the task type, as the lab reads them
    assert state["words"]["keys"] == {"a": ["1", "2", "3"], "b": ["8", "9", "0"]}
    truth = answer_key(db)
    index = 0
    # Fail the first practice attempt, pass the second (whose trials come in a new order).
    orders = []
    for attempt_right in (False, True):
        state = client.get(f"/api/sessions/{started.session_id}", headers=started.headers).json
        orders.append(state["practice_order"])
        for trial in (state["practice"][i] for i in state["practice_order"]):
            r = client.post(f"/api/sessions/{started.session_id}/responses",
                            json=answer(trial, index, right=attempt_right, key=truth),
                            headers=started.headers)
            assert r.status_code == 201, r.json
            # the scoring comes back only now, with the stored answer
            assert r.json["correct"] is attempt_right
            assert r.json["answer_key"] == truth[trial["trial_id"]]
            index += 1
        assert r.json["practice_attempt_passed"] is attempt_right
    assert r.json["main_offset"] == index and r.json["stage"] == "main"
    assert orders[0] == sorted(orders[0]) and orders[1] != orders[0]
    early = client.post(f"/api/sessions/{started.session_id}/complete", json={},
                        headers=started.headers)
    assert early.status_code == 409
    for trial in state["main"]:
        r = client.post(f"/api/sessions/{started.session_id}/responses", json=answer(trial, index),
                        headers=started.headers)
        assert r.status_code == 201
        index += 1
    assert r.json["stage"] == "finish"
    assert client.post(f"/api/sessions/{started.session_id}/instructions", json={"seconds": 42.5},
                       headers=started.headers).status_code == 200
    assert client.post(f"/api/sessions/{started.session_id}/events",
                       json={"kind": "focus_lost", "payload": {"n": 1}, "client_ms": 12.5},
                       headers=started.headers).status_code == 201
    done = client.post(f"/api/sessions/{started.session_id}/complete",
                       json={"feedback": "fine"}, headers=started.headers)
    assert done.status_code == 200
    assert done.json["completion_code"] == "COMPLETED"
    assert done.json["completion"] == {
        "source": "prolific", "redirect": "https://app.prolific.com/submissions/complete?cc="}
    assert n_responses(db) == index
    again = client.get(f"/api/sessions/{started.session_id}", headers=started.headers).json
    assert again["stage"] == "done" and again["completion_code"] == "COMPLETED"
    # The same Prolific participant coming back (missed redirect) gets the code and the way
    # back to Prolific again, not a refusal.
    page = client.get(f"/x/{key}/?PROLIFIC_PID=p1&STUDY_ID=s&SESSION_ID=y",
                      follow_redirects=True)
    assert page.status_code == 200 and 'id="finished"' in page.text
    assert "submissions/complete?cc=COMPLETED" in page.text and 'name="entry"' not in page.text


def test_tokens_are_required_and_bound_to_their_session(api_env, db):
    _, client, key = api_env
    mine = start_session(client, key)
    other = start_session(client, key)
    state = client.get(f"/api/sessions/{mine.session_id}", headers=mine.headers).json
    body = answer(state["practice"][0], 0)
    url = f"/api/sessions/{mine.session_id}/responses"
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 404
    foreign = client.post(url, json=body, headers=other.headers)
    assert foreign.status_code == 404 and "wrong token" in foreign.json["error"]
    assert client.get(f"/api/sessions/{mine.session_id}", headers=other.headers).status_code == 404
    assert client.get("/api/sessions/not-a-session", headers=mine.headers).status_code == 404
    assert n_responses(db) == 0
    # Another session's trial id at the right index is refused too.
    other_state = client.get(f"/api/sessions/{other.session_id}", headers=other.headers).json
    wrong_trial = dict(body, trial_id=other_state["practice"][0]["trial_id"])
    if wrong_trial["trial_id"] != body["trial_id"]:
        assert client.post(url, json=wrong_trial, headers=mine.headers).status_code == 409
    assert n_responses(db) == 0


def test_retries_are_idempotent_and_conflicts_refused(api_env, db):
    _, client, key = api_env
    s = start_session(client, key, "?id=linkuser")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    url = f"/api/sessions/{s.session_id}/responses"
    body = answer(state["practice"][0], 0)
    first = client.post(url, json=body, headers=s.headers)
    retry = client.post(url, json=body, headers=s.headers)
    assert (first.status_code, first.json["stored"]) == (201, True)
    assert (retry.status_code, retry.json["stored"]) == (200, False)
    other = "b" if body["answer"]["choice"] == "a" else "a"
    changed = client.post(url, json=dict(body, answer={"choice": other, "confidence": 3}),
                          headers=s.headers)
    assert changed.status_code == 409 and "different answer" in changed.json["error"]
    gap = client.post(url, json=answer(state["practice"][1], 3), headers=s.headers)
    assert gap.status_code == 409 and gap.json["expected_trial_index"] == 1
    assert n_responses(db) == 1
    with db.read() as session:
        kinds = session.scalars(select(Event.kind)).all()
    assert "conflicting_response" in kinds


def test_state_resumes_at_next_index_after_restart_of_the_entry(api_env):
    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=resumer&STUDY_ID=s&SESSION_ID=1")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    client.post(f"/api/sessions/{s.session_id}/responses", json=answer(state["practice"][0], 0),
                headers=s.headers)
    again = start_session(client, key, "?PROLIFIC_PID=resumer&STUDY_ID=s&SESSION_ID=2")
    assert again.session_id == s.session_id and again.token != s.token
    resumed = client.get(f"/api/sessions/{s.session_id}", headers=again.headers).json
    assert resumed["next_index"] == 1
    # The first tab's token keeps working beside the new one: a second consent (another tab)
    # must not end the first tab's session.
    assert client.get(f"/api/sessions/{s.session_id}", headers=s.headers).status_code == 200


@pytest.mark.parametrize("body,fragment", [
    ({"trial_index": -1}, "trial_index"),
    ({"trial_index": "0"}, "trial_index"),
    ({"answer": {"choice": "c", "confidence": 3}}, "choice"),
    ({"answer": {"choice": "a", "confidence": 4}}, "confidence"),
    ({"answer": {"choice": "a", "confidence": True}}, "confidence"),
    ({"answer": {"choice": "a"}}, "answer for task type imi_2afc: confidence: Field required"),
    ({"answer": {"choice": "a", "confidence": 2, "says_yes": True}}, "says_yes"),
    ({"answer": {"choice": {"nested": 1}, "confidence": 2}}, "answer"),
    ({"choice": "a"}, "choice"),
    ({"rt_ms": -5}, "rt_ms"),
    ({"extra": {"nested": {"a": 1}}}, "extra"),
    ({"unknown": 1}, "unknown"),
])
def test_bad_payloads_get_a_clear_400(api_env, db, body, fragment):
    _, client, key = api_env
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    payload = dict(answer(state["practice"][0], 0), **body)
    r = client.post(f"/api/sessions/{s.session_id}/responses", json=payload, headers=s.headers)
    assert r.status_code == 400 and fragment in r.json["error"]
    assert n_responses(db) == 0
    again = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    assert again["next_index"] == 0


def test_a_page_from_before_task_types_still_saves_its_flat_answer(api_env, db):
    """A page loaded before the upgrade (or its queued answers) sends choice and confidence
    flat: they are stored as the 2-AFC answer, and a retry in the new shape is the same."""
    _, client, key = api_env
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    trial, url = state["practice"][0], f"/api/sessions/{s.session_id}/responses"
    flat = {"trial_index": 0, "trial_id": trial["trial_id"], "choice": "b", "confidence": 2,
            "rt_ms": 900.0}
    assert client.post(url, json=flat, headers=s.headers).status_code == 201
    with db.read() as session:
        assert session.scalars(select(Response.answer)).one() == {"choice": "b", "confidence": 2}
    new = {"trial_index": 0, "trial_id": trial["trial_id"],
           "answer": {"choice": "b", "confidence": 2}, "rt_ms": 900.0}
    retry = client.post(url, json=new, headers=s.headers)
    assert (retry.status_code, retry.json["stored"]) == (200, False)


def test_non_json_and_oversized_bodies(api_env):
    _, client, key = api_env
    s = start_session(client, key)
    url = f"/api/sessions/{s.session_id}/responses"
    assert client.post(url, data="choice=a", headers=s.headers).status_code == 400
    assert client.post(url, data="{not json", headers=dict(s.headers, **{
        "Content-Type": "application/json"})).status_code == 400
    big = {"kind": "x", "payload": {"t": "y" * 100_000}}
    assert client.post(f"/api/sessions/{s.session_id}/events", json=big,
                       headers=s.headers).status_code == 413
    assert client.post(f"/api/sessions/{s.session_id}/events", json={"kind": "Bad Kind!"},
                       headers=s.headers).status_code == 400
    assert client.post(f"/api/sessions/{s.session_id}/instructions",
                       json={"seconds": float("nan")}, headers=s.headers).status_code == 400
    assert client.delete(url, headers=s.headers).status_code == 405


def test_save_reports_when_the_server_stored_it(api_env, db):
    """A save and its retry both answer the stored server_received_at, as ISO 8601 UTC."""
    from datetime import datetime

    _, client, key = api_env
    s = start_session(client, key, "?id=stampuser")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    url = f"/api/sessions/{s.session_id}/responses"
    body = answer(state["practice"][0], 0)
    first = client.post(url, json=body, headers=s.headers).json
    retry = client.post(url, json=body, headers=s.headers).json
    with db.read() as session:
        stored = session.scalar(select(Response.server_received_at))
    assert datetime.fromisoformat(first["server_received_at"]) == stored
    assert retry["server_received_at"] == first["server_received_at"]


def test_a_retried_event_or_instruction_time_is_stored_once(api_env, db):
    """The page's outbox resends after a lost reply; the same key must not count twice."""
    from experiments.db.models import Session

    _, client, key = api_env
    s = start_session(client, key, "?id=retryuser")
    events = f"/api/sessions/{s.session_id}/events"
    body = {"kind": "focus_lost", "payload": {}, "client_ms": 5.0, "key": "k1-abc"}
    assert client.post(events, json=body, headers=s.headers).status_code == 201
    again = client.post(events, json=body, headers=s.headers)
    assert again.status_code == 200 and again.json["stored"] is False
    assert client.post(events, json={**body, "key": "k2"}, headers=s.headers).status_code == 201
    assert client.post(events, json={**body, "key": "bad key!"}, headers=s.headers).status_code == 400
    instructions = f"/api/sessions/{s.session_id}/instructions"
    for _ in range(3):
        assert client.post(instructions, json={"seconds": 30.0, "key": "i1"},
                           headers=s.headers).status_code == 200
    assert client.post(instructions, json={"seconds": 12.5, "key": "i2"},
                       headers=s.headers).json["stored"] is True
    # The same key in another session is that session's own event.
    other = start_session(client, key, "?id=retryuser2")
    assert client.post(f"/api/sessions/{other.session_id}/events", json=body,
                       headers=other.headers).status_code == 201
    with db.read() as session:
        record = session.get(Session, s.session_id)
        kinds = session.scalars(select(Event.kind).where(Event.session_id == s.session_id,
                                                         Event.client_key.is_not(None))).all()
    # counted once each (the server also bounds them by the session's age: see test_paid_study)
    assert record.instruction_s_claimed == 42.5 and record.instruction_s <= 42.5
    assert sorted(kinds) == ["client_focus_lost", "client_focus_lost", "instructions", "instructions"]


def test_the_api_tells_the_page_the_next_step(api_env, db):
    """The page (and simulated participants) follow `next` / `next_step` from the server
    (experiments.study.progress), through a failed and a passed practice attempt to the end."""
    _, client, key = api_env
    s = start_session(client, key)
    url = f"/api/sessions/{s.session_id}"
    state = client.get(url, headers=s.headers).json
    truth = answer_key(db)
    step = state["next"]
    assert step == {"trial_index": 0, "phase": "practice", "attempt": 0, "slot": 0,
                    "position": state["practice_order"][0], "block_size": 2}
    seen = []
    while step is not None:
        trial = state[step["phase"]][step["position"]]
        right = not (step["phase"] == "practice" and step["attempt"] == 0)
        r = client.post(f"{url}/responses", headers=s.headers,
                        json=answer(trial, step["trial_index"], right=right, key=truth))
        assert r.status_code == 201, r.json
        seen.append((step["phase"], step["attempt"], step["slot"]))
        step = r.json["next_step"]
        if step is not None and len(seen) == 3:  # a reload mid-attempt resumes at the same step
            assert client.get(url, headers=s.headers).json["next"] == step
    n_main = len(state["main"])
    assert seen == [("practice", 0, 0), ("practice", 0, 1), ("practice", 1, 0),
                    ("practice", 1, 1), *(("main", 0, j) for j in range(n_main))]
    final = client.get(url, headers=s.headers).json
    assert final["next"] is None and final["stage"] == "finish"
