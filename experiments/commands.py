"""CLI commands of the experiments package: `interpsy experiment|db|export`."""
from __future__ import annotations

import click
from sqlalchemy import func, select

from experiments.db import Database
from experiments.db.models import Experiment, Session, Task, Trial, Unit
from experiments.study.build import build_experiment
from experiments.study.export import export_experiment
from experiments.study.spec import Exclusions
from experiments.tasks.registry import get_task, task_name_of_spec
from experiments.vocabulary import SessionStatus

database_option = click.option(
    "--database", "database_url", envvar="INTERPSY_DATABASE_URL", default=None,
    help="SQLAlchemy URL (default: INTERPSY_DATABASE_URL or SQLite under INTERPSY_HOME).")


@click.group()
def experiment() -> None:
    """Build experiments from a spec; list them."""


@experiment.command("build")
@click.argument("spec_path", metavar="SPEC.toml")
@database_option
@click.option("--replace", is_flag=True, help="Rebuild an existing name@version that has no sessions.")
@click.option("--verify-hashes", is_flag=True, help="Check every image's sha256 while loading sets.")
def build(spec_path: str, database_url: str | None, replace: bool, verify_hashes: bool) -> None:
    """Validate SPEC.toml and its stimulus sets, then write the experiment's tasks and trials."""
    db = Database(database_url)
    built = build_experiment(spec_path, db, replace=replace, verify_hashes=verify_hashes)
    with db.read() as session:
        tasks = session.scalars(select(Task).where(Task.experiment_id == built.id)).all()
        left_out = session.scalars(select(Unit.unit_id).where(
            Unit.experiment_id == built.id, Unit.role == "left_out")).all()
    conditions = sorted({t.condition for t in tasks})
    click.echo(f"built {built.key}: {len(tasks)} tasks ({', '.join(conditions)}) in {db.describe()}")
    for warning in unmeetable_exclusions(db, built):
        click.echo(f"warning: {warning}", err=True)
    if left_out:
        click.echo(f"{len(left_out)} units left out: their feature visualizations do not beat "
                   f"their natural exemplars (IMI's rule; fv_must_beat_natural = false keeps "
                   f"them): {', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}")


def unmeetable_exclusions(db: Database, built: Experiment) -> list[str]:
    """The spec's exclusion thresholds that its own tasks cannot meet (the fewest trials of
    any task decide)."""
    thresholds = Exclusions.model_validate(built.spec_json.get("exclusions") or {})
    with db.read() as session:
        counts = session.execute(
            select(Trial.task_id, Trial.is_catch, Trial.is_calibration, func.count())
            .join(Task).where(Task.experiment_id == built.id, Trial.phase == "main")
            .group_by(Trial.task_id, Trial.is_catch, Trial.is_calibration)).all()
    per_task: dict[int, list[int]] = {}
    for task_id, is_catch, is_calibration, n in counts:
        kind = 1 if is_catch else 2 if is_calibration else 0
        per_task.setdefault(task_id, [0, 0, 0])[kind] += n
    if not per_task:
        return []
    fewest = min(per_task.values(), key=lambda c: (c[0] + c[2], c[1]))
    options = len(get_task(task_name_of_spec(built.spec_json)).options)
    return thresholds.unmeetable(main_trials=fewest[0] + fewest[2], catch_trials=fewest[1],
                                      options=options, calibration_trials=fewest[2])


@experiment.command("list")
@database_option
def list_experiments(database_url: str | None) -> None:
    """List experiments with their status, tasks and completed sessions."""
    db = Database(database_url)
    db.require_current()
    with db.read() as session:
        for exp in session.scalars(select(Experiment).order_by(Experiment.name, Experiment.version)):
            n_tasks = session.scalar(select(func.count()).select_from(Task).where(
                Task.experiment_id == exp.id))
            n_done = session.scalar(select(func.count()).select_from(Session).where(
                Session.experiment_id == exp.id, Session.status == SessionStatus.COMPLETED))
            click.echo(f"{exp.key}\t{exp.status}\t{n_tasks} tasks\t{n_done} completed sessions")


@click.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command()
@database_option
def upgrade(database_url: str | None) -> None:
    """Create or migrate the schema to the newest revision."""
    database = Database(database_url)
    database.upgrade()
    click.echo(f"{database.describe()} is at revision {database.current_revision()}")


@db.command()
@database_option
def current(database_url: str | None) -> None:
    """Print the schema revision of the database and of the code."""
    database = Database(database_url)
    click.echo(f"database: {database.current_revision() or 'none'}; code: {database.head_revision()}")


@click.command()
@click.argument("experiment_key", metavar="EXPERIMENT")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for responses, participants, units and trials tables.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True)
@database_option
def export(experiment_key: str, out_dir: str, fmt: str, database_url: str | None) -> None:
    """Export EXPERIMENT (name or name@version) as the documented dataset tables."""
    database = Database(database_url)
    database.require_current()
    for path in export_experiment(database, experiment_key, out_dir, fmt):
        click.echo(str(path))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the descriptions as JSON.")
def tasks(as_json: bool) -> None:
    """List the registered task types: parameters, image roles, answer and chance level."""
    import json

    from experiments.tasks import task_types

    described = [task.describe() for task in task_types().values()]
    if as_json:
        click.echo(json.dumps(described, indent=2, default=str))
        return
    for task in described:
        click.echo(f"{task['name']}  (chance {task['chance']:.3g})  {task['title']}")
        click.echo(f"  image roles: {', '.join(task['roles']) or 'none'}")
        click.echo(f"  conditions: {', '.join(task['conditions'])}; difficulties: "
                   f"{', '.join(task['difficulties'])}")
        for what, fields in (("parameters ([task])", task["params"]),
                             ("answer", task["answer"])):
            if not fields:
                click.echo(f"  {what}: none")
                continue
            click.echo(f"  {what}:")
            for name, field in fields.items():
                default = "" if field["default"] is None else f" = {field['default']!r}"
                note = f"  {field['description']}" if field["description"] else ""
                click.echo(f"    {name}: {field['type']}{default}{note}")
        click.echo(f"  answer keys: {', '.join(task['keys'])} (column {task['key_column']})")
        click.echo(f"  response columns: {', '.join(task['response_columns'])}")
        compared = "; ".join(f"{a} vs {b}" for a, b in task["comparisons"]) or "none"
        click.echo(f"  analysis: mixed-model factors {', '.join(task['factors'])} (condition "
                   f"against {task['reference_condition']}); compared per unit: {compared}"
                   + (f"; own tables: {task['analysis']}" if task["analysis"] else ""))
