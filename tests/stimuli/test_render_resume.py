"""A render killed inside a group's alpha search resumes from its last finished round, and the
visualizations come out byte for byte as in a run that was never stopped."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.cli import main
from experiments.stimulus_set import load_stimulus_set

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--n-units", "2", "--n-batches", "1", "--n-bins", "4", "--steps", "6", "--n-diverse",
        "3", "--max-exponent", "2", "--binary-steps", "2", "--random-init", "--workers", "0",
        "--seed", "4"]


def _synthetic(folder):
    images = load_stimulus_set(folder).images
    rows = images[images.kind == "synthetic"].sort_values("image_id")
    return list(zip(rows.image_id, rows.sha256, strict=True))


@pytest.mark.slow
def test_a_kill_inside_the_alpha_search_resumes_from_the_last_round(image_folder, tmp_path):
    whole = tmp_path / "whole"
    assert main(["stimuli", "build", "tiny-cnn", str(image_folder), str(whole), *ARGS,
                 "--no-progress"]) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "experiments.cli", "stimuli", "build", "tiny-cnn",
               str(image_folder), str(out), *ARGS, "--progress"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = []
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        checkpoints = list((out / "_work" / "render").glob("group-*.search.pkl")) \
            if (out / "_work" / "render").is_dir() else []
        if checkpoints:
            time.sleep(0.05)  # inside a later round
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL and checkpoints, stderr[-2000:]
    assert "alpha round 1" in stderr  # the progress names the round
    resumed = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rounds = re.findall(r"alpha round (\d+)", resumed.stderr)
    assert rounds and int(rounds[0]) >= 2  # went on from the saved round, not from the start
    assert _synthetic(out) == _synthetic(whole)
    assert not list((out / "_work" / "render").glob("group-*.search.pkl"))
