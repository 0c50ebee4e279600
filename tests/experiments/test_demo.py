"""`interpsy demo`: the whole study offline, end to end, on CPU: the EfficientNet-Lite0 study
set up, cached and unpacked from a packed set; the calibration study from its shipped set, run with
simulated participants through the HTTP flow to its report."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.stimulus_set import load_stimulus_set

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_sets_up_a_whole_study_and_caches(tmp_path):
    folder = tmp_path / "demo"
    command = [sys.executable, "-m", "experiments.cli", "demo", "--folder", str(folder),
               "--units", "4", "--images", "100", "--steps", "2", "--port", "0"]
    first = subprocess.run([*command, "--no-serve"], capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "experiment built: demo@1" in first.stdout

    stimulus_set = load_stimulus_set(folder / "stimuli" / "lite0", verify_hashes=True)
    assert len(stimulus_set.units) == 4
    assert {"natural", "synthetic"} == set(stimulus_set.images.kind)

    again = subprocess.run([*command, "--no-serve"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "stimulus set cached" in again.stdout and "experiment cached: demo@1" in again.stdout
    assert "rendering" not in again.stderr

    # The same set, packed as the repository ships the demo's: a fresh folder unpacks it (natural
    # images cut from the pool again) instead of rendering.
    from stimuli.shipped_set import pack

    shipped = pack(folder / "stimuli" / "lite0", tmp_path / "shipped")
    fresh = tmp_path / "fresh"
    env = {**os.environ, "INTERPSY_DEMO_STIMULI": str(shipped)}
    unpacked = subprocess.run([*command[:4], "--folder", str(fresh), *command[6:], "--no-serve"],
                              capture_output=True, text=True, timeout=120, env=env)
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    assert "stimulus set: the shipped one (interpsy stimuli build efficientnet-lite0" in \
        unpacked.stdout
    assert "rendering" not in unpacked.stderr
    restored = load_stimulus_set(fresh / "stimuli" / "lite0", verify_hashes=True)

    def synthetic(images):
        rows = images[images.kind == "synthetic"].sort_values("image_id")
        return list(zip(rows.image_id, rows.sha256, strict=True))

    assert synthetic(restored.images) == synthetic(stimulus_set.images)

    # A build interrupted before an upgrade changed a render default (channels-last on the CPU):
    # the demo says what to do instead of asking to resume again, and doing it finishes the set.
    lite0 = folder / "stimuli" / "lite0"
    (lite0 / "stimuli.json").unlink()
    (folder / "interpsy.sqlite3").unlink()
    render = lite0 / "_work" / "render"
    recorded = json.loads((render / "settings.json").read_text())
    del recorded["channels_last"]
    (render / "settings.json").write_text(json.dumps(recorded))
    stopped = subprocess.run([*command, "--no-serve"], capture_output=True, text=True,
                             timeout=300)
    assert stopped.returncode == 2
    assert "channels_last False -> True" in stopped.stderr
    assert "again to resume" not in stopped.stderr
    assert f"delete {render} to redo that stage" in stopped.stderr
    assert "running `interpsy demo` again meets it again" in stopped.stderr
    shutil.rmtree(render)
    finished = subprocess.run([*command, "--no-serve"], capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "experiment built: demo@1" in finished.stdout
    assert len(load_stimulus_set(lite0, verify_hashes=True).units) == 4


def test_the_shipped_set_is_used_only_for_the_options_it_was_made_with(tmp_path):
    import json

    from experiments.demo.sets import _shipped_fits

    assert _shipped_fits(tmp_path, 8, 300, 0) == "no shipped set"
    (tmp_path / "stimuli.json").write_text(json.dumps(
        {"units": [f"u{i}" for i in range(8)], "dataset": {"size": 300}, "seed": 0}))
    assert _shipped_fits(tmp_path, 8, 300, 0) is None
    assert _shipped_fits(tmp_path, 6, 300, 1) == \
        "the shipped set was made with --units 8, --seed 0"


@pytest.mark.slow
def test_the_calibration_demo_reports_the_known_answers(tmp_path):
    """`interpsy demo --calibration --simulate 10 --no-serve` as a user runs it: the shipped
    calibration set unpacked against the demo's photos, ten simulated people, the MIS on the
    same trials, and the report's order check and psychometric functions."""
    folder = tmp_path / "demo"
    environment = {k: v for k, v in os.environ.items() if k != "INTERPSY_CALIBRATION_STIMULI"}
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "demo", "--calibration",
                           "--port", "0", "--no-serve", "--folder", str(folder), "--simulate",
                           "10"], capture_output=True, text=True, timeout=900, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stimulus set: the shipped one (interpsy stimuli build calibration-net" in done.stdout
    assert "rendering" not in done.stderr
    assert "10 simulated sessions completed, 0 refused" in done.stdout
    stimulus_set = load_stimulus_set(folder / "stimuli" / "calibration", verify_hashes=True)
    shipped = json.loads((ROOT / "data" / "calibration_stimuli" / "stimuli.json").read_text())
    assert sorted(stimulus_set.units.unit_id) == sorted(shipped["units"])
    assert len(stimulus_set.units) == 20
    html = (folder / "report-calibration" / "report.html").read_text()
    assert "Calibration units" in html
    tables = folder / "report-calibration" / "tables"
    order = pd.read_csv(tables / "calibration_order.csv")
    assert {"people", "mis"} <= {s.split(" ")[0] for s in order.source}, order
    people = order[order.source == "people"].set_index("condition")
    # 10 simulated people (threads: which task each draws varies run to run) order the
    # units as constructed; their intervals are wide (rho 0.26-0.80 seen, lower ends near 0)
    assert (people.spearman_rho > 0).all() and (people.ci_high > 0.5).all(), people
    curve = pd.read_csv(tables / "calibration_psychometric.csv")
    assert set(curve.condition) == {"natural", "synthetic"}
    assert re.search(r"resolution of natural explanations: (m50 0\.\d\d|not resolved)", done.stdout)
    assert re.search(r"rests on [1-5] query pairs, standard error 0\.\d\d", done.stdout)
    answers = pd.read_parquet(folder / "export-calibration" / "responses.parquet")
    flags = pd.read_csv(folder / "report-calibration" / "tables" / "participant_flags.csv")
    kept = set(flags.loc[~flags.excluded.astype(bool), "participant_id"])
    controls = answers[answers.unit_id.str.contains("/controls/")
                       & answers.participant_id.isin(kept)]
    assert abs(controls.correct.mean() - 0.5) < 0.2, len(controls)
    # the reliability check on the demo's own set flags the planted shortcut, not its twin
    assert _flagged_routes(stimulus_set, "shortcuts") == {"calibration-net/shortcuts/0"}


def _flagged_routes(stimulus_set, layer: str) -> set[str]:
    """The units at `layer` whose visualizations `stimuli check --reliability` flags."""
    from stimuli.registry import load_model
    from stimuli.reliability import reliability_table

    units = stimulus_set.units
    table = reliability_table(stimulus_set, load_model(stimulus_set.manifest["model"]),
                              list(units.unit_id[units.layer == layer]))
    return set(table.unit_id[table.outlier])


def test_a_calibration_set_built_here_asks_for_every_calibration_unit(tmp_path):
    """Without a shipped set (or with --rebuild) the calibration demo builds every unit of the
    calibration model, with the demo's short render."""
    from experiments.demo.common import DemoFolder
    from experiments.demo.sets import build_command, quick_render
    from experiments.study.calibration_units import calibration_units

    folder = DemoFolder(tmp_path, "calibration")
    command = build_command(folder, folder.stimulus_set, 8, 0, quick_render(30))
    model = command[command.index("build") + 1]
    units = [command[i + 1] for i, arg in enumerate(command) if arg == "--unit"]
    assert model == "calibration-net"
    assert units == [f"{u.layer}:{u.channel}" for u in calibration_units()]
    assert "--n-units" not in command and command[-2:] == ["--name", "calibration"]
    assert command[command.index("--steps") + 1] == "30"


@pytest.mark.parametrize("study, model", [("calibration", "calibration-net"),
                                          ("lite0", "efficientnet-lite0")])
def test_the_shipped_builds_resume_with_the_options_they_were_made_with(tmp_path, study, model):
    """`interpsy demo --render-shipped` resumes data/shipped_builds/<study> with SHIPPED_RENDER:
    its render settings are the ones the committed units were made with (a CPU default that
    changed since, such as channels-last, would make the resume refuse). The resume renders
    the shard of one finished unit, so it renders nothing even while the set is in the making."""
    from experiments.demo.sets import SHIPPED_RENDER

    shipped = ROOT / "data" / "shipped_builds" / study / "_work"
    finished = sorted(p.name for p in (shipped / "render").glob("unit-*.npz"))
    assert finished, f"{shipped}: no finished unit"
    out = tmp_path / study
    shutil.copytree(shipped, out / "_work")
    n_units = len(json.loads((shipped / "units.json").read_text())["units"])
    shard = f"{int(finished[0].removeprefix('unit-').removesuffix('.npz'))}/{n_units}"
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "stimuli", "render", model,
                           str(out), *SHIPPED_RENDER[study], "--seed", "0", "--shard", shard,
                           "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (out / "_work" / "render").glob("unit-*.npz")) == finished


def test_idle_browser_connections_do_not_hold_the_demos_server(tmp_path):
    """Browsers keep connections open without sending; the demo's server (no proxy in front)
    still answers at once with more idle connections than workers (sync workers each sat on
    one until gunicorn killed them: "WORKER TIMEOUT ... no URI read")."""
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    from experiments.db import Database
    from experiments.demo.common import DemoFolder
    from experiments.demo.server import DemoServer, free_port

    folder = DemoFolder(tmp_path)
    Database(folder.database_url).upgrade()
    server = DemoServer(folder, free_port(), workers=1)
    idle = []
    try:
        port = urlsplit(server.base_url).port
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
        # a server held by the idle connections would not answer before gunicorn's 60 s
        with urllib.request.urlopen(server.base_url + "/api/health", timeout=10) as reply:
            assert reply.status == 200
    finally:
        for connection in idle:
            connection.close()
        server.stop()


@pytest.mark.slow
def test_the_categorisation_demo_runs_offline_with_lite0_as_the_machine(tmp_path):
    """`interpsy demo --task categorisation --simulate 10 --no-serve`: the set from the photos
    scikit-image ships, ten simulated people through the HTTP flow, EfficientNet-Lite0 as the
    classifier on the same trials, the report's accuracy curves and error-consistency matrix."""
    folder = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "demo", "--task",
                           "categorisation", "--simulate", "10", "--no-serve", "--port", "0",
                           "--folder", str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "10 simulated sessions completed, 0 refused" in done.stdout
    made = load_stimulus_set(folder / "stimuli" / "categorisation")
    assert made.categories == ["cat", "clock", "cup", "rocket"] and len(made.units) == 48
    tables = folder / "report-categorisation" / "tables"
    accuracy = pd.read_csv(tables / "accuracy.csv")
    machine = "M-classifier-model:efficientnet-lite0"
    assert set(accuracy.observer) == {machine} | {f"P{i:04d}" for i in range(1, 11)}
    assert accuracy.condition.nunique() == 6
    full = accuracy[(accuracy.observer == machine) & (accuracy.condition == "c100")]
    assert full.accuracy.item() > 0.7  # the pretrained classifier at full contrast
    pairs = pd.read_csv(tables / "error_consistency.csv")
    assert set(pairs.pair) == {"human-human", "human-machine"}
    figures = folder / "report-categorisation" / "figures"
    assert (figures / "accuracy_0.png").is_file() and (figures / "consistency_0.png").is_file()
    assert f"{machine} (machine) against the people" in done.stdout
