"""`interpsy stimuli ...`: stimulus set commands (torch is imported only by the commands needing it)."""
from __future__ import annotations

import click

from experiments.stimulus_set import load_stimulus_set


@click.group()
def stimuli() -> None:
    """Sample units, mine exemplars, render feature visualizations and check stimulus sets."""


@stimuli.command()
@click.argument("set_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--hashes/--no-hashes", default=True, help="Verify every image's sha256.")
def check(set_dir: str, hashes: bool) -> None:
    """Validate a stimulus set folder (manifest, units.csv, images.csv, image files)."""
    stimulus_set = load_stimulus_set(set_dir, verify_images=True, verify_hashes=hashes)
    n_images = len(stimulus_set.images)
    click.echo(f"ok: {stimulus_set.path}: {len(stimulus_set.units)} units, {n_images} images, "
               f"model {stimulus_set.manifest['model']}")
