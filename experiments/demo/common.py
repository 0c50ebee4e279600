"""What every part of the demo shares: its settings, its folder and its voice."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]  # the checkout
MODEL = "efficientnet-lite0"
# Late layers: EfficientNet-Lite0's ReLU6 saturates mid-layer units (washed-out visualizations).
LATE_LAYERS = r"_blocks\.1[1-5]\._bn[0-2]"
EXPERIMENT = "demo"
PRACTICE_TRIALS, CATCH_TRIALS = 2, 1
CARELESS_SHARE = 0.2
# The occlusion demo's occluder steps on 224 px images: CPU-sized (the paper slid it by 2 px).
OCCLUSION_STRIDE, BLUR_STRIDE = 16, 45
# The calibration demo (`--calibration`): every calibration unit; these detectors are its
# practice and catch units, the rest its main block.
CALIBRATION_PRACTICE = ("calibration-net/detectors/1", "calibration-net/detectors/3")
CALIBRATION_CATCH = ("calibration-net/detectors/2",)
CALIBRATION_TASKS_PER_CONDITION = 20
MACHINE_BACKBONE, MACHINE_ALPHA = "efficientnet-lite0", "8"
# The categorisation demo (`--task categorisation`): the photos scikit-image ships offline that
# show something an ImageNet classifier knows (two of the benchmark's 16 categories, cat and
# clock, and two of interpsy's additions), seeded crops of each as its images, at six of the
# benchmark's contrast levels.
CATEGORY_PHOTOS = {"cat": "chelsea", "clock": "clock", "cup": "coffee", "rocket": "rocket"}
CATEGORY_CROPS = 12  # images per category
CATEGORY_DISTORTION = ("contrast", ("c100", "c50", "c30", "c15", "c10", "c05"))


def default_folder() -> Path:
    """data/cache/demo in a source checkout, else INTERPSY_HOME/demo."""
    checkout = ROOT / "data"
    if (checkout / "SCHEMA.md").is_file() and os.access(checkout, os.W_OK):
        return checkout / "cache" / "demo"
    from experiments.db import interpsy_home
    return interpsy_home() / "demo"



def say(message: str) -> None:
    click.echo(click.style("demo: ", fg="cyan", bold=True) + message)


@dataclass(frozen=True)
class DemoFolder:
    """Where the demo keeps its cache: photos, stimulus set, database, secrets, export, report."""

    root: Path
    study: str = ""  # "" for the EfficientNet-Lite0 study, "calibration" for the calibration one

    set_name = property(lambda self: self.study or "lite0")  # its stimulus set's
    pool = property(lambda self: self.root / "pool")
    stimulus_set = property(lambda self: self.root / "stimuli" / self.set_name)
    spec = property(lambda self: self.root / "demo.toml")
    database_url = property(lambda self: f"sqlite:///{self.root / 'interpsy.sqlite3'}")
    secrets = property(lambda self: self.root / "secrets.json")
    export = property(lambda self: self.root / "-".join(filter(None, ("export", self.study))))
    report = property(lambda self: self.root / "-".join(filter(None, ("report", self.study))))
    machine = property(lambda self: self.root / "-".join(filter(None, ("machine", self.study))))


