"""Load benchmark: N simulated participants run whole sessions over HTTP against gunicorn.

Each participant opens the study link, gives consent, loads its trial list and answers one trial
every `--interval` seconds (jittered) like a person; answers are retried with backoff exactly like
the browser's save queue. With `--images all` each participant also downloads every image of its
session as the page does (each trial's 20 images before it is shown, 6 at a time). Midway the
server can be killed with SIGKILL and restarted (`--kill-at`). With `--servers N` the participants
go through nginx to N gunicorn servers (a round-robin upstream without stickiness, one
PostgreSQL, one secret key), and `--kill-at` SIGKILLs one of them for good. At the end the
database is checked: every trial stored exactly once, with the answer the client sent, and no task
held by two sessions. Reports saves/s, p50/p99 save
latency as the clients saw it and as gunicorn measured it (access log), and the bytes one session
downloads. Baseline for the ratio: the same run's p99 against the 100 ms target.

The load generator is aiohttp on one asyncio loop (httpx spent ~3x more CPU per request here, and
on a 2-core box the generator's own CPU shows up as latency).

    .venv/bin/python benchmarks/bench_server_load.py --participants 500 --backend both --kill-at 40
    .venv/bin/python benchmarks/bench_server_load.py --backend postgres --servers 2 --workers 2 \
        --images proxy --kill-at 40
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.db import Database
from experiments.db.models import Response, Trial
from experiments.study.build import build_experiment
from server.images import ImageStore, nginx_locations
from tests.nginx import Nginx, free_port
from tests.stimset import make_stimulus_set, write_spec

PG_URL = os.environ.get("INTERPSY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Stats:
    """What the simulated participants measured."""

    latencies: list[float] = field(default_factory=list)
    saves: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) per save
    outage: tuple[float, float] | None = None  # (killed, answering again), perf_counter
    images: int = 0
    first_try: list[float] = field(default_factory=list)  # saves answered without a retry
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    sent: dict[str, dict[int, tuple[int, str]]] = field(default_factory=dict)  # sid -> index -> answer
    completed: int = 0


class Server:
    """gunicorn in its own process group, so SIGKILL takes master and workers at once."""

    def __init__(self, database_url: str, home: Path, workers: int, threads: int,
                 secret_key: str, name: str = "access"):
        self.access_log = home / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, INTERPSY_DATABASE_URL=database_url, INTERPSY_HOME=str(home),
                        INTERPSY_SECRET_KEY=secret_key, INTERPSY_RATE_LIMITS="off",
                        PYTHONPATH=str(ROOT))
        self.args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                     "--workers", str(workers), "--backlog", "2048", "--log-level", "warning",
                     # request path, status and duration in microseconds, for server-side latency
                     "--access-logfile", str(self.access_log),
                     "--access-logformat", "%(m)s %(U)s %(s)s %(D)s"]
        if threads > 1:
            self.args += ["--worker-class", "gthread", "--threads", str(threads)]
        self.args.append("server.wsgi:app")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, env=self.env, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)


async def with_retry(stats: Stats, call, what: str):
    """Retry network errors, 429 and 5xx with capped backoff, as the browser queue does."""
    for attempt in range(60):
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            response = await call()  # network errors are retried like 5xx
            if response.status < 500 and response.status != 429:
                return response
        stats.retries += 1
        await asyncio.sleep(min(5.0, 0.25 * 2 ** attempt) * random.uniform(0.75, 1.25))
    raise RuntimeError(f"{what}: gave up after 60 tries")


@dataclass
class Reply:
    """The parts of an HTTP answer the participants look at (read before the connection is reused)."""

    status: int
    text: str
    location: str


async def fetch(client: aiohttp.ClientSession, method: str, url: str, **kwargs) -> Reply:
    async with client.request(method, url, allow_redirects=False, **kwargs) as response:
        return Reply(response.status, await response.text(), response.headers.get("location", ""))


async def download(client: aiohttp.ClientSession, base: str, ids: list[str], stats: Stats) -> None:
    """Fetch images as the page's loader does: 6 at a time, each retried."""
    gate = asyncio.Semaphore(6)

    async def one(image_id: str) -> None:
        async with gate:
            async def get():
                async with client.get(base + image_id) as response:
                    await response.read()
                    return Reply(response.status, "", "")
            await with_retry(stats, get, "image")
            stats.images += 1
    await asyncio.gather(*(one(i) for i in ids))


