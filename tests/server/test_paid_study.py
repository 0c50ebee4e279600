"""A paid study's defences over the API: no answer key, no forged sign-ups, nobody loses pay."""
from __future__ import annotations

import json
import re

from sqlalchemy import select

from experiments.db.models import StimulusImage
from tests.server.conftest import start_session

PUBLIC_ID = re.compile(r"^[0-9a-f]{32}$")


def _image_ids(state: dict) -> list[str]:
    ids = [i for t in state["practice"] + state["main"]
           for i in (t["query_a"], t["query_b"], *t["references_max"], *t["references_min"])]
    return ids


def test_the_page_holds_no_answer_key(api_env, db):
    _, client, key = api_env
    s = start_session(client, key, "?PROLIFIC_PID=cheater")
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    text = json.dumps(state)
    assert "correct_choice" not in text and "correct" not in json.dumps(state["main"])
    with db.read() as session:
        internal = session.scalars(select(StimulusImage.image_id)).all()
    # internal ids name the role (qmax, rmin...): none may reach the page
    assert not [i for i in internal if f'"{i}"' in text]
    assert not re.search(r"q(max|min)|r(max|min)", text)
    ids = _image_ids(state)
    assert all(PUBLIC_ID.match(i) for i in ids), ids[:4]
    # every one of them is served, and the internal id is not
    assert client.get(state["image_base"] + ids[0]).status_code == 200
    missing = client.get(state["image_base"] + internal[0])
    assert missing.status_code == 404 and internal[0] not in missing.text


def test_upgrading_an_older_database_gives_every_image_a_public_id(db, tmp_path, small_set):
    from alembic import command

    from tests.server.conftest import build, make_app

    key = build(db, tmp_path, small_set)
    command.downgrade(db.alembic_config(), "0002")  # as built before public ids existed
    db.upgrade()
    with db.read() as session:
        ids = session.scalars(select(StimulusImage.public_id)).all()
    assert len(ids) == len(set(ids)) > 0 and all(PUBLIC_ID.match(i) for i in ids)
    client = make_app(db, tmp_path).test_client()
    s = start_session(client, key)
    state = client.get(f"/api/sessions/{s.session_id}", headers=s.headers).json
    assert client.get(state["image_base"] + state["main"][0]["query_b"]).status_code == 200
