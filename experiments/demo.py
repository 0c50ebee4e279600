"""`interpsy demo`: a whole study on one machine, offline, from photographs to the analysis report.

The stimulus steps run as `interpsy stimuli build` in a subprocess (torch stays out of the server
process); everything is cached under the demo folder so a second run is serving within seconds.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pandas as pd
from sqlalchemy import select
from tqdm import tqdm

from experiments.build import build_experiment
from experiments.db import Database
from experiments.db.models import Experiment
from experiments.errors import InterpsyError
from experiments.export import export_experiment
from experiments.simulated_participants import HttpParticipant, Observer, construction_p_correct
from server import lookup
from server.images import public_ids

ROOT = Path(__file__).resolve().parents[1]  # the checkout
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


def default_folder() -> Path:
    """data/cache/demo in a source checkout, else INTERPSY_HOME/demo."""
    checkout = ROOT / "data"
    if (checkout / "SCHEMA.md").is_file() and os.access(checkout, os.W_OK):
        return checkout / "cache" / "demo"
    from experiments.db import interpsy_home
    return interpsy_home() / "demo"


# Each study's packed set in data/ (stimuli.shipped_set) and the variable that names another.
SHIPPED = {"": ("demo_stimuli", "INTERPSY_DEMO_STIMULI"),
           "calibration": ("calibration_stimuli", "INTERPSY_CALIBRATION_STIMULI")}


def shipped_set(study: str = "") -> Path:
    """The study's packed set, rendered with the CPU schedule (or IMI's on a GPU)."""
    folder, variable = SHIPPED[study]
    default = ROOT / "data" / folder
    return Path(os.environ.get(variable, default))


def _shipped_fits(shipped: Path, n_units: int, n_images: int, seed: int) -> str | None:
    """None if the packed set is the one these demo options build, else why not."""
    manifest_path = shipped / "stimuli.json"
    if not manifest_path.is_file():
        return "no shipped set"
    manifest = json.loads(manifest_path.read_text())
    made = {"--units": len(manifest["units"]), "--images": manifest["dataset"]["size"],
            "--seed": manifest["seed"]}
    asked = {"--units": n_units, "--images": n_images, "--seed": seed}
    differ = [f"{k} {made[k]}" for k in made if made[k] != asked[k]]
    return f"the shipped set was made with {', '.join(differ)}" if differ else None


def _say(message: str) -> None:
    click.echo(click.style("demo: ", fg="cyan", bold=True) + message)


@dataclass(frozen=True)
class DemoFolder:
    """Where the demo keeps its cache: photos, stimulus set, database, secrets, export, report."""

    root: Path
    study: str = ""  # "" for the EfficientNet-Lite0 study, "calibration" for the calibration one

    pool = property(lambda self: self.root / "pool")
    stimulus_set = property(lambda self: self.root / "stimuli" / (self.study or "lite0"))
    spec = property(lambda self: self.root / "demo.toml")
    database_url = property(lambda self: f"sqlite:///{self.root / 'interpsy.sqlite3'}")
    secrets = property(lambda self: self.root / "secrets.json")
    export = property(lambda self: self.root / "-".join(filter(None, ("export", self.study))))
    report = property(lambda self: self.root / "-".join(filter(None, ("report", self.study))))
    machine = property(lambda self: self.root / "-".join(filter(None, ("machine", self.study))))


def image_pool(folder: DemoFolder, n_images: int, seed: int) -> list[Path]:
    """The demo's image pool: seeded crops of the photos the Python packages ship."""
    from stimuli.images import sample_image_pool

    paths = sample_image_pool(folder.pool, n=n_images, seed=seed)
    _say(f"image pool: {len(paths)} seeded crops of the photos scikit-image, scikit-learn and "
         f"matplotlib ship ({folder.pool}; every crop is listed in pool.json)")
    return paths


def run_build(command: list[str], out: Path, started: float) -> Path:
    """`interpsy stimuli build` in a subprocess (resumable); the set's folder."""
    _say("building the stimulus set: sample units, mine exemplars, render feature "
         "visualizations (resumes if interrupted)")
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise InterpsyError(f"the stimulus build failed; run `interpsy demo` again to resume ({out})")
    _say(f"stimulus set built in {time.monotonic() - started:.0f} s: {out}")
    return out


