"""The header-and-bytes cheater of issue 28 against the demo's experiment, served as the demo
serves it (gunicorn, `interpsy serve`): over every trial, does a query image's Content-Length,
ETag, Last-Modified, download time or place in the trial name the right answer; over whole
sessions, how many main trials does a participant who picks the larger file get right?

    .venv/bin/interpsy demo --no-serve --steps 2 --folder /tmp/probe-demo
    .venv/bin/python benchmarks/probe_leaks.py --folder /tmp/probe-demo \
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

The queries are natural crops chosen by mining, so the render steps do not change them: the
demo's own set (30 steps, or the shipped one) has the same query images at the same seed.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import click
from scipy.stats import binomtest
from sqlalchemy import create_engine, select, text

from experiments.db import Database
from experiments.db.models import Response, Task, Trial
from experiments.demo.common import DemoFolder
from experiments.demo.server import DemoServer, free_port
from experiments.demo.specs import ensure_experiment
from experiments.simulated_participants import HttpParticipant, Observer
from experiments.study.build import build_experiment
from server.images import public_ids
from server.lookup import find_experiment

RULES = ("larger file is max", "smaller ETag is max", "earlier Last-Modified is max",
         "slower download is max", "upper query (a) is max")


@dataclass(frozen=True)
class Heads:
    """What a cheater sees of one image response besides its pixels."""

    size: int
    etag: str
    modified: float
    seconds: float


def fetch(url: str) -> Heads:
    """GET one image; its headers and download time."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = reply.read()
        headers = reply.headers
    return Heads(len(body), headers.get("ETag", ""),
                 parsedate_to_datetime(headers["Last-Modified"]).timestamp()
                 if headers.get("Last-Modified") else 0.0, time.perf_counter() - started)


def verdicts(a: Heads, b: Heads) -> dict[str, str | None]:
    """Each rule's pick between queries a and b (None: the rule cannot tell them apart)."""
    def pick(x: float | str, y: float | str, larger: bool) -> str | None:
        if x == y:
            return None
        return "a" if (x > y) == larger else "b"
    return {RULES[0]: pick(a.size, b.size, True), RULES[1]: pick(a.etag, b.etag, False),
            RULES[2]: pick(a.modified, b.modified, False),
            RULES[3]: pick(a.seconds, b.seconds, True), RULES[4]: "a"}


def every_trial(db: Database, base_url: str, key: str) -> dict[str, tuple[int, int, int]]:
    """Per rule over every trial of the experiment: (right, decided, trials)."""
    experiment = find_experiment(db, key)
    with db.read() as session:
        trials = session.execute(select(Trial.stimulus, Trial.answer_key).join(Task)
                                 .where(Task.experiment_id == experiment.id)).all()
    ids = public_ids(db, experiment.id)
    tally = {rule: [0, 0] for rule in RULES}
    for stimulus, answer in trials:
        a, b = (fetch(f"{base_url}/img/{key}/{ids[stimulus[slot]]}")
                for slot in ("query_a", "query_b"))
        for rule, choice in verdicts(a, b).items():
            if choice is not None:
                tally[rule][0] += choice == answer
                tally[rule][1] += 1
    return {rule: (right, decided, len(trials)) for rule, (right, decided) in tally.items()}


@dataclass
class SizeCheater(Observer):
    """Picks the query whose file is larger (a coin when they are equal)."""

    image_base: str = ""
    picks: list[bool] = field(default_factory=list)  # True where sizes decided

    def choose(self, trial: dict[str, Any], *args: Any, **kwargs: Any) -> tuple[str, int]:
        stimulus = trial["stimulus"]
        a, b = (fetch(self.image_base + stimulus[slot]) for slot in ("query_a", "query_b"))
        self.picks.append(a.size != b.size)
        if a.size == b.size:
            return self.rng.choice("ab"), 1
        return ("a" if a.size > b.size else "b"), 3


def whole_sessions(db: Database, base_url: str, key: str, n: int, seed: int
                   ) -> tuple[int, int, int, int]:
    """n cheaters through the real API: (main trials right, main trials, decided, sessions)."""
    sessions, decided = [], 0
    for k in range(n):
        cheater = SizeCheater(seed=seed + k, image_base=f"{base_url}/img/{key}/")
        participant = HttpParticipant(base_url, key, f"CHEAT{seed}x{k:03d}", cheater, {}, {}, {})
        if participant.run()["status"] == "refused":
            break
        sessions.append(participant.session_id)
        decided += sum(cheater.picks)
    with db.read() as session:
        main = session.scalars(select(Response.correct).join(Trial)
                               .where(Response.session_id.in_(sessions), Trial.phase == "main")
                               ).all()
    return sum(main), len(main), decided, len(sessions)


def postgres_copy(url: str, spec: Path) -> tuple[Database, str, str]:
    """A fresh schema on `url` with the demo's experiment built in it: (db, key, schema)."""
    schema = f"probe_{uuid.uuid4().hex[:8]}"
    with create_engine(url).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(f"{url}?options=-csearch_path%3D{schema}")
    db.upgrade()
    return db, build_experiment(spec, db).key, schema


def drop_schema(url: str, schema: str) -> None:
    with create_engine(url).begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def report(name: str, trials: dict[str, tuple[int, int, int]],
           sessions: tuple[int, int, int, int]) -> None:
    """One database's table, as committed in benchmarks/RESULTS_server.md."""
    click.echo(f"\n{name}\n\n| rule | right / decided | trials | share | binomial p |\n"
               "|---|---|---|---|---|")
    for rule, (right, decided, n) in trials.items():
        share = f"{right / decided:.3f}" if decided else "never decides"
        p = f"{binomtest(right, decided).pvalue:.3f}" if decided else "-"
        click.echo(f"| {rule} | {right} / {decided} | {n} | {share} | {p} |")
    right, n, decided, people = sessions
    click.echo(f"| whole sessions, larger file | {right} / {n} main trials | {people} sessions "
               f"| {right / max(n, 1):.3f} | {binomtest(right, n).pvalue:.3f} |"
               f"\n(sizes decided {decided} of the sessions' trials)")


@click.command()
@click.option("--folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A demo folder (`interpsy demo --no-serve --folder ...`).")
@click.option("--postgres", default=None, help="Also probe a copy built on this PostgreSQL.")
@click.option("--sessions", default=15, show_default=True, help="Cheating sessions per database.")
@click.option("--seed", default=0, show_default=True)
def main(folder: Path, postgres: str | None, sessions: int, seed: int) -> None:
    """Probe the demo's experiment on its SQLite database (and a PostgreSQL copy)."""
    place = DemoFolder(folder.resolve())
    ensure_experiment(Database(place.database_url), place, 8, seed)  # writes the demo's spec
    scratch = Path(tempfile.mkdtemp(prefix="probe-leaks-"))
    copy = Database(f"sqlite:///{scratch / 'probe.sqlite3'}")
    copy.upgrade()
    targets = [("SQLite (a fresh copy of the demo's experiment)", copy,
                build_experiment(place.spec, copy).key, None)]
    if postgres:
        copy, key, schema = postgres_copy(postgres, place.spec)
        targets.append((f"PostgreSQL (schema {schema})", copy, key, schema))
    try:
        for name, db, key, _ in targets:
            server = DemoServer(place, free_port(), 2, database_url=db.url)
            try:
                trials = every_trial(db, server.base_url, key)
                played = whole_sessions(db, server.base_url, key, sessions, seed)
            finally:
                server.stop()
            report(name, trials, played)
    finally:
        for _, db, _, schema in targets:
            db.dispose()
            if schema:
                drop_schema(postgres, schema)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
