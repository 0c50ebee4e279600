"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable) and stimulus sets."""
from __future__ import annotations

import contextlib
import os
import uuid
from importlib import metadata
from pathlib import Path

# Each pytest-xdist worker gets its share of the cores for torch's and BLAS's thread pools
# (and the subprocesses it starts inherit it): two workers each spinning two OpenMP threads on
# two cores took 2.2 times as long on the torch tests (benchmarks/RESULTS_tests.md).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, _threads)

import pytest
from sqlalchemy import create_engine, text

from experiments.db import Database
from experiments.tasks import ENTRY_POINT_GROUP, task_types
from tests.stimset import make_stimulus_set

# PsychoPy windows load Mesa's llvmpipe and torch optimisers load triton (via torch._dynamo);
# both bundle LLVM, and loading triton second segfaults the process. The lab and stimuli tests
# share one pytest process, so triton goes first when it is installed.
with contextlib.suppress(ImportError):
    import triton  # noqa: F401

POSTGRES_URL = os.environ.get("INTERPSY_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_unreachable_reason() -> str | None:
    """None when PostgreSQL answers, else why the postgres tests are skipped."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any driver error means: not reachable
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}".splitlines()[0]


_PG_REASON = postgres_unreachable_reason()


def postgres_schema_url() -> tuple[str, str]:
    """A fresh schema on the test server and a URL whose search_path points at it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text(f"create schema {schema}"))
    engine.dispose()
    return schema, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}&application_name={schema}"


def drop_postgres_schema(schema: str) -> None:
    """Drop a test schema, ending first the sessions still on it (a live server's request
    thread may outlive its test and would deadlock against the drop)."""
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("select pg_terminate_backend(pid) from pg_stat_activity "
                                "where application_name = :schema and pid <> pg_backend_pid()"),
                           {"schema": schema})
        connection.execute(text(f"drop schema if exists {schema} cascade"))
    engine.dispose()


SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` the tests benchmarks/suite_times.py measured over half a second (tests/slow_tests.txt),
    so that `make test-fast` leaves them out."""
    if not SLOW_LIST.is_file():
        return
    slow = {line.strip() for line in SLOW_LIST.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    for item in items:
        if item.nodeid in slow:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path):
    """A URL to an empty database, SQLite and PostgreSQL in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'interpsy.sqlite3'}"
        return
    if _PG_REASON:
        pytest.skip(_PG_REASON)
    schema, url = postgres_schema_url()
    try:
        yield url
    finally:
        drop_postgres_schema(schema)


@pytest.fixture
def db(database_url: str):
    """A migrated, empty Database."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def toy_set(tmp_path_factory) -> Path:
    """A small valid stimulus set with natural and synthetic references (shared, read-only)."""
    return make_stimulus_set(tmp_path_factory.mktemp("sets"), difficulties=("easy", "p95"))


@pytest.fixture
def registered(monkeypatch):
    """Install `interpsy.tasks` entry points ("module:Class") as an installed package would,
    beside interpsy's own, for one test."""
    installed = metadata.entry_points

    def install(*values: str) -> None:
        points = [*installed(group=ENTRY_POINT_GROUP),
                  *(metadata.EntryPoint(name=v.rpartition(":")[2], value=v,
                                        group=ENTRY_POINT_GROUP) for v in values)]
        monkeypatch.setattr(metadata, "entry_points", lambda group=None, **kw: (
            points if group == ENTRY_POINT_GROUP else installed(group=group, **kw)))
        task_types.cache_clear()

    yield install
    task_types.cache_clear()
