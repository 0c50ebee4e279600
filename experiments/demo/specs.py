"""The demo's experiment specs (IMI's task, its 3-AFC version, the occlusion task, the
calibration study) and building them."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from experiments.db import Database
from experiments.db.models import Experiment
from experiments.demo.common import (
    CALIBRATION_CATCH,
    CALIBRATION_PRACTICE,
    CALIBRATION_TASKS_PER_CONDITION,
    CATCH_TRIALS,
    EXPERIMENT,
    PRACTICE_TRIALS,
    DemoFolder,
    say,
)
from experiments.errors import InterpsyError
from experiments.study.build import build_experiment

_SPEC_TAIL = f'''[recruitment]
platforms = ["prolific", "link", "lab"]
# Simulated participants all come from this machine's address; a real study keeps the cap.
max_sessions_per_network = 0

[recruitment.completion_codes]
completed = "DEMO-COMPLETED"
failed_checks = "DEMO-FAILED"

[exclusions]
# Simulated participants finish in seconds (and the server counts instruction time by its own
# clock); a real study keeps IMI's [135, 2500] s and 15 s of instructions.
min_total_s = 0.0
min_instruction_s = 0.0
min_catch_correct = {CATCH_TRIALS}
min_row_uses = 1
'''



def experiment_name(task: str, study: str = "") -> str:
    """The demo experiment's name: `demo` for IMI's 2-AFC, `demo-<type>` for another task type,
    `demo-<study>` for another study (the calibration one)."""
    if study:
        return f"{EXPERIMENT}-{study}"
    return EXPERIMENT if task == "imi_2afc" else f"{EXPERIMENT}-{task}"


def main_units(n_units: int) -> int:
    """Units left for the main block after the practice and catch units."""
    left = n_units - PRACTICE_TRIALS - CATCH_TRIALS
    if left < 1:
        raise InterpsyError(f"--units must be at least {PRACTICE_TRIALS + CATCH_TRIALS + 1}")
    return left


def write_occlusion_spec(folder: DemoFolder, n_units: int, seed: int) -> Path:
    """The occlusion demo (Zimmermann et al. 2021's conditions, short tasks)."""
    n_main = main_units(n_units)
    name = experiment_name("occlusion")
    spec = folder.root / f"{name}.toml"
    spec.write_text(f'''# The occlusion demo (written by `interpsy demo --task occlusion`).
name = "{name}"
version = "1"
seed = {seed}
description = "EfficientNet-Lite0 units: which occlusion keeps the unit's activation higher?"
stimulus_sets = ["{folder.stimulus_set}"]
conditions = ["none", "natural", "synthetic", "mixed", "blurred"]
main_trials_per_task = {n_main}
catch_trials_per_task = {CATCH_TRIALS}
responses_per_unit = {4 * n_main}
fv_must_beat_natural = false

[task]
type = "occlusion"
references = 9
synthetic_in_mixed = 5

[practice]
trials = {PRACTICE_TRIALS}

{_SPEC_TAIL}''')
    return spec


def _spec_head(name: str, seed: int, description: str, folder: DemoFolder, n_main: int,
               n_catch: int, responses: int, must_beat: bool) -> str:
    """The top of a demo spec of IMI's task: identity, stimuli, conditions, task layout."""
    return f'''name = "{name}"
version = "1"
seed = {seed}
description = "{description}"
stimulus_sets = ["{folder.stimulus_set}"]
conditions = ["natural", "synthetic"]
main_trials_per_task = {n_main}
catch_trials_per_task = {n_catch}
responses_per_unit = {responses}
fv_must_beat_natural = {str(must_beat).lower()}
'''


_INSTRUCTIONS = '''
[[instructions]]
title = "What you will see"
text = """Each screen shows what one unit of a neural network responds to. On the right are
images that make it respond strongly, on the left images that make it respond weakly.
Decide which of the two images in the middle fits the right-hand side better, and how sure
you are."""

[[instructions]]
title = "Synthetic images"
conditions = ["synthetic"]
text = "The examples are images optimised to excite (right) or inhibit (left) the unit."
'''


def write_spec(folder: DemoFolder, n_units: int, seed: int, task: str = "imi_2afc") -> Path:
    """The demo experiment of IMI's task (or its three-query version `imi_3afc`, which explains
    itself with its own built-in page): natural vs synthetic references, short tasks; units
    whose feature visualizations do not beat their natural exemplars are left out (IMI's rule)
    while enough units remain."""
    from experiments.stimulus_set import load_stimulus_set

    n_main = main_units(n_units)
    unbeaten = len(load_stimulus_set(folder.stimulus_set).units_fv_not_beating_natural())
    must_beat = n_main - unbeaten >= 1
    if must_beat:
        n_main -= unbeaten
        say(f"{unbeaten} of {n_units} units left out: their feature visualizations do not beat "
             f"their natural exemplars (IMI's rule)")
    else:
        say(f"{unbeaten} of {n_units} units have feature visualizations that do not beat their "
             f"natural exemplars; the demo keeps them (too few units otherwise)")
    name = experiment_name(task)
    spec = folder.spec if task == "imi_2afc" else folder.root / f"{name}.toml"
    own = _INSTRUCTIONS if task == "imi_2afc" else f'\n[task]\ntype = "{task}"\n'
    spec.write_text(
        f"# The demo experiment (written by `interpsy demo --task {task}`).\n"
        + _spec_head(name, seed, "EfficientNet-Lite0 units: natural exemplars vs feature "
                     "visualizations.", folder, n_main, CATCH_TRIALS, 4 * n_main, must_beat)
        + f"\n[practice]\ntrials = {PRACTICE_TRIALS}\n{own}\n{_SPEC_TAIL}")
    return spec


def write_categorisation_spec(folder: DemoFolder, seed: int) -> Path:
    """The categorisation demo: every image once per task at its contrast level, the
    benchmark's presentation times."""
    from experiments.demo.common import CATEGORY_CROPS, CATEGORY_DISTORTION, CATEGORY_PHOTOS

    n_practice, n_catch = 4, 2
    n_main = CATEGORY_CROPS * len(CATEGORY_PHOTOS) - n_practice - n_catch
    name = experiment_name("categorisation")
    spec = folder.root / f"{name}.toml"
    spec.write_text(f'''# The categorisation demo (written by `interpsy demo --task categorisation`).
name = "{name}"
version = "1"
seed = {seed}
description = "Which category was the briefly shown image? Photos at six contrast levels."
stimulus_sets = ["{folder.stimulus_set}"]
conditions = ["{CATEGORY_DISTORTION[0]}"]
main_trials_per_task = {n_main}
catch_trials_per_task = {n_catch}
responses_per_unit = 10

[task]
type = "categorisation"
# the model-vs-human benchmark's presentation: 300 ms fixation, 200 ms image, 200 ms mask,
# 1500 ms to answer
fixation_ms = 300
stimulus_ms = 200
mask_ms = 200
response_window_ms = 1500

[practice]
trials = {n_practice}
min_correct = 2

{_SPEC_TAIL}''')
    return spec


def write_calibration_spec(folder: DemoFolder, n_units: int, seed: int) -> Path:
    """The calibration demo: every calibration unit, natural vs synthetic references, each
    task showing all the main units once."""
    from experiments.study.calibration_units import calibration_units

    reserved = set(CALIBRATION_PRACTICE) | set(CALIBRATION_CATCH)
    n_main = sum(u.unit_id not in reserved for u in calibration_units())
    name = experiment_name("imi_2afc", folder.study)
    spec = folder.root / f"{name}.toml"
    spec.write_text(
        "# The calibration demo (written by `interpsy demo --calibration`); every calibration "
        "unit stays,\n# whether or not its visualizations beat its exemplars.\n"
        + _spec_head(name, seed, "Calibration units with known mechanisms: detectors, random "
                     "controls, mixtures.", folder, n_main, len(CALIBRATION_CATCH),
                     CALIBRATION_TASKS_PER_CONDITION, False)
        + f"\n[practice]\ntrials = {len(CALIBRATION_PRACTICE)}\n"
          f"units = {json.dumps(list(CALIBRATION_PRACTICE))}\n\n"
          f"[catch]\nunits = {json.dumps(list(CALIBRATION_CATCH))}\n{_INSTRUCTIONS}\n"
          f"{_SPEC_TAIL}")
    return spec


def ensure_experiment(db: Database, folder: DemoFolder, n_units: int, seed: int,
                      task: str = "imi_2afc") -> str:
    """Build the demo experiment of `task` (or of the folder's study) unless the database
    already has it; its key."""
    db.upgrade()
    name = experiment_name(task, folder.study)
    with db.read() as session:
        found = session.scalars(select(Experiment).where(Experiment.name == name)).first()
    if found is not None:
        say(f"experiment cached: {found.key}")
        return found.key
    if folder.study == "calibration":
        spec = write_calibration_spec(folder, n_units, seed)
    elif task == "occlusion":
        spec = write_occlusion_spec(folder, n_units, seed)
    elif task == "categorisation":
        spec = write_categorisation_spec(folder, seed)
    else:
        spec = write_spec(folder, n_units, seed, task)
    built = build_experiment(spec, db)
    say(f"experiment built: {built.key} ({spec})")
    return built.key


