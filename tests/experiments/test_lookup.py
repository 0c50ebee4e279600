"""One definition of what an experiment key names (experiments/db/lookup.py): `name@version` one
experiment; a bare name every version where a dataset is gathered (the export) and the newest
where people enter (links, sessions)."""
from __future__ import annotations

import pytest

from experiments.db.lookup import experiment_by_key, experiments_named
from experiments.errors import NotFound
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from tests.stimset import write_spec


def test_a_bare_name_is_every_version_to_export_and_the_newest_to_enter(db, toy_set, tmp_path):
    for version in ("1", "2"):
        build_experiment(write_spec(tmp_path / f"v{version}.toml", [toy_set], version=version),
                         db)
    with db.read() as session:
        assert [e.key for e in experiments_named(session, "toy-exp")] == ["toy-exp@1",
                                                                          "toy-exp@2"]
        assert experiment_by_key(session, "toy-exp").key == "toy-exp@2"
        assert experiment_by_key(session, "toy-exp@1").key == "toy-exp@1"
        assert [e.key for e in experiments_named(session, "toy-exp@1")] == ["toy-exp@1"]
        for lookup in (experiment_by_key, experiments_named):
            with pytest.raises(NotFound, match="no experiment 'nope'"):
                lookup(session, "nope")
    trials = frames_from_db(db, "toy-exp")["trials"]
    assert set(trials.experiment) == {"toy-exp@1", "toy-exp@2"}
