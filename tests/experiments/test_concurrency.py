"""Threads and processes hammering assignment and response writes: nothing overfilled, lost or doubled."""
import multiprocessing
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from experiments.db.models import Response, Session, Task
from experiments.study.build import build_experiment
from tests.participants import hammer
from tests.stimset import write_spec

N_TASKS = 24  # 8 main units x 9 responses / 6 per task x 2 conditions


@pytest.mark.slow
def test_concurrent_arrivals_and_writes(db, database_url, tmp_path, toy_set):
    spec = write_spec(tmp_path / "spec.toml", [toy_set], responses_per_unit=9)
    build_experiment(spec, db)
    thread_ids = [[f"T{t}-{i}" for i in range(4)] for t in range(8)]
    process_ids = [[f"P{p}-{i}" for i in range(6)] for p in range(2)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        in_processes = pool.starmap_async(hammer, [(database_url, "toy-exp", ids) for ids in process_ids])
        with ThreadPoolExecutor(8) as threads:
            in_threads = list(threads.map(lambda ids: hammer(database_url, "toy-exp", ids), thread_ids))
        outcomes = in_threads + in_processes.get(timeout=300)
    totals = Counter()
    for outcome in outcomes:
        totals.update(outcome)
    assert totals["completed"] == N_TASKS
    assert totals["full"] == 8 * 4 + 2 * 6 - N_TASKS

    with db.read() as s:
        per_task = Counter(s.scalars(select(Session.task_id).where(Session.status == "completed")))
        n_tasks = s.scalar(select(func.count()).select_from(Task))
        rows = s.execute(select(Response.session_id, Response.trial_index)).all()
    assert n_tasks == N_TASKS and len(per_task) == N_TASKS and set(per_task.values()) == {1}
    by_session: dict[str, list[int]] = {}
    for session_id, index in rows:
        by_session.setdefault(session_id, []).append(index)
    assert len(by_session) == N_TASKS
    for indexes in by_session.values():
        assert sorted(indexes) == list(range(2 + 8)), "a response was lost or duplicated"
