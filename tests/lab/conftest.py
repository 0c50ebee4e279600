"""Lab fixtures: a tiny built experiment with fast timing, scripted responders, Xvfb."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from experiments.lab.sequence import Answer, Step
from experiments.study.build import build_experiment
from tests.stimset import write_spec

FAST_TIMING = {"button_lock_ms": 60, "feedback_delay_ms": 20, "feedback_ms": 40}
XVFB_PACKAGES = "xvfb xauth libjack-jackd2-0 libportaudio2"


def lab_spec(tmp: Path, toy_set: Path, name: str = "lab-exp", **overrides) -> Path:
    """A spec for the toy set: 2 practice trials, 6 main (2 catch), lab timing shortened."""
    values = {"name": name, "timing": dict(FAST_TIMING), "main_trials_per_task": 4,
              "catch_trials_per_task": 2, "responses_per_unit": 2}
    values.update(overrides)
    return write_spec(tmp / f"{name}.toml", [toy_set], **values)


@pytest.fixture
def built(db, toy_set, tmp_path):
    """(db, experiment key) of a built toy experiment."""
    experiment = build_experiment(lab_spec(tmp_path, toy_set), db)
    return db, experiment.key


def correct_responder(wrong_first_attempt: bool = False):
    """A scripted participant: always right (optionally wrong once in practice attempt 0)."""
    def respond(step: Step) -> Answer:
        right = step.trial.answer_key
        choice = right
        if wrong_first_attempt and step.phase == "practice" and step.attempt == 0 \
                and step.position == 0:
            choice = "b" if right == "a" else "a"
        return Answer(answer={"choice": choice, "confidence": 1 + step.trial_index % 3},
                      rt_ms=500.0 + step.trial_index, stim_onset_ms=1000.0 * step.trial_index,
                      response_ms=1000.0 * step.trial_index + 500.0 + step.trial_index,
                      extra={"keyboard_backend": "scripted", "input": "script"})
    return respond


def _free_display() -> int:
    """A display number no other Xvfb holds; each pytest-xdist worker searches its own range
    (two workers probing one range at once could both pick the same number)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    start = 90 + 40 * worker
    for number in range(start, start + 40):
        if not Path(f"/tmp/.X{number}-lock").exists() and \
                not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="session")
def xvfb_display():
    """DISPLAY of an Xvfb server started for the lab drawing tests (skip if Xvfb is missing)."""
    if os.environ.get("INTERPSY_LAB_USE_DISPLAY") and os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip(f"Xvfb not installed; apt-get install {XVFB_PACKAGES}")
    try:
        import psychopy  # noqa: F401
    except ImportError:
        pytest.skip("psychopy not installed (pip install 'interpsy[lab]')")
    number = _free_display()
    process = subprocess.Popen([binary, f":{number}", "-screen", "0", "1920x1200x24", "-nolisten",
                                "tcp", "-noreset"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{number}")
    for _ in range(100):
        if socket.exists() or process.poll() is not None:
            break
        time.sleep(0.05)
    if process.poll() is not None or not socket.exists():
        process.kill()
        pytest.skip(f"Xvfb did not start on :{number}; apt-get install {XVFB_PACKAGES}")
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        if previous is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = previous
