"""The demo's stimulus sets: the image pool, the shipped set or one built here (in a
subprocess: torch stays out of the server), the occlusion images."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from experiments.demo.common import (
    BLUR_STRIDE,
    LATE_LAYERS,
    MODEL,
    OCCLUSION_STRIDE,
    ROOT,
    DemoFolder,
    say,
)
from experiments.errors import USER_ERROR_EXIT, InterpsyError

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



def image_pool(folder: DemoFolder, n_images: int, seed: int) -> list[Path]:
    """The demo's image pool: seeded crops of the photos the Python packages ship."""
    from stimuli.images import sample_image_pool

    paths = sample_image_pool(folder.pool, n=n_images, seed=seed)
    say(f"image pool: {len(paths)} seeded crops of the photos scikit-image, scikit-learn and "
         f"matplotlib ship ({folder.pool}; every crop is listed in pool.json)")
    return paths


def run_resumable(command: list[str], what: str, again: str, folder: Path) -> None:
    """A resumable step in a subprocess; when it fails, whether running `again` again resumes it
    (a crash, a kill) or meets the same user error (a changed setting, a bad input)."""
    code = subprocess.run(command, cwd=ROOT).returncode
    if code == USER_ERROR_EXIT:
        raise InterpsyError(f"{what} stopped on the error above, and running `{again}` again "
                            f"meets it again: do what it says (or delete {folder} to start that "
                            f"over), then run `{again}`")
    if code != 0:
        raise InterpsyError(f"{what} failed; run `{again}` again to resume ({folder})")


def run_build(command: list[str], out: Path, started: float) -> Path:
    """`interpsy stimuli build` in a subprocess (resumable); the set's folder."""
    say("building the stimulus set: sample units, mine exemplars, render feature "
         "visualizations (resumes if interrupted)")
    run_resumable(command, "the stimulus build", "interpsy demo", out)
    say(f"stimulus set built in {time.monotonic() - started:.0f} s: {out}")
    return out


def make_stimuli(folder: DemoFolder, n_units: int, n_images: int, render_steps: int, seed: int,
                 rebuild: bool = False) -> Path:
    """Image pool from package photos, then the study's shipped set unpacked against it or,
    with `rebuild` (or options the shipped set was not made with), `interpsy stimuli build`
    with the demo's short render (`render_steps`, alpha 1)."""
    out = folder.stimulus_set
    if (out / "stimuli.json").is_file():
        say(f"stimulus set cached: {out}")
        return out
    started = time.monotonic()
    image_pool(folder, n_images, seed)
    if folder.study == "calibration":
        from experiments.study.calibration_units import calibration_units

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
            say(f"stimulus set: the shipped one ({render.get('command')}, on "
                 f"{render.get('device')}), natural images cut from the pool again in "
                 f"{time.monotonic() - started:.0f} s; --rebuild renders your own")
            return out
    if why_not != "no shipped set":
        say(f"not using the shipped stimulus set ({why_not}): building one here")
    return run_build(build_command(folder, out, n_units, seed, quick_render(render_steps)), out,
                     started)


def quick_render(steps: int) -> list[str]:
    """The render options of a set built by the demo: `steps` steps at alpha 1."""
    return ["--steps", str(steps), "--alpha", "1"]


# how the shipped sets are made, so that `--render-shipped` resumes them: their render and
# mining batch. Both render one pass per job (faster, in more memory than the CPU's default);
# the calibration set in the memory format from before the CPU's default became channels-last;
# the lite0 set compares the diverse images' Grams at each unit's layer and at an early one,
# so that they differ in colour as well as in content
SHIPPED_RENDER = {
    "calibration": ["--schedule", "cpu", "--pass-images", "0", "--no-channels-last"],
    "lite0": ["--schedule", "cpu", "--pass-images", "0", "--diversity-layer", "unit",
              "--diversity-layer", "_blocks.1._bn2"]}
SHIPPED_MINING = ["--batch-size", "64"]


