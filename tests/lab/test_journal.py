"""The local journal survives a torn last line (power loss, full disk) without losing a record."""
from __future__ import annotations

import json

import pytest

from experiments.lab.store import LocalStore


def _line(i: int) -> str:
    return json.dumps({"kind": "response", "trial_index": i, "correct": True}) + "\n"


def test_a_torn_last_line_is_quarantined_before_the_next_append(tmp_path):
    path = tmp_path / "S1.responses.jsonl"
    path.write_text(_line(0) + _line(1) + '{"kind": "response", "trial_in')  # cut mid-write
    store = LocalStore(path)
    assert [r["trial_index"] for r in store.records()] == [0, 1]
    with pytest.warns(UserWarning, match="cut short"):
        store.append({"kind": "response", "trial_index": 2, "correct": False})
    assert [r["trial_index"] for r in store.records()] == [0, 1, 2]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3
    assert store.quarantine.read_text() == '{"kind": "response", "trial_in\n'
    store.append({"kind": "response", "trial_index": 3, "correct": True})  # no warning now
    assert [r["trial_index"] for r in store.records()] == [0, 1, 2, 3]


def test_a_journal_damaged_before_the_repair_existed_still_reads(tmp_path):
    path = tmp_path / "S2.responses.jsonl"
    # the old behaviour: the next append joined the torn fragment on one line
    path.write_text(_line(0) + '{"kind": "response", "tri' + _line(1) + _line(2))
    store = LocalStore(path)
    with pytest.warns(UserWarning, match="torn fragment"):
        indexes = [r["trial_index"] for r in store.records()]
    assert indexes == [0, 1, 2]
