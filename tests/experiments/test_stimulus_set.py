"""Reading and validating stimulus set folders: one clear error per broken set."""
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from experiments.errors import StimulusSetError
from experiments.stimulus_set import load_stimulus_set
from tests.stimset import make_stimulus_set


def test_valid_set_loads_with_hashes(toy_set):
    stimulus_set = load_stimulus_set(toy_set, verify_hashes=True)
    assert len(stimulus_set.units) == 12
    assert set(stimulus_set.images.kind) == {"natural", "synthetic"}
    assert stimulus_set.natural_batches(stimulus_set.units.unit_id[0]) == [0, 1]


@pytest.fixture
def broken(tmp_path, toy_set):
    target = tmp_path / "broken"
    shutil.copytree(toy_set, target)
    return target


def _edit(path, name, change):
    frame = pd.read_csv(path / name, dtype=str, keep_default_na=False)
    changed = change(frame)
    (frame if changed is None else changed).to_csv(path / name, index=False)


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "stimuli.json").unlink(), "stimuli.json is missing"),
    (lambda p: (p / "stimuli.json").write_text("{"), "stimuli.json is not valid JSON"),
    (lambda p: _edit(p, "units.csv", lambda f: f.drop(columns="layer")),
     "units.csv lacks column(s) layer"),
    (lambda p: _edit(p, "units.csv", lambda f: f.loc.__setitem__((0, "channel"), "x")),
     "units.csv row 2: channel must be an integer, got 'x'"),
    (lambda p: _edit(p, "images.csv", lambda f: f.loc.__setitem__((0, "role"), "query")),
     "images.csv: role 'query' is not one of"),
    (lambda p: _edit(p, "images.csv", lambda f: f.loc.__setitem__((0, "path"), "../x.png")),
     "must be relative inside the set folder"),
    (lambda p: _edit(p, "images.csv", lambda f: f.loc.__setitem__((3, "image_id"), f.image_id[2])),
     "appears more than once"),
    (lambda p: _edit(p, "images.csv", lambda f: f.drop(index=[0])),
     "9 min natural references"),
])
def test_broken_sets_give_one_clear_error(broken, damage, message):
    damage(broken)
    with pytest.raises(StimulusSetError) as info:
        load_stimulus_set(broken)
    assert message in str(info.value)
    assert str(info.value).startswith(f"stimulus set {broken}")


def test_damaged_image_files_are_caught(broken):
    images = pd.read_csv(broken / "images.csv")
    (broken / images.path[0]).write_bytes(b"not a png")
    (broken / images.path[1]).unlink()
    with pytest.raises(StimulusSetError) as info:
        load_stimulus_set(broken)
    assert "is not a readable image" in str(info.value) and "is missing" in str(info.value)


def test_tampered_image_fails_hash_check_only_when_asked(broken):
    images = pd.read_csv(broken / "images.csv")
    from PIL import Image
    Image.new("RGB", (32, 32), "red").save(broken / images.path[5])
    load_stimulus_set(broken, verify_hashes=False)
    with pytest.raises(StimulusSetError, match="does not match its sha256"):
        load_stimulus_set(broken, verify_hashes=True)


def test_wrong_image_size_is_reported(tmp_path):
    where = make_stimulus_set(tmp_path, n_units=2, image_size=16)
    manifest = (where / "stimuli.json").read_text().replace('"image_size": 16', '"image_size": 224')
    (where / "stimuli.json").write_text(manifest)
    with pytest.raises(StimulusSetError, match="is 16x16, expected 224x224"):
        load_stimulus_set(where)


def test_cli_check_without_torch(toy_set, broken):
    code = ("import sys; from experiments.cli import main; rc = main(['stimuli', 'check', sys.argv[1]]);"
            "assert 'torch' not in sys.modules, 'check imported torch'; sys.exit(rc)")
    ok = subprocess.run([sys.executable, "-c", code, str(toy_set)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "ok:" in ok.stdout and "12 units" in ok.stdout
    (broken / "units.csv").unlink()
    bad = subprocess.run([sys.executable, "-c", code, str(broken)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "units.csv is missing" in bad.stderr
