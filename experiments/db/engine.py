"""Engines for SQLite (WAL, busy timeout, immediate write transactions) and PostgreSQL."""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from experiments.errors import InterpsyError

try:
    import fcntl
except ImportError:  # Windows lab machines: threads are still serialised
    fcntl = None

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def interpsy_home() -> Path:
    """INTERPSY_HOME, default ~/.interpsy; created on first use."""
    home = Path(os.environ.get("INTERPSY_HOME", Path.home() / ".interpsy")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def database_url_from_env() -> str:
    """INTERPSY_DATABASE_URL, default a SQLite file under INTERPSY_HOME."""
    url = os.environ.get("INTERPSY_DATABASE_URL")
    return url or f"sqlite:///{interpsy_home() / 'interpsy.sqlite3'}"


def describe_url(url: str | None) -> str:
    """The database URL (INTERPSY_DATABASE_URL's default when None) without its password."""
    return make_url(_normalise(url or database_url_from_env())).render_as_string(
        hide_password=True)


def _normalise(url: str) -> str:
    # Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    # pysqlite's own transaction handling defers BEGIN; take control so writes can use
    # BEGIN IMMEDIATE (a deferred read-then-write upgrade fails at once under concurrency).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class WriteLock:
    """Serialises write transactions on one SQLite file across threads and processes.

    SQLite makes a blocked writer poll with sleeps that grow to 100 ms, which turns a queue of a
    few 2 ms writes into 100+ ms latencies; a blocking flock wakes the next writer at once.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._threads = threading.RLock()
        self._local = threading.local()
        self._fd: int | None = None
        self._pid: int | None = None

    def _file(self) -> int | None:
        if self.path is None or fcntl is None:
            return None
        if self._pid != os.getpid():  # after a fork (gunicorn): an open file of our own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the block; re-entrant within a thread."""
        with self._threads:
            depth = getattr(self._local, "depth", 0)
            fd = self._file() if depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


def _postgres_deadlines(deadline_s: float) -> dict[str, int]:
    """libpq settings that end a connect or a silent link within about `deadline_s`."""
    return {"connect_timeout": max(2, math.ceil(deadline_s)),  # libpq's least is 2 s
            "tcp_user_timeout": int(deadline_s * 1000),  # unacknowledged data: give up
            "keepalives": 1, "keepalives_idle": 1, "keepalives_interval": 1,
            "keepalives_count": max(2, math.ceil(deadline_s))}


class Database:
    """One database: engine, read and write sessions, migrations.

    `deadline_s` bounds each wait on the database (SQLite's busy timeout, PostgreSQL's connect
    timeout, TCP keepalives and user timeout, a free pool connection) for clients that must not
    freeze, like the lab's; None keeps the server's patient defaults.
    """

    def __init__(self, url: str | None = None, echo: bool = False,
                 deadline_s: float | None = None):
        self.url = _normalise(url or database_url_from_env())
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            on_disk = bool(parsed.database) and parsed.database != ":memory:"
            if on_disk:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.write_lock = WriteLock(Path(f"{parsed.database}-writelock") if on_disk else None)
            busy_ms = int(deadline_s * 1000) if deadline_s else SQLITE_BUSY_TIMEOUT_MS
            self.engine = create_engine(self.url, echo=echo,
                                        connect_args={"timeout": busy_ms / 1000,
                                                      "check_same_thread": False})
            _configure_sqlite(self.engine, busy_ms)
            writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            extra = ({"connect_args": _postgres_deadlines(deadline_s), "pool_timeout": deadline_s}
                     if deadline_s else {})
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True,
                                        pool_size=5, max_overflow=10, **extra)
            writer = self.engine
            self.write_lock = None
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[OrmSession]:
        """A session for reading; closing it ends the transaction, loaded objects stay readable."""
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[OrmSession]:
        """A session whose transaction holds the write lock (SQLite) and commits on success."""
        with (self.write_lock.hold() if self.write_lock else nullcontext(),
              self._writer() as session, session.begin()):
            yield session

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision`."""
        command.upgrade(self.alembic_config(), revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def require_current(self) -> None:
        """Raise a clear error when the schema is missing or behind the code."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise InterpsyError(f"database {self.describe()} is at schema revision {current or 'none'}, "
                                f"the code needs {head}: run 'interpsy db upgrade'")

    def describe(self) -> str:
        return describe_url(self.url)

    def dispose(self) -> None:
        self.engine.dispose()