async def participant(number: int, client: aiohttp.ClientSession, base: str, key: str, args,
                      stats: Stats, truth: dict[int, str]) -> None:
    await asyncio.sleep(random.uniform(0, args.interval * args.ramp))
    query = f"?PROLIFIC_PID=bench{number:05d}&STUDY_ID=load&SESSION_ID=s{number}"
    page = await with_retry(stats, lambda: fetch(client, "GET", f"{base}/x/{key}/{query}"), "entry")
    if page.status == 303:  # to the entry URL with the ids encrypted
        page = await with_retry(stats, lambda: fetch(client, "GET", base + page.location), "entry")
    entry = re.search(r'name="entry" value="([^"]+)"', page.text).group(1)
    form = {"entry": entry, "consent": "yes", "window_width": "1280", "window_height": "800"}
    started = await with_retry(stats, lambda: fetch(client, "POST", f"{base}/x/{key}/start",
                                                    data=form), "start")
    if started.status != 303:
        # A kill between commit and reply: the same participant resumes on the next try.
        started = await with_retry(stats, lambda: fetch(client, "POST", f"{base}/x/{key}/start",
                                                        data=form), "start again")
    match = re.search(r"#s=([0-9a-f]{32})&t=([^&]+)", started.location)
    if not match:
        stats.errors.append(f"participant {number}: start answered {started.status}")
        return
    sid, token = match.groups()
    headers = {"Authorization": f"Bearer {token}"}
    state = json.loads((await with_retry(stats, lambda: fetch(
        client, "GET", f"{base}/api/sessions/{sid}", headers=headers), "state")).text)
    trials = state["practice"] + state["main"]
    image_base = base + state["image_base"]
    if args.images != "none":
        await download(client, image_base, sorted({i for t in state["practice"]
                                                   for i in trial_images(t)}), stats)
    sent = stats.sent.setdefault(sid, {})
    for index in range(state["next_index"], len(trials)):
        trial = trials[index]
        if args.images != "none" and index >= len(state["practice"]):
            await download(client, image_base, trial_images(trial), stats)
        await asyncio.sleep(args.interval * random.uniform(0.5, 1.5))
        body = {"trial_index": index, "trial_id": trial["trial_id"],
                "choice": truth[trial["trial_id"]], "confidence": random.randint(1, 3),
                "rt_ms": round(random.uniform(400, 4000), 1)}
        sent[index] = (body["trial_id"], body["choice"])
        t0 = time.perf_counter()
        retries = stats.retries
        response = await with_retry(stats, lambda body=body: fetch(
            client, "POST", f"{base}/api/sessions/{sid}/responses", json=body, headers=headers),
            "save")
        if response.status >= 400:
            stats.errors.append(f"{sid} trial {index}: {response.status} {response.text[:200]}")
            return
        stats.latencies.append(time.perf_counter() - t0)
        stats.saves.append((t0, time.perf_counter()))
        if stats.retries == retries:
            stats.first_try.append(time.perf_counter() - t0)
    done = await with_retry(stats, lambda: fetch(client, "POST", f"{base}/api/sessions/{sid}/complete",
                                                 json={}, headers=headers), "complete")
    if done.status == 200:
        stats.completed += 1
    else:
        stats.errors.append(f"{sid} complete: {done.status} {done.text[:200]}")


def trial_images(trial: dict) -> list[str]:
    shown = trial["stimulus"]
    return [*shown["references_min"], *shown["references_max"], shown["query_a"], shown["query_b"]]


def route_of(path: str) -> str:
    """A request path with its ids taken out: /api/sessions/<id>/responses -> .../responses."""
    parts = path.split("/")
    if path.startswith("/api/sessions/"):
        return "/api/sessions/*" + ("/" + parts[4] if len(parts) > 4 else "")
    if path.startswith("/x/"):
        return "/x/*/" + (parts[3] if len(parts) > 3 else "")
    return "/" + parts[1] if len(parts) > 1 else path


def _log_lines(access_logs: list[Path]) -> list[str]:
    return [line for log in access_logs for line in log.read_text().splitlines()]


