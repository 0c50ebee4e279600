"""`interpsy analyze DATA --out DIR`: the whole analysis of a dataset as an HTML report."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from experiments.errors import InterpsyError

if TYPE_CHECKING:
    from analysis.exclusions import Rule
    from analysis.load import Dataset

FORMATS = ("interpsy", "imi", "borowski2021", "model-vs-human")
DEFAULT_MARGIN = 0.05  # analysis.scaling.DEFAULT_MARGIN (not imported: --help stays light)
ENGINES = ("auto", "glmer", "vb")  # analysis.stats.ENGINES (not imported, as above)

# --exclusions auto: the rules that fit each format. An interpsy export uses its experiment's own
# thresholds (IMI's when it has none); the IMI release uses IMI's; Borowski et al. (2021) was a
# lab study without online exclusion criteria, so none; neither has the model-vs-human release.
AUTO_RULES = {"interpsy": None, "imi": None, "borowski2021": (), "model-vs-human": ()}


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
              type=click.Choice(FORMATS),
              help="Format of DATA: an interpsy export, the IMI release file, Borowski et al. "
                   "(2021) Experiment I's CSV, or a folder of the model-vs-human benchmark's "
                   "raw data (raw-data/<dataset>/ or raw-data/: accuracy and error "
                   "consistency).")
@click.option("--units", "units", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Units CSV with layer_position (0..1) and unit_id or model, layer, channel: "
                   "enables the layer-depth table and figure (replaces an export's units table).")
@click.option("--exclusions", "exclusions", default="auto", show_default=True,
              help="Exclusion rules: auto (the experiment's own, IMI's for --format imi, none for "
                   "borowski2021), imi, none, or rule names separated by commas "
                   "(e.g. catch_trials,total_time).")
@click.option("--no-exclusions", is_flag=True, help="Apply no exclusion rule (= --exclusions none).")
@click.option("--margin", default=DEFAULT_MARGIN, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Equivalence margin of the scaling TOSTs: proportion correct per unit of the "
                   "scale variable (per 10x parameters or images, per 10 points of top-1).")
@click.option("--mixed-rows", default=None, type=click.IntRange(min=100),
              help="Fit the mixed model on a seeded subsample of whole participants up to this "
                   "many scored trials (default: every row); the report then also fits every "
                   "row and shows what the subsample cost.")
@click.option("--mixed-engine", default="auto", show_default=True,
              type=click.Choice(ENGINES),
              help="glmer: lme4 through R (auto uses it when R and lme4 are installed); vb: "
                   "statsmodels' variational Bayes, the fallback.")
@click.option("--machine", "machine", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A machine observer's answers (`interpsy observe --out`), compared with the "
                   "people's on the same units; repeat for several observers.")
def analyze(data: str, out: Path, experiment: str | None, n_resamples: int, seed: int,
            models: Path | None, fmt: str, units: Path | None, exclusions: str,
            no_exclusions: bool, margin: float, mixed_rows: int | None, mixed_engine: str,
            machine: tuple[Path, ...]) -> None:
    """Scores, statistics, plots and an HTML report from DATA (folder, file or database URL)."""
    from analysis.load import attach_units
    from analysis.report import analyze as run

    if fmt == "model-vs-human":
        _analyze_model_vs_human(data, out)
        return
    try:
        dataset = _read_dataset(data, fmt, experiment, models)
        if fmt == "interpsy" and _is_categorisation(dataset):
            _report_categorisation(dataset.responses, out, data,
                                   rules=_rules(_exclusion_choice(exclusions, no_exclusions),
                                                fmt, dataset),
                                   dataset=dataset, machine=_machine_rows(machine))
            return
        if units is not None:
            dataset = attach_units(dataset, units)
        rules = _rules(_exclusion_choice(exclusions, no_exclusions), fmt, dataset)
        if out.exists() and not out.is_dir():
            raise InterpsyError(f"{out}: exists and is not a folder")
        machine_rows = _machine_rows(machine)
        result = run(dataset, out, progress=True, n_resamples=n_resamples, seed=seed,
                     rules=rules, margin=margin, mixed_rows=mixed_rows,
                     mixed_engine=mixed_engine, machine=machine_rows)
    except InterpsyError:
        raise
    except (ValueError, KeyError, OSError) as exc:
        raise InterpsyError(f"cannot analyse {data}: {exc}") from exc
    for note in dataset.notes:
        click.echo(f"note: {note}")
    kept = int((~result.exclusions.participants["excluded"]).sum())
    total = len(result.exclusions.participants)
    applied = ", ".join(r.name for r in result.exclusions.rules) or "none"
    click.echo(f"{kept} of {total} participants kept (exclusion rules: {applied}); report: "
               f"{out / 'report.html'} ({result.timings.get('total', 0):.1f} s)")


def _analyze_model_vs_human(data: str, out: Path) -> None:
    """The categorisation report of the model-vs-human benchmark's released raw data."""
    from analysis.modelvshuman import BENCHMARK_EXCLUDED, read_model_vs_human
    from experiments.vocabulary import SIXTEEN_CLASSES

    _report_categorisation(read_model_vs_human(data), out, data, 1 / len(SIXTEEN_CLASSES),
                           BENCHMARK_EXCLUDED)


