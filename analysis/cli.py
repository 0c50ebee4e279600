"""`interpsy analyze DATA --out DIR`: the whole analysis of a dataset as an HTML report."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.errors import InterpsyError


@click.command()
@click.argument("data")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, tables/ and figures/.")
@click.option("--experiment", default=None, help="Experiment name (database URLs, shared folders).")
@click.option("--bootstrap", "n_resamples", default=10_000, show_default=True,
              type=click.IntRange(min=100), help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of every random step.")
@click.option("--models", "models", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Model metadata CSV (model, parameters, train_images, top1); default: IMI's.")
@click.option("--format", "fmt", default="interpsy", show_default=True,
              type=click.Choice(["interpsy", "imi"]), help="Format of DATA when it is a file.")
def analyze(data: str, out: Path, experiment: str | None, n_resamples: int, seed: int,
            models: Path | None, fmt: str) -> None:
    """Scores, statistics, plots and an HTML report from DATA (folder, file or database URL)."""
    from analysis.load import Dataset, is_database_url, load_dataset, read_imi, read_models
    from analysis.report import analyze as run

    try:
        if fmt == "imi":
            if is_database_url(data):
                raise InterpsyError("--format imi needs a file, not a database URL")
            if not Path(data).is_file():
                raise InterpsyError(f"{data}: no such file")
            dataset = Dataset(responses=read_imi(data), models=read_models(models), source=data)
        else:
            dataset = load_dataset(data, experiment=experiment, models=models)
        if out.exists() and not out.is_dir():
            raise InterpsyError(f"{out}: exists and is not a folder")
        result = run(dataset, out, progress=True, n_resamples=n_resamples, seed=seed)
    except InterpsyError:
        raise
    except (ValueError, KeyError, OSError) as exc:
        raise InterpsyError(f"cannot analyse {data}: {exc}") from exc
    kept = int((~result.exclusions.participants["excluded"]).sum())
    total = len(result.exclusions.participants)
    click.echo(f"{kept} of {total} participants kept; report: {out / 'report.html'} "
               f"({result.timings.get('total', 0):.1f} s)")