def build_command(folder: DemoFolder, out: Path, n_units: int, seed: int,
                  render: list[str]) -> list[str]:
    """`interpsy stimuli build` of the study's set: 8 late-layer lite0 units, or every unit of
    the calibration model."""
    from experiments.study.calibration_units import MODEL as CALIBRATION_MODEL
    from experiments.study.calibration_units import calibration_units

    if folder.study == "calibration":
        model = CALIBRATION_MODEL
        units = [a for u in calibration_units() for a in ("--unit", f"{u.layer}:{u.channel}")]
    else:
        model, units = MODEL, ["--n-units", str(n_units), "--layers", LATE_LAYERS]
    return [sys.executable, "-m", "experiments.cli", "stimuli", "build", model,
            _relative(folder.pool), _relative(out), *units, "--seed", str(seed),
            "--n-batches", "5", *render, "--device", "cpu", "--name", folder.set_name]


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
    out = ROOT / "data" / "shipped_builds" / folder.set_name
    run_build(build_command(folder, out, n_units, seed,
                            SHIPPED_RENDER[folder.set_name] + SHIPPED_MINING), out,
              time.monotonic())
    target = shipped_set(folder.study)
    shutil.rmtree(target, ignore_errors=True)
    pack(out, target)
    say(f"shipped set packed: {target}")
    return target


# Both demo specs end with the demo's recruitment and exclusion settings.

def add_occlusion_images(folder: DemoFolder) -> None:
    """`interpsy stimuli occlusion` on the demo set (a subprocess, resumable, cached)."""
    manifest = json.loads((folder.stimulus_set / "stimuli.json").read_text())
    if "occlusion" in manifest:
        say("occlusion images cached")
        return
    started = time.monotonic()
    say(f"occluding each batch's top image at every position (stride {OCCLUSION_STRIDE} px; "
         f"the paper's 2 px needs a GPU) and blurring the references")
    random_init = ["--random-init"] if manifest.get("weights") == "random init" else []
    command = [sys.executable, "-m", "experiments.cli", "stimuli", "occlusion",
               str(folder.stimulus_set), "--stride", str(OCCLUSION_STRIDE), "--blur-stride",
               str(BLUR_STRIDE), "--device", "cpu", *random_init]
    run_resumable(command, "the occlusion step", "interpsy demo --task occlusion",
                  folder.stimulus_set)
    say(f"occlusion images added in {time.monotonic() - started:.0f} s")




def make_category_stimuli(folder: DemoFolder, seed: int) -> Path:
    """The categorisation demo's set (cached): seeded square crops of each category's photo,
    each at every contrast level of CATEGORY_DISTORTION with its 1/f mask."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from experiments.demo.common import CATEGORY_CROPS, CATEGORY_DISTORTION, CATEGORY_PHOTOS
    from stimuli.categorisation_set import build_categorisation_set

    if (folder.stimulus_set / "stimuli.json").is_file():
        say(f"stimulus set cached: {folder.stimulus_set}")
        return folder.stimulus_set
    photos = folder.root / "photos-categorisation"
    shutil.rmtree(photos, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for category, name in CATEGORY_PHOTOS.items():
        picture = np.asarray(getattr(data, name)())
        if picture.ndim == 2:
            picture = np.repeat(picture[..., None], 3, axis=2)
        (photos / category).mkdir(parents=True)
        height, width = picture.shape[:2]
        for i in range(CATEGORY_CROPS):
            side = int(min(height, width) * rng.uniform(0.6, 0.95))
            top, left = (int(rng.integers(0, extent - side + 1)) for extent in (height, width))
            crop = picture[top:top + side, left:left + side]
            Image.fromarray(crop[:, ::-1] if i % 2 else crop).save(photos / category / f"{i:02d}.png")
    distortion, levels = CATEGORY_DISTORTION
    say(f"categorisation set: {CATEGORY_CROPS} seeded crops of scikit-image's "
        f"{', '.join(f'{n} ({c})' for c, n in CATEGORY_PHOTOS.items())} at {distortion} "
        f"{', '.join(levels)}")
    shutil.rmtree(folder.stimulus_set, ignore_errors=True)
    return build_categorisation_set(photos, folder.stimulus_set, {distortion: list(levels)},
                                    seed=seed, progress=False,
                                    command="interpsy demo --task categorisation")
