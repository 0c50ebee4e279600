"""`interpsy lab`: run, export and sync in-lab sessions (PsychoPy is imported only when drawing)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from experiments.db import Database
from experiments.db.engine import describe_url
from experiments.errors import InterpsyError


@contextlib.contextmanager
def plain_database_errors(database_url: str | None) -> Iterator[None]:
    """A database that cannot be reached becomes one line with the way on (no traceback)."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from experiments.lab.store import Unanswered

    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeout, Unanswered) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise InterpsyError(f"the database {describe_url(database_url)} cannot be reached "
                            f"({reason}); nothing was lost (answers already given are stored, "
                            f"or wait in their .pending.jsonl): check the database and run the "
                            f"same command again") from None


database_option = click.option(
    "--database", "database_url", envvar="INTERPSY_DATABASE_URL", default=None,
    help="SQLAlchemy URL (default: INTERPSY_DATABASE_URL or SQLite under INTERPSY_HOME).")


def _ask(values: dict) -> dict:
    """PsychoPy's start dialog for what the command line left out."""
    from psychopy import gui

    dialog = gui.DlgFromDict(values, title="interpsy lab session", sortKeys=False)
    if not dialog.OK:
        raise click.exceptions.Abort()
    return values


@click.group(invoke_without_command=True)
@click.option("--experiment", default=None, help="Experiment name or name@version.")
@click.option("--participant", default=None, help="The participant's lab id, e.g. P01.")
@click.option("--session", default="001", show_default=True, help="Session label for the data file.")
@click.option("--task-file", default=None, type=click.Path(dir_okay=False),
              help="Run from a task file made by `interpsy lab export-task` (no database).")