def make_stimuli(folder: DemoFolder, n_units: int, n_images: int, render_steps: int, seed: int,
                 rebuild: bool = False) -> Path:
    """Image pool from package photos, then the study's shipped set unpacked against it or,
    with `rebuild` (or options the shipped set was not made with), `interpsy stimuli build`
    with the demo's short render (`render_steps`, alpha 1)."""
    out = folder.stimulus_set
    if (out / "stimuli.json").is_file():
        _say(f"stimulus set cached: {out}")
        return out
    started = time.monotonic()
    image_pool(folder, n_images, seed)
    if folder.study == "calibration":
        from experiments.calibration_units import calibration_units

        n_units = len(calibration_units())
    shipped = shipped_set(folder.study)
    why_not = "--rebuild" if rebuild else _shipped_fits(shipped, n_units, n_images, seed)
    if why_not is None:
        from stimuli.errors import StimuliError
        from stimuli.shipped_set import unpack

        try:
            unpack(shipped, folder.pool, out)
        except StimuliError as exc:
            why_not = f"it does not fit this machine's image pool: {exc}"
        else:
            render = json.loads((out / "stimuli.json").read_text())["parameters"]
            _say(f"stimulus set: the shipped one ({render.get('command')}, on "
                 f"{render.get('device')}), natural images cut from the pool again in "
                 f"{time.monotonic() - started:.0f} s; --rebuild renders your own")
            return out
    if why_not != "no shipped set":
        _say(f"not using the shipped stimulus set ({why_not}): building one here")
    return run_build(build_command(folder, out, n_units, seed, quick_render(render_steps)), out,
                     started)


def quick_render(steps: int) -> list[str]:
    """The render options of a set built by the demo: `steps` steps at alpha 1."""
    return ["--steps", str(steps), "--alpha", "1"]


SHIPPED_RENDER = ["--schedule", "cpu"]  # how the shipped sets are rendered


def build_command(folder: DemoFolder, out: Path, n_units: int, seed: int,
                  render: list[str]) -> list[str]:
    """`interpsy stimuli build` of the study's set: 8 late-layer lite0 units, or every unit of
    the calibration model."""
    from experiments.calibration_units import MODEL as CALIBRATION_MODEL
    from experiments.calibration_units import calibration_units

    if folder.study == "calibration":
        model = CALIBRATION_MODEL
        units = [a for u in calibration_units() for a in ("--unit", f"{u.layer}:{u.channel}")]
    else:
        model, units = MODEL, ["--n-units", str(n_units), "--layers", LATE_LAYERS]
    return [sys.executable, "-m", "experiments.cli", "stimuli", "build", model,
            _relative(folder.pool), _relative(out), *units, "--seed", str(seed),
            "--n-batches", "5", *render, "--device", "cpu", "--name", folder.study or "lite0"]


