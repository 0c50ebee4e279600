"""`query_distribution` (issue 17 item 1): a design factor balanced like condition; a trial's
queries come from its distribution and its references never move; stored, served and exported;
a plan without it is unchanged; a set without the distribution or a task type without shifted
queries is refused by name."""
from __future__ import annotations

from collections import Counter

import pytest

from analysis import load
from experiments.errors import SpecError
from experiments.sessions import SessionService
from experiments.stimulus_set import load_stimulus_set
from experiments.study.build import build_experiment
from experiments.study.design import design_frame, plan
from experiments.study.export import export_experiment
from experiments.study.spec import load_spec, parse_spec
from tests.participants import run_session
from tests.stimset import make_stimulus_set, write_spec


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("shifted")
    return {"shifted": make_stimulus_set(root, "shifted", n_units=12, n_batches=3,
                                         difficulties=("easy", "p85"), image_size=8,
                                         shifted=("blur-3", "sketches")),
            "plain": make_stimulus_set(root, "plain", n_units=12, n_batches=3,
                                       difficulties=("easy", "p85"), image_size=8)}


def _plan(path, tmp_path, **values):
    spec = load_spec(write_spec(tmp_path / "spec.toml", [path], **values))
    return plan(spec.spec, [load_stimulus_set(p) for p in spec.set_paths])


def test_query_distribution_is_balanced_like_condition(sets, tmp_path):
    design = _plan(sets["shifted"], tmp_path, query_distribution=["in", "blur-3", "sketches"],
                   difficulty=["easy", "p85"])
    cells = Counter((t.condition, t.difficulty, t.query_distribution) for t in design.tasks)
    assert len(cells) == 2 * 2 * 3 and len(set(cells.values())) == 1
    frame = design_frame(design)
    main = frame[(frame.phase == "main") & ~frame.is_catch]
    per_unit = main.groupby(["unit_id", "condition", "difficulty", "query_distribution"]).size()
    assert set(per_unit) == {3}  # responses_per_unit in every cell
    images = load_stimulus_set(sets["shifted"]).images.set_index("image_id")
    for row in frame.itertuples():
        queries = images.loc[[row.query_a, row.query_b]]
        references = images.loc[row.references_max + row.references_min]
        assert set(references.distribution) == {"in"}
        if not row.is_catch:
            assert set(queries.distribution) == {row.query_distribution}, row
            assert set(queries.difficulty) == {row.difficulty}


def test_a_plan_without_the_factor_is_the_plan_it_was(sets, tmp_path):
    shifted = design_frame(_plan(sets["shifted"], tmp_path))
    plain = design_frame(_plan(sets["plain"], tmp_path))
    assert set(shifted.query_distribution) == {"in"}
    assert shifted.equals(plain)


def test_the_factor_is_stored_served_and_exported(sets, tmp_path, db):
    spec = write_spec(tmp_path / "spec.toml", [sets["shifted"]],
                      query_distribution=["in", "blur-3"], conditions=["natural"])
    key = build_experiment(spec, db).key
    service = SessionService(db)
    for n in range(4):
        state = service.start(key, f"P-{n}", "link")
        assert {t.query_distribution for t in state.main} <= {"in", "blur-3"}
        run_session(service, state, accuracy=0.8, seed=n)
    export_experiment(db, key, tmp_path / "export")
    responses = load(tmp_path / "export")
    trials_seen = responses[responses.phase == "main"].groupby("task_id").query_distribution
    assert (trials_seen.nunique() == 1).all()  # a task's trials share its distribution
    assert set(responses.query_distribution) <= {"in", "blur-3"}
    assert responses.query_distribution.notna().all()


def test_what_cannot_be_built_is_refused_by_name(sets, tmp_path):
    with pytest.raises(SpecError, match=r"query_distribution 'noise-2': stimulus set .*plain "
                                        r"has no such queries \(it has in\); add them with "
                                        r"`interpsy stimuli shift"):
        _plan(sets["plain"], tmp_path, query_distribution=["in", "noise-2"])
    with pytest.raises(SpecError, match="task type occlusion has no shifted queries"):
        parse_spec('name = "x"\nstimulus_sets = ["s"]\nconditions = ["natural"]\n'
                   'query_distribution = ["in", "blur-3"]\n[task]\ntype = "occlusion"\n')
    with pytest.raises(SpecError, match="query_distribution: value error, 'Blur 3' is not a query distribution: use 'in', a "
                                        "shifted pool's label"):
        parse_spec('name = "x"\nstimulus_sets = ["s"]\nquery_distribution = ["Blur 3"]\n')
    with pytest.raises(SpecError, match="each value may appear only once"):
        parse_spec('name = "x"\nstimulus_sets = ["s"]\nquery_distribution = ["in", "in"]\n')