@click.option("--fullscreen", is_flag=True, help="Full-screen window (use it for real sessions).")
@click.option("--screen", "screen_index", default=0, show_default=True, help="Screen number.")
@click.option("--data-dir", default="lab-data", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the per-session CSV files.")
@click.option("--break-every", default=0, show_default=True,
              help="A break screen after this many main trials (0: none).")
@click.option("--keyboard", type=click.Choice(["auto", "psychtoolbox", "pyglet"]), default="auto",
              show_default=True, help="Key backend; auto falls back from psychtoolbox to pyglet.")
@click.option("--script", default=None, metavar="correct|wrong|random|FILE",
              help="Pilot without a person: answer by the answer key, the other choice, at "
                   "random (seeded by the participant id) or by a file of keys, one per line "
                   "(space continues; 1 2 3 / 8 9 0 answer). The session is stored as any other.")
@click.option("--screenshot", default=None, type=click.Path(dir_okay=False),
              help="Save the first trial screen as this image (PNG) and each instruction page "
                   "beside it (<name>_instructions-N.png), e.g. for a methods figure.")
@click.option("--timing-test", is_flag=True,
              help="Flip the trial screen, judge its frame timing, then exit (1 when unstable).")
@click.option("--expected-hz", type=click.FloatRange(min=1), default=None,
              help="The screen's refresh rate (default: what the system reports).")
@click.option("--frames", "timing_frames", default=300, show_default=True,
              type=click.IntRange(min=10), help="Frames the timing test flips.")
@click.option("--info", "info_pairs", multiple=True, metavar="FIELD=VALUE",
              help="An answer to the spec's participant_fields (the rest are asked in a dialog).")
@click.option("--monitor", "monitor_name", default=None,
              help="PsychoPy monitor profile (Monitor Center): screen width, distance, gamma.")
@click.option("--monitor-width-cm", type=click.FloatRange(min=1), default=None,
              help="The screen's visible width in cm (overrides the profile's).")
@click.option("--distance-cm", type=click.FloatRange(min=1), default=None,
              help="Viewing distance in cm (overrides the profile's).")
@database_option
@click.pass_context
def lab(ctx: click.Context, experiment: str | None, participant: str | None, session: str,
        task_file: str | None, fullscreen: bool, screen_index: int, data_dir: str,
        break_every: int, keyboard: str, script: str | None, screenshot: str | None,
        timing_test: bool,
        expected_hz: float | None,
        timing_frames: int, info_pairs: tuple[str, ...], monitor_name: str | None,
        monitor_width_cm: float | None,
        distance_cm: float | None, database_url: str | None) -> None:
    """Run a lab session with PsychoPy (without arguments a dialog asks for them)."""
    if ctx.invoked_subcommand is not None:
        return
    from experiments.lab.display import MonitorChoice

    monitor = MonitorChoice(monitor_name, monitor_width_cm, distance_cm)
    if timing_test:
        _timing_test(fullscreen, screen_index, monitor, expected_hz, timing_frames)
        return
    if not task_file and not (experiment and participant):
        values = _ask({"experiment": experiment or "", "participant": participant or "",
                       "session": session, "fullscreen": fullscreen})
        experiment, participant = values["experiment"], values["participant"]
        session, fullscreen = values["session"], bool(values["fullscreen"])
    from experiments.lab.session import LabOptions, run_lab
    from experiments.lab.store import warnings_on_terminal

    options = LabOptions(experiment=experiment, participant=participant or "", session=session,
                         database_url=database_url, task_file=task_file, fullscreen=fullscreen,
                         screen=screen_index, data_dir=data_dir, break_every=break_every,
                         keyboard=keyboard, monitor=monitor, expected_hz=expected_hz,
                         info=_pairs(info_pairs), script=script, screenshot=screenshot)
    with warnings_on_terminal(), plain_database_errors(database_url):
        result = run_lab(options)
    click.echo(f"{result.status}: {result.answered} trials answered this run, next trial index "
               f"{result.next_index}; data file {result.data_file}")
    if result.completion_code:
        click.echo(f"completion code: {result.completion_code}")
    if result.participant_id:
        click.echo(f"participant {options.participant or 'of the task file'} is "
                   f"{result.participant_id} in the export (column lab_id maps them)")
    if result.pending:
        click.echo(f"the database could not be reached: answers wait in {result.pending}; "
                   f"send them with `interpsy lab flush {result.pending}` (or resume the "
                   f"session) when it is back", err=True)
    if result.status == "aborted":
        click.echo("run the same command again to resume")


def _pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """--info FIELD=VALUE options as a dict."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE", param_hint="--info")
        out[name.strip()] = value.strip()
    return out


def _timing_test(fullscreen: bool, screen_index: int, monitor, expected_hz: float | None,
                 n_frames: int) -> None:
    """Flip the real trial screen (20 images) and judge the timing; exit 1 when unstable."""
    from experiments.lab.display import open_monitor
    from experiments.lab.screen import LabScreen
    from experiments.lab.timing import check_display

    screen = LabScreen(fullscreen, screen_index, monitor=open_monitor(monitor))
    try:
        screen.show_noise()
        stats, verdict = check_display(screen.win, expected_hz, n_frames,
                                       draw=lambda: screen.draw_trial(locked=False))
        for line in [*stats.lines(), verdict.line()]:
            click.echo(line)
    finally:
        screen.close()
    if not verdict.stable:
        raise click.exceptions.Exit(1)


@lab.command("export-task")
@click.option("--experiment", required=True, help="Experiment name or name@version.")
@click.option("--participant", required=True, help="The participant's lab id.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Task file to write (.json).")
@click.option("--reference-images", is_flag=True,
              help="Reference the image files by absolute path instead of copying them.")
@database_option
def export_task_command(experiment: str, participant: str, out: str, reference_images: bool,
                        database_url: str | None) -> None:
    """Reserve a participant's session and write a task file for a machine without the database."""
    from experiments.lab.taskfile import export_task

    db = Database(database_url)
    try:
        with plain_database_errors(database_url):
            db.require_current()
            path = export_task(db, experiment, participant, out,
                               copy_images=not reference_images)
    finally:
        db.dispose()
    click.echo(f"task file: {path}")


def _each(database_url: str | None, paths: tuple[str, ...], action) -> None:
    """Run `action(db, path)` for each file and print its one-line report."""
    db = Database(database_url)
    try:
        for path in paths:
            with plain_database_errors(database_url):
                click.echo(f"{path}: {action(db, path)}")
    finally:
        db.dispose()


@lab.command("sync")
@click.argument("task_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
def sync(task_files: tuple[str, ...], database_url: str | None) -> None:
    """Upload the results of task-file runs through the session service (safe to repeat)."""
    from experiments.lab.taskfile import sync_task

    _each(database_url, task_files, lambda db, path: sync_task(db, path).line())


@lab.command("flush")
@click.argument("pending_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
def flush(pending_files: tuple[str, ...], database_url: str | None) -> None:
    """Send answers a session kept in its pending journal while the database was unreachable."""
    from experiments.lab.store import flush_pending_file

    def send(db: Database, path: str) -> str:
        done = flush_pending_file(db, path)
        return (f"{done.responses} answers sent ({done.new} new), {done.events} events"
                f"{'; session completed' if done.completed else ''}")

    _each(database_url, pending_files, send)


@lab.command("release")
@click.argument("task_files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
def release(task_files: tuple[str, ...], database_url: str | None) -> None:
    """Free exported tasks the lab will not run (a later sync of one is still kept)."""
    from experiments.lab.taskfile import release_task

    _each(database_url, task_files, lambda db, path: (
        f"released; its session is {release_task(db, path).replace('_', ' ')} and its trials "
        f"go to the next participant"))