def _is_categorisation(dataset: Dataset) -> bool:
    from analysis.load import task_of

    return task_of(dataset.settings).name == "categorisation"


def _report_categorisation(responses, out: Path, source: str, chance: float | None = None,
                           exclude=None, rules: list[Rule] | None = (),
                           dataset: Dataset | None = None, machine=None) -> None:
    """The categorisation report (accuracy, error consistency) written into `out`; chance is
    1 / the number of categories answered by default; `rules` None: the study's own."""
    from analysis.categorisation import analyze_categorisation
    from analysis.exclusions import rules_for

    if out.exists() and not out.is_dir():
        raise InterpsyError(f"{out}: exists and is not a folder")
    if rules is None:
        rules = rules_for(dataset.settings if dataset is not None else [])
    result = analyze_categorisation(responses, out, chance=chance, exclude=exclude,
                                    source=source, rules=rules, machine=machine,
                                    participants=None if dataset is None
                                    else dataset.participants)
    for note in responses.attrs.get("notes", []):
        click.echo(f"note: {note}")
    click.echo(result.summary())
    click.echo(f"report: {out / 'report.html'}; tables: {out / 'tables'}")


def _read_dataset(data: str, fmt: str, experiment: str | None, models: Path | None) -> Dataset:
    """DATA read in its format, with the model metadata."""
    from analysis.foreign import read_borowski2021
    from analysis.load import Dataset, is_database_url, load_dataset, read_imi, read_models

    if fmt == "interpsy":
        return load_dataset(data, experiment=experiment, models=models)
    if is_database_url(data):
        raise InterpsyError(f"--format {fmt} needs a file, not a database URL")
    if not Path(data).is_file():
        raise InterpsyError(f"{data}: no such file")
    reader = read_imi if fmt == "imi" else read_borowski2021
    return Dataset(responses=reader(data), models=read_models(models), source=data)


def _machine_rows(folders: tuple[Path, ...]):
    """The machine observers' rows of every --machine folder, or None without any."""
    if not folders:
        return None
    import pandas as pd

    from analysis.load import load_dataset

    frames = []
    for folder in folders:
        rows = load_dataset(folder).responses
        if not (rows["client"].astype(str) == "machine").any():
            raise InterpsyError(f"{folder}: no machine observer's rows (client 'machine'); "
                                f"`interpsy observe ... --out {folder}` writes them")
        frames.append(rows.assign(machine_source=folder.name))
    return pd.concat(frames, ignore_index=True)


def _exclusion_choice(exclusions: str, no_exclusions: bool) -> str:
    """--exclusions with --no-exclusions folded in (the two may not disagree)."""
    if not no_exclusions:
        return exclusions.strip()
    if exclusions.strip() not in ("auto", "none"):
        raise click.BadParameter(f"--no-exclusions contradicts --exclusions {exclusions}",
                                 param_hint="--exclusions")
    return "none"


def _rules(choice: str, fmt: str, dataset: Dataset) -> list[Rule] | None:
    """The rules to apply (None: the experiment's own, decided by the report)."""
    from analysis.exclusions import imi_rules, select_rules

    if choice == "auto":
        auto = AUTO_RULES[fmt]
        return None if auto is None else list(auto)
    if choice == "none":
        return []
    if choice == "imi":
        return imi_rules()
    names = [n.strip() for n in choice.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give auto, imi, none or rule names separated by commas",
                                 param_hint="--exclusions")
    try:
        return select_rules(names, dataset.settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--exclusions") from None
