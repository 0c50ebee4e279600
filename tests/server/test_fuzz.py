"""Hypothesis fuzzing of the API: no 500s, and nothing already stored changes."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from experiments.db.models import Response, Session
from tests.server.conftest import start_session

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
keys = st.sampled_from(["trial_index", "trial_id", "answer", "choice", "confidence", "rt_ms",
                        "stim_onset_ms", "response_ms", "extra", "kind", "payload", "client_ms",
                        "seconds", "feedback", "other"])
bodies = st.one_of(json_values, st.dictionaries(keys, json_values, max_size=8))
paths = st.sampled_from(["responses", "events", "instructions", "complete"])


def snapshot(db) -> tuple:
    with db.read() as session:
        rows = session.execute(select(Response.session_id, Response.trial_index, Response.trial_id,
                                      Response.answer, Response.rt_ms)
                               .order_by(Response.id)).all()
        statuses = session.execute(select(Session.id, Session.status, Session.n_responses)
                                   .order_by(Session.id)).all()
    return tuple(rows), tuple(statuses)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, path=paths, raw=st.binary(max_size=64), use_raw=st.booleans(),
       token_kind=st.sampled_from(["own", "other", "none", "garbage"]))
def test_fuzzed_bodies_never_500_nor_change_stored_answers(api_env, db, body, path, raw, use_raw,
                                                           token_kind):
    _, client, key = api_env
    mine, other = _sessions(client, key, db)
    before = snapshot(db)
    headers = {"own": mine.headers, "other": other.headers, "none": {},
               "garbage": {"Authorization": "Bearer \u00e9\u0000x"}}[token_kind]
    url = f"/api/sessions/{mine.session_id}/{path}"
    if use_raw:
        response = client.post(url, data=raw, headers=dict(headers, **{
            "Content-Type": "application/json"}))
    else:
        response = client.post(url, json=body, headers=headers)
    assert response.status_code < 500, response.text
    assert (response.is_json and "error" in response.json) or response.status_code < 300
    after = snapshot(db)
    if path == "responses" and response.status_code == 201:
        assert after[0][: len(before[0])] == before[0]  # a new answer appended, none changed
    else:
        assert after[0] == before[0]


_CACHE: dict[str, tuple] = {}


def _sessions(client, key, db):
    """Two sessions per database, the first with two stored answers (created once)."""
    if db.url not in _CACHE:
        mine = start_session(client, key)
        other = start_session(client, key)
        state = client.get(f"/api/sessions/{mine.session_id}", headers=mine.headers).json
        for index, trial in enumerate(state["practice"]):
            client.post(f"/api/sessions/{mine.session_id}/responses", headers=mine.headers, json={
                "trial_index": index, "trial_id": trial["trial_id"], "choice": "a",
                "confidence": 1, "rt_ms": 500.0})
        _CACHE[db.url] = (mine, other)
    return _CACHE[db.url]
