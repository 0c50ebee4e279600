"""The local journal survives a torn last line (power loss, full disk) without losing a record."""
from __future__ import annotations

import json
import logging

from experiments.lab.store import LocalStore


def _line(i: int) -> str:
    return json.dumps({"kind": "response", "trial_index": i, "correct": True}) + "\n"


def test_a_torn_last_line_is_quarantined_before_the_next_append(tmp_path, caplog):
    path = tmp_path / "S1.responses.jsonl"
    path.write_text(_line(0) + _line(1) + '{"kind": "response", "trial_in')  # cut mid-write
    store = LocalStore(path)
    assert [r["trial_index"] for r in store.records()] == [0, 1]
    assert store.torn() == '{"kind": "response", "trial_in'
    with caplog.at_level(logging.WARNING, logger="interpsy.lab"):
        store.append({"kind": "response", "trial_index": 2, "correct": False})
    # one plain sentence for the experimenter, no Python warning with a source path
    (said,) = [r.getMessage() for r in caplog.records if r.name == "interpsy.lab"]
    assert "cut short" in said and "asked again" in said and str(store.quarantine) in said
    assert [r["trial_index"] for r in store.records()] == [0, 1, 2]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3
    assert store.quarantine.read_text() == '{"kind": "response", "trial_in\n'
    store.append({"kind": "response", "trial_index": 3, "correct": True})  # no warning now
    assert [r["trial_index"] for r in store.records()] == [0, 1, 2, 3]


def test_a_journal_damaged_before_the_repair_existed_still_reads(tmp_path, caplog):
    path = tmp_path / "S2.responses.jsonl"
    # the old behaviour: the next append joined the torn fragment on one line
    path.write_text(_line(0) + '{"kind": "response", "tri' + _line(1) + _line(2))
    store = LocalStore(path)
    with caplog.at_level(logging.WARNING, logger="interpsy.lab"):
        indexes = [r["trial_index"] for r in store.records()]
    assert indexes == [0, 1, 2]
    assert "torn fragment" in caplog.text
