"""`interpsy demo`: a whole study on one machine, offline, from photographs to the analysis report.

The stimulus steps run as `interpsy stimuli build` in a subprocess (torch stays out of the server
process); everything is cached under the demo folder so a second run is serving within seconds.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from experiments.db import Database
from experiments.demo.common import DemoFolder, default_folder, say
from experiments.demo.server import DemoServer, free_port
from experiments.demo.sets import (
    add_occlusion_images,
    make_category_stimuli,
    make_stimuli,
    render_shipped_set,
)
from experiments.demo.specs import ensure_experiment
from experiments.demo.study import observe, report, run_participants, summarize_calibration


@click.command()
@click.option("--simulate", "n_simulated", type=click.IntRange(0, 10_000), default=0,
              help="Run N simulated participants through the HTTP API, then write the report.")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Keep serving the study after the set-up (and the simulation).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="0: any free port.")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder (default: data/cache/demo in a checkout).")
@click.option("--units", "n_units", type=click.IntRange(4, 64), default=8, show_default=True)
@click.option("--images", "n_images", type=click.IntRange(100, 20_000), default=300,
              show_default=True, help="Photo crops in the image pool.")
@click.option("--steps", "render_steps", type=click.IntRange(1, 20_000), default=30,
              show_default=True, help="Feature-visualization steps of a set built here, run "
                                      "exactly (CPU-sized; the shipped set ran longer).")
@click.option("--rebuild", is_flag=True, help="Build the stimulus set on this machine instead "
                                              "of unpacking the shipped one.")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--task", type=click.Choice(["imi_2afc", "imi_3afc", "occlusion",
                                           "categorisation"]),
              default="imi_2afc", show_default=True,
              help="The paradigm: IMI's 2-AFC, its three-query version, the causal occlusion "
                   "task (Zimmermann et al. 2021) or model-vs-human categorisation (Geirhos et "
                   "al. 2021: photos at six contrast levels, EfficientNet-Lite0 as the machine "
                   "observer; --units and --images do not apply).")
@click.option("--render-shipped", is_flag=True,
              help="For maintainers: render the study's shipped set with the CPU schedule in "
                   "data/shipped_builds/ (hours; resumes) and pack it into data/, then stop.")
@click.option("--calibration", is_flag=True,
              help="The study on the calibration model's units (known mechanisms; the shipped "
                   "set, --units does not apply): simulated participants follow the construction, a "
                   "machine observer answers the same trials, and the report checks both.")
def demo(n_simulated: int, serve: bool, port: int, folder: Path | None, n_units: int,
         n_images: int, render_steps: int, rebuild: bool, workers: int, seed: int,
         task: str, render_shipped: bool, calibration: bool) -> None:
    """Run a whole study offline: stimuli, experiment, server, simulated participants, report."""
    if calibration and task != "imi_2afc":
        raise click.UsageError("--calibration runs IMI's 2-AFC task; leave out --task")
    place = DemoFolder((folder or default_folder()).resolve(),
                       "calibration" if calibration else
                       "categorisation" if task == "categorisation" else "")
    place.root.mkdir(parents=True, exist_ok=True)
    if render_shipped:
        render_shipped_set(place, n_units, n_images, seed)
        return
    started = time.monotonic()
    stimulus_set = (make_category_stimuli(place, seed) if task == "categorisation" else
                    make_stimuli(place, n_units, n_images, render_steps, seed, rebuild))
    if task == "occlusion":
        add_occlusion_images(place)
    db = Database(place.database_url)
    key = ensure_experiment(db, place, n_units, seed, task)
    if not (serve or n_simulated):
        return
    server = DemoServer(place, port or free_port(), workers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` also stops the server
    try:
        say(f"server ready after {time.monotonic() - started:.0f} s")
        if n_simulated:
            results = run_participants(db, server, key, stimulus_set, n_simulated, seed)
            done = sum(r["status"] == "completed" for r in results)
            refused = sum(r["status"] == "refused" for r in results)
            say(f"{done} simulated sessions completed, {refused} refused"
                 + (" (the experiment is full: delete the demo folder to start over)"
                    if refused else ""))
            machine = (observe(place, key, classifier=task == "categorisation")
                       if calibration or task == "categorisation" else None)
            say(f"analysis report: {report(db, place, key, seed, machine)}")
            if calibration:
                summarize_calibration(place)
        if serve:
            say(f"participant link: {server.base_url}/x/{key}/")
            say(f"Prolific-style link: {server.base_url}/x/{key}/?PROLIFIC_PID=TEST01"
                 f"&STUDY_ID=demo&SESSION_ID=s1")
            say(f"admin: {server.base_url}/admin/ (password {server.admin_password})")
            say(f"in the lab (PsychoPy): interpsy lab --database '{place.database_url}' "
                 f"--experiment {key} --participant L01")
            say("press Ctrl-C to stop")
            server.process.wait()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        server.stop()
        db.dispose()
