"""Export: documented columns and dtypes, pseudonyms only, byte-identical rebuilds."""
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from experiments.db import Database
from experiments.sessions import SessionService
from experiments.study.build import build_experiment
from experiments.study.export import export_experiment, read_table
from experiments.study.schema import TABLES
from tests.participants import answer, run_session
from tests.stimset import write_spec

SCHEMA_DOC = Path(__file__).parents[2] / "data" / "SCHEMA.md"


@pytest.fixture
def exported(db, tmp_path, toy_set):
    build_experiment(write_spec(tmp_path / "spec.toml", [toy_set]), db)
    now = [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    service = SessionService(db, clock=lambda: now[0])
    first = service.start("toy-exp", "5f3a9c-PROLIFIC-RAW", "prolific",
                          client_info={"screen_width": 1920, "user_agent": "Firefox"})
    now[0] += timedelta(seconds=25)  # the instructions take 20 s of these
    service.record_instructions(first.session_id, first.token, 20.0)
    # A failed practice attempt, then the whole session.
    service.record_response(first.session_id, first.token, answer(first.practice[0], 0, correct=False))
    service.record_response(first.session_id, first.token, answer(first.practice[1], 1))
    first.next_index = 2
    run_session(service, first, accuracy=0.5, seed=1)
    second = service.start("toy-exp", "A2RAWMTURKWORKER", "mturk", client="web")
    run_session(service, second, stop_after=5, complete=False)
    out = {}
    for fmt in ("parquet", "csv"):
        export_experiment(db, "toy-exp", tmp_path / fmt, fmt)
        out[fmt] = tmp_path / fmt
    return out


def test_export_has_documented_columns_and_dtypes(exported):
    for fmt, folder in exported.items():
        for table, columns in TABLES.items():
            frame = read_table(folder / f"{table}.{fmt}")
            assert list(frame.columns) == list(columns)
            assert {c: str(t) for c, t in frame.dtypes.items()} == columns
    responses = pd.read_parquet(exported["parquet"] / "responses.parquet")
    assert str(responses.server_received_at.dtype) == "datetime64[us, UTC]"
    assert responses.correct.dtype == bool and str(responses.confidence.dtype) == "Int64"
    assert len(responses) == 12 + 5
    assert set(responses.participant_id) == {"P0001", "P0002"}
    assert list(responses[responses.participant_id == "P0001"].attempt[:4]) == [0, 0, 1, 1]
    assert not responses.duplicated(["session_id", "trial_index"]).any()
    participants = read_table(exported["parquet"] / "participants.parquet")
    p1 = participants.set_index("participant_id").loc["P0001"]
    assert p1.status == "completed" and p1.practice_attempts == 2 and p1.instruction_s == 20.0
    assert p1.screen_width == 1920 and p1.total_s >= 0
    assert participants.set_index("participant_id").loc["P0002"].status == "started"


def test_csv_and_parquet_exports_agree(exported):
    for table in TABLES:
        from_csv = read_table(exported["csv"] / f"{table}.csv")
        from_parquet = read_table(exported["parquet"] / f"{table}.parquet")
        pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_raw_platform_ids_never_leave_the_database(exported):
    for folder in exported.values():
        for file in folder.iterdir():
            data = file.read_bytes()
            assert b"5f3a9c-PROLIFIC-RAW" not in data and b"A2RAWMTURKWORKER" not in data


def test_same_seed_rebuilds_byte_for_byte(tmp_path, toy_set):
    outputs = []
    for run, seed in enumerate([11, 11, 12]):
        db = Database(f"sqlite:///{tmp_path / f'db{run}.sqlite3'}")
        build_experiment(write_spec(tmp_path / f"spec{run}.toml", [toy_set], seed=seed), db)
        folder = tmp_path / f"out{run}"
        export_experiment(db, "toy-exp", folder, "csv")
        export_experiment(db, "toy-exp", folder, "parquet")
        outputs.append({f.name: f.read_bytes() for f in folder.iterdir() if f.stem in ("trials", "units")})
        db.dispose()
    assert outputs[0] == outputs[1]
    assert outputs[0]["trials.csv"] != outputs[2]["trials.csv"]


def test_schema_doc_documents_every_column():
    text = SCHEMA_DOC.read_text()
    for table, columns in TABLES.items():
        section = re.search(rf"^## {table}\b(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
        assert section, f"data/SCHEMA.md has no '## {table}' section"
        documented = re.findall(r"^\| `([a-z_]+)` \|", section.group(1), re.MULTILINE)
        assert documented == list(columns), f"{table}: SCHEMA.md rows differ from experiments/study/schema.py"


def test_export_carries_the_spec_for_the_analysis(exported):
    from analysis.load import load_dataset

    for folder in exported.values():
        dataset = load_dataset(folder)
        assert [s["experiment"] for s in dataset.settings] == ["toy-exp@1"]
        assert dataset.settings[0]["spec"]["catch_trials_per_task"] == 2
        assert dataset.settings[0]["spec"]["exclusions"]["min_total_s"] == 135.0


def test_every_participant_status_the_export_can_write_is_documented():
    import re
    from pathlib import Path

    from experiments.study.export import _participant_status
    from experiments.vocabulary import SessionStatus

    schema = (Path(__file__).resolve().parents[2] / "data" / "SCHEMA.md").read_text()
    line = next(l for l in schema.splitlines() if l.startswith("| `status` |"))
    documented = set(re.findall(r"`(\w+)`", line.split("|")[3]))
    written = {_participant_status(status) for status in SessionStatus}
    assert written == documented - {"failed_checks"}, (written, documented)


def test_data_schema_names_each_built_in_types_columns():
    """data/SCHEMA.md describes each of interpsy's own task types in a paragraph naming it; that
    paragraph names every trial and response column the type declares."""
    import re

    from experiments.tasks import get_task
    from experiments.tasks.registry import BUILT_IN

    text = SCHEMA_DOC.read_text()
    for name in (*BUILT_IN, "imi_3afc", "categorisation"):
        start = text.index(f"(`{name}`)")
        paragraph = text[start: text.find("\n\n", start)]
        named = set(re.findall(r"`(\w+)`", paragraph))
        task = get_task(name)
        missing = (set(task.trial_columns) | set(task.response_columns)) - named
        assert not missing, f"data/SCHEMA.md does not name {name}'s columns {sorted(missing)}"