def route_table(access_logs: list[Path]) -> list[str]:
    """Server-side time per route (count, p50, p99, max ms): where the workers spent their time."""
    by_route: dict[str, list[float]] = {}
    for line in _log_lines(access_logs):
        method, path, _, micros = line.split()[:4]
        by_route.setdefault(f"{method} {route_of(path)}", []).append(int(micros) / 1000)
    rows = []
    for route, times in sorted(by_route.items(), key=lambda kv: -sum(kv[1])):
        times.sort()
        rows.append(f"{route:38s} n {len(times):6d}  p50 {statistics.median(times):7.1f}  "
                    f"p99 {times[int(0.99 * (len(times) - 1))]:7.1f}  max {times[-1]:8.1f} ms")
    return rows


def server_side(access_logs: list[Path]) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, count) of the saves as gunicorn timed them (request in to response out)."""
    durations = sorted(int(line.split()[3]) / 1000 for line in _log_lines(access_logs)
                       if line.startswith("POST ") and line.split()[1].endswith("/responses")
                       and line.split()[2] in ("200", "201"))
    if not durations:
        return float("nan"), float("nan"), 0
    return (statistics.median(durations), durations[int(0.99 * (len(durations) - 1))],
            len(durations))


def use_photos(set_dir: Path, size: int) -> None:
    """Replace a generated set's noise PNGs by crops of natural photos (realistic compression)."""
    import pandas as pd

    from experiments.stimulus_set import sha256_file
    from stimuli.images import sample_image_pool

    table = pd.read_csv(set_dir / "images.csv")
    pool = sample_image_pool(set_dir.parent / "photo-pool", n=len(table), size=size)
    for row, source in zip(table.itertuples(), pool):
        (set_dir / row.path).write_bytes(source.read_bytes())
    table["sha256"] = [sha256_file(set_dir / rel) for rel in table["path"]]
    table.to_csv(set_dir / "images.csv", index=False)


def session_bytes(base: str, key: str) -> tuple[int, int]:
    """(bytes, images) one fresh participant downloads: pages, scripts, styles, every image."""
    with httpx.Client(base_url=base, timeout=30) as client:
        total = 0
        page = client.get(f"/x/{key}/?PROLIFIC_PID=bytes-probe&STUDY_ID=x&SESSION_ID=y",
                          follow_redirects=True)  # to the entry URL with the ids encrypted
        total += len(page.content)
        entry = re.search(r'name="entry" value="([^"]+)"', page.text).group(1)
        started = client.post(f"/x/{key}/start", data={"entry": entry, "consent": "yes",
                                                       "window_width": "1280", "window_height": "800"})
        sid, token = re.search(r"#s=([0-9a-f]{32})&t=([^&]+)", started.headers["location"]).groups()
        run = client.get(f"/x/{key}/run")
        total += len(run.content)
        for asset in ("style.css", "js/app.js", "js/api.js", "js/storage.js", "js/queue.js",
                      "js/preload.js", "js/trial.js", "js/screens.js", "js/consent.js"):
            total += len(client.get(f"/static/{asset}").content)
        state = client.get(f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
        total += len(state.content)
        data = state.json()
        ids = {i for t in data["practice"] + data["main"] for i in trial_images(t)}
        for image_id in ids:
            total += len(client.get(data["image_base"] + image_id).content)
        return total, len(ids)


def verify(db: Database, stats: Stats) -> tuple[int, int, int]:
    """(stored, lost, mismatched): every answer a client sent is stored exactly once, unchanged."""
    with db.read() as session:
        rows = [(sid, index, trial_id, (answer or {}).get("choice"))
                for sid, index, trial_id, answer in session.execute(select(
                    Response.session_id, Response.trial_index, Response.trial_id,
                    Response.answer)).all()]
        duplicates = session.scalar(text(
            "select count(*) from (select session_id, trial_index from responses "
            "group by session_id, trial_index having count(*) > 1) d"))
    stored = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    lost = mismatched = 0
    for sid, answers in stats.sent.items():
        for index, answer in answers.items():
            if (sid, index) not in stored:
                lost += 1
            elif stored[(sid, index)] != answer:
                mismatched += 1
    assert duplicates == 0
    return len(rows), lost, mismatched


def shared_tasks(db: Database) -> int:
    """Tasks held by more than one session that is in progress or completed."""
    with db.read() as session:
        return session.scalar(text(
            "select count(*) from (select task_id from sessions where status in "
            "('in_progress', 'completed') group by task_id having count(*) > 1) d"))


def database_for(backend: str, home: Path) -> tuple[str, callable]:
    if backend == "sqlite":
        return f"sqlite:///{home / 'bench.sqlite3'}", lambda: None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text(f"create schema {schema}"))

    def drop() -> None:
        with engine.begin() as connection:
            connection.execute(text(f"drop schema if exists {schema} cascade"))
        engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