def _relative(path: Path) -> str:
    """A path inside the checkout relative to it (the build records its image files so)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def render_shipped_set(folder: DemoFolder, n_units: int, n_images: int, seed: int) -> Path:
    """Render the study's shipped set with the CPU schedule in data/shipped_builds/ (resumes;
    commit its `_work/render/unit-*.npz` as they come), then pack it where the demo finds it."""
    from stimuli.shipped_set import pack

    image_pool(folder, n_images, seed)
    out = ROOT / "data" / "shipped_builds" / (folder.study or "lite0")
    run_build(build_command(folder, out, n_units, seed, SHIPPED_RENDER), out, time.monotonic())
    target = shipped_set(folder.study)
    shutil.rmtree(target, ignore_errors=True)
    pack(out, target)
    _say(f"shipped set packed: {target}")
    return target


# Both demo specs end with the demo's recruitment and exclusion settings.
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


def add_occlusion_images(folder: DemoFolder) -> None:
    """`interpsy stimuli occlusion` on the demo set (a subprocess, resumable, cached)."""
    manifest = json.loads((folder.stimulus_set / "stimuli.json").read_text())
    if "occlusion" in manifest:
        _say("occlusion images cached")
        return
    started = time.monotonic()
    _say(f"occluding each batch's top image at every position (stride {OCCLUSION_STRIDE} px; "
         f"the paper's 2 px needs a GPU) and blurring the references")
    random_init = ["--random-init"] if manifest.get("weights") == "random init" else []
    command = [sys.executable, "-m", "experiments.cli", "stimuli", "occlusion",
               str(folder.stimulus_set), "--stride", str(OCCLUSION_STRIDE), "--blur-stride",
               str(BLUR_STRIDE), "--device", "cpu", *random_init]
    if subprocess.run(command).returncode != 0:
        raise InterpsyError(f"the occlusion step failed; run `interpsy demo --task occlusion` "
                            f"again to resume ({folder.stimulus_set})")
    _say(f"occlusion images added in {time.monotonic() - started:.0f} s")


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
        _say(f"{unbeaten} of {n_units} units left out: their feature visualizations do not beat "
             f"their natural exemplars (IMI's rule)")
    else:
        _say(f"{unbeaten} of {n_units} units have feature visualizations that do not beat their "
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


def write_calibration_spec(folder: DemoFolder, n_units: int, seed: int) -> Path:
    """The calibration demo: every calibration unit, natural vs synthetic references, each
    task showing all the main units once."""
    from experiments.calibration_units import calibration_units

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
        _say(f"experiment cached: {found.key}")
        return found.key
    if folder.study == "calibration":
        spec = write_calibration_spec(folder, n_units, seed)
    elif task == "occlusion":
        spec = write_occlusion_spec(folder, n_units, seed)
    else:
        spec = write_spec(folder, n_units, seed, task)
    built = build_experiment(spec, db)
    _say(f"experiment built: {built.key} ({spec})")
    return built.key


def demo_secrets(folder: DemoFolder) -> dict[str, str]:
    """The server's secret key and the admin password, made once and kept (mode 0600)."""
    if folder.secrets.is_file():
        return json.loads(folder.secrets.read_text())
    values = {"secret_key": secrets.token_urlsafe(48), "admin_password": secrets.token_urlsafe(12)}
    folder.secrets.write_text(json.dumps(values))
    folder.secrets.chmod(0o600)
    return values


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEMO_THREADS = 8  # threads per gunicorn worker


