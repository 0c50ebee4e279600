"""`interpsy observe SOURCE --out DIR`: a machine observer answers a stimulus set's trials or a
built experiment's, into a response dataset that `interpsy analyze` reads beside people's."""
from __future__ import annotations

from pathlib import Path

import click

from experiments.commands import database_option
from stimuli.observers.observers import OBSERVERS


def _alpha(value: str) -> float | str | None:
    """--alpha: a number, `none` (hard 0/1 answers) or `published` (the backbone's own)."""
    if value in ("none", "published"):
        return None if value == "none" else value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number, none or published") from None


@click.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the machine's response dataset (responses, units, "
                   "experiment.json, observer.json).")
@database_option
@click.option("--observer", default="mis", show_default=True,
              type=click.Choice(sorted(OBSERVERS)), help="Who answers.")
@click.option("--backbone", default="dreamsim", show_default=True,
              help="Similarity backbone: dreamsim, dreamsim:TYPE, lpips:NAME (LPIPS-style "
                   "maps of a registered model), or a registered model's "
                   "name (its penultimate features), e.g. efficientnet-lite0; with "
                   "--observer proxy the proxy KIND:K (rank:8, prototypes:16, weights:1).")
@click.option("--alpha", default="published", show_default=True,
              help="Slope of the decision rule: a number, none (hard 0/1 answers) or "
                   "published (DreamSim's 0.16; other backbones need a number).")
@click.option("--tasks-per-unit", type=click.IntRange(min=1), default=20, show_default=True,
              help="On a stimulus set: trials per unit and condition (the paper's N).")
@click.option("--conditions", default="natural", show_default=True,
              help="On a stimulus set: comma-separated reference conditions.")
@click.option("--query-distributions", "distributions", default="in", show_default=True,
              help="On a stimulus set: comma-separated query distributions (in, and shifted "
                   "pools or domains added by `interpsy stimuli shift`, e.g. in,blur-3).")
@click.option("--task", "task_name", default="imi_2afc", show_default=True,
              help="On a stimulus set: the task type whose trials are made.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Trial sampling, answer keys and ties.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--random-init", is_flag=True,
              help="The backbone model with its seeded random init (tests, no weights).")
@click.option("--weights", "weights_path", default=None, type=click.Path(dir_okay=False),
              help="The backbone model's weights file (default: the registry's).")
@click.option("--calibrate", default=None, type=click.Path(exists=True, file_okay=False),
              help="An export of people's answers to the same experiment: fit alpha to them "
                   "(maximum likelihood) instead of --alpha.")
@click.option("--fit-images", type=click.IntRange(min=1), default=200, show_default=True,
              help="With --observer proxy: images the proxies are fitted on (none of them "
                   "shown by the set).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True)
def observe(source: str, out: str, database_url: str | None, observer: str, backbone: str,
            alpha: str, tasks_per_unit: int, conditions: str, distributions: str,
            task_name: str, seed: int,
            device: str, batch_size: int, random_init: bool, weights_path: str | None,
            calibrate: str | None, fit_images: int, fmt: str) -> None:
    """Answer SOURCE's trials by machine: SOURCE is a stimulus set folder (N trials per unit
    and condition, made by the task type) or a built experiment's name@version in --database
    (exactly the trials people got)."""
    from stimuli.observers.run import (  # torch
        SCORED_SCOPE,
        ObserveOptions,
        scored,
        scored_mean,
    )
    from stimuli.observers.run import observe as run_observe
    from stimuli.observers.trials import from_experiment, from_set

    options = ObserveOptions(observer=observer, backbone=backbone, alpha=_alpha(alpha),
                             seed=seed, device=device, batch_size=batch_size,
                             pretrained=not random_init, weights_path=weights_path,
                             calibrate=calibrate, fit_images=fit_images)
    if (Path(source) / "stimuli.json").is_file():
        trials = from_set(source, task_name, tuple(c.strip() for c in conditions.split(",")),
                          trials_per_unit=tasks_per_unit, seed=seed,
                          distributions=tuple(d.strip() for d in distributions.split(",")))
    else:
        trials = from_experiment(database_url, source)
    responses = run_observe(trials, out, options, progress=True, fmt=fmt)
    mean = scored_mean(responses)
    click.echo(f"answered {len(responses)} trials of {trials.experiment} "
               f"({responses.unit_id.nunique()} units); mean p_correct "
               f"{'n/a' if mean is None else f'{mean:.3f}'} over {len(scored(responses))} "
               f"{SCORED_SCOPE}; written to {out}")
