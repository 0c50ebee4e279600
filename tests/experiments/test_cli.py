"""The `interpsy` command: subcommands listed, one-line errors with exit code 2, build and export."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiments.cli import SUBCOMMANDS, main
from tests.stimset import write_spec

INTERPSY = Path(sys.executable).with_name("interpsy")


def test_help_lists_every_subcommand_without_importing_torch():
    code = ("import sys; from experiments.cli import main; main(['--help']);"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for name in SUBCOMMANDS:
        assert f"  {name}" in result.stdout
    assert result.stdout.strip().endswith("NOTORCH")


def test_console_script_is_installed():
    result = subprocess.run([str(INTERPSY), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "interpsy" in result.stdout


def test_build_list_and_export(tmp_path, toy_set, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    spec = write_spec(tmp_path / "spec.toml", [toy_set])
    assert main(["db", "upgrade", "--database", url]) == 0
    assert main(["experiment", "build", str(spec), "--database", url]) == 0
    assert "built toy-exp@1: 8 tasks (natural, synthetic)" in capsys.readouterr().out
    assert main(["experiment", "list", "--database", url]) == 0
    assert "toy-exp@1\topen\t8 tasks\t0 completed sessions" in capsys.readouterr().out
    assert main(["export", "toy-exp", "--out", str(tmp_path / "out"), "--format", "csv",
                 "--database", url]) == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 80


def test_build_warns_when_the_exclusions_cannot_be_met_by_the_design(tmp_path, toy_set, capsys):
    """6 main + 2 catch trials per task: IMI's 4 correct catch trials and 2 x 5 row uses are
    out of reach; thresholds that fit build without a word."""
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    assert main(["db", "upgrade", "--database", url]) == 0
    spec = write_spec(tmp_path / "spec.toml", [toy_set])
    assert main(["experiment", "build", str(spec), "--database", url]) == 0
    err = capsys.readouterr().err
    assert "warning: exclusions.min_catch_correct = 4 but a task has 2 catch trials" in err
    assert "exclusions.min_row_uses = 5 needs 2 x 5 = 10 counted answers but a task has 8" in err
    fitting = write_spec(tmp_path / "fits.toml", [toy_set], version="2",
                         exclusions={"min_catch_correct": 2, "min_row_uses": 4})
    assert main(["experiment", "build", str(fitting), "--database", url]) == 0
    assert "warning" not in capsys.readouterr().err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err


def test_rebuilding_the_same_version_is_refused(tmp_path, toy_set, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    spec = write_spec(tmp_path / "spec.toml", [toy_set])
    assert main(["experiment", "build", str(spec), "--database", url]) == 0
    capsys.readouterr()
    assert main(["experiment", "build", str(spec), "--database", url]) == 2
    assert "already exists; bump `version`" in _one_error_line(capsys)
    assert main(["experiment", "build", str(spec), "--database", url, "--replace"]) == 0


def test_malformed_spec_gives_one_line(tmp_path, toy_set, capsys):
    spec = write_spec(tmp_path / "spec.toml", [toy_set], responses_per_unit=-3)
    assert main(["experiment", "build", str(spec), "--database", f"sqlite:///{tmp_path}/x.db"]) == 2
    line = _one_error_line(capsys)
    assert f"{spec}: responses_per_unit: input should be greater than or equal to 1 (got -3)" in line


def test_malformed_stimulus_set_gives_one_line(tmp_path, toy_set, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(toy_set, broken)
    os.remove(broken / "images.csv")
    spec = write_spec(tmp_path / "spec.toml", [broken])
    assert main(["experiment", "build", str(spec), "--database", f"sqlite:///{tmp_path}/x.db"]) == 2
    assert f"stimulus set {broken}: images.csv is missing" in _one_error_line(capsys)


def test_export_of_unknown_experiment_and_unmigrated_database(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["export", "nope", "--out", str(tmp_path), "--database", url]) == 2
    assert "run 'interpsy db upgrade'" in _one_error_line(capsys)
    main(["db", "upgrade", "--database", url])
    capsys.readouterr()
    assert main(["export", "nope", "--out", str(tmp_path), "--database", url]) == 2
    assert "no experiment 'nope'" in _one_error_line(capsys)


def test_every_subcommand_loads_and_has_help():
    for name in SUBCOMMANDS:
        result = subprocess.run([str(INTERPSY), name, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr[-500:])
        assert "Usage: interpsy" in result.stdout


def test_units_whose_fv_does_not_beat_natural_are_left_out(tmp_path, capsys):
    from tests.stimset import make_stimulus_set

    weak = make_stimulus_set(tmp_path / "sets", "weak", n_units=14, unbeaten=(3, 8))
    assert main(["stimuli", "check", str(weak)]) == 0
    assert "warning: 2 of 14 units" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    spec = write_spec(tmp_path / "spec.toml", [weak])
    assert main(["experiment", "build", str(spec), "--database", url]) == 0
    out = capsys.readouterr().out
    assert "2 units left out: their feature visualizations do not beat" in out
    assert main(["export", "toy-exp", "--out", str(tmp_path / "out"), "--format", "csv",
                 "--database", url]) == 0
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    units = pd.read_csv(tmp_path / "out" / "units.csv").set_index("unit_id")
    left_out = {"toynet/conv2/3", "toynet/conv1/8"}
    assert set(units.index[units.role == "left_out"]) == left_out
    assert not set(trials.unit_id) & left_out
    keep = write_spec(tmp_path / "keep.toml", [weak], name="keep", fv_must_beat_natural=False)
    assert main(["experiment", "build", str(keep), "--database", url]) == 0
    assert "left out" not in capsys.readouterr().out
