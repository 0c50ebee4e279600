"""The demo's study run: simulated participants through the HTTP flow, a machine observer
on the same trials, the export and the report."""
from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from experiments.db import Database
from experiments.demo.common import (
    CARELESS_SHARE,
    MACHINE_ALPHA,
    MACHINE_BACKBONE,
    DemoFolder,
    say,
)
from experiments.demo.server import DemoServer
from experiments.errors import InterpsyError
from experiments.simulated_participants import HttpParticipant, Observer, construction_p_correct
from experiments.study.export import export_experiment
from server import lookup
from server.images import public_ids


def observer_knowledge(stimulus_set: Path, public: dict[str, str]) -> tuple[dict, dict, dict]:
    """Per image (by the public id the pages show): the unit's activation and unit; per unit:
    the spread of its activations."""
    images = pd.read_csv(stimulus_set / "images.csv")
    images = images[images.image_id.isin(public)]
    ids = images.image_id.map(public)
    activation = dict(zip(ids, images.activation.astype(float)))
    unit_of = dict(zip(ids, images.unit_id))
    natural = images[images.kind == "natural"]
    spread = natural.groupby("unit_id").activation.std().fillna(1.0).to_dict()
    return activation, spread, unit_of


def categorisation_knowledge(stimulus_set: Path, public: dict[str, str]
                             ) -> dict[str, tuple[str, float]]:
    """Per image of a categorisation set (by its public id): its category and its level's
    severity, 0 for the distortion's first (mildest) level to 1 for its last."""
    from experiments.stimulus_set import load_stimulus_set

    loaded = load_stimulus_set(stimulus_set, verify_images=False)
    levels = loaded.distortion_levels()
    shown = loaded.images[(loaded.images.role == "stimulus") & loaded.images.image_id.isin(public)]
    return {public[row.image_id]: (row.category, levels[row.distortion].index(str(row.level))
                                   / max(1, len(levels[row.distortion]) - 1))
            for row in shown.itertuples()}


def run_participants(db: Database, server: DemoServer, key: str, stimulus_set: Path, n: int,
                     seed: int) -> list[dict]:
    """N simulated participants (a share of them careless) through the real HTTP flow."""
    experiment = lookup.find_experiment(db, key)
    public = public_ids(db, experiment.id)
    categorised = experiment.spec.task.type == "categorisation"
    activation, spread, unit_of = ({}, {}, {}) if categorised else observer_knowledge(
        stimulus_set, public)
    categories = categorisation_knowledge(stimulus_set, public) if categorised else None
    run_id = f"{int(time.time())}"
    n_careless = round(n * CARELESS_SHARE) if n >= 3 else 0
    known = construction_p_correct(["natural", "synthetic", "mixed"])  # calibration units
    people = [HttpParticipant(server.base_url, key, f"SIM{run_id}x{i:03d}",
                              Observer(careless=i < n_careless, seed=seed * 10_000 + i,
                                       instruction_s=5.0 if i < n_careless else 40.0,
                                       known=known),
                              activation, spread, unit_of, categories=categories)
              for i in range(n)]
    with ThreadPoolExecutor(4) as pool, tqdm(total=n, desc="simulated participants") as bar:
        results = []
        for result in pool.map(lambda p: p.run(), people):
            results.append(result)
            bar.update(1)
    return results


def observe(folder: DemoFolder, key: str, classifier: bool = False) -> Path:
    """A machine observer (the MIS on EfficientNet-Lite0's features, or EfficientNet-Lite0 as
    a classifier on categorisation trials) answers exactly the trials people got (`interpsy
    observe` in a subprocess); its output folder."""
    rule = ["--observer", "classifier"] if classifier else ["--alpha", MACHINE_ALPHA]
    say(f"a machine observer answers the same trials (interpsy observe {key} "
        f"{' '.join(rule[:2])} --backbone {MACHINE_BACKBONE})")
    command = [sys.executable, "-m", "experiments.cli", "observe", key, "--database",
               folder.database_url, "--backbone", MACHINE_BACKBONE, *rule,
               "--out", str(folder.machine)]
    if subprocess.run(command).returncode != 0:
        raise InterpsyError(f"the machine observer failed ({folder.machine})")
    return folder.machine


def report(db: Database, folder: DemoFolder, key: str, seed: int,
           machine: Path | None = None) -> Path:
    """Export the responses and write the analysis report (with a machine observer's answers
    beside the people's); return the report's path."""
    from analysis.load import load_dataset
    from analysis.report import analyze

    export_experiment(db, key, folder.export, "parquet")
    dataset = load_dataset(folder.export)
    bots = None if machine is None else load_dataset(machine).responses
    if folder.study == "categorisation":
        from analysis.categorisation import analyze_categorisation

        result = analyze_categorisation(dataset.responses, folder.report, machine=bots,
                                        source=str(folder.export))
        for line in result.summary().splitlines():
            say(line)
    else:
        analyze(dataset, folder.report, progress=True, seed=seed, n_resamples=2_000,
                machine=bots)
    return folder.report / "report.html"


def summarize_calibration(folder: DemoFolder) -> None:
    """The report's calibration findings in a few lines: each score's order agreement with the
    construction, and each explanation type's resolution against the planted one."""
    from experiments.simulated_participants import PLANTED_M50

    tables = folder.report / "tables"
    order = tables / "calibration_order.csv"
    if order.is_file():
        for row in pd.read_csv(order).itertuples(index=False):
            say(f"calibration order, {row.source} ({row.condition}): Spearman rho "
                 f"{row.spearman_rho:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}] over "
                 f"{row.n_units} units (near 1 before a score is trusted); a unit's score "
                 f"rests on {row.pairs_per_unit:.0f} query pairs, standard error "
                 f"{row.unit_se:.2f}: single units closer than {2 * row.unit_se:.2f} are "
                 f"not told apart")
    curve = tables / "calibration_psychometric.csv"
    if curve.is_file():
        for row in pd.read_csv(curve).itertuples(index=False):
            planted = (f"simulated participants were planted at "
                       f"{PLANTED_M50.get(row.condition, float('nan')):.2f}")
            if pd.isna(row.m50):
                say(f"resolution of {row.condition} explanations: {row.note} ({planted})")
                continue
            say(f"resolution of {row.condition} explanations: m50 {row.m50:.2f} "
                 f"[{row.m50_low:.2f}, {row.m50_high:.2f}] ({planted})")