async def drive(args, base: str, key: str, servers: list[Server], stats: Stats,
                truth: dict[int, str]) -> float:
    """Run every participant; `truth` is the answer key (trial id -> correct choice), which
    the pages never see, so that every practice passes at once."""
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        tasks = [asyncio.create_task(participant(i, client, base, key, args, stats, truth))
                 for i in range(args.participants)]
        t0 = time.perf_counter()
        if args.kill_at and len(servers) > 1:
            await asyncio.sleep(args.kill_at)
            print(f"  SIGKILL of server 1 of {len(servers)} at {args.kill_at:.0f} s "
                  f"({len(stats.latencies)} saves so far); the others carry on")
            await asyncio.to_thread(servers[0].kill)
        elif args.kill_at:
            await asyncio.sleep(args.kill_at)
            print(f"  SIGKILL at {args.kill_at:.0f} s ({len(stats.latencies)} saves so far); restarting")
            killed = time.perf_counter()
            await asyncio.to_thread(servers[0].kill)
            await asyncio.to_thread(servers[0].start)
            stats.outage = (killed, time.perf_counter())
            print(f"  answering again after {stats.outage[1] - killed:.1f} s")
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                stats.errors.append(f"participant crashed: {outcome!r}")
        return time.perf_counter() - t0


def run(backend: str, args, set_dir: Path, work: Path) -> dict:
    home = work / backend
    home.mkdir()
    url, drop = database_for(backend, home)
    db = Database(url)
    try:
        db.upgrade()
        spec = write_spec(home / "spec.toml", [set_dir], name="load", conditions=["natural"],
                          main_trials_per_task=args.main_trials, catch_trials_per_task=args.catch_trials,
                          responses_per_unit=args.participants * 2, practice={"trials": args.practice_trials})
        key = build_experiment(spec, db).key
        # what several servers share: the database, the secret key (signed entry links, admin
        # sessions) and, here, the image cache; each keeps its own access log
        secret = "bench-" + uuid.uuid4().hex
        servers = [Server(url, home, args.workers, args.threads, secret, f"access-{i}")
                   for i in range(args.servers)]
        proxy = None
        if args.images == "proxy" or args.servers > 1:  # as `interpsy serve` does first
            store = ImageStore(db, home / "image-cache")
            store.prepare_open()
            upstream = ("upstream interpsy { " + " ".join(
                f"server 127.0.0.1:{s.port} max_fails=1 fail_timeout=30s;" for s in servers)
                + " }\n")
            locations = nginx_locations(store.public_dir, "interpsy", root_location=True)
            # saves are idempotent on (session, trial index): nginx may retry them elsewhere
            locations += "proxy_next_upstream error timeout non_idempotent;\n"
            # workers as root: the benchmark's temporary folder is private (0700)
            proxy = Nginx(home / "nginx", locations, user="root", http=upstream)
        for server in servers:
            server.start()
        try:
            if proxy:
                proxy.start()
            base = proxy.url if proxy else servers[0].url
            nbytes, nimages = session_bytes(base, key)
            stats = Stats()
            with db.read() as session:
                truth = dict(session.execute(select(Trial.id, Trial.answer_key)).all())
            wall = asyncio.run(drive(args, base, key, servers, stats, truth))
        finally:
            if proxy:
                proxy.stop()
            for server in servers:
                server.stop()
        stored, lost, mismatched = verify(db, stats)
        shared = shared_tasks(db)
        logs = [server.access_log for server in servers if server.access_log.exists()]
        server_p50, server_p99, server_n = server_side(logs)
        routes = route_table(logs)
        lat = sorted(stats.latencies)
        steady = sorted(stats.first_try)
        # Saves sent while no server listened wait for the restart by design; the rest should not.
        down = stats.outage or (0.0, 0.0)
        outside = sorted(t1 - t0 for t0, t1 in stats.saves if t1 < down[0] or t0 > down[1])
        result = {
            "backend": backend, "participants": args.participants, "saves": len(lat),
            "wall_s": wall, "saves_per_s": len(lat) / wall,
            "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
            "max_ms": 1000 * lat[-1],
            "p99_first_try_ms": 1000 * steady[int(0.99 * (len(steady) - 1))],
            "p99_outside_outage_ms": 1000 * outside[int(0.99 * (len(outside) - 1))],
            "during_outage": len(lat) - len(outside),
            "outage_s": down[1] - down[0], "retries": stats.retries, "completed": stats.completed,
            "stored": stored, "lost": lost, "mismatched": mismatched, "errors": len(stats.errors),
            "shared_tasks": shared, "servers": args.servers,
            "session_mb": nbytes / 1e6, "session_images": nimages,
            "server_p50_ms": server_p50, "server_p99_ms": server_p99, "server_saves": server_n,
            "images_downloaded": stats.images, "routes": routes}
        for message in stats.errors[:5]:
            print("  error:", message)
        return result
    finally:
        db.dispose()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between answers")
    parser.add_argument("--ramp", type=float, default=1.0, help="start spread, in intervals")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per server")
    parser.add_argument("--servers", type=int, default=1,
                        help="app servers behind one nginx round-robin upstream (kill-at then "
                             "SIGKILLs one of them for good)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--practice-trials", type=int, default=5)
    parser.add_argument("--main-trials", type=int, default=40)
    parser.add_argument("--catch-trials", type=int, default=5)
    parser.add_argument("--kill-at", type=float, default=0.0,
                        help="SIGKILL the server this many seconds in, then restart it (0: never)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--image-content", choices=["photos", "noise"], default="photos",
                        help="photos: crops of natural photos (as real stimuli compress); noise: "
                             "Gaussian noise, the worst case for compression")
    parser.add_argument("--images", choices=["none", "all", "proxy"], default="none",
                        help="all: every participant downloads its images from gunicorn as the "
                             "page does; proxy: everything goes through nginx, which serves the "
                             "prepared images from disk (the README's deployment)")
    args = parser.parse_args()
    n_units = args.practice_trials + args.catch_trials + args.main_trials + 2
    with tempfile.TemporaryDirectory(prefix="interpsy-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        set_dir = make_stimulus_set(work / "sets", n_units=n_units, n_batches=1, synthetic=False,
                                    image_size=args.image_size)
        if args.image_content == "photos":
            use_photos(set_dir, args.image_size)
        print(f"stimulus set: {n_units} units, {args.image_size} px {args.image_content}, "
              f"{time.perf_counter() - t0:.1f} s")
        backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        print(f"{args.participants} participants x {args.practice_trials + args.main_trials + args.catch_trials}"
              f" trials, one every {args.interval} s; {args.servers} x gunicorn {args.workers} "
              f"workers" + (" behind nginx" if args.servers > 1 or args.images == "proxy" else "")
              + ((f", SIGKILL of one server at {args.kill_at} s" if args.servers > 1 else
                  f", SIGKILL + restart at {args.kill_at} s") if args.kill_at else ""))
        for backend in backends:
            r = run(backend, args, set_dir, work)
            parts = [f"{r['backend']:8s} saves {r['saves']}  {r['saves_per_s']:.1f} saves/s",
                     f"p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms (without the retried "
                     f"saves {r['p99_first_try_ms']:.1f} ms)  max {r['max_ms']:.0f} ms"]
            if args.kill_at and args.servers == 1:
                parts.append(f"outage {r['outage_s']:.1f} s, {r['during_outage']} saves sent "
                             f"during it, p99 of the others {r['p99_outside_outage_ms']:.1f} ms")
            parts += [f"retries {r['retries']}  completed {r['completed']}/{r['participants']}  "
                      f"stored {r['stored']}  lost {r['lost']}  changed {r['mismatched']}  "
                      f"errors {r['errors']}  tasks held twice {r['shared_tasks']}",
                      f"server-side p50 {r['server_p50_ms']:.1f} ms p99 {r['server_p99_ms']:.1f} ms "
                      f"({r['server_saves']} saves logged)",
                      f"images downloaded {r['images_downloaded']}  session download "
                      f"{r['session_mb']:.1f} MB ({r['session_images']} images)",
                      f"p99 / 100 ms target = {r['p99_outside_outage_ms'] / 100:.2f}"
                      + (" (saves outside the restart window)" if args.kill_at else "")]
            print("\n  ".join(parts))
            print("  server-side time per route:\n    " + "\n    ".join(r["routes"]))


if __name__ == "__main__":
    main()
