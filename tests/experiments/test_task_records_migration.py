"""An IMI 2-AFC study stored before task types (revision 0007: the 2-AFC's own columns) serves,
resumes and exports identically after `interpsy db upgrade` moves it to the generic records."""
from __future__ import annotations

from alembic import command
from sqlalchemy import text

from experiments.cli import main
from experiments.sessions import SessionService
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from tests.participants import answer, run_session
from tests.stimset import write_spec


def test_an_imi_study_from_before_task_types_upgrades_unchanged(db, tmp_path, toy_set, capsys):
    spec = write_spec(tmp_path / "old.toml", [toy_set], name="old-exp")
    key = build_experiment(spec, db).key
    service = SessionService(db)
    done = service.start(key, "P-done", "link")
    run_session(service, done, accuracy=0.7, seed=3)
    halfway = service.start(key, "P-half", "link")
    run_session(service, halfway, stop_after=5, complete=False)
    before = frames_from_db(db, key)
    state_before = service.state(halfway.session_id, halfway.token)

    command.downgrade(db.alembic_config(), "0007")  # the schema (and rows) as they were
    with db.engine.connect() as connection:
        old = connection.execute(text(
            "select query_a, query_b, correct_choice, references_max from trials "
            "order by id")).all()
        flat = connection.execute(text("select choice, confidence from responses")).all()
    assert len(old) == len(before["trials"]) and len(flat) == len(before["responses"])
    assert [r.query_a for r in old] == list(before["trials"].query_a)
    assert {r.correct_choice for r in old} == {"a", "b"}
    assert sorted((r.choice, r.confidence) for r in flat) == sorted(
        zip(before["responses"].choice, before["responses"].confidence))

    assert main(["db", "upgrade", "--database", db.url]) == 0
    assert f"is at revision {db.head_revision()}" in capsys.readouterr().out
    after = frames_from_db(db, key)
    for table, frame in before.items():
        assert after[table].equals(frame), table
    state = service.state(halfway.session_id, halfway.token)
    assert (state.next_index, state.main_offset) == (state_before.next_index,
                                                     state_before.main_offset)
    assert state.main == state_before.main and state.practice == state_before.practice
    index = state.next_index
    trial = state.main[index - state.main_offset]
    assert service.record_response(state.session_id, state.token, answer(trial, index)).stored
    assert run_session(service, service.state(state.session_id, state.token)) > 0
    assert len(frames_from_db(db, key)["responses"]) > len(before["responses"])


def test_the_migrated_schema_is_the_models_schema(db):
    """What `db upgrade` builds equals the ORM models (tables, columns, types, nullability):
    a model changed without a migration (or the reverse) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from experiments.db.models import Base

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    relevant = [d for d in differences
                if not (isinstance(d, tuple) and d[0] in ("remove_index", "add_index"))]
    assert relevant == []