class DemoServer:
    """`interpsy serve` (gunicorn) in a subprocess, waited for until it answers."""

    def __init__(self, folder: DemoFolder, port: int, workers: int,
                 database_url: str | None = None):
        self.base_url = f"http://127.0.0.1:{port}"
        keys = demo_secrets(folder)
        self.admin_password = keys["admin_password"]
        env = {**os.environ, "INTERPSY_SECRET_KEY": keys["secret_key"],
               "INTERPSY_ADMIN_PASSWORD": keys["admin_password"],
               "INTERPSY_DATABASE_URL": database_url or folder.database_url,
               "INTERPSY_IMAGE_CACHE": str(folder.root / "image-cache"),
               "INTERPSY_RATE_LIMITS": "0"}
        self.log = open(folder.root / "server.log", "ab")  # noqa: SIM115  (the server's lifetime)
        # threads: with no proxy in front, a browser's idle keep-alive connection would hold a
        # sync worker until gunicorn killed it; gthread workers poll idle connections
        self.process = subprocess.Popen(
            [sys.executable, "-m", "experiments.cli", "serve", "--port", str(port),
             "--workers", str(workers), "--threads", str(DEMO_THREADS)], env=env,
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(folder)

    def _wait(self, folder: DemoFolder, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InterpsyError(f"the server stopped at start; see {folder.root / 'server.log'}")
            try:
                with urllib.request.urlopen(self.base_url + "/api/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise InterpsyError(f"the server did not answer within {timeout:.0f} s; see "
                            f"{folder.root / 'server.log'}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


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


def run_participants(db: Database, server: DemoServer, key: str, stimulus_set: Path, n: int,
                     seed: int) -> list[dict]:
    """N simulated participants (a share of them careless) through the real HTTP flow."""
    public = public_ids(db, lookup.find_experiment(db, key).id)
    activation, spread, unit_of = observer_knowledge(stimulus_set, public)
    run_id = f"{int(time.time())}"
    n_careless = round(n * CARELESS_SHARE) if n >= 3 else 0
    known = construction_p_correct(["natural", "synthetic", "mixed"])  # calibration units
    people = [HttpParticipant(server.base_url, key, f"SIM{run_id}x{i:03d}",
                              Observer(careless=i < n_careless, seed=seed * 10_000 + i,
                                       instruction_s=5.0 if i < n_careless else 40.0,
                                       known=known),
                              activation, spread, unit_of) for i in range(n)]
    with ThreadPoolExecutor(4) as pool, tqdm(total=n, desc="simulated participants") as bar:
        results = []
        for result in pool.map(lambda p: p.run(), people):
            results.append(result)
            bar.update(1)
    return results


def observe(folder: DemoFolder, key: str) -> Path:
    """A machine observer (the MIS on EfficientNet-Lite0's features) answers exactly the
    trials people got (`interpsy observe` in a subprocess); its output folder."""
    _say(f"a machine observer answers the same trials (interpsy observe {key} --backbone "
         f"{MACHINE_BACKBONE})")
    command = [sys.executable, "-m", "experiments.cli", "observe", key, "--database",
               folder.database_url, "--backbone", MACHINE_BACKBONE, "--alpha", MACHINE_ALPHA,
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
    analyze(dataset, folder.report, progress=True, seed=seed, n_resamples=2_000, machine=bots)
    return folder.report / "report.html"


def summarize_calibration(folder: DemoFolder) -> None:
    """The report's calibration findings in a few lines: each score's order agreement with the
    construction, and each explanation type's resolution against the planted one."""
    from experiments.simulated_participants import PLANTED_M50

    tables = folder.report / "tables"
    order = tables / "calibration_order.csv"
    if order.is_file():
        for row in pd.read_csv(order).itertuples(index=False):
            _say(f"calibration order, {row.source} ({row.condition}): Spearman rho "
                 f"{row.spearman_rho:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}] over "
                 f"{row.n_units} units (near 1 before a score is trusted); a unit's score "
                 f"rests on {row.pairs_per_unit:.0f} query pairs, standard error "
                 f"{row.unit_se:.2f}: single units closer than {2 * row.unit_se:.2f} are "
                 f"not told apart")
    curve = tables / "calibration_psychometric.csv"
    if curve.is_file():
        for row in pd.read_csv(curve).itertuples(index=False):
            _say(f"resolution of {row.condition} explanations: m50 {row.m50:.2f} "
                 f"[{row.m50_low:.2f}, {row.m50_high:.2f}] (simulated participants were "
                 f"planted at {PLANTED_M50.get(row.condition, float('nan')):.2f})")


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
@click.option("--task", type=click.Choice(["imi_2afc", "imi_3afc", "occlusion"]),
              default="imi_2afc", show_default=True,
              help="The paradigm: IMI's 2-AFC, its three-query version or the causal occlusion "
                   "task (Zimmermann et al. 2021).")
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
                       "calibration" if calibration else "")
    place.root.mkdir(parents=True, exist_ok=True)
    if render_shipped:
        render_shipped_set(place, n_units, n_images, seed)
        return
    started = time.monotonic()
    stimulus_set = make_stimuli(place, n_units, n_images, render_steps, seed, rebuild)
    if task == "occlusion":
        add_occlusion_images(place)
    db = Database(place.database_url)
    key = ensure_experiment(db, place, n_units, seed, task)
    if not (serve or n_simulated):
        return
    server = DemoServer(place, port or free_port(), workers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` also stops the server
    try:
        _say(f"server ready after {time.monotonic() - started:.0f} s")
        if n_simulated:
            results = run_participants(db, server, key, stimulus_set, n_simulated, seed)
            done = sum(r["status"] == "completed" for r in results)
            refused = sum(r["status"] == "refused" for r in results)
            _say(f"{done} simulated sessions completed, {refused} refused"
                 + (" (the experiment is full: delete the demo folder to start over)"
                    if refused else ""))
            machine = observe(place, key) if calibration else None
            _say(f"analysis report: {report(db, place, key, seed, machine)}")
            if calibration:
                summarize_calibration(place)
        if serve:
            _say(f"participant link: {server.base_url}/x/{key}/")
            _say(f"Prolific-style link: {server.base_url}/x/{key}/?PROLIFIC_PID=TEST01"
                 f"&STUDY_ID=demo&SESSION_ID=s1")
            _say(f"admin: {server.base_url}/admin/ (password {server.admin_password})")
            _say(f"in the lab (PsychoPy): interpsy lab --database '{place.database_url}' "
                 f"--experiment {key} --participant L01")
            _say("press Ctrl-C to stop")
            server.process.wait()
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        server.stop()
        db.dispose()
